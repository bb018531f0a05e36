"""The CoDeNet program IR and its packing into the buffers the engine reads (hls_src/codenet/FORMAT.md).

`LayerSpec` is one engine layer (one descriptor). `pack_program` turns a list of them into the
`program` words (DESC_WORDS uint32 per layer) and the `weights` byte blob; `unpack_program` is its
inverse; `validate_layer` checks every engine limit of codenet_config.py and raises ValueError
naming the layer and the limit, with numbers.
"""
from dataclasses import dataclass, field

import numpy as np

from . import codenet_config as cfg
from . import codenet_layout as layout

OPS = {"conv1x1": cfg.OP_CONV1X1, "dw3x3": cfg.OP_DW3X3}
OP_NAMES = {v: k for k, v in OPS.items()}


def _empty(dtype):
    return field(default_factory=lambda: np.zeros(0, dtype))


@dataclass
class LayerSpec:
    op: str                 # "conv1x1" | "dw3x3"
    in_off: int
    in_h: int
    in_w: int
    in_cs: int
    cin: int
    in_mode: int = 0        # 0 direct, 1 upsample2, 2 patch3x3
    stride: int = 1
    pad: int = 0
    in_zp: int = 0
    in_signed: bool = False
    out_signed: bool = False
    deformable: bool = False
    shift_only: bool = False
    w_bits: int = 4
    out_off: int = 0
    out_h: int = 0
    out_w: int = 0
    out_cs: int = 0
    out_choff: int = 0
    cout: int = 0
    clamp_lo: int = 0
    clamp_hi: int = 255
    dil_off: int = 0
    dil_cs: int = 1
    gather: np.ndarray = _empty(np.uint16)    # (cin,) physical channel of each logical channel
    weights: np.ndarray = _empty(np.int8)     # conv1x1: (cout, K); dw3x3: (cout, 9)
    bias: np.ndarray = _empty(np.int32)       # (cout,)
    mult: np.ndarray = _empty(np.int16)       # (cout,) >= 0 (ignored when shift_only)
    shift: np.ndarray = _empty(np.uint8)      # (cout,) 0..31
    zp_out: np.ndarray = _empty(np.int16)     # (cout,)
    name: str = ""

    # ---- derived quantities ----
    @property
    def k(self):
        """Logical input channels of the weight rows (9*cin for PATCH3X3)."""
        if self.op == "dw3x3":
            return 9
        return 9 * self.cin if self.in_mode == cfg.MODE_PATCH3X3 else self.cin

    @property
    def eff_h(self):
        return 2 * self.in_h if self.in_mode == cfg.MODE_UPSAMPLE2 else self.in_h

    @property
    def eff_w(self):
        return 2 * self.in_w if self.in_mode == cfg.MODE_UPSAMPLE2 else self.in_w

    @property
    def flags(self):
        return ((cfg.FLAG_IN_SIGNED if self.in_signed else 0) | (cfg.FLAG_OUT_SIGNED if self.out_signed else 0)
                | (cfg.FLAG_DEFORMABLE if self.deformable else 0) | (cfg.FLAG_SHIFT_ONLY if self.shift_only else 0)
                | (cfg.FLAG_W8 if self.w_bits == 8 else 0))

    def row_bytes(self):
        """Bytes of one packed weight row (rows padded to whole bytes)."""
        return (self.k * self.w_bits + 7) // 8

    def weight_bytes(self):
        return self.cout * self.row_bytes()

    def label(self):
        return self.name or "?"


def expected_out_hw(spec):
    """(out_h, out_w) the engine computes for this layer's input geometry."""
    h, w, s = spec.eff_h, spec.eff_w, spec.stride
    if spec.op == "conv1x1" and spec.in_mode != cfg.MODE_PATCH3X3:
        return (h - 1) // s + 1, (w - 1) // s + 1
    return (h + 2 * spec.pad - 3) // s + 1, (w + 2 * spec.pad - 3) // s + 1


def _align(n, a=cfg.SECTION_ALIGN):
    return (n + a - 1) // a * a


