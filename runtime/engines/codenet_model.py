"""Bit-exact numpy model of the CoDeNet engine (hls_src/codenet/FORMAT.md).

`run_program(program_words, weights_blob, arena)` decodes the same packed buffers the hardware
reads, checks every descriptor as the C simulation does (`codenet_csim_check`), and runs the layers
in order, writing into `arena` (1-D uint8) in place. It reproduces the engine for every descriptor
the engine accepts, including output sizes other than the input geometry gives (taps outside the
seen input read the zero point), dilation bytes above MAX_DIL (saturated to MAX_DIL, as the
engine does) and accumulators that wrap at ACC_BITS (only possible in programs that `validate_layer`
refuses).

Tensor layout v3 (codenet_layout, FORMAT.md "Memory"): a grouped input's gathered 16-byte channel
blocks are first copied (as 16-byte elements) into a pixel-major stage that the layer paths read
like NHWC; a grouped output goes through a pixel-major stage of whole blocks; 16-byte-stride and
packed buffers are read and written through strided views of the arena.

Exactness of the fast paths (integer arithmetic on float BLAS is exact below 2^24 in float32). Per layer, from the actual weights:

  B  = max_o sum_k |w[o, k]| * xmax      (xmax = 128 for int8 input, 255 for uint8 input)
  Bb = max_o (sum_k |w[o, k]| * xmax + |bias[o]|)

- Accumulation. 1x1 / patch convolutions are one matmul per layer over all output pixels
  (`x @ W`, bias excluded), so every partial sum, in any summation order (BLAS blocking, FMA),
  is an integer of magnitude <= B. It runs in float32 when B < 2^24 (every such integer is
  exactly representable), float64 when B < 2^53, else int64 (`matmul_dtype`). The input columns
  are the logical channels in physical order (weight rows permuted alike), copied run by run.
  Depthwise 3x3: the nine taps are contiguous slices of zero-point-padded stride phase planes of
  the (upsampled) input, computed over a few extra columns that are never stored (_init_dw);
  taps whose weights are all zero are skipped (they add 0); deformable: one gather with index
  arrays tabulated per dilation value. Summed in int16 when B < 2^15, else int32
  (B <= 9 * 128 * 255).
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
  or by np.floor. Layers on a float64 path still take the int32 formula on a call whose actual
  max |acc| = a satisfies a * max|M| + max|c| < 2^31 (checked per call; `_Requant`). The int64
  reference `requant` implements FORMAT.md literally; the tests compare every path with it, and
  the whole model with the C simulation.
"""
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import codenet_config as cfg
from . import codenet_layout as layout
from .codenet_program import dil_extent, input_extent, output_extent, out_run_bytes, unpack_program, validate_layer

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
    if arena.flags.c_contiguous and arena.flags.writeable:      # cheap: no slicing / as_strided
        return np.ndarray((rows, cols), np.uint8, buffer=arena, offset=off, strides=(row_stride, 1))
    base = arena[off:end]
    st = base.strides[0]
    return as_strided(base, shape=(rows, cols), strides=(row_stride * st, st), writeable=True)


def _grouped(arena, off, h, w, cs, b0, nb, what, name):
    """codenet_layout.block_views of a grouped buffer (tensor layout v3) after the range check of
    its whole extent off .. off + h*w*cs."""
    end = off + h * w * cs
    if off < 0 or end > _arena_limit(arena):
        raise EngineLimitError("layer {!r}: {} bytes {}..{} lie outside the {}-byte arena".format(
            name, what, off, end - 1, arena.size))
    return layout.block_views(arena, off, h, w, cs, b0, nb)


def _block_runs(blocks):
    """Sorted block indices -> [(first block, count)] of their contiguous runs."""
    runs = []
    for b in blocks:
        if runs and runs[-1][0] + runs[-1][1] == b:
            runs[-1][1] += 1
        else:
            runs.append([b, 1])
    return [tuple(r) for r in runs]


