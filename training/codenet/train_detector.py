"""Train the CoDeNet-1x detector on teacher-labelled real frames: float, then W4A8 QAT, export,
compile, held-out AP.

    python -m training.codenet.train_detector --out DIR [--input-size 256] [--float-iters N]
        [--qat-iters N] [--batch 16] [--video V ...] [--photos P ...] [--voc VOCdevkit]
        [--init MODEL.pt] [--resume] [--device auto|cpu|cuda]

Data: every video's train split (vtest.avi 0..635, others the first 80 %) and the photos, labelled
by the teacher (training.teacher; `make teacher`), or a VOCdevkit's true labels with --voc.
Phases, each checkpointed to DIR/checkpoint.pt every --ckpt-every iterations (--resume goes on
from it): 1. float training (AdamW, cosine learning rate); 2. QAT: activation ranges calibrated,
BatchNorm frozen and folded, 4-bit weights (8-bit first layer) and 8-bit activations fake-quantized
exactly as exported (training.codenet.qat). Then DIR/codenet_qonnx.onnx (QONNX) is written,
compiled for the engine into DIR/compiled/ and evaluated on the held-out frames: float student,
QAT student and the deployed integer model (numpy engine) -> DIR/train_report.json.
"""
import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")     # torch on 2 busy cores

import numpy as np
import torch

from runtime.fileio import write_files_atomically
from runtime.vision.classes import VOC_CLASSES
from runtime.vision.centernet import decode

from . import detdata
from .network import CoDeNet
from .qat import a2q_project, calibrate_ranges, enable_qat, freeze_bn

WH_WEIGHT = 0.1
OFF_WEIGHT = 1.0
EVAL_SCORE = 0.01                  # decode threshold for AP (low: AP integrates over all scores)


# ---------------------------------------------------------------------------------------------
# losses

def focal_loss(logits, gt, weight):
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = gt.eq(1).float()
    neg = 1 - pos
    pos_l = torch.log(p) * (1 - p) ** 2 * pos
    neg_l = torch.log(1 - p) * p ** 2 * (1 - gt) ** 4 * neg
    n = pos.sum().clamp(min=1)
    return -((pos_l + neg_l) * weight).sum() / n


def gather_l1(pred, ind, target, mask):
    n, c, h, w = pred.shape
    p = pred.reshape(n, c, h * w).gather(2, ind.unsqueeze(1).expand(n, c, ind.shape[1])).transpose(1, 2)
    m = mask.unsqueeze(2)
    return (torch.abs(p - target) * m).sum() / (m.sum() * c + 1e-4)


def distill_loss(out, teacher_out, batch):
    """Heat-map distillation from the float student during QAT: squared difference of the class
    probabilities, normalised like the focal loss (per ground-truth object)."""
    diff = torch.sigmoid(out[0]) - torch.sigmoid(teacher_out[0])
    return (diff * diff).sum() / batch["hm"].eq(1).float().sum().clamp(min=1)


def detection_loss(out, batch):
    hm, wh, off = out
    lh = focal_loss(hm, batch["hm"], batch["hm_weight"])
    lw = gather_l1(wh, batch["ind"], batch["wh"], batch["mask"])
    lo = gather_l1(off, batch["ind"], batch["off"], batch["mask"])
    return lh + WH_WEIGHT * lw + OFF_WEIGHT * lo, (float(lh.detach()), float(lw.detach()), float(lo.detach()))


# ---------------------------------------------------------------------------------------------
# data

def load_data(args):
    """(train samples, {held-out set name: samples}, sampling weights, description)."""
    if args.voc:
        train = detdata.voc_samples(args.voc, "train")
        return train, {"voc_val": detdata.voc_samples(args.voc, "heldout")}, None, {"voc": str(args.voc)}
    vids, photos = detdata.default_sources()
    if args.video:
        vids = [Path(v) for v in args.video]
    if args.photos is not None:
        photos = [Path(p) for p in args.photos]
    train, held, weights, desc = [], {}, [], {"videos": {}, "photos": [p.name for p in photos]}
    for v in vids:
        frames = detdata.read_video(v)
        tr = detdata.video_samples(v, "train", frames=frames)
        ho = detdata.video_samples(v, "heldout", frames=frames)
        train += tr
        weights += [1.0] * len(tr)
        held[v.name] = ho
        r_tr = detdata.split_range(len(frames), v, "train")
        desc["videos"][v.name] = {"frames": len(frames), "train": [r_tr.start, r_tr.stop - 1],
                                  "heldout": [r_tr.stop, len(frames) - 1]}
    if photos:
        ph = detdata.image_samples(photos)
        train += ph
        weights += [args.photo_weight] * len(ph)
    return train, held, weights, desc


def to_torch(batch, device):
    out = {k: torch.as_tensor(v, device=device) for k, v in batch.items()}
    out["image"] = out["image"].contiguous(memory_format=torch.channels_last)   # ~1.8x faster on CPU
    return out


