"""The DSP48E2 packing of the CoDeNet engine (codenet_engine.h mac_chain: two products sharing one
activation in one 27 x 18 multiply, WP486, summed along a PCOUT -> PCIN cascade and separated once
at its end) is exact: checked inside the C simulation over every operand pair of one packed DSP,
and per cascade over the extreme operand sets and at random, bit for bit against the true dot
products."""
import ctypes
from pathlib import Path

import pytest

from runtime.engines import codenet_config as cfg
from tests.codenet_gen import csim_lib

# the engine's cascades (codenet_config.h): the 4-bit weight word's PA inputs in one, the 8-bit
# word's PA / 2 inputs in two (8 would overflow: see below)
CHAIN_4BIT, CHAIN_8BIT = cfg.CHAIN_4BIT, cfg.CHAIN_8BIT


@pytest.mark.parametrize("w_bits", [4, 8])
def test_every_weight_pair_and_activation(w_bits):
    lib = csim_lib()
    cases = ctypes.c_uint64(0)
    wrong = lib.codenet_csim_dsp_pack_check(w_bits, ctypes.byref(cases))
    # every (w_lo, w_hi) pair of signed w_bits-bit weights x every int8 / uint8 activation (-128..255)
    assert cases.value == (1 << w_bits) ** 2 * 384
    assert wrong == 0


@pytest.mark.parametrize("w_bits, chain", [(4, CHAIN_4BIT), (8, CHAIN_8BIT)])
def test_the_cascades_of_the_engine_give_the_true_dot_products(w_bits, chain):
    """All 125 uniform extreme sets (every w_lo, w_hi, x of the cascade at one of min, -1, 0, 1,
    max: the largest field sums of either sign, e.g. 16 x (-8) x 255 = -32,640 at 4 bits,
    4 x (-128) x 255 = -130,560 at 8 bits), then random sets mixing extremes and uniform values."""
    lib = csim_lib()
    cases = ctypes.c_uint64(0)
    wrong = lib.codenet_csim_dsp_chain_check(w_bits, chain, 200000, ctypes.byref(cases))
    assert cases.value == 200000
    assert wrong == 0


def test_one_product_more_than_the_guard_allows_breaks_the_separation():
    """The 8-bit guard is tight: 8 cascaded 8-bit products (|low sum| up to 261,120 >= 2^17) spill
    into the high field, so the check can fail, and the engine splits the 8-bit word in two."""
    lib = csim_lib()
    cases = ctypes.c_uint64(0)
    wrong = lib.codenet_csim_dsp_chain_check(8, 2 * CHAIN_8BIT, 2000, ctypes.byref(cases))
    assert cases.value == 2000 and 0 < wrong < 2000
    assert lib.codenet_csim_dsp_chain_check(8, 3, 10, ctypes.byref(cases)) == 2 ** 64 - 1   # not instantiated


def test_the_cascade_lengths_are_the_engines():
    """The chains checked above are the ones conv_mac instantiates (codenet_config.h constants)."""
    flow = (Path(__file__).resolve().parents[1] / "hls_src" / "codenet" / "codenet_dataflow.h").read_text()
    assert "constexpr int CHAIN = W8 ? CHAIN_8BIT : CHAIN_4BIT;" in flow and "mac_chain<CHAIN>(" in flow
    assert (cfg.CHAIN_4BIT, cfg.CHAIN_8BIT) == (CHAIN_4BIT, CHAIN_8BIT)
