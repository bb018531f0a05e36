"""Static QDQ quantization of the exported float CoDeNet with onnxruntime's own quantizer.

    python -m training.codenet.quantize --float DIR/codenet_float.onnx --out DIR/codenet_qdq.onnx
        [--frames 16] [--data auto|installed|samples] [--per-tensor] [--method minmax|percentile|entropy]
        [--weight-type int8|int4] [--share-concat-scales]

`onnxruntime.quantization.quantize_static`, QuantFormat.QDQ, activations QUInt8, weights QInt8
(per channel by default; `--weight-type int4`: QInt4, opset-21 INT4 initializers), calibrated on
real frames (training.data.calibration_frames) through a CalibrationDataReader.
`--share-concat-scales`: all tensors joined by a Concat / Split / channel shuffle (one ShuffleNet
stage) get one (rmin, rmax), the union of their calibrated ranges, passed to ORT through
`extra_options={"TensorQuantOverrides": ...}`; the CoDeNet compiler then needs no requant copy.

The recipe the CoDeNet engine runs (W4A8; 8-bit weights overflow the engine's 24-bit accumulator
in the 1024-channel decoder layer and the compiler refuses them):

    python -m training.codenet.export --input-size 256 --no-deformable --out DIR
    python -m training.codenet.quantize --float DIR/codenet_float.onnx --out DIR/codenet_qdq.onnx \
        --weight-type int4 --share-concat-scales
    pynq-deploy compile DIR/codenet_qdq.onnx -o DIR/compiled
    pynq-deploy run DIR/compiled --input X.npy --output Y.npz     # X: float (N, 3, 256, 256), 0..255

(tests/test_codenet_compiler.py: the compiled program agrees with onnxruntime's execution of that
QDQ model within 1 LSB on >= 99% of the output values on real frames.)

Writes DIR/codenet_qdq.onnx and a JSON report next to it
(`<out>.json`): for every op type, how many nodes there are and how many have their inputs /
outputs in QDQ form, plus the accuracy of the QDQ graph against the float graph (onnxruntime).

The dilation chain of the deformable decoder (Conv C->1 -> Round -> Clip -> Mul -> Add ->
DeformConv offset input) is excluded from quantization by default (`--quantize-dilation` to
let ORT try): its Conv output feeds Round, and d, offset are exact small integers that an 8-bit
scale from calibration would only perturb. DeformConv is not in ORT's QDQ registry: its data
input and weight stay float (ORT leaves a DequantizeLinear in front of it).
"""
import argparse
import json
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import onnx

from runtime.fileio import write_files_atomically


class FrameReader:
    """onnxruntime CalibrationDataReader over real frames (one frame per batch)."""

    def __init__(self, frames, input_name="image"):
        self.frames = frames
        self.input_name = input_name
        self.i = 0

    def get_next(self):
        if self.i >= len(self.frames):
            return None
        x = self.frames[self.i:self.i + 1]
        self.i += 1
        return {self.input_name: x}

    def rewind(self):
        self.i = 0


def _reader_class():
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(FrameReader, CalibrationDataReader):
        pass
    return Reader


def dilation_chain_nodes(model):
    """Names of the nodes computing DeformConv offsets (Conv -> Round -> Clip -> Mul -> Add)."""
    prod = {o: n for n in model.graph.node for o in n.output}
    names = set()
    for n in model.graph.node:
        if n.op_type != "DeformConv" or len(n.input) < 3:
            continue
        stack = [n.input[2]]
        while stack:
            t = stack.pop()
            p = prod.get(t)
            if p is None or p.name in names:
                continue
            if p.op_type in ("Add", "Mul", "Clip", "Round"):
                names.add(p.name)
                stack.extend(p.input)
            elif p.op_type == "Conv":
                names.add(p.name)        # the dilation predictor; stop here
    return sorted(names)


