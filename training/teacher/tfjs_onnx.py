"""Convert the teacher's TF.js graph (model.json + .bin) into an ONNX model, and decode its output.

The TF.js graph is NHWC; the ONNX model takes the same NHWC float input (N x 512 x 512 x 3, RGB
0..255, stretched, no normalisation), transposes it once to NCHW and stays NCHW inside. It keeps
the network only (up to the graph's `tower_0/keypoints` and `tower_0/wh`) and outputs

    heatmap  N x 80 x 128 x 128   sigmoid class heatmap (stride 4)
    wh       N x 4 x 128 x 128    box distances in input pixels (left, top, right, bottom)

`decode()` re-implements the graph's own detection subgraph in numpy (3x3 max-pool peaks, top
100, boxes from wh), giving the same N x 100 x 6 rows [x1, y1, x2, y2, score, class] as the
graph's `tower_0/detections`, in input (512) pixels.

    convert(model_json) -> onnx.ModelProto
    onnx_path(model_json=None) -> Path of the converted model, cached next to the weights
"""
import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime.fileio import write_files_atomically

OPSET = 17
CONVERTER_VERSION = 2            # part of the cache key: bump when the emitted graph changes
INPUT_NAME = "images"
OUTPUTS = (("heatmap", "tower_0/keypoints"), ("wh", "tower_0/wh"))
NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}

# Decode constants of the graph (checked against its Const nodes by check_decode_constants()).
STRIDE = 4                       # tower_0/mul_3/y .. mul_6/y: heatmap cell -> input pixel
TOP_K = 100                      # tower_0/TopKV2/k
PEAK_POOL = 3                    # tower_0/max_pooling2d ksize


class ConversionError(ValueError):
    """The TF.js graph uses something this converter does not map."""


# --- reading the TF.js graph -------------------------------------------------------------------

_TFJS_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANT_DTYPES = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


def load_weights(model_json):
    """{name: numpy array} from the weights manifest, dequantized to float32 where quantized."""
    model_json = Path(model_json)
    manifest = json.loads(model_json.read_text())["weightsManifest"]
    weights = {}
    for group in manifest:
        buf = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            count = int(np.prod(w["shape"], dtype=np.int64))
            quant = w.get("quantization")
            stored = _QUANT_DTYPES[quant["dtype"]] if quant else _TFJS_DTYPES.get(w["dtype"])
            if stored is None:
                raise ConversionError("weight {} has unsupported dtype {} / quantization {}".format(
                    w["name"], w["dtype"], quant))
            nbytes = count * np.dtype(stored).itemsize
            if offset + nbytes > len(buf):
                raise ConversionError("weights file too short for {}".format(w["name"]))
            raw = np.frombuffer(buf, stored, count, offset)
            offset += nbytes
            if quant is None:
                value = raw.astype(_TFJS_DTYPES[w["dtype"]])
            elif quant["dtype"] == "float16":
                value = raw.astype(np.float32)
            else:                         # affine uint8 / uint16: value = q * scale + min
                value = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
                value = value.astype(_TFJS_DTYPES[w.get("dtype", "float32")])
            weights[w["name"]] = value.reshape(w["shape"])
        if offset != len(buf):
            raise ConversionError("weights file has {} unread bytes".format(len(buf) - offset))
    return weights


def _attr(node, key, default=None):
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if "list" in a:
        lst = a["list"]
        if "s" in lst:
            return [base64.b64decode(s).decode() for s in lst["s"]]
        return [int(i) for i in lst.get("i", [])]
    if "s" in a:
        return base64.b64decode(a["s"]).decode()
    if "b" in a:
        return bool(a["b"])
    if "i" in a:
        return int(a["i"])
    if "f" in a:
        return float(a["f"])
    return a


def load_graph(model_json):
    """(nodes by name in file order, weights) of a TF.js graph model."""
    topology = json.loads(Path(model_json).read_text())["modelTopology"]
    nodes = {n["name"]: n for n in topology["node"]}
    return nodes, load_weights(model_json)


def _source(ref):
    """'name:1' -> ('name', 1)."""
    name, _, port = ref.partition(":")
    return name, int(port or 0)


def check_decode_constants(nodes, weights):
    """The decode constants above must be the graph's own."""
    pool = nodes["tower_0/max_pooling2d/MaxPool"]
    found = {
        "STRIDE": [float(weights["tower_0/mul_{}/y".format(i)]) for i in (3, 4, 5, 6)],
        "TOP_K": int(weights["tower_0/TopKV2/k"]),
        "PEAK_POOL": (_attr(pool, "ksize"), _attr(pool, "strides"), _attr(pool, "padding")),
    }
    want = {"STRIDE": [STRIDE] * 4, "TOP_K": TOP_K,
            "PEAK_POOL": ([1, PEAK_POOL, PEAK_POOL, 1], [1, 1, 1, 1], "SAME")}
    if found != want:
        raise ConversionError("decode constants differ from the graph's: {}".format(found))


# --- the converter ----------------------------------------------------------------------------

def same_pads(size, kernel, stride, dilation):
    """TF 'SAME' padding (before, after) along one axis: the odd extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _conv_out(size, kernel, stride, dilation, before, after):
    return (size + before + after - (kernel - 1) * dilation - 1) // stride + 1


class _Builder:
    """Walks the TF.js nodes that the requested outputs need and emits ONNX nodes (NCHW)."""

    def __init__(self, nodes, weights):
        self.nodes, self.weights = nodes, weights
        self.onnx_nodes, self.inits = [], []
        self.hw = {}                     # NCHW activation name -> (H, W), static
        self.alias = {}                  # Identity: TF name -> emitted name
        self.done = set()
        self._uid = 0

    def _name(self, base):
        self._uid += 1
        return "{}__{}".format(base, self._uid)

    def const(self, base, array):
        name = self._name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def emit(self, op, inputs, output, **attrs):
        self.onnx_nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def tensor(self, ref):
        """Name of the emitted NCHW tensor for a TF input reference (building it if needed)."""
        name, port = _source(ref)
        if port != 0:
            raise ConversionError("output {} of {} is not supported".format(port, name))
        self.build(name)
        return self.alias.get(name, name)

    def weight(self, ref):
        name, _ = _source(ref)
        if name not in self.weights:
            raise ConversionError("{} must be a constant".format(name))
        return self.weights[name]

    def is_const(self, ref):
        return _source(ref)[0] in self.weights

    def build(self, name):
        if name in self.done:
            return
        node = self.nodes.get(name)
        if node is None:
            raise ConversionError("graph has no node {}".format(name))
        handler = getattr(self, "op_" + node["op"], None)
        if handler is None:
            raise ConversionError("TF op {} ({}) is not supported".format(node["op"], name))
        handler(node)
        self.done.add(name)

    # -- ops
    def op_Placeholder(self, node):
        shape = [int(d["size"]) for d in _attr(node, "shape")["shape"]["dim"]]
        if len(shape) != 4 or shape[3] != 3:
            raise ConversionError("input must be N x H x W x 3, not {}".format(shape))
        self.input_hw = (shape[1], shape[2])
        self.emit("Transpose", [INPUT_NAME], node["name"], perm=[0, 3, 1, 2])
        self.hw[node["name"]] = self.input_hw

    def op_Identity(self, node):
        src = self.tensor(node["input"][0])
        self.alias[node["name"]] = src

    def _conv(self, node, depthwise):
        if _attr(node, "data_format", "NHWC") != "NHWC":
            raise ConversionError("{}: only NHWC is supported".format(node["name"]))
        x = self.tensor(node["input"][0])
        w = self.weight(node["input"][1]).astype(np.float32)
        kh, kw, cin, cout = w.shape
        if depthwise:                     # [kh, kw, in, mult] -> [in*mult, 1, kh, kw], group=in
            group = cin
            w = w.reshape(kh, kw, cin * cout, 1).transpose(2, 3, 0, 1)
        else:                             # [kh, kw, in, out] -> [out, in, kh, kw]
            group = 1
            w = w.transpose(3, 2, 0, 1)
        strides = _attr(node, "strides")
        dil = _attr(node, "dilations", [1, 1, 1, 1])
        if strides[0] != 1 or strides[3] != 1 or dil[0] != 1 or dil[3] != 1:
            raise ConversionError("{}: batch/channel strides or dilations".format(node["name"]))
        (h, wd) = self.hw[x]
        padding = _attr(node, "padding")
        if padding == "SAME":
            (pt, pb), (pl, pr) = same_pads(h, kh, strides[1], dil[1]), same_pads(wd, kw, strides[2], dil[2])
        elif padding == "VALID":
            pt = pb = pl = pr = 0
        elif padding == "EXPLICIT":
            e = _attr(node, "explicit_paddings")
            pt, pb, pl, pr = e[2], e[3], e[4], e[5]
        else:
            raise ConversionError("{}: padding {}".format(node["name"], padding))
        inputs = [x, self.const(node["name"] + "/W", w)]
        fused = _attr(node, "fused_ops", []) if node["op"].startswith(("_Fused", "Fused")) else []
        if fused[:1] == ["BiasAdd"]:
            if _attr(node, "num_args", 1) != 1:
                raise ConversionError("{}: num_args {}".format(node["name"], _attr(node, "num_args")))
            inputs.append(self.const(node["name"] + "/B", self.weight(node["input"][2]).astype(np.float32)))
            fused = fused[1:]
        if len(fused) > 1 or (fused and fused[0] not in ("Relu", "Relu6")):
            raise ConversionError("{}: fused ops {} not supported".format(node["name"], fused))
        out = node["name"]
        conv_out = out if not fused else self._name(out + "/conv")
        self.emit("Conv", inputs, conv_out, kernel_shape=[kh, kw], strides=strides[1:3],
                  dilations=dil[1:3], pads=[pt, pl, pb, pr], group=group)
        if fused == ["Relu"]:
            self.emit("Relu", [conv_out], out)
        elif fused == ["Relu6"]:
            self._relu6(conv_out, out)
        self.hw[out] = self.hw[conv_out] = (_conv_out(h, kh, strides[1], dil[1], pt, pb),
                                            _conv_out(wd, kw, strides[2], dil[2], pl, pr))

    def op__FusedConv2D(self, node):
        self._conv(node, depthwise=False)

    def op_Conv2D(self, node):
        self._conv(node, depthwise=False)

    def op_FusedDepthwiseConv2dNative(self, node):
        self._conv(node, depthwise=True)

    def op_DepthwiseConv2dNative(self, node):
        self._conv(node, depthwise=True)

    def _relu6(self, x, out):
        zero = self.const("zero", np.array(0, np.float32))
        six = self.const("six", np.array(6, np.float32))
        self.emit("Clip", [x, zero, six], out)

    def op_Relu6(self, node):
        x = self.tensor(node["input"][0])
        self._relu6(x, node["name"])
        self.hw[node["name"]] = self.hw[x]

    def _unary(self, node, op):
        x = self.tensor(node["input"][0])
        self.emit(op, [x], node["name"])
        self.hw[node["name"]] = self.hw[x]

    def op_Relu(self, node):
        self._unary(node, "Relu")

    def op_Sigmoid(self, node):
        self._unary(node, "Sigmoid")

    def _operand(self, ref):
        """An activation (NCHW already) or a constant laid out to broadcast against NCHW."""
        if not self.is_const(ref):
            x = self.tensor(ref)
            return x, self.hw[x]
        c = self.weight(ref).astype(np.float32)
        if c.ndim == 1:
            c = c.reshape(1, -1, 1, 1)    # TF broadcasts a vector over the channel (last) axis
        elif c.ndim == 4:
            c = c.transpose(0, 3, 1, 2)
        elif c.ndim != 0:
            raise ConversionError("constant {} of rank {} in an element-wise op".format(ref, c.ndim))
        return self.const(_source(ref)[0], c), None

    def _binary(self, node, op):
        (a, hwa), (b, hwb) = (self._operand(r) for r in node["input"][:2])
        if hwa is None and hwb is None:
            raise ConversionError("{}: both operands constant".format(node["name"]))
        self.emit(op, [a, b], node["name"])
        shapes = [s for s in (hwa, hwb) if s is not None]
        self.hw[node["name"]] = tuple(max(d) for d in zip(*shapes))

    def op_Add(self, node):
        self._binary(node, "Add")

    def op_AddV2(self, node):
        self._binary(node, "Add")

    def op_Sub(self, node):
        self._binary(node, "Sub")

    def op_Mul(self, node):
        self._binary(node, "Mul")

    def op_Mean(self, node):
        x = self.tensor(node["input"][0])
        axes = sorted(NHWC_TO_NCHW_AXIS[int(a) % 4] for a in np.ravel(self.weight(node["input"][1])))
        keep = _attr(node, "keep_dims", False)
        if not keep or axes != [2, 3]:
            raise ConversionError("{}: only a spatial mean with keep_dims".format(node["name"]))
        self.emit("ReduceMean", [x], node["name"], axes=axes, keepdims=1)
        self.hw[node["name"]] = (1, 1)

    def op_ConcatV2(self, node):
        xs = [self.tensor(r) for r in node["input"][:-1]]
        axis = NHWC_TO_NCHW_AXIS[int(self.weight(node["input"][-1])) % 4]
        self.emit("Concat", xs, node["name"], axis=axis)
        self.hw[node["name"]] = self.hw[xs[0]]

    def op_ResizeBilinear(self, node):
        x = self.tensor(node["input"][0])
        out_h, out_w = (int(v) for v in self.weight(node["input"][1]))
        align, half = _attr(node, "align_corners", False), _attr(node, "half_pixel_centers", False)
        if align and half:
            raise ConversionError("{}: align_corners and half_pixel_centers".format(node["name"]))
        mode = "align_corners" if align else "half_pixel" if half else "asymmetric"
        batch_channels = self._name(node["name"] + "/nc")
        self.emit("Shape", [x], batch_channels, start=0, end=2)
        sizes = self._name(node["name"] + "/sizes")
        self.emit("Concat", [batch_channels, self.const(node["name"] + "/hw", np.array(
            [out_h, out_w], np.int64))], sizes, axis=0)
        self.emit("Resize", [x, "", "", sizes], node["name"], mode="linear",
                  coordinate_transformation_mode=mode)
        self.hw[node["name"]] = (out_h, out_w)


def convert(model_json):
    """The TF.js graph at `model_json` (its .bin beside it) as an ONNX model (see module doc)."""
    nodes, weights = load_graph(model_json)
    check_decode_constants(nodes, weights)
    b = _Builder(nodes, weights)
    outputs = []
    for onnx_name, tf_name in OUTPUTS:
        src = b.tensor(tf_name)
        b.emit("Identity", [src], onnx_name)
        outputs.append(onnx_name)
    h, w = b.input_hw
    graph = helper.make_graph(
        b.onnx_nodes, "centernet_teacher",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", h, w, 3])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N", None, None, None]) for o in outputs],
        initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="pynq-deploy training.teacher.tfjs_onnx")
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def weights_sha256(model_json):
    """sha256 over the model.json and its weight files: the teacher's identity in cache keys."""
    model_json = Path(model_json)
    h = hashlib.sha256(model_json.read_bytes())
    for group in json.loads(model_json.read_text())["weightsManifest"]:
        for p in group["paths"]:
            h.update((model_json.parent / p).read_bytes())
    return h.hexdigest()


