"""ONNX -> CoDeNet engine program (the contract: hls_src/codenet/FORMAT.md).

    compile_onnx(model, input_size=None, class_names=None) -> CompiledModel
    CompiledModel.load(dir) / .save(dir)

The front end (frontend.py) walks a quantized ONNX graph (QDQ or QONNX) into layer ops on
engine tensors; this module lowers them: requantizations folded into their producers (e.g. the
producers of a Concat write at the concat's scale), buffers merged where a consumer reads
channels of several tensors (zero-copy concat), the arena planned (planner.py), every layer's
real multipliers turned into integers (requant.py), the accumulator proven wide enough (A2Q bound
with the bias included) and the program packed. Anything that cannot be mapped exactly raises
`CompileError` naming the ONNX node and the reason. See runtime/compiler/README.md.
"""
import copy
import hashlib
import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np

from ..engines import codenet_config as cfg
from ..engines import codenet_layout as layout
from ..engines.codenet_program import LayerSpec, out_run_bytes, pack_program, unpack_program, validate_layer
from ..errors import InputError, ModelError
from ..fileio import write_files_atomically
from .frontend import Act, Frontend, LayerOp, RawQ
from .model_files import check_codenet_meta, check_model_sha256, load_npy, with_model_sha256
from .onnx_checks import check_onnx, compile_errors_named, read_onnx
from .onnx_graph import CompileError, load_model
from .planner import Buffer, plan_arena
from .requant import ScaleError, mult_shift, pow2_shift

__all__ = ["CompileError", "CompiledModel", "compile_onnx", "load_compiled", "a2q_bits"]

MODEL_FORMAT = "pynq-deploy/codenet-model"
FORMAT_VERSION = 3       # 2: the beat layout (FORMAT.md "Memory": outputs in whole 16-byte beats);
                         # 3: tensor layout v3 (pixel groups, runtime/engines/codenet_layout.py)
PROGRAM_FILE, WEIGHTS_FILE, META_FILE = "program.npy", "weights.npy", "model.json"

WEIGHT_BITS = (4, 8)      # the engine's weight widths, narrowest first (FORMAT.md; FLAG_W8 selects 8)
OP_LABELS = {"conv1x1": "conv1x1", "patch": "conv3x3(patch)", "dw": "dw3x3", "deform": "dw3x3(deformable)",
             "copy": "requant copy (dw3x3 identity)"}


# ------------------------------------------------------------------------ accumulator bound
def a2q_bits(w, bias, in_signed, acc_bits=cfg.ACC_BITS):
    """Accumulator proof for one layer. w: (cout, K) integer weights as the engine multiplies them,
    bias: (cout,) int (zero-point correction included). Worst case per output channel:
    ||w[o]||_1 * max|x| + |bias[o]| with max|x| = 128 (int8 input bytes) or 255 (uint8).
    Returns dict(l1 (cout,), worst (cout,), bits_needed (cout,), acc_bits, margin_bits,
    worst_channel, a2q_l1_budget) where bits_needed = ceil(log2(worst + 1)) + 1 (sign bit) and
    a2q_l1_budget = (2^(P-1) - 1) * 2^(s - N) is the A2Q L1 limit without bias (N = 8 bits,
    s = 1 signed / 0 unsigned)."""
    w = np.abs(np.asarray(w, np.int64))
    l1 = w.sum(axis=1)
    xmax = 128 if in_signed else 255
    worst = l1 * xmax + np.abs(np.asarray(bias, np.int64))
    bits = np.array([int(math.ceil(math.log2(int(v) + 1))) + 1 for v in worst], np.int64)
    o = int(np.argmax(bits)) if bits.size else 0
    need = int(bits.max()) if bits.size else 1
    return dict(l1=l1, worst=worst, bits_needed=bits, acc_bits=acc_bits, margin_bits=acc_bits - need,
                worst_channel=o, xmax=xmax,
                a2q_l1_budget=((1 << (acc_bits - 1)) - 1) * 2.0 ** ((1 if in_signed else 0) - 8))


# ------------------------------------------------------------------------ lowering IR
# compile_onnx runs these passes, in this order (runtime/compiler/README.md, "Passes"):
#   Frontend.run         ONNX graph -> LayerOps / RequantOps on engine Tensors (frontend.py)
#   fold_requants        RequantOps -> folded into their producer, or copy LayerOps
#   group_buffers        tensors read together -> shared Buffers (zero-copy concat), lifetimes
#   place_buffers        Buffers -> ArenaPlan (byte offsets, planner.py)
#   lower_layers         per LayerOp: integer_layer -> descriptor -> split_wide_rows -> check
#   pack                 engine limits, LayerSpecs -> program words + weights blob
#   input_info / output_info / probes: where the host finds its tensors in the arena

@dataclass(eq=False)
class IntLayer:
    """A layer's real numbers as the engine's integers (integer_layer's result): the LayerSpec
    fields of the requantization, plus the accumulator proof for the report."""
    weights: np.ndarray      # (cout, K) int8, sign of a negative requant factor folded in
    bias: np.ndarray         # (cout,) int32, zero-point correction included
    mult: np.ndarray         # (cout,) int16 M
    shift: np.ndarray        # (cout,) uint8 S
    zp_out: np.ndarray       # (cout,) int16
    clamp_lo: int
    clamp_hi: int
    shift_only: bool
    w_bits: int
    acc: dict                # a2q_bits(...) of the layer
    worst_scale_error: float


