"""Analytical model of the CoDeNet engine on the Ultra96-V2. Every number here is MODELLED.

Inputs: the compiled program (a list of `LayerSpec`, exactly what the engine executes) and the
engine constants of `hls_src/codenet/codenet_config.h` (via runtime/engines/codenet_config.py).

Time: `runtime/measure/codenet_cycles.py` gives, per layer, the trip counts of every pipelined
loop of the HLS code (all II = 1) and its single-beat DDR accesses over the 128-bit ports; the C
simulation counts the same numbers while it runs and a test proves them equal. The engine runs
the phases of a layer one after another (descriptor, weight/requant/gather load, pixel reads,
MACs, writes) and the layers one after another, so the frame time is the sum. What the trip
counts leave out is the pipeline fill and DDR latency each time a pipelined loop is entered;
`entry_overhead_cycles` (default 0, the trip-count model the targets refer to) adds a cost per
entry, and the benchmark also reports the figure with ENTRY_OVERHEAD_SENSITIVITY cycles each.

Resources (first-order estimates, no synthesis run behind them):
- DSP: the PA x PE 4b x 8b multipliers of the 1x1 array are packed two per DSP48E2 (two 4-bit
  weights share one 8-bit activation), the PE x 9 depthwise multipliers likewise, plus PE
  requantization multipliers (24 x 16 bit, one DSP each);
- memories: every on-chip array of codenet_engine.h with its partitioning (`on_chip_memories`),
  in BRAM36 (best aspect ratio) or, up to 64 deep, LUTRAM; the line buffer counted twice (each
  row bank duplicated so the three column taps of a row are read in one cycle); 8 BRAM36 of AXI
  burst FIFOs;
- LUT: adder trees of the 1x1 array (~14 LUT per product), depthwise trees, DSP-packing
  correction, address generation for the deformable taps, requantization, AXI infrastructure.
"""
import math

from ..engines import codenet_config as cfg
from . import codenet_cycles

START_OVERHEAD_US = 20.0            # one start: a few AXI-Lite writes and the ap_done poll
ENTRY_OVERHEAD_SENSITIVITY = 8      # cycles per pipelined-loop entry, for the sensitivity figure

# What the published system ran on the ARM cores (DESIGN.md section 3, from the CoDeNet paper),
# per input size: first layer via TVM, channel split/concat/shuffle copies, x2 upsample, and one
# Python register-programming round trip per engine call (assumed 0.15 ms; not published).
PUBLISHED_HOST_MS = {
    256: {"first_layer_cpu": 1.8, "split_concat_shuffle_copies": 5.0, "upsample_copies": 1.0},
    512: {"first_layer_cpu": 30.0, "split_concat_shuffle_copies": 40.0, "upsample_copies": 4.0},
}
PUBLISHED_CALL_MS = 0.15
PUBLISHED_FPS = {256: 32.2, 512: 9.3}
ZU3EG = {"lut": 70560, "bram36": 216, "dsp": 360}


def _macs(spec):
    return spec.out_h * spec.out_w * (spec.k * spec.cout if spec.op == "conv1x1" else 9 * spec.cout)


BRAM36_SHAPES = ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192), (2, 16384), (1, 32768))


