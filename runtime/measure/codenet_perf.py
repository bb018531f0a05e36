"""Analytical model of the CoDeNet engine on the Ultra96-V2. Every number here is MODELLED.

Inputs: the compiled program (a list of `LayerSpec`, exactly what the engine executes) and the
engine constants of `hls_src/codenet/codenet_config.h` (via runtime/engines/codenet_config.py).

Time: cycle model v2 (`runtime/measure/codenet_cycles.py`): every loop entry and blocking access
of the HLS code as written, with its trips and beats (the C simulation logs the same events and a
test proves them equal), charged the AXI latency L per request stream, the outstanding-request
limit, the HP-port burst limit and a pipeline depth per loop entry (all in codenet_config.h with
their sources). Every layer is a DATAFLOW region of reader, compute and writer: a layer takes
its loads, then its slowest stage plus one row of each other stage; a frame the sum of its layers. `fps_by_axi_latency` shows how much of the latency the design hides.
`published_structure` applies the same costs to the published system (one call per layer, its
host work) to check the model against the one measured figure there is.

Resources (first-order estimates, no synthesis run behind them):
- DSP: the 1x1 products packed two per DSP48E2 (two weights share one activation): PA x PE / 2
  in the 4-bit datapath, PA / 2 x PE / 2 in the 8-bit one (two template instances), summed along
  PCOUT -> PCIN cascades (CHAIN_4BIT / CHAIN_8BIT long); PE requantization multipliers (24 x 16
  bit, one shared stage); the run-time row-address products; DW_DSP_TAPS of the 9 depthwise taps
  per channel on a DSP cascade (one product each), the other taps on LUTs;
- memories: every on-chip array of codenet_top.cpp / codenet_dataflow.h with its partitioning
  (`on_chip_memories`), in BRAM36 (best aspect ratio) or, up to 64 deep, LUTRAM; streams as
  FIFOs of their depth; the m_axi adapter FIFOs;
- LUT: per 1x1 cascade its field separation and accumulate add and the systolic skew of its
  operands (SRLs; the adder trees are in the DSP post-adders), the depthwise LUT taps and their
  adds, the dw cascade skew, the line-buffer row-select muxes, requantization, DATAFLOW control,
  AXI infrastructure.
"""
import math

from ..engines import codenet_config as cfg
from ..platform.zu3eg import ZU3EG  # noqa: F401 - the resource budget, re-exported
from . import codenet_cycles

START_OVERHEAD_US = 20.0            # one start: a few AXI-Lite writes and the ap_done poll

# What the published system ran on the ARM cores (from the CoDeNet paper),
# per input size: first layer via TVM, channel split/concat/shuffle copies, x2 upsample, and one
# Python register-programming round trip per engine call (assumed 0.15 ms; not published).
PUBLISHED_HOST_MS = {
    256: {"first_layer_cpu": 1.8, "split_concat_shuffle_copies": 5.0, "upsample_copies": 1.0},
    512: {"first_layer_cpu": 30.0, "split_concat_shuffle_copies": 40.0, "upsample_copies": 4.0},
}
PUBLISHED_CALL_MS = 0.15
PUBLISHED_FPS = {256: 32.2, 512: 9.3}


def _macs(spec):
    return spec.out_h * spec.out_w * (spec.k * spec.cout if spec.op == "conv1x1" else 9 * spec.cout)


# RAMB18 aspect ratios (width, depth); a RAMB36 site holds two independent RAMB18 (UG573)
BRAM18_SHAPES = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
LUTRAM_MAX_DEPTH = 64            # shallower arrays go to LUTRAM (64 bits per LUT)
ADDR_MUL_DSP = 3                 # one 32 x 32 -> 32-bit product over DSP48E2 27 x 18 tiles
# Runtime 32-bit products in the address arithmetic of codenet_dataflow.h as written (one per
# `a * b` of two runtime values; the strided loops step their addresses by addition instead).
# The row, group and block addresses of layout v3 advance by additions; what is left is one row
# size per stage (w x cs, per layer) and the PATCH3X3 packed-row addressing. (Products of a
# runtime value by a group width (GROUP_PIX: a shift; the tail: <= 15, a few LUTs) are not DSPs.)
ADDRESS_MULTIPLIERS = {"conv_reader row size (in_w x in_cs beats)": 1,
                       "conv_writer row size (out_w x out_cs beats)": 1,
                       "patch_reader row bytes, its two row addresses (reader, prefetch), tap column "
                       "(sx x in_cs, per cycle)": 4,
                       "dw_reader row size (in_w x in_cs beats)": 1,
                       "dw_writer row size (out_w x out_cs beats)": 1,
                       "read_desc / loads (layer x DESC_WORDS, weight word index)": 1}
