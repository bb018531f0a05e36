"""Front end of the CoDeNet compiler: a symbolic walk of a quantized ONNX graph (standard QDQ or
QONNX `Quant` nodes) that turns it into the compiler's IR.

Every ONNX value becomes one of:
- `Const`: a constant (initializer, Constant, folded shape arithmetic); quantized weights carry
  their integers, scales and zero points (`Const.q`).
- `Act`: a quantized activation living in the arena: `ch` holds, per logical channel, a global
  channel id (tensor + channel), so split / slice / concat / channel shuffle are only index
  arithmetic (no copy); `up` marks a nearest x2 upsample folded into the consumers' addressing.
- `Pending`: the real-valued result of a linear layer (conv + bias, then folded BatchNorm, Mul /
  Add by constants, ReLU / Clip) that is not yet quantized; the next quantizer turns it into an
  engine layer (`LayerOp`) writing a new tensor.
- `RawQ`: the integer output of a QuantizeLinear (its DequantizeLinear gives the `Act` back).
- `RoundV` / `OffsetV`: the dilation predictor of the deformable block (Round, Clip(0, MAX_DIL),
  offset = d * A + B).
A quantizer applied to an `Act` (requantization, e.g. QDQ around a Concat) becomes a
`RequantOp`; the lowering folds it into the producing layer when it can, else it is a copy layer.

The IR classes are dataclasses (frozen where they are values; `LayerOp` / `RequantOp` / `Tensor`
are mutable because the lowering folds requantizations into them). A `Pending` layer's linear
part is a `LayerSrc` (or an `IdentitySrc`: post-ops on an existing activation); a quantized
constant's integers are an `IntQ`. Each ONNX op is handled by the function OP_HANDLERS names for
its (domain, op type); see `Frontend.dispatch`.
"""
from dataclasses import dataclass, replace
from typing import Optional, Union

import numpy as np

from ..engines.codenet_config import MAX_DIL
from .onnx_graph import CompileError, QONNX_DOMAINS, attrs, eval_constant_node, node_label, opset_version

INF = float("inf")
ONNX_DOMAINS = ("", "ai.onnx")            # the standard operator set (both spellings)
# the integer types a QDQ weight initializer may have (onnxruntime's QLinearConv takes no other;
# int32 is for biases only)
WEIGHT_STORAGE_TYPES = ("int8", "uint8", "int4", "uint4")
_QTYPES = {2: "uint8", 3: "int8", 21: "uint4", 22: "int4"}   # QuantizeLinear output_dtype codes


@dataclass(frozen=True, repr=False)
class Quant:
    """Per-tensor activation quantization: real = scale * (q - zp), q int8 (signed) or uint8."""
    scale: float
    zp: int
    signed: bool

    def __post_init__(self):
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "zp", int(self.zp))
        object.__setattr__(self, "signed", bool(self.signed))

    @property
    def qmin(self) -> int:
        return -128 if self.signed else 0

    @property
    def qmax(self) -> int:
        return 127 if self.signed else 255

    def same(self, o: "Quant") -> bool:
        return (self.zp == o.zp and self.signed == o.signed
                and abs(self.scale - o.scale) <= 1e-6 * max(abs(self.scale), abs(o.scale)))

    def as_dict(self) -> dict:
        return dict(scale=self.scale, zp=self.zp, signed=self.signed)

    def __repr__(self):
        return "Quant({:.6g}, {}, {})".format(self.scale, self.zp, "int8" if self.signed else "uint8")


def _f64(v):
    return np.asarray(v, np.float64).copy()


@dataclass(frozen=True, eq=False)
class Post:
    """Per-channel f(y) = clamp(a * y + b, lo, hi) applied to a layer's real-valued output
    (float64 arrays of one length; `Post.identity(c)` is f(y) = y)."""
    a: np.ndarray
    b: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def __post_init__(self):
        for f in ("a", "b", "lo", "hi"):
            object.__setattr__(self, f, _f64(getattr(self, f)))

    @classmethod
    def identity(cls, c: int) -> "Post":
        return cls(np.ones(c), np.zeros(c), np.full(c, -INF), np.full(c, INF))

    def take(self, idx) -> "Post":
        return Post(self.a[idx], self.b[idx], self.lo[idx], self.hi[idx])

    def affine(self, A, B) -> "Post":
        """Compose g(v) = A * v + B after f."""
        A = np.broadcast_to(np.asarray(A, np.float64), self.a.shape)
        B = np.broadcast_to(np.asarray(B, np.float64), self.a.shape)
        with np.errstate(invalid="ignore"):
            lo1, hi1 = A * self.lo + B, A * self.hi + B
        lo = np.where(A > 0, lo1, np.where(A < 0, hi1, -INF))
        hi = np.where(A > 0, hi1, np.where(A < 0, lo1, INF))
        b = np.where(A == 0, B, A * self.b + B)
        a = A * self.a
        # a zero A makes the result the constant B whatever the clamp was
        lo = np.where(np.isnan(lo), -INF, lo)
        hi = np.where(np.isnan(hi), INF, hi)
        return Post(a, b, lo, hi)

    def clamp(self, lo, hi) -> "Post":
        lo = np.broadcast_to(np.asarray(lo, np.float64), self.a.shape)
        hi = np.broadcast_to(np.asarray(hi, np.float64), self.a.shape)
        return Post(self.a, self.b, np.maximum(self.lo, lo), np.minimum(self.hi, hi))

    def without_clamp(self) -> "Post":
        return Post(self.a, self.b, np.full(len(self.a), -INF), np.full(len(self.a), INF))

    def is_identity(self) -> bool:
        return bool(np.all(self.a == 1) and np.all(self.b == 0) and np.all(self.lo == -INF)
                    and np.all(self.hi == INF))


@dataclass(eq=False)
class Tensor:
    """One engine tensor: `c` channels on an h x w grid, written by one layer (or the input).
    Its channels have the global ids base .. base + c - 1."""
    id: int
    base: int
    c: int
    h: int
    w: int
    quant: Quant
    name: str
    producer: Optional[Union["LayerOp", "RequantOp"]] = None     # None for the network input


@dataclass(frozen=True, eq=False)
class IntQ:
    """The integers behind a quantized constant: value = (ints - zp) * scale (broadcastable)."""
    ints: np.ndarray
    scale: np.ndarray
    zp: np.ndarray
    stored_as: str = ""      # the initializer's integer type (QDQ); "" when computed (QONNX Quant)


@dataclass(frozen=True, eq=False)
class Const:
    """A constant value; quantized weights carry their integers (`q`), None = float."""
    value: np.ndarray
    q: Optional[IntQ] = None
    onnx_type: Optional[str] = None      # "int4" / "uint4" when the value was widened to 8 bits

    def __post_init__(self):
        object.__setattr__(self, "value", np.asarray(self.value))

    @property
    def shape(self) -> tuple:
        return tuple(self.value.shape)


@dataclass(frozen=True, eq=False)
class Act:
    """A quantized activation in the arena: per logical channel a global channel id (`ch`, 1-D
    for NCHW, more dimensions inside a channel shuffle); `up` = 1: nearest x2 upsample of the
    stored (h/2, w/2) tensor."""
    ch: np.ndarray
    h: int
    w: int
    up: int = 0

    def __post_init__(self):
        object.__setattr__(self, "ch", np.asarray(self.ch, np.int64))
        object.__setattr__(self, "h", int(self.h))
        object.__setattr__(self, "w", int(self.w))
        object.__setattr__(self, "up", int(self.up))

    @property
    def shape(self) -> tuple:
        return (1,) + tuple(self.ch.shape) + (self.h, self.w)

    @property
    def flat(self) -> np.ndarray:
        return self.ch.reshape(-1)


@dataclass(frozen=True, eq=False)
class LayerSrc:
    """The linear part of an engine layer (convolution + bias) read from one ONNX node.
    kind: conv1x1 | patch | dw | deform (| copy for the lowering's requant copies)."""
    kind: str
    act: Act
    w: np.ndarray            # (cout, K) integer weights, zero point removed
    ws: np.ndarray           # (cout,) weight scale
    bias: np.ndarray         # (cout,) real bias
    stride: int
    pad: int
    name: str
    onnx_op: str
    dil: Optional[Act] = None


@dataclass(frozen=True, eq=False)
class IdentitySrc:
    """An activation used as a linear layer's input (element-wise post-ops on an Act)."""
    act: Act


@dataclass(frozen=True, eq=False)
class Pending:
    """The real-valued result of a linear layer (`src`) and its post-ops, not yet quantized."""
    src: Union[LayerSrc, IdentitySrc]
    c: int
    h: int
    w: int
    post: Optional[Post] = None

    def __post_init__(self):
        for f in ("c", "h", "w"):
            object.__setattr__(self, f, int(getattr(self, f)))
        if self.post is None:
            object.__setattr__(self, "post", Post.identity(self.c))

    @property
    def shape(self) -> tuple:
        return (1, self.c, self.h, self.w)

    def with_post(self, post: Post) -> "Pending":
        return replace(self, post=post)


@dataclass(frozen=True, eq=False)
class RawQ:
    """The integer output of a QuantizeLinear (its DequantizeLinear gives `act` back)."""
    act: Act
    quant: Quant

    @property
    def shape(self) -> tuple:
        return self.act.shape


@dataclass(frozen=True, eq=False)
class GraphInput:
    """The float network input before its quantizer."""
    name: str
    shape: tuple

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(self.shape))


@dataclass(frozen=True, eq=False)
class RoundV:
    """Round(x) of an activation: the dilation predictor before its Clip."""
    src: Union[Pending, Act]

    @property
    def shape(self) -> tuple:
        return self.src.shape


@dataclass(frozen=True, eq=False)
class OffsetV:
    """DeformConv offsets d * A + B (B None until the Add) of a per-pixel dilation d (`act`)."""
    act: Act
    A: np.ndarray
    B: Optional[np.ndarray] = None

    @property
    def shape(self) -> tuple:
        return (1, int(np.size(self.A)), self.act.h, self.act.w)


@dataclass(eq=False)
class LayerOp:
    """An engine layer before lowering (mutable: the lowering folds requantizations into it).
    kind: conv1x1 | patch | dw | deform | copy."""
    kind: str
    act: Act
    w: np.ndarray
    ws: np.ndarray
    bias: np.ndarray
    stride: int
    pad: int
    post: Post
    out: Tensor
    name: str
    onnx_op: str
    dil: Optional[Act] = None


@dataclass(eq=False)
class RequantOp:
    """A quantizer on an already quantized activation: out = clamp(round(post(act) / s) + zp,
    qlo, qhi). Folded into the producer when possible, else a copy layer (force_copy: always)."""
    act: Act
    post: Post
    out: Tensor
    qlo: int
    qhi: int
    name: str
    onnx_op: str
    force_copy: bool = False


def _ints(v):
    return [int(x) for x in np.asarray(v).reshape(-1)]


class Frontend:
    """Walks the graph once, node by node, in topological order (see module docstring)."""

    def __init__(self, model, input_size=None, float_weight_bits=None):
        self.graph = model.graph
        self.opset = opset_version(model)
        self.input_size = input_size
        self.float_weight_bits = float_weight_bits
        self.tensors, self.g_tensor, self.ops = [], [], []
        self.input_tensor = None
        self.input_name = None
        self.values = {"": None}
        self.label = "?"
        self.op_type = "?"

    # ---------------------------------------------------------------- errors
    def fail(self, reason):
        raise CompileError("node {!r} ({}): {}".format(self.label, self.op_type, reason))

    # ---------------------------------------------------------------- IR helpers
    def new_tensor(self, c, h, w, quant, name):
        base = len(self.g_tensor)
        t = Tensor(len(self.tensors), base, c, h, w, quant, name)
        self.tensors.append(t)
        self.g_tensor.extend([t.id] * c)
        return t

    def tensor_ids(self, act):
        """Ids of the tensors holding the act's channels, in first-use order."""
        return list(dict.fromkeys(self.g_tensor[int(g)] for g in act.flat))

    def act_tensors(self, act):
        return [self.tensors[t] for t in self.tensor_ids(act)]

    def act_quant(self, act, what="input"):
        ts = self.act_tensors(act)
        q = ts[0].quant
        for t in ts[1:]:
            if not t.quant.same(q):
                self.fail("its {} mixes channels quantized differently ({!r} and {!r}): put one "
                          "QuantizeLinear / Quant after the Concat".format(what, q, t.quant))
        return q

    def whole(self, t):
        return Act(np.arange(t.base, t.base + t.c), t.h, t.w, 0)

    # ---------------------------------------------------------------- quantization points
    def quantize(self, v, quant, qlo=None, qhi=None):
        """Apply an activation quantizer to a value -> Act of the quantized tensor."""
        qlo = quant.qmin if qlo is None else int(qlo)
        qhi = quant.qmax if qhi is None else int(qhi)
        if isinstance(v, GraphInput):
            if self.input_tensor is not None:
                self.fail("the network input {!r} is quantized twice".format(v.name))
            n, c, h, w = v.shape
            t = self.new_tensor(c, h, w, quant, v.name)
            if (qlo, qhi) != (quant.qmin, quant.qmax):
                self.fail("a narrow-range quantizer on the network input is not supported")
            self.input_tensor = t
            return Act(np.arange(t.base, t.base + c), h, w)
        if isinstance(v, Pending):
            if isinstance(v.src, IdentitySrc):
                return self.requant(v.src.act, v.post, quant, qlo, qhi)
            t = self.new_tensor(v.c, v.h, v.w, quant, self.label)
            s = v.src
            post = v.post.clamp((qlo - quant.zp) * quant.scale, (qhi - quant.zp) * quant.scale)
            op = LayerOp(s.kind, s.act, s.w, s.ws, s.bias, s.stride, s.pad, post, t, s.name, s.onnx_op, dil=s.dil)
            t.producer = op
            self.ops.append(op)
            return self.whole(t)
        if isinstance(v, Act):
            return self.requant(v, Post.identity(v.flat.size), quant, qlo, qhi)
        if isinstance(v, RawQ):
            self.fail("QuantizeLinear applied to an already quantized (integer) tensor")
        self.fail("cannot quantize this value ({})".format(type(v).__name__))

    def requant(self, act, post, quant, qlo, qhi, force_copy=False):
        """Requantize an Act (per tensor part) -> Act; a no-op when nothing changes."""
        flat = act.flat
        ts = self.act_tensors(act)
        full = (qlo, qhi) == (quant.qmin, quant.qmax)
        if not force_copy and full and post.is_identity() and all(t.quant.same(quant) for t in ts):
            return act
        if act.up and not force_copy:
            # nearest upsampling commutes with per-channel requantization: requantize the source
            inner = self.requant(Act(act.ch, act.h // 2, act.w // 2, 0), post, quant, qlo, qhi)
            return Act(inner.ch, act.h, act.w, 1)
        out = np.empty_like(flat)
        for t in ts:
            pos = np.nonzero(np.array([self.g_tensor[int(g)] == t.id for g in flat]))[0]
            uniq, first = np.unique(flat[pos], return_index=True)
            order = np.argsort(first)
            uniq, first = uniq[order], first[order]
            r = self.new_tensor(len(uniq), act.h, act.w, quant, self.label)
            op = RequantOp(Act(uniq, act.h, act.w, act.up), post.take(pos[first]), r, qlo, qhi, self.label, self.op_type, force_copy)
            r.producer = op
            self.ops.append(op)
            lookup = {int(g): r.base + j for j, g in enumerate(uniq)}
            out[pos] = [lookup[int(g)] for g in flat[pos]]
        return Act(out.reshape(act.ch.shape), act.h, act.w, 0 if force_copy else act.up)

    def materialize(self, act):
        """Copy an upsampled view into a tensor of its own (for consumers without upsample mode)."""
        q = self.act_quant(act)
        return self.requant(act, Post.identity(act.flat.size), q, q.qmin, q.qmax, force_copy=True)

    # ---------------------------------------------------------------- walk
    def run(self):
        from .onnx_graph import initializers, narrow_int_types, topo_order
        inits = initializers(self.graph)
        narrow = narrow_int_types(self.graph)
        for name, arr in inits.items():
            self.values[name] = Const(arr, onnx_type=narrow.get(name))
        for i in self.graph.input:
            if i.name in inits:
                continue
            if self.input_name is not None:
                raise CompileError("the model has more than one input ({!r}, {!r}); the engine takes one "
                                   "image".format(self.input_name, i.name))
            self.input_name = i.name
            dims = []
            for d in i.type.tensor_type.shape.dim:
                dims.append(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None)
            if len(dims) != 4:
                raise CompileError("input {!r} has shape {}: the engine takes one NCHW image".format(i.name, dims))
            if self.input_size is not None:
                hw = (self.input_size, self.input_size) if np.isscalar(self.input_size) else tuple(self.input_size)
                dims[2], dims[3] = int(hw[0]), int(hw[1])
            if dims[0] is None:
                dims[0] = 1
            if dims[0] != 1 or None in dims:
                raise CompileError("input {!r} has shape {}: give input_size=(H, W) for symbolic sizes; batch "
                                   "must be 1".format(i.name, dims))
            self.values[i.name] = GraphInput(i.name, dims)
        if self.input_name is None:
            raise CompileError("the model has no input")
        for idx, node in topo_order(self.graph):
            self.label, self.op_type = node_label(node, idx), node.op_type
            ins = []
            for x in node.input:
                if x not in self.values:
                    self.fail("input {!r} is not produced by any node".format(x))
                ins.append(self.values[x])
            outs = self.dispatch(node, ins)
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            for name, v in zip(node.output, outs):
                self.values[name] = v
        if self.input_tensor is None:
            raise CompileError("the network input {!r} is never quantized: add QuantizeLinear / Quant after "
                               "it".format(self.input_name))
        outputs = []
        for o in self.graph.output:
            v = self.values.get(o.name)
            if isinstance(v, RawQ):
                v = v.act
            if not isinstance(v, Act):
                raise CompileError("graph output {!r} is not a quantized activation (add QuantizeLinear + "
                                   "DequantizeLinear or a Quant node before it)".format(o.name))
            if v.ch.ndim != 1:
                raise CompileError("graph output {!r} has shape {}: outputs must be NCHW".format(o.name, v.shape))
            outputs.append((o.name, v))
        return outputs

    def dispatch(self, node, ins):
        """Run the handler OP_HANDLERS names for the node's (domain, op type); a standard op
        without a handler is folded when all its inputs are constants, else refused."""
        op = node.op_type
        fn = handler_for(node.domain, op)
        if fn is not None:
            return fn(self, node, ins, attrs(node))
        if node.domain in QONNX_DOMAINS:
            self.fail("QONNX op {} is not supported (Quant and BipolarQuant on weights are)".format(op))
        if node.domain not in ONNX_DOMAINS:
            self.fail("op {} of domain {!r} is not supported".format(op, node.domain))
        if all(isinstance(v, Const) or v is None for v in ins):
            return self.fold(node, ins)
        self.fail("op type {} is not supported by the CoDeNet engine".format(op))

    def fold(self, node, ins):
        try:
            res = eval_constant_node(node, [None if v is None else v.value for v in ins], self.opset)
        except Exception as e:   # noqa: BLE001 - any evaluator failure is a refusal naming the node
            self.fail("cannot evaluate this constant expression: {}".format(e))
        return [Const(r) for r in res]

    # ---------------------------------------------------------------- helpers
    def const(self, v, what):
        if not isinstance(v, Const):
            self.fail("{} must be a constant".format(what))
        return v.value

    def channel_const(self, v, c, what):
        """A constant broadcast over channels only -> (c,) float array, else None."""
        arr = np.asarray(v.value, np.float64)
        if arr.ndim > 4:
            return None
        shp = (1,) * (4 - arr.ndim) + arr.shape
        if shp[0] != 1 or shp[2] != 1 or shp[3] != 1 or shp[1] not in (1, c):
            return None
        return np.broadcast_to(arr.reshape(-1), (c,)).astype(np.float64)

    def channel_axis(self, axis, v):
        nd = len(v.shape)
        axis = int(axis) + nd if int(axis) < 0 else int(axis)
        if axis < 1 or axis >= nd - 2:
            self.fail("only channel axes can be split, sliced or concatenated on activations (axis {} of a "
                      "{}-D tensor)".format(axis, nd))
        return axis - 1

    def act_input(self, v, what="input"):
        if isinstance(v, RawQ):
            self.fail("its {} is an integer tensor (QuantizeLinear without DequantizeLinear)".format(what))
        if isinstance(v, GraphInput):
            self.fail("its {} is the float network input: quantize it first".format(what))
        if not isinstance(v, Act):
            self.fail("its {} is not quantized: put a QuantizeLinear/DequantizeLinear pair or a Quant node "
                      "before it".format(what))
        if v.ch.ndim != 1:
            self.fail("its {} has shape {}, a 4-D NCHW tensor is needed".format(what, v.shape))
        return v

    def as_pending(self, v):
        """Pending view of a value for element-wise post-ops (Act -> identity layer)."""
        if isinstance(v, Pending):
            return v
        if isinstance(v, Act) and v.ch.ndim == 1:
            return Pending(IdentitySrc(v), v.flat.size, v.h, v.w)
        return None

    # ---------------------------------------------------------------- QDQ
    def _check_scale(self, scale):
        if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
            self.fail("scale {} is not positive".format(scale.reshape(-1)[:4].tolist()))

    def _qparams(self, ins, a):
        """-> (scale, zero point array, ONNX type name of the quantized values: "int8", "uint8",
        "int4", ...; int4 arrays come widened to int8)."""
        scale = np.asarray(self.const(ins[1], "the scale"), np.float64)
        zpc = ins[2] if len(ins) > 2 and ins[2] is not None else None
        if zpc is not None:
            zp_arr = self.const(zpc, "the zero point")
            qtype = zpc.onnx_type or np.asarray(zp_arr).dtype.name
        else:
            code = int(a.get("output_dtype", 2))
            qtype = _QTYPES.get(code, "ONNX type {}".format(code))
            zp_arr = np.zeros(scale.shape, np.int8 if qtype in ("int8", "int4") else np.uint8)
        self._check_scale(scale)
        return scale, zp_arr, qtype

    def op_QuantizeLinear(self, node, ins, a):
        x = ins[0]
        scale, zp_arr, qtype = self._qparams(ins, a)
        if isinstance(x, Const):
            return self.fold(node, ins)
        if scale.size != 1:
            self.fail("per-channel activation quantization is not supported (one scale per tensor)")
        if qtype not in ("uint8", "int8"):
            self.fail("activations must be int8 or uint8, got {}".format(qtype))
        q = Quant(scale.reshape(-1)[0], int(np.asarray(zp_arr).reshape(-1)[0]), qtype == "int8")
        return RawQ(self.quantize(x, q), q)

    def op_DequantizeLinear(self, node, ins, a):
        x = ins[0]
        scale, zp_arr, _ = self._qparams(ins, a)
        if isinstance(x, Const):
            qi = np.asarray(x.value)
            if qi.dtype.kind not in "iu":
                self.fail("DequantizeLinear of a non-integer constant")
            axis = int(a.get("axis", 1))
            shp = [1] * qi.ndim
            if scale.size > 1:
                ax = axis + qi.ndim if axis < 0 else axis
                shp[ax] = scale.size
            sb = scale.reshape(shp) if scale.size > 1 else scale.reshape(())
            zb = np.asarray(zp_arr, np.int64).reshape(shp) if np.size(zp_arr) > 1 else np.asarray(
                zp_arr, np.int64).reshape(())
            val = (qi.astype(np.int64) - zb) * sb
            return Const(val.astype(np.float32), q=IntQ(qi.astype(np.int64), sb, zb, x.onnx_type or qi.dtype.name))
        if not isinstance(x, RawQ):
            self.fail("DequantizeLinear of a value that no QuantizeLinear produced")
        if scale.size != 1:
            self.fail("per-channel activation quantization is not supported (one scale per tensor)")
        q = Quant(scale.reshape(-1)[0], int(np.asarray(zp_arr).reshape(-1)[0]), x.quant.signed)
        if not q.same(x.quant):
            self.fail("DequantizeLinear uses scale/zero point {!r} but its QuantizeLinear used {!r}".format(
                q, x.quant))
        return x.act

    # ---------------------------------------------------------------- QONNX
    def qonnx_Quant(self, node, ins, a):
        x = ins[0]
        scale = np.asarray(self.const(ins[1], "the scale"), np.float64)
        zp = np.asarray(self.const(ins[2], "the zero point"), np.float64)
        bits = np.asarray(self.const(ins[3], "the bit width"), np.float64).reshape(-1)
        signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
        mode = a.get("rounding_mode", b"ROUND")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        self._check_scale(scale)
        if np.any(zp != np.round(zp)):
            self.fail("zero point {} is not an integer".format(zp.reshape(-1)[:4].tolist()))
        if bits.size != 1 or bits[0] != round(bits[0]) or not 2 <= bits[0] <= 8:
            self.fail("bit width {} is not supported (2..8)".format(bits.tolist()))
        nb = int(bits[0])
        if signed:
            lo, hi = -(1 << (nb - 1)) + (1 if narrow else 0), (1 << (nb - 1)) - 1
        else:
            lo, hi = 0, (1 << nb) - 1 - (1 if narrow else 0)
        if isinstance(x, Const):
            v = np.asarray(x.value, np.float64) / scale + zp
            r = {"ROUND": np.rint, "ROUND_TO_ZERO": np.trunc, "FLOOR": np.floor, "CEIL": np.ceil}.get(mode.upper())
            if r is None:
                self.fail("rounding_mode {} is not supported".format(mode))
            qi = np.clip(r(v), lo, hi).astype(np.int64)
            return Const(((qi - zp) * scale).astype(np.float32), q=IntQ(qi, scale, zp.astype(np.int64)))
        if nb != 8:
            self.fail("activations must be quantized to 8 bits, got {}".format(nb))
        if mode.upper() != "ROUND":
            self.fail("rounding_mode {} is not supported on activations (the engine rounds to nearest)".format(mode))
        if scale.size != 1 or zp.size != 1:
            self.fail("per-channel activation quantization is not supported (one scale per tensor)")
        zpi = int(zp.reshape(-1)[0])
        q = Quant(scale.reshape(-1)[0], zpi, signed)
        if not q.qmin <= zpi <= q.qmax:
            self.fail("zero point {} outside the {} range".format(zpi, "int8" if signed else "uint8"))
        return self.quantize(x, q, lo, hi)

    def qonnx_BipolarQuant(self, node, ins, a):
        x = ins[0]
        scale = np.asarray(self.const(ins[1], "the scale"), np.float64)
        if not isinstance(x, Const):
            self.fail("bipolar (1-bit) activations are not supported by the CoDeNet engine")
        self._check_scale(scale)
        qi = np.where(np.asarray(x.value) >= 0, 1, -1).astype(np.int64)
        return Const((qi * scale).astype(np.float32), q=IntQ(qi, scale, np.zeros((), np.int64)))

    # ---------------------------------------------------------------- convolutions
    def weights(self, W, cout, what="weights"):
        """-> (int weights with the zero point removed, per-output-channel scale (cout,))."""
        if not isinstance(W, Const):
            self.fail("its {} are computed at run time; the engine needs constant weights".format(what))
        if W.q is None:
            if not self.float_weight_bits:
                self.fail("its {} are not quantized (a float initializer): quantize them with "
                          "DequantizeLinear (QDQ) or a Quant node (QONNX)".format(what))
            w = np.asarray(W.value, np.float64)
            nb = int(self.float_weight_bits)
            qmax = (1 << (nb - 1)) - 1
            amax = np.abs(w.reshape(cout, -1)).max(axis=1)
            ws = np.where(amax > 0, amax / qmax, 1.0)
            qi = np.clip(np.rint(w / ws.reshape((-1,) + (1,) * (w.ndim - 1))), -qmax - 1, qmax).astype(np.int64)
            return qi, ws
        if W.q.stored_as and W.q.stored_as not in WEIGHT_STORAGE_TYPES:
            self.fail("its {} are stored as {}: the engine takes 4- or 8-bit integer weights ({})".format(
                what, W.q.stored_as, ", ".join(WEIGHT_STORAGE_TYPES)))
        shape = W.value.shape
        qi = np.asarray(W.q.ints, np.int64)
        zp = np.broadcast_to(np.asarray(W.q.zp, np.int64), shape)
        sc = np.broadcast_to(np.asarray(W.q.scale, np.float64), shape).reshape(cout, -1)
        if np.any(sc.max(axis=1) != sc.min(axis=1)):
            self.fail("its {} have a scale varying inside an output channel (per-output-channel or per-tensor "
                      "scales only)".format(what))
        return qi - zp, sc[:, 0].copy()

    def _bias(self, B, cout):
        if B is None:
            return np.zeros(cout)
        if not isinstance(B, Const):
            self.fail("its bias is computed at run time")
        b = np.asarray(B.value, np.float64).reshape(-1)
        if b.size != cout:
            self.fail("bias has {} values for {} output channels".format(b.size, cout))
        return b.copy()

    def op_Conv(self, node, ins, a):
        x = self.act_input(ins[0])
        W = ins[1]
        if not isinstance(W, Const):
            self.fail("its weights are computed at run time; the engine needs constant weights")
        ws_shape = W.shape
        if len(ws_shape) != 4:
            self.fail("only 2-D convolutions are supported")
        cout, cin_g, kh, kw = ws_shape
        cin = x.flat.size
        group = int(a.get("group", 1))
        strides = list(a.get("strides", [1, 1]))
        dil = list(a.get("dilations", [1, 1]))
        pads = list(a.get("pads", [0, 0, 0, 0]))
        ap = a.get("auto_pad", b"NOTSET")
        ap = ap.decode() if isinstance(ap, bytes) else ap
        if ap not in ("NOTSET", ""):
            self.fail("auto_pad {} is not supported (give explicit pads)".format(ap))
        if dil != [1, 1]:
            self.fail("dilations {} are not supported (engine convolutions are undilated; use DeformConv with "
                      "the dilation pattern for the deformable block)".format(dil))
        if (kh, kw) not in ((1, 1), (3, 3)):
            self.fail("kernel {}x{} is not supported (1x1 and 3x3 only)".format(kh, kw))
        if strides[0] != strides[1]:
            self.fail("strides {} are not supported (equal strides only)".format(strides))
        stride = int(strides[0])
        wi, wsc = self.weights(W, cout)
        bias = self._bias(ins[2] if len(ins) > 2 else None, cout)
        h, w = x.h, x.w
        self.act_quant(x)         # one quantization over all input channels
        if (kh, kw) == (1, 1):
            if group != 1:
                self.fail("group {} is not supported for 1x1 convolutions (group 1 only)".format(group))
            if pads != [0, 0, 0, 0]:
                self.fail("pads {} are not supported for 1x1 convolutions".format(pads))
            if stride not in (1, 2):
                self.fail("stride {} is not supported for 1x1 convolutions (1 or 2)".format(stride))
            kind, wmat, pad = "conv1x1", wi.reshape(cout, cin), 0
            oh, ow = (h - 1) // stride + 1, (w - 1) // stride + 1
        else:
            if pads != [1, 1, 1, 1]:
                self.fail("pads {} are not supported for 3x3 convolutions (1 on every side)".format(pads))
            if group == cin and cout == cin and cin_g == 1:
                if stride not in (1, 2):
                    self.fail("stride {} is not supported for depthwise 3x3 (1 or 2)".format(stride))
                kind, wmat, pad = "dw", wi.reshape(cout, 9), 1
            elif group == 1:
                if stride not in (1, 2, 4):
                    self.fail("stride {} is not supported for dense 3x3 (1, 2 or 4)".format(stride))
                if x.up:
                    x = self.materialize(x)
                kind, wmat, pad = "patch", wi.transpose(0, 2, 3, 1).reshape(cout, 9 * cin), 1
            else:
                self.fail("group {} is not supported (1, or {} for depthwise)".format(group, cin))
            oh, ow = (h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1
        src = LayerSrc(kind, x, wmat, wsc, bias, stride, pad, self.label, self.op_type)
        return Pending(src, cout, oh, ow)

    def op_DeformConv(self, node, ins, a):
        x = self.act_input(ins[0])
        self.act_quant(x)         # one quantization over all input channels
        W = ins[1]
        off = ins[2]
        cin = x.flat.size
        if not isinstance(W, Const) or len(W.shape) != 4:
            self.fail("its weights must be a constant 4-D tensor")
        cout, cin_g, kh, kw = W.shape
        group = int(a.get("group", 1))
        if (kh, kw) != (3, 3) or group != cin or cout != cin or cin_g != 1:
            self.fail("only depthwise 3x3 DeformConv is supported (group = channels = {}), got kernel {}x{} "
                      "group {} with {} outputs".format(cin, kh, kw, group, cout))
        if int(a.get("offset_group", 1)) != 1:
            self.fail("offset_group {} is not supported (one dilation per pixel)".format(a.get("offset_group")))
        strides = list(a.get("strides", [1, 1]))
        pads = list(a.get("pads", [0, 0, 0, 0]))
        dil = list(a.get("dilations", [1, 1]))
        if strides != [1, 1]:
            self.fail("strides {} are not supported (deformable convolution at stride 1 only)".format(strides))
        oh = x.h + pads[0] + pads[2] - dil[0] * 2
        ow = x.w + pads[1] + pads[3] - dil[1] * 2
        if (oh, ow) != (x.h, x.w):
            self.fail("pads {} and dilations {} change the tensor size".format(pads, dil))
        if len(ins) > 4 and ins[4] is not None:
            m = ins[4]
            if not isinstance(m, Const) or np.any(np.asarray(m.value) != 1):
                self.fail("a modulation mask is not supported (DeformConv v1 only)")
        if isinstance(off, OffsetV):
            A = np.asarray(off.A, np.float64)
            B = np.zeros_like(A) if off.B is None else np.asarray(off.B, np.float64)
            dact = off.act
        else:
            self.fail("its offsets are not of the form d * A + B with a per-pixel dilation d = Clip(Round("
                      "Conv1x1(x)), 0, {})".format(MAX_DIL))
        A, B = (np.broadcast_to(v, np.broadcast_shapes(A.shape, B.shape)) for v in (A, B))
        if A.size != 18 or (A.ndim == 4 and A.shape[1] != 18):
            self.fail("offset constants must hold 18 values (2 per tap, 1x18x1x1), got shape {}".format(A.shape))
        A, B = A.reshape(-1), B.reshape(-1)
        ky, kx = np.repeat(np.arange(3), 3), np.tile(np.arange(3), 3)
        wantA = np.stack([ky - 1, kx - 1], 1).reshape(-1)
        wantB = np.stack([pads[0] - ky * dil[0], pads[1] - kx * dil[1]], 1).reshape(-1)
        if not (np.allclose(A, wantA) and np.allclose(B, wantB)):
            self.fail("offsets d * A + B do not give the taps (y + (ky - 1) * d, x + (kx - 1) * d): need A = {} "
                      "and B = {}".format(wantA.astype(int).tolist(), wantB.astype(int).tolist()))
        if dact.up:
            dact = self.materialize(dact)
        if x.up:
            x = self.materialize(x)
        wi, wsc = self.weights(W, cout)
        bias = self._bias(ins[3] if len(ins) > 3 else None, cout)
        src = LayerSrc("deform", x, wi.reshape(cout, 9), wsc, bias, 1, 1, self.label, self.op_type, dil=dact)
        return Pending(src, cout, x.h, x.w)

    # ---------------------------------------------------------------- element-wise post-ops
    def op_BatchNormalization(self, node, ins, a):
        p = self.as_pending(ins[0])
        if p is None:
            self.fail("BatchNormalization must follow a convolution or a quantized tensor")
        sc, bb, mean, var = (np.asarray(self.const(v, "BatchNormalization parameters"), np.float64).reshape(-1)
                             for v in ins[1:5])
        eps = float(a.get("epsilon", 1e-5))
        A = sc / np.sqrt(var + eps)
        return p.with_post(p.post.affine(A, bb - mean * A))

    def op_Relu(self, node, ins, a):
        p = self.as_pending(ins[0])
        if p is None:
            self.fail("Relu of a value that is not an activation")
        return p.with_post(p.post.clamp(0.0, INF))

    def op_Clip(self, node, ins, a):
        lo, hi = a.get("min", -INF), a.get("max", INF)
        if len(ins) > 1 and ins[1] is not None:
            lo = float(np.asarray(self.const(ins[1], "Clip min")).reshape(-1)[0])
        if len(ins) > 2 and ins[2] is not None:
            hi = float(np.asarray(self.const(ins[2], "Clip max")).reshape(-1)[0])
        x = ins[0]
        if isinstance(x, Const):
            return self.fold(node, ins)
        if isinstance(x, RoundV):
            if lo != round(lo) or hi != round(hi) or not 0 <= lo <= hi <= MAX_DIL:
                self.fail("Clip after Round must bound the dilation inside 0..{}, got {}..{}".format(MAX_DIL, lo, hi))
            return self.dilation(x.src, int(lo), int(hi))
        p = self.as_pending(x)
        if p is None:
            self.fail("Clip of a value that is not an activation")
        return p.with_post(p.post.clamp(lo, hi))

    def dilation(self, src, lo, hi):
        """Round + Clip(lo, hi) of a conv output: the stored byte is the dilation d itself."""
        q = Quant(1.0, 0, False)
        if isinstance(src, Pending):
            if src.c != 1:
                self.fail("the dilation predictor must have 1 output channel, got {}".format(src.c))
            return self.quantize(src, q, lo, hi)
        if isinstance(src, Act):
            if src.flat.size != 1:
                self.fail("the dilation predictor must have 1 output channel, got {}".format(src.flat.size))
            return self.requant(src, Post.identity(1), q, lo, hi)
        self.fail("Round of a value that is not an activation")

    def op_Round(self, node, ins, a):
        x = ins[0]
        if isinstance(x, Const):
            return self.fold(node, ins)
        if isinstance(x, Pending) and np.all(x.post.lo >= 0) and np.all(x.post.hi <= MAX_DIL):
            lo, hi = float(x.post.lo.min()), float(x.post.hi.max())
            if lo == round(lo) and hi == round(hi):
                p = x.with_post(x.post.without_clamp())
                return self.dilation(p, int(lo), int(hi))
        if isinstance(x, (Pending, Act)):
            return RoundV(x)
        self.fail("Round of a value that is not an activation")

    def op_Cast(self, node, ins, a):
        x = ins[0]
        if isinstance(x, Const):
            return self.fold(node, ins)
        return x

    def op_Identity(self, node, ins, a):
        return ins[0]

    def _binary(self, node, ins, kind):
        x, y = ins[0], ins[1]
        if isinstance(x, Const) and isinstance(y, Const):
            return self.fold(node, ins)
        if not isinstance(x, Const) and not isinstance(y, Const):
            self.fail("{} of two tensors is not supported (the engine has no element-wise {}; CoDeNet has no "
                      "residual adds, use Concat)".format(node.op_type, node.op_type))
        flip = isinstance(x, Const)
        v, c = (y, x) if flip else (x, y)
        if isinstance(v, OffsetV) and kind == "add" and v.B is None:
            return OffsetV(v.act, v.A, np.asarray(c.value, np.float64))
        if isinstance(v, Act) and v.flat.size == 1 and kind == "mul" and np.size(c.value) > 1:
            return OffsetV(v, np.asarray(c.value, np.float64))
        p = self.as_pending(v)
        if p is None:
            self.fail("{} of a value that is not an activation".format(node.op_type))
        k = self.channel_const(c, p.c, node.op_type)
        if k is None:
            self.fail("{} by a constant of shape {} is not per-channel".format(node.op_type, c.shape))
        if kind == "mul":
            return p.with_post(p.post.affine(k, 0.0))
        if kind == "div":
            if flip:
                self.fail("division of a constant by a tensor is not supported")
            return p.with_post(p.post.affine(1.0 / k, 0.0))
        if kind == "add":
            return p.with_post(p.post.affine(1.0, k))
        if flip:   # c - v
            return p.with_post(p.post.affine(-1.0, k))
        return p.with_post(p.post.affine(1.0, -k))

    def op_Mul(self, node, ins, a):
        return self._binary(node, ins, "mul")

    def op_Add(self, node, ins, a):
        return self._binary(node, ins, "add")

    def op_Sub(self, node, ins, a):
        return self._binary(node, ins, "sub")

    def op_Div(self, node, ins, a):
        return self._binary(node, ins, "div")

    # ---------------------------------------------------------------- data movement
    def op_Shape(self, node, ins, a):
        x = ins[0]
        if isinstance(x, Const):
            return self.fold(node, ins)
        shp = np.array(x.shape, np.int64)
        start, end = int(a.get("start", 0)), a.get("end", None)
        return Const(shp[start:end] if end is not None else shp[start:])

    def op_Concat(self, node, ins, a):
        if all(isinstance(v, Const) for v in ins):
            return self.fold(node, ins)
        acts = [self.act_input(v, "input {}".format(i)) if not isinstance(v, Act) or v.ch.ndim == 1 else v
                for i, v in enumerate(ins)]
        for v in acts:
            if not isinstance(v, Act):
                self.fail("Concat of a value that is not a quantized activation")
        ax = self.channel_axis(a.get("axis", 1), acts[0])
        if any((v.h, v.w) != (acts[0].h, acts[0].w) for v in acts):
            self.fail("Concat of tensors of different sizes {}".format([v.shape for v in acts]))
        ups = {v.up for v in acts}
        if len(ups) > 1:
            acts = [self.materialize(v) if v.up else v for v in acts]
        return Act(np.concatenate([v.ch for v in acts], axis=ax), acts[0].h, acts[0].w, acts[0].up)

    def op_Split(self, node, ins, a):
        x = ins[0]
        if isinstance(x, Const):
            return self.fold(node, ins)
        if not isinstance(x, Act):
            self.act_input(x)
        ax = self.channel_axis(a.get("axis", 0), x)
        n = x.ch.shape[ax]
        if len(ins) > 1 and ins[1] is not None:
            sizes = _ints(self.const(ins[1], "split sizes"))
        elif "split" in a:
            sizes = [int(s) for s in a["split"]]
        else:
            k = int(a.get("num_outputs", len(node.output)))
            step = -(-n // k)
            sizes = [min(step, n - i * step) for i in range(k)]
        if sum(sizes) != n:
            self.fail("split sizes {} do not add up to {} channels".format(sizes, n))
        outs, pos = [], 0
        for s in sizes:
            outs.append(Act(np.take(x.ch, np.arange(pos, pos + s), axis=ax), x.h, x.w, x.up))
            pos += s
        return outs

    def op_Slice(self, node, ins, a):
        x = ins[0]
        if all(isinstance(v, Const) or v is None for v in ins):
            return self.fold(node, ins)
        if not isinstance(x, Act):
            self.act_input(x)
        starts = _ints(self.const(ins[1], "Slice starts"))
        ends = _ints(self.const(ins[2], "Slice ends"))
        nd = len(x.shape)
        axes = _ints(self.const(ins[3], "Slice axes")) if len(ins) > 3 and ins[3] is not None else list(
            range(len(starts)))
        steps = _ints(self.const(ins[4], "Slice steps")) if len(ins) > 4 and ins[4] is not None else [1] * len(
            starts)
        ch = x.ch
        for s, e, ax, st in zip(starts, ends, axes, steps):
            ax = ax + nd if ax < 0 else ax
            full = x.shape[ax]
            idx = np.arange(full)[slice(s, e, st)] if st > 0 else np.arange(full)[slice(
                s if s < full else None, e if e >= -full else None, st)]
            if ax in (0, nd - 2, nd - 1):
                if len(idx) == full and np.array_equal(idx, np.arange(full)):
                    continue
                self.fail("Slice along axis {} is not supported (channels only)".format(ax))
            ch = np.take(ch, idx, axis=ax - 1)
        return Act(ch, x.h, x.w, x.up)

    def op_Gather(self, node, ins, a):
        x = ins[0]
        if all(isinstance(v, Const) for v in ins):
            return self.fold(node, ins)
        if not isinstance(x, Act):
            self.act_input(x)
        ax = self.channel_axis(a.get("axis", 0), x)
        idx = np.asarray(self.const(ins[1], "Gather indices"), np.int64)
        if idx.ndim != 1:
            self.fail("Gather with {}-D indices is not supported".format(idx.ndim))
        n = x.ch.shape[ax]
        return Act(np.take(x.ch, np.where(idx < 0, idx + n, idx), axis=ax), x.h, x.w, x.up)

    def op_Reshape(self, node, ins, a):
        x = ins[0]
        if all(isinstance(v, Const) for v in ins):
            return self.fold(node, ins)
        if not isinstance(x, Act):
            self.act_input(x)
        shp = _ints(self.const(ins[1], "the target shape"))
        cur = x.shape
        if not int(a.get("allowzero", 0)):
            shp = [cur[i] if s == 0 and i < len(cur) else s for i, s in enumerate(shp)]
        if -1 in shp:
            known = int(np.prod([s for s in shp if s != -1]))
            shp[shp.index(-1)] = int(np.prod(cur)) // max(known, 1)
        if len(shp) < 3 or shp[0] != 1 or tuple(shp[-2:]) != (x.h, x.w) or int(np.prod(shp)) != int(np.prod(cur)):
            self.fail("Reshape {} -> {} is not supported (channel dimensions only: the spatial grid must stay "
                      "{}x{})".format(list(cur), shp, x.h, x.w))
        return Act(x.ch.reshape(shp[1:-2]), x.h, x.w, x.up)

    def op_Transpose(self, node, ins, a):
        x = ins[0]
        if isinstance(x, Const):
            return self.fold(node, ins)
        if not isinstance(x, Act):
            self.act_input(x)
        nd = len(x.shape)
        perm = list(a.get("perm", list(range(nd))[::-1]))
        if perm[0] != 0 or perm[-2:] != [nd - 2, nd - 1]:
            self.fail("Transpose {} is not supported (channel dimensions only)".format(perm))
        return Act(x.ch.transpose([p - 1 for p in perm[1:-2]]), x.h, x.w, x.up)

    def op_Resize(self, node, ins, a):
        x = ins[0]
        if isinstance(x, Const):
            return self.fold(node, ins)
        x = self.act_input(x)
        mode = a.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        ctm = a.get("coordinate_transformation_mode", b"half_pixel")
        ctm = ctm.decode() if isinstance(ctm, bytes) else ctm
        nm = a.get("nearest_mode", b"round_prefer_floor")
        nm = nm.decode() if isinstance(nm, bytes) else nm
        if mode != "nearest":
            self.fail("Resize mode {} is not supported (nearest x2 only)".format(mode))
        scales = None
        if len(ins) > 2 and ins[2] is not None and np.size(self.const(ins[2], "Resize scales")):
            scales = np.asarray(ins[2].value, np.float64).reshape(-1)
        elif len(ins) > 3 and ins[3] is not None:
            sizes = np.asarray(self.const(ins[3], "Resize sizes"), np.float64).reshape(-1)
            scales = sizes / np.asarray(x.shape, np.float64)
        if scales is None or scales.size != 4 or list(scales) != [1.0, 1.0, 2.0, 2.0]:
            self.fail("Resize scales {} are not supported (nearest x2 only)".format(
                None if scales is None else scales.tolist()))
        if x.up:
            self.fail("a second x2 upsample of the same tensor is not supported")
        src = _nearest_index(2 * x.h, x.h, ctm, nm)
        if src is None or not np.array_equal(src, np.arange(2 * x.h) >> 1):
            self.fail("Resize with coordinate_transformation_mode {} / nearest_mode {} does not read pixel "
                      "(y >> 1, x >> 1)".format(ctm, nm))
        return Act(x.ch, 2 * x.h, 2 * x.w, 1)

    def op_Constant(self, node, ins, a):
        return self.fold(node, ins)


def _nearest_index(n_out, n_in, ctm, nm):
    """ONNX Resize nearest source index for each output coordinate (scale n_out / n_in)."""
    scale = n_out / n_in
    o = np.arange(n_out, dtype=np.float64)
    if ctm == "half_pixel":
        x = (o + 0.5) / scale - 0.5
    elif ctm == "pytorch_half_pixel":
        x = (o + 0.5) / scale - 0.5 if n_out > 1 else np.zeros_like(o)
    elif ctm == "asymmetric":
        x = o / scale
    elif ctm == "align_corners":
        x = o * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros_like(o)
    elif ctm == "tf_half_pixel_for_nn":
        x = (o + 0.5) / scale
    else:
        return None
    if nm == "round_prefer_floor":
        r = np.where(x - np.floor(x) == 0.5, np.floor(x), np.round(x))
    elif nm == "round_prefer_ceil":
        r = np.where(x - np.floor(x) == 0.5, np.ceil(x), np.round(x))
    elif nm == "floor":
        r = np.floor(x)
    elif nm == "ceil":
        r = np.ceil(x)
    else:
        return None
    return np.clip(r, 0, n_in - 1).astype(np.int64)


# ONNX op handlers, keyed by (domain, op type); the standard domain is "" ("ai.onnx" is looked up
# as ""). A handler is called as handler(frontend, node, input values, attributes) and returns the
# node's output value(s).
OP_HANDLERS = {
    # quantizers (onnxruntime's com.microsoft Q/DQ, 4/16-bit before opset 21: same semantics)
    ("", "QuantizeLinear"): Frontend.op_QuantizeLinear,
    ("", "DequantizeLinear"): Frontend.op_DequantizeLinear,
    ("com.microsoft", "QuantizeLinear"): Frontend.op_QuantizeLinear,
    ("com.microsoft", "DequantizeLinear"): Frontend.op_DequantizeLinear,
    **{(d, "Quant"): Frontend.qonnx_Quant for d in QONNX_DOMAINS},
    **{(d, "BipolarQuant"): Frontend.qonnx_BipolarQuant for d in QONNX_DOMAINS},
    # convolutions
    ("", "Conv"): Frontend.op_Conv,
    ("", "DeformConv"): Frontend.op_DeformConv,
    # element-wise post-ops (folded into the layer's requantization) and the dilation predictor
    ("", "BatchNormalization"): Frontend.op_BatchNormalization,
    ("", "Relu"): Frontend.op_Relu,
    ("", "Clip"): Frontend.op_Clip,
    ("", "Round"): Frontend.op_Round,
    ("", "Mul"): Frontend.op_Mul,
    ("", "Add"): Frontend.op_Add,
    ("", "Sub"): Frontend.op_Sub,
    ("", "Div"): Frontend.op_Div,
    # data movement (index arithmetic on channel ids) and folded shape arithmetic
    ("", "Cast"): Frontend.op_Cast,
    ("", "Identity"): Frontend.op_Identity,
    ("", "Shape"): Frontend.op_Shape,
    ("", "Concat"): Frontend.op_Concat,
    ("", "Split"): Frontend.op_Split,
    ("", "Slice"): Frontend.op_Slice,
    ("", "Gather"): Frontend.op_Gather,
    ("", "Reshape"): Frontend.op_Reshape,
    ("", "Transpose"): Frontend.op_Transpose,
    ("", "Resize"): Frontend.op_Resize,
    ("", "Constant"): Frontend.op_Constant,
}


def handler_for(domain, op_type):
    """The handler of an ONNX op, or None (see OP_HANDLERS)."""
    return OP_HANDLERS.get(("" if domain in ONNX_DOMAINS else domain, op_type))
