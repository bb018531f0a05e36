# Values of an overlay manifest (overlays/<name>/manifest.json) for the build scripts. The manifest
# is the one home of the part, the PL clock, and the IP's instance name, VLNV, address and range;
# the Vitis HLS and Vivado scripts read them from it.
#
# Plain Tcl 8.5 (no JSON package is guaranteed in Vitis HLS / Vivado): a scalar key must occur
# exactly once in the file, which holds for the keys read here (one IP per overlay).
# tests/test_build_flow.py checks every value read here against Python's json.

proc pd_manifest_text {path} {
    if {![file isfile $path]} { error "overlay manifest not found: $path" }
    set f [open $path r]
    set text [read $f]
    close $f
    return $text
}

proc pd_manifest_value {path key} {
    set re [format {"%s"\s*:\s*("[^"]*"|[^,\s\}\]]+)} $key]
    set found [regexp -all -inline -- $re [pd_manifest_text $path]]
    set n [expr {[llength $found] / 2}]
    if {$n != 1} { error "$path: key \"$key\" occurs $n times, the build scripts need exactly one" }
    return [string trim [lindex $found 1] {"}]
}

# The instance name of the overlay's IP: the one key of "ips".
proc pd_manifest_ip_name {path} {
    if {![regexp -- {"ips"\s*:\s*\{\s*"([^"]+)"} [pd_manifest_text $path] -> name]} {
        error "$path: no IP under \"ips\""
    }
    return $name
}

# The PL clock period in ns (create_clock -period) from the manifest's clock_mhz.
proc pd_clock_period_ns {path} {
    return [expr {1000.0 / [pd_manifest_value $path clock_mhz]}]
}

# The four parts of the IP's VLNV (vendor library name version), as export_design takes them.
proc pd_vlnv_parts {path} {
    set parts [split [pd_manifest_value $path vlnv] :]
    if {[llength $parts] != 4} { error "$path: vlnv must be vendor:library:name:version" }
    return $parts
}
