"""Bit-exact numpy model of the BNN engine (contract: hls_src/bnn/FORMAT.md).

Same integers as the HLS C-simulation, computed fast: activations are kept as float32 0 / 1
(the bits themselves), weights as float32 +-1 (bit 1 = +1, bit 0 = -1), and every layer is one
float32 BLAS matmul (im2col for the 3x3 convs).

Binary layers: with a in {0, 1}^K and w in {-1, +1}^K, the popcount of XNOR(a, w_bits) is
    pop = a.w + nneg,   nneg = number of -1 weights in the row
(an agreeing position contributes 1 either as a_i * w_i = 1, or as a 0 against a -1 weight), so
    pop >= T  <=>  a.w >= T - nneg  <=>  a.w > T - nneg - 0.5,
and the output layer's acc = 2 * pop - K = 2 * a.w - sum(w). conv0: acc = pixels . w directly.

Exactness: a float32 holds every integer of magnitude <= 2^24 exactly, and a sum of integers
whose partial sums all stay below 2^24 in magnitude is computed exactly, in any order (BLAS
blocking, FMA): every addition's exact result is representable. The partial sums are bounded by
  conv0      : |acc| <= 9 * 255 * Cin   (Cin = 1: 2,295)
  binary     : |a.w| <= K = 9 * Cin or Cin   (largest here: fc0, K = 1,024)
all far below 2^24 = 16,777,216; `_assert_exact` checks the bound from the actual dims whenever
weights are loaded or a layer function runs.

Thresholds are first clamped exactly as the HLS loader does (binary: 0 .. K + 1; conv0:
-B .. B + 1 with B = 9 * 255 * Cin), which changes no output; the compare is then
acc > (integer threshold) - 0.5, a half-integer of magnitude < 2^22, exactly representable.
"""

import numpy as np

from . import bnn_config as cfg
from .bnn_format import unpack_params, validate_params
from .parallel import blas_single_threaded, default_workers, run_spread

F32_EXACT = 1 << 24
DEFAULT_CHUNK = 8           # small chunks keep each layer's im2col in the caches


def _assert_exact(bound, what):
    if not bound < F32_EXACT:
        raise ValueError("{}: accumulator bound {} is not below 2^24: float32 would not be exact".format(what, bound))


# ---------------------------------------------------------------- internal float32 kernels (0/1 activations)
def _im2col3x3(x):
    """(N, H, W, C) -> (N * (H-2) * (W-2), 9 * C), columns ordered (ky, kx, c) like FORMAT.md."""
    n, h, w, c = x.shape
    s = x.strides
    win = np.lib.stride_tricks.as_strided(
        x, shape=(n, h - 2, w - 2, 3, 3, c), strides=(s[0], s[1], s[2], s[1], s[2], s[3]), writeable=False)
    return win.reshape(n * (h - 2) * (w - 2), 9 * c)


def _step(acc, thr_half):
    """float32 1.0 where acc > thr_half (= acc >= thr for integers), else 0.0."""
    return (acc > thr_half).astype(np.float32)


def _conv(x, wmat, thr_half):
    """3x3 valid conv of float32 (N, H, W, C) with wmat (9C, Cout) +-1, threshold -> 0/1."""
    n, h, w, _ = x.shape
    return _step(_im2col3x3(x) @ wmat, thr_half).reshape(n, h - 2, w - 2, wmat.shape[1])


def _pool(x):
    """2x2 stride-2 max on 0/1 (= OR); a trailing odd row / column is dropped."""
    h2, w2 = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
    return np.maximum(np.maximum(x[:, 0:h2:2, 0:w2:2], x[:, 0:h2:2, 1:w2:2]),
                      np.maximum(x[:, 1:h2:2, 0:w2:2], x[:, 1:h2:2, 1:w2:2]))


def _fc(x, wmat, thr_half):
    return _step(x @ wmat, thr_half)


def _fc_out(x, wmat, wsum, shift, bias):
    acc = 2 * (x @ wmat).astype(np.int64) - wsum            # exact integers 2 * pop - K
    return ((acc << shift) + bias).astype(np.int32)         # int32 wrap, as ap_int<32>


