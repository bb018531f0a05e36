"""Export the BNN (hls_src/bnn/FORMAT.md) as a plain ONNX graph with +-1 float weights.

`export_onnx(words_or_layers, path=None) -> onnx.ModelProto` builds, from packed parameter words
(uint64, FORMAT.md) or from the layers dict of `runtime.engines.bnn_format`, a standard-ONNX
(opset 17) graph that onnxruntime runs and whose float32 `scores` equal the engine's int32 scores
exactly:

    images  float32 (N, 1, 28, 28), raw pixel values 0..255 (NCHW)
    conv0   Conv(+-1 weights, no padding)  -> acc (integer valued)
            Sign(acc + (0.5 - T0))         -> +-1    (acc >= T0; never 0 since acc, T0 integers)
    conv1   Conv(+-1)                      -> acc = 2*pop - K
            Sign(acc + (0.5 - (2T - K)))   -> +-1    (pop >= T  <=>  acc >= 2T - K)
    pool0   MaxPool 2x2 stride 2           (OR on bits == max on +-1)
    conv2, conv3 as conv1, pool1 as pool0
    flatten Transpose(0, 2, 3, 1) + Flatten (NHWC order (y, x, c), as the hardware's fc0)
    fc0     MatMul(+-1) + threshold Sign as above
    fc1     MatMul(+-1) -> acc, scores = acc * 2**SHIFT + BIAS
    scores  float32 (N, 10)

Every intermediate value is an integer (or an integer + 0.5) far below 2**24, so float32
arithmetic is exact in any summation order. Thresholds outside the reachable accumulator range
are clamped to the range's edge (same decisions), so that stays true for any legal parameter file.

Taking it to FINN
-----------------
The graph is "FINN-ONNX" style: float32 carrier tensors, +-1 weights, `Sign` activations. The
exporter also writes FINN's tensor datatype annotations into `graph.quantization_annotation`
(key `finn_datatype`): `UINT8` on `images`, `BIPOLAR` on every weight initializer and every
`Sign` output. onnxruntime ignores them. In a FINN flow (qonnx `ModelWrapper`), one would
typically: load the file; run the cleanup / `InferShapes` / `InferDataTypes` passes; streamline
(FINN's sign-to-threshold conversion, absorbing the `Add` before each `Sign` into a
`MultiThreshold`, and its bipolar-matmul-to-XNOR-popcount conversion); then lower the convolutions
(im2col) and convert to its HLS/RTL layers as for its cnv-w1a1 example. Pass names differ between
FINN releases; check the release you use. A QONNX `BipolarQuant` form is not needed (and not
written): weights are already exactly +-1 and `Sign` is FINN's bipolar activation. The first layer
takes 8-bit unsigned inputs against +-1 weights, like FINN's own first layers.

numpy + onnx only (no torch), Python 3.10, numpy 1.x.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IN_H, IN_W, IN_C = 28, 28, 1
CONV_NAMES = ("conv0", "conv1", "conv2", "conv3")
POOL_AFTER = ("conv1", "conv3")
PIXEL_MAX = 255


def _layers_from(words_or_layers):
    if isinstance(words_or_layers, dict):
        return words_or_layers
    from runtime.engines.bnn_format import unpack_params
    return unpack_params(np.asarray(words_or_layers, dtype=np.uint64))


def _pm1(w):
    w = np.asarray(w)
    if not np.all((w == 1) | (w == -1)):
        raise ValueError("weights must be +-1")
    return w.astype(np.float32)


def export_onnx(words_or_layers, path=None, name="bnn"):
    """Build (and, if `path` is given, save) the ONNX graph of the network; returns the ModelProto."""
    layers = _layers_from(words_or_layers)
    inits, nodes, annots = [], [], []

    def const(nm, arr, bipolar=False):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), nm))
        if bipolar:
            annots.append((nm, "BIPOLAR"))
        return nm

    def threshold_sign(x, a_min, prefix):
        # bit = x >= a_min  ->  Sign(x + 0.5 - a_min) in {-1, +1}
        off = const(prefix + "_thr_offset", (0.5 - a_min.astype(np.float64)).astype(np.float32))
        nodes.append(helper.make_node("Add", [x, off], [prefix + "_pre"]))
        nodes.append(helper.make_node("Sign", [prefix + "_pre"], [prefix + "_out"]))
        annots.append((prefix + "_out", "BIPOLAR"))
        return prefix + "_out"

    x = "images"
    annots.append((x, "UINT8"))
    h, w, cin = IN_H, IN_W, IN_C
    for i, nm in enumerate(CONV_NAMES):
        L = layers[nm]
        wt = np.asarray(L["weights"])                     # (Cout, 3, 3, Cin)
        cout = wt.shape[0]
        if wt.shape[1:] != (3, 3, cin):
            raise ValueError("{}: weights shape {} does not fit input channels {}".format(nm, wt.shape, cin))
        wn = const(nm + "_W", _pm1(wt).transpose(0, 3, 1, 2), bipolar=True)
        nodes.append(helper.make_node("Conv", [x, wn], [nm + "_acc"], kernel_shape=[3, 3],
                                      pads=[0, 0, 0, 0], strides=[1, 1]))
        t = np.asarray(L["thresholds"], dtype=np.int64).reshape(cout)
        if i == 0:
            lim = 9 * cin * PIXEL_MAX
            a_min = np.clip(t, -lim, lim + 1)
        else:
            k = 9 * cin
            a_min = 2 * np.clip(t, 0, k + 1) - k
        x = threshold_sign(nm + "_acc", a_min.reshape(1, cout, 1, 1), nm)
        h, w, cin = h - 2, w - 2, cout
        if nm in POOL_AFTER:
            pn = "pool{}_out".format(POOL_AFTER.index(nm))
            nodes.append(helper.make_node("MaxPool", [x], [pn], kernel_shape=[2, 2], strides=[2, 2]))
            annots.append((pn, "BIPOLAR"))
            x, h, w = pn, h // 2, w // 2
    nodes.append(helper.make_node("Transpose", [x], ["nhwc"], perm=[0, 2, 3, 1]))
    nodes.append(helper.make_node("Flatten", ["nhwc"], ["flat"], axis=1))
    x, k = "flat", h * w * cin

    L = layers["fc0"]
    wt = _pm1(L["weights"])
    if wt.shape[1] != k:
        raise ValueError("fc0: weights shape {} does not fit {} inputs".format(wt.shape, k))
    wn = const("fc0_W", np.ascontiguousarray(wt.T), bipolar=True)
    nodes.append(helper.make_node("MatMul", [x, wn], ["fc0_acc"]))
    t = np.asarray(L["thresholds"], dtype=np.int64)
    x = threshold_sign("fc0_acc", 2 * np.clip(t, 0, k + 1) - k, "fc0")
    k = wt.shape[0]

    L = layers["fc1"]
    wt = _pm1(L["weights"])
    if wt.shape[1] != k:
        raise ValueError("fc1: weights shape {} does not fit {} inputs".format(wt.shape, k))
    ncls = wt.shape[0]
    wn = const("fc1_W", np.ascontiguousarray(wt.T), bipolar=True)
    nodes.append(helper.make_node("MatMul", [x, wn], ["fc1_acc"]))
    shift = np.asarray(L["shift"], dtype=np.int64)
    bias = np.asarray(L["bias"], dtype=np.int64)
    if shift.min() < 0 or shift.max() > 7 or np.abs(bias).max() > (1 << 20):
        raise ValueError("fc1: shift must be 0..7 and |bias| <= 2**20")
    sc = const("fc1_scale", (2.0 ** shift).astype(np.float32))
    bi = const("fc1_bias", bias.astype(np.float32))
    nodes.append(helper.make_node("Mul", ["fc1_acc", sc], ["fc1_scaled"]))
    nodes.append(helper.make_node("Add", ["fc1_scaled", bi], ["scores"]))

    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", IN_C, IN_H, IN_W])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", ncls])],
        initializer=inits)
    for tensor, dt in annots:
        ann = onnx.TensorAnnotation()
        ann.tensor_name = tensor
        kv = ann.quant_parameter_tensor_names.add()
        kv.key, kv.value = "finn_datatype", dt
        graph.quantization_annotation.append(ann)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="pynq-deploy")
    model.ir_version = min(model.ir_version, 8)    # readable by older onnxruntime releases
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, str(path))
    return model


def images_to_nchw_float(images):
    """uint8 (N, 28, 28[, 1]) NHWC images -> float32 (N, 1, 28, 28), the graph's input."""
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[..., None]
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2).astype(np.float32))
