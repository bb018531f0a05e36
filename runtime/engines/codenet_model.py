"""Bit-exact numpy model of the CoDeNet engine (hls_src/codenet/FORMAT.md).

`run_program(program_words, weights_blob, arena)` decodes the same packed buffers the hardware
reads, checks every descriptor as the C simulation does (`codenet_csim_check`), and runs the layers
in order, writing into `arena` (1-D uint8) in place. It reproduces the engine for every descriptor
the engine accepts, including output sizes other than the input geometry gives (taps outside the
seen input read the zero point), dilation bytes above MAX_DIL (saturated to MAX_DIL, as the
engine does) and accumulators that wrap at ACC_BITS (only possible in programs that `validate_layer`
refuses).

Exactness of the fast paths (DESIGN.md section 6). Per layer, from the actual weights:

  B  = max_o sum_k |w[o, k]| * xmax      (xmax = 128 for int8 input, 255 for uint8 input)
  Bb = max_o (sum_k |w[o, k]| * xmax + |bias[o]|)

- Accumulation. 1x1 / patch convolutions are one matmul per layer over all output pixels
  (`x @ W`, bias excluded), so every partial sum, in any summation order (BLAS blocking, FMA),
  is an integer of magnitude <= B. It runs in float32 when B < 2^24 (every such integer is
  exactly representable), float64 when B < 2^53, else int64 (`matmul_dtype`). Depthwise 3x3:
  the nine taps are strided views of a zero-point-padded copy of the (upsampled) input;
  deformable: one gather with per-pixel index arrays built from the dilation map. Summed in
  int16 when B < 2^15, else int32 (B <= 9 * 128 * 255).
- No wrap. When Bb < 2^(ACC_BITS-1) the engine's ACC_BITS accumulator (which starts at the bias)
  never wraps; that is what `validate_layer` demands of compiled programs. Otherwise the layer
  takes the exact int64 path, which wraps the sum to ACC_BITS as ap_int does.
- Requantization (`_Layer._init_requant` picks per layer, from the per-channel bounds
  |acc_c| <= B_c = sum_k |w[c, k]| * xmax): int32 when B_c * M + |bias * M + round + zp * 2^S|
  < 2^31 (t = acc * M + that constant, >> S, clamp); else float64 with scale = M * 2^-S and
  offs = (bias * M + round) * 2^-S + zp_out (round = 2^(S-1) if S > 0 else 0):
      v = acc * scale + offs = ((acc + bias) * M + round) / 2^S + zp_out   exactly,
  since v * 2^S is an integer below 2^48 and float64 holds 53 bits; floor(v) is FORMAT.md's
  ((t + round) >> S) + zp_out and clamp(floor(v)) = floor(clamp(v)) for integer bounds. The
  float64 result is floored either by an int32 cast after adding a power of two O >= 256 that
  makes it positive (exact while 2O * 2^S <= 2^53; stored modulo 256, O being a multiple of 256)
  or by np.floor. The int64 reference `requant` implements FORMAT.md literally; the tests compare
  every path with it, and the whole model with the C simulation.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import codenet_config as cfg
from .codenet_program import unpack_program, validate_layer

F32_EXACT = 1 << 24
F64_EXACT = 1 << 53
ACC_MAX = (1 << (cfg.ACC_BITS - 1)) - 1


class EngineLimitError(ValueError):
    """A descriptor outside the engine limits or a buffer access outside the arena."""


# ------------------------------------------------------------------------ reference pieces
def wrap_acc(acc):
    """Two's complement wrap of int64 accumulators to ACC_BITS (what ap_int<ACC_BITS> does)."""
    m = 1 << cfg.ACC_BITS
    return ((np.asarray(acc, np.int64) + (m >> 1)) & (m - 1)) - (m >> 1)