def _wmat(weights):
    """+-1 weights (Cout, ...) -> float32 (K, Cout) contiguous."""
    w = np.asarray(weights)
    return np.ascontiguousarray(w.reshape(w.shape[0], -1).T.astype(np.float32))


def _binary_thr_half(weights, thresholds):
    """Threshold on a.w (0/1 activations) for pop >= T, minus 0.5 (float32)."""
    w = np.asarray(weights).reshape(len(thresholds), -1)
    k = w.shape[1]
    nneg = (w < 0).sum(axis=1).astype(np.int64)
    t = np.clip(np.asarray(thresholds, dtype=np.int64), 0, k + 1)
    return (t - nneg).astype(np.float32) - np.float32(0.5)


def _conv0_thr_half(thresholds, cin):
    b = 9 * 255 * cin
    t = np.clip(np.asarray(thresholds, dtype=np.int64), -b, b + 1)
    return t.astype(np.float32) - np.float32(0.5)


def _wsum(weights):
    w = np.asarray(weights)
    return w.reshape(w.shape[0], -1).sum(axis=1).astype(np.int64)


def _bits(x):
    return np.asarray(x).astype(np.float32)


def _check_weights(weights, shape, name):
    w = np.asarray(weights)
    if w.shape != shape:
        raise ValueError("{}: weights shape {} != expected {}".format(name, w.shape, shape))
    return w


# ---------------------------------------------------------------- public layer functions (bits as uint8 0/1)
def conv0_layer(images, weights, thresholds):
    """images uint8 (N, H, W, Cin); weights +-1 (Cout, 3, 3, Cin); thresholds int (Cout,) ->
    bits uint8 (N, H-2, W-2, Cout): acc = sum(w ? +p : -p) >= T."""
    x = np.asarray(images)
    cin = x.shape[3]
    wt = np.asarray(weights)
    _check_weights(wt, (wt.shape[0], 3, 3, cin), "conv0_layer")
    _assert_exact(9 * 255 * cin, "conv0_layer")
    return _conv(x.astype(np.float32), _wmat(wt), _conv0_thr_half(thresholds, cin)).astype(np.uint8)


def binconv_layer(bits, weights, thresholds):
    """bits uint8 0/1 (N, H, W, Cin); weights +-1 (Cout, 3, 3, Cin) -> bits (N, H-2, W-2, Cout):
    popcount(XNOR) >= T."""
    x = np.asarray(bits)
    cin = x.shape[3]
    wt = np.asarray(weights)
    _check_weights(wt, (wt.shape[0], 3, 3, cin), "binconv_layer")
    _assert_exact(9 * cin, "binconv_layer")
    return _conv(_bits(x), _wmat(wt), _binary_thr_half(wt, thresholds)).astype(np.uint8)


def pool_or(bits):
    """bits (N, H, W, C) -> (N, H // 2, W // 2, C): OR over 2x2 windows."""
    x = np.asarray(bits, dtype=np.uint8)
    h2, w2 = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
    return (x[:, 0:h2:2, 0:w2:2] | x[:, 0:h2:2, 1:w2:2] | x[:, 1:h2:2, 0:w2:2] | x[:, 1:h2:2, 1:w2:2])


def fc_layer(bits, weights, thresholds):
    """bits (N, Cin); weights +-1 (Cout, Cin) -> bits (N, Cout): popcount(XNOR) >= T."""
    x = np.asarray(bits)
    cin = x.shape[1]
    wt = np.asarray(weights)
    _check_weights(wt, (wt.shape[0], cin), "fc_layer")
    _assert_exact(cin, "fc_layer")
    return _fc(_bits(x), _wmat(wt), _binary_thr_half(wt, thresholds)).astype(np.uint8)