@dataclass(eq=False)
class ArenaPlan:
    """Where every engine tensor lives (place_buffers' result): its buffer (`gof`: tensor id ->
    buffer index) and the byte of its first channel in a pixel (`choff`), the buffers' offsets in
    the arena and the arena size."""
    bufs: List[Buffer]
    offsets: List[int]
    size: int
    choff: Dict[int, int]
    gof: Dict[int, int]

    def phys(self, fe, g):
        """Global channel id -> its byte within a pixel of its buffer."""
        t = fe.g_tensor[int(g)]
        return self.choff[t] + int(g) - fe.tensors[t].base

    def view(self, fe, act):
        """An Act -> (buffer offset, pixel stride cs, byte of each logical channel in a pixel)."""
        ts = fe.tensor_ids(act)
        b = self.gof[ts[0]]
        return self.offsets[b], self.bufs[b].cs, np.array([self.phys(fe, g) for g in act.flat], np.int64)


class _UF:
    def __init__(self):
        self.p = {}

    def find(self, a):
        self.p.setdefault(a, a)
        while self.p[a] != a:
            self.p[a] = self.p[self.p[a]]
            a = self.p[a]
        return a

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.p[max(ra, rb)] = min(ra, rb)


def _fail(op, reason):
    raise CompileError("node {!r} ({}): {}".format(op.name, op.onnx_op, reason))


def _reads(op):
    """The activations a layer reads: its input, and the dilation map of a deformable layer."""
    return [a for a in (op.act, op.dil) if a is not None]


# ------------------------------------------------------------------------ pass: fold_requants
def fold_requants(fe, outputs):
    """Consumes the front end's ops (LayerOps and RequantOps, fe.ops) and the graph outputs.
    Produces the engine layers (LayerOps only): each RequantOp folded into its producer when it is
    the producer's only reader (one rounding, both clamps kept), else a copy layer; layers whose
    output nothing reads dropped (repeatedly)."""
    uses = {}

    def count(op, d):
        for a in (op.act, getattr(op, "dil", None)):
            if a is not None:
                for t in fe.tensor_ids(a):
                    uses[t] = uses.get(t, 0) + d

    for op in fe.ops:
        count(op, 1)
    for _, act in outputs:
        for t in fe.tensor_ids(act):
            uses[t] = uses.get(t, 0) + 1
    final = []
    for op in fe.ops:
        if isinstance(op, LayerOp):
            final.append(op)
            continue
        r = op.out
        qpost = op.post.clamp((op.qlo - r.quant.zp) * r.quant.scale, (op.qhi - r.quant.zp) * r.quant.scale)
        ts = fe.tensor_ids(op.act)
        t = fe.tensors[ts[0]]
        flat = op.act.flat
        if (not op.force_copy and len(ts) == 1 and isinstance(t.producer, LayerOp) and uses.get(t.id, 0) == 1
                and not op.act.up and flat.size == t.c and len(set(flat.tolist())) == t.c):
            lay = t.producer
            perm = flat - t.base
            p1 = lay.post.take(perm)
            post = p1.affine(qpost.a, qpost.b).clamp(qpost.lo, qpost.hi)
            lay.w, lay.ws, lay.bias, lay.post = lay.w[perm], lay.ws[perm], lay.bias[perm], post
            if lay.kind in ("dw", "deform", "copy"):
                lay.act = Act(lay.act.ch[perm], lay.act.h, lay.act.w, lay.act.up)
            lay.out = r
            r.producer = lay
            lay.name = lay.name if op.name in lay.name.split(" + ") else "{} + {}".format(lay.name, op.name)
            uses[t.id] = 0
            t.producer = None
            continue
        c = flat.size
        w = np.zeros((c, 9), np.int64)
        w[:, 4] = 1
        lay = LayerOp("copy", op.act, w, np.ones(c), np.zeros(c), 1, 1, qpost, r, op.name, op.onnx_op)
        r.producer = lay
        final.append(lay)
    # dead layers (nothing reads their output): drop, repeatedly
    outs = {t for _, a in outputs for t in fe.tensor_ids(a)}
    changed = True
    while changed:
        changed = False
        keep = []
        for op in final:
            if uses.get(op.out.id, 0) == 0 and op.out.id not in outs:
                count(op, -1)
                changed = True
            else:
                keep.append(op)
        final = keep
    return final


