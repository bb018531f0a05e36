"""The compiler's entry under hostile models: every refusal a CompileError naming the problem
(and the node where there is one), never a raw traceback; what onnxruntime refuses, refused."""
import copy

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtime.compiler.codenet_compiler import CompileError, compile_onnx
from runtime.compiler import frontend as frontend_mod
from tests.hardening_models import small_qdq_net


def _init(m, name):
    return next(t for t in m.graph.initializer if t.name == name)


def _node(m, name):
    return next(n for n in m.graph.node if n.name == name)


def _set_init(m, name, arr):
    _init(m, name).CopyFrom(numpy_helper.from_array(np.asarray(arr), name))


def _kernel_5_on_1x1(m):
    a = next(a for a in _node(m, "conv2").attribute if a.name == "kernel_shape")
    a.ints[:] = [5, 5]


def _ir_99(m):
    m.ir_version = 99


def _int4_under_opset13(m):
    m.opset_import[0].version = 13
    z = _init(m, "z_h")
    z.CopyFrom(helper.make_tensor("z_h", TensorProto.INT4, [], [0]))


def _one_scale_for_two_channels(m):
    _set_init(m, "ws_c2", np.full(2, 0.05, np.float32))          # 2 scales, 6 output channels
    _set_init(m, "wz_c2", np.zeros(2, np.int8))


def _zero_point_shape(m):
    _set_init(m, "wz_c2", np.zeros(3, np.int8))


def _group_mismatch(m):
    _node(m, "conv1").attribute.append(helper.make_attribute("group", 3))


def _bias_shape(m):
    _set_init(m, "b_c1", np.zeros(5, np.float32))


def _int32_weights(m):
    # valid ONNX, and onnxruntime without graph optimizations runs it; with its default ones it
    # fuses the QDQ pattern into a QLinearConv, which takes no int32 weights (found by fuzzing)
    _set_init(m, "w_c1", numpy_helper.to_array(_init(m, "w_c1")).astype(np.int32))
    _set_init(m, "wz_c1", numpy_helper.to_array(_init(m, "wz_c1")).astype(np.int32))


@pytest.mark.parametrize("mutate, message", [
    (_kernel_5_on_1x1, r"(kernel_shape \[5, 5\] disagrees with the weights' shape \[6, 8, 1, 1\]|"
                       r"Inferred shape and existing shape differ)"),
    (_ir_99, "not a valid ONNX model .*ir_version"),
    (_int4_under_opset13, "not a valid ONNX model"),
    (_one_scale_for_two_channels, "(2 scales for 6 channels|not a valid ONNX model|onnxruntime refuses)"),
    (_zero_point_shape,
     r"node 'wdequant_c2' \(DequantizeLinear\): zero point shape \[3\] differs from the scale's \[6\]"),
    (_group_mismatch, "(group|not a valid ONNX model|onnxruntime refuses)"),
    (_bias_shape, "(bias shape|not a valid ONNX model|onnxruntime refuses)"),
    (_int32_weights, r"node 'conv1' \(Conv\): its weights are stored as int32: the engine takes 4- or 8-bit"),
])
def test_models_onnx_refuses_are_refused(mutate, message):
    m = copy.deepcopy(small_qdq_net())
    mutate(m)
    with pytest.raises(CompileError, match=message):
        compile_onnx(m)


def test_kernel_shape_check_names_the_node():
    m = copy.deepcopy(small_qdq_net())
    _kernel_5_on_1x1(m)
    m.graph.output[0].type.tensor_type.ClearField("shape")     # no declared shape to contradict
    with pytest.raises(CompileError, match=r"node 'conv2' \(Conv\): kernel_shape \[5, 5\] disagrees with the "
                                           r"weights' shape \[6, 8, 1, 1\]"):
        compile_onnx(m)


def test_unreadable_models(tmp_path):
    with pytest.raises(CompileError, match="cannot read ONNX model the model: DecodeError"):
        compile_onnx(b"\x08\x07\xff\xff garbage")
    with pytest.raises(CompileError, match="cannot read ONNX model .*nope.onnx"):
        compile_onnx(str(tmp_path / "nope.onnx"))
    data = small_qdq_net().SerializeToString()
    with pytest.raises(CompileError):
        compile_onnx(data[:len(data) // 2])


def test_tiny_scale_is_a_compile_error_naming_the_node():
    m = copy.deepcopy(small_qdq_net())
    _set_init(m, "s_h", np.float32(1e-30))
    with pytest.raises(CompileError, match=r"node '.*'"):
        compile_onnx(m)


def test_an_unexpected_exception_inside_names_the_node(monkeypatch):
    def broken(self, node, ins, a):
        raise IndexError("list index out of range")
    monkeypatch.setitem(frontend_mod.OP_HANDLERS, ("", "Relu"), broken)
    with pytest.raises(CompileError, match=r"node 'relu1' \(Relu\): the compiler cannot handle it: IndexError"):
        compile_onnx(small_qdq_net())


def test_the_unmutated_model_compiles():
    assert compile_onnx(small_qdq_net()).n_layers == 2


def test_int32_weights_are_what_onnxruntime_refuses():
    """The int32-weight mutant above is refused by onnxruntime with its default session options."""
    import onnxruntime as ort
    m = copy.deepcopy(small_qdq_net())
    _int32_weights(m)
    with pytest.raises(Exception, match="QLinearConv"):
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