# m_axi adapters (UG1399: a read FIFO of num_read_outstanding x max_read_burst_length words, the same
# for writes): (port width bits, read (outstanding, burst), write (outstanding, burst))
M_AXI_PORTS = {"program": (32, (cfg.AXI_OUTSTANDING, cfg.PROG_MAX_BURST), (cfg.AXI_UNUSED_OUTSTANDING, cfg.AXI_UNUSED_BURST)),
               "weights": (128, (cfg.AXI_OUTSTANDING, cfg.AXI_MAX_BURST), (cfg.AXI_UNUSED_OUTSTANDING, cfg.AXI_UNUSED_BURST)),
               "arena (reads)": (128, (cfg.AXI_OUTSTANDING, cfg.AXI_MAX_BURST), (cfg.AXI_UNUSED_OUTSTANDING, cfg.AXI_UNUSED_BURST)),
               "arena_wr (writes)": (128, (cfg.AXI_UNUSED_OUTSTANDING, cfg.AXI_UNUSED_BURST), (cfg.AXI_OUTSTANDING, cfg.AXI_MAX_BURST))}
LUT_M_AXI_ADAPTER = 1200         # address / burst logic of one m_axi adapter
LUT_INTERCONNECT = 4500          # SmartConnect: 3 masters onto the HP ports, plus AXI-Lite control
LUT_INTERCONNECT_MASTER = 1000   # each further master's SmartConnect slice (the arena's write port)
LUT_PER_BIT = 1                  # a carry-chain adder: one LUT6 per bit (UG574 CARRY8)
SRL_DEPTH = 32                   # one SRLC32E LUT delays one bit up to 32 cycles (UG574)


