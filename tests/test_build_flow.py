"""The bitstream build flow, checked without Vitis HLS or Vivado: the Tcl scripts run under tclsh
with the tools' commands recorded (tests/tcl_recorder.tcl), and every name they hand the tools (top
function, m_axi / s_axilite bundles, VLNV, part, clock period, instance name, address map, output
files) is compared with the HLS sources, the manifests and the drivers. A rename on one side
breaks this test, not a board build."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from runtime.drivers.bnn import BnnDriver
from runtime.drivers.codenet import CodenetDriver
from runtime.errors import OverlayError
from runtime.platform import overlay as overlay_mod
from runtime.platform.manifest import load_manifest, resolve_overlay_dir

ROOT = Path(__file__).resolve().parents[1]
RECORDER = ROOT / "tests" / "tcl_recorder.tcl"
OVERLAYS = {"bnn": BnnDriver, "codenet": CodenetDriver}


def tclsh():
    path = shutil.which("tclsh")
    assert path, "tclsh missing: `apt-get install tcl` (.ci/run installs it)"
    return path


def record(script, *args):
    """Run a build script under tclsh; -> the list of tool commands it issued (lists of words)."""
    r = subprocess.run([tclsh(), str(RECORDER), str(script)] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [line.split("\x1f") for line in r.stdout.splitlines() if "\x1f" in line or line.isidentifier()]


def calls(recorded, name):
    return [c for c in recorded if c[0] == name]


def option(call, flag):
    return call[call.index(flag) + 1]


class HlsSource:
    """What the HLS C++ says: the top function and its interface bundles."""

    def __init__(self, engine):
        self.text = (ROOT / "hls_src" / engine / "{}_top.cpp".format(engine)).read_text()
        ret = self.text.index("s_axilite port = return")
        self.top = re.findall(r"^void\s+(\w+)\s*\(", self.text[:ret], re.M)[-1]
        self.m_axi = dict(re.findall(r"INTERFACE m_axi port = (\w+) .*?bundle = (\w+)", self.text))
        self.control = re.search(r"s_axilite port = return bundle = (\w+)", self.text).group(1)
        header = (ROOT / "hls_src" / engine / "{}_config.h".format(engine)).read_text()
        self.clock_mhz = int(re.search(r"constexpr int CLOCK_MHZ = (\d+);", header).group(1))


@pytest.fixture(params=sorted(OVERLAYS))
def overlay(request):
    name = request.param
    manifest = load_manifest(resolve_overlay_dir(name))
    (ip_name, ip), = manifest.ips.items()
    return name, manifest, ip_name, ip


def test_hls_script_names_match_the_source_and_manifest(overlay, tmp_path):
    name, manifest, ip_name, ip = overlay
    src = HlsSource(name)
    rec = record(ROOT / "hls_src" / name / "run_hls.tcl", tmp_path / "vectors")
    assert [c[1] for c in calls(rec, "set_top")] == [src.top] == ["{}_top".format(name)]
    for add in calls(rec, "add_files"):
        assert Path(add[2] if add[1] == "-tb" else add[1]).is_file(), add
    assert [c[1] for c in calls(rec, "set_part")] == [manifest.data["part"]] == ["xczu3eg-sbva484-1-i"]
    (clock,) = calls(rec, "create_clock")
    assert float(option(clock, "-period")) == pytest.approx(1000.0 / manifest.clock_mhz)
    assert manifest.clock_mhz == src.clock_mhz          # the engine's header is built for that clock
    for step in ("config_export", "export_design"):
        (c,) = calls(rec, step)
        vlnv = ":".join(option(c, f) for f in ("-vendor", "-library", "-ipname", "-version"))
        assert vlnv == ip["vlnv"] and [vlnv] == OVERLAYS[name].bindto
        assert option(c, "-format") == "ip_catalog"
    assert [c[1:] for c in calls(rec, "csim_design")] == [["-argv", str(tmp_path / "vectors")]]
    assert calls(rec, "csynth_design")


def test_block_design_names_match_the_source_and_manifest(overlay):
    name, manifest, ip_name, ip = overlay
    src = HlsSource(name)
    rec = record(manifest.dir / "block_design.tcl", "/ip/repo")
    (project,) = calls(rec, "create_project")
    assert option(project, "-part") == manifest.data["part"]
    assert ["set_property", "ip_repo_paths", "/ip/repo", ""] in rec
    cells = {c[-1]: option(c, "-vlnv") for c in calls(rec, "create_bd_cell")}
    assert cells[ip_name] == ip["vlnv"]
    (ps_name,) = [k for k, v in cells.items() if v.startswith("xilinx.com:ip:zynq_ultra_ps_e")]
    config = dict(zip(*[iter(next(c[2] for c in calls(rec, "set_property") if c[1] == "-dict").split())] * 2))
    assert float(config["CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"]) == manifest.clock_mhz
    # every AXI master of the HLS top is connected, each to its own enabled 128-bit HP port, and
    # the control bundle to the PS's FPD master
    links = {}
    for c in calls(rec, "apply_bd_automation"):
        if "xilinx.com:bd_rule:axi4" in c:
            cfg = dict(zip(*[iter(option(c, "-config").split())] * 2))
            links[cfg["Master"]] = cfg["Slave"]
    assert links.pop("/{}/M_AXI_HPM0_FPD".format(ps_name)) == "/{}/s_axi_{}".format(ip_name, src.control)
    assert set(links) == {"/{}/m_axi_{}".format(ip_name, b) for b in src.m_axi.values()}
    hp_ports = [re.fullmatch(r"/{}/S_AXI_HP(\d)_FPD".format(ps_name), s).group(1) for s in links.values()]
    assert len(set(hp_ports)) == len(hp_ports)
    for hp in hp_ports:
        gp = int(hp) + 2
        assert config["CONFIG.PSU__USE__S_AXI_GP{}".format(gp)] == "1"
        assert config["CONFIG.PSU__SAXIGP{}__DATA_WIDTH".format(gp)] == "128"
    # the registers where the manifest (and so the runtime) expects them
    (addr,) = [c for c in calls(rec, "assign_bd_address") if "-offset" in c]
    assert int(option(addr, "-offset"), 0) == ip["phys_addr"]
    assert option(addr, "-range") == "{}K".format(ip["addr_range"] // 1024)
    assert ["get_bd_addr_segs", "{}/s_axi_{}/Reg".format(ip_name, src.control)] in rec
    # <name>.bit and <name>.hwh land where the runtime looks, through a temporary name
    renames = [c[3:] for c in calls(rec, "file") if c[1] == "rename"]
    assert sorted(map(tuple, renames)) == sorted([(str(p) + ".tmp", str(p)) for p in
                                                  (manifest.bitstream_path, manifest.hwh_path)])


def test_block_design_drives_every_ap_none_input_with_a_free_running_counter(overlay):
    """The HLS top's ap_none inputs (codenet: the profile clock `timestamp`, FORMAT.md "Profile
    region") are each driven by a Binary Counter of the input's width on the engine's clock."""
    name, manifest, ip_name, ip = overlay
    src = HlsSource(name)
    ports = re.findall(r"INTERFACE mode = ap_none port = (\w+)", src.text)
    rec = record(manifest.dir / "block_design.tcl", "/ip/repo")
    counters = [c[-1] for c in calls(rec, "create_bd_cell") if "xilinx.com:ip:c_counter_binary" in c]
    assert len(counters) == len(ports) == (1 if name == "codenet" else 0)
    for port, cell in zip(ports, counters):
        width = re.search(r"volatile ap_uint<(\d+)> \*{}\b".format(port), src.text).group(1)
        i = rec.index(["get_bd_cells", cell])
        assert rec[i + 1][:3] == ["set_property", "-dict", "CONFIG.Output_Width {}".format(width)]
        clk = rec.index(["get_bd_pins", "{}/CLK".format(cell)])
        assert rec[clk - 1] == ["get_bd_pins", "/zynq_ultra_ps_e_0/pl_clk0"]
        q = rec.index(["get_bd_pins", "{}/Q".format(cell)])
        assert rec[q + 1] == ["get_bd_pins", "{}/{}".format(ip_name, port)] and rec[q + 2][0] == "connect_bd_net"