# ---------------------------------------------------------------------------------------------
# evaluation

@torch.no_grad()
def predict_torch(model, samples, size, device, batch=16):
    """Float (or fake-quantized) student -> per-sample detections in the sample's own pixels."""
    model.eval()
    dets = []
    for i in range(0, len(samples), batch):
        chunk = samples[i:i + batch]
        x = np.stack([detdata.augment(s, size, None, train=False)[0].transpose(2, 0, 1) for s in chunk])
        hm, wh, off = model(torch.as_tensor(x, dtype=torch.float32, device=device).contiguous(
            memory_format=torch.channels_last))
        for k, s in enumerate(chunk):
            b, sc, c = decode(hm[k].cpu().numpy(), wh[k].cpu().numpy(), off[k].cpu().numpy(),
                              score_threshold=EVAL_SCORE)
            h, w = s.image.shape[:2]
            b = b * np.array([w / size, h / size, w / size, h / size], np.float32)
            dets.append((b, sc, c))
    return dets


def ground_truth(samples):
    """Teacher labels as ground truth: the confident boxes only (the ignore band is left out)."""
    return [{"boxes": s.boxes[~s.ignore], "classes": s.classes[~s.ignore]} for s in samples]


def evaluate_sets(pred_fn, held):
    from runtime.measure.detection_eval import evaluate_ap50
    return {name: evaluate_ap50(ground_truth(smp), pred_fn(smp), VOC_CLASSES) for name, smp in held.items()}


def summary(res):
    return "; ".join("{}: {}".format(n, ", ".join("{} {:.3f}".format(c, v) for c, v in r["ap50"].items()
                                                  if c in ("person", "car", "bicycle")))
                     for n, r in res.items())


# ---------------------------------------------------------------------------------------------
# training

def lr_at(it, total, base, warmup=200):
    if it < warmup:
        return base * (it + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, (it - warmup) / max(1, total - warmup)))) + base * 0.01


