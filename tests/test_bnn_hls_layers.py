"""BNN engine: the HLS C-simulation (hls_src/bnn) against the numpy engine model, bit for bit.

Layer level: every block of bnn_layers.h, through its bnn_csim_* entry, on random shapes within
the maxima and random weights / thresholds (including out-of-range thresholds), against the
module-level layer functions of runtime/engines/bnn_model.py. Network level: bnn_csim_run
(bnn_top) against BnnEngineModel. Plus the C testbench on golden vectors.
"""
import ctypes
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.engines import bnn_config as cfg
from runtime.engines import bnn_format as fmt
from runtime.engines import bnn_model as model
from runtime.engines import csim

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

U8P = ctypes.POINTER(ctypes.c_uint8)
U32P = ctypes.POINTER(ctypes.c_uint32)
I32P = ctypes.POINTER(ctypes.c_int32)
U64P = ctypes.POINTER(ctypes.c_uint64)
I = ctypes.c_int

# layer-entry maxima (bnn_csim.cpp)
MAXH = MAXW = 28
MAXCIN0, MAXC, MAXFIN, MAXFOUT, MAXOIN, MAXOUT = 4, 64, 1024, 256, 256, 16


def _ptr(a, t):
    return a.ctypes.data_as(t)


@pytest.fixture(scope="module")
def lib():
    so = csim.load_csim_library("bnn")  # no compiler or headers is a failure: CI installs both
    so.bnn_csim_run.argtypes = [U64P, U8P, I32P, ctypes.c_uint32, ctypes.c_uint32]
    so.bnn_csim_conv0.argtypes = [U8P, U64P, I32P, U8P, I, I, I, I, I, I]
    so.bnn_csim_binconv.argtypes = [U8P, U64P, I32P, U8P, I, I, I, I, I, I]
    so.bnn_csim_pool.argtypes = [U8P, U8P, I, I, I, I]
    so.bnn_csim_fc.argtypes = [U8P, U64P, I32P, U8P, I, I, I, I]
    so.bnn_csim_fc_out.argtypes = [U8P, U64P, U32P, I32P, I32P, I, I, I, I]
    so.bnn_csim_popcount_check.argtypes = [U64P, I]
    return so


def _rows(weights):
    """+-1 weights (Cout, ...) -> packed FORMAT.md rows, flat uint64."""
    w = np.asarray(weights)
    return np.ascontiguousarray(fmt.pack_rows(fmt.pm1_to_bits(w).reshape(w.shape[0], -1)).reshape(-1))


def _thresholds(rng, cout, centre, spread, lo, hi):
    """Mostly near the decision region; some far outside (constant outputs) incl. int32 extremes."""
    t = np.round(centre + rng.normal(0, spread, size=cout)).astype(np.int64)
    pick = rng.random(cout)
    t[pick < 0.08] = rng.integers(lo - 100, lo + 1, size=int((pick < 0.08).sum()))
    t[(pick >= 0.08) & (pick < 0.16)] = rng.integers(hi, hi + 100, size=int(((pick >= 0.08) & (pick < 0.16)).sum()))
    t[pick > 0.97] = np.int64(2 ** 31 - 1)
    t[(pick > 0.95) & (pick <= 0.97)] = np.int64(-2 ** 31)
    return t.astype(np.int32)


def _pm1(rng, shape):
    return rng.choice(np.array([-1, 1], dtype=np.int8), size=shape)


# ---------------------------------------------------------------- layer level
@SETTINGS
@given(variant=st.integers(0, 1), n=st.integers(1, 2), h=st.integers(3, MAXH), w=st.integers(3, MAXW),
       cin=st.integers(1, MAXCIN0), cout=st.integers(1, MAXC), seed=st.integers(0, 2 ** 32 - 1))
def test_conv0_matches_model(lib, variant, n, h, w, cin, cout, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, h, w, cin), dtype=np.uint8)
    wt = _pm1(rng, (cout, 3, 3, cin))
    bound = 9 * 255 * cin
    thr = _thresholds(rng, cout, 0, 0.15 * bound, -bound, bound + 1)
    out = np.full((n, h - 2, w - 2, cout), 7, dtype=np.uint8)
    rows = _rows(wt)
    assert lib.bnn_csim_conv0(_ptr(x, U8P), _ptr(rows, U64P), _ptr(thr, I32P), _ptr(out, U8P),
                              n, h, w, cin, cout, variant) == 0
    np.testing.assert_array_equal(out, model.conv0_layer(x, wt, thr))


@SETTINGS
@given(variant=st.integers(0, 1), n=st.integers(1, 2), h=st.integers(3, 16), w=st.integers(3, 16),
       cin=st.integers(1, MAXC), cout=st.integers(1, MAXC), seed=st.integers(0, 2 ** 32 - 1))
