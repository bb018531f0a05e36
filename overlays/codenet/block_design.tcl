# Vivado block design + bitstream of the CoDeNet overlay: `make -C overlays/codenet bitstream`, or
#   vivado -mode batch -source block_design.tcl -tclargs IP_REPO [JOBS]
# IP_REPO: the IP exported by hls_src/codenet/run_hls.tcl (codenet_prj/solution1/impl/ip).
# The four AXI masters are the m_axi bundles of codenet_top (hls_src/codenet/codenet_top.cpp);
# the weights, the arena's reads and the arena's writes each get an HP port of their own.
# `timestamp` (an ap_none input of codenet_top) is the engine's per-layer profile clock
# (hls_src/codenet/FORMAT.md "Profile region"): a free-running counter drives it.
set PD_TIMESTAMP_PORTS {timestamp}
set overlay_dir [file dirname [file normalize [info script]]]
source [file join $overlay_dir .. ultra96v2_bd.tcl]
pd_build_overlay $overlay_dir {gmem_prog HP0 gmem_weights HP1 gmem_arena HP2 gmem_arena_wr HP3} {*}$argv
