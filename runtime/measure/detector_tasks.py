"""Detector tasks of the CLI: `evaluate-detector` (held-out AP50) and `bench detector`.

Ground truth is either a real VOCdevkit (true labels) or the teacher's labels of a video: the
teacher (training/teacher, a COCO detector run on the host) writes them as .npz files into
~/.cache/pynq-deploy/teacher/labels/; this module only reads those files (the runtime never runs
or imports the teacher). Splits: vtest.avi frames 0..635 train and 636..794 held out; any other
video the first 80 % train and the last 20 % held out.
"""
import json
import time
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, ModelError
from ..paths import cache_root

VTEST_TRAIN_END = 636          # vtest.avi frames [0, 636) train, [636, 795) held out
TRAIN_FRACTION = 0.8           # other videos: the first 80 % train
BENCH_FRAMES = 120


def split_range(n, video_name, split):
    """Frame indices of `split` ("train", "heldout", "all") for a video of n frames."""
    end = VTEST_TRAIN_END if Path(str(video_name)).name == "vtest.avi" else int(round(n * TRAIN_FRACTION))
    end = min(end, n)
    if split == "train":
        return range(0, end)
    if split == "heldout":
        return range(end, n)
    if split == "all":
        return range(0, n)
    raise InputError("split must be train, heldout or all, not {!r}".format(split))


def labels_dir():
    return cache_root() / "teacher" / "labels"


def sha256_file(path):
    import hashlib
    h = hashlib.sha256()
    with open(str(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_labels_file(path):
    """A teacher labels .npz -> {frame index: dict(boxes, classes, ignore, scores)}."""
    try:
        with np.load(str(path), allow_pickle=False) as d:
            counts, frames = d["counts"], d["frames"]
            ends = np.cumsum(counts)
            starts = ends - counts
            return {int(f): {"boxes": d["boxes"][s:e].reshape(-1, 4), "classes": d["classes"][s:e],
                             "ignore": d["ignore"][s:e].astype(bool), "scores": d["scores"][s:e]}
                    for f, s, e in zip(frames, starts, ends)}
    except (OSError, KeyError, ValueError) as e:
        raise InputError("cannot read teacher labels {}: {}".format(path, e)) from e


def find_teacher_labels(video):
    """The cached teacher labels of `video` (matched by the video's sha256, every frame labelled)."""
    video = Path(video)
    sha = sha256_file(video)
    for p in sorted(labels_dir().glob(video.stem + ".*.npz")):
        try:
            with np.load(str(p), allow_pickle=False) as d:
                if "video_sha256" in d.files and str(d["video_sha256"]) == sha and int(d["every"]) == 1:
                    return p
        except (OSError, ValueError):
            continue
    raise InputError("no teacher labels for {} in {}: label it first with "
                     "`python -m training.teacher.labels {}` (needs the train extra and `make teacher`), "
                     "or pass --labels FILE.npz".format(video, labels_dir(), video))


def read_frames(video, indices):
    """The frames `indices` (sorted) of a video as BGR uint8."""
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise InputError("cannot open video {}".format(video))
    want, out, i = set(indices), {}, 0
    try:
        while len(out) < len(want):
            ok, f = cap.read()
            if not ok:
                break
            if i in want:
                out[i] = f
            i += 1
    finally:
        cap.release()
    missing = sorted(want - set(out))
    if missing:
        raise InputError("video {} has no frame {} (decoded {})".format(video, missing[0], i))
    return [out[k] for k in indices]


def evaluate_detector(model=None, video=None, split="heldout", voc=None, labels=None, backend="numpy",
                      pl="sim", limit=None, score=0.01, ignore_band=False):
    """Held-out AP50 of a compiled detector on the simulated PL (or the board with pl="auto").
    -> {"frames", "ap50": {class: AP}, "map50", "ground_truth": {class: count}, ...}.
    Teacher labels: the boxes at or above its score threshold are the ground truth; with
    ignore_band the boxes of its uncertain band (just below the threshold) become COCO "crowd"
    regions that a detection may match without counting (default: left out, the stricter)."""
    from ..detector import Detector
    from .detection_eval import evaluate_ap50
    if (video is None) == (voc is None):
        raise InputError("give exactly one of --video FILE or --voc DIR")
    if limit is not None and limit < 1:
        raise InputError("--limit must be >= 1, got {}".format(limit))
    gts, images = [], []
    if video is not None:
        video = Path(video)
        if not video.is_file():
            raise InputError("video not found: {}".format(video))
        lab = read_labels_file(labels or find_teacher_labels(video))
        n = max(lab) + 1 if lab else 0
        idx = list(split_range(n, video, split))[:limit]
        if not idx:
            raise InputError("the {} split of {} is empty".format(split, video))
        images = read_frames(video, idx)
        if ignore_band:
            gts = [{"boxes": lab[i]["boxes"], "classes": lab[i]["classes"], "ignore": lab[i]["ignore"]} for i in idx]
        else:
            gts = [{"boxes": lab[i]["boxes"][~lab[i]["ignore"]], "classes": lab[i]["classes"][~lab[i]["ignore"]]}
                   for i in idx]
        source = {"video": str(video), "split": split, "frames": [idx[0], idx[-1]],
                  "ground_truth": "teacher labels at its score threshold; its uncertain band {}".format(
                      "as ignore regions" if ignore_band else "left out")}
    else:
        from ..vision.voc import voc_items
        items = voc_items(voc, split)[:limit]
        for path, b, c, d in items:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError("cannot read VOC image {}".format(path))
            images.append(img)
            gts.append({"boxes": b, "classes": c, "ignore": d})
        source = {"voc": str(voc), "split": split, "ground_truth": "VOC annotations (difficult ignored)"}
    dets = []
    with Detector(model, pl=pl, backend=backend, score_threshold=score) as det:
        for img in images:
            d = det.detect(img)
            dets.append((np.array([x.box for x in d], np.float32).reshape(-1, 4),
                         np.array([x.score for x in d], np.float32), np.array([x.class_id for x in d], np.int64)))
        res = evaluate_ap50(gts, dets, det.class_names)
        res.update(source=source, model=str(model or "default"), pl=det.pl, backend=det.backend,
                   decode_score_threshold=score)
    return res


def _stats(ms):
    a = np.asarray(ms, np.float64)
    return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean()),
            "n": int(a.size)}


