"""Export CoDeNet to ONNX: a float graph and a QONNX (W4A8 `Quant` nodes) graph.

    python -m training.codenet.export --input-size 256 --out DIR [--weights random|briefly-trained]
        [--classes N] [--width 1.0] [--no-deformable] [--qonnx] [--frames 16] [--data auto]
        [--align-power 0.5]

Writes `DIR/codenet_float.onnx` (+ `DIR/codenet_qonnx.onnx` with --qonnx) and `DIR/export.json`
(config, calibration source, onnxruntime-vs-torch check). `--weights random` (the default) is
random init with real statistics: BatchNorm running stats and the dilation predictors calibrated
on real frames (training.codenet.network.calibrate). `briefly-trained` is not implemented yet.

Conditioning (`--align-power P`, default 0.5): before calibration the random weights are aligned
with the calibration frames (training.codenet.network.align_to_data: every conv's random weight a
becomes a C^P, C the covariance of its input patches, layer by layer). Plain random weights
(`--align-power 0`, the old behaviour) make a chaotic network once quantized: raising 16 input
bytes by 1 LSB changes ~95% of the 8-bit outputs of its onnxruntime QDQ model, by up to ~100 LSB,
so any 1-LSB rounding difference between two correct integer implementations explodes end to
end. Aligned (P = 0.5, 256x256, --no-deformable, QInt4 QDQ of training/codenet/quantize.py):
~1.7% of the outputs change, by 1 LSB, and activations keep a realistic 8-bit range (on a real
frame, per-tensor std 4-27 LSB, median 12; per-tensor max |q| 32-227, median 61).

The graph is written by hand with onnx.helper (not torch.onnx), op by op, so that the compiler
(runtime/compiler) sees fixed patterns:

* input `image` float (N, 3, S, S), RGB 0..255; outputs `heatmap` (N, classes, S/4, S/4) logits,
  `size` (N, 2, S/4, S/4), `offset` (N, 2, S/4, S/4).
* conv + BN: one `Conv` with BN folded into weight and bias; ReLU: `Relu`.
* ShuffleNetV2 unit: stride 1: `Split` (axis 1, two equal halves, opset-18 `num_outputs=2`)
  -> branch on output 1 -> `Concat`(output 0, branch); stride 2: two branches -> `Concat`;
  then the channel shuffle `Reshape` (N, 2, C/2, H, W) -> `Transpose` perm (0, 2, 1, 3, 4) ->
  `Reshape` (N, C, H, W) (shape constants use 0 = "copy the batch dimension").
* decoder block (deformable):
      z = Conv1x1(x) [C -> 1, bias];  r = Round(z);  d = Clip(r, 0, 7)
      offset = Add(Mul(d, A), B)      A, B: float (1, 18, 1, 1) constants
      y = DeformConv(x, W, offset, bias)  group = C, kernel 3x3, pads 1, strides 1, dilations 1
  with, for tap t = 3 * ky + kx (row-major), A[2t] = ky - 1, A[2t+1] = kx - 1, B = -A, i.e.
  dy = (ky - 1)(d - 1), dx = (kx - 1)(d - 1): DeformConv samples X at
  (r + (ky-1) + dy, c + (kx-1) + dx) = (r + (ky-1)d, c + (kx-1)d); the offsets are integers so
  its bilinear sampling is exact, and outside-image samples are 0.
  Then Conv1x1 (+ folded BN) -> Relu -> `Resize` nearest x2 (scales (1, 1, 2, 2),
  coordinate_transformation_mode "asymmetric", nearest_mode "floor": out (y, x) = in (y>>1, x>>1)).
  With --no-deformable the deformable part is a plain depthwise `Conv` (group = C, 3x3, pads 1).
* heads: Conv1x1 -> Relu -> depthwise Conv3x3 -> Relu -> Conv1x1 (bias), one chain per output.

QONNX (`--qonnx`): the same graph with QONNX `Quant` nodes (domain "qonnx.custom_op.general",
inputs x, scale, zeropoint, bitwidth; attributes signed, narrow, rounding_mode), as Brevitas
exports them. Semantics of every Quant emitted here (QONNX definition):
      q = clip(round(x / scale + zeropoint), qmin, qmax);   y = (q - zeropoint) * scale
      signed: qmin = -2^(b-1), qmax = 2^(b-1) - 1; unsigned: qmin = 0, qmax = 2^b - 1 (narrow = 0)
      round = round half to even (rounding_mode "ROUND")
* weights: one Quant on every Conv / DeformConv weight initializer, zeropoint 0, signed=1,
  narrow=0, per output channel scale of shape (Cout, 1, 1, 1) = r_o * max|w_o| / (2^(b-1) - 1)
  with the clip ratio r_o of least squared error (`training.codenet.qat.weight_scale_np`);
  b = 4 except the first layer (b = 8, as in CoDeNet). Biases stay float (the compiler turns
  them into int32 with scale s_in * s_w).
* activations (b = 8, zeropoint 0, scale a scalar from the float graph's max on the calibration
  frames): the input image (unsigned, scale 1: the bytes themselves); after every Relu (unsigned,
  scale max / 255); after every conv without ReLU (the depthwise convs of the backbone, the
  DeformConv / decoder depthwise, the head outputs: signed, scale max|x| / 127). All tensors
  that meet at a Concat (every branch output of one ShuffleNet stage, which the stride-1 units
  pass through) share one scale, so concat / split / shuffle stay on one integer grid.
* NOT quantized: the dilation predictor's output before Round (the engine computes d directly
  from its accumulator with requant + clamp 0..7), d itself (an integer 0..7), and the offset
  computation Mul/Add (exact small integers); Resize follows a Quant and keeps its grid.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from runtime.fileio import write_files_atomically
from training.codenet.network import MAX_DIL, align_to_data, build, calibrate
from training.codenet.qat import weight_scale_np

OPSET = 21
ALIGN_POWER = 0.5
QONNX_DOMAIN = "qonnx.custom_op.general"


def fold_conv_bn(m):
    """ConvBN -> (weight, bias) float32 numpy with BN folded (eval statistics)."""
    return _fold(m.conv.weight, None, m.bn)


def _fold(weight, bias, bn):
    w = weight.detach().double()
    b = bias.detach().double() if bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if bn is None:
        return w.float().numpy(), b.float().numpy()
    s = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    w = w * s.view(-1, 1, 1, 1)
    b = bn.bias.detach().double() + (b - bn.running_mean.detach().double()) * s
    return w.float().numpy(), b.float().numpy()


def offset_constants():
    """(A, B) float32 (1, 18, 1, 1): offset = d * A + B, DeformConv layout (dy, dx) per tap."""
    a = np.zeros(18, np.float32)
    for ky in range(3):
        for kx in range(3):
            t = ky * 3 + kx
            a[2 * t] = ky - 1
            a[2 * t + 1] = kx - 1
    return a.reshape(1, 18, 1, 1), (-a).reshape(1, 18, 1, 1)


class GraphBuilder:
    """Emits the CoDeNet graph. act_ranges None: float graph (records quantization points);
    act_ranges {group: max}: QONNX graph with Quant nodes."""

    def __init__(self, model, act_ranges=None, any_size=False):
        """any_size: declare the input (N, 3, H, W) with symbolic H, W (the graph runs at any
        multiple of 32; compile it with an explicit input size)."""
        self.model = model
        self.any_size = any_size
        self.nodes, self.inits = [], []
        self.qmode = act_ranges is not None
        self.ranges = act_ranges or {}
        self.qpoints = []          # (tensor name, group, signed) in emission order
        self.n = 0

    def _name(self, base):
        self.n += 1
        return "{}_{}".format(base, self.n)

    def const(self, arr, base):
        name = self._name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(self, op, inputs, base, n_out=1, domain=None, **attrs):
        name = self._name(base)
        outs = [name + ("_out" if n_out == 1 else "_out{}".format(i)) for i in range(n_out)]
        kw = dict(name=name, **attrs)
        if domain:
            kw["domain"] = domain
        self.nodes.append(helper.make_node(op, inputs, outs, **kw))
        return outs[0] if n_out == 1 else outs

    # --- quantization points -------------------------------------------------------------
    def act(self, x, group, signed):
        """Activation quantization point: records it (float), or inserts an 8-bit Quant (qonnx)."""
        self.qpoints.append((x, group, signed))
        if not self.qmode:
            return x
        if group == "input":
            scale = 1.0
        else:
            mx = max(float(self.ranges[group]), 1e-8)
            scale = mx / (127.0 if signed else 255.0)
        return self.quant(x, np.float32(scale), 8, signed, "act_" + group)

    def quant(self, x, scale, bits, signed, base):
        s = self.const(np.asarray(scale, np.float32), base + "_scale")
        z = self.const(np.zeros_like(np.asarray(scale, np.float32)), base + "_zeropt")
        b = self.const(np.float32(bits), base + "_bits")
        return self.node("Quant", [x, s, z, b], base + "_quant", domain=QONNX_DOMAIN,
                         signed=int(signed), narrow=0, rounding_mode="ROUND")

    def weight(self, w, base, bits=4):
        name = self.const(w.astype(np.float32), base + "_W")
        if not self.qmode:
            return name
        scale = weight_scale_np(w, bits)
        return self.quant(name, scale.reshape(-1, 1, 1, 1), bits, True, base + "_wq")

    # --- layers ---------------------------------------------------------------------------
    def conv(self, x, w, b, base, stride=1, pad=0, groups=1, bits=4):
        k = w.shape[-1]
        inputs = [x, self.weight(w, base, bits), self.const(b.astype(np.float32), base + "_B")]
        return self.node("Conv", inputs, base, kernel_shape=[k, k], strides=[stride, stride],
                         pads=[pad] * 4, group=groups, dilations=[1, 1])

    def convbn(self, x, m, base, group, bits=4):
        w, b = fold_conv_bn(m)
        c = m.conv
        y = self.conv(x, w, b, base, c.stride[0], c.padding[0], c.groups, bits)
        if m.relu:
            y = self.node("Relu", [y], base + "_relu")
        return self.act(y, group, signed=not m.relu)

    def shuffle(self, x, c, h, w, base):
        if not self.any_size:
            y = self.node("Reshape", [x, self.const(np.array([0, 2, c // 2, h, w], np.int64), base + "_s1")],
                          base + "_reshape")
            y = self.node("Transpose", [y], base + "_transpose", perm=[0, 2, 1, 3, 4])
            return self.node("Reshape", [y, self.const(np.array([0, c, h, w], np.int64), base + "_s2")],
                             base + "_reshape")
        # any size: the spatial dims come from Shape(x) (the compiler folds Shape/Concat to
        # constants; onnxruntime computes them)
        hw = self.node("Shape", [x], base + "_hw", start=2)
        s1 = self.node("Concat", [self.const(np.array([0, 2, c // 2], np.int64), base + "_s1"), hw],
                       base + "_s1cat", axis=0)
        y = self.node("Reshape", [x, s1], base + "_reshape")
        y = self.node("Transpose", [y], base + "_transpose", perm=[0, 2, 1, 3, 4])
        s2 = self.node("Concat", [self.const(np.array([0, c], np.int64), base + "_s2"), hw],
                       base + "_s2cat", axis=0)
        return self.node("Reshape", [y, s2], base + "_reshape")

    def unit(self, x, u, base, group, h, w):
        """ShuffleNetV2 unit; `group` is the stage's shared output quantization group."""
        b2 = u.branch2
        if u.stride == 1:
            x1, x2 = self.node("Split", [x], base + "_split", n_out=2, axis=1, num_outputs=2)
            y = self.convbn(x2, b2[0], base + "_b2pw1", base + "_b2pw1")
            y = self.convbn(y, b2[1], base + "_b2dw", base + "_b2dw")
            y = self.convbn(y, b2[2], base + "_b2pw2", group)
            cat = self.node("Concat", [x1, y], base + "_concat", axis=1)
        else:
            h, w = h // 2, w // 2
            y1 = self.convbn(x, u.branch1[0], base + "_b1dw", base + "_b1dw")
            y1 = self.convbn(y1, u.branch1[1], base + "_b1pw", group)
            y = self.convbn(x, b2[0], base + "_b2pw1", base + "_b2pw1")
            y = self.convbn(y, b2[1], base + "_b2dw", base + "_b2dw")
            y = self.convbn(y, b2[2], base + "_b2pw2", group)
            cat = self.node("Concat", [y1, y], base + "_concat", axis=1)
        c = b2[2].conv.out_channels * 2
        return self.shuffle(cat, c, h, w, base + "_shuffle"), h, w

    def decoder(self, x, blk, base):
        cin = blk.dw.in_channels
        w, b = _fold(blk.dw.weight, None, blk.dw_bn)
        if blk.deformable:
            wd = blk.dil.weight.detach().float().numpy()
            bd = blk.dil.bias.detach().float().numpy()
            z = self.conv(x, wd, bd, base + "_dil")
            r = self.node("Round", [z], base + "_dil_round")
            d = self.node("Clip", [r, self.const(np.float32(0), base + "_dmin"),
                                   self.const(np.float32(MAX_DIL), base + "_dmax")], base + "_dil_clip")
            a, bb = offset_constants()
            off = self.node("Mul", [d, self.const(a, base + "_offA")], base + "_off_mul")
            off = self.node("Add", [off, self.const(bb, base + "_offB")], base + "_off_add")
            inputs = [x, self.weight(w, base + "_deform"), off, self.const(b, base + "_deform_B")]
            y = self.node("DeformConv", inputs, base + "_deform", group=cin, kernel_shape=[3, 3],
                          pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], offset_group=1)
        else:
            y = self.conv(x, w, b, base + "_dw", 1, 1, cin)
        y = self.act(y, base + "_dw", signed=True)
        y = self.convbn(y, blk.pw, base + "_pw", base + "_pw")
        return self.node("Resize", [y, "", self.const(np.array([1, 1, 2, 2], np.float32), base + "_scales")],
                         base + "_upsample", mode="nearest", coordinate_transformation_mode="asymmetric",
                         nearest_mode="floor")

    def head(self, x, hd, base, out_name):
        y = self.convbn(x, hd.pw1, base + "_pw1", base + "_pw1")
        y = self.convbn(y, hd.dw, base + "_dw", base + "_dw")
        w = hd.out.weight.detach().float().numpy()
        b = hd.out.bias.detach().float().numpy()
        y = self.conv(y, w, b, base + "_out", bits=getattr(hd, "out_bits", 4))
        y = self.act(y, base + "_out", signed=True)
        assert self.nodes[-1].output[0] == y
        self.nodes[-1].output[0] = out_name          # the last node writes the graph output
        self.qpoints = [(out_name if t == y else t, g, sg) for t, g, sg in self.qpoints]

    def build(self):
        m = self.model
        s = m.input_size
        x = self.act("image", "input", signed=False)
        x = self.convbn(x, m.conv1, "conv1", "conv1", bits=8)
        h = w = s // 4
        for si, stage in enumerate(m.stages):
            for ui, u in enumerate(stage):
                x, h, w = self.unit(x, u, "stage{}_unit{}".format(si + 2, ui), "stage{}".format(si + 2), h, w)
        x = self.convbn(x, m.conv5, "conv5", "conv5")
        for bi, blk in enumerate(m.decoder):
            x = self.decoder(x, blk, "dec{}".format(bi))
        self.head(x, m.hm, "head_hm", "heatmap")
        self.head(x, m.wh, "head_wh", "size")
        self.head(x, m.reg, "head_reg", "offset")
        o = s // 4
        hw = ("H", "W") if self.any_size else (s, s)
        ohw = ("H/4", "W/4") if self.any_size else (o, o)
        inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, *hw])
        outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", c, *ohw])
                for n, c in (("heatmap", m.num_classes), ("size", 2), ("offset", 2))]
        graph = helper.make_graph(self.nodes, "codenet_qonnx" if self.qmode else "codenet_float",
                                  [inp], outs, self.inits)
        opsets = [helper.make_opsetid("", OPSET)]
        if self.qmode:
            opsets.append(helper.make_opsetid(QONNX_DOMAIN, 1))
        model = helper.make_model(graph, opset_imports=opsets, producer_name="pynq-deploy.training.codenet")
        model.ir_version = 10
        helper.set_model_props(model, {k: json.dumps(v) for k, v in m.config.items()})
        return model


