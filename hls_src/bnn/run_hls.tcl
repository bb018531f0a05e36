# Vitis HLS build of the BNN IP (VLNV pynq-deploy.org:hls:bnn:1.0) for the Ultra96-V2.
#
# NOT RUN HERE: this checkout has no Vitis installation; the kernel is checked by C simulation
# with g++ (tests/test_bnn_hls_layers.py) instead. Written for Vitis HLS 2022.x / 2023.x.
#
# usage (from this folder):  vitis_hls -f run_hls.tcl [-tclargs <golden-vector dir>]
#   golden vectors: params.bin / images.bin / scores.bin written by the numpy engine model
#   (see bnn_tb.cpp); without them csim is skipped.
#   Set BNN_STEPS to a subset of "csim csynth cosim export" (default: csim csynth export).

set src_dir [file dirname [file normalize [info script]]]
set golden_dir ""
if {[llength $argv] > 0} {
    set golden_dir [file normalize [lindex $argv 0]]
}
if {[info exists ::env(BNN_STEPS)]} {
    set steps $::env(BNN_STEPS)
} else {
    set steps {csim csynth export}
}

open_project -reset bnn_prj
set_top bnn_top
add_files "$src_dir/bnn_top.cpp" -cflags "-std=c++14 -I$src_dir -I$src_dir/../common"
add_files -tb "$src_dir/bnn_tb.cpp" -cflags "-std=c++14 -I$src_dir -I$src_dir/../common -Wno-unknown-pragmas"

open_solution -reset "solution1" -flow_target vivado
set_part {xczu3eg-sbva484-1-i}
create_clock -period 4 -name default
config_interface -m_axi_addr64
config_export -format ip_catalog -vendor "pynq-deploy.org" -library "hls" -ipname "bnn" -version "1.0" \
    -description "Multiplier-free binarized CNN classifier (pynq-deploy)"

if {[lsearch $steps csim] >= 0} {
    if {$golden_dir ne ""} {
        csim_design -argv "$golden_dir"
    } else {
        puts "run_hls.tcl: no golden-vector directory given, skipping csim_design"
    }
}
if {[lsearch $steps csynth] >= 0} {
    csynth_design
}
if {[lsearch $steps cosim] >= 0 && $golden_dir ne ""} {
    # the m_axi depth hints in bnn_top.cpp size the co-simulation buffers for COSIM_IMAGES images
    cosim_design -argv "$golden_dir" -trace_level none
}
if {[lsearch $steps export] >= 0} {
    export_design -format ip_catalog -vendor "pynq-deploy.org" -library "hls" -ipname "bnn" -version "1.0"
}
exit
