"""Pragma hygiene of the HLS sources (what Vitis HLS is told must come from the headers' named
constants), the m_axi settings the cycle models charge, and the BNN's stream depths."""
import re
from pathlib import Path

import pytest

from runtime.engines import bnn_config as bcfg
from runtime.engines import codenet_config as ccfg
from runtime.measure import bnn_dataflow

HLS = Path(__file__).resolve().parents[1] / "hls_src"
SOURCES = sorted(HLS.glob("*/*.h")) + sorted(HLS.glob("*/*.cpp"))
# pragma options whose value sizes hardware or a schedule: a named constant (or an expression of
# them), never a bare number. `dim` (an array dimension index), `min` and `II = 1` may be literal.
NAMED = ("max", "depth", "latency", "num_read_outstanding", "num_write_outstanding",
         "max_read_burst_length", "max_write_burst_length", "factor", "limit")
OPTION = re.compile(r"\b(\w+)\s*=\s*([^=]+?)(?=\s+\w+\s*=|$)")


def pragmas():
    for path in SOURCES:
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip().startswith("#pragma HLS"):
                yield "{}:{}".format(path.relative_to(HLS), no), line.strip()


def test_pragma_values_are_named_constants():
    bad = []
    for where, line in pragmas():
        for key, value in OPTION.findall(line):
            if key in NAMED and re.fullmatch(r"[\d\s*+/()-]+", value.strip()):
                bad.append("{}: {} = {}".format(where, key, value.strip()))
    assert not bad, "bare numbers in pragmas:\n" + "\n".join(bad)


def test_every_m_axi_port_sets_latency_outstanding_and_bursts():
    ports = [(w, ln) for w, ln in pragmas() if "INTERFACE m_axi" in ln]
    assert len(ports) == 7                                   # codenet 4 (the arena read and write ports), bnn 3
    for where, line in ports:
        for key in ("latency", "num_read_outstanding", "num_write_outstanding",
                    "max_read_burst_length", "max_write_burst_length"):
            assert re.search(r"\b{}\s*=".format(key), line), "{}: no {}".format(where, key)
        assert "latency = AXI_LATENCY" in line, where


def test_both_engines_use_the_same_memory_system_figures():
    for name in ("AXI_LATENCY", "AXI_OUTSTANDING", "AXI_MAX_BURST", "AXI_UNUSED_OUTSTANDING", "AXI_UNUSED_BURST"):
        assert getattr(bcfg, name) == getattr(ccfg, name), name
    assert ccfg.check_header_agrees()["AXI_MAX_BURST"] == ccfg.AXI_MAX_BURST == 16


def test_bnn_stream_depths_are_the_header_constants():
    header = bcfg.check_header_agrees(HLS / "bnn" / "bnn_config.h")
    depth = {}
    for where, line in pragmas():
        m = re.match(r"#pragma HLS STREAM variable = (\w+) depth = (\w+)$", line)
        if m and where.startswith("bnn"):
            depth[m.group(1)] = header[m.group(2)]
    assert depth == bcfg.FIFO_DEPTHS
    assert set(depth) == set(bnn_dataflow.STREAMS) == set(bcfg.FIFO_WIDTHS)


def test_bnn_dataflow_with_its_fifos_runs_at_the_slowest_stage():
    """With depth-2 FIFOs the simulation gives the review's 26,796 cycles per image (9,330 images/s
    at 250 MHz); with the depths of bnn_top.cpp, the slowest stage (conv1, 21,412)."""
    assert bnn_dataflow.interval(bnn_dataflow.uniform_depths(2)) == 26796
    slowest = max(bcfg.modelled_layer_cycles().values())
    assert bnn_dataflow.interval(bcfg.FIFO_DEPTHS) == slowest == 21412
    # one image of items into conv1 is what it takes: depth 2 there brings the stall back
    assert bnn_dataflow.interval(dict(bcfg.FIFO_DEPTHS, s_c0=2)) > slowest


def test_bnn_dataflow_finishes_every_image_in_order():
    fin = bnn_dataflow.simulate(bcfg.FIFO_DEPTHS, images=4)
    assert all(len(v) == 4 and v == sorted(v) for v in fin.values())
    order = list(bnn_dataflow.image_programs())
    for a, b in zip(order, order[1:]):
        assert fin[a][0] <= fin[b][0], (a, b)          # a consumer finishes an image after its producer