def to_float_onnx(model):
    gb = GraphBuilder(model)
    onx = gb.build()
    onnx.checker.check_model(onx)
    return onx, gb.qpoints


def ort_session(onx, threads=2):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    data = onx if isinstance(onx, (bytes, str)) else onx.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def activation_ranges(float_onnx, qpoints, frames, batch=4):
    """Max (|x| for signed points) per quantization group over the frames, from onnxruntime."""
    from training.codenet.quantize import expose_outputs
    sess = ort_session(expose_outputs(float_onnx, sorted({t for t, _, _ in qpoints if t != "image"})))
    names = [o.name for o in sess.get_outputs()]
    tmax = {}
    for i in range(0, len(frames), batch):
        outs = sess.run(None, {"image": frames[i:i + batch]})
        for n, v in zip(names, outs):
            tmax[n] = max(tmax.get(n, 0.0), float(np.abs(v).max()))
    ranges = {}
    for t, g, _ in qpoints:
        if t == "image":
            continue
        ranges[g] = max(ranges.get(g, 0.0), tmax[t])
    return ranges


def to_qonnx(model, float_onnx, qpoints, frames):
    ranges = activation_ranges(float_onnx, qpoints, frames)
    gb = GraphBuilder(model, act_ranges=ranges)
    onx = gb.build()
    onnx.checker.check_model(onx)
    return onx, ranges


