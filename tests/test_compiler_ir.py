"""The compiler's IR and ONNX dispatch (runtime/compiler/frontend.py): typed values, an explicit
op-handler table, the same refusals for ops it has no handler for."""
import dataclasses

import numpy as np
import pytest
from onnx import helper

from runtime.compiler import frontend as fe_mod
from runtime.compiler.codenet_compiler import CompileError
from runtime.compiler.onnx_graph import QONNX_DOMAINS
from tests.hardening_models import small_qdq_net


def test_every_handler_is_a_frontend_method_and_every_method_has_an_entry():
    methods = {getattr(fe_mod.Frontend, n) for n in dir(fe_mod.Frontend) if n.startswith(("op_", "qonnx_"))}
    assert set(fe_mod.OP_HANDLERS.values()) == methods
    for d in QONNX_DOMAINS:
        assert fe_mod.handler_for(d, "Quant") is fe_mod.Frontend.qonnx_Quant
    assert fe_mod.handler_for("ai.onnx", "Conv") is fe_mod.handler_for("", "Conv") is fe_mod.Frontend.op_Conv
    assert fe_mod.handler_for("com.microsoft", "Conv") is None


def test_ir_values_are_dataclasses_and_values_are_frozen():
    for cls in (fe_mod.Quant, fe_mod.Post, fe_mod.Tensor, fe_mod.Const, fe_mod.Act, fe_mod.Pending, fe_mod.RawQ,
                fe_mod.GraphInput, fe_mod.RoundV, fe_mod.OffsetV, fe_mod.LayerOp, fe_mod.RequantOp,
                fe_mod.LayerSrc, fe_mod.IdentitySrc, fe_mod.IntQ):
        assert dataclasses.is_dataclass(cls), cls
    q = fe_mod.Quant(np.float32(0.5), np.int64(3), 1)
    assert (type(q.scale), type(q.zp), q.signed) == (float, int, True) and repr(q) == "Quant(0.5, 3, int8)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.zp = 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        fe_mod.Act(np.arange(3), 4, 4).up = 1
    p = fe_mod.Post.identity(2).affine(np.array([2.0, -1.0]), 1.0).clamp(0.0, 5.0)
    assert p.a.tolist() == [2.0, -1.0] and p.b.tolist() == [1.0, 1.0] and p.lo.tolist() == [0.0, 0.0]
    assert not p.is_identity() and fe_mod.Post.identity(3).is_identity()


@pytest.mark.parametrize("domain, op, message", [
    ("com.microsoft", "Relu", "op Relu of domain 'com.microsoft' is not supported"),
    ("qonnx.custom_op.general", "Relu", "QONNX op Relu is not supported (Quant and BipolarQuant on weights are)"),
    ("", "Sigmoid", "op type Sigmoid is not supported by the CoDeNet engine"),
    ("ai.onnx", "Sigmoid", "op type Sigmoid is not supported by the CoDeNet engine"),
])
def test_ops_without_a_handler_are_refused_naming_the_node(domain, op, message):
    fe = fe_mod.Frontend(small_qdq_net())
    fe.label, fe.op_type = "n1", op
    node = helper.make_node(op, ["x"], ["y"], domain=domain)
    with pytest.raises(CompileError) as e:
        fe.dispatch(node, [fe_mod.Act(np.arange(3), 4, 4)])
    assert str(e.value) == "node 'n1' ({}): {}".format(op, message)


def test_a_standard_op_without_a_handler_on_constants_is_folded():
    fe = fe_mod.Frontend(small_qdq_net())
    node = helper.make_node("Sigmoid", ["x"], ["y"])
    (out,) = fe.dispatch(node, [fe_mod.Const(np.zeros(2, np.float32))])
    assert isinstance(out, fe_mod.Const) and out.value.tolist() == [0.5, 0.5]
