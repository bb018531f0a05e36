# Vitis HLS build of the BNN IP for the Ultra96-V2: C simulation, C synthesis, export as IP.
#
# NOT RUN HERE: this checkout has no Vitis installation; the kernel is checked by C simulation
# with g++ (tests/test_bnn_hls_layers.py) instead. Written for Vitis HLS 2022.1 (the release the
# PYNQ 3.0 images are built with). tests/test_build_flow.py runs this script under tclsh with the
# Vitis commands recorded, and checks every name it uses against the HLS source and the manifest.
#
# usage: make -C overlays/bnn hls   (or, from any folder: vitis_hls -f run_hls.tcl [-tclargs VECTORS])
#   VECTORS: golden vectors params.bin / images.bin / scores.bin from the numpy engine model
#   (`python -m runtime.measure.tb_vectors bnn DIR`, see bnn_tb.cpp); without them csim is skipped.
#   PD_HLS_STEPS: a subset of "csim csynth cosim export" (default: csim csynth export).
# Part, clock and VLNV come from overlays/bnn/manifest.json.

set src_dir [file dirname [file normalize [info script]]]
source [file join $src_dir .. common pd_manifest.tcl]
set manifest [file normalize [file join $src_dir .. .. overlays bnn manifest.json]]
lassign [pd_vlnv_parts $manifest] vendor library ipname version

set golden_dir ""
if {[llength $argv] > 0} {
    set golden_dir [file normalize [lindex $argv 0]]
}
if {[info exists ::env(PD_HLS_STEPS)]} {
    set steps $::env(PD_HLS_STEPS)
} else {
    set steps {csim csynth export}
}

open_project -reset bnn_prj
set_top bnn_top
add_files "$src_dir/bnn_top.cpp" -cflags "-std=c++14 -I$src_dir -I$src_dir/../common"
add_files -tb "$src_dir/bnn_tb.cpp" -cflags "-std=c++14 -I$src_dir -I$src_dir/../common -Wno-unknown-pragmas"

open_solution -reset "solution1" -flow_target vivado
set_part [pd_manifest_value $manifest part]
create_clock -period [pd_clock_period_ns $manifest] -name default
config_interface -m_axi_addr64
config_export -format ip_catalog -vendor $vendor -library $library -ipname $ipname -version $version \
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
    export_design -format ip_catalog -vendor $vendor -library $library -ipname $ipname -version $version
}
exit
