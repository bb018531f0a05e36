"""The DSP48E2 packing of the CoDeNet engine (codenet_engine.h mul2: two products sharing one
activation in one 27 x 18 multiply, WP486) is exact: checked inside the C simulation over every
operand combination the engine can meet."""
import ctypes

import pytest

from tests.codenet_gen import csim_lib


@pytest.mark.parametrize("w_bits", [4, 8])
def test_every_weight_pair_and_activation(w_bits):
    lib = csim_lib()
    cases = ctypes.c_uint64(0)
    wrong = lib.codenet_csim_dsp_pack_check(w_bits, ctypes.byref(cases))
    # every (w_lo, w_hi) pair of signed w_bits-bit weights x every int8 / uint8 activation (-128..255)
    assert cases.value == (1 << w_bits) ** 2 * 384
    assert wrong == 0