def requant(acc, mult, shift, zp_out, clamp_lo, clamp_hi, shift_only=False):
    """FORMAT.md requantization, literally, in int64. acc: (..., cout) int64 accumulators WITH
    the bias (as the engine's accumulator holds them); per-channel params (cout,)."""
    acc = np.asarray(acc, np.int64)
    s = np.asarray(shift, np.int64)
    t = acc if shift_only else acc * np.asarray(mult, np.int64)
    rnd = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
    r = (t + rnd) >> s
    return np.clip(r + np.asarray(zp_out, np.int64), clamp_lo, clamp_hi)


def matmul_dtype(weights, in_signed):
    """(dtype, B): the exact BLAS dtype for x @ w.T from the partial-sum bound B."""
    b = partial_sum_bound(weights, in_signed)
    if b < F32_EXACT:
        return np.float32, b
    if b < F64_EXACT:
        return np.float64, b
    return np.int64, b


def partial_sum_bound(weights, in_signed):
    """B = max_o sum_k |w[o, k]| * xmax."""
    xmax = 128 if in_signed else 255
    w = np.abs(np.asarray(weights, np.int64))
    return int(w.sum(axis=1).max()) * xmax if w.size else 0


def _assert_exact(dtype, bound):
    limit = {np.dtype(np.float32): F32_EXACT, np.dtype(np.float64): F64_EXACT,
             np.dtype(np.int16): 1 << 15, np.dtype(np.int32): 1 << 31}.get(np.dtype(dtype))
    if limit is not None and not bound < limit:
        raise AssertionError("inexact path {} for partial-sum bound {}".format(np.dtype(dtype).name, bound))


# ------------------------------------------------------------------------ arena access
def _arena_limit(arena):
    return min(arena.size, 1 << 32)     # the engine computes 32-bit byte offsets


def _strided(arena, off, rows, cols, row_stride, what, name):
    """(rows, cols) uint8 view of the arena at byte `off`, rows `row_stride` bytes apart."""
    end = off + (rows - 1) * row_stride + cols
    if off < 0 or end > _arena_limit(arena):
        raise EngineLimitError("layer {!r}: {} bytes {}..{} lie outside the {}-byte arena".format(
            name, what, off, end - 1, arena.size))
    base = arena[off:end]
    st = base.strides[0]
    return as_strided(base, shape=(rows, cols), strides=(row_stride * st, st), writeable=True)


def _seen_index(n_out, step, offset, seen, up):
    """Physical row/column of each output position (seen coordinate n * step + offset) and
    whether it lies inside the seen (possibly upsampled) input."""
    s = np.arange(n_out)[:, None] * step + np.asarray(offset).reshape(1, -1)
    valid = (s >= 0) & (s < seen)
    return np.where(valid, s >> up, 0), valid


