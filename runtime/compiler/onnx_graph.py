"""ONNX graph walking for the CoDeNet compiler: topological order, node names, attributes,
initializers and constant folding of shape arithmetic (via onnx's reference evaluator)."""
import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ModelError


class CompileError(ModelError):
    """The compiler cannot map an ONNX model onto the engine exactly; the message names the node
    and the reason."""

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas", "qonnx")


def load_model(model):
    """An onnx.ModelProto, a path, or serialized bytes -> ModelProto."""
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    return onnx.load(str(model))


def node_label(node, index):
    """The name every message uses for a node: its name, else op type + first output."""
    if node.name:
        return node.name
    return "{}({})".format(node.op_type, node.output[0] if node.output else index)


def attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def to_array(tensor):
    """TensorProto -> numpy (int4/uint4 unpacked to int8/uint8 values)."""
    arr = numpy_helper.to_array(tensor)
    if arr.dtype.name in ("int4", "uint4", "float4_e2m1"):
        arr = arr.astype(np.int8 if arr.dtype.name == "int4" else np.uint8)
    return arr


def initializers(graph):
    return {t.name: to_array(t) for t in graph.initializer}


def narrow_int_types(graph):
    """{initializer name: "int4" / "uint4"} for the initializers that to_array widens."""
    names = {onnx.TensorProto.INT4: "int4", onnx.TensorProto.UINT4: "uint4"}
    return {t.name: names[t.data_type] for t in graph.initializer if t.data_type in names}


def topo_order(graph):
    """Nodes in a topological order (the file's order when it already is one)."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    nodes = list(graph.node)
    done, order, pending = set(known), [], list(range(len(nodes)))
    while pending:
        rest = []
        for i in pending:
            n = nodes[i]
            if all(x in done for x in n.input):
                order.append(i)
                done.update(n.output)
            else:
                rest.append(i)
        if len(rest) == len(pending):      # a cycle or a missing input: keep the file's order
            order.extend(rest)
            break
        pending = rest
    return [(i, nodes[i]) for i in order]


def opset_version(model, domain=""):
    for o in model.opset_import:
        if o.domain in (domain, "ai.onnx" if domain == "" else domain):
            return o.version
    return 0


def eval_constant_node(node, inputs, opset):
    """Evaluate a standard-domain node whose inputs are all constants (shape arithmetic, Constant,
    Cast, ...) with onnx's reference evaluator. Returns the list of output arrays."""
    from onnx.reference import ReferenceEvaluator
    names = ["c{}".format(i) if n else "" for i, n in enumerate(node.input)]
    feeds, vinfo = {}, []
    for nm, val in zip(names, inputs):
        if nm:
            arr = np.asarray(val)
            feeds[nm] = arr
            vinfo.append(helper.make_tensor_value_info(nm, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape))
    outs = ["o{}".format(i) for i in range(len(node.output))]
    n2 = helper.make_node(node.op_type, names, outs, domain=node.domain)
    n2.attribute.extend(node.attribute)
    g = helper.make_graph([n2], "const", vinfo, [helper.make_value_info(o, onnx.TypeProto()) for o in outs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", max(opset, 7))])
    res = ReferenceEvaluator(m).run(None, feeds)
    return [np.asarray(r) for r in res]
