"""The Ultra96-V2's programmable logic: the Zynq UltraScale+ XCZU3EG (part xczu3eg-sbva484-1-i,
overlays/*/manifest.json). The one home of its resource budget, used by both engines' resource
models (runtime/measure/bnn_perf.py, codenet_perf.py), the bench prints and the tests."""

# Xilinx DS891 (Zynq UltraScale+ MPSoC overview), ZU3EG column: CLB LUTs, 36 Kb block RAMs,
# DSP48E2 slices.
LUT = 70560
BRAM36 = 216
DSP = 360
ZU3EG = {"lut": LUT, "bram36": BRAM36, "dsp": DSP}

# The project's LUT target (issue 9): the engine may use at most this share of the LUTs, the rest
# is left to routing / timing closure at CLOCK_MHZ.
LUT_TARGET_FRACTION = 0.70


def budget_line(mod):
    """'DSP d / 360, BRAM36 b / 216, LUT l / 70560' for a modelled resource dict (the bench prints)."""
    return "DSP {} / {}, BRAM36 {} / {}, LUT {} / {}".format(mod["dsp"], DSP, mod["bram36"], BRAM36, mod["lut"], LUT)
