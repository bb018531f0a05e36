# Build steps of one overlay, included by overlays/<name>/Makefile (which sets NAME). Each step
# is a target; later steps run the earlier ones they need:
#
#   make vectors     golden testbench vectors from the numpy engine model (Python, this runtime)
#   make csim        Vitis HLS C simulation of hls_src/<name> on those vectors
#   make hls         C simulation, C synthesis and export of the IP (hls_src/<name>/run_hls.tcl)
#   make bitstream   Vivado block design, synthesis, implementation: <name>.bit + <name>.hwh here
#   make check       the .hwh checked against manifest.json, as the runtime does when it loads it
#   make clean-build remove build/ (the tool projects); the .bit/.hwh stay
#
# Tools (NOT available where this project is developed and tested; nothing here has been run):
# Vitis HLS and Vivado 2022.1 on PATH (`source <Xilinx>/Vivado/2022.1/settings64.sh`), Avnet's
# Ultra96-V2 board files, and python3 with this package importable (for `vectors`).
OVERLAY_DIR := $(abspath $(dir $(firstword $(MAKEFILE_LIST))))
ROOT        := $(abspath $(OVERLAY_DIR)/../..)
HLS_SRC     := $(ROOT)/hls_src/$(NAME)
BUILD       := $(OVERLAY_DIR)/build
VECTORS     := $(BUILD)/vectors
IP_REPO     := $(BUILD)/hls/$(NAME)_prj/solution1/impl/ip
PYTHON      ?= python3
VITIS_HLS   ?= vitis_hls
VIVADO      ?= vivado
JOBS        ?= 4

.PHONY: vectors csim hls bitstream check clean-build

vectors: $(VECTORS)/.done
$(VECTORS)/.done:
	mkdir -p $(VECTORS)
	cd $(ROOT) && $(PYTHON) -m runtime.measure.tb_vectors $(NAME) $(VECTORS)
	touch $@

csim: vectors
	mkdir -p $(BUILD)/hls
	cd $(BUILD)/hls && PD_HLS_STEPS=csim $(VITIS_HLS) -f $(HLS_SRC)/run_hls.tcl -tclargs $(VECTORS)

hls: $(IP_REPO)/component.xml
$(IP_REPO)/component.xml: $(VECTORS)/.done $(wildcard $(HLS_SRC)/*.cpp $(HLS_SRC)/*.h $(ROOT)/hls_src/common/*) $(OVERLAY_DIR)/manifest.json
	mkdir -p $(BUILD)/hls
	cd $(BUILD)/hls && $(VITIS_HLS) -f $(HLS_SRC)/run_hls.tcl -tclargs $(VECTORS)

bitstream: $(OVERLAY_DIR)/$(NAME).bit
$(OVERLAY_DIR)/$(NAME).bit: $(IP_REPO)/component.xml $(OVERLAY_DIR)/block_design.tcl $(ROOT)/overlays/ultra96v2_bd.tcl
	mkdir -p $(BUILD)
	cd $(BUILD) && $(VIVADO) -mode batch -nojournal -log vivado.log \
	    -source $(OVERLAY_DIR)/block_design.tcl -tclargs $(IP_REPO) $(JOBS)
	$(MAKE) check

# the .hwh against the manifest (VLNV, address, range, clock, register map), as the runtime checks it on load
check:
	cd $(ROOT) && $(PYTHON) -c "from runtime.platform.overlay import check_hwh; check_hwh('$(OVERLAY_DIR)'); print('$(NAME).hwh matches manifest.json')"

clean-build:
	rm -rf $(BUILD)