# ------------------------------------------------------------------------ validation
def validate_layer(spec, strict=True):
    """Raise ValueError naming the layer and the violated engine limit (with numbers).

    strict=False: exactly the descriptor checks of the engine (the C simulation's
    codenet_csim_check, less the buffer bounds): what the numpy model accepts. strict=True (the
    compiler's check) adds what a correct program also satisfies: the output size is the one the
    input geometry gives, weights/requant values fit their fields, and the accumulator cannot
    overflow ACC_BITS for any input byte."""
    nm = "layer {!r}".format(spec.label())

    def fail(msg):
        raise ValueError("{}: {}".format(nm, msg))

    if spec.op not in OPS:
        fail("op {!r} is not an engine operation (conv1x1, dw3x3)".format(spec.op))
    conv = spec.op == "conv1x1"
    if spec.in_mode not in (cfg.MODE_DIRECT, cfg.MODE_UPSAMPLE2, cfg.MODE_PATCH3X3):
        fail("in_mode {} is not 0 (direct), 1 (upsample x2) or 2 (patch 3x3)".format(spec.in_mode))
    if spec.in_mode == cfg.MODE_PATCH3X3 and not conv:
        fail("in_mode 2 (patch 3x3) is for conv1x1 only, not dw3x3")
    patch = spec.in_mode == cfg.MODE_PATCH3X3
    # depthwise layers go through the line buffer (MAX_H x MAX_W); 1x1 / patch layers read DDR
    (max_h, lim_h), (max_w, lim_w) = (((cfg.MAX_IMG, "MAX_IMG"), (cfg.MAX_IMG, "MAX_IMG")) if conv
                                      else ((cfg.MAX_H, "MAX_H"), (cfg.MAX_W, "MAX_W")))
    for what, v, lo, hi, lim in (("cin", spec.cin, 1, cfg.MAX_CH, "MAX_CH"),
                                 ("cout", spec.cout, 1, cfg.MAX_CH, "MAX_CH"),
                                 ("input height", spec.in_h, 1, max_h, lim_h),
                                 ("input width", spec.in_w, 1, max_w, lim_w),
                                 ("output height", spec.out_h, 1, max_h, lim_h),
                                 ("output width", spec.out_w, 1, max_w, lim_w)):
        if not lo <= v <= hi:
            fail("{} {} outside the engine's {}..{} ({})".format(what, v, lo, hi, lim))
    if patch and 9 * spec.cin > cfg.MAX_K:
        fail("patch 3x3 over {} channels gives {} logical input channels, the engine takes at most "
             "{} (MAX_K)".format(spec.cin, 9 * spec.cin, cfg.MAX_K))
    if not conv and spec.cin != spec.cout:
        fail("dw3x3 needs cin == cout, got cin {} and cout {}".format(spec.cin, spec.cout))
    if spec.in_cs < 1:
        fail("input channel stride {} < 1".format(spec.in_cs))
    if spec.out_cs < 1 or spec.out_choff < 0 or spec.out_choff + out_run_bytes(spec.cout) > spec.out_cs:
        fail("output channels {}..{} and their pad to whole {}-byte beats (to {}) do not fit the output "
             "channel stride {}".format(spec.out_choff, spec.out_choff + spec.cout - 1, cfg.ARENA_BUS_BYTES,
                                        spec.out_choff + out_run_bytes(spec.cout) - 1, spec.out_cs))
    # beat layout (FORMAT.md "Memory"): every output run is whole beats (its pixel's channels start
    # a beat); the dilation bytes of consecutive pixels sit one beat stride apart
    for what, v in (("out_off", spec.out_off), ("out_cs", spec.out_cs), ("out_choff", spec.out_choff)):
        if v % cfg.ARENA_BUS_BYTES:
            fail("{} {} is not a multiple of {} bytes (ARENA_BUS_BYTES: the engine reads and writes whole "
                 "beats)".format(what, v, cfg.ARENA_BUS_BYTES))
    # strides and padding
    if conv and not patch:
        if spec.stride not in (1, 2):
            fail("stride {}: conv1x1 takes stride 1 or 2 (4 only with patch 3x3)".format(spec.stride))
        if spec.pad != 0:
            fail("pad {}: conv1x1 (direct / upsample) has no padding".format(spec.pad))
    else:
        if spec.stride not in (1, 2, 4):
            fail("stride {}: {} takes stride 1, 2 or 4".format(spec.stride, "patch 3x3" if patch else "dw3x3"))
        if not 0 <= spec.pad <= cfg.MAX_PAD:
            fail("pad {}: 3x3 windows take pad 0..{} (MAX_PAD)".format(spec.pad, cfg.MAX_PAD))
    if not 0 <= spec.in_zp <= 255:
        fail("in_zp {} is not a byte 0..255".format(spec.in_zp))
    if spec.w_bits not in (4, 8):
        fail("w_bits {}: the engine has 4-bit and 8-bit weights".format(spec.w_bits))
    if spec.deformable:
        if conv:
            fail("deformable is for dw3x3 only")
        if spec.stride != 1 or spec.pad != 1:
            fail("deformable dw3x3 needs stride 1 and pad 1 (dilation only at stride 1), got stride {} "
                 "pad {}".format(spec.stride, spec.pad))
        if spec.dil_cs < 1:
            fail("dilation map channel stride {} < 1".format(spec.dil_cs))
        if spec.dil_cs != cfg.ARENA_BUS_BYTES:
            fail("dil_cs {} is not {} bytes (ARENA_BUS_BYTES): the dilation map must lie in a {}-byte-stride "
                 "buffer, one dilation byte per beat and a row of them one burst (a wider buffer is grouped, "
                 "tensor layout v3)".format(spec.dil_cs, cfg.ARENA_BUS_BYTES, cfg.ARENA_BUS_BYTES))
    olo, ohi = (-128, 127) if spec.out_signed else (0, 255)
    if not olo <= spec.clamp_lo <= spec.clamp_hi <= ohi:
        fail("clamp {}..{} is not an ordered range inside the {} output range {}..{}".format(
            spec.clamp_lo, spec.clamp_hi, "int8" if spec.out_signed else "uint8", olo, ohi))
    if conv and spec.weight_bytes() > cfg.W_BUF_BYTES:
        fail("1x1 weights need {} bytes, the engine's weight buffer holds {} (W_BUF_BYTES)".format(
            spec.weight_bytes(), cfg.W_BUF_BYTES))
    gather = np.asarray(spec.gather)
    if gather.shape != (spec.cin,):
        fail("gather table has shape {}, needs ({},)".format(gather.shape, spec.cin))
    if gather.min() < 0 or gather.max() >= spec.in_cs:
        bad = int(gather.max()) if gather.max() >= spec.in_cs else int(gather.min())
        fail("gather table refers to physical channel {} outside the input channel stride {}".format(
            bad, spec.in_cs))
    _check_stream_input(spec, gather, fail)
    w = np.asarray(spec.weights)
    if w.shape != (spec.cout, spec.k):
        fail("weights have shape {}, needs ({}, {})".format(w.shape, spec.cout, spec.k))
    for nm_, arr, lo, hi in (("bias", spec.bias, -(1 << 31), (1 << 31) - 1),
                             ("mult", spec.mult, -(1 << 15) if spec.shift_only else 0, cfg.MAX_MULT),
                             ("shift", spec.shift, 0, cfg.MAX_SHIFT),
                             ("zp_out", spec.zp_out, -(1 << 15), (1 << 15) - 1)):
        a = np.asarray(arr)
        if a.shape != (spec.cout,):
            fail("{} has shape {}, needs ({},)".format(nm_, a.shape, spec.cout))
        if a.min() < lo or a.max() > hi:
            fail("{} spans {}..{}, outside {}..{}".format(nm_, int(a.min()), int(a.max()), lo, hi))
    wlo, whi = -(1 << (spec.w_bits - 1)), (1 << (spec.w_bits - 1)) - 1
    if w.min() < wlo or w.max() > whi:
        fail("weights span {}..{}, {}-bit weights hold {}..{}".format(int(w.min()), int(w.max()),
                                                                     spec.w_bits, wlo, whi))
    if not strict:
        return
    oh, ow = expected_out_hw(spec)
    if (spec.out_h, spec.out_w) != (oh, ow) or oh < 1 or ow < 1:
        fail("output {}x{} but the input geometry gives {}x{}".format(spec.out_h, spec.out_w, oh, ow))
    bound = acc_bound(spec)
    if bound > (1 << (cfg.ACC_BITS - 1)) - 1:
        fail("worst-case accumulator |bias| + sum|w|*|x| = {} overflows the {}-bit accumulator "
             "(max {}, ACC_BITS)".format(bound, cfg.ACC_BITS, (1 << (cfg.ACC_BITS - 1)) - 1))


