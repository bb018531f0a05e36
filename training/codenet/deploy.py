"""From a QAT-trained CoDeNet to a shipped detector: QONNX export, compile, held-out AP of the
deployed integer model, metadata.

    python -m training.codenet.deploy --ckpt DIR/codenet_qat.pt --out DIR [--ship NAME]
        [--train-time-s SECONDS]

writes DIR/codenet_qonnx.onnx and DIR/compiled/ (the engine program, model.json with
meta.detector: classes, input size, training data and split, held-out AP, teacher and threshold),
and with --ship copies both to overlays/codenet/models/NAME/ (the ONNX beside the compiled program,
so an engine change needs only `pynq-deploy compile` again).
"""
import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import torch

from runtime.compiler.codenet_compiler import compile_onnx
from runtime.fileio import write_files_atomically
from runtime.vision.classes import VOC_CLASSES

from . import detdata
from .export import GraphBuilder

ONNX_FILE = "codenet_qonnx.onnx"


def export_qonnx(model):
    """The QAT model as QONNX with exactly its training scales (activation ranges of model.qs)."""
    model = model.cpu().eval()
    onx = GraphBuilder(model, act_ranges=model.qs.ranges, any_size=True).build()
    onnx.checker.check_model(onx)
    return onx


def teacher_info():
    from training.teacher import labels as L
    return {"teacher": "MobileNetV3-CenterNet (COCO) of npm @vladmandic/human@3.3.6, converted to ONNX",
            "score_threshold": L.THRESHOLD, "ignore_band": [L.LOW, L.THRESHOLD], "nms_iou": L.NMS_IOU,
            "coco_to_voc": "COCO classes renamed onto VOC's 20 (truck -> car), the rest dropped"}


def deployed_predict(cm, samples, backend="numpy", score=0.01):
    """Detections of the compiled model through runtime.Detector on the simulated PL."""
    import cv2
    from runtime.detector import Detector
    dets = []
    with Detector(cm, pl="sim", backend=backend, score_threshold=score) as det:
        for s in samples:
            d = det.detect(cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR))
            dets.append((np.array([x.box for x in d], np.float32).reshape(-1, 4),
                         np.array([x.score for x in d], np.float32), np.array([x.class_id for x in d], np.int64)))
    return dets


def dilation_histogram(model, samples, batch=4):
    """Histogram of the dilations d (0..7) that the deformable layers use on `samples`, per layer
    and in total, from the integer forward (the same integers as the engine computes)."""
    from runtime.vision.detect_pre import resize_square
    from .intforward import IntegerCoDeNet
    net = IntegerCoDeNet(model)
    s = model.input_size
    per_layer = None
    for i in range(0, len(samples), batch):
        x = np.stack([resize_square(smp.image, s).transpose(2, 0, 1) for smp in samples[i:i + batch]])
        net(x)
        counts = [np.bincount(d.numpy().ravel(), minlength=8)[:8] for d in net.dilations]
        per_layer = counts if per_layer is None else [a + c for a, c in zip(per_layer, counts)]
    return {"per_layer": [{str(k): int(v) for k, v in enumerate(c)} for c in per_layer],
            "total": {str(k): int(v) for k, v in enumerate(sum(per_layer))}, "frames": len(samples)}


def export_and_compile(model, out, held, desc, train_time_s=None, float_eval=None, qat_eval=None,
                       compile_model=True, log=print, ship=None):
    from training.codenet.train_detector import evaluate_sets
    out = Path(out)
    onx = export_qonnx(model)
    write_files_atomically(out, [(ONNX_FILE, lambda f: f.write(onx.SerializeToString()))])
    log("wrote {}".format(out / ONNX_FILE))
    report = {"config": model.config, "data": desc, "train_time_s": train_time_s,
              "heldout_ap50": {"float_student": float_eval, "qat_student": qat_eval}}
    if not compile_model:
        return report
    cm = compile_onnx(str(out / ONNX_FILE), input_size=int(model.input_size), class_names=list(VOC_CLASSES))
    log("compiled: {} engine layers, arena {} bytes".format(cm.n_layers, cm.arena_size))
    cm.meta["detector"] = {"classes": list(VOC_CLASSES), "input_size": int(model.input_size)}
    deployed = evaluate_sets(lambda s: deployed_predict(cm, s), held)
    report["heldout_ap50"]["deployed_w4a8"] = deployed
    from training.codenet.train_detector import summary
    log("deployed W4A8 (numpy engine) held-out AP50: " + summary(deployed))
    first = next(iter(held.values()))
    report["dilation_histogram"] = dilation_histogram(model, first[::20])
    log("dilations d on {} held-out frames: {}".format(report["dilation_histogram"]["frames"],
                                                       report["dilation_histogram"]["total"]))
    cm.meta["detector"].update({
        "training_data": desc, "heldout_ap50": {k: {"ap50": v["ap50"], "map50": v["map50"], "frames": v["frames"]}
                                                for k, v in deployed.items()},
        "train_time_s": train_time_s, "onnx": ONNX_FILE,
        "dilation_histogram_heldout": report["dilation_histogram"],
        "onnx_sha256": cm.meta["source"]["sha256"],
        **teacher_info()})
    cm.save(out / "compiled")
    log("saved {}".format(out / "compiled"))
    if ship:
        ship_model(out, ship)
        log("shipped to {}".format(ship))
    return report


def ship_model(out, dest):
    """Copy DIR/compiled/* and the ONNX into dest (a models/<name> folder)."""
    out, dest = Path(out), Path(dest)
    src = out / "compiled"
    files = [(p.name, p) for p in sorted(src.iterdir()) if p.is_file()] + [(ONNX_FILE, out / ONNX_FILE)]
    write_files_atomically(dest, [(n, (lambda p: lambda f: f.write(p.read_bytes()))(p)) for n, p in files])
    return dest


def load_qat_model(ckpt):
    from .network import CoDeNet
    from .qat import enable_qat
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    cfg = dict(state["config"])
    model = CoDeNet(**cfg)
    model.load_state_dict(state["model"])
    enable_qat(model, state["ranges"])
    model.qs.active = True
    return model.eval(), state


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ship", help="also copy the result to this models/<name> folder")
    ap.add_argument("--train-time-s", type=float, help="training time of the checkpoint's whole lineage "
                                                      "(recorded in the model's metadata)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    from .train_detector import evaluate_sets, predict_torch, summary
    model, state = load_qat_model(args.ckpt)
    held = {}
    vids, _ = detdata.default_sources()
    for v in vids:
        held[v.name] = detdata.video_samples(v, "heldout")
    cpu = torch.device("cpu")
    evals = {}
    if state.get("float_model"):                  # the float student it was quantized from
        float_model = copy.deepcopy(model)
        float_model.load_state_dict(state["float_model"])
        float_model.qs.active = False
        evals["float_eval"] = evaluate_sets(lambda s: predict_torch(float_model, s, model.input_size, cpu), held)
        print("float student held-out AP50: " + summary(evals["float_eval"]))
    evals["qat_eval"] = evaluate_sets(lambda s: predict_torch(model, s, model.input_size, cpu), held)
    print("QAT student held-out AP50: " + summary(evals["qat_eval"]))
    report = export_and_compile(model, args.out, held, state.get("data"), train_time_s=args.train_time_s,
                                ship=args.ship, **evals)
    write_files_atomically(Path(args.out), [("deploy_report.json", lambda f: f.write(json.dumps(report, indent=1).encode()))])
    return 0


if __name__ == "__main__":
    sys.exit(main())