def save_ckpt(path, state):
    tmp = Path(str(path) + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def run_phase(name, model, opt, batcher, iters, base_lr, device, state, ckpt, args, log, probe=None,
              teacher=None):
    start = state.get(name + "_iter", 0)
    t0 = time.time()
    for it in range(start, iters):
        lr = lr_at(it, iters, base_lr, warmup=min(200 if name == "float" else 20, max(1, iters // 10)))
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        if name == "qat":
            freeze_bn(model)
        b = to_torch(batcher.next(), device)
        out = model(b["image"])
        loss, parts = detection_loss(out, b)
        if teacher is not None:
            with torch.no_grad():
                teacher_out = teacher(b["image"])
            loss = loss + args.distill * distill_loss(out, teacher_out, b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        if (it + 1) % args.log_every == 0 or it == start:
            el = time.time() - t0
            log("{} it {}/{} loss {:.3f} (hm {:.3f} wh {:.3f} off {:.3f}) lr {:.2e} {:.2f} s/it".format(
                name, it + 1, iters, float(loss), *parts, lr, el / (it + 1 - start)))
        if probe is not None and args.eval_every and (it + 1) % args.eval_every == 0:
            log("{} it {}: quick held-out AP50 (every 4th frame): {}".format(name, it + 1, probe()))
        if (it + 1) % args.ckpt_every == 0 or it + 1 == iters:
            state[name + "_iter"] = it + 1
            state["model"] = model.state_dict()
            state["opt_" + name] = opt.state_dict()
            state["ranges"] = dict(model.qs.ranges) if hasattr(model, "qs") else None
            save_ckpt(ckpt, state)
    return model


def device_of(arg):
    if arg == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(arg)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--input-size", type=int, default=256)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--float-iters", type=int, default=3000)
    ap.add_argument("--qat-iters", type=int, default=600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--head-out-bits", type=int, choices=[4, 8], default=8,
                    help="weight bits of the three heads' output 1x1 convs (the rest: 4, the first layer 8)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--qat-lr", type=float, default=2e-4)
    ap.add_argument("--distill", type=float, default=1.0,
                    help="weight of the heat-map distillation from the float student during QAT (0: off)")
    ap.add_argument("--video", nargs="*", help="videos to train on (default: vtest.avi and bikes.mp4)")
    ap.add_argument("--photos", nargs="*", help="photos to train on (default: the installed photos)")
    ap.add_argument("--photo-weight", type=float, default=4.0, help="sampling weight of a photo vs a frame")
    ap.add_argument("--voc", help="a VOCdevkit folder: train on its true labels instead of the teacher's")
    ap.add_argument("--init", help="start from this model .pt (its float weights; e.g. a run's "
                                   "codenet_float.pt or codenet_qat.pt): fine-tuning, another input size")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=100, help="quick held-out AP every N iterations (0: off)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-compile", action="store_true", help="stop after the QONNX export")
    ap.add_argument("--ship", default=None, metavar="DIR",
                    help="also copy the compiled model and its ONNX to DIR (e.g. overlays/codenet/models/NAME)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = device_of(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "train.log", "a")

    def log(msg):
        line = "[{}] {}".format(time.strftime("%H:%M:%S"), msg)
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    torch.manual_seed(args.seed)
    train, held, weights, desc = load_data(args)
    log("train samples {}, held out {}".format(len(train), {k: len(v) for k, v in held.items()}))
    model = CoDeNet(num_classes=len(VOC_CLASSES), width=args.width, input_size=args.input_size,
                    head_out_bits=args.head_out_bits)
    model = model.to(device, memory_format=torch.channels_last)
    enable_qat(model)
    ckpt = out / "checkpoint.pt"
    state = {"config": model.config, "args": vars(args), "data": desc, "time_s": 0.0}
    if args.resume and ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        if state.get("ranges"):
            model.qs.ranges = dict(state["ranges"])
        log("resumed: float it {}, qat it {}".format(state.get("float_iter", 0), state.get("qat_iter", 0)))
    elif args.init:
        init = torch.load(args.init, map_location=device, weights_only=False)
        model.load_state_dict(init["model"] if "model" in init else init["state_dict"])
        log("initialised from {}".format(args.init))
    batcher = detdata.Batcher(train, args.input_size, len(VOC_CLASSES), args.batch, seed=args.seed + state.get(
        "float_iter", 0) + state.get("qat_iter", 0), weights=weights)
    t_start = time.time() - state.get("time_s", 0.0)
    quick = {k: v[::4] for k, v in held.items()}

    def probe():
        r = summary(evaluate_sets(lambda s: predict_torch(model, s, args.input_size, device), quick))
        model.train()
        return r

    # phase 1: float
    if state.get("float_iter", 0) < args.float_iters:
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        if "opt_float" in state:
            opt.load_state_dict(state["opt_float"])
        run_phase("float", model, opt, batcher, args.float_iters, args.lr, device, state, ckpt, args, log, probe)
        state["time_s"] = time.time() - t_start
        state["float_model"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        save_ckpt(ckpt, state)
    float_sd = state.get("float_model") or model.state_dict()
    if "float_eval" not in state:
        model.qs.active = False
        state["float_eval"] = evaluate_sets(lambda s: predict_torch(model, s, args.input_size, device), held)
        save_ckpt(ckpt, state)
    log("float student held-out AP50: " + summary(state["float_eval"]))

    if args.qat_iters == 0:                      # float only: a starting point for --init
        torch.save({"config": model.config, "model": float_sd, "data": desc}, out / "codenet_float.pt")
        log("float only (--qat-iters 0): wrote {}".format(out / "codenet_float.pt"))
        return 0

    # phase 2: QAT
    if state.get("qat_iter", 0) == 0:
        cal = detdata.Batcher(train, args.input_size, len(VOC_CLASSES), 8, seed=123, train=False, weights=weights)
        calibrate_ranges(model, [torch.as_tensor(cal.next()["image"], device=device) for _ in range(8)])
        state["ranges"] = dict(model.qs.ranges)
    model.qs.active = True
    if state.get("qat_iter", 0) < args.qat_iters:
        opt = torch.optim.AdamW(model.parameters(), lr=args.qat_lr, weight_decay=0.0)
        if "opt_qat" in state:
            opt.load_state_dict(state["opt_qat"])
        teacher = None
        if args.distill > 0:
            teacher = CoDeNet(**model.config).to(device, memory_format=torch.channels_last)
            enable_qat(teacher)
            teacher.load_state_dict(float_sd)
            teacher.qs.active = False
            teacher.eval()
        run_phase("qat", model, opt, batcher, args.qat_iters, args.qat_lr, device, state, ckpt, args, log, probe,
                  teacher=teacher)
        state["time_s"] = time.time() - t_start
        save_ckpt(ckpt, state)
    log("accumulator: smallest A2Q margin of the weights {} (of {})".format(a2q_project(model), 2 ** 23 - 1))
    state["qat_eval"] = evaluate_sets(lambda s: predict_torch(model, s, args.input_size, device), held)
    log("QAT student held-out AP50: " + summary(state["qat_eval"]))
    model.cpu()
    torch.save({"config": model.config, "model": model.state_dict(), "ranges": model.qs.ranges,
                "float_model": float_sd, "data": desc}, out / "codenet_qat.pt")
    save_ckpt(ckpt, state)

    from .deploy import export_and_compile
    report = export_and_compile(model, out, held, desc, train_time_s=state["time_s"],
                                float_eval=state["float_eval"], qat_eval=state["qat_eval"],
                                compile_model=not args.no_compile, log=log, ship=args.ship)
    write_files_atomically(out, [("train_report.json", lambda f: f.write(json.dumps(report, indent=1).encode()))])
    return 0


if __name__ == "__main__":
    sys.exit(main())
