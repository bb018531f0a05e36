"""Training-side BNN (training/bnn): torch integer forward == numpy engine model, exact BN folding,
and the shipped Fashion-MNIST model. Needs torch (the optional training extra; CI installs it)."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_torch  # noqa: E402

torch = require_torch()
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from runtime.engines import bnn_model as npm  # noqa: E402
from runtime.engines.bnn_format import pack_params, random_layers  # noqa: E402
from runtime.engines.bnn_model import BnnEngineModel  # noqa: E402
from training.bnn import model as tm  # noqa: E402

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "overlays" / "bnn" / "models" / "fashion_mnist"
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

I32 = (-2 ** 31, 2 ** 31 - 1)


def _pm1(rng, shape):
    return rng.choice(np.array([-1, 1], dtype=np.int8), size=shape)


def _thresholds(rng, n, lo, hi):
    """Mostly inside [lo, hi] (mixed bits), a few at / past the edges and at the int32 extremes."""
    t = rng.integers(lo, hi + 1, size=n).astype(np.int64)
    edge = rng.random(n)
    t[edge < 0.1] = I32[0]
    t[(edge >= 0.1) & (edge < 0.2)] = I32[1]
    t[(edge >= 0.2) & (edge < 0.25)] = lo - 1
    t[(edge >= 0.25) & (edge < 0.3)] = hi + 1
    return t.astype(np.int32)


def _t(x):
    return np.asarray(x.numpy() if torch.is_tensor(x) else x)


# ------------------------------------------------------------------ (a) layer functions vs numpy
@SETTINGS
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 3), h=st.integers(3, 9), w=st.integers(3, 9),
       cin=st.integers(1, 4), cout=st.integers(1, 6))
def test_conv0_layer_matches_numpy(seed, n, h, w, cin, cout):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(n, h, w, cin), dtype=np.uint8)
    wt = _pm1(rng, (cout, 3, 3, cin))
    b = 9 * 255 * cin
    t = _thresholds(rng, cout, -b // 3, b // 3)
    got = _t(tm.conv0_layer(torch.from_numpy(img), torch.from_numpy(wt), torch.from_numpy(t)))
    ref = npm.conv0_layer(img, wt, t)
    assert got.dtype == np.uint8 and got.shape == ref.shape == (n, h - 2, w - 2, cout)
    np.testing.assert_array_equal(got, ref)


@SETTINGS
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 3), h=st.integers(3, 9), w=st.integers(3, 9),
       cin=st.integers(1, 8), cout=st.integers(1, 6))
def test_binconv_layer_matches_numpy(seed, n, h, w, cin, cout):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(n, h, w, cin), dtype=np.uint8)
    wt = _pm1(rng, (cout, 3, 3, cin))
    k = 9 * cin
    t = _thresholds(rng, cout, 0, k)
    got = _t(tm.binconv_layer(torch.from_numpy(bits), torch.from_numpy(wt), torch.from_numpy(t)))
    np.testing.assert_array_equal(got, npm.binconv_layer(bits, wt, t))


@SETTINGS
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       c=st.integers(1, 5), density=st.floats(0.0, 1.0))
def test_pool_or_matches_numpy(seed, n, h, w, c, density):
    rng = np.random.default_rng(seed)
    bits = (rng.random((n, h, w, c)) < density).astype(np.uint8)
    got = _t(tm.pool_or(torch.from_numpy(bits)))
    np.testing.assert_array_equal(got, npm.pool_or(bits))


@SETTINGS
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 5), cin=st.integers(1, 300), cout=st.integers(1, 12))
def test_fc_layer_matches_numpy(seed, n, cin, cout):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(n, cin), dtype=np.uint8)
    wt = _pm1(rng, (cout, cin))
    t = _thresholds(rng, cout, 0, cin)
    got = _t(tm.fc_layer(torch.from_numpy(bits), torch.from_numpy(wt), torch.from_numpy(t)))
    np.testing.assert_array_equal(got, npm.fc_layer(bits, wt, t))


@SETTINGS
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 5), cin=st.integers(1, 300), cout=st.integers(1, 12))
def test_fc_out_layer_matches_numpy(seed, n, cin, cout):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(n, cin), dtype=np.uint8)
    wt = _pm1(rng, (cout, cin))
    shift = rng.integers(0, 8, size=cout).astype(np.int32)
    bias = rng.integers(-2 ** 20, 2 ** 20 + 1, size=cout).astype(np.int32)
    got = _t(tm.fc_out_layer(torch.from_numpy(bits), torch.from_numpy(wt), torch.from_numpy(shift),
                             torch.from_numpy(bias)))
    ref = npm.fc_out_layer(bits, wt, shift, bias)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_integer_forward_matches_engine_on_random_layers(seed):
    rng = np.random.default_rng(seed)
    layers = random_layers(rng)
    images = rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    eng = BnnEngineModel()
    eng.load_params(pack_params(layers))
    np.testing.assert_array_equal(tm.integer_forward(layers, images, batch=16).numpy(),
                                  eng.classify(images))


# ------------------------------------------------------------------ (b) BatchNorm fold exactness
def _tie_model(seed):
    """A random BnnNet in eval mode whose BN statistics put exact ties (y == 0) on reachable
    accumulators, with negative, zero and positive gammas."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    m = tm.BnnNet(init_scale=1.0)
    x = torch.from_numpy(rng.integers(0, 256, size=(16, 1, 28, 28)).astype(np.float32))
    for bn in m.bn:
        bn.momentum = 1.0
    m.train()
    with torch.no_grad():
        m(x)                                        # running stats = this batch's statistics
    ks = [None, 9 * tm.C0, 9 * tm.C1, 9 * tm.C2, 4 * 4 * tm.C3]
    with torch.no_grad():
        for bn, k in zip(m.bn, ks):
            c = bn.num_features
            mean = bn.running_mean.double()
            if k is None:
                mean = torch.round(mean)                                    # integer: reachable
            else:
                mean = k - 2 * torch.round((k - mean) / 2)                  # parity of K
            bn.running_mean.copy_(mean.float())
            assert torch.equal(bn.running_mean.double(), mean)
            g = torch.from_numpy(rng.normal(0, 1, c)).float()
            g[rng.random(c) < 0.3] *= -1
            g[rng.random(c) < 0.1] = 0.0
            bn.weight.copy_(g)
            beta = torch.from_numpy(rng.normal(0, 0.3, c)).float()
            beta[rng.random(c) < 0.6] = 0.0                                 # exact ties at acc == mean
            bn.bias.copy_(beta)
    m.eval()
    return m


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fold_gives_bit_identical_hidden_activations(seed):
    m = _tie_model(seed)
    rng = np.random.default_rng(100 + seed)
    images = rng.integers(0, 256, size=(24, 28, 28), dtype=np.uint8)
    images[:8] = (images[:8] // 128) * 255                                  # two-level images
    layers = tm.fold(m)
    pack_params(layers)                                                     # packable
    fl = m.hidden_bits(torch.from_numpy(images).float().unsqueeze(1))
    it = tm.integer_hidden(layers, images)
    for name in ("conv0", "pool0", "conv2", "pool1", "fc0"):
        np.testing.assert_array_equal(_t(fl[name]), _t(it[name]), err_msg=name)
    with torch.no_grad():
        s_float = m(torch.from_numpy(images).float().unsqueeze(1)).numpy()
    s_int = tm.integer_forward(layers, images).numpy()
    np.testing.assert_array_equal(s_float, s_int)


def test_fold_hidden_ties_and_edge_cases():
    """Direct check of the threshold read-off on every reachable accumulator value."""
    import torch.nn as nn
    rng = np.random.default_rng(7)
    for k in (None, 9, 288, 1024):
        c = 64
        bn = nn.BatchNorm1d(c).eval()
        vals = torch.arange(-2295, 2296) if k is None else torch.arange(-k, k + 1, 2)
        with torch.no_grad():
            bn.running_mean.copy_(vals[torch.from_numpy(rng.integers(0, len(vals), c))].float())
            bn.running_var.copy_(torch.from_numpy(rng.uniform(1e-3, 1e4, c)).float())
            g = torch.from_numpy(rng.normal(0, 2, c)).float()
            g[:8] = 0.0
            g[8:24] *= -1
            bn.weight.copy_(g)
            beta = torch.from_numpy(rng.normal(0, 1, c)).float()
            beta[::2] = 0.0
            beta[:4] = -1.0                                                 # gamma 0: never
            beta[4:8] = 1.0                                                 # gamma 0: always
            bn.bias.copy_(beta)
        t, flip = tm.fold_hidden(vals, bn, k)
        y = tm.bn_affine_eval(vals.view(-1, 1), bn, (1, -1))
        ref = (y >= 0).numpy()                                              # (V, C)
        acc = vals.view(-1, 1).numpy().astype(np.int64)
        acc_eff = np.where(flip.numpy(), -acc, acc)
        if k is None:
            got = acc_eff >= t.numpy()
        else:
            got = (acc_eff + k) // 2 >= t.numpy()
        np.testing.assert_array_equal(got, ref)
        assert not flip[:8].any()
        if k is not None:
            assert (t[:4] == k + 1).all() and (t[4:8] == 0).all()


# ------------------------------------------------------------------ (c) the shipped model
def _shipped():
    words = np.load(SHIPPED / "params.npy", allow_pickle=False)
    meta = json.loads((SHIPPED / "model.json").read_text())
    return words, meta


def test_shipped_model_json_matches_params():
    from runtime.datasets import FASHION_MNIST_CLASSES
    words, meta = _shipped()
    assert words.dtype == np.dtype("<u8") and words.ndim == 1
    assert meta["format"] == "pynq-deploy/bnn-model" and meta["version"] == 1
    assert meta["overlay"] == "bnn" and meta["dataset"] == "fashion-mnist"
    assert meta["classes"] == list(FASHION_MNIST_CLASSES)
    assert meta["input_shape"] == [28, 28, 1]
    assert meta["param_words"] == words.size
    assert meta["params_sha256"] == hashlib.sha256(words.tobytes()).hexdigest()
    assert meta["test_accuracy_integer"] >= 0.88
    for key in ("trained_by", "epochs", "seed", "torch", "train_seconds", "device"):
        assert key in meta["provenance"]


def test_shipped_model_integer_forward_equals_engine():
    from runtime.datasets import load_fashion_mnist
    from runtime.engines.bnn_format import unpack_params
    words, meta = _shipped()
    x, y = load_fashion_mnist("test")
    x, y = x[:500], y[:500]
    eng = BnnEngineModel()
    eng.load_params(words)
    ref = eng.classify(x)
    got = tm.integer_forward(unpack_params(words), x).numpy()
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, ref)
    assert float((ref.argmax(1) == y).mean()) >= 0.85