def _seen_index(n_out, step, offset, seen, up):
    """Physical row/column of each output position (seen coordinate n * step + offset) and
    whether it lies inside the seen (possibly upsampled) input."""
    s = np.arange(n_out)[:, None] * step + np.asarray(offset).reshape(1, -1)
    valid = (s >= 0) & (s < seen)
    return np.where(valid, s >> up, 0), valid


# ------------------------------------------------------------------------ fast-path helpers
ROW_TILE = 8192      # elements per row of the tiled elementwise passes
UFUNC_BUFSIZE = ROW_TILE // 2   # numpy buffers a ufunc whose broadcast row operand is no longer than
                                # its buffer (default 8192): with a smaller buffer the tiled rows run
                                # unbuffered, about 5% faster per frame (same results: elementwise)
MAX_BOUND = 4        # arenas whose views a layer keeps (a runner alternates up to 3 arenas)
MAX_RUNS = 16        # gather tables with more contiguous runs than this use one np.take


def _row_tile(n_rows, row_len, limit=ROW_TILE):
    """Largest divisor r of n_rows with r * row_len <= max(limit, row_len). Elementwise passes view a
    contiguous (n_rows, row_len) array as (n_rows / r, r * row_len) with per-channel constants tiled
    r times: numpy's loops are several times slower on short broadcast rows than on long ones."""
    best = 1
    for r in range(2, n_rows + 1):
        if r * row_len > limit:
            break
        if n_rows % r == 0:
            best = r
    return best


def _runs(g):
    """Logical input channels sorted by physical channel, and the contiguous physical runs of that
    order: (order, [(first column, first physical channel, length)])."""
    order = np.argsort(g, kind="stable")
    gs = g[order]
    cut = np.flatnonzero(np.diff(gs) != 1) + 1
    starts, ends = np.concatenate(([0], cut)), np.concatenate((cut, [gs.size]))
    return order, [(int(a), int(gs[a]), int(b - a)) for a, b in zip(starts, ends)]


def _axis_pairs(n_q, step, phase, pad, seen, up):
    """One axis of a stride phase plane: plane index i holds seen coordinate y = i * step + phase - pad,
    i.e. physical (y >> up), when 0 <= y < seen (else it keeps the zero point). -> [(plane slice,
    physical slice)] covering the valid i: one arithmetic progression, two when upsampling at an
    odd step (each physical row is seen twice)."""
    i = np.arange(n_q)
    y = i * step + phase - pad
    ok = (y >= 0) & (y < seen)
    q = 2 if (up and step % 2) else 1
    pairs = []
    for e in range(q):
        ii = i[ok & (i % q == e)]
        if ii.size == 0:
            continue
        src = y[ii] >> up
        ds = int(src[1] - src[0]) if ii.size > 1 else 1
        if ds < 1 or not (np.all(np.diff(ii) == q) and np.array_equal(src, src[0] + ds * np.arange(ii.size))):
            raise AssertionError("plane fill is not a progression")   # cannot happen (y is affine in i)
        pairs.append((slice(int(ii[0]), int(ii[-1]) + 1, q), slice(int(src[0]), int(src[-1]) + 1, ds)))
    return pairs