def _check_stream_input(spec, gather, fail):
    """The input side of the streaming engine (FORMAT.md "Memory"): DW3X3 and direct / x2 CONV1X1
    read a beat-aligned tensor (in_off, in_cs multiples of ARENA_BUS_BYTES; every tensor the
    engine writes is), a 1x1 pixel's gathered run within PIX_BEATS beats; PATCH3X3 (the image)
    gathers channels within one beat's span and its input rows fit PATCH_ROW_BEATS."""
    b = cfg.ARENA_BUS_BYTES
    if spec.in_mode == cfg.MODE_PATCH3X3:
        if int(gather.max()) - int(gather.min()) >= b:
            fail("patch 3x3 gathers channels {}..{}: the engine takes a span of at most {} bytes".format(
                int(gather.min()), int(gather.max()), b))
        if spec.in_w * spec.in_cs + 2 * b - 2 > cfg.PATCH_ROW_BEATS * b:
            fail("patch 3x3 input row of {} bytes exceeds the row buffer ({} beats, PATCH_ROW_BEATS)".format(
                spec.in_w * spec.in_cs, cfg.PATCH_ROW_BEATS))
        if layout.is_grouped(spec.in_cs):
            fail("patch 3x3 reads a packed (NHWC) input, but in_cs {} (a multiple of {} above {}) is a grouped "
                 "tensor (tensor layout v3, FORMAT.md \"Memory\")".format(spec.in_cs, b, b))
        return
    for what, v in (("in_off", spec.in_off), ("in_cs", spec.in_cs)):
        if v % b:
            fail("{} {} is not a multiple of {} bytes (ARENA_BUS_BYTES: the engine reads whole-beat pixels; "
                 "only patch 3x3 reads a packed image)".format(what, v, b))
    if spec.op == "conv1x1":
        sb = int(gather.max()) // b - int(gather.min()) // b + 1
        if sb > cfg.PIX_BEATS:
            fail("the gathered channels span {} beats of a pixel, the pixel buffer holds {} (PIX_BEATS)".format(
                sb, cfg.PIX_BEATS))