def _make_n(overlay_dir, target):
    r = subprocess.run(["make", "-n", "-C", str(overlay_dir), target], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return re.sub(r"\\\n\s*", " ", r.stdout)          # one line per command


def test_make_targets_run_the_scripts_in_order(overlay):
    name, manifest, ip_name, ip = overlay
    out = _make_n(manifest.dir, "bitstream")
    hls_cmd = next(line for line in out.splitlines() if "vitis_hls" in line)
    vivado_cmd = next(line for line in out.splitlines() if "vivado" in line and "-source" in line)
    assert out.index("runtime.measure.tb_vectors {}".format(name)) < out.index(hls_cmd) < out.index(vivado_cmd)
    hls_dir, script = re.search(r"cd (\S+) && vitis_hls -f (\S+)", hls_cmd).groups()
    assert Path(script) == ROOT / "hls_src" / name / "run_hls.tcl"
    assert re.search(r"-source (\S+)", out).group(1) == str(manifest.dir / "block_design.tcl")
    # the IP repository Vivado is given is where run_hls.tcl exports (its project / solution names)
    rec = record(script)
    project = calls(rec, "open_project")[0][-1]
    solution = calls(rec, "open_solution")[0][2]
    ip_repo = re.search(r"-tclargs (\S+)", vivado_cmd).group(1)
    assert Path(ip_repo) == Path(hls_dir) / project / solution / "impl" / "ip"
    for target in ("vectors", "csim", "hls", "check", "clean-build"):
        _make_n(manifest.dir, target)


def test_missing_bitstream_message_names_a_make_target_that_exists(overlay, monkeypatch):
    name, manifest, ip_name, ip = overlay
    monkeypatch.delenv("PYNQ_DEPLOY_PL", raising=False)
    monkeypatch.setattr(overlay_mod, "board_devices", lambda: ["fake-ultra96"])
    with pytest.raises(OverlayError) as e:
        overlay_mod.choose_pl(manifest, "auto")
    make_dir, target = re.search(r"`make -C (\S+) (\S+)`", str(e.value)).groups()
    assert Path(make_dir) == manifest.dir
    assert "block_design.tcl" in _make_n(make_dir, target)


def test_manifest_reader_agrees_with_json_and_refuses_ambiguity(tmp_path):
    helper = ROOT / "hls_src" / "common" / "pd_manifest.tcl"
    for name in OVERLAYS:
        path = ROOT / "overlays" / name / "manifest.json"
        data = json.loads(path.read_text())
        (ip_name, ip), = data["ips"].items()
        script = tmp_path / "read.tcl"
        script.write_text("source {}\nforeach k {{name part clock_mhz vlnv phys_addr addr_range}} {{\n"
                          "  puts [pd_manifest_value {} $k]\n}}\nputs [pd_manifest_ip_name {}]\n"
                          "puts [pd_clock_period_ns {}]\n".format(helper, path, path, path))
        out = subprocess.run([tclsh(), str(script)], capture_output=True, text=True, check=True).stdout.split()
        assert out == [data["name"], data["part"], str(data["clock_mhz"]), ip["vlnv"], ip["phys_addr"],
                       str(ip["addr_range"]), ip_name, str(1000.0 / data["clock_mhz"])]
    twice = tmp_path / "manifest.json"
    twice.write_text('{"ips": {"a_0": {"vlnv": "x:y:a:1.0"}, "b_0": {"vlnv": "x:y:b:1.0"}}}')
    script = tmp_path / "bad.tcl"
    script.write_text("source {}\npd_manifest_value {} vlnv\n".format(helper, twice))
    r = subprocess.run([tclsh(), str(script)], capture_output=True, text=True)
    assert r.returncode != 0 and 'key "vlnv" occurs 2 times' in r.stderr


def test_testbench_vectors_pass_the_bnn_testbench(tmp_path):
    """`make vectors` output is what the C testbench (the csim step) accepts: real images, the
    shipped model, scores from the numpy engine; the g++ build of bnn_tb.cpp passes on them."""
    from runtime.engines import csim
    from runtime.measure.tb_vectors import write_bnn_vectors
    info = write_bnn_vectors(tmp_path)
    assert info["images"] == 4
    r = subprocess.run([str(csim.compile_testbench("bnn")), str(tmp_path)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr
    scores = tmp_path / "scores.bin"
    data = bytearray(scores.read_bytes())
    data[0] ^= 1                                          # a wrong expectation must fail
    scores.write_bytes(bytes(data))
    r = subprocess.run([str(csim.compile_testbench("bnn")), str(tmp_path)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode != 0


def test_testbench_vectors_pass_the_codenet_testbench(tmp_path):
    """The codenet vectors: the whole test network on a real frame, the arena the numpy model left;
    the g++ build of codenet_tb.cpp runs the HLS top once on them and passes."""
    from runtime.engines import csim
    from runtime.measure.tb_vectors import write_codenet_vectors
    info = write_codenet_vectors(tmp_path)
    assert info["layers"] > 50 and (tmp_path / "check.txt").read_text().count("\n") >= 4
    r = subprocess.run([str(csim.compile_testbench("codenet")), str(tmp_path)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr
