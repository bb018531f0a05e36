"""What the compiler checks before lowering an ONNX model: the ONNX checker (full check, strict
type and shape inference), the agreement of weights / scales / zero points / kernel sizes that
the checker leaves to the runtimes, and, where onnxruntime is installed (the host, CI; not
needed on the board), that onnxruntime accepts the model. A model any of these refuse would
otherwise be compiled into something no reference can run."""
import os

import onnx
from onnx import shape_inference

from .onnx_graph import QONNX_DOMAINS, CompileError, attrs, node_label

ORT_DOMAINS = ("", "ai.onnx", "com.microsoft")


def _first_line(e):
    text = str(e).strip().splitlines()
    return text[0][:500] if text else type(e).__name__


def check_onnx(model, source):
    """Raise CompileError naming the problem (and the node) if `model` is not a valid ONNX model
    whose quantization parameters agree; return {value name: shape tuple (None: unknown dim)}."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for o in m.graph.output:     # unknown-rank outputs: NCHW for the checker (the engine's only layout)
        t = o.type.tensor_type
        if o.type.HasField("tensor_type") and not t.HasField("shape"):
            for p in ("n", "c", "h", "w"):
                t.shape.dim.add().dim_param = "{}_{}".format(o.name, p)
    try:
        m = shape_inference.infer_shapes(m, check_type=True, strict_mode=True, data_prop=True)
        onnx.checker.check_model(m, full_check=True)
    except (onnx.checker.ValidationError, shape_inference.InferenceError, ValueError, TypeError) as e:
        raise CompileError("{}: not a valid ONNX model (onnx checker: {})".format(source, _first_line(e))) from None
    shapes = _shapes(m)
    for idx, node in enumerate(m.graph.node):
        where = "node {!r} ({})".format(node_label(node, idx), node.op_type)
        if node.domain in ("", "ai.onnx") and node.op_type == "Conv":
            _check_conv(node, shapes, where)
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.domain not in QONNX_DOMAINS:
            _check_qdq(node, shapes, where)
    _check_with_onnxruntime(model, source)
    return shapes


def _shapes(m):
    out = {}
    for vi in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output):
        t = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and t.HasField("shape"):
            out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
    for t in m.graph.initializer:
        out[t.name] = tuple(t.dims)
    return out


def _check_conv(node, shapes, where):
    a = attrs(node)
    x, w = shapes.get(node.input[0]), shapes.get(node.input[1])
    if w is None or len(w) < 3 or None in w:
        return
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != tuple(w[2:]):
        raise CompileError("{}: kernel_shape {} disagrees with the weights' shape {}".format(
            where, list(a["kernel_shape"]), list(w)))
    group = int(a.get("group", 1))
    if group < 1 or w[0] % group:
        raise CompileError("{}: group {} does not divide the {} output channels".format(where, group, w[0]))
    if x is not None and len(x) == len(w) and x[1] is not None and x[1] != w[1] * group:
        raise CompileError("{}: the input has {} channels, the weights expect {} (x group {})".format(
            where, x[1], w[1] * group, group))
    if len(node.input) > 2 and node.input[2]:
        b = shapes.get(node.input[2])
        if b is not None and tuple(b) != (w[0],):
            raise CompileError("{}: bias shape {} is not ({},)".format(where, list(b), w[0]))


def _check_qdq(node, shapes, where):
    if len(node.input) < 2:
        return
    a = attrs(node)
    x, s = shapes.get(node.input[0]), shapes.get(node.input[1])
    z = shapes.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if s is None or a.get("block_size"):
        return
    if len(s) > 1:
        raise CompileError("{}: scale of shape {}: per-tensor (scalar) or per-axis (1-D) only".format(where, list(s)))
    if z is not None and tuple(z) != tuple(s):
        raise CompileError("{}: zero point shape {} differs from the scale's {}".format(where, list(z), list(s)))
    if len(s) == 1 and s[0] != 1 and x is not None:
        axis = int(a.get("axis", 1))
        axis = axis + len(x) if axis < 0 else axis
        if not 0 <= axis < len(x):
            raise CompileError("{}: axis {} out of range for a rank-{} input".format(where, a.get("axis"), len(x)))
        if x[axis] is not None and x[axis] != s[0]:
            raise CompileError("{}: {} scales for {} channels on axis {} (scales, zero points and weights must "
                               "agree channel for channel)".format(where, s[0], x[axis], axis))


def _check_with_onnxruntime(model, source):
    try:
        import onnxruntime as ort
    except ImportError:           # the board: the checks above are all there is
        return
    if any(n.domain not in ORT_DOMAINS for n in model.graph.node):
        return                    # QONNX custom ops: onnxruntime has no kernels for them
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise CompileError("{}: onnxruntime refuses the model: {}".format(source, _first_line(e))) from None


def read_onnx(model):
    """load_model with every read / decode failure a CompileError naming the source."""
    from .onnx_graph import load_model
    try:
        return load_model(model)
    except CompileError:
        raise
    except Exception as e:  # noqa: BLE001 - protobuf DecodeError, OSError, ...: all "cannot read"
        what = str(model) if isinstance(model, (str, os.PathLike)) else "the model"
        raise CompileError("cannot read ONNX model {}: {}: {}".format(what, type(e).__name__, _first_line(e))) from None


class compile_errors_named:
    """Context manager: any unexpected exception inside the front end or the lowering becomes a
    CompileError naming the node the front end was at (never a raw traceback)."""

    def __init__(self, frontend):
        self.fe = frontend

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, CompileError) or not isinstance(exc, Exception):
            return False
        from ..errors import PynqDeployError
        if isinstance(exc, PynqDeployError):
            return False
        raise CompileError("node {!r} ({}): the compiler cannot handle it: {}: {}".format(
            self.fe.label, self.fe.op_type, type(exc).__name__, _first_line(exc))) from exc