def onnx_path(model_json=None):
    """The converted model, cached beside the weights as centernet.<sha>.onnx (built once)."""
    from training.teacher.fetch import require_weights
    model_json = Path(model_json) if model_json is not None else require_weights()
    key = hashlib.sha256("{}:{}".format(weights_sha256(model_json), CONVERTER_VERSION).encode())
    path = model_json.parent / "centernet.{}.onnx".format(key.hexdigest()[:16])
    if not path.is_file():
        data = convert(model_json).SerializeToString()
        write_files_atomically(path.parent, [(path.name, lambda f: f.write(data))])
        for stale in path.parent.glob("centernet.*.onnx"):     # older weights or converter
            if stale != path:
                stale.unlink()
    return path


# --- the graph's detection subgraph, in numpy --------------------------------------------------

def _shift_max(a, axis, radius):
    """Max over a window of 2*radius+1 along `axis`; outside the array counts as -inf."""
    out = a.copy()
    n = a.shape[axis]
    for d in range(1, radius + 1):
        lo = [slice(None)] * a.ndim
        hi = [slice(None)] * a.ndim
        lo[axis], hi[axis] = slice(0, n - d), slice(d, n)
        np.maximum(out[tuple(lo)], a[tuple(hi)], out=out[tuple(lo)])
        np.maximum(out[tuple(hi)], a[tuple(lo)], out=out[tuple(hi)])
    return out


