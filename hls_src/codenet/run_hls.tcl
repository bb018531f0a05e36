# Vitis HLS build of the CoDeNet engine IP for the Ultra96-V2: C simulation, C synthesis, export.
#
# NOT RUN HERE: this checkout has no Vitis installation. The C simulation that CI does run is the
# same sources compiled by g++ (runtime/engines/csim.py, tests/test_codenet_hls_build.py). Written
# for Vitis HLS 2022.1 (the release the PYNQ 3.0 images are built with). tests/test_build_flow.py
# runs this script under tclsh with the Vitis commands recorded, and checks every name it uses
# against the HLS source and the manifest.
#
# usage: make -C overlays/codenet hls   (or, from any folder: vitis_hls -f run_hls.tcl [-tclargs VECTORS])
#   VECTORS: golden vectors for the testbench (program.bin, weights.bin, arena_in.bin,
#   arena_out.bin, check.txt; FORMAT.md "Testbench vectors"; written by
#   `python -m runtime.measure.tb_vectors codenet DIR`). Without them csim_design is skipped.
#   PD_HLS_STEPS: a subset of "csim csynth export" (default: all three).
# Part, clock and VLNV come from overlays/codenet/manifest.json.
# Output: codenet_prj/solution1/impl/ip/ (the IP catalog) for the Vivado block design.
# The weights / arena m_axi ports are explicitly 128 bits wide (ap_uint<128>, codenet_top.h), so no
# config_interface -m_axi_max_widen_bitwidth is needed; latency, burst lengths and outstanding
# requests are the INTERFACE pragmas of codenet_top.cpp, from codenet_config.h ("memory system").
#
# Compare the first run with the models (runtime/measure/codenet_cycles.py, codenet_perf.py):
#   codenet_prj/solution1/syn/report/codenet_top_csynth.rpt  II and depth of every loop (the model
#       assumes II = 1 and the DEPTH_* estimates of codenet_config.h), the "M_AXI Burst
#       Information" section (which loops were inferred as bursts, and their lengths), and the
#       DSP / BRAM / LUT estimates (codenet_perf.resources lists what it counts); also the
#       DATAFLOW messages of conv1x1_stream<true/false>, dw3x3_stream and load_conv_weights
#       (codenet_dataflow.h, codenet_engine.h): each layer's reader and writer share the one
#       `arena` m_axi port (read and write channels).
#   the per-layer profile (FORMAT.md "Profile region"): the schedule of codenet_top should show the
#       two reads of the ap_none `timestamp` port (sample_clock) at each layer's boundaries, not
#       hoisted or merged. The testbench (codenet_tb.cpp) runs with profile_off = 0: neither C
#       simulation here nor a co-simulation of it exercises the region (tests/test_codenet_profile.py
#       does, through codenet_csim_run_profiled).

set src_dir [file dirname [file normalize [info script]]]
source [file join $src_dir .. common pd_manifest.tcl]
set manifest [file normalize [file join $src_dir .. .. overlays codenet manifest.json]]
lassign [pd_vlnv_parts $manifest] vendor library ipname version

set vectors ""
if {[info exists ::argc] && $::argc > 0} { set vectors [file normalize [lindex $::argv 0]] }
if {[info exists ::env(PD_HLS_STEPS)]} {
    set steps $::env(PD_HLS_STEPS)
} else {
    set steps {csim csynth export}
}

open_project -reset codenet_prj
set_top codenet_top
add_files "$src_dir/codenet_top.cpp" -cflags "-std=c++14 -I$src_dir -I$src_dir/../common"
add_files -tb "$src_dir/codenet_tb.cpp" -cflags "-std=c++14 -I$src_dir -I$src_dir/../common"

open_solution -reset solution1 -flow_target vivado
set_part [pd_manifest_value $manifest part]
create_clock -period [pd_clock_period_ns $manifest] -name default
config_interface -m_axi_addr64
config_export -format ip_catalog -vendor $vendor -library $library -ipname $ipname -version $version

if {[lsearch $steps csim] >= 0} {
    if {$vectors ne ""} {
        csim_design -argv $vectors
    } else {
        puts "run_hls.tcl: no golden-vector directory given, skipping csim_design"
    }
}
if {[lsearch $steps csynth] >= 0} {
    csynth_design
}
if {[lsearch $steps export] >= 0} {
    export_design -format ip_catalog -vendor $vendor -library $library -ipname $ipname -version $version \
        -description "CoDeNet engine: whole-network 1x1 / depthwise (deformable) 3x3 program walker"
}
exit