def qonnx_to_reference(qonnx_model):
    """Replace every QONNX Quant by standard ops (Div, Add, Round, Clip, Sub, Mul) so that
    onnxruntime can run the QONNX graph (reference semantics, for tests and checks)."""
    m = onnx.ModelProto()
    m.CopyFrom(qonnx_model)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    nodes = []
    for nd in m.graph.node:
        if nd.op_type != "Quant" or nd.domain != QONNX_DOMAIN:
            nodes.append(nd)
            continue
        a = {at.name: helper.get_attribute_value(at) for at in nd.attribute}
        bits = int(inits[nd.input[3]])
        signed, narrow = int(a.get("signed", 1)), int(a.get("narrow", 0))
        if a.get("rounding_mode", "ROUND") not in ("ROUND", b"ROUND"):
            raise ValueError("only rounding_mode ROUND is supported here")
        qmin = -(2 ** (bits - 1)) + narrow if signed else 0
        qmax = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1 - narrow
        x, s, z = nd.input[:3]
        p = nd.output[0]                     # unique even where nodes have no name
        lo, hi = p + "_qmin", p + "_qmax"
        m.graph.initializer.extend([numpy_helper.from_array(np.float32(qmin), lo),
                                    numpy_helper.from_array(np.float32(qmax), hi)])
        nodes += [helper.make_node("Div", [x, s], [p + "_div"]),
                  helper.make_node("Add", [p + "_div", z], [p + "_addz"]),
                  helper.make_node("Round", [p + "_addz"], [p + "_round"]),
                  helper.make_node("Clip", [p + "_round", lo, hi], [p + "_clip"]),
                  helper.make_node("Sub", [p + "_clip", z], [p + "_subz"]),
                  helper.make_node("Mul", [p + "_subz", s], [nd.output[0]])]
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    used = {i for nd in nodes for i in nd.input}
    keep_inits = [t for t in m.graph.initializer if t.name in used]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep_inits)
    keep = [o for o in m.opset_import if o.domain != QONNX_DOMAIN]
    del m.opset_import[:]
    m.opset_import.extend(keep)
    return m


