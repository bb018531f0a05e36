# Vivado block design and bitstream of one pynq-deploy overlay on the Avnet Ultra96-V2
# (Zynq UltraScale+ xczu3eg-sbva484-1-i). Sourced by overlays/<name>/block_design.tcl, which names
# the engine's AXI masters and the PS HP port each one uses.
#
# NOT RUN HERE: no Vivado on the machines this project is developed on. Written for Vivado 2022.1
# (the release the PYNQ 3.0 images are built with) with Avnet's Ultra96-V2 board files installed
# (https://github.com/Avnet/bdf: copy ultra96v2 into <Vivado>/data/boards/board_files, or
# set_param board.repoPaths). tests/test_build_flow.py runs it under tclsh with the Vivado commands
# recorded, and checks every name against the HLS sources and the manifest.
#
# What it builds:
#   - the Zynq UltraScale+ PS with the Ultra96-V2 board preset (DDR, MIO, clocks), PL clock 0 at the
#     manifest's clock_mhz, M_AXI_HPM0_FPD for the AXI-Lite control registers, and one 128-bit
#     S_AXI_HPn_FPD port per engine master;
#   - the HLS IP (exported by hls_src/<name>/run_hls.tcl) as the instance the manifest names;
#   - its s_axi_control at the manifest's phys_addr / addr_range (0xA000_0000.. is the HPM0_FPD
#     window), its m_axi ports seeing all of DDR through their HP ports;
#   - synthesis, implementation (timing checked), and <name>.bit + <name>.hwh copied into the
#     overlay folder, next to manifest.json, where the runtime and PYNQ look for them.

set PD_TESTED_VIVADO 2022.1
set PD_BOARD_PART avnet.com:ultra96v2:part0:1.2
# S_AXI_HPn_FPD is the PS's S_AXI_GP(n+2) in the PSU__ configuration names
set PD_HP_GP {HP0 2 HP1 3 HP2 4 HP3 5}
set PD_PS zynq_ultra_ps_e_0

source [file join [file dirname [file normalize [info script]]] .. hls_src common pd_manifest.tcl]