def _srl_lut(bits, chains, length):
    """LUTs of the systolic skew of `chains` cascades of `length` stages: stage j (1 .. length-1)
    delays its `bits` operand bits by j cycles, one SRL LUT per bit per SRL_DEPTH cycles."""
    return chains * bits * sum(-(-j // SRL_DEPTH) for j in range(1, length))


def _bram18(width, depth):
    return min(-(-width // w) * -(-depth // d) for w, d in BRAM18_SHAPES)


def _memory(banks, width, depth):
    """(bram18, lut) of `banks` memories of width x depth bits: LUTRAM up to LUTRAM_MAX_DEPTH deep,
    else RAMB18s in their best aspect ratio."""
    if depth <= LUTRAM_MAX_DEPTH:
        return 0, banks * width
    return banks * _bram18(width, depth), 0


def on_chip_memories():
    """The on-chip arrays of hls_src/codenet (codenet_top.cpp, codenet_dataflow.h) with their
    partitioning, as written: name -> (banks, width bits, depth). Streams are FIFOs of their depth."""
    pe, pa, tiles = cfg.PE, cfg.PA, cfg.CH_TILES
    return {
        "wbuf 1x1 weights [PE][W_WORDS] x (PA/2 bytes), dim 1 complete": (pe, pa * 4, cfg.W_WORDS),
        "lbank line buffer [LINE_ROWS][LB_COPIES][MAX_W] x PE bytes, dims 1-2 complete":
            (cfg.LINE_ROWS * cfg.LB_COPIES, pe * 8, cfg.MAX_W),
        "pbuf 1x1 pixel runs [PA][PIX_BEATS] x 128b, dim 1 complete": (pa, 128, cfg.PIX_BEATS),
        "xrel 1x1 extraction table [PA][MAX_K/(PA/2)] x 16b, dim 1 complete": (pa, 16, cfg.MAX_K // (pa // 2)),
        "rbuf PATCH3X3 rows [3][PATCH_ROW_BEATS+1] x 128b, dim 1 complete": (3, 128, cfg.PATCH_ROW_BEATS + 1),
        "rq requant [PE][CH_TILES] x 69b, dim 1 complete": (pe, 69, tiles),
        "dww depthwise weights [PE][CH_TILES] x 72b, dim 1 complete": (pe, 72, tiles),
        "gch gather table [MAX_CH] x 16b (read one entry a cycle)": (1, 16, cfg.MAX_CH),
        "gather tile ranges [CH_TILES] x 2 x 16b": (2, 16, tiles),
        "gbuf 1x1 reader group run [PIX_BEATS x GROUP_PIX] x 128b (shared by both templates)":
            (1, 128, cfg.PIX_BEATS * cfg.GROUP_PIX),
        "obuf 1x1 writer group beats [CH_TILES x GROUP_PIX] x 128b (shared by both templates)":
            (1, 128, tiles * cfg.GROUP_PIX),
        "tbuf dw reader group runs of a shuffled tile [PE x GROUP_PIX] x 128b": (1, 128, pe * cfg.GROUP_PIX),
        "tile_blocks.off_full / off_tail dw reader block offsets [CH_TILES x PE] x 16b": (2, 16, tiles * pe),
        "tile_blocks.nbt, tile_lanes.nbt, lane_k, lane_b [CH_TILES] x (5b, 5b, PE x 4b, PE x 4b), "
        "lane maps dim 1 complete": (2 + 2 * pe, 5, tiles),
        "streams conv pix / outb (x2 templates), dw pix / outb, STREAM_BEATS x 128b": (6, 128, cfg.STREAM_BEATS),
        "stream dw dilation bytes, STREAM_BEATS x 8b": (1, 8, cfg.STREAM_BEATS),
        "streams of the loads' bursts (1x1 weights, gather table, requant, dw weights), STREAM_BEATS x 128b":
            (4, 128, cfg.STREAM_BEATS),
    }


def resources():
    """DSP / BRAM36 / LUT of the engine as written (MODELLED; the first csynth report replaces it)."""
    dsp = {"1x1 MAC, 4-bit datapath: PA x PE products, two per DSP48E2 (mac_chain, BIND_OP dsp)": cfg.PA * cfg.PE // 2,
           "1x1 MAC, 8-bit datapath: PA/2 x PE products, two per DSP48E2 (mac_chain)": cfg.PA // 2 * cfg.PE // 2,
           "requantization 24 x 16 (one shared stage, BIND_OP dsp)": cfg.REQUANT_STAGES * cfg.PE,
           "address multipliers as written": ADDR_MUL_DSP * sum(ADDRESS_MULTIPLIERS.values()),
           "depthwise: DW_DSP_TAPS x PE products on DSP cascades (BIND_OP dsp), the rest BIND_OP fabric":
               cfg.DW_DSP_TAPS * cfg.PE}
    mems, bram18, lutram = {}, 0, 0
    for name, (banks, width, depth) in on_chip_memories().items():
        b, l = _memory(banks, width, depth)
        mems[name] = {"bram18": b, "lutram_lut": l}
        bram18, lutram = bram18 + b, lutram + l
    fifos = {}
    for port, (width, rd, wr) in M_AXI_PORTS.items():
        for direction, (outstanding, burst) in (("read", rd), ("write", wr)):
            b, l = _memory(1, width, outstanding * burst)
            fifos["{} {} {}x{}".format(port, direction, outstanding, burst)] = {"bram18": b, "lutram_lut": l}
            bram18, lutram = bram18 + b, lutram + l
    # 1x1: per lane pair, PER / CHAIN cascades of packed DSPs (codenet_engine.h mac_chain); the
    # adds are in the DSP post-adders, the LUTs do each cascade's field separation, its add onto the
    # lane's accumulator, and the systolic skew of the cascade operands (stage j of a chain takes its
    # operands j cycles late: SRL delay lines, one LUT per bit up to SRL_DEPTH deep).
    chains4 = cfg.PA // cfg.CHAIN_4BIT                  # cascades per lane pair, 4-bit datapath
    chains8 = cfg.PA // 2 // cfg.CHAIN_8BIT             # 8-bit datapath
    n_dw_lut = (cfg.TAPS - cfg.DW_DSP_TAPS) * cfg.PE
    logic = {
        "1x1 cascade-end field separation + sign correction (18-bit add per cascade and lane pair)":
            (chains4 + chains8) * cfg.PE // 2 * LUT_PER_BIT * cfg.PACK_SHIFT,
        "1x1 accumulate (ACC_BITS add per cascade and lane, onto the bias / running sum)":
            (chains4 + chains8) * cfg.PE * LUT_PER_BIT * cfg.ACC_BITS,
        "1x1 cascade skew: activations (9 bits, shared by the lane pairs) and the stored weight pair "
        "(2 x 4 or 2 x 8 bits) per DSP, SRL":
            _srl_lut(cfg.ACT_VALUE_BITS, chains4, cfg.CHAIN_4BIT) + _srl_lut(2 * 4, chains4 * cfg.PE // 2, cfg.CHAIN_4BIT) +
            _srl_lut(cfg.ACT_VALUE_BITS, chains8, cfg.CHAIN_8BIT) + _srl_lut(2 * 8, chains8 * cfg.PE // 2, cfg.CHAIN_8BIT),
        "1x1 input pick from the pixel buffer (16:1 byte mux per lane, both datapaths)": (cfg.PA + cfg.PA // 2) * 40,
        "depthwise 8 x 9 LUT multipliers (~60 LUT each), taps DW_DSP_TAPS..8": n_dw_lut * 60,
        "depthwise adders onto the bias (~20 LUT each), taps DW_DSP_TAPS..8 (the rest in the DSP cascade)":
            n_dw_lut * 20,
        "depthwise cascade skew: tap value (9 bits) and weight (8 bits) per DSP stage, SRL":
            _srl_lut(cfg.ACT_VALUE_BITS + 8, cfg.PE, cfg.DW_DSP_TAPS),
        "line-buffer row select (LINE_ROWS:1 data mux, 9 taps x PE x 8 bits, ~5 LUT per bit)": 9 * cfg.PE * 8 * 5,
        "dw tile block lists (load_tiles, a channel a cycle: PE equality comparators of 12 bits against "
        "the tile's list, ~6 LUT each, the append and lane-write decoders)": cfg.PE * 6 + 2 * cfg.PE * 4,
        "burst requests (codenet_port.h): the read-run generator (Prefetch: counters, 32-bit address "
        "adders, in-flight count, ~300 LUT) inlined into each loop that reads: patch 2, conv 2, dw 3; "
        "write-burst control (~100 LUT) in 2 writers and the profile write": 7 * 300 + 3 * 100,
        "group-buffer address counters and gw / tail selects (1x1 reader, writer; dw reader)": 3 * 150,
        "dw lane assembly (PE lanes take a byte of the popped beat)": cfg.PE * 8 * 3,
        "PATCH3X3 tap realignment (two beats shifted to lane 0, 128 x 16:1 mux)": 128 * 5,
        "requantization: rounding add, 48-bit barrel shift, zero point, clamp": cfg.REQUANT_STAGES * cfg.PE * 400,
        "per-layer profile: the {start, end} beat as a second write-data source (128-bit 2:1 mux) "
        "and its address adder (profile_off + 16 l, 32 bits)": 128 + 32,
        "control: descriptor decode, 4 DATAFLOW regions (FSMs, stream handshakes), loop counters, "
        "address adders": 7000,
        "control of the 3 small load DATAFLOW regions (burst + parse: gather, requant, dw weights)": 3 * 300,
        "m_axi adapters": LUT_M_AXI_ADAPTER * len(M_AXI_PORTS),
        "AXI interconnect and AXI-Lite": LUT_INTERCONNECT + LUT_INTERCONNECT_MASTER * (len(M_AXI_PORTS) - 3),
    }
    lut = sum(logic.values()) + lutram
    return {"dsp": sum(dsp.values()), "bram36": -(-bram18 // 2), "lut": lut,
            "detail": {"dsp": dsp, "memories": mems, "m_axi_fifos": fifos, "lut_logic": logic,
                       "lut_lutram": lutram, "bram18": bram18,
                       "note": "MODELLED from the arrays, pragmas and operators of the code as written; "
                               "csynth's utilisation report replaces every figure"}}


LATENCY_SWEEP = (0, 64, 128)        # AXI latencies (cycles) the benchmark reports fps at


def _row_burst_cycles(phase, beats, axi_latency):
    return codenet_cycles.event_cycles(phase, cfg.EV_BURST, beats, beats, axi_latency)


def published_layer_cycles(spec, axi_latency=None):
    """One engine call of the published system's structure, under the same event costs: the call
    loads the layer's weights (one run), then a DATAFLOW of reader, MAC array and writer, each one
    loop entry per row (the host had made the input contiguous: split / shuffle / upsample copies);
    a layer = its slowest stage + the first row of the others (fill)."""
    bus = cfg.ARENA_BUS_BYTES
    wbeats = -(-(spec.cout * (spec.row_bytes() + cfg.RQ_RECORD_BYTES + 2)) // bus)
    load = _row_burst_cycles(cfg.PH_LOAD, wbeats, axi_latency)
    in_beats = -(-(spec.eff_w * spec.cin) // bus)
    out_beats = -(-(spec.out_w * spec.cout) // bus)
    if spec.op == "conv1x1":
        per_row = spec.out_w * -(-spec.cout // cfg.PE) * -(-spec.k // cfg.PA)
    else:
        per_row = spec.out_w * -(-spec.cout // cfg.PE)
    rows = {"read": (spec.eff_h, _row_burst_cycles(cfg.PH_READ, in_beats, axi_latency)),
            "compute": (spec.out_h, codenet_cycles.event_cycles(cfg.PH_COMPUTE, cfg.EV_LOOP, per_row, 0)),
            "write": (spec.out_h, _row_burst_cycles(cfg.PH_WRITE, out_beats, axi_latency))}
    stages = {k: n * c for k, (n, c) in rows.items()}
    slowest = max(stages, key=stages.get)
    fill = sum(c for k, (n, c) in rows.items() if k != slowest)
    return load + stages[slowest] + fill


def published_structure(layers, input_size, clock_mhz=None, axi_latency=None):
    """The published system's structure (one engine call per layer, its host work: DESIGN
    section 3 / the CoDeNet paper, PUBLISHED_HOST_MS) under the same cost model. MODELLED."""
    host = PUBLISHED_HOST_MS.get(input_size)
    if host is None:
        return None
    clock_mhz = float(clock_mhz or cfg.CLOCK_MHZ)
    on_engine = [s for s in layers if s.in_mode != cfg.MODE_PATCH3X3]   # its first layer ran on the CPU
    engine_ms = sum(published_layer_cycles(s, axi_latency) for s in on_engine) / (clock_mhz * 1e3)
    calls = len(on_engine)
    host_ms = sum(host.values()) + calls * PUBLISHED_CALL_MS
    return {"fps": 1e3 / (engine_ms + host_ms), "engine_ms": engine_ms, "host_ms": host_ms, "calls": calls,
            "host_parts_ms": dict(host, register_round_trips=calls * PUBLISHED_CALL_MS)}


def modelled(layers, input_size, clock_mhz=None, axi_latency=None):
    """The engine as written, on one frame of this program: cycle model v2 (codenet_cycles) at AXI
    latency `axi_latency` (default AXI_LATENCY) and at LATENCY_SWEEP, resources, and the published
    system's structure under the same model. MODELLED."""
    clock_mhz = float(clock_mhz or cfg.CLOCK_MHZ)
    lat = cfg.AXI_LATENCY if axi_latency is None else axi_latency
    events = codenet_cycles.program_events(layers)
    est = codenet_cycles.frame_estimate(layers, clock_mhz, lat, events)
    by_lat = {str(v): (est if v == lat else codenet_cycles.frame_estimate(layers, clock_mhz, v, events))["fps"]
              for v in LATENCY_SWEEP}
    rows = []
    for spec, c in zip(layers, est["layers"]):
        rows.append({"name": spec.name, "op": spec.op + ("/deformable" if spec.deformable else ""),
                     "out_shape": [spec.out_h, spec.out_w, spec.cout], "macs": _macs(spec),
                     "cycles": c["cycles"], "ms": c["cycles"] / (clock_mhz * 1e3),
                     "cycles_by_phase": c["cycles_by_phase"], "trip_counts": c["trip_counts"],
                     "bursts": c["bursts"], "single_beat_requests": c["single_beat_requests"]})
    engine_ms = est["ms"] + START_OVERHEAD_US / 1e3
    trips = est["trip_counts"]
    # the trip-count bound: per layer its loads plus its busiest DATAFLOW stage's trips at II = 1
    # (no latency, no pipeline depth, no fill)
    bound = sum(r["trip_counts"]["desc"] + r["trip_counts"]["load"] +
                max(r["trip_counts"]["read"], r["trip_counts"]["compute"], r["trip_counts"]["write"])
                for r in est["layers"])
    res = resources()
    pub = published_structure(layers, input_size, clock_mhz, lat)
    return {"label": "MODELLED (cycle model v2: HLS loop events of the engine as written, per-layer DATAFLOW, "
                     "AXI latency, outstanding requests, pipeline depths; analytical resources; not synthesized, "
                     "not measured on a board)",
            "clock_mhz": clock_mhz, "input_size": input_size, "pa": cfg.PA, "pe": cfg.PE,
            "axi_latency_cycles": lat, "axi_outstanding": cfg.AXI_OUTSTANDING, "axi_max_burst": cfg.AXI_MAX_BURST,
            "latency_ms": engine_ms, "fps": 1e3 / engine_ms, "fps_by_axi_latency": by_lat,
            "latency_hidden_fraction": by_lat["128"] / by_lat["0"],
            # cycles per frame the longest swept latency adds, each class of memory event alone
            "latency_cycles_by_event_class": codenet_cycles.latency_attribution(layers, max(LATENCY_SWEEP), events),
            "trip_count_fps": clock_mhz * 1e6 / bound if bound else None,
            "cycles_per_frame": est["cycles"], "cycles_by_phase_summed_over_stages": {
                p: sum(r["cycles_by_phase"][p] for r in rows) for p in codenet_cycles.PHASES[:5]},
            "dataflow_layers": sum(1 for s in layers if codenet_cycles.layer_is_dataflow(s)),
            "loop_entries_per_frame": trips["entries"],
            "bursts_per_frame": sum(r["bursts"] for r in rows),
            "single_beat_requests_per_frame": sum(r["single_beat_requests"] for r in rows),
            "starts_per_frame": 1, "host_work_between_layers_ms": 0.0,
            "macs_per_frame": sum(r["macs"] for r in rows),
            "published_structure_fps": pub["fps"] if pub else None,
            "dsp": res["dsp"], "bram36": res["bram36"], "lut": res["lut"], "resources_detail": res["detail"],
            "layers": rows}


def published_comparison(layers, input_size, clock_mhz=None, ours=None):
    """The published system's structure under the same model (published_structure), next to the
    published measured fps and our design (`ours`: modelled() of the same layers and clock, if
    already computed). All MODELLED except the published fps."""
    ours = ours or modelled(layers, input_size, clock_mhz)
    pub = published_structure(layers, input_size, clock_mhz, ours["axi_latency_cycles"])
    if pub is None:
        return None
    return {"input_size": input_size,
            "published_measured_fps": PUBLISHED_FPS.get(input_size),
            "model_with_published_host_work_fps": pub["fps"],
            "model_with_published_host_work_ms": {"engine": pub["engine_ms"], "host": pub["host_ms"],
                                                  "host_parts": pub["host_parts_ms"]},
            "engine_calls": pub["calls"], "axi_latency_cycles": ours["axi_latency_cycles"],
            "ours_fps": ours["fps"], "ours_ms": ours["latency_ms"],
            "removed_host_ms": pub["host_ms"]}