def fc_out_layer(bits, weights, shift, bias):
    """bits (N, Cin); weights +-1 (Cout, Cin) -> int32 (N, Cout) = ((2 pop - Cin) << shift) + bias."""
    x = np.asarray(bits)
    cin = x.shape[1]
    wt = np.asarray(weights)
    _check_weights(wt, (wt.shape[0], cin), "fc_out_layer")
    _assert_exact(2 * cin, "fc_out_layer")
    return _fc_out(_bits(x), _wmat(wt), _wsum(wt), np.asarray(shift, dtype=np.int64),
                   np.asarray(bias, dtype=np.int64))


# ---------------------------------------------------------------- the engine
class BnnEngineModel:
    """What the IP computes. load_params = LOAD (mode 0), classify = CLASSIFY (mode 1)."""

    def __init__(self, chunk=DEFAULT_CHUNK, workers=None):
        self.chunk = int(chunk)
        self.workers = int(workers or default_workers())
        self._buffers = None

    @property
    def loaded(self):
        return self._buffers is not None

    def load_params(self, words):
        """Validate the parameter buffer and decode it into the internal 'on-chip buffers'."""
        validate_params(words)
        layers = unpack_params(words)
        _assert_exact(9 * 255 * cfg.IN_C, "conv0")
        for k, name in ((cfg.K1, "conv1"), (cfg.K2, "conv2"), (cfg.K3, "conv3"), (cfg.KF0, "fc0"), (cfg.KF1, "fc1")):
            _assert_exact(k, name)
        buf = {"conv0": (_wmat(layers["conv0"]["weights"]),
                         _conv0_thr_half(layers["conv0"]["thresholds"], cfg.IN_C))}
        for name in ("conv1", "conv2", "conv3", "fc0"):
            w = layers[name]["weights"]
            buf[name] = (_wmat(w), _binary_thr_half(w, layers[name]["thresholds"]))
        w = layers["fc1"]["weights"]
        buf["fc1"] = (_wmat(w), _wsum(w), layers["fc1"]["shift"].astype(np.int64),
                      layers["fc1"]["bias"].astype(np.int64))
        self._buffers = buf

    def _check_images(self, images):
        x = images
        if not isinstance(x, np.ndarray):
            raise ValueError("images must be a numpy uint8 array, got {}".format(type(x).__name__))
        if x.dtype != np.uint8:
            raise ValueError("images must have dtype uint8, got {}".format(x.dtype))
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.shape[1:] != (cfg.IN_H, cfg.IN_W, cfg.IN_C):
            raise ValueError("images must have shape (N, {h}, {w}) or (N, {h}, {w}, {c}), got {s}".format(
                h=cfg.IN_H, w=cfg.IN_W, c=cfg.IN_C, s=images.shape))
        if x.shape[0] > cfg.MAX_BATCH:
            raise ValueError("at most MAX_BATCH = {} images per call, got {}".format(cfg.MAX_BATCH, x.shape[0]))
        return x

    def classify(self, images):
        """uint8 (N, 28, 28) or (N, 28, 28, 1) -> int32 scores (N, NUM_CLASSES)."""
        if self._buffers is None:
            raise RuntimeError("no parameters loaded: call load_params first")
        x = self._check_images(images)
        n = x.shape[0]
        out = np.empty((n, cfg.NUM_CLASSES), dtype=np.int32)
        starts = range(0, n, self.chunk)

        def run(start):
            stop = min(n, start + self.chunk)
            out[start:stop] = self._forward(x[start:stop])

        limits = blas_single_threaded() if self.workers > 1 and len(starts) > 1 else None
        if limits is None:
            for start in starts:
                run(start)
            return out
        with limits:
            run_spread(run, starts, self.workers)
        return out

    def _forward(self, x):
        b = self._buffers
        a = _conv(x.astype(np.float32), *b["conv0"])
        a = _conv(a, *b["conv1"])
        a = _pool(a)
        a = _conv(a, *b["conv2"])
        a = _conv(a, *b["conv3"])
        a = _pool(a)
        a = a.reshape(a.shape[0], -1)                       # NHWC flatten = FORMAT.md fc0 order
        a = _fc(a, *b["fc0"])
        return _fc_out(a, *b["fc1"])
