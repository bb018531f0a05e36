# Runs a Vitis HLS or Vivado script under plain tclsh with every tool command recorded instead of
# run (tests/test_build_flow.py). The script's own Tcl (procs, expr, dict, source, file paths) runs
# for real; the tool's commands land in `unknown`, which records them and answers the few queries
# the scripts branch on as a successful build would.
#   tclsh tcl_recorder.tcl SCRIPT [ARGS...]   ->  one line per command, words separated by \x1f
set ::pd_calls {}

proc unknown {args} {
    lappend ::pd_calls $args
    switch -- [lindex $args 0] {
        version { return 2022.1 }
        get_board_parts { return avnet.com:ultra96v2:part0:1.2 }
        make_wrapper { return /recorded/hdl/wrapper.v }
        get_files {
            if {[string match "*hwh*" $args]} { return /recorded/hw_handoff/design.hwh }
            return /recorded/[lindex $args end]
        }
        get_property {
            switch -- [lindex $args 1] {
                STATUS { return "write_bitstream Complete!" }
                STATS.WNS { return 0.125 }
                STATS.WHS { return 0.010 }
                DIRECTORY { return /recorded/impl_1 }
            }
        }
    }
    return ""
}

# file operations that would touch the disk are recorded; path arithmetic runs for real
rename file __pd_file
proc file {sub args} {
    if {$sub in {copy rename mkdir delete}} {
        lappend ::pd_calls [list file $sub {*}$args]
        return ""
    }
    return [__pd_file $sub {*}$args]
}

proc pd_dump {} {
    foreach c $::pd_calls { puts [join $c "\x1f"] }
    flush stdout
}
rename exit __pd_exit
proc exit {args} { pd_dump; __pd_exit 0 }

set script [__pd_file normalize [lindex $argv 0]]
set argv [lrange $argv 1 end]
set argc [llength $argv]
source $script
exit
