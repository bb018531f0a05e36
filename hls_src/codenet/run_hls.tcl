# Vitis HLS script for the CoDeNet engine IP (VLNV pynq-deploy.org:hls:codenet:1.0).
#
# NOT RUNNABLE IN THIS REPOSITORY'S CI: it needs a Vitis HLS installation (none here). The C
# simulation that CI does run is the same sources compiled by g++ (runtime/engines/csim.py,
# tests/test_codenet_hls_build.py).
#
# Usage (from this folder):  vitis_hls -f run_hls.tcl [-tclargs VECTORS_DIR]
#   VECTORS_DIR: golden vectors for the testbench (program.bin, weights.bin, arena_in.bin,
#   arena_out.bin, check.txt; FORMAT.md "Testbench vectors"). Without it csim_design is skipped.
# Output: codenet_prj/solution1/impl/ip/ (the IP catalog zip) for the Vivado block design.
# The weights / arena m_axi ports are explicitly 128 bits wide (ap_uint<128>, codenet_top.h), so no
# config_interface -m_axi_max_widen_bitwidth is needed; latency, burst lengths and outstanding
# requests are the INTERFACE pragmas of codenet_top.cpp, from codenet_config.h ("memory system").
#
# Compare the first run with the models (runtime/measure/codenet_cycles.py, codenet_perf.py):
#   codenet_prj/solution1/syn/report/codenet_top_csynth.rpt  II and depth of every loop (the model
#       assumes II = 1 and the DEPTH_* estimates of codenet_config.h), the "M_AXI Burst
#       Information" section (which loops were inferred as bursts, and their lengths), and the
#       DSP / BRAM / LUT estimates (codenet_perf.resources lists what it counts).

set vectors ""
if {[info exists ::argc] && $::argc > 0} { set vectors [file normalize [lindex $::argv 0]] }

open_project -reset codenet_prj
set_top codenet_top
add_files codenet_top.cpp -cflags "-std=c++14 -I. -I../common"
add_files -tb codenet_tb.cpp -cflags "-std=c++14 -I. -I../common"

open_solution -reset solution1 -flow_target vivado
set_part xczu3eg-sbva484-1-i
create_clock -period 4 -name default
config_interface -m_axi_addr64
config_export -format ip_catalog -vendor pynq-deploy.org -library hls -ipname codenet -version 1.0

if {$vectors ne ""} {
    csim_design -argv $vectors
}
csynth_design
export_design -format ip_catalog -vendor pynq-deploy.org -library hls -ipname codenet -version 1.0 \
    -description "CoDeNet engine: whole-network 1x1 / depthwise (deformable) 3x3 program walker"
exit