# ------------------------------------------------------------------------ layers
class _Layer:
    """One decoded layer: weights in the layout and dtype of its fast path, index arrays,
    requantization constants of its requant path."""

    def __init__(self, spec):
        self.spec = s = spec
        self.name = spec.name
        self.up = 1 if s.in_mode == cfg.MODE_UPSAMPLE2 else 0
        self.seen_h, self.seen_w = s.in_h << self.up, s.in_w << self.up
        self.p_in, self.p_out = s.in_h * s.in_w, s.out_h * s.out_w
        self.in_dtype = np.int8 if s.in_signed else np.uint8
        z = int(s.in_zp) & 0xFF
        self.zp = z - 256 if (s.in_signed and z >= 128) else z
        g = np.asarray(s.gather, np.int64)
        self.g0, self.span = int(g.min()), int(g.max() - g.min()) + 1
        self.g_slice = np.array_equal(g, np.arange(self.g0, self.g0 + s.cin))
        self.g_rel = g - self.g0
        self.g_idx = g.astype(np.intp)
        w = np.asarray(s.weights, np.int64)
        self.bound = partial_sum_bound(w, s.in_signed)
        self.bound_c = np.abs(w).sum(axis=1) * (128 if s.in_signed else 255)   # per output channel
        self._init_requant()
        self._bound_arena = None
        if s.op == "conv1x1":
            self._init_conv(w)
        else:
            self._init_dw(w)
        self.path += " rq:" + self.rq

    # ---- requantization ----------------------------------------------------------------
    def _init_requant(self, prefer=None):
        """Pick the cheapest exact requant path from per-channel bounds (|acc| <= bound_c):
        'i32'    t = acc * M + c with c = bias * M + round + zp_out * 2^S in int32, then
                 clamp(t >> S): needs bound_c * M + |c| < 2^31 for every channel;
        'f64i32' v = acc * scale + offs + O (float64, exact, see the module docstring) with O a
                 power of two >= 256 above |v - O|, cast to int32 (truncation = floor, v > 0),
                 clamped, stored modulo 256 (O is a multiple of 256): needs 2O * 2^S <= 2^53;
        'f64'    v = acc * scale + offs, clamp, floor, store (always exact without wrap);
        'wrap'   int64 with the ACC_BITS wrap (FORMAT.md literally)."""
        s = self.spec
        bias = np.asarray(s.bias, np.int64)
        self.bias = bias
        self.mult = np.ones(s.cout, np.int64) if s.shift_only else np.asarray(s.mult, np.int64)
        sh = np.asarray(s.shift, np.int64)
        zp = np.asarray(s.zp_out, np.int64)
        rnd = np.where(sh > 0, np.left_shift(np.int64(1), np.maximum(sh - 1, 0)), 0)
        self.bound_bias = int((self.bound_c + np.abs(bias)).max())
        self.wraps = self.bound_bias > ACC_MAX
        m = self.mult
        # float64: v = acc * scale + offs = ((acc + bias) * M + round) / 2^S + zp_out, exactly
        self.scale = m.astype(np.float64) * np.ldexp(1.0, -sh)
        self.offs = (bias * m + rnd).astype(np.float64) * np.ldexp(1.0, -sh) + zp.astype(np.float64)
        c = bias * m + rnd + (zp << sh)
        vmax = (self.bound_c * np.abs(m) + np.abs(bias * m + rnd)) / np.ldexp(1.0, sh) + np.abs(zp)
        k = max(8, int(np.ceil(np.log2(float(vmax.max()) + 2))))
        ok = {"wrap": self.wraps,
              "i32": not self.wraps and int((self.bound_c * np.abs(m) + np.abs(c)).max()) < (1 << 31),
              "f64i32": not self.wraps and k <= 29 and int(sh.max()) + k + 1 <= 53,
              "f64": not self.wraps}
        self.rq = prefer if prefer and ok[prefer] else next(p for p in ("wrap", "i32", "f64i32", "f64") if ok[p])
        if self.rq == "i32":
            self.m32, self.c32, self.s32 = m.astype(np.int32), c.astype(np.int32), sh.astype(np.int32)
        elif self.rq == "f64i32":
            self.offs_o = self.offs + float(1 << k)
            self.lo_o, self.hi_o = s.clamp_lo + (1 << k), s.clamp_hi + (1 << k)
        return ok

    def requant_fast(self, acc):
        """Requantize bias-less accumulators (any integer-valued dtype) -> int array of output
        values (int32 / float64), clamped; or, for the 'f64i32' path, values + O (store them
        modulo 256). Exact; see _init_requant."""
        s = self.spec
        if self.rq == "i32":
            t = acc.astype(np.int32)
            np.multiply(t, self.m32, out=t)
            np.add(t, self.c32, out=t)
            np.right_shift(t, self.s32, out=t)
            return np.clip(t, s.clamp_lo, s.clamp_hi, out=t)
        v = np.multiply(acc, self.scale)
        if self.rq == "f64i32":
            np.add(v, self.offs_o, out=v)
            t = v.astype(np.int32)
            return np.clip(t, self.lo_o, self.hi_o, out=t)
        np.add(v, self.offs, out=v)
        np.clip(v, s.clamp_lo, s.clamp_hi, out=v)
        return np.floor(v, out=v)

    def requant_values(self, acc):
        """Output values (int64) of bias-less accumulators, whatever the path (for tests)."""
        if self.rq == "wrap":
            return requant(wrap_acc(np.asarray(acc, np.int64) + self.bias), self.mult, self.spec.shift,
                           self.spec.zp_out, self.spec.clamp_lo, self.spec.clamp_hi)
        y = self.requant_fast(acc).astype(np.int64)
        if self.rq == "f64i32":
            y = y - (self.lo_o - self.spec.clamp_lo)
        return y

    def _store(self, y, out_u8, out5_u8):
        """Write output values into the arena as bytes (two's complement, modulo 256)."""
        s = self.spec
        if y.dtype.kind == "f":
            y = y.astype(np.int32)               # integral values (floored) in int32 range
        if out5_u8 is not None:
            small = np.empty(y.shape, np.uint8)
            np.copyto(small, y, casting="unsafe")
            np.copyto(out5_u8, small.reshape(s.in_h, 1, s.in_w, 1, s.cout))
        else:
            np.copyto(out_u8, y, casting="unsafe")

    # ---- conv1x1 -----------------------------------------------------------------------
    def _init_conv(self, w):
        s = self.spec
        self.dtype, _ = matmul_dtype(w, s.in_signed)
        _assert_exact(self.dtype, self.bound)
        patch = s.in_mode == cfg.MODE_PATCH3X3
        # input channel selection: a slice of the pixel row, the gather folded into the weights
        # (duplicated / permuted channels of a narrow window), or an explicit gather
        if patch or self.g_slice:
            self.sel = "slice" if self.g_slice else "gather"
            wm = w.T
        elif self.span <= 2 * s.cin:
            self.sel = "fold"
            wm = np.zeros((self.span, s.cout), np.int64)
            np.add.at(wm, self.g_rel, w.T)
        else:
            self.sel = "gather"
            wm = w.T
        self.wmat = np.ascontiguousarray(wm.astype(self.dtype))
        # pixel geometry
        if patch:
            self.geom = "patch"
            ys, vy = _seen_index(s.out_h, s.stride, np.arange(3) - s.pad, self.seen_h, 0)
            xs, vx = _seen_index(s.out_w, s.stride, np.arange(3) - s.pad, self.seen_w, 0)
            # (out_h, out_w, ky, kx) -> source row (p_in = the zero-point row)
            idx = ys[:, None, :, None] * s.in_w + xs[None, :, None, :]
            valid = vy[:, None, :, None] & vx[None, :, None, :]
            self.idx = np.where(valid, idx, self.p_in).reshape(self.p_out, 9)
            self.needs_zp = not valid.all()
        elif self.up == 0 and s.stride == 1 and (s.out_h, s.out_w) == (s.in_h, s.in_w):
            self.geom = "dense"
        elif self.up == 1 and s.stride == 1 and (s.out_h, s.out_w) == (2 * s.in_h, 2 * s.in_w):
            self.geom = "updense"
        else:
            self.geom = "general"
            ys, vy = _seen_index(s.out_h, s.stride, 0, self.seen_h, self.up)
            xs, vx = _seen_index(s.out_w, s.stride, 0, self.seen_w, self.up)
            idx = ys[:, :1] * s.in_w + xs[:, 0][None, :]
            valid = vy[:, :1] & vx[:, 0][None, :]
            self.idx = np.where(valid, idx, self.p_in).ravel()
            self.needs_zp = not valid.all()
        self.path = "conv1x1 {} {}".format(np.dtype(self.dtype).name, self.geom)

    def _conv_rows(self, rows):
        """Logical input rows (p, K) of the layer from the physical pixel rows view."""
        s = self.spec
        if self.sel == "slice":
            return rows[:, self.g0:self.g0 + s.cin]
        if self.sel == "fold":
            return rows[:, self.g0:self.g0 + self.span]
        return rows[:, self.g_idx]

    def _run_conv(self, rows):
        s = self.spec
        x = self._conv_rows(rows)
        if self.geom in ("patch", "general"):
            if self.needs_zp:
                src = np.empty((self.p_in + 1, x.shape[1]), x.dtype)
                src[:self.p_in] = x
                src[self.p_in] = self.zp
            else:
                src = x
            x = src[self.idx]
            if self.geom == "patch":
                x = x.reshape(self.p_out, 9 * s.cin)
        return np.matmul(x.astype(self.dtype), self.wmat)

    # ---- dw3x3 -------------------------------------------------------------------------
    def _init_dw(self, w):
        s = self.spec
        self.dtype = np.int16 if self.bound < (1 << 15) else np.int32
        _assert_exact(self.dtype, self.bound)
        self.w9 = np.ascontiguousarray(w.T.astype(self.dtype))          # (9, c)
        if s.deformable:
            self.geom = "deformable"
            self.yy = np.repeat(np.arange(s.out_h), s.out_w)
            self.xx = np.tile(np.arange(s.out_w), s.out_h)
            t = np.arange(9)
            self.dky, self.dkx = (t // 3 - 1)[:, None], (t % 3 - 1)[:, None]
            self.w9 = self.w9.reshape(9, 1, s.cout)
        else:
            # a zero-point-padded copy of the seen (upsampled) input covering every tap of every
            # output position; the nine taps are strided views of it. The border is written once.
            self.geom = "window"
            hp = max(s.pad + self.seen_h, (s.out_h - 1) * s.stride + 3)
            wp = max(s.pad + self.seen_w, (s.out_w - 1) * s.stride + 3)
            self.xp = np.full((hp, wp, s.cin), self.zp, self.dtype)
        self.path = "dw3x3 {} {}".format(np.dtype(self.dtype).name, self.geom)

    def _dw_input(self, rows):
        s = self.spec
        if self.g_slice:
            x = rows[:, self.g0:self.g0 + s.cin]
        else:
            x = rows[:, self.g_idx]
        return x

    def _run_dw(self, rows, dil):
        s = self.spec
        x = self._dw_input(rows)
        if dil is not None:
            src = np.empty((self.p_in + 1, s.cin), self.dtype)
            src[:self.p_in] = x
            src[self.p_in] = self.zp
            d = np.minimum(dil, cfg.MAX_DIL).astype(np.intp)
            sy = self.yy + self.dky * d                                     # seen (upsampled) grid
            sx = self.xx + self.dkx * d
            valid = (sy >= 0) & (sy < self.seen_h) & (sx >= 0) & (sx < self.seen_w)
            idx = (sy >> self.up) * s.in_w + (sx >> self.up)
            g = src[np.where(valid, idx, self.p_in)]                        # (9, p_out, c)
            np.multiply(g, self.w9, out=g)
            return np.add.reduce(g, axis=0, dtype=self.dtype)
        xp, p, st = self.xp, s.pad, s.stride
        x3 = x.reshape(s.in_h, s.in_w, s.cin)
        if self.up:
            for a in (0, 1):
                for b in (0, 1):
                    xp[p + a:p + self.seen_h:2, p + b:p + self.seen_w:2] = x3
        else:
            xp[p:p + s.in_h, p:p + s.in_w] = x3
        oh, ow = s.out_h, s.out_w
        acc = np.empty((oh, ow, s.cin), self.dtype)
        tmp = np.empty_like(acc)
        for t in range(9):
            ky, kx = divmod(t, 3)
            view = xp[ky:ky + st * (oh - 1) + 1:st, kx:kx + st * (ow - 1) + 1:st]
            if t == 0:
                np.multiply(view, self.w9[0], out=acc)
            else:
                np.multiply(view, self.w9[t], out=tmp)
                np.add(acc, tmp, out=acc)
        return acc.reshape(self.p_out, s.cin)

    # ---- common ------------------------------------------------------------------------
    def bind(self, arena):
        """Views of the arena for this layer (cached while the arena buffer is the same):
        (input pixel rows, output rows (uint8), dilation bytes or None, upsampled output view or
        None)."""
        key = (arena.__array_interface__["data"][0], arena.size)
        if self._bound_arena is not None and self._bound_arena[0] == key:
            return self._bound_arena[1]
        s = self.spec
        top = int(np.max(s.gather)) + 1
        rows = _strided(arena, s.in_off, self.p_in, top, s.in_cs, "input tensor", self.name).view(self.in_dtype)
        out = _strided(arena, s.out_off + s.out_choff, self.p_out, s.cout, s.out_cs, "output tensor", self.name)
        dil = None
        if s.deformable:
            dil = _strided(arena, s.dil_off, self.p_out, 1, s.dil_cs, "dilation map", self.name)[:, 0]
        out5 = None
        if getattr(self, "geom", None) == "updense":
            st = out.strides[1]
            out5 = as_strided(out, shape=(s.in_h, 2, s.in_w, 2, s.cout),
                              strides=(2 * s.out_w * s.out_cs * st, s.out_w * s.out_cs * st,
                                       2 * s.out_cs * st, s.out_cs * st, st), writeable=True)
        views = (rows, out, dil, out5)
        self._bound_arena = (key, views)
        return views

    def run(self, arena):
        s = self.spec
        rows, out, dilv, out5 = self.bind(arena)
        if s.op == "conv1x1":
            acc = self._run_conv(rows)
        else:
            acc = self._run_dw(rows, None if dilv is None else np.array(dilv))
        self._store(self.requant_values(acc) if self.rq == "wrap" else self.requant_fast(acc), out, out5)


def check_arena_ranges(layer, arena_size):
    """EngineLimitError if the layer reads or writes outside an arena of arena_size bytes."""
    s = layer.spec if isinstance(layer, _Layer) else layer
    limit = min(int(arena_size), 1 << 32)
    top = int(np.max(s.gather)) + 1
    for what, off, n, cs, width in (("input tensor", s.in_off, s.in_h * s.in_w, s.in_cs, top),
                                    ("output tensor", s.out_off + s.out_choff, s.out_h * s.out_w, s.out_cs, s.cout),
                                    ("dilation map", s.dil_off, s.out_h * s.out_w, s.dil_cs, 1)):
        if what == "dilation map" and not s.deformable:
            continue
        end = off + (n - 1) * cs + width
        if end > limit:
            raise EngineLimitError("layer {!r}: {} bytes {}..{} lie outside the {}-byte arena".format(
                s.name, what, off, end - 1, arena_size))


def run_layer(spec, arena, strict=False):
    """Run one LayerSpec on the arena (checks it first)."""
    validate_layer(spec, strict=strict)
    layer = _Layer(spec)
    layer.run(arena)
    return layer


def decode_program(program_words, weights_blob):
    """Decode and check the descriptors as the engine does: -> list of _Layer."""
    words = np.asarray(program_words, np.uint32).ravel()
    n = words.size // cfg.DESC_WORDS
    if n > cfg.MAX_LAYERS:
        raise EngineLimitError("program has {} layers, the engine runs at most {} (MAX_LAYERS)".format(
            n, cfg.MAX_LAYERS))
    try:
        specs = unpack_program(words[:n * cfg.DESC_WORDS], weights_blob)
        for s in specs:
            validate_layer(s, strict=False)
    except EngineLimitError:
        raise
    except ValueError as exc:
        raise EngineLimitError(str(exc)) from None
    return [_Layer(s) for s in specs]


class _PlanCache:
    """The last decoded program: per-frame calls skip the decoding when the program and weights
    buffers are unchanged (compared byte for byte)."""

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
    """Run every layer of the program on `arena` (1-D uint8, modified in place). Raises
    EngineLimitError (a ValueError), before touching the arena, for any descriptor the engine
    refuses. `profile`: optional list receiving (layer name, path, seconds) per layer."""
    if not (isinstance(arena, np.ndarray) and arena.dtype == np.uint8 and arena.ndim == 1):
        raise TypeError("arena must be a 1-D uint8 numpy array")
    layers = _cache.get(program_words, weights_blob)
    for layer in layers:
        check_arena_ranges(layer, arena.size)
    if profile is None:
        for layer in layers:
            layer.run(arena)
        return
    import time
    for layer in layers:
        t0 = time.perf_counter()
        layer.run(arena)
        profile.append((layer.name, layer.path, time.perf_counter() - t0))