# ------------------------------------------------------------------------ pass: group_buffers
def group_buffers(fe, ops, outputs, reuse=True):
    """Consumes the engine layers and the graph outputs. Produces the arena Buffers: tensors whose
    channels one consumer (or an output) reads together share a buffer, each at a channel offset
    (zero-copy concat), in write order; each buffer's lifetime is the step of its first write to
    the step of its last read (reuse=False: alive to the end). Returns (buffers, choff, gof) with
    choff / gof per tensor id as in ArenaPlan."""
    tensors = fe.tensors
    uf = _UF()
    live = set()
    for op in ops:
        live.add(op.out.id)
        for a in _reads(op):
            ts = fe.tensor_ids(a)
            live.update(ts)
            for t in ts[1:]:
                uf.union(ts[0], t)
    for name, act in outputs:
        ts = fe.tensor_ids(act)
        live.update(ts)
        for t in ts[1:]:
            uf.union(ts[0], t)
    live.add(fe.input_tensor.id)
    groups = {}
    for t in sorted(live):
        groups.setdefault(uf.find(t), []).append(t)
    index = {op.out.id: i for i, op in enumerate(ops)}
    inp = fe.input_tensor.id
    n = len(ops)
    last = {}
    for i, op in enumerate(ops):
        for a in _reads(op):
            for t in fe.tensor_ids(a):
                last[t] = i
    for _, act in outputs:
        for t in fe.tensor_ids(act):
            last[t] = n
    # the input image stays packed (cs = C, as the host writes it) when only PATCH3X3 layers read
    # it (they read any stride); else its pixels are padded to whole beats like every other tensor
    packed_input = all(op.kind == "patch" for op in ops for a in _reads(op) if inp in fe.tensor_ids(a))
    bufs, choff, gof = [], {}, {}
    for gi, (root, members) in enumerate(sorted(groups.items())):
        members.sort(key=lambda t: -1 if t == inp else index.get(t, n))
        if inp in members and len(members) > 1:
            other = tensors[[m for m in members if m != inp][0]]
            raise CompileError("the network input {!r} is concatenated with computed tensors ({!r}); the engine "
                               "keeps the input image in its own buffer".format(tensors[inp].name, other.name))
        h, w = tensors[members[0]].h, tensors[members[0]].w
        pos = 0
        for t in members:
            if (tensors[t].h, tensors[t].w) != (h, w):
                raise CompileError("tensors {!r} and {!r} share a buffer but have different sizes".format(
                    tensors[members[0]].name, tensors[t].name))
            choff[t] = pos
            gof[t] = gi
            # beat layout: every computed tensor's channels start a beat; the input image (written
            # by the host, only read by the engine) stays packed
            pos += tensors[t].c if t == inp and packed_input else out_run_bytes(tensors[t].c)
        first = min(-1 if t == inp else index.get(t, n) for t in members)
        lst = max(last.get(t, first) for t in members) if reuse else n
        bufs.append(Buffer(h=h, w=w, cs=pos, first=first, last=max(lst, first),
                           fixed=0 if inp in members else None, members=members))
    return bufs, choff, gof


# ------------------------------------------------------------------------ pass: place_buffers
def place_buffers(bufs, choff, gof):
    """Consumes group_buffers' result. Produces the ArenaPlan (buffer offsets: planner.plan_arena)."""
    offsets, arena_size = plan_arena(bufs)
    return ArenaPlan(bufs=bufs, offsets=offsets, size=arena_size, choff=choff, gof=gof)


