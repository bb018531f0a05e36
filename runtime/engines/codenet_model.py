"""Bit-exact numpy model of the CoDeNet engine (hls_src/codenet/FORMAT.md).

`run_program(program_words, weights_blob, arena)` decodes the same packed buffers the hardware
reads and runs every layer in order, writing into `arena` (uint8) in place.

Exactness of the fast paths (DESIGN.md section 6):
- 1x1 / patch convolutions are one matmul per layer over all output pixels. The bias is added
  afterwards in int64, so every partial sum of the matmul is bounded by
  `B = max_o sum_k |w[o, k]| * xmax` with xmax = 128 (int8 input) or 255 (uint8 input). The
  matmul runs in float32 when B < 2^24 (every product and every partial sum is an integer
  exactly representable, in any summation order, FMA or not), in float64 when B < 2^53, and in
  int64 otherwise. The choice is made per layer from the actual weights (`matmul_dtype`) and
  asserted by `_check_exact`.
- Depthwise / deformable 3x3: nine vectorised multiply-adds in int32 (|acc| < 9 * 128 * 255).
- Requantization in int64, exactly as FORMAT.md.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import codenet_config as cfg
from .codenet_program import unpack_program, validate_layer

F32_EXACT = 1 << 24
F64_EXACT = 1 << 53


class EngineLimitError(ValueError):
    """A descriptor outside the engine limits or a buffer access outside the arena."""


# ------------------------------------------------------------------------ arena access
def _strided(arena, off, rows, cols, row_stride, what, name):
    """View (rows, cols) of the arena at byte `off`, rows `row_stride` bytes apart."""
    end = off + (rows - 1) * row_stride + cols
    if off < 0 or end > arena.size:
        raise EngineLimitError("layer {!r}: {} bytes {}..{} lie outside the {}-byte arena".format(
            name, what, off, end - 1, arena.size))
    base = arena[off:end]
    return as_strided(base, shape=(rows, cols), strides=(row_stride * base.strides[0], base.strides[0]),
                      writeable=True)


def read_input(arena, spec):
    """Logical input (in_h, in_w, cin) as int16 (gather applied, signedness applied)."""
    g = np.asarray(spec.gather, np.int64)
    top = int(g.max()) + 1
    view = _strided(arena, spec.in_off, spec.in_h * spec.in_w, top, spec.in_cs, "input", spec.name)
    if spec.in_signed:
        view = view.view(np.int8)
    if top == spec.cin and np.array_equal(g, np.arange(spec.cin)):
        x = view
    else:
        x = view[:, g]
    return x.reshape(spec.in_h, spec.in_w, spec.cin)


def zp_value(spec):
    z = int(spec.in_zp) & 0xFF
    return z - 256 if (spec.in_signed and z >= 128) else z


def write_output(arena, spec, y):
    """y: (out_h * out_w, cout) int64 already clamped to the output byte range."""
    view = _strided(arena, spec.out_off + spec.out_choff, spec.out_h * spec.out_w, spec.cout, spec.out_cs,
                    "output", spec.name)
    view[...] = y.astype(np.int8 if spec.out_signed else np.uint8).view(np.uint8)


def read_dilation(arena, spec):
    v = _strided(arena, spec.dil_off, spec.out_h * spec.out_w, 1, spec.dil_cs, "dilation map", spec.name)
    d = v[:, 0].astype(np.int64)
    if d.size and d.max() > cfg.MAX_DIL:
        bad = int(np.argmax(d > cfg.MAX_DIL))
        raise EngineLimitError("layer {!r}: dilation map value {} at output pixel ({}, {}) exceeds {} "
                               "(MAX_DIL)".format(spec.name, int(d[bad]), bad // spec.out_w,
                                                  bad % spec.out_w, cfg.MAX_DIL))
    return d


# ------------------------------------------------------------------------ arithmetic
def matmul_dtype(weights, in_signed):
    """Exact BLAS dtype for x @ w.T: float32 / float64 / int64 from the partial-sum bound."""
    xmax = 128 if in_signed else 255
    b = int(np.abs(np.asarray(weights, np.int64)).sum(axis=1).max()) * xmax if np.size(weights) else 0
    if b < F32_EXACT:
        return np.float32, b
    if b < F64_EXACT:
        return np.float64, b
    return np.int64, b


def _check_exact(dtype, bound):
    limit = {np.float32: F32_EXACT, np.float64: F64_EXACT}.get(dtype)
    if limit is not None and not bound < limit:
        raise AssertionError("inexact matmul path {} for partial-sum bound {}".format(dtype, bound))


def requant(acc, bias, mult, shift, zp_out, clamp_lo, clamp_hi, shift_only=False):
    """FORMAT.md requantization. acc: (..., cout) int64 WITHOUT bias; per-channel params (cout,)."""
    acc = acc + np.asarray(bias, np.int64)
    s = np.asarray(shift, np.int64)
    if shift_only:
        t = acc
    else:
        t = acc * np.asarray(mult, np.int64)
    half = np.where(s > 0, np.left_shift(1, np.maximum(s - 1, 0)), 0)
    r = (t + half) >> s
    r += np.asarray(zp_out, np.int64)
    return np.clip(r, clamp_lo, clamp_hi, out=r)


def _src_index(n_out, stride, up):
    return (np.arange(n_out) * stride) >> up


def conv1x1_inputs(x, spec):
    """The matmul's left operand: (out_h * out_w, K) of the logical input, plus whether the
    result must still be upsampled (in_mode 1 at stride 1 is computed on the small grid)."""
    if spec.in_mode == cfg.MODE_PATCH3X3:
        p, s = spec.pad, spec.stride
        h, w = spec.in_h, spec.in_w
        xp = np.full((h + 2 * p + 4 * s, w + 2 * p + 4 * s, spec.cin), zp_value(spec), x.dtype)
        xp[p:p + h, p:p + w] = x
        oh, ow = spec.out_h, spec.out_w
        cols = [xp[ky:ky + s * (oh - 1) + 1:s, kx:kx + s * (ow - 1) + 1:s] for ky in range(3) for kx in range(3)]
        return np.concatenate(cols, axis=2).reshape(oh * ow, 9 * spec.cin), False
    up = 1 if spec.in_mode == cfg.MODE_UPSAMPLE2 else 0
    if up and spec.stride == 1:
        return x.reshape(-1, spec.cin), True
    if spec.stride == 1:
        return x.reshape(-1, spec.cin), False
    ys, xs = _src_index(spec.out_h, spec.stride, up), _src_index(spec.out_w, spec.stride, up)
    return x[ys][:, xs].reshape(-1, spec.cin), False


def conv1x1_acc(x, spec, wmat=None, dtype=None):
    """Accumulators without bias, (out_h * out_w, cout) int64."""
    a, upsample = conv1x1_inputs(x, spec)
    if wmat is None:
        dtype, bound = matmul_dtype(spec.weights, spec.in_signed)
        _check_exact(dtype, bound)
        wmat = np.asarray(spec.weights).astype(dtype).T
    acc = (a.astype(wmat.dtype) @ wmat)
    acc = acc.astype(np.int64)
    if upsample:
        acc = acc.reshape(spec.in_h, 1, spec.in_w, 1, spec.cout)
        acc = np.broadcast_to(acc, (spec.in_h, 2, spec.in_w, 2, spec.cout)).reshape(-1, spec.cout)
    return acc


def dw3x3_acc(x, spec, dil=None, wtaps=None):
    """Accumulators without bias, (out_h * out_w, cout) int32 -> int64."""
    if spec.in_mode == cfg.MODE_UPSAMPLE2:
        x = np.repeat(np.repeat(x, 2, axis=0), 2, axis=1)
    h, w, c = x.shape
    oh, ow = spec.out_h, spec.out_w
    if wtaps is None:
        wtaps = np.asarray(spec.weights, np.int32).T.copy()   # (9, c)
    zp = zp_value(spec)
    acc = np.zeros((oh * ow, c), np.int32)
    if spec.deformable:
        m = cfg.MAX_DIL
        wp = w + 2 * m
        xp = np.full((h + 2 * m, wp, c), zp, np.int32)
        xp[m:m + h, m:m + w] = x
        flat = xp.reshape(-1, c)
        base = ((np.arange(oh)[:, None] + m) * wp + (np.arange(ow)[None, :] + m)).ravel()
        tmp = np.empty((oh * ow, c), np.int32)
        for ky in range(3):
            for kx in range(3):
                idx = base + ((ky - 1) * wp + (kx - 1)) * dil
                np.take(flat, idx, axis=0, out=tmp)
                tmp *= wtaps[ky * 3 + kx]
                acc += tmp
        return acc.astype(np.int64)
    p, s = spec.pad, spec.stride
    xp = np.full((h + 2 * p + 2 * s, w + 2 * p + 2 * s, c), zp, np.int32)
    xp[p:p + h, p:p + w] = x
    acc3 = acc.reshape(oh, ow, c)
    tmp = np.empty((oh, ow, c), np.int32)
    for ky in range(3):
        for kx in range(3):
            np.multiply(xp[ky:ky + s * (oh - 1) + 1:s, kx:kx + s * (ow - 1) + 1:s], wtaps[ky * 3 + kx], out=tmp)
            acc3 += tmp
    return acc.astype(np.int64)


# ------------------------------------------------------------------------ layers
class _Layer:
    """A decoded layer with its weights in the layout and dtype the fast path uses."""

    def __init__(self, spec):
        self.spec = spec
        if spec.op == "conv1x1":
            self.dtype, self.bound = matmul_dtype(spec.weights, spec.in_signed)
            _check_exact(self.dtype, self.bound)
            self.wmat = np.ascontiguousarray(np.asarray(spec.weights).astype(self.dtype).T)
        else:
            self.dtype, self.bound = np.int32, 9 * 128 * 255
            self.wtaps = np.asarray(spec.weights, np.int32).T.copy()
        self.mult = np.ones(spec.cout, np.int64) if spec.shift_only else np.asarray(spec.mult, np.int64)

    @property
    def path(self):
        return "{} {}".format(self.spec.op, np.dtype(self.dtype).name)

    def run(self, arena):
        s = self.spec
        x = read_input(arena, s)
        if s.op == "conv1x1":
            acc = conv1x1_acc(x, s, self.wmat)
        else:
            dil = read_dilation(arena, s) if s.deformable else None
            acc = dw3x3_acc(x, s, dil, self.wtaps)
        y = requant(acc, s.bias, self.mult, s.shift, s.zp_out, s.clamp_lo, s.clamp_hi)
        write_output(arena, s, y)


def run_layer(spec, arena):
    """Run one LayerSpec on the arena (validates it first)."""
    validate_layer(spec)
    _Layer(spec).run(arena)


def decode_program(program_words, weights_blob):
    """Decode and validate: -> list of _Layer (raises EngineLimitError on a bad descriptor)."""
    words = np.asarray(program_words, np.uint32).ravel()
    n = words.size // cfg.DESC_WORDS
    if n > cfg.MAX_LAYERS:
        raise EngineLimitError("program has {} layers, the engine runs at most {} (MAX_LAYERS)".format(
            n, cfg.MAX_LAYERS))
    try:
        specs = unpack_program(words[:n * cfg.DESC_WORDS], weights_blob)
        for s in specs:
            validate_layer(s)
    except EngineLimitError:
        raise
    except ValueError as exc:
        raise EngineLimitError(str(exc)) from None
    return [_Layer(s) for s in specs]


class _PlanCache:
    """The last decoded program: per-frame calls skip the weight decoding when the program and
    weights buffers are unchanged (compared byte for byte)."""

    def __init__(self):
        self.program = None
        self.weights = None
        self.layers = None

    def get(self, program_words, weights_blob):
        p = np.asarray(program_words, np.uint32).ravel()
        w = np.asarray(weights_blob, np.uint8).ravel()
        if (self.layers is not None and p.shape == self.program.shape and w.shape == self.weights.shape
                and np.array_equal(p, self.program) and np.array_equal(w, self.weights)):
            return self.layers
        layers = decode_program(p, w)
        self.program, self.weights, self.layers = p.copy(), w.copy(), layers
        return layers


_cache = _PlanCache()


def run_program(program_words, weights_blob, arena, profile=None):
    """Run every layer of the program on `arena` (1-D uint8, modified in place).
    `profile`: optional list receiving (layer name, path, seconds) per layer."""
    if not (isinstance(arena, np.ndarray) and arena.dtype == np.uint8 and arena.ndim == 1):
        raise TypeError("arena must be a 1-D uint8 numpy array")
    layers = _cache.get(program_words, weights_blob)
    if profile is None:
        for layer in layers:
            layer.run(arena)
        return
    import time
    for layer in layers:
        t0 = time.perf_counter()
        layer.run(arena)
        profile.append((layer.spec.name, layer.path, time.perf_counter() - t0))