def qdq_report(float_model, qdq_model):
    """Per op type of the float graph: count, and how many nodes of that type in the QDQ graph
    read all their (non-empty) inputs from DequantizeLinear / have every output consumed by a
    QuantizeLinear."""
    prod = {o: n for n in qdq_model.graph.node for o in n.output}
    cons = defaultdict(list)
    for n in qdq_model.graph.node:
        for i in n.input:
            cons[i].append(n)
    total = Counter(n.op_type for n in float_model.graph.node)
    rep = {}
    for op in sorted(total):
        nodes = [n for n in qdq_model.graph.node if n.op_type == op]
        in_q = out_q = 0
        for n in nodes:
            ins = [i for i in n.input if i]
            if ins and all(prod.get(i) is not None and prod[i].op_type == "DequantizeLinear" for i in ins):
                in_q += 1
            outs = [o for o in n.output if o]
            if outs and all(cons[o] and all(c.op_type == "QuantizeLinear" for c in cons[o]) for o in outs):
                out_q += 1
        first_in_dq = sum(1 for n in nodes if n.input and prod.get(n.input[0]) is not None
                          and prod[n.input[0]].op_type == "DequantizeLinear")
        rep[op] = dict(float_nodes=total[op], qdq_graph_nodes=len(nodes), all_inputs_dequantized=in_q,
                       data_input_dequantized=first_in_dq, outputs_quantized=out_q)
    extra = Counter(n.op_type for n in qdq_model.graph.node if n.op_type not in total)
    return rep, dict(extra)


def compare(float_path, qdq_path, frames):
    from training.codenet.export import ort_session
    fs, qs = ort_session(str(float_path)), ort_session(str(qdq_path))
    out = {}
    names = [o.name for o in fs.get_outputs()]
    acc = defaultdict(list)
    for i in range(len(frames)):
        f = frames[i:i + 1]
        a, b = fs.run(names, {"image": f}), qs.run(names, {"image": f})
        for n, x, y in zip(names, a, b):
            acc[n].append((x.ravel(), y.ravel()))
    for n in names:
        x = np.concatenate([p[0] for p in acc[n]])
        y = np.concatenate([p[1] for p in acc[n]])
        out[n] = dict(max_abs_diff=float(np.abs(x - y).max()), float_max_abs=float(np.abs(x).max()),
                      corr=float(np.corrcoef(x, y)[0, 1]))
    return out


def concat_groups(model):
    """Groups (lists of tensor names, > 1) joined by Concat / Split / Reshape / Transpose / Slice:
    one quantization range per group keeps concat, split and shuffle on one integer grid."""
    parent = {}

    def find(a):
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for n in model.graph.node:
        if n.op_type == "Concat":
            for i in n.input:
                parent[find(i)] = find(n.output[0])
        elif n.op_type in ("Split", "Reshape", "Transpose", "Slice"):
            for o in n.output:
                parent[find(o)] = find(n.input[0])
    groups = {}
    for t in sorted(parent):
        groups.setdefault(find(t), []).append(t)
    return [g for g in groups.values() if len(g) > 1]


def expose_outputs(model, names):
    """A copy of `model` whose graph also outputs the (float) tensors `names`."""
    from onnx import TensorProto, helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(helper.make_tensor_value_info(t, TensorProto.FLOAT, None)
                          for t in names if t not in have)
    return m


def shared_concat_overrides(model, frames, input_name="image"):
    """TensorQuantOverrides giving every tensor of a concat group the group's (rmin, rmax): the
    min / max over the group (and 0) of the float graph's values on `frames` (onnxruntime)."""
    from training.codenet.export import ort_session
    inits = {i.name for i in model.graph.initializer}
    groups = concat_groups(model)
    sess = ort_session(expose_outputs(model, sorted({t for g in groups for t in g if t not in inits})))
    outn = [o.name for o in sess.get_outputs()]
    lo, hi = {}, {}
    for i in range(len(frames)):
        for n, v in zip(outn, sess.run(None, {input_name: frames[i:i + 1]})):
            lo[n] = min(lo.get(n, 0.0), float(v.min()))
            hi[n] = max(hi.get(n, 0.0), float(v.max()))
    ov = {}
    for g in groups:
        ts = [t for t in g if t in lo]
        for t in ts:
            ov[t] = [{"rmin": np.float32(min(lo[u] for u in ts)), "rmax": np.float32(max(hi[u] for u in ts))}]
    return ov