# ------------------------------------------------------------------------ pass: lower_layers
def integer_layer(op, q_in, q_out):
    """Consumes one LayerOp (real weight scales, bias, post-op) and its input / output
    quantization. Produces its IntLayer: per output channel M, S (or shift only), int32 bias with
    the zero-point correction, one output clamp; refuses what the engine cannot represent (scale,
    clamp, weight range, accumulator width)."""
    w = np.asarray(op.w, np.int64)
    cout = w.shape[0]
    post = op.post
    k_real = q_in.scale * np.asarray(op.ws, np.float64)
    eff = post.a * k_real
    sg = np.where(eff < 0, -1, 1)
    effa = np.abs(eff)
    w2 = w * sg[:, None]
    c = post.a * np.asarray(op.bias, np.float64) + post.b
    zp_out = np.full(cout, q_out.zp, np.int64)
    bias = np.zeros(cout, np.int64)
    mult = np.zeros(cout, np.int64)
    shift = np.zeros(cout, np.int64)
    errs = np.zeros(cout)
    ms = effa / q_out.scale
    for o in range(cout):
        if effa[o] == 0:
            w2[o] = 0
            zp_out[o] = q_out.zp + int(np.rint(c[o] / q_out.scale))
            continue
        bias[o] = int(np.rint(c[o] / effa[o]))
        try:
            mult[o], shift[o], errs[o] = mult_shift(ms[o])
        except ScaleError as e:
            _fail(op, "scale not representable: output channel {}: requantization multiplier s_in * s_w / s_out "
                      "= {:.6g} * {:.6g} / {:.6g}: {}".format(o, q_in.scale, abs(op.ws[o] * post.a[o]),
                                                             q_out.scale, e))
    bias = bias - q_in.zp * w2.sum(axis=1)
    shifts = [pow2_shift(m) for m in ms]
    shift_only = all(s is not None for s in shifts) and bool(np.all(effa > 0))
    if shift_only:
        mult[:] = 1
        shift[:] = shifts
        errs[:] = 0.0
    # output clamp (one per layer)
    with np.errstate(invalid="ignore", over="ignore"):
        lo = np.where(np.isfinite(post.lo), np.rint(post.lo / q_out.scale) + q_out.zp, q_out.qmin)
        hi = np.where(np.isfinite(post.hi), np.rint(post.hi / q_out.scale) + q_out.zp, q_out.qmax)
    lo = np.clip(lo, q_out.qmin, q_out.qmax).astype(np.int64)
    hi = np.clip(hi, q_out.qmin, q_out.qmax).astype(np.int64)
    if lo.min() != lo.max() or hi.min() != hi.max():
        _fail(op, "output clamp differs between channels ({}..{} to {}..{}); the engine has one clamp per "
                  "layer".format(int(lo.min()), int(hi.min()), int(lo.max()), int(hi.max())))
    if int(lo[0]) > int(hi[0]):
        _fail(op, "empty output range {}..{}".format(int(lo[0]), int(hi[0])))
    wmin, wmax = (int(w2.min()), int(w2.max())) if w2.size else (0, 0)
    fits = [b for b in WEIGHT_BITS if -(1 << (b - 1)) <= wmin and wmax <= (1 << (b - 1)) - 1]
    if fits:
        w_bits = fits[0]
    else:
        _fail(op, "weights span {}..{}: more than the engine's 8 bits".format(wmin, wmax))
    acc = a2q_bits(w2, bias, q_in.signed)
    if acc["margin_bits"] < 0:
        o = acc["worst_channel"]
        _fail(op, "accumulator could overflow: output channel {} has ||w||_1 = {} and |bias| = {}, worst case "
                  "{} * {} + {} = {} needs {} bits, the engine accumulates in {} bits (ACC_BITS)".format(
                      o, int(acc["l1"][o]), abs(int(bias[o])), int(acc["l1"][o]), acc["xmax"], abs(int(bias[o])),
                      int(acc["worst"][o]), int(acc["bits_needed"][o]), cfg.ACC_BITS))
    return IntLayer(weights=w2.astype(np.int8), bias=bias.astype(np.int32), mult=mult.astype(np.int16),
                    shift=shift.astype(np.uint8), zp_out=zp_out.astype(np.int16), clamp_lo=int(lo[0]),
                    clamp_hi=int(hi[0]), shift_only=shift_only, w_bits=w_bits, acc=acc,
                    worst_scale_error=float(errs.max()) if cout else 0.0)


def descriptor(fe, op, ints, arena):
    """Consumes one LayerOp, its IntLayer and the ArenaPlan. Produces its engine LayerSpec: op
    and input mode from the layer kind, input / output / dilation-map addresses from the plan, the
    gather table (byte of each logical input channel)."""
    q_in = fe.tensors[fe.tensor_ids(op.act)[0]].quant
    q_out = op.out.quant
    in_off, in_cs, gather = arena.view(fe, op.act)
    up = op.act.up
    out = op.out
    ob = arena.gof[out.id]
    spec = LayerSpec(op="conv1x1" if op.kind in ("conv1x1", "patch") else "dw3x3", in_off=in_off,
                     in_h=op.act.h >> up, in_w=op.act.w >> up, in_cs=in_cs, cin=int(op.act.flat.size),
                     in_mode=cfg.MODE_PATCH3X3 if op.kind == "patch" else (
                         cfg.MODE_UPSAMPLE2 if up else cfg.MODE_DIRECT),
                     stride=int(op.stride), pad=int(op.pad), in_zp=q_in.zp & 0xFF, in_signed=q_in.signed,
                     out_signed=q_out.signed, deformable=op.kind == "deform",
                     out_off=arena.offsets[ob], out_h=out.h, out_w=out.w, out_cs=arena.bufs[ob].cs,
                     out_choff=arena.choff[out.id], cout=out.c, gather=gather.astype(np.uint16), name=op.name,
                     weights=ints.weights, bias=ints.bias, mult=ints.mult, shift=ints.shift, zp_out=ints.zp_out,
                     clamp_lo=ints.clamp_lo, clamp_hi=ints.clamp_hi, shift_only=ints.shift_only,
                     w_bits=ints.w_bits)
    if op.dil is not None:
        d_off, d_cs, d_ch = arena.view(fe, op.dil)
        spec.dil_off, spec.dil_cs = d_off + int(d_ch[0]), d_cs
    return spec