def torch_outputs(model, frames):
    with torch.no_grad():
        return [t.numpy() for t in model(torch.as_tensor(frames))]


def check_against_torch(model, onx, frames, batch=2):
    sess = ort_session(onx)
    worst = {"heatmap": 0.0, "size": 0.0, "offset": 0.0}
    for i in range(0, len(frames), batch):
        f = frames[i:i + batch]
        ref = torch_outputs(model, f)
        got = sess.run(["heatmap", "size", "offset"], {"image": f})
        for k, r, g in zip(worst, ref, got):
            worst[k] = max(worst[k], float(np.abs(r - g).max()))
    return worst


def _save(onx, path):
    path = Path(path)
    write_files_atomically(path.parent, [(path.name, lambda f: f.write(onx.SerializeToString()))])


def make_model(args, frames):
    model = build(num_classes=args.classes, width=args.width, input_size=args.input_size,
                  deformable=not args.no_deformable, seed=args.seed)
    if args.weights == "briefly-trained":
        raise SystemExit("--weights briefly-trained is not implemented yet; use random (BN calibrated)")
    align_to_data(model, frames, args.align_power)
    calibrate(model, frames)
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input-size", type=int, default=256)
    ap.add_argument("--out", required=True)
    ap.add_argument("--weights", choices=("random", "briefly-trained"), default="random")
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--no-deformable", action="store_true", help="plain depthwise 3x3 in the decoder")
    ap.add_argument("--qonnx", action="store_true", help="also write codenet_qonnx.onnx (W4A8 Quant nodes)")
    ap.add_argument("--frames", type=int, default=16, help="real frames for BN / activation calibration")
    ap.add_argument("--data", choices=("auto", "installed", "samples"), default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--align-power", type=float, default=ALIGN_POWER,
                    help="align the random weights with the calibration frames (w = a C^P, see "
                         "network.align_to_data) for a well-conditioned quantized network; 0: plain "
                         "random weights (chaotic once quantized)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-torch", action="store_true", help="also write codenet.pt (state dict + config)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from training.data import calibration_frames, installed
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    src = args.data if args.data != "auto" else ("installed" if installed() else "samples")
    frames = calibration_frames(args.frames, args.input_size, source=src)
    model = make_model(args, frames)
    onx, qpoints = to_float_onnx(model)
    _save(onx, out / "codenet_float.onnx")
    check = check_against_torch(model, onx, frames[: min(4, len(frames))])
    report = dict(config=model.config, weights=args.weights, seed=args.seed, align_power=args.align_power,
                  calibration_frames=len(frames),
                  calibration_source=src, opset=OPSET, float_vs_torch_max_abs=check,
                  files=["codenet_float.onnx"])
    print("float ONNX vs torch, max |diff| on {} real frames: {}".format(min(4, len(frames)), check))
    if args.qonnx:
        qonx, ranges = to_qonnx(model, onx, qpoints, frames)
        _save(qonx, out / "codenet_qonnx.onnx")
        report["files"].append("codenet_qonnx.onnx")
        report["activation_max"] = ranges
        ref = ort_session(qonnx_to_reference(qonx))
        f = frames[:2]
        got = ref.run(["heatmap"], {"image": f})[0]
        flt = torch_outputs(model, f)[0]
        report["qonnx_reference_heatmap_max_abs_vs_float"] = float(np.abs(got - flt).max())
        report["float_heatmap_max_abs"] = float(np.abs(flt).max())
        report["qonnx_reference_heatmap_corr_vs_float"] = float(np.corrcoef(got.ravel(), flt.ravel())[0, 1])
    if args.save_torch:
        torch.save({"config": model.config, "state_dict": model.state_dict()}, out / "codenet.pt")
        report["files"].append("codenet.pt")
    with open(out / "export.json", "w") as fh:
        json.dump(report, fh, indent=1)
    print("wrote", ", ".join(str(out / f) for f in report["files"]))
    bad = {k: v for k, v in check.items() if v > 1e-3}
    if bad:
        print("ERROR: onnxruntime output differs from torch: {}".format(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
