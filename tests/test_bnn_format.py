"""BNN parameter buffer (FORMAT.md): pack / unpack / validate, the config mirror, and the numpy
engine model's input checks."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.engines import bnn_config as cfg
from runtime.engines import bnn_format as fmt
from runtime.engines import bnn_model as model

ROOT = Path(__file__).resolve().parents[1]

HEADER = ROOT / "hls_src" / "bnn" / "bnn_config.h"


def _params(seed=0):
    return fmt.pack_params(fmt.random_layers(np.random.default_rng(seed)))


def _section(name, section):
    for n, s, a, b in fmt.layout():
        if (n, s) == (name, section):
            return a, b
    raise KeyError(name)


# ---------------------------------------------------------------- config
def test_header_and_python_constants_agree():
    header = cfg.check_header_agrees(HEADER)
    assert header["PARAM_WORDS"] == cfg.PARAM_WORDS == 5459
    assert header["BNN_MAGIC"] == 0x0000_0001_424E_4E31
    assert header["FC_IN"] == 1024 and header["WPR1"] == 5 and header["WPR3"] == 9


def test_check_header_agrees_names_the_differing_constant(tmp_path):
    text = HEADER.read_text().replace("constexpr int SIMD1 = 32;", "constexpr int SIMD1 = 16;")
    bad = tmp_path / "bnn_config.h"
    bad.write_text(text)
    with pytest.raises(ValueError, match="SIMD1"):
        cfg.check_header_agrees(bad)
    bad.write_text(HEADER.read_text().replace("constexpr int C2 = 64;", "constexpr int C2 = 32;"))
    with pytest.raises(ValueError, match=r"\bC2\b|PARAM_WORDS|OFF_"):
        cfg.check_header_agrees(bad)


def test_read_header_constants_c_integer_semantics(tmp_path):
    h = tmp_path / "c.h"
    h.write_text("#define V 7\nconstexpr int A = 10;\nconstexpr int B = (A + 63) / 64;  // ceil\n"
                 "constexpr int C = -7 / 2;\nconstexpr int D = A * B - V % 4;\n")
    assert cfg.read_header_constants(h) == {"V": 7, "A": 10, "B": 1, "C": -3, "D": 7}


def test_modelled_cycles_meet_target():
    cycles = cfg.modelled_layer_cycles()
    assert max(cycles.values()) <= 40000
    assert cfg.modelled_images_per_second() >= 6000


# ---------------------------------------------------------------- pack / unpack
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_pack_unpack_round_trip(seed):
    rng = np.random.default_rng(seed)
    layers = fmt.random_layers(rng)
    for name in ("conv0", "conv1", "fc0"):   # full int32 threshold range survives
        layers[name]["thresholds"][:2] = [-2 ** 31, 2 ** 31 - 1]
    layers["fc1"]["bias"][:2] = [-2 ** 20, 2 ** 20]
    words = fmt.pack_params(layers)
    assert words.dtype == np.dtype("<u8") and words.shape == (cfg.PARAM_WORDS,)
    fmt.validate_params(words)
    back = fmt.unpack_params(words)
    for name in fmt.LAYER_NAMES:
        for key, val in layers[name].items():
            np.testing.assert_array_equal(back[name][key], val, err_msg="{}.{}".format(name, key))
    np.testing.assert_array_equal(fmt.pack_params(back), words)


def test_bit_layout_matches_format_md():
    """Spot-check FORMAT.md by hand: conv1 row 0, input b = (ky*3 + kx)*Cin + ci -> bit b%64 of word b/64."""
    layers = fmt.random_layers(np.random.default_rng(0))
    w = -np.ones_like(layers["conv1"]["weights"])
    w[0, 2, 1, 5] = 1                        # b = (2*3 + 1) * 32 + 5 = 229 -> word 3, bit 37
    w[1, 0, 0, 0] = 1                        # row 1, b = 0
    layers["conv1"]["weights"] = w
    layers["conv1"]["thresholds"] = np.arange(32, dtype=np.int32) - 3
    words = fmt.pack_params(layers)
    a, _ = _section("conv1", "weights")
    assert words[a:a + 5].tolist() == [0, 0, 0, 1 << 37, 0]
    assert int(words[a + 5]) == 1
    t0, _ = _section("conv1", "thresholds")
    assert int(words[t0]) & 0xFFFFFFFF == (-3) & 0xFFFFFFFF and int(words[t0]) >> 32 == (-2) & 0xFFFFFFFF
    s0, _ = _section("fc1", "shift_bias")
    sh, bi = layers["fc1"]["shift"][0], layers["fc1"]["bias"][0]
    assert int(words[s0]) == (int(sh) << 32) | (int(bi) & 0xFFFFFFFF)
    assert int(words[0]) == 0x0000_0001_424E_4E31


# ---------------------------------------------------------------- validate_params errors
def test_validate_accepts_valid():
    fmt.validate_params(_params())


@pytest.mark.parametrize("bad, match", [
    (lambda w: w.astype(np.int64), "dtype uint64"),
    (lambda w: w.astype(np.float64), "dtype uint64"),
    (lambda w: w.astype(">u8"), "dtype uint64"),
    (lambda w: list(w), "numpy uint64 array"),
    (lambda w: w.reshape(1, -1), "1-D"),
    (lambda w: w[:-1], "5458 words, expected PARAM_WORDS = 5459"),
    (lambda w: np.concatenate([w, w[:1]]), "5460 words, expected PARAM_WORDS = 5459"),
])
def test_validate_rejects_container(bad, match):
    with pytest.raises(ValueError, match=match):
        fmt.validate_params(bad(_params()))


def test_validate_rejects_magic_and_version():
    w = _params()
    w[0] = np.uint64(0x0000_0001_424E_4E32)
    with pytest.raises(ValueError, match="bad magic"):
        fmt.validate_params(w)
    w[0] = np.uint64(0x0000_0002_424E_4E31)
    with pytest.raises(ValueError, match="format version 2"):
        fmt.validate_params(w)


@pytest.mark.parametrize("layer, k", [("conv0", cfg.K0), ("conv1", cfg.K1), ("conv2", cfg.K2)])
def test_validate_rejects_padding_bits(layer, k):
    w = _params()
    a, _ = _section(layer, "weights")
    nw = (k + 63) // 64
    row = 3
    w[a + row * nw + nw - 1] |= np.uint64(1) << np.uint64(63)
    with pytest.raises(ValueError, match="{} weight row 3 has padding bits set past K = {}".format(layer, k)):
        fmt.validate_params(w)


def test_validate_rejects_shift_and_bias():
    w = _params()
    s0, _ = _section("fc1", "shift_bias")
    w[s0 + 2] = (np.uint64(8) << np.uint64(32)) | np.uint64(5)
    with pytest.raises(ValueError, match=r"SHIFT\[2\] = 8 out of range 0..7"):
        fmt.validate_params(w)
    w = _params()
    w[s0 + 4] = np.uint64((2 ** 20 + 1) & 0xFFFFFFFF)
    with pytest.raises(ValueError, match=r"BIAS\[4\] = 1048577 out of range"):
        fmt.validate_params(w)
    w[s0 + 4] = np.uint64((-2 ** 20 - 1) & 0xFFFFFFFF)
    with pytest.raises(ValueError, match=r"BIAS\[4\] = -1048577 out of range"):
        fmt.validate_params(w)


def test_pack_rejects_bad_layers():
    layers = fmt.random_layers(np.random.default_rng(2))
    bad = dict(layers, conv2=dict(layers["conv2"], weights=np.zeros((64, 3, 3, 32), dtype=np.int8)))
    with pytest.raises(ValueError, match="conv2: weights must all be"):
        fmt.pack_params(bad)
    bad = dict(layers, fc0=dict(layers["fc0"], weights=layers["fc0"]["weights"][:, :-1]))
    with pytest.raises(ValueError, match="fc0: weights have shape"):
        fmt.pack_params(bad)
    bad = dict(layers, fc1=dict(layers["fc1"], shift=np.full(10, 8)))
    with pytest.raises(ValueError, match="fc1: shift must lie in 0 .. 7"):
        fmt.pack_params(bad)
    bad = dict(layers, fc1=dict(layers["fc1"], bias=np.full(10, 2 ** 20 + 1)))
    with pytest.raises(ValueError, match="fc1: bias must lie in"):
        fmt.pack_params(bad)
    bad = dict(layers, conv1=dict(layers["conv1"], thresholds=np.full(32, 2 ** 31)))
    with pytest.raises(ValueError, match="conv1: thresholds must lie in"):
        fmt.pack_params(bad)
    bad = {k: v for k, v in layers.items() if k != "conv3"}
    with pytest.raises(ValueError, match="missing layer.*conv3"):
        fmt.pack_params(bad)


# ---------------------------------------------------------------- numpy engine model: interface
def test_model_input_checks():
    eng = model.BnnEngineModel()
    imgs = np.zeros((2, 28, 28), dtype=np.uint8)
    with pytest.raises(RuntimeError, match="load_params"):
        eng.classify(imgs)
    with pytest.raises(ValueError, match="PARAM_WORDS"):
        eng.load_params(_params()[:100])
    assert not eng.loaded
    eng.load_params(_params())
    with pytest.raises(ValueError, match="dtype uint8"):
        eng.classify(imgs.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        eng.classify(np.zeros((2, 28, 27), dtype=np.uint8))
    np.testing.assert_array_equal(eng.classify(imgs), eng.classify(imgs[..., None]))
    assert eng.classify(imgs[:0]).shape == (0, cfg.NUM_CLASSES)


def test_model_chunking_does_not_change_scores():
    rng = np.random.default_rng(4)
    params = _params(4)
    imgs = rng.integers(0, 256, size=(37, 28, 28), dtype=np.uint8)
    a, b = model.BnnEngineModel(chunk=5), model.BnnEngineModel(chunk=64)
    a.load_params(params)
    b.load_params(params)
    np.testing.assert_array_equal(a.classify(imgs), b.classify(imgs))


def test_float32_exactness_bound_is_checked():
    with pytest.raises(ValueError, match="2\\^24"):
        model._assert_exact(1 << 24, "huge")
    model._assert_exact(9 * 255 * cfg.IN_C, "conv0")