def acc_bound(spec, xmax=None):
    """max over output channels of |bias| + sum_k |w| * xmax (xmax: input type's largest |x|)."""
    if xmax is None:
        xmax = 128 if spec.in_signed else 255
    w = np.abs(np.asarray(spec.weights, np.int64))
    if w.size == 0:
        return 0
    s = w.sum(axis=1) * xmax + np.abs(np.asarray(spec.bias, np.int64))
    return int(s.max())


def input_extent(spec):
    """(first, last + 1) arena bytes the layer reads from its input tensor (a grouped tensor, layout
    v3: its whole buffer, in_off .. in_off + H*W*in_cs)."""
    if layout.is_grouped(spec.in_cs):
        return spec.in_off, spec.in_off + spec.in_h * spec.in_w * spec.in_cs
    top = int(np.max(spec.gather)) if len(spec.gather) else 0
    return spec.in_off, spec.in_off + (spec.in_h * spec.in_w - 1) * spec.in_cs + top + 1


def out_run_bytes(cout):
    """Bytes a layer writes per output pixel: its cout channels and the zero pad bytes up to whole
    ARENA_BUS_BYTES beats (FORMAT.md "Memory")."""
    b = cfg.ARENA_BUS_BYTES
    return (int(cout) + b - 1) // b * b


def output_extent(spec):
    """(first, last + 1) arena bytes the layer writes (pad bytes included; a grouped tensor, layout
    v3: its whole buffer, out_off .. out_off + H*W*out_cs)."""
    if layout.is_grouped(spec.out_cs):
        return spec.out_off, spec.out_off + spec.out_h * spec.out_w * spec.out_cs
    first = spec.out_off + spec.out_choff
    return first, spec.out_off + (spec.out_h * spec.out_w - 1) * spec.out_cs + spec.out_choff + out_run_bytes(spec.cout)