def bench_frames(n=BENCH_FRAMES):
    """n real 768x576 BGR frames: the bundled clip (30 frames of vtest.avi), cycled."""
    from ..vision.samples import sample_clip_path
    cap = cv2.VideoCapture(str(sample_clip_path()))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    if not frames:
        raise ModelError("the bundled clip {} could not be decoded".format(sample_clip_path()))
    return [frames[i % len(frames)] for i in range(n)]


def bench_detector(model=None, frames=BENCH_FRAMES, backend="numpy"):
    """Measured host pre- and post-processing per 768x576 frame (median, p95), the simulated
    engine's time, and the MODELLED Ultra96 engine time of the same compiled program."""
    from ..detector import Detector
    from . import codenet_perf
    if frames < 1:
        raise InputError("--frames must be >= 1, got {}".format(frames))
    imgs = bench_frames(frames)
    pre, post, sim = [], [], []
    with Detector(model, pl="sim", backend=backend) as det:
        for k, img in enumerate(imgs):
            t0 = time.perf_counter()
            hw = det.preprocess(img, 0)
            t1 = time.perf_counter()
            det.run_pl(0)
            t2 = time.perf_counter()
            det.postprocess(hw, 0)
            t3 = time.perf_counter()
            if k >= 5:                                    # warm-up frames left out
                pre.append((t1 - t0) * 1e3)
                sim.append((t2 - t1) * 1e3)
                post.append((t3 - t2) * 1e3)
        s = det.input_size
        mod = codenet_perf.modelled(det.model.layers, s)
        host = [a + b for a, b in zip(pre, post)]
        res = {"frames": len(pre), "frame_size": list(imgs[0].shape[1::-1]), "input_size": s,
               "measured_ms": {"pre": _stats(pre), "post": _stats(post), "pre_plus_post": _stats(host),
                               "simulated_pl_" + backend: _stats(sim)},
               "modelled": {"pl_ms": mod["latency_ms"], "pl_fps": mod["fps"], "label": mod["label"],
                            "pipelined_fps": 1e3 / max(mod["latency_ms"], float(np.median(pre)),
                                                       float(np.median(post)))},
               "host": "this machine (x86-64), not the board's Cortex-A53"}
    return res


def print_bench(r):
    m = r["measured_ms"]
    print("bench detector: {} frames of {}x{} -> {}x{} (measured on {})".format(
        r["frames"], *r["frame_size"], r["input_size"], r["input_size"], r["host"]))
    for k in ("pre", "post", "pre_plus_post"):
        print("  {:<14} median {:.3f} ms, p95 {:.3f} ms".format(k, m[k]["median"], m[k]["p95"]))
    sim = [k for k in m if k.startswith("simulated_pl")][0]
    print("  {:<14} median {:.1f} ms (the simulated engine on this host)".format(sim, m[sim]["median"]))
    print("  MODELLED Ultra96 PL: {:.2f} ms per frame ({:.1f} fps); pipelined with the host stages: "
          "{:.1f} fps".format(r["modelled"]["pl_ms"], r["modelled"]["pl_fps"], r["modelled"]["pipelined_fps"]))


def write_lines(path, records):
    with open(str(path), "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