def _bram36(width, depth):
    return min(-(-width // w) * -(-depth // d) for w, d in BRAM36_SHAPES)


def _memory(banks, width, depth):
    """(bram36, lut) of `banks` memories of width x depth bits: LUTRAM (64 bits per LUT) up to
    64 deep, BRAM36 in its best aspect ratio above."""
    if depth <= 64:
        return 0, banks * width
    return banks * _bram36(width, depth), 0


def on_chip_memories():
    """The on-chip arrays of hls_src/codenet/codenet_engine.h with their partitioning."""
    pe, pa, tiles = cfg.PE, cfg.PA, cfg.CH_TILES
    return {
        # name: (banks, width bits, depth)
        "wbuf 1x1 weights [PE][W_WORDS] x (PA/2 bytes)": (pe, pa * 4, cfg.W_WORDS),
        # [LINE_ROWS][MAX_W][PE] bytes, rows partitioned; duplicated so the 3 column taps of a row
        # are read in one cycle (II = 1, what the cycle model assumes)
        "lbuf line buffer x2 [LINE_ROWS][MAX_W][PE]": (2 * cfg.LINE_ROWS, pe * 8, cfg.MAX_W),
        "pbuf 1x1 pixel runs [PA][PIX_BEATS] x 128b": (pa, 128, cfg.PIX_BEATS),
        "xbuf 1x1 extracted inputs [MAX_K/(PA/2)][PA] bytes": (pa, 8, cfg.MAX_CH // (pa // 2)),
        "obuf output pixel [MAX_CH] bytes, cyclic 16": (16, 8, cfg.MAX_CH // 16),
        "rq requant [PE][CH_TILES] x 69b": (pe, 69, tiles),
        "dww depthwise weights [PE][CH_TILES] x 72b": (pe, 72, tiles),
        "gather table [MAX_CH] x 16b": (1, 16, cfg.MAX_CH),
        "dilation row [DIL_BEATS] x 128b": (1, 128, cfg.DIL_BEATS),
    }


def resources():
    mult_1x1 = cfg.PA * cfg.PE
    mult_dw = cfg.PE * 9
    dsp = mult_1x1 // 2 + mult_dw // 2 + cfg.PE
    mems = {}
    bram = lutram = 0
    for name, (banks, width, depth) in on_chip_memories().items():
        b, l = _memory(banks, width, depth)
        mems[name] = {"bram36": b, "lutram_lut": l}
        bram, lutram = bram + b, lutram + l
    bram += 8  # AXI burst FIFOs of the three m_axi ports
    logic = (14 * mult_1x1 + 12 * mult_dw + 8 * (mult_1x1 + mult_dw) // 2   # adder trees, DSP-packing fix-up
             + 2500 + 1500 + 3000)                                          # deformable addressing, requant, control
    lut = logic + lutram + 6000                                              # + AXI interconnect / adapters
    return {"dsp": dsp, "bram36": bram, "lut": lut,
            "detail": {"dsp_1x1_packed_2_per_dsp": mult_1x1 // 2, "dsp_dw_packed_2_per_dsp": mult_dw // 2,
                       "dsp_requant": cfg.PE, "memories": mems, "bram36_axi_fifos": 8,
                       "lut_logic": logic, "lut_lutram": lutram, "lut_axi": 6000}}


def modelled(layers, input_size, clock_mhz=None, entry_overhead_cycles=0):
    clock_mhz = float(clock_mhz or cfg.CLOCK_MHZ)
    est = codenet_cycles.frame_estimate(layers, clock_mhz, entry_overhead_cycles)
    total, entries = est["cycles"], est["phases"]["entries"]
    rows = []
    for spec, c in zip(layers, est["layers"]):
        cycles = c["cycles"] + entry_overhead_cycles * c["entries"]
        rows.append(dict(c, cycles=cycles, macs=_macs(spec), name=spec.name,
                         op=spec.op + ("/deformable" if spec.deformable else ""),
                         ms=cycles / (clock_mhz * 1e3), out_shape=[spec.out_h, spec.out_w, spec.cout]))
    engine_ms = est["ms"] + START_OVERHEAD_US / 1e3
    with_fill_ms = engine_ms + ENTRY_OVERHEAD_SENSITIVITY * entries / (clock_mhz * 1e3)
    res = resources()
    phases = {p: sum(r[p] for r in rows) for p in ("desc", "load", "read", "compute", "write")}
    return {"label": "MODELLED (HLS loop trip counts x II=1 at the clock; analytical resources; "
                     "not measured on a board)",
            "clock_mhz": clock_mhz, "input_size": input_size, "pa": cfg.PA, "pe": cfg.PE,
            "latency_ms": engine_ms, "fps": 1e3 / engine_ms,
            "cycles_per_frame": total, "cycles_by_phase": phases, "loop_entries_per_frame": entries,
            "entry_overhead_cycles": entry_overhead_cycles,
            "sensitivity": {"entry_overhead_cycles": ENTRY_OVERHEAD_SENSITIVITY,
                            "latency_ms": with_fill_ms, "fps": 1e3 / with_fill_ms},
            "starts_per_frame": 1, "host_work_between_layers_ms": 0.0,
            "macs_per_frame": sum(r["macs"] for r in rows),
            "ddr_beats_per_frame": phases["read"] + phases["write"],
            "dsp": res["dsp"], "bram36": res["bram36"], "lut": res["lut"], "resources_detail": res["detail"],
            "layers": rows}


def published_comparison(layers, input_size, clock_mhz=None, ours=None):
    """The same engine model made to include the host work the published system did (DESIGN §3),
    next to the published measured fps and our design (`ours`: modelled() of the same layers and
    clock, if already computed). All MODELLED except the published fps."""
    ours = ours or modelled(layers, input_size, clock_mhz)
    host = PUBLISHED_HOST_MS.get(input_size)
    if host is None:
        return None
    # the published engine ran one call per [1x1 + dw] pair: about half as many calls as layers
    calls = math.ceil(len(layers) / 2)
    first_layer_ms = ours["layers"][0]["ms"] if layers and layers[0].in_mode == cfg.MODE_PATCH3X3 else 0.0
    engine_ms = ours["latency_ms"] - first_layer_ms
    host_ms = sum(host.values()) + calls * PUBLISHED_CALL_MS
    published_like_ms = engine_ms + host_ms
    return {"input_size": input_size,
            "published_measured_fps": PUBLISHED_FPS.get(input_size),
            "model_with_published_host_work_fps": 1e3 / published_like_ms,
            "model_with_published_host_work_ms": {"engine": engine_ms, "host": host_ms,
                                                  "host_parts": dict(host, register_round_trips=calls * PUBLISHED_CALL_MS)},
            "ours_fps": ours["fps"], "ours_ms": ours["latency_ms"],
            "removed_host_ms": host_ms}