def dil_extent(spec):
    if not spec.deformable:
        return None
    return spec.dil_off, spec.dil_off + (spec.out_h * spec.out_w - 1) * spec.dil_cs + 1


def arena_ranges(layers):
    """Per layer: dict(read=(a, b), write=(a, b), dil=(a, b) or None), byte ranges in the arena."""
    return [dict(read=input_extent(s), write=output_extent(s), dil=dil_extent(s)) for s in layers]


def arena_bytes_needed(layers):
    """Smallest arena size holding every range any layer reads or writes."""
    top = 0
    for r in arena_ranges(layers):
        top = max(top, r["read"][1], r["write"][1], r["dil"][1] if r["dil"] else 0)
    return top


# ------------------------------------------------------------------------ packing
def pack_weight_rows(w, bits):
    """(rows, K) ints -> (rows, row_bytes) uint8 with FORMAT.md nibble/byte packing."""
    w = np.asarray(w, np.int64)
    rows, k = w.shape
    if bits == 8:
        return (w & 0xFF).astype(np.uint8)
    nib = (w & 0xF).astype(np.uint8)
    if k % 2:
        nib = np.concatenate([nib, np.zeros((rows, 1), np.uint8)], axis=1)
    return nib[:, 0::2] | (nib[:, 1::2] << 4)


def unpack_weight_rows(packed, rows, k, bits):
    """Inverse of pack_weight_rows: (rows, row_bytes) uint8 -> (rows, k) int8."""
    packed = np.asarray(packed, np.uint8).reshape(rows, -1)
    if bits == 8:
        return packed[:, :k].view(np.int8).copy()
    lo = (packed & 0xF).astype(np.int8)
    hi = (packed >> 4).astype(np.int8)
    nib = np.empty((rows, packed.shape[1] * 2), np.int8)
    nib[:, 0::2] = lo
    nib[:, 1::2] = hi
    nib = nib[:, :k]
    return np.where(nib >= 8, nib - 16, nib).astype(np.int8)


def pack_requant(spec):
    n = spec.cout
    rec = np.zeros(n, dtype=np.dtype([("bias", "<i4"), ("mult", "<i2"), ("shift", "u1"), ("res", "i1")]))
    rec["bias"] = np.asarray(spec.bias, np.int64)
    rec["mult"] = np.asarray(spec.mult, np.int64)
    rec["shift"] = np.asarray(spec.shift, np.int64)
    zp = np.asarray(spec.zp_out, np.int64).astype("<i2")
    out = np.zeros(n * cfg.RQ_RECORD_BYTES + _align(2 * n), np.uint8)
    out[:n * 8] = rec.view(np.uint8)
    out[n * 8:n * 8 + 2 * n] = zp.view(np.uint8)
    return out


def unpack_requant(blob, q_off, cout):
    """-> (bias int32, mult int16, shift uint8, zp_out int16), each (cout,)."""
    rec = np.frombuffer(blob, np.dtype([("bias", "<i4"), ("mult", "<i2"), ("shift", "u1"), ("res", "i1")]),
                        count=cout, offset=q_off)
    zp = np.frombuffer(blob, "<i2", count=cout, offset=q_off + 8 * cout)
    return (rec["bias"].astype(np.int32), rec["mult"].astype(np.int16), rec["shift"].astype(np.uint8),
            zp.astype(np.int16))