class _Requant:
    """One layer's requantization of n pixels: buffers and per-channel constants tiled along long
    rows (see _row_tile). Calling it with bias-less accumulators (n * cout values shaped (..., cout),
    any integral-valued dtype, views allowed) returns an (n, cout) array, owned by this object, of
    the clamped output values, or for the 'f64i32' path values + O (self.offset = O; store modulo
    256), or for the 'f64' path floored float64 values. Float64 layers take an int32 variant
    (layer.dyn) when the call's max |acc| allows it (self.used says which ran). Exactness: see
    _Layer._init_requant."""

    def __init__(self, layer, n):
        s = layer.spec
        self.rq, c = layer.rq, s.cout
        r = _row_tile(n, c)
        self.shape, self.shape2 = (n, c), (n // r, r * c)
        self.lo, self.hi = np.int32(s.clamp_lo), np.int32(s.clamp_hi)
        tile = lambda v: v if np.ndim(v) == 0 else np.tile(v, r)
        if self.rq == "i32":
            self.i32 = (tile(layer.m32), tile(layer.c32), tile(layer.s32))
        else:
            self.dyn = [(amax, tile(m), tile(cc), tile(sh)) for amax, m, cc, sh in layer.dyn]
            self.v = np.empty(self.shape, np.float64)
            self.scale = np.tile(layer.scale, r)
            if self.rq == "f64i32":
                self.offs = np.tile(layer.offs_o, r)
                self.lo_o_row = np.full(r * c, layer.lo_o, np.int32)
                self.hi_o_row = np.full(r * c, layer.hi_o, np.int32)
                self.o = layer.lo_o - s.clamp_lo
            else:
                self.offs = np.tile(layer.offs, r)
                self.flo, self.fhi = float(s.clamp_lo), float(s.clamp_hi)
        self.t = np.empty(self.shape, np.int32)
        # clamp bounds as rows (numpy's int32 clip has no SIMD loop; maximum / minimum of two
        # arrays do)
        self.lo_row = np.full(self.shape2[1], self.lo, np.int32)
        self.hi_row = np.full(self.shape2[1], self.hi, np.int32)
        self.used, self.offset = self.rq, 0

    def _int32(self, acc, m, c, sh):
        t = self.t
        np.copyto(t.reshape(acc.shape), acc, casting="unsafe")        # integral values, |acc| < 2^31
        t2 = t.reshape(self.shape2)
        np.multiply(t2, m, out=t2)
        np.add(t2, c, out=t2)
        np.right_shift(t2, sh, out=t2)
        np.maximum(t2, self.lo_row, out=t2)
        np.minimum(t2, self.hi_row, out=t2)
        return t

    def __call__(self, acc):
        self.used, self.offset = self.rq, 0
        if self.rq == "i32":
            return self._int32(acc, *self.i32)
        if self.dyn and acc.size:
            a = max(float(acc.max()), -float(acc.min()))
            for amax, m, c, sh in self.dyn:
                if a <= amax:
                    self.used = "i32dyn"
                    return self._int32(acc, m, c, sh)
        v = self.v
        np.copyto(v.reshape(acc.shape), acc, casting="unsafe")        # exact: |acc| < 2^53
        v2 = v.reshape(self.shape2)
        np.multiply(v2, self.scale, out=v2)
        np.add(v2, self.offs, out=v2)
        if self.rq == "f64i32":
            t = self.t
            np.copyto(t, v, casting="unsafe")                          # v > 0: truncation = floor
            t2 = t.reshape(self.shape2)
            np.maximum(t2, self.lo_o_row, out=t2)
            np.minimum(t2, self.hi_o_row, out=t2)
            self.offset = self.o
            return t
        np.clip(v2, self.flo, self.fhi, out=v2)
        return np.floor(v, out=v)


# ------------------------------------------------------------------------ layers
class _Layer:
    """One decoded layer: weights in the layout and dtype of its fast path, index arrays, buffers,
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
        self.g0 = int(g.min())
        self.g_slice = np.array_equal(g, np.arange(self.g0, self.g0 + s.cin))
        self.g_idx = g.astype(np.intp)
        w = np.asarray(s.weights, np.int64)
        self.bound = partial_sum_bound(w, s.in_signed)
        self.bound_c = np.abs(w).sum(axis=1) * (128 if s.in_signed else 255)   # per output channel
        self._init_requant()
        self._bound = {}                         # arena key -> views (bind)
        self._stage = None                       # (pixel-major stage, block runs) of a grouped input
        self._out_stage = None                   # pixel-major stage of a grouped output
        if s.op == "conv1x1":
            self._init_conv(w, g)
        else:
            self._init_dw(w)
        self.path += " rq:" + self.rq

    # ---- requantization ----------------------------------------------------------------
    def _init_requant(self, prefer=None):
        """Pick the cheapest exact requant path from per-channel bounds (|acc| <= bound_c):
        'i32'    t = acc * M + c with c = bias * M + round + zp_out * 2^S in int32, then
                 clamp(t >> S): needs bound_c * M + |c| < 2^31 for every channel. When that still
                 holds with every channel brought to the largest shift Smax (M, c times 2^(Smax - S),
                 the same floor), the shift is one scalar;
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
        fits32 = lambda mm, cc: int((self.bound_c * np.abs(mm) + np.abs(cc)).max()) < (1 << 31)
        ok = {"wrap": self.wraps,
              "i32": not self.wraps and fits32(m, c),
              "f64i32": not self.wraps and k <= 29 and int(sh.max()) + k + 1 <= 53,
              "f64": not self.wraps}
        self.rq = prefer if prefer and ok[prefer] else next(p for p in ("wrap", "i32", "f64i32", "f64") if ok[p])
        d = int(sh.max()) - sh
        if self.rq == "i32":
            if fits32(m << d, c << d):
                self.m32, self.c32, self.s32 = (m << d).astype(np.int32), (c << d).astype(np.int32), np.int32(sh.max())
            else:
                self.m32, self.c32, self.s32 = m.astype(np.int32), c.astype(np.int32), sh.astype(np.int32)
        # float64 layers: int32 variants for frames whose accumulators are small enough, checked per
        # call from the actual max |acc| = a: exact when a * max|M| + max|c| < 2^31
        self.dyn = []
        if self.rq in ("f64i32", "f64"):
            for mm, cc, ss in ((m << d, c << d, np.int32(sh.max())), (m, c, sh.astype(np.int32))):
                mx, cx = int(np.abs(mm).max()), int(np.abs(cc).max())
                if mx < (1 << 31) and cx < (1 << 31) - 1:
                    amax = ((1 << 31) - 1 - cx) // mx if mx else 1 << 62
                    self.dyn.append((amax, mm.astype(np.int32), cc.astype(np.int32), ss))
        if self.rq == "f64i32":
            self.offs_o = self.offs + float(1 << k)
            self.lo_o, self.hi_o = s.clamp_lo + (1 << k), s.clamp_hi + (1 << k)
        self._rq_ctx = {}
        return ok

    def requant_ctx(self, n):
        """The _Requant of n pixels (made on first use)."""
        ctx = self._rq_ctx.get(n)
        if ctx is None:
            ctx = self._rq_ctx[n] = _Requant(self, n)
        return ctx

    def requant_fast(self, acc):
        """Requantize bias-less accumulators (any integral-valued dtype, shape (..., cout)) -> (n, cout)
        int32 output values, clamped, or values + O ('f64i32': store them modulo 256) or floored
        float64 values ('f64'); the array is a buffer reused by the next call. Exact; see _init_requant."""
        return self.requant_ctx(acc.size // self.spec.cout)(acc)

    def requant_values(self, acc):
        """Output values (int64) of bias-less accumulators, whatever the path (for tests)."""
        acc = np.reshape(acc, (-1, self.spec.cout))
        if self.rq == "wrap":
            return requant(wrap_acc(np.asarray(acc, np.int64) + self.bias), self.mult, self.spec.shift,
                           self.spec.zp_out, self.spec.clamp_lo, self.spec.clamp_hi)
        ctx = self.requant_ctx(acc.shape[0])
        return ctx(acc).astype(np.int64) - ctx.offset

    def _store(self, y, out_u8, out5_u8):
        """Write output values (n, cout) into the arena as bytes (two's complement, modulo 256).
        out_u8: the (p_out, cout) view of a non-grouped output, or the codenet_layout.block_views
        of a grouped one (list)."""
        s = self.spec
        if y.dtype.kind == "f":
            y = y.astype(np.int32)               # integral values (floored) in int32 range
        if isinstance(out_u8, list):
            if self.geom == "updense":           # each value to its 2x2 block of the output
                small = np.empty(y.shape, np.uint8)
                np.copyto(small, y, casting="unsafe")
                y = np.broadcast_to(small.reshape(s.in_h, 1, s.in_w, 1, s.cout), (s.in_h, 2, s.in_w, 2, s.cout))
            self._store_grouped(y, out_u8)
        elif out5_u8 is not None:
            small = np.empty(y.shape, np.uint8)
            np.copyto(small, y, casting="unsafe")
            np.copyto(out5_u8, small.reshape(s.in_h, 1, s.in_w, 1, s.cout))
        else:
            np.copyto(out_u8, y, casting="unsafe")

    def _store_grouped(self, y, views):
        """Output values (out_h * out_w pixels by cout, any shape of them in pixel-major order, e.g.
        (n, cout) or the upsampled (in_h, 2, in_w, 2, cout)) into the output blocks of a grouped
        buffer: whole 16-byte blocks, the bytes cout .. ceil16(cout) of the last one 0 (the engine
        writes whole beats). The values go as bytes to a pixel-major stage first (its pad columns
        stay 0), then block by block into the arena."""
        s = self.spec
        if self._out_stage is None:
            self._out_stage = np.zeros((s.out_h, s.out_w, out_run_bytes(s.cout)), np.uint8)
        st = self._out_stage
        dst = st[:, :, :s.cout].view()
        dst.shape = y.shape                      # a view (raises rather than copy)
        np.copyto(dst, y, casting="unsafe")
        sb = layout.blocks_of(st)
        for x0, v in views:
            v[...] = sb[:, x0:x0 + v.shape[1] * v.shape[2]].reshape(v.shape)

    # ---- conv1x1 -----------------------------------------------------------------------
    def _init_conv(self, w, g):
        s = self.spec
        self.dtype, _ = matmul_dtype(w, s.in_signed)
        _assert_exact(self.dtype, self.bound)
        patch = s.in_mode == cfg.MODE_PATCH3X3
        # input channels: the logical channels in physical order, copied run by run (a slice of
        # the pixel row is one run) with the weight rows permuted alike; or one np.take
        order, runs = _runs(g)
        if len(runs) <= MAX_RUNS:
            self.sel, self.runs = ("slice" if self.g_slice else "runs"), runs
        else:
            self.sel, order = "gather", np.arange(s.cin)
        if patch:
            wm = w.reshape(s.cout, 9, s.cin)[:, :, order].reshape(s.cout, 9 * s.cin).T
        else:
            wm = w[:, order].T
        self.wmat = np.ascontiguousarray(wm.astype(self.dtype))
        self.g_ord = self.g_idx[order]
        # pixel geometry
        self.idx = None
        if patch:
            self.geom = "patch"
            ys, vy = _seen_index(s.out_h, s.stride, np.arange(3) - s.pad, self.seen_h, 0)
            xs, vx = _seen_index(s.out_w, s.stride, np.arange(3) - s.pad, self.seen_w, 0)
            # (out_h, out_w, ky, kx) -> source row (p_in = the zero-point row)
            idx = ys[:, None, :, None] * s.in_w + xs[None, :, None, :]
            valid = vy[:, None, :, None] & vx[None, :, None, :]
            self.idx = np.where(valid, idx, self.p_in).reshape(self.p_out, 9)
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
        # buffers: logical input rows (+ a zero-point row when pixels are indexed), matmul operands
        if self.idx is None:
            self.xin = np.empty((self.p_in, s.cin), self.dtype)
            self.xmat = self.xin
        else:
            self.xin = np.empty((self.p_in + 1, s.cin), self.dtype)
            self.xin[self.p_in] = self.zp
            self.xgath = np.empty(self.idx.shape + (s.cin,), self.dtype)
            self.xmat = self.xgath.reshape(self.idx.shape[0], -1)
        self.ymat = np.empty((self.xmat.shape[0], s.cout), self.dtype)
        self.path = "conv1x1 {} {}".format(np.dtype(self.dtype).name, self.geom)

    def _load_channels(self, dst, rows):
        """dst[:, k] = logical input channel order[k] of every pixel row (cast to dst's dtype)."""
        if self.sel == "gather":
            np.copyto(dst, np.take(rows, self.g_ord, axis=1))
        else:
            for k0, c0, n in self.runs:
                np.copyto(dst[:, k0:k0 + n], rows[:, c0:c0 + n])

    def _run_conv(self, rows):
        self._load_channels(self.xin[:self.p_in], rows)
        if self.idx is not None:
            np.take(self.xin, self.idx, axis=0, out=self.xgath, mode="clip")   # indices are in range
        return np.matmul(self.xmat, self.wmat, out=self.ymat)

    # ---- dw3x3 -------------------------------------------------------------------------
    def _init_dw(self, w):
        s = self.spec
        self.dtype = np.int16 if self.bound < (1 << 15) else np.int32
        _assert_exact(self.dtype, self.bound)
        c = s.cout
        self.w9 = np.ascontiguousarray(w.T.astype(self.dtype))          # (9, c)
        self.xg = None if self.g_slice else np.empty((self.p_in, s.cin), self.in_dtype)
        if s.deformable:
            # source row of every (dilation, tap, output pixel); row p_in holds the zero point
            self.geom = "deformable"
            d = np.arange(cfg.MAX_DIL + 1)[:, None, None]
            t = np.arange(9)[None, :, None]
            yy = np.repeat(np.arange(s.out_h), s.out_w)[None, None, :]
            xx = np.tile(np.arange(s.out_w), s.out_h)[None, None, :]
            sy, sx = yy + (t // 3 - 1) * d, xx + (t % 3 - 1) * d                # seen (upsampled) grid
            valid = (sy >= 0) & (sy < self.seen_h) & (sx >= 0) & (sx < self.seen_w)
            idx = np.where(valid, (sy >> self.up) * s.in_w + (sx >> self.up), self.p_in)
            self.dtab = np.ascontiguousarray(idx.transpose(1, 0, 2))            # (9, MAX_DIL+1, p_out)
            self.pix = np.arange(self.p_out)
            self.src = np.empty((self.p_in + 1, s.cin), self.dtype)
            self.src[self.p_in] = self.zp
            self.gat = np.empty((9, self.p_out, c), self.dtype)
            r = _row_tile(self.p_out, c)
            self.gat2 = self.gat.reshape(9, self.p_out // r, r * c)
            self.w9 = np.tile(self.w9, r)[:, None, :]                           # (9, 1, r * c)
            self.acc = np.empty((self.p_out, c), self.dtype)
        else:
            # Stride phase planes: plane (a, b)[i, j] is the zero-point-padded seen input at
            # (i * stride + a, j * stride + b), so the tap (ky, kx) of every output pixel is plane
            # (ky % stride, kx % stride) shifted by (ky // stride, kx // stride). The planes are
            # wq = out_w + 2 // stride columns wide; computing every output row over wq columns
            # (garbage in the last ones, never stored) makes each tap ONE contiguous slice of a
            # flattened plane, so the nine multiply-adds run over long contiguous rows. The
            # border (zero point) is written once; each frame overwrites the seen part.
            self.geom = "window"
            st, oh, ow = s.stride, s.out_h, s.out_w
            npl, e = min(st, 3), 2 // st
            hq, wq = oh + e, ow + e
            self.planes = np.full((npl, npl, hq + 1, wq, c), self.zp, self.dtype)   # +1 row: slack
            self.fills = []
            for a in range(npl):
                for rd, rs in _axis_pairs(hq, st, a, s.pad, self.seen_h, self.up):
                    for b in range(npl):
                        for cd, cs in _axis_pairs(wq, st, b, s.pad, self.seen_w, self.up):
                            self.fills.append((self.planes[a, b, rd, cd], rs, cs))
            r = _row_tile(oh, wq * c)
            shape2, n = (oh // r, r * wq * c), oh * wq * c
            flat = self.planes.reshape(npl, npl, -1)
            self.taps = []                     # taps with a non-zero weight (the others add 0)
            for t in range(9):
                if self.w9[t].any():
                    ky, kx = divmod(t, 3)
                    off = ((ky // st) * wq + kx // st) * c
                    self.taps.append((flat[ky % st, kx % st, off:off + n].reshape(shape2),
                                      np.tile(self.w9[t], r * wq)))
            self.acc = np.zeros(shape2, self.dtype)                     # stays 0 without taps
            self.tmp = np.empty(shape2, self.dtype)
            if len(self.taps) == 1 and (self.taps[0][1] == 1).all():
                self.acc = self.taps[0][0]     # one tap of weight 1 (an upsampling copy): the plane
                self.taps = []
            self.acc_valid = self.acc.reshape(oh, wq, c)[:, :ow]
        self.path = "dw3x3 {} {}".format(np.dtype(self.dtype).name, self.geom)

    def _dw_input(self, rows):
        s = self.spec
        if self.g_slice:
            return rows[:, self.g0:self.g0 + s.cin]
        return np.take(rows, self.g_idx, axis=1, out=self.xg, mode="clip")

    def _run_dw(self, rows, dil):
        s = self.spec
        x = self._dw_input(rows)
        if dil is not None:
            np.copyto(self.src[:self.p_in], x)
            idx = self.dtab[:, np.minimum(dil, cfg.MAX_DIL), self.pix]        # (9, p_out)
            np.take(self.src, idx, axis=0, out=self.gat, mode="clip")          # indices are in range
            np.multiply(self.gat2, self.w9, out=self.gat2)
            return np.add.reduce(self.gat, axis=0, out=self.acc)
        x3 = x.reshape(s.in_h, s.in_w, s.cin)
        for dst, rs, cs in self.fills:
            np.copyto(dst, x3[rs, cs])
        acc, tmp = self.acc, self.tmp
        for t, (view, wt) in enumerate(self.taps):
            if t == 0:
                np.multiply(view, wt, out=acc)
            else:
                np.multiply(view, wt, out=tmp)
                np.add(acc, tmp, out=acc)
        return self.acc_valid

    # ---- common ------------------------------------------------------------------------
    def bind(self, arena):
        """Views of the arena for this layer (cached per arena buffer, MAX_BOUND of them):
        (grouped input block copies [(stage view, arena view)] to run first, input pixel rows,
        output rows (uint8) or a grouped output's block views (list), dilation bytes or None,
        upsampled output view or None, pad bytes view or None)."""
        key = (arena.__array_interface__["data"][0], arena.size)
        views = self._bound.get(key)
        if views is not None:
            return views
        s = self.spec
        top = int(np.max(s.gather)) + 1
        loads = []
        if layout.is_grouped(s.in_cs):
            # tensor layout v3: the gathered channel blocks are copied (one run per block run and
            # group part) into a pixel-major stage that the paths below read like an NHWC tensor
            # (the stage is the layer's: frames alternating between arenas rebind without allocating)
            if self._stage is None:
                blocks = np.unique(np.asarray(s.gather, np.int64) // layout.BLOCK)
                self._stage = (np.empty((s.in_h, s.in_w, (int(blocks[-1]) + 1) * layout.BLOCK), np.uint8),
                               _block_runs(blocks.tolist()))
            stage, block_runs = self._stage
            sb = layout.blocks_of(stage)
            for b0, nb in block_runs:
                for x0, v in _grouped(arena, s.in_off, s.in_h, s.in_w, s.in_cs, b0, nb, "input tensor", self.name):
                    loads.append((sb[:, x0:x0 + v.shape[1] * v.shape[2], b0:b0 + nb].reshape(v.shape), v))
            rows = stage.reshape(self.p_in, stage.shape[2])[:, :top].view(self.in_dtype)
        else:
            rows = _strided(arena, s.in_off, self.p_in, top, s.in_cs, "input tensor", self.name).view(self.in_dtype)
        npad = out_run_bytes(s.cout) - s.cout        # the zero bytes up to the pixel's last whole beat
        pad = None
        if layout.is_grouped(s.out_cs):
            out = _grouped(arena, s.out_off, s.out_h, s.out_w, s.out_cs, s.out_choff // layout.BLOCK,
                           out_run_bytes(s.cout) // layout.BLOCK, "output tensor", self.name)
            npad = 0                                 # _store_grouped writes the pad bytes
        else:
            out = _strided(arena, s.out_off + s.out_choff, self.p_out, s.cout, s.out_cs, "output tensor", self.name)
        if npad:
            pad = _strided(arena, s.out_off + s.out_choff + s.cout, self.p_out, npad, s.out_cs, "output tensor",
                           self.name)
        dil = None
        if s.deformable:
            dil = _strided(arena, s.dil_off, self.p_out, 1, s.dil_cs, "dilation map", self.name)[:, 0]
        out5 = None
        if self.geom == "updense" and not isinstance(out, list):
            st = out.strides[1]
            out5 = as_strided(out, shape=(s.in_h, 2, s.in_w, 2, s.cout),
                              strides=(2 * s.out_w * s.out_cs * st, s.out_w * s.out_cs * st,
                                       2 * s.out_cs * st, s.out_cs * st, st), writeable=True)
        views = (loads, rows, out, dil, out5, pad)
        if len(self._bound) >= MAX_BOUND:
            self._bound.clear()
        self._bound[key] = views
        return views

    def run(self, arena):
        s = self.spec
        loads, rows, out, dilv, out5, pad = self.bind(arena)
        for dst, src in loads:
            np.copyto(dst, src)
        if s.op == "conv1x1":
            acc = self._run_conv(rows)
        else:
            acc = self._run_dw(rows, dilv)      # the dilations are read before the output is stored
        self._store(self.requant_values(acc) if self.rq == "wrap" else self.requant_fast(acc), out, out5)
        if pad is not None:
            pad.fill(0)                         # the engine writes whole beats: pad bytes are 0


def _extents(s):
    """(what, first byte, end) of each arena region the layer reads or writes (codenet_program's
    extents: a grouped tensor's whole buffer)."""
    yield ("input tensor",) + tuple(input_extent(s))
    yield ("output tensor",) + tuple(output_extent(s))
    if s.deformable:
        yield ("dilation map",) + tuple(dil_extent(s))


def arena_end(spec):
    """Smallest arena size (bytes) the layer runs on; above 2^32 when no arena can hold it (the
    engine's byte offsets are 32-bit)."""
    end = max(e for _, _, e in _extents(spec))
    return end if end <= (1 << 32) else (1 << 64)


def check_arena_ranges(layer, arena_size):
    """EngineLimitError if the layer reads or writes outside an arena of arena_size bytes."""
    s = layer.spec if isinstance(layer, _Layer) else layer
    limit = min(int(arena_size), 1 << 32)
    for what, off, end in _extents(s):
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
        self.arena_need = 0

    def get(self, program_words, weights_blob):
        p = np.asarray(program_words, np.uint32).ravel()
        w = np.asarray(weights_blob, np.uint8).ravel()
        if (self.layers is not None and p.shape == self.program.shape and w.shape == self.weights.shape
                and np.array_equal(p, self.program) and np.array_equal(w, self.weights)):
            return self.layers
        layers = decode_program(p, w)
        self.program, self.weights, self.layers = p.copy(), w.copy(), layers
        self.arena_need = max([arena_end(layer.spec) for layer in layers] + [0])
        return layers


_caches = threading.local()   # one decoded plan (and its work buffers) per thread


def _cache():
    c = getattr(_caches, "plan", None)
    if c is None:
        c = _caches.plan = _PlanCache()
    return c


def run_program(program_words, weights_blob, arena, profile=None):
    """Run every layer of the program on `arena` (1-D uint8, modified in place). Raises
    EngineLimitError (a ValueError), before touching the arena, for any descriptor the engine
    refuses. `profile`: optional list receiving (layer name, path, seconds) per layer. Not
    re-entrant within a thread: the decoded layers own their work buffers, so each thread keeps its
    own decoded plan (frames can run in parallel threads; numpy releases the GIL)."""
    if not (isinstance(arena, np.ndarray) and arena.dtype == np.uint8 and arena.ndim == 1):
        raise TypeError("arena must be a 1-D uint8 numpy array")
    cache = _cache()
    layers = cache.get(program_words, weights_blob)
    if arena.size < cache.arena_need:
        for layer in layers:
            check_arena_ranges(layer, arena.size)      # raises for the first layer out of range
    old_bufsize = np.setbufsize(UFUNC_BUFSIZE)         # this thread only; restored below
    try:
        if profile is None:
            for layer in layers:
                layer.run(arena)
            return
        import time
        for layer in layers:
            t0 = time.perf_counter()
            layer.run(arena)
            profile.append((layer.name, layer.path, time.perf_counter() - t0))
    finally:
        np.setbufsize(old_bufsize)
