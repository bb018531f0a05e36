"""Analytical model of the BNN engine on the Ultra96-V2 (ZU3EG). Every number here is MODELLED.

Throughput: the HLS top is a DATAFLOW pipeline of layers, each a loop nest at II = 1 whose trip
count is `runtime.engines.bnn_config.modelled_layer_cycles()` (the same PE/SIMD constants as
hls_src/bnn/bnn_config.h). images/s comes from the cycle-level simulation of the region with its
FIFOs at the STREAM depths of bnn_top.cpp (`bnn_dataflow`): it equals the slowest stage only when
the FIFOs let every producer run ahead (with depth-2 FIFOs it would be 20% lower, also reported).
The latency is the sum of the stages (one image through an empty pipeline).

Resources (first-order estimates, calibrated on nothing; a Vivado run replaces them):
- binary lanes: a PE x SIMD XNOR-popcount costs ~1 LUT per input bit (XNOR folded into the
  first compressor level) plus an accumulator and threshold compare of ceil(log2(K+1)) bits
  (~3 LUT per bit) per PE;
- conv0 (8-bit pixels x +-1): one 8-bit add/sub (~9 LUT) per SIMD x PE into a 12-bit accumulator;
- weight memories: PE banks of SIMD bits x ceil(Cout/PE)*ceil(K/SIMD) words; LUTRAM (64 bits per
  LUT) when a bank is at most 64 deep, else BRAM36 in its best aspect ratio;
- thresholds: LUTRAM, 32 bits per channel;
- layer input buffers: each stage buffers one image of its input bits, double-buffered (ping-pong)
  for the dataflow, in BRAM36 when over 2 Kbit, else LUTRAM;
- DATAFLOW streams: each FIFO at its depth x width, in LUTRAM / SRL up to 64 deep, else BRAM36;
- platform: AXI-Lite control, three m_axi adapters, SmartConnect: 6,000 LUT, 6 BRAM36 (burst FIFOs);
- DSP: 0 by construction (no multiplier in the datapath: additions, XNOR, popcount, shifts).
"""
import math

from ..engines import bnn_config as cfg
from ..platform.zu3eg import ZU3EG  # noqa: F401 - the resource budget, re-exported
from . import bnn_dataflow

PLATFORM_LUT, PLATFORM_BRAM36 = 6000, 6
BRAM36_SHAPES = ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192), (2, 16384), (1, 32768))


def _bram36(width, depth):
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in BRAM36_SHAPES)


def _memory(width, depth, banks):
    """(lut, bram36) of `banks` memories of width x depth bits."""
    if depth <= 64:
        return banks * width * math.ceil(depth / 64), 0
    return 0, banks * _bram36(width, depth)


def layer_resources():
    rows = []
    for name, kind, h, w, cin, cout, pe, simd in cfg.LAYERS:
        lut = bram = 0
        if kind == "pool":
            lut = 2 * cin  # OR gates + a line of bits
            in_bits = h * w * cin
        else:
            k = 9 * cin if kind in ("conv0", "conv") else cin
            acc_bits = math.ceil(math.log2(k * (255 if kind == "conv0" else 1) + 1)) + 1
            lane = 9 * simd if kind == "conv0" else simd
            lut += pe * (lane + 3 * acc_bits)
            depth = math.ceil(cout / pe) * math.ceil(k / simd)
            l, b = _memory(simd, depth, pe)
            lut, bram = lut + l, bram + b
            if name != "fc1":
                l, b = _memory(32, math.ceil(cout / pe), pe)
                lut, bram = lut + l, bram + b
            in_bits = h * w * cin * (8 if kind == "conv0" else 1)
        if in_bits > 2048:
            bram += 2 * math.ceil(in_bits / 36864)
        else:
            lut += 2 * math.ceil(in_bits / 64)
        rows.append({"layer": name, "lut": lut, "bram36": bram, "dsp": 0})
    return rows


def fifo_resources():
    """{stream: {"lut", "bram36"}} of the DATAFLOW FIFOs at their depths (cfg.FIFO_DEPTHS)."""
    out = {}
    for name, depth in cfg.FIFO_DEPTHS.items():
        lut, bram = _memory(cfg.FIFO_WIDTHS[name], depth, 1)
        out[name] = {"depth": depth, "lut": lut + 8, "bram36": bram}     # + ~8 LUT of pointers / flags
    return out


def modelled(clock_mhz=None):
    clock_mhz = float(clock_mhz or cfg.CLOCK_MHZ)
    cycles = cfg.modelled_layer_cycles()
    slowest = max(cycles, key=cycles.get)
    interval = bnn_dataflow.interval(cfg.FIFO_DEPTHS)
    interval_depth2 = bnn_dataflow.interval(bnn_dataflow.uniform_depths(cfg.FIFO_MIN))
    res = layer_resources()
    fifos = fifo_resources()
    lut = PLATFORM_LUT + sum(r["lut"] for r in res) + sum(f["lut"] for f in fifos.values())
    bram = PLATFORM_BRAM36 + sum(r["bram36"] for r in res) + sum(f["bram36"] for f in fifos.values())
    return {
        "label": "MODELLED (cycle-level DATAFLOW simulation with the FIFO depths of bnn_top.cpp, "
                 "analytical resources; not measured on a board)",
        "clock_mhz": clock_mhz,
        "images_per_s": clock_mhz * 1e6 / interval,
        "cycles_per_image": interval,
        "slowest_stage_images_per_s": clock_mhz * 1e6 / cycles[slowest],
        "images_per_s_with_depth_2_fifos": clock_mhz * 1e6 / interval_depth2,
        "fifo_depths": dict(cfg.FIFO_DEPTHS), "fifo_resources": fifos,
        "latency_ms": sum(cycles.values()) / (clock_mhz * 1e3),
        "bottleneck_layer": slowest,
        "cycles_per_layer": cycles,
        "dsp": 0, "bram36": bram, "lut": lut,
        "lut_fraction_of_zu3eg": lut / ZU3EG["lut"],
        "resources_per_layer": res,
    }