def test_binconv_matches_model(lib, variant, n, h, w, cin, cout, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(n, h, w, cin), dtype=np.uint8)
    wt = _pm1(rng, (cout, 3, 3, cin))
    k = 9 * cin
    thr = _thresholds(rng, cout, k / 2, np.sqrt(k), 0, k + 1)
    out = np.full((n, h - 2, w - 2, cout), 7, dtype=np.uint8)
    rows = _rows(wt)
    assert lib.bnn_csim_binconv(_ptr(x, U8P), _ptr(rows, U64P), _ptr(thr, I32P), _ptr(out, U8P),
                                n, h, w, cin, cout, variant) == 0
    np.testing.assert_array_equal(out, model.binconv_layer(x, wt, thr))


def test_binconv_network_size(lib):
    """conv1's exact shape (26x26x32 -> 24x24x32) with the top's parallelism."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, size=(2, 26, 26, 32), dtype=np.uint8)
    wt = _pm1(rng, (32, 3, 3, 32))
    thr = _thresholds(rng, 32, 144, 12, 0, 289)
    out = np.zeros((2, 24, 24, 32), dtype=np.uint8)
    rows = _rows(wt)
    assert lib.bnn_csim_binconv(_ptr(x, U8P), _ptr(rows, U64P), _ptr(thr, I32P), _ptr(out, U8P),
                                2, 26, 26, 32, 32, 0) == 0
    np.testing.assert_array_equal(out, model.binconv_layer(x, wt, thr))


@SETTINGS
@given(n=st.integers(1, 3), h=st.integers(2, MAXH), w=st.integers(2, MAXW), c=st.integers(1, MAXC),
       seed=st.integers(0, 2 ** 32 - 1))
def test_pool_matches_model(lib, n, h, w, c, seed):
    rng = np.random.default_rng(seed)
    x = (rng.random((n, h, w, c)) < 0.3).astype(np.uint8)
    out = np.full((n, h // 2, w // 2, c), 7, dtype=np.uint8)
    assert lib.bnn_csim_pool(_ptr(x, U8P), _ptr(out, U8P), n, h, w, c) == 0
    np.testing.assert_array_equal(out, model.pool_or(x))


@SETTINGS
@given(variant=st.integers(0, 1), n=st.integers(1, 4), cin=st.integers(1, MAXFIN), cout=st.integers(1, MAXFOUT),
       seed=st.integers(0, 2 ** 32 - 1))
def test_fc_matches_model(lib, variant, n, cin, cout, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(n, cin), dtype=np.uint8)
    wt = _pm1(rng, (cout, cin))
    thr = _thresholds(rng, cout, cin / 2, np.sqrt(cin), 0, cin + 1)
    out = np.full((n, cout), 7, dtype=np.uint8)
    rows = _rows(wt)
    assert lib.bnn_csim_fc(_ptr(x, U8P), _ptr(rows, U64P), _ptr(thr, I32P), _ptr(out, U8P),
                           n, cin, cout, variant) == 0
    np.testing.assert_array_equal(out, model.fc_layer(x, wt, thr))


@SETTINGS
@given(variant=st.integers(0, 1), n=st.integers(1, 4), cin=st.integers(1, MAXOIN), cout=st.integers(1, MAXOUT),
       seed=st.integers(0, 2 ** 32 - 1))
def test_fc_out_matches_model(lib, variant, n, cin, cout, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(n, cin), dtype=np.uint8)
    wt = _pm1(rng, (cout, cin))
    shift = rng.integers(0, 8, size=cout).astype(np.uint32)
    bias = rng.integers(-2 ** 20, 2 ** 20 + 1, size=cout).astype(np.int32)
    out = np.zeros((n, cout), dtype=np.int32)
    rows = _rows(wt)
    assert lib.bnn_csim_fc_out(_ptr(x, U8P), _ptr(rows, U64P), _ptr(shift, U32P), _ptr(bias, I32P),
                               _ptr(out, I32P), n, cin, cout, variant) == 0
    np.testing.assert_array_equal(out, model.fc_out_layer(x, wt, shift, bias))


def test_layer_entries_reject_out_of_range_sizes(lib):
    z8 = np.zeros(64, dtype=np.uint8)
    z64 = np.zeros(64, dtype=np.uint64)
    z32 = np.zeros(64, dtype=np.int32)
    assert lib.bnn_csim_binconv(_ptr(z8, U8P), _ptr(z64, U64P), _ptr(z32, I32P), _ptr(z8, U8P),
                                1, 3, 3, MAXC + 1, 1, 0) == -1
    assert lib.bnn_csim_pool(_ptr(z8, U8P), _ptr(z8, U8P), 1, MAXH + 1, 2, 1) == -1


def test_popcount_fast_path_matches_adder_tree(lib):
    rng = np.random.default_rng(3)
    v = rng.integers(0, 2 ** 63, size=2000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, size=2000).astype(np.uint64)
    v[:4] = [0, 2 ** 64 - 1, 1, 2 ** 63]
    assert lib.bnn_csim_popcount_check(_ptr(v, U64P), v.size) == 0


# ---------------------------------------------------------------- network level
def _run_csim(lib, params, images):
    n = images.shape[0]
    scores = np.zeros((n, cfg.NUM_CLASSES), dtype=np.int32)
    dummy8 = np.zeros(1, dtype=np.uint8)
    dummy32 = np.zeros(1, dtype=np.int32)
    assert lib.bnn_csim_run(_ptr(params, U64P), _ptr(dummy8, U8P), _ptr(dummy32, I32P), 0, 0) == 0
    imgs = np.ascontiguousarray(images.reshape(n, -1))
    assert lib.bnn_csim_run(_ptr(params, U64P), _ptr(imgs, U8P), _ptr(scores, I32P), 1, n) == 0
    return scores


def _images(rng, n):
    imgs = rng.integers(0, 256, size=(n, cfg.IN_H, cfg.IN_W), dtype=np.uint8)
    # some structured images too: blank, saturated, blobs
    imgs[0] = 0
    imgs[1] = 255
    yy, xx = np.mgrid[0:cfg.IN_H, 0:cfg.IN_W]
    for i in range(2, min(n, 8)):
        cy, cx, r = rng.integers(6, 22), rng.integers(6, 22), rng.integers(3, 9)
        imgs[i] = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, 255, 0)
    return imgs


@pytest.mark.parametrize("seed, n", [(0, 24), (1, 70)])   # 70 > the 64-image chunk of bnn_csim_run
def test_network_csim_matches_model(lib, seed, n):
    rng = np.random.default_rng(seed)
    params = fmt.pack_params(fmt.random_layers(rng))
    images = _images(rng, n)
    eng = model.BnnEngineModel()
    eng.load_params(params)
    want = eng.classify(images)
    got = _run_csim(lib, params, images)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want, axis=0)) > 10  # the scores actually depend on the image


def test_network_weights_persist_across_starts(lib):
    rng = np.random.default_rng(5)
    params = fmt.pack_params(fmt.random_layers(rng))
    eng = model.BnnEngineModel()
    eng.load_params(params)
    _run_csim(lib, params, _images(rng, 2))
    images = _images(rng, 6)
    scores = np.zeros((6, cfg.NUM_CLASSES), dtype=np.int32)
    assert lib.bnn_csim_run(_ptr(params, U64P), _ptr(images, U8P), _ptr(scores, I32P), 1, 6) == 0
    np.testing.assert_array_equal(scores, eng.classify(images))


# ---------------------------------------------------------------- testbench and build hygiene
def _write_golden(folder, params, images, scores):
    params.astype("<u8").tofile(str(folder / "params.bin"))
    images.astype(np.uint8).tofile(str(folder / "images.bin"))
    scores.astype("<i4").tofile(str(folder / "scores.bin"))


def test_testbench_passes_on_golden_vectors(tmp_path):
    exe = csim.compile_testbench("bnn")
    rng = np.random.default_rng(11)
    params = fmt.pack_params(fmt.random_layers(rng))
    images = _images(rng, 12)
    eng = model.BnnEngineModel()
    eng.load_params(params)
    scores = eng.classify(images)
    _write_golden(tmp_path, params, images, scores)
    proc = subprocess.run([str(exe), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS 12/12" in proc.stdout

    bad = scores.copy()
    bad[3, 7] += 1
    _write_golden(tmp_path, params, images, bad)
    proc = subprocess.run([str(exe), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "mismatch: image 3 class 7" in proc.stdout and "FAIL 11/12" in proc.stdout


def test_hls_sources_compile_warning_free(tmp_path):
    """-Wall clean (HLS pragmas are unknown to g++: -Wno-unknown-pragmas is the only exception)."""
    cxx = csim.find_compiler()
    src = csim.hls_src_dir("bnn")
    for name in ("bnn_top.cpp", "bnn_csim.cpp", "bnn_tb.cpp"):
        cmd = [cxx, "-O2", "-Wall", "-Wno-unknown-pragmas", "-std=c++14", "-fPIC", *csim.include_flags("bnn"),
               "-c", str(src / name), "-o", str(tmp_path / (name + ".o"))]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
