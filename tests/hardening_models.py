"""Small quantized ONNX models for the hardening tests (threads, faults, soak, fuzzing)."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def small_qdq_net(seed=0, c_in=3, size=16, c_mid=8, c_out=6):
    """x (1, c_in, size, size) -> QDQ -> Conv 3x3 + Relu -> QDQ -> Conv 1x1 -> QDQ: a standard
    QDQ model (opset 19) that onnxruntime runs and the CoDeNet compiler maps exactly."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def qdq(x, scale, tag, dtype=np.uint8):
        s, z = const("s_" + tag, np.float32(scale)), const("z_" + tag, np.asarray(0, dtype))
        nodes.append(helper.make_node("QuantizeLinear", [x, s, z], ["q_" + tag], name="quant_" + tag))
        nodes.append(helper.make_node("DequantizeLinear", ["q_" + tag, s, z], ["dq_" + tag], name="dequant_" + tag))
        return "dq_" + tag

    def weights(shape, tag):
        w = rng.integers(-7, 8, shape).astype(np.int8)
        s = const("ws_" + tag, np.full(shape[0], 0.05, np.float32))
        z = const("wz_" + tag, np.zeros(shape[0], np.int8))
        nodes.append(helper.make_node("DequantizeLinear", [const("w_" + tag, w), s, z], ["wdq_" + tag],
                                      name="wdequant_" + tag, axis=0))
        return "wdq_" + tag

    x = qdq("x", 1 / 255, "in")
    nodes.append(helper.make_node("Conv", [x, weights((c_mid, c_in, 3, 3), "c1"),
                                           const("b_c1", rng.normal(0, 0.1, c_mid).astype(np.float32))],
                                  ["conv1"], name="conv1", pads=[1, 1, 1, 1], kernel_shape=[3, 3]))
    nodes.append(helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"))
    h = qdq("relu1", 0.05, "h")
    nodes.append(helper.make_node("Conv", [h, weights((c_out, c_mid, 1, 1), "c2")], ["conv2"], name="conv2",
                                  kernel_shape=[1, 1]))
    y = qdq("conv2", 0.1, "out", np.int8)
    graph = helper.make_graph(nodes, "small_qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                  [1, c_in, size, size])],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, c_out, size, size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return model
