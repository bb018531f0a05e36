# Vivado block design + bitstream of the BNN overlay: `make -C overlays/bnn bitstream`, or
#   vivado -mode batch -source block_design.tcl -tclargs IP_REPO [JOBS]
# IP_REPO: the IP exported by hls_src/bnn/run_hls.tcl (bnn_prj/solution1/impl/ip).
# The three AXI masters are the m_axi bundles of bnn_top (hls_src/bnn/bnn_top.cpp).
set overlay_dir [file dirname [file normalize [info script]]]
source [file join $overlay_dir .. ultra96v2_bd.tcl]
pd_build_overlay $overlay_dir {gmem_params HP0 gmem_images HP1 gmem_scores HP2} {*}$argv