def quantize(float_path, out_path, frames, per_channel=True, method="minmax", quantize_dilation=False,
             weight_type="int8", share_concat_scales=False):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    model = onnx.load(str(float_path))
    exclude = [] if quantize_dilation else dilation_chain_nodes(model)
    extra = {}
    if share_concat_scales:
        extra["TensorQuantOverrides"] = shared_concat_overrides(model, frames, model.graph.input[0].name)
    wtype = {"int8": QuantType.QInt8, "int4": QuantType.QInt4}[weight_type]
    meth = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy}[method]
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / "q.onnx"
        quantize_static(str(float_path), str(tmp), _reader_class()(frames, model.graph.input[0].name),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=wtype, per_channel=per_channel, calibrate_method=meth,
                        nodes_to_exclude=exclude, extra_options=extra)
        q = onnx.load(str(tmp))
    write_files_atomically(out_path.parent, [(out_path.name, lambda f: f.write(q.SerializeToString()))])
    return model, q, exclude


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--float", dest="float_path", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--data", choices=("auto", "installed", "samples"), default="auto")
    ap.add_argument("--per-tensor", action="store_true")
    ap.add_argument("--method", choices=("minmax", "percentile", "entropy"), default="minmax")
    ap.add_argument("--quantize-dilation", action="store_true",
                    help="do not exclude the dilation / offset chain from quantization")
    ap.add_argument("--weight-type", choices=("int8", "int4"), default="int8",
                    help="int4: QInt4 weights (opset 21), the engine's W4A8")
    ap.add_argument("--share-concat-scales", action="store_true",
                    help="one activation range per concat / split / shuffle group (TensorQuantOverrides)")
    ap.add_argument("--eval-frames", type=int, default=4)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(2)
    from training.data import calibration_frames
    m = onnx.load(args.float_path, load_external_data=False)
    shape = m.graph.input[0].type.tensor_type.shape.dim
    size = shape[2].dim_value
    frames = calibration_frames(args.frames, size, source=args.data)
    fm, qm, exclude = quantize(args.float_path, args.out, frames, per_channel=not args.per_tensor,
                               method=args.method, quantize_dilation=args.quantize_dilation,
                               weight_type=args.weight_type, share_concat_scales=args.share_concat_scales)
    rep, extra = qdq_report(fm, qm)
    evf = calibration_frames(args.frames + args.eval_frames, size, source=args.data)[args.frames:]
    acc = compare(args.float_path, args.out, evf)
    report = dict(float=str(args.float_path), out=str(args.out), frames=args.frames,
                  per_channel=not args.per_tensor, method=args.method, weight_type=args.weight_type,
                  share_concat_scales=args.share_concat_scales, excluded_nodes=exclude,
                  op_types=rep, added_op_types=extra, qdq_vs_float=acc)
    with open(str(args.out) + ".json", "w") as fh:
        json.dump(report, fh, indent=1)
    print("wrote", args.out)
    print("{:<18}{:>7}{:>10}{:>10}{:>10}".format("op", "nodes", "all-in-DQ", "data-DQ", "out-Q"))
    for op, r in rep.items():
        print("{:<18}{:>7}{:>10}{:>10}{:>10}".format(op, r["float_nodes"], r["all_inputs_dequantized"],
                                                    r["data_input_dequantized"], r["outputs_quantized"]))
    print("added:", extra)
    print("excluded:", len(exclude), "nodes")
    for n, a in acc.items():
        print("{}: corr {:.4f}, max|diff| {:.3g} (float max {:.3g})".format(n, a["corr"], a["max_abs_diff"],
                                                                          a["float_max_abs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