def pack_program(layers, strict=True):
    """-> (program uint32 (n*DESC_WORDS,), weights uint8 blob). Validates every layer first
    (strict=False: only the engine's own descriptor checks, see validate_layer)."""
    if len(layers) > cfg.MAX_LAYERS:
        raise ValueError("program has {} layers, the engine runs at most {} (MAX_LAYERS)".format(
            len(layers), cfg.MAX_LAYERS))
    for s in layers:
        validate_layer(s, strict=strict)
    program = np.zeros((len(layers), cfg.DESC_WORDS), np.uint32)
    chunks, pos = [], 0

    def put(arr):
        nonlocal pos
        arr = np.asarray(arr, np.uint8).ravel()
        start = pos
        padded = np.zeros(_align(arr.size), np.uint8)
        padded[:arr.size] = arr
        chunks.append(padded)
        pos += padded.size
        return start

    for i, s in enumerate(layers):
        g_off = put(np.asarray(s.gather, np.int64).astype("<u2").view(np.uint8))
        w_off = put(pack_weight_rows(s.weights, s.w_bits))
        q_off = put(pack_requant(s))
        d = program[i]
        vals = {cfg.D_OP: OPS[s.op], cfg.D_IN_OFF: s.in_off, cfg.D_IN_H: s.in_h, cfg.D_IN_W: s.in_w,
                cfg.D_IN_CS: s.in_cs, cfg.D_CIN: s.cin, cfg.D_IN_MODE: s.in_mode, cfg.D_STRIDE: s.stride,
                cfg.D_IN_ZP: s.in_zp, cfg.D_FLAGS: s.flags, cfg.D_OUT_OFF: s.out_off, cfg.D_OUT_H: s.out_h,
                cfg.D_OUT_W: s.out_w, cfg.D_OUT_CS: s.out_cs, cfg.D_OUT_CHOFF: s.out_choff,
                cfg.D_COUT: s.cout, cfg.D_GATHER_OFF: g_off, cfg.D_W_OFF: w_off, cfg.D_Q_OFF: q_off,
                cfg.D_CLAMP_LO: s.clamp_lo, cfg.D_CLAMP_HI: s.clamp_hi,
                cfg.D_DIL_OFF: s.dil_off, cfg.D_DIL_CS: s.dil_cs,
                cfg.D_PAD: s.pad}
        for k, v in vals.items():
            d[k] = int(v) & 0xFFFFFFFF
    blob = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
    return program.ravel(), blob


def _s32(v):
    v = int(v) & 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def decode_descriptor(d):
    """One descriptor's words -> dict of raw fields (signed ones sign-extended)."""
    d = [int(x) for x in d]
    return dict(op=d[cfg.D_OP], in_off=d[cfg.D_IN_OFF], in_h=d[cfg.D_IN_H], in_w=d[cfg.D_IN_W],
                in_cs=d[cfg.D_IN_CS], cin=d[cfg.D_CIN], in_mode=d[cfg.D_IN_MODE], stride=d[cfg.D_STRIDE],
                in_zp=d[cfg.D_IN_ZP], flags=d[cfg.D_FLAGS], out_off=d[cfg.D_OUT_OFF], out_h=d[cfg.D_OUT_H],
                out_w=d[cfg.D_OUT_W], out_cs=d[cfg.D_OUT_CS], out_choff=d[cfg.D_OUT_CHOFF],
                cout=d[cfg.D_COUT], gather_off=d[cfg.D_GATHER_OFF], w_off=d[cfg.D_W_OFF],
                q_off=d[cfg.D_Q_OFF], clamp_lo=_s32(d[cfg.D_CLAMP_LO]), clamp_hi=_s32(d[cfg.D_CLAMP_HI]),
                dil_off=d[cfg.D_DIL_OFF], dil_cs=d[cfg.D_DIL_CS], pad=d[cfg.D_PAD])