# overlay_dir: overlays/<name>; masters: {m_axi bundle  HP port ...}; ip_repo: the exported HLS IP.
proc pd_build_overlay {overlay_dir masters ip_repo {jobs 4}} {
    global PD_TESTED_VIVADO PD_BOARD_PART PD_HP_GP PD_PS
    set manifest [file join $overlay_dir manifest.json]
    set name [pd_manifest_value $manifest name]
    set part [pd_manifest_value $manifest part]
    set clock_mhz [pd_manifest_value $manifest clock_mhz]
    set ip [pd_manifest_ip_name $manifest]
    set vlnv [pd_manifest_value $manifest vlnv]
    set phys_addr [pd_manifest_value $manifest phys_addr]
    set addr_range [pd_manifest_value $manifest addr_range]
    set build [file join $overlay_dir build vivado]

    if {![string match "${PD_TESTED_VIVADO}*" [version -short]]} {
        puts "WARNING: this flow was written for Vivado $PD_TESTED_VIVADO, this is [version -short]"
    }
    file mkdir $build
    create_project -force $name $build -part $part
    if {[llength [get_board_parts -quiet $PD_BOARD_PART]] == 0} {
        error "board part $PD_BOARD_PART not installed: add Avnet's Ultra96-V2 board files"
    }
    set_property board_part $PD_BOARD_PART [current_project]
    set_property ip_repo_paths [list $ip_repo] [current_project]
    update_ip_catalog

    create_bd_design $name
    set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:zynq_ultra_ps_e $PD_PS]
    apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {apply_board_preset "1"} $ps
    set config [list CONFIG.PSU__FPGA_PL0_ENABLE 1 \
                     CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ $clock_mhz \
                     CONFIG.PSU__USE__M_AXI_GP0 1 CONFIG.PSU__USE__M_AXI_GP1 0 CONFIG.PSU__USE__M_AXI_GP2 0]
    foreach {bundle hp} $masters {
        set gp [dict get $PD_HP_GP $hp]
        lappend config CONFIG.PSU__USE__S_AXI_GP$gp 1 CONFIG.PSU__SAXIGP${gp}__DATA_WIDTH 128
    }
    set_property -dict $config $ps

    create_bd_cell -type ip -vlnv $vlnv $ip
    set clk /$PD_PS/pl_clk0
    # AXI-Lite control: PS master HPM0_FPD -> the IP's s_axi_control (interconnect, clocks, resets)
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
        -config [list Clk_master $clk Clk_slave $clk Clk_xbar $clk \
                      Master /$PD_PS/M_AXI_HPM0_FPD Slave /$ip/s_axi_control intc_ip Auto master_apm 0] \
        [get_bd_intf_pins $ip/s_axi_control]
    # each engine master on its own HP port, so the streams do not share a port
    foreach {bundle hp} $masters {
        apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
            -config [list Clk_master $clk Clk_slave $clk Clk_xbar $clk \
                          Master /$ip/m_axi_$bundle Slave /$PD_PS/S_AXI_${hp}_FPD intc_ip Auto master_apm 0] \
            [get_bd_intf_pins $PD_PS/S_AXI_${hp}_FPD]
    }
    # free-running cycle counters: each ap_none input of the IP named in PD_TIMESTAMP_PORTS (set by
    # the overlay's block_design.tcl) is driven by a 64-bit Binary Counter (LogiCORE c_counter_binary,
    # PG121) on the engine's clock, counting every cycle from the bitstream load (no CE, no reset:
    # the engine only takes differences; 2^64 cycles at 250 MHz do not wrap in 2,000 years)
    if {[info exists ::PD_TIMESTAMP_PORTS]} {
        foreach port $::PD_TIMESTAMP_PORTS {
            set counter ${ip}_${port}_counter
            create_bd_cell -type ip -vlnv xilinx.com:ip:c_counter_binary $counter
            set_property -dict [list CONFIG.Output_Width 64] [get_bd_cells $counter]
            connect_bd_net [get_bd_pins $clk] [get_bd_pins $counter/CLK]
            connect_bd_net [get_bd_pins $counter/Q] [get_bd_pins $ip/$port]
        }
    }
    # address map: the registers where the manifest (and so the runtime) expects them
    assign_bd_address -offset $phys_addr -range [expr {$addr_range / 1024}]K \
        -target_address_space [get_bd_addr_spaces $PD_PS/Data] [get_bd_addr_segs $ip/s_axi_control/Reg] -force
    assign_bd_address
    validate_bd_design
    save_bd_design

    set bd_file [get_files $name.bd]
    generate_target all $bd_file
    add_files -norecurse [make_wrapper -files $bd_file -top]
    set_property top ${name}_wrapper [current_fileset]
    launch_runs impl_1 -to_step write_bitstream -jobs $jobs
    wait_on_run impl_1
    set run [get_runs impl_1]
    if {![string match "*write_bitstream Complete*" [get_property STATUS $run]]} {
        error "implementation of $name failed: [get_property STATUS $run] (see $build)"
    }
    set wns [get_property STATS.WNS $run]
    set whs [get_property STATS.WHS $run]
    if {$wns < 0 || $whs < 0} {
        error "$name misses timing at $clock_mhz MHz (WNS $wns ns, WHS $whs ns): lower clock_mhz in\
               $manifest and CLOCK_MHZ in the engine's config header, and rebuild from `make hls`"
    }
    set bit [file join [get_property DIRECTORY $run] ${name}_wrapper.bit]
    set hwh [lindex [get_files -all -quiet */hw_handoff/$name.hwh] 0]
    if {$hwh eq ""} { error "no hardware handoff ($name.hwh) generated for $bd_file" }
    # copy next to the manifest under temporary names, then rename: never half a bitstream there
    foreach {src dst} [list $bit [file join $overlay_dir $name.bit] $hwh [file join $overlay_dir $name.hwh]] {
        file copy -force $src $dst.tmp
    }
    foreach dst [list [file join $overlay_dir $name.bit] [file join $overlay_dir $name.hwh]] {
        file rename -force $dst.tmp $dst
    }
    puts "pd_build_overlay: wrote [file join $overlay_dir $name.bit] and $name.hwh (WNS $wns ns at $clock_mhz MHz)"
}