def test_bnn_modelled_rate_includes_the_fifos():
    from runtime.engines.bnn_config import CLOCK_MHZ
    from runtime.measure.bnn_perf import modelled
    from runtime.platform.zu3eg import BRAM36, LUT, LUT_TARGET_FRACTION
    m = modelled()
    assert m["images_per_s"] == pytest.approx(CLOCK_MHZ * 1e6 / 21412) and m["images_per_s"] >= 10000
    assert m["images_per_s_with_depth_2_fifos"] == pytest.approx(CLOCK_MHZ * 1e6 / 26796)
    assert sum(f["bram36"] for f in m["fifo_resources"].values()) > 0
    assert m["bram36"] <= BRAM36 and m["lut"] <= LUT_TARGET_FRACTION * LUT


def test_codenet_resource_model_follows_the_code():
    """What runtime/measure/codenet_perf.resources assumes is what the code says: packed 1x1 MACs
    on DSPs summed in DSP cascades (no LUT adder tree: one add per cascade and lane) in a 4-bit and
    an 8-bit datapath, DW_DSP_TAPS depthwise taps on a DSP cascade and the rest on LUT multipliers,
    one requantization stage with its product on a DSP, every layer a DATAFLOW region, and the
    arrays partitioned as listed."""
    from runtime.engines import codenet_config as cfg
    from runtime.measure.codenet_perf import ZU3EG, on_chip_memories, resources
    from runtime.platform.zu3eg import LUT_TARGET_FRACTION
    engine = (HLS / "codenet" / "codenet_engine.h").read_text()
    flow = (HLS / "codenet" / "codenet_dataflow.h").read_text()
    top = (HLS / "codenet" / "codenet_top.cpp").read_text()
    assert "#pragma HLS BIND_OP variable = m op = mul impl = dsp" in engine            # mac_chain
    assert "p = p + pack_acc_t(m);" in engine                  # a chain (PCIN + A x B), not a tree
    assert "#pragma HLS BIND_OP variable = p op = add impl = dsp" in engine          # in the post-adders
    assert "#pragma HLS BIND_OP variable = cas op = add impl = dsp" in flow
    assert "mul2(" not in engine + flow                        # no per-DSP separation left
    assert "#pragma HLS BIND_OP variable = prod op = mul impl = fabric" in flow        # depthwise LUT taps
    assert "#pragma HLS BIND_OP variable = dprod op = mul impl = dsp" in flow          # depthwise DSP taps
    assert "for (int t = DW_DSP_TAPS; t < TAPS; t++)" in flow and "for (int t = 0; t < DW_DSP_TAPS; t++)" in flow
    assert "cas = cas + pack_acc_t(dprod);" in flow
    assert "#pragma HLS BIND_OP variable = t op = mul impl = dsp" in engine            # requant
    assert "instances = codenet::requant_tile limit = REQUANT_STAGES" in top
    assert flow.count("requant_tile(") == 2                    # the 1x1 MAC (both datapaths) and dw
    # the 1x1 products only in mac_chain, one accumulate add per cascade and lane
    assert "mac_chain<CHAIN>(" in flow and flow.count(" * x[j]") == 0
    assert flow.count("s_lo += cp.lo;") == 1 and flow.count("s_hi += cp.hi;") == 1
    assert "for (int ch = 0; ch < PER / CHAIN; ch++)" in flow
    assert "conv1x1_stream<true>" in top and "conv1x1_stream<false>" in top
    assert flow.count("#pragma HLS DATAFLOW") == 2 and "conv1x1(" not in top and "dw3x3(" not in top
    assert "typedef lrow_t line_buf_t[LINE_ROWS][LB_COPIES][MAX_W];" in engine
    assert "variable = lbank complete dim = 1" in top and "variable = lbank complete dim = 2" in top
    r = resources()
    dsp = r["detail"]["dsp"]
    assert dsp["1x1 MAC, 4-bit datapath: PA x PE products, two per DSP48E2 (mac_chain, BIND_OP dsp)"] == 128
    assert dsp["1x1 MAC, 8-bit datapath: PA/2 x PE products, two per DSP48E2 (mac_chain)"] == 64
    dw_key = "depthwise: DW_DSP_TAPS x PE products on DSP cascades (BIND_OP dsp), the rest BIND_OP fabric"
    assert dsp[dw_key] == cfg.DW_DSP_TAPS * cfg.PE == 96
    logic = r["detail"]["lut_logic"]
    assert not any("adder tree" in k for k in logic)           # the 1x1 trees are in the DSP post-adders
    # one separation per cascade and lane pair: 1 (4-bit) + 2 (8-bit) cascades x 8 pairs x 18 bits
    assert logic["1x1 cascade-end field separation + sign correction (18-bit add per cascade and lane pair)"] == \
        (cfg.PA // cfg.CHAIN_4BIT + cfg.PA // 2 // cfg.CHAIN_8BIT) * cfg.PE // 2 * 18 == 432
    assert logic["depthwise 8 x 9 LUT multipliers (~60 LUT each), taps DW_DSP_TAPS..8"] == \
        (cfg.TAPS - cfg.DW_DSP_TAPS) * cfg.PE * 60
    assert r["dsp"] <= ZU3EG["dsp"] and r["bram36"] <= ZU3EG["bram36"]
    assert r["lut"] <= LUT_TARGET_FRACTION * ZU3EG["lut"]
    assert len(on_chip_memories()) == 17
    assert "static codenet::group_buf_t gbuf;" in top and "static codenet::out_group_buf_t obuf;" in top
    assert "write_profile(" in engine + top and any(k.startswith("per-layer profile") for k in logic)


CODENET = [HLS / "codenet" / "codenet_engine.h", HLS / "codenet" / "codenet_dataflow.h",
           HLS / "codenet" / "codenet_top.cpp", HLS / "codenet" / "codenet_port.h"]


def test_every_arena_access_is_an_explicit_burst():
    """The arena is an hls::burst_maxi port in synthesis (its C-sim twin otherwise): the streaming
    stages never index it (no access Vitis would have to infer a burst for), every reader keeps its
    requests ahead through Prefetch, every writer takes its responses through WriteBursts, and the
    twin asserts the burst limits the cycle model assumes."""
    port = (HLS / "codenet" / "codenet_port.h").read_text()
    flow = (HLS / "codenet" / "codenet_dataflow.h").read_text()
    top = (HLS / "codenet" / "codenet_top.cpp").read_text()
    synth = port.split("#ifdef __SYNTHESIS__")[1].split("#else")[0]
    assert "#include <hls_burst_maxi.h>" in synth and "typedef hls::burst_maxi<bus_t> arena_port_t;" in synth
    assert "codenet::arena_port_t arena" in top
    assert not re.search(r"\barena\s*\[", flow + top)
    for stage in ("patch_reader", "conv_reader", "dw_reader"):
        body = flow.split("inline void {}(".format(stage))[1].split("\ninline ")[0]
        assert "pf.start(arena" in body and body.count("arena.read()") == body.count("pf.try_issue(arena, ctx);")
    for stage in ("conv_writer", "dw_writer"):
        body = flow.split("inline void {}(".format(stage))[1].split("\ninline ")[0]
        assert "wb.request(arena" in body and "wb.finish(arena, PH_WRITE);" in body
    assert "len >= 1 && len <= AXI_MAX_BURST" in port and "< AXI_OUTSTANDING" in port
FOR = re.compile(r"for \(int (\w+) = [^;]+; \1 < ([^;]+);")


def _code(line):
    return line.split("//")[0]


def test_every_runtime_loop_bound_has_a_tripcount():
    """A loop whose bound is a run-time value carries LOOP_TRIPCOUNT (or is one that the
    descriptor checks bound and that is unrolled); constant bounds need none."""
    bad = []
    for path in CODENET:
        lines = path.read_text().splitlines()
        for no, line in enumerate(lines):
            m = FOR.search(_code(line))
            if not m:
                continue
            bound = m.group(2).strip()
            if re.fullmatch(r"[A-Z0-9_ ()*/+-]+", bound):        # constants only
                continue
            following = " ".join(lines[no + 1:no + 4])
            if "LOOP_TRIPCOUNT" not in following and "HLS UNROLL" not in lines[no + 1]:
                bad.append("{}:{}: for ... < {}".format(path.name, no + 1, bound))
    assert not bad, "run-time loop bounds without LOOP_TRIPCOUNT:\n" + "\n".join(bad)


def test_no_runtime_division_or_bank_selection_in_the_streaming_engine():
    """No divider or modulo by a run-time value in the layers (shifts and constants only), no
    run-time number of inputs per weight word (the 4-bit / 8-bit datapaths are template
    instances), and every ceil_div by a named constant."""
    flow = (HLS / "codenet" / "codenet_dataflow.h").read_text()
    engine = (HLS / "codenet" / "codenet_engine.h").read_text()
    bad = [ln for ln in flow.splitlines() if re.search(r"[/%]\s*\(?[a-z_][\w.]*", _code(ln))]
    assert not bad, bad
    assert "per_word" not in flow + engine
    assert "constexpr int PER = W8 ? PA / 2 : PA;" in flow
    for path in CODENET:
        text = path.read_text()
        for m in re.finditer(r"(?<!int )ceil_div\(", text):
            depth, i, comma = 1, m.end(), None
            while depth:                                         # the call's last argument
                ch = text[i]
                depth += ch == "("
                depth -= ch == ")"
                if ch == "," and depth == 1:
                    comma = i
                i += 1
            arg = text[comma + 1:i - 1].strip()
            assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", arg), (path.name, arg)


def test_streams_and_dataflow_regions_use_named_depths():
    flow = (HLS / "codenet" / "codenet_dataflow.h").read_text()
    depths = re.findall(r"#pragma HLS STREAM variable = \w+ depth = (\w+)", flow)
    assert depths and set(depths) == {"STREAM_BEATS"}


def _top_arguments(engine):
    """[(type text, name)] of <engine>_top's parameters, in order."""
    text = (HLS / engine / "{}_top.cpp".format(engine)).read_text()
    params = re.search(r"^void {}_top\((.*?)\)\s*\{{".format(engine), text, re.S | re.M).group(1)
    return text, [tuple(p.strip().rsplit(None, 1)) for p in re.sub(r"\s+", " ", params).split(",")]


@pytest.mark.parametrize("engine", ["bnn", "codenet"])
def test_every_top_argument_has_an_interface_and_the_register_map_follows_it(engine):
    """Each argument of the top: a pointer on m_axi + s_axilite (its 64-bit offset), a scalar on
    s_axilite, or an ap_none wire (not in the register map). The manifest's registers are the
    Vitis HLS s_axilite layout of those arguments in order: from 0x10, a 64-bit offset takes 0xC
    bytes (two data words and a reserved one), a 32-bit scalar 0x8 (data + reserved); an
    hls::burst_maxi argument is a pointer (UG1399 "Using Manual Burst": m_axi, offset register)."""
    import json
    text, args = _top_arguments(engine)
    manifest = json.loads((HLS.parent / "overlays" / engine / "manifest.json").read_text())
    (ip,) = manifest["ips"].values()
    regs = {n: int(r["offset"], 16) for n, r in ip["registers"].items()}
    offset, seen = 0x10, []
    for typ, name in args:
        # an hls::burst_maxi port (codenet_port.h arena_port_t) is an m_axi pointer like any other
        pointer = name.startswith("*") or typ.endswith("*") or typ.endswith("arena_port_t")
        name = name.lstrip("*")
        lite = re.search(r"INTERFACE s_axilite port = {} bundle = control".format(name), text)
        wire = re.search(r"INTERFACE mode = ap_none port = {}\b".format(name), text)
        assert bool(lite) != bool(wire), "{}: exactly one of s_axilite / ap_none".format(name)
        if wire:
            assert typ.startswith("volatile") and pointer, "{}: a sampled wire is a volatile pointer".format(name)
            assert name not in regs
            continue
        if pointer:
            assert re.search(r"INTERFACE m_axi port = {} offset = slave".format(name), text), name
        assert regs[name] == offset, "{}: manifest 0x{:X}, Vitis layout 0x{:X}".format(name, regs[name], offset)
        offset += 0xC if pointer else 0x8
        seen.append(name)
    assert set(seen) == set(regs) - {"CTRL", "GIER", "IP_IER", "IP_ISR"}


def test_codenet_profile_clock_is_sampled_in_a_fixed_protocol_region():
    """The per-layer profile (FORMAT.md "Profile region"): `timestamp` is read only by
    sample_clock (volatile read + ap_wait in a PROTOCOL fixed region, UG1399), once before and
    once after each layer, and the entry is written as one whole beat when profile_off != 0."""
    text, args = _top_arguments("codenet")
    assert ("volatile ap_uint<64>", "*timestamp") in args and ("ap_uint<32>", "profile_off") in args
    body = text[text.index("s_axilite port = return"):]
    assert body.count("timestamp") == 2 == body.count("codenet::sample_clock(timestamp)")
    assert "if (profile) codenet::write_profile(arena_wr, prof_beat + codenet::addr_t(l), t_start, t_end);" in body
    engine = (HLS / "codenet" / "codenet_engine.h").read_text()
    fn = engine[engine.index("inline ap_uint<64> sample_clock"):]
    fn = fn[:fn.index("\n}\n")]
    assert re.search(r"#pragma HLS PROTOCOL mode = fixed\n\s*t = \*timestamp;\n#ifdef __SYNTHESIS__\n\s*ap_wait\(\);", fn)