def unpack_layer(d, weights, index=0):
    """Decode descriptor words `d` (DESC_WORDS uint32) against the weights blob -> LayerSpec.
    Raises ValueError if the descriptor does not name a valid op or its sections lie outside
    the blob."""
    f = decode_descriptor(d)
    if f["op"] not in OP_NAMES:
        raise ValueError("layer {}: op code {} is not 0 (conv1x1) or 1 (dw3x3)".format(index, f["op"]))
    if not 1 <= f["cin"] <= cfg.MAX_CH or not 1 <= f["cout"] <= cfg.MAX_CH:
        raise ValueError("layer {}: cin {} / cout {} outside 1..{} (MAX_CH)".format(
            index, f["cin"], f["cout"], cfg.MAX_CH))
    if f["flags"] & ~cfg.FLAGS_ALL:
        raise ValueError("layer {}: unknown flag bits 0x{:X}".format(index, f["flags"] & ~cfg.FLAGS_ALL))
    if any(int(v) for v in d[cfg.D_RESERVED:cfg.DESC_WORDS]):
        raise ValueError("layer {}: reserved descriptor words {}..{} are not 0".format(
            index, cfg.D_RESERVED, cfg.DESC_WORDS - 1))
    for what in ("gather_off", "w_off", "q_off"):
        if f[what] % cfg.SECTION_ALIGN:
            raise ValueError("layer {}: {} {} is not {}-byte aligned".format(index, what, f[what],
                                                                          cfg.SECTION_ALIGN))
    flags = f["flags"]
    spec = LayerSpec(op=OP_NAMES[f["op"]], in_off=f["in_off"], in_h=f["in_h"], in_w=f["in_w"], in_cs=f["in_cs"],
                     cin=f["cin"], in_mode=f["in_mode"], stride=f["stride"], pad=f["pad"], in_zp=f["in_zp"],
                     in_signed=bool(flags & cfg.FLAG_IN_SIGNED), out_signed=bool(flags & cfg.FLAG_OUT_SIGNED),
                     deformable=bool(flags & cfg.FLAG_DEFORMABLE), shift_only=bool(flags & cfg.FLAG_SHIFT_ONLY),
                     w_bits=8 if flags & cfg.FLAG_W8 else 4, out_off=f["out_off"], out_h=f["out_h"],
                     out_w=f["out_w"], out_cs=f["out_cs"], out_choff=f["out_choff"], cout=f["cout"],
                     clamp_lo=f["clamp_lo"], clamp_hi=f["clamp_hi"], dil_off=f["dil_off"], dil_cs=f["dil_cs"],
                     name="layer{}".format(index))
    blob = np.asarray(weights, np.uint8)
    k = spec.k
    sizes = (("gather table", f["gather_off"], 2 * spec.cin),
             ("weights", f["w_off"], spec.cout * spec.row_bytes()),
             ("requant parameters", f["q_off"], (cfg.RQ_RECORD_BYTES + 2) * spec.cout))
    for what, off, n in sizes:
        if off + n > blob.size:
            raise ValueError("layer {}: {} at weights byte {} (+{}) run past the end of the {}-byte "
                             "weights blob".format(index, what, off, n, blob.size))
    spec.gather = np.frombuffer(blob, "<u2", count=spec.cin, offset=f["gather_off"]).astype(np.uint16)
    rb = spec.row_bytes()
    spec.weights = unpack_weight_rows(blob[f["w_off"]:f["w_off"] + spec.cout * rb], spec.cout, k, spec.w_bits)
    spec.bias, spec.mult, spec.shift, spec.zp_out = unpack_requant(blob, f["q_off"], spec.cout)
    return spec


def unpack_program(program, weights):
    """Inverse of pack_program: -> list of LayerSpec (names 'layer<i>')."""
    words = np.asarray(program, np.uint32).ravel()
    if words.size % cfg.DESC_WORDS:
        raise ValueError("program of {} words is not a whole number of {}-word descriptors".format(
            words.size, cfg.DESC_WORDS))
    descs = words.reshape(-1, cfg.DESC_WORDS)
    return [unpack_layer(descs[i], weights, i) for i in range(descs.shape[0])]


# ---- the per-layer profile region (FORMAT.md "Profile region") ----
PROFILE_BEAT_BYTES = cfg.ARENA_BUS_BYTES     # one {start u64, end u64} entry per layer: one beat


def profile_region_bytes(n_layers):
    return n_layers * PROFILE_BEAT_BYTES


def pack_profile(stamps):
    """(n, 2) {start, end} -> the region's bytes (little-endian u64 pairs, one beat each)."""
    return np.ascontiguousarray(np.asarray(stamps, np.uint64).astype("<u8")).view(np.uint8).ravel()


def unpack_profile(region, n_layers):
    """The region's first n_layers beats -> (n, 2) uint64 {start, end}."""
    raw = np.ascontiguousarray(np.asarray(region, np.uint8)[:profile_region_bytes(n_layers)])
    return raw.view("<u8").reshape(n_layers, 2).astype(np.uint64)