def _peaks(heat):
    """heat * (heat == 3x3 max-pool(heat)), TF 'SAME' padding (padding never wins); NCHW."""
    r = PEAK_POOL // 2
    pooled = _shift_max(_shift_max(heat, 3, r), 2, r)          # the max is separable
    return heat * (heat == pooled)


def decode(heatmap, wh, k=TOP_K):
    """The graph's `tower_0/detections` from the ONNX outputs.

    heatmap N x C x H x W, wh N x 4 x H x W (NCHW) -> float32 N x k x 6 rows
    [x1, y1, x2, y2, score, class] in input pixels: the k highest 3x3 peaks, ranked like the
    graph's TopKV2 over its NHWC-flattened heatmap (ties: lower (y, x, class) index first); the
    box is (x*STRIDE - wh0, y*STRIDE - wh1, x*STRIDE + wh2, y*STRIDE + wh3) with (y, x) the peak's
    heatmap cell (the graph's FloorDiv / FloorMod of the index)."""
    heatmap = np.asarray(heatmap, np.float32)
    wh = np.asarray(wh, np.float32)
    n, c, h, w = heatmap.shape
    peaks = _peaks(heatmap).reshape(n, -1)                          # NCHW order
    out = np.empty((n, k, 6), np.float32)
    for i in range(n):
        flat = peaks[i]
        kth = np.partition(flat, flat.size - k)[flat.size - k]
        cand = np.concatenate([np.flatnonzero(flat > kth), np.flatnonzero(flat == kth)])
        cls, y, x = cand // (h * w), cand // w % h, cand % w
        nhwc = (y * w + x) * c + cls                                # the graph's index
        pick = np.lexsort((nhwc, -flat[cand]))[:k]
        cls, y, x, score = cls[pick], y[pick], x[pick], flat[cand[pick]]
        d = wh[i][:, y, x]                                          # 4 x k
        cx, cy = (x * STRIDE).astype(np.float32), (y * STRIDE).astype(np.float32)
        out[i] = np.stack([cx - d[0], cy - d[1], cx + d[2], cy + d[3], score,
                           cls.astype(np.float32)], axis=1)
    return out