def split_wide_rows(spec):
    """Consumes a 1x1 LayerSpec whose weights exceed the on-chip buffer (W_BUF_BYTES). Produces
    several LayerSpecs, each computing a slice of the output channels into the same buffer (exact:
    output channels are independent); slices are whole PE groups where possible."""
    rows = max(1, cfg.W_BUF_BYTES // spec.row_bytes())
    if rows >= cfg.PE:
        rows -= rows % cfg.PE
    parts = []
    for i, start in enumerate(range(0, spec.cout, rows)):
        sl = slice(start, min(spec.cout, start + rows))
        p = copy.copy(spec)
        p.cout = sl.stop - sl.start
        p.out_choff = spec.out_choff + start
        p.weights, p.bias, p.mult = spec.weights[sl], spec.bias[sl], spec.mult[sl]
        p.shift, p.zp_out = spec.shift[sl], spec.zp_out[sl]
        p.name = "{} [out {}..{}]".format(spec.name, sl.start, sl.stop - 1)
        parts.append(p)
    return parts


def report_row(op, ints, parts):
    """One line of the compile report (model.json "report") for a LayerOp lowered to `parts`."""
    acc, out = ints.acc, op.out
    return dict(name=op.name, onnx_op=op.onnx_op, op=OP_LABELS[op.kind],
                in_shape=[int(op.act.flat.size), op.act.h, op.act.w], out_shape=[out.c, out.h, out.w],
                w_bits=ints.w_bits, l1_max=int(acc["l1"].max()),
                acc_bits_needed=int(acc["bits_needed"].max()), acc_bits=cfg.ACC_BITS,
                margin_bits=int(acc["margin_bits"]), worst_scale_error=ints.worst_scale_error,
                shift_only=bool(ints.shift_only), engine_layers=len(parts))


def lower_layers(fe, ops, arena, split_wide=True):
    """Consumes the engine layers (LayerOps) and the ArenaPlan. Produces (LayerSpecs, report rows):
    per layer integer_layer -> descriptor -> split_wide_rows (a too-wide 1x1 layer; split_wide=False
    leaves it to the engine-limit check) -> validate_layer, whose refusal names the ONNX node."""
    layers, report = [], []
    for op in ops:
        q_in = fe.tensors[fe.tensor_ids(op.act)[0]].quant   # one quantization: the front end checked
        ints = integer_layer(op, q_in, op.out.quant)
        spec = descriptor(fe, op, ints, arena)
        parts = [spec]
        if split_wide and spec.op == "conv1x1" and spec.weight_bytes() > cfg.W_BUF_BYTES:
            parts = split_wide_rows(spec)
        for part in parts:
            try:
                validate_layer(part)
            except ValueError as e:
                msg = str(e)
                pre = "layer {!r}: ".format(part.label())
                _fail(op, "engine limit: " + (msg[len(pre):] if msg.startswith(pre) else msg))
        layers.extend(parts)
        report.append(report_row(op, ints, parts))
    return layers, report


# ------------------------------------------------------------------------ pass: pack
def pack(layers):
    """Consumes the LayerSpecs. Produces (program words, weights blob) (FORMAT.md), after the
    program-level limits (MAX_LAYERS, at least one layer)."""
    if len(layers) > cfg.MAX_LAYERS:
        raise CompileError("the network needs {} engine layers, the engine runs at most {} (MAX_LAYERS)".format(
            len(layers), cfg.MAX_LAYERS))
    if not layers:
        raise CompileError("the network has no layer the engine runs")
    return pack_program(layers)


# ------------------------------------------------------------------------ pass: host tensors
def input_info(fe, arena):
    """model.json "input": the network input's name, shape, arena offset, pixel stride, quantization."""
    inp = fe.input_tensor.id
    t_in = fe.tensors[inp]
    return dict(name=fe.input_name, shape=[1, t_in.c, t_in.h, t_in.w], offset=arena.offsets[arena.gof[inp]],
                cs=arena.bufs[arena.gof[inp]].cs, **t_in.quant.as_dict())


def output_info(fe, outputs, arena):
    """model.json "outputs": per graph output its shape, buffer offset, pixel stride, channel bytes,
    upsample flag and quantization (one per output: refused if its channels mix two)."""
    tensors = fe.tensors
    outs = []
    for name, act in outputs:
        ts = fe.tensor_ids(act)
        q = tensors[ts[0]].quant
        for t in ts[1:]:
            if not tensors[t].quant.same(q):
                raise CompileError("graph output {!r} mixes channels quantized differently".format(name))
        off, cs, ch = arena.view(fe, act)
        outs.append(dict(name=name, shape=[1, int(act.flat.size), act.h, act.w], offset=int(off), cs=int(cs),
                         channels=[int(c) for c in ch], up=int(act.up), **q.as_dict()))
    return outs


def probes(fe, arena):
    """Where every quantized ONNX value lives in the arena after a run (debugging aid, not saved;
    a buffer may have been reused by a later layer)."""
    found = {}
    for name, v in fe.values.items():
        act = v.act if isinstance(v, RawQ) else v
        if not isinstance(act, Act) or act.ch.ndim != 1:
            continue
        ts = fe.tensor_ids(act)
        if not all(t in arena.gof for t in ts) or len({arena.gof[t] for t in ts}) != 1:
            continue
        off, cs, ch = arena.view(fe, act)
        found[name] = dict(name=name, shape=[1, int(act.flat.size), act.h, act.w], offset=int(off), cs=int(cs),
                           channels=[int(c) for c in ch], up=int(act.up), **fe.tensors[ts[0]].quant.as_dict())
    return found


def compile_onnx(model, input_size=None, class_names=None, float_weight_bits=None, split_wide=True,
                 reuse_memory=True):
    """Compile a quantized ONNX model (QDQ or QONNX; path, bytes or ModelProto) for the engine.
    input_size: (H, W) or an int, for models with symbolic spatial sizes (or to override them).
    float_weight_bits: None (default) refuses float weights; 4 or 8 quantizes them symmetrically
    per output channel (not exact: the float model's numbers change).
    split_wide: a 1x1 layer whose packed weights exceed the engine's weight buffer (W_BUF_BYTES)
    becomes several engine layers over slices of its output channels (exact); False refuses it.
    reuse_memory=False keeps every tensor at its own arena bytes (for inspecting intermediate
    tensors through `CompiledModel.probes` after a run)."""
    m = read_onnx(model)
    src = model if isinstance(model, (str, os.PathLike)) else getattr(m.graph, "name", "")
    check_onnx(m, str(src) or "the model")
    source = dict(model=str(src), producer=m.producer_name, sha256=hashlib.sha256(m.SerializeToString()).hexdigest())
    fe = Frontend(m, input_size=input_size, float_weight_bits=float_weight_bits)
    with compile_errors_named(fe):
        outputs = fe.run()
        names = list(class_names) if class_names is not None else None
        ops = fold_requants(fe, outputs)
        arena = place_buffers(*group_buffers(fe, ops, outputs, reuse=reuse_memory))
        layers, report = lower_layers(fe, ops, arena, split_wide=split_wide)
        program, weights = pack(layers)
        inp = input_info(fe, arena)
        outs = output_info(fe, outputs, arena)
        meta = dict(source=source, n_copy_layers=sum(op.kind == "copy" for op in ops))
        cm = CompiledModel(program, weights, layers, arena.size, inp, outs, names, report, meta)
        cm.probes = probes(fe, arena)
        return cm


# ------------------------------------------------------------------------ compiled model
def _sha(arr):
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


class CompiledModel:
    """A compiled network: the packed program + weights blob and what the host needs around them."""

    def __init__(self, program, weights, layers, arena_size, input_info, outputs, class_names, report, meta=None):
        self.program = np.ascontiguousarray(program, np.uint32)
        self.weights = np.ascontiguousarray(weights, np.uint8)
        self.layers = layers
        self.arena_size = int(arena_size)
        self.input = input_info
        self.outputs = outputs
        self.class_names = class_names
        self.report = report
        self.meta = meta or {}
        self._per_thread = threading.local()     # run_numpy's arena, reused frame after frame

    @property
    def n_layers(self):
        return len(self.layers)

    def report_text(self):
        head = "{:<40} {:<22} {:>15} {:>15} {:>3} {:>7} {:>9} {:>6} {:>9}".format(
            "layer", "op", "in (C,H,W)", "out (C,H,W)", "wb", "L1 max", "acc bits", "margin", "scale err")
        rows = [head]
        for r in self.report:
            rows.append("{:<40} {:<22} {:>15} {:>15} {:>3} {:>7} {:>5}/{:<3} {:>6} {:>9.2e}".format(
                r["name"][-40:], r["op"], "x".join(map(str, r["in_shape"])), "x".join(map(str, r["out_shape"])),
                r["w_bits"], r["l1_max"], r["acc_bits_needed"], r["acc_bits"], r["margin_bits"],
                r["worst_scale_error"]))
        return "\n".join(rows)

    # ---- host side
    def input_bytes(self):
        """Bytes of the input tensor in the arena: H x W pixels of `cs` bytes (C channels, then
        zero pad bytes when the input is padded to whole beats)."""
        _, c, h, w = self.input["shape"]
        return self.input.get("cs", c) * h * w

    def quantize_input(self, x, out=None):
        """Float NCHW (1, C, H, W) or (C, H, W) -> the uint8 bytes of the input tensor (tensor layout
        v3, codenet_layout: packed NHWC for the detector's 3-byte image) to put at input['offset'] of
        the arena (QuantizeLinear semantics: round half to even, saturate).
        With `out` (a uint8 array of input_bytes()), the bytes are written there."""
        x = np.asarray(x, np.float32)
        want = tuple(self.input["shape"])
        if x.shape == want[1:]:
            x = x[None]
        if x.shape != want:
            raise InputError("input {!r} must have shape {} (NCHW float), got {}".format(
                self.input["name"], list(want), list(x.shape)))
        lo, hi = (-128, 127) if self.input["signed"] else (0, 255)
        q = np.divide(x[0], np.float32(self.input["scale"]))
        np.rint(q, out=q)
        np.add(q, np.float32(self.input["zp"]), out=q)
        np.clip(q, lo, hi, out=q)
        if out is None:
            out = np.empty(self.input_bytes(), np.uint8)
        _, c, h, w = want
        cs = self.input.get("cs", c)
        grouped = layout.is_grouped(cs)
        pix = (np.empty((h, w, cs), np.uint8) if grouped else out.reshape(h, w, cs))
        pix = pix.view(np.int8 if self.input["signed"] else np.uint8)
        if cs > c:
            pix[:, :, c:] = 0                                        # the pad bytes of whole beats
        np.copyto(pix[:, :, :c].transpose(2, 0, 1), q, casting="unsafe")     # integral values in range
        if grouped:
            layout.write(out, 0, h, w, cs, 0, pix.view(np.uint8))
        return out

    def new_arena(self):
        return np.zeros(self.arena_size, np.uint8)

    def read_outputs(self, arena, out=None):
        """-> {onnx output name: float32 NCHW array} (dequantized: (q - zp) * scale in float32).
        out: optional {name: float32 (1, C, H, W) array} to write into (returned)."""
        res = {}
        for o, px in self._output_pixels(arena):
            _, c, h, w = o["shape"]
            y = out[o["name"]] if out is not None else np.empty((1, c, h, w), np.float32)
            low = np.empty((c, h >> 1, w >> 1), np.float32) if o["up"] else y[0]
            np.subtract(px.transpose(2, 0, 1), np.float32(o["zp"]), out=low, dtype=np.float32)
            np.multiply(low, np.float32(o["scale"]), out=low)
            if o["up"]:                            # nearest x2: each value to a 2x2 block
                np.copyto(y[0].reshape(c, h >> 1, 2, w >> 1, 2), low[:, :, None, :, None])
            res[o["name"]] = y
        return res

    def output_regions(self):
        """[(byte offset, size)] of the arena regions that hold the outputs."""
        regions = []
        for o in self.outputs:
            _, _, h, w = o["shape"]
            regions.append((o["offset"], (h >> o["up"]) * (w >> o["up"]) * o["cs"]))
        return regions

    def read_outputs_q(self, arena):
        """-> {onnx output name: int32 NCHW array} (the stored integers, signedness applied)."""
        res = {}
        for o, px in self._output_pixels(arena):
            q = px.astype(np.int32)
            if o["up"]:
                q = q.repeat(2, axis=0).repeat(2, axis=1)
            res[o["name"]] = np.ascontiguousarray(q.transpose(2, 0, 1)[None])
        return res

    def stored_outputs(self, arena):
        """{output name: (output info, (H, W, C) view of its stored int8/uint8 values)} at the stored
        (not upsampled) size: no copy where the channels are contiguous in a non-grouped (16-byte
        stride) buffer (the detector's decode then reads in place; a grouped one is copied)."""
        return {o["name"]: (o, px) for o, px in self._output_pixels(arena)}

    def _output_pixels(self, arena):
        """(output info, (H, W, C) int8 or uint8 view or copy of its stored values) per output,
        at the stored (not upsampled) size."""
        arena = np.asarray(arena, np.uint8).reshape(-1)
        for o, (off, size) in zip(self.outputs, self.output_regions()):
            _, c, h, w = o["shape"]
            if off + size > arena.size:
                raise InputError("arena of {} bytes is too small for output {!r} (needs {})".format(
                    arena.size, o["name"], off + size))
            hs, ws, cs = h >> o["up"], w >> o["up"], o["cs"]
            ch = np.asarray(o["channels"])
            run = bool(ch.size) and np.array_equal(ch, np.arange(ch[0], ch[0] + ch.size))
            if layout.is_grouped(cs):                          # tensor layout v3: a copy
                c0 = int(ch.min()) if ch.size else 0
                px = layout.read(arena, off, hs, ws, cs, c0, int(ch.max()) + 1 - c0 if ch.size else 0)
                if not run:
                    px = px[:, :, ch - c0]
            else:
                px = arena[off:off + size].reshape(hs, ws, cs)
                px = px[:, :, ch[0]:ch[0] + ch.size] if run else px[:, :, ch]     # a view if a run
            yield o, (px.view(np.int8) if o["signed"] else px)

    def run_arena(self, x, arena=None):
        """Run the bit-exact numpy engine on a float NCHW input in `arena` (a new zeroed one by
        default) -> the arena."""
        from ..engines.codenet_model import run_program
        if arena is None:
            arena = self.new_arena()
        off = self.input["offset"]
        self.quantize_input(x, out=arena[off:off + self.input_bytes()])
        run_program(self.program, self.weights, arena)
        return arena

    def run_numpy(self, x, out=None):
        """Run the bit-exact numpy engine on a float NCHW input -> dequantized outputs (into `out`,
        see read_outputs). Each thread reuses its arena, as the board reuses its buffer: every
        byte read by the program is written by it first in the same frame (the input, then each
        layer's output)."""
        arena = getattr(self._per_thread, "arena", None)
        if arena is None:
            arena = self._per_thread.arena = self.new_arena()
        return self.read_outputs(self.run_arena(x, arena), out)

    # ---- files
    def meta_dict(self):
        return dict(format=MODEL_FORMAT, version=FORMAT_VERSION, n_layers=self.n_layers,
                    layer_names=[s.name for s in self.layers], arena_size=self.arena_size, input=self.input,
                    outputs=self.outputs, class_names=self.class_names, report=self.report, meta=self.meta,
                    engine=dict(ACC_BITS=cfg.ACC_BITS, W_BUF_BYTES=cfg.W_BUF_BYTES, MAX_CH=cfg.MAX_CH),
                    program_sha256=_sha(self.program.astype("<u4")), weights_sha256=_sha(self.weights),
                    program_words=int(self.program.size), weights_bytes=int(self.weights.size))

    def save(self, path):
        """Write program.npy, weights.npy and model.json atomically (temp files renamed in place)."""
        path = Path(path)
        meta = json.dumps(with_model_sha256(self.meta_dict(), [self.program.astype("<u4"), self.weights]),
                          indent=1).encode()
        write_files_atomically(path, [
            (PROGRAM_FILE, lambda f: np.save(f, self.program.astype("<u4"), allow_pickle=False)),
            (WEIGHTS_FILE, lambda f: np.save(f, self.weights, allow_pickle=False)),
            (META_FILE, lambda f: f.write(meta))])
        return path

    @classmethod
    def load(cls, path):
        """Load a saved model; raises ModelError on a missing, corrupt or truncated file or a sha256
        mismatch."""
        path = Path(path)
        if not path.is_dir():
            raise ModelError("CoDeNet model folder not found: {}".format(path))
        for nm in (META_FILE, PROGRAM_FILE, WEIGHTS_FILE):
            if not (path / nm).is_file():
                raise ModelError("CoDeNet model {} is incomplete: {} is missing".format(path, nm))
        try:
            meta = json.loads((path / META_FILE).read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ModelError("CoDeNet model {}: {} is corrupt: {}".format(path, META_FILE, e)) from e
        if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
            raise ModelError("CoDeNet model {}: {} is not a {} file".format(path, META_FILE, MODEL_FORMAT))
        if meta.get("version") != FORMAT_VERSION:
            why = (" (the tensor layout changed: layout v3, pixel groups)"
                   if isinstance(meta.get("version"), int) and meta["version"] < FORMAT_VERSION else "")
            raise ModelError("CoDeNet model {}: format version {} is not {}{}; recompile it: "
                             "`pynq-deploy compile --recompile {}`".format(
                                 path, meta.get("version"), FORMAT_VERSION, why, path))
        arrays = {}
        for nm, dt, key in ((PROGRAM_FILE, "<u4", "program_sha256"), (WEIGHTS_FILE, "u1", "weights_sha256")):
            arr = load_npy(path / nm, "CoDeNet model {}".format(path))
            if arr.dtype != np.dtype(dt) or arr.ndim != 1:
                raise ModelError("CoDeNet model {}: {} must be a 1-D {} array, got {} {}".format(
                    path, nm, np.dtype(dt), arr.dtype, arr.shape))
            if _sha(arr) != meta.get(key):
                raise ModelError("CoDeNet model {}: {} does not match the sha256 in {} (corrupt file)".format(
                    path, nm, META_FILE))
            arrays[nm] = arr
        where = "CoDeNet model {}: {}".format(path, META_FILE)
        check_model_sha256(where, meta, [arrays[PROGRAM_FILE], arrays[WEIGHTS_FILE]])
        check_codenet_meta(where, meta)
        try:
            layers = unpack_program(arrays[PROGRAM_FILE], arrays[WEIGHTS_FILE])
            for s, nm in zip(layers, meta.get("layer_names") or []):
                s.name = nm
            for s in layers:
                validate_layer(s)
        except ValueError as e:
            raise ModelError("CoDeNet model {}: the program does not fit the engine: {}".format(path, e)) from e
        if len(layers) != meta.get("n_layers"):
            raise ModelError("CoDeNet model {}: {} holds {} layers, {} says {}".format(
                path, PROGRAM_FILE, len(layers), META_FILE, meta.get("n_layers")))
        try:
            return cls(arrays[PROGRAM_FILE], arrays[WEIGHTS_FILE], layers, meta["arena_size"], meta["input"],
                       meta["outputs"], meta.get("class_names"), meta.get("report", []), meta.get("meta", {}))
        except KeyError as e:
            raise ModelError("CoDeNet model {}: {} lacks the field {}".format(path, META_FILE, e)) from e


def load_compiled(path):
    return CompiledModel.load(path)


def recompile_folder(path):
    """Recompile a shipped detector folder (model.json + program.npy + weights.npy + its ONNX, named
    by meta.detector.onnx) in place with this compiler, at the input size and with the class names it
    has, keeping its metadata (meta: source, detector info such as the evaluation). For a layout or
    format change of the engine; the ONNX is not touched. model.json of an older format version is
    read as plain JSON (its program is not loaded). -> the new CompiledModel."""
    path = Path(path)
    try:
        old = json.loads((path / META_FILE).read_text())
    except (OSError, ValueError) as e:
        raise ModelError("{}: cannot read {}: {}".format(path, META_FILE, e)) from e
    meta = old.get("meta") or {}
    onnx_name = (meta.get("detector") or {}).get("onnx")
    if not onnx_name or not (path / onnx_name).is_file():
        raise ModelError("{} has no ONNX beside its compiled program (meta.detector.onnx)".format(path))
    _, _, h, w = old["input"]["shape"]
    cm = compile_onnx(str(path / onnx_name), input_size=(int(h), int(w)), class_names=old.get("class_names"))
    if cm.meta["source"]["sha256"] != meta.get("source", {}).get("sha256", cm.meta["source"]["sha256"]):
        raise ModelError("{}: {} is not the ONNX the folder was compiled from (sha256 differs)".format(
            path, onnx_name))
    cm.meta = {**meta, "n_copy_layers": cm.meta["n_copy_layers"]}
    cm.save(path)
    return cm
