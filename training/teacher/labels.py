"""Pseudo ground truth from the teacher: Pascal VOC boxes for real frames.

Each frame is stretched to INPUT_SIZE x INPUT_SIZE (no crop, as training.data.to_nchw does), run
through the converted teacher (onnxruntime), decoded like the graph (top 100 peaks), mapped from
COCO-80 onto VOC-20 (unmapped COCO classes dropped), suppressed per VOC class at IoU NMS_IOU, and
kept if its score is >= LOW. Boxes scoring in [LOW, THRESHOLD) are kept but flagged `ignore`, so
that a trainer neither rewards nor punishes the student there: the teacher itself is unsure.

    label_frames(frames) -> [dict(boxes, scores, classes, ignore)]      one dict per frame
    label_video(path, every=1) -> the same for frames 0, every, 2*every, ... (+ "frame": index),
                                  cached in <cache_root()>/teacher/labels/<video>.<key>.npz

boxes: float32 (n, 4) x1, y1, x2, y2 in the frame's own pixels; scores: float32 (n,);
classes: int64 (n,) VOC ids (index into VOC_NAMES); ignore: bool (n,), True where score < THRESHOLD.
"""
import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np

from runtime.fileio import write_files_atomically
from runtime.paths import cache_root
from runtime.measure.detector_tasks import sha256_file
from runtime.vision.classes import VOC_CLASSES
from training.data import DataMissing, to_nchw
from training.teacher import tfjs_onnx
from training.teacher.fetch import require_weights

INPUT_SIZE = 512        # the teacher's input side (its graph's Placeholder)
LOW = 0.2               # detections scoring below this are dropped
THRESHOLD = 0.3         # detections in [LOW, THRESHOLD) are kept but flagged ignore
NMS_IOU = 0.5           # per-class non-maximum suppression overlap
THREADS = 2             # onnxruntime intra-op threads (the machine has 2 cores, shared)
BATCH = 1               # frames per onnxruntime call (larger batches were no faster on 2 cores)
LABELS_VERSION = 1      # part of the cache key: bump when the labelling rule changes

# The teacher's class order: @vladmandic/human src/object/labels.ts (index = class value).
COCO_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)
VOC_NAMES = VOC_CLASSES    # the detector's classes, in VOC's order
# COCO names that differ from VOC's; truck -> car because VOC's car includes vans and lorries.
COCO_TO_VOC_RENAMED = {
    "airplane": "aeroplane", "motorcycle": "motorbike", "couch": "sofa",
    "dining table": "diningtable", "potted plant": "pottedplant", "tv": "tvmonitor",
    "truck": "car",
}
# COCO class id -> VOC id, -1 where VOC has no such class (the detection is dropped).
COCO_TO_VOC = np.array([VOC_NAMES.index(COCO_TO_VOC_RENAMED.get(n, n))
                        if COCO_TO_VOC_RENAMED.get(n, n) in VOC_NAMES else -1
                        for n in COCO_NAMES], np.int64)


class Teacher:
    """The converted teacher in an onnxruntime session: frames -> raw detections."""

    def __init__(self, threads=THREADS):
        import onnxruntime as ort
        self.model_json = require_weights()
        self.weights_sha256 = tfjs_onnx.weights_sha256(self.model_json)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(tfjs_onnx.onnx_path(self.model_json)), opts,
                                            providers=["CPUExecutionProvider"])

    def outputs(self, inputs):
        """float32 N x 512 x 512 x 3 (NHWC, RGB 0..255) -> (heatmap, wh), NCHW."""
        return self.session.run(None, {tfjs_onnx.INPUT_NAME: inputs})

    def detections(self, frames):
        """uint8 RGB HWC frames -> float32 N x 100 x 6 [x1, y1, x2, y2, score, COCO class] in
        teacher input pixels (INPUT_SIZE)."""
        inputs = to_nchw(frames, INPUT_SIZE).transpose(0, 2, 3, 1)
        return tfjs_onnx.decode(*self.outputs(np.ascontiguousarray(inputs)))


_TEACHER = None


def default_teacher():
    global _TEACHER
    if _TEACHER is None:
        _TEACHER = Teacher()
    return _TEACHER


def _nms_per_class(boxes, scores, classes):
    """Indices kept by per-class NMS at NMS_IOU (highest score first)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxesBatched(xywh.astype(np.float64).tolist(), scores.tolist(),
                                   classes.tolist(), 0.0, NMS_IOU)
    keep = np.asarray(keep, np.int64).reshape(-1)
    return keep[np.argsort(-scores[keep], kind="stable")]


def to_labels(detections, frame_shape):
    """One frame's raw detections (100 x 6, teacher input pixels) -> the label dict (module doc)."""
    h, w = frame_shape[:2]
    voc = COCO_TO_VOC[detections[:, 5].astype(np.int64)]
    keep = (detections[:, 4] >= LOW) & (voc >= 0)
    boxes = np.clip(detections[keep, :4], 0, INPUT_SIZE) * np.array(
        [w, h, w, h], np.float32) / INPUT_SIZE
    scores, classes = detections[keep, 4], voc[keep]
    real = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores, classes = boxes[real], scores[real], classes[real]
    kept = _nms_per_class(boxes, scores, classes)
    scores = scores[kept].astype(np.float32)
    return {"boxes": boxes[kept].astype(np.float32).reshape(-1, 4), "scores": scores,
            "classes": classes[kept].astype(np.int64), "ignore": scores < THRESHOLD}


def label_frames(frames, teacher=None, batch=BATCH):
    """Pseudo labels for uint8 RGB HWC frames (any size): a list of dicts, see the module doc."""
    teacher = teacher or default_teacher()
    out = []
    for start in range(0, len(frames), batch):
        chunk = frames[start:start + batch]
        for frame in chunk:
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError("frames must be uint8 H x W x 3 RGB, got {} {}".format(
                    frame.dtype, frame.shape))
        dets = teacher.detections(chunk)
        out.extend(to_labels(d, f.shape) for d, f in zip(dets, chunk))
    return out


# --- videos, cached --------------------------------------------------------------------------

def label_params(every):
    """Everything besides the video and the weights that decides the labels (the cache key)."""
    return {"input_size": INPUT_SIZE, "low": LOW, "threshold": THRESHOLD, "nms_iou": NMS_IOU,
            "every": int(every), "labels_version": LABELS_VERSION,
            "converter_version": tfjs_onnx.CONVERTER_VERSION, "coco_to_voc": COCO_TO_VOC.tolist()}


def labels_dir():
    return cache_root() / "teacher" / "labels"


def cache_path(path, every=1, teacher_sha256=None):
    """Where label_video(path, every) keeps its labels."""
    path = Path(path)
    teacher_sha256 = teacher_sha256 or tfjs_onnx.weights_sha256(require_weights())
    key = hashlib.sha256(json.dumps([sha256_file(path), teacher_sha256, label_params(every)],
                                    sort_keys=True).encode()).hexdigest()[:16]
    return labels_dir() / "{}.{}.npz".format(path.stem, key)


def _open_video(path):
    path = Path(path)
    if not path.is_file():
        raise DataMissing("video not found: {}".format(path))
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataMissing("cannot open video {} (not a video OpenCV can decode?)".format(path))
    return cap


def _frames(cap, every, batch):
    """Batches of (index, uint8 RGB frame) for frames 0, every, 2*every, ..."""
    chunk, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % every == 0:
            chunk.append((i, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
            if len(chunk) == batch:
                yield chunk
                chunk = []
        i += 1
    if chunk:
        yield chunk


def _pack(labels):
    counts = np.array([len(l["scores"]) for l in labels], np.int64)
    cat = {k: np.concatenate([l[k] for l in labels]) if labels else np.zeros(0)
           for k in ("boxes", "scores", "classes", "ignore")}
    cat["boxes"] = cat["boxes"].reshape(-1, 4)
    return dict(cat, counts=counts, frames=np.array([l["frame"] for l in labels], np.int64))


def _unpack(data):
    ends = np.cumsum(data["counts"])
    starts = ends - data["counts"]
    return [{"frame": int(f), "boxes": data["boxes"][s:e], "scores": data["scores"][s:e],
             "classes": data["classes"][s:e], "ignore": data["ignore"][s:e]}
            for f, s, e in zip(data["frames"], starts, ends)]


def label_video(path, every=1, teacher=None, batch=BATCH, progress=True):
    """Pseudo labels of frames 0, every, 2*every, ... of a video: a list of dicts as
    label_frames() returns, each with "frame" (its index in the video) added. Cached on disk
    (cache_path()): keyed by the video's and the weights' sha256 and label_params(every)."""
    from tqdm import tqdm
    if every < 1:
        raise ValueError("every must be >= 1, not {}".format(every))
    cap = _open_video(path)
    try:
        teacher_sha = teacher.weights_sha256 if teacher else tfjs_onnx.weights_sha256(require_weights())
        cached = cache_path(path, every, teacher_sha)
        if cached.is_file():
            with np.load(str(cached)) as data:
                labels = _unpack(data)
                tagged = "video_sha256" in data.files
            if not tagged:            # caches written before the runtime looked them up by video
                _write_cache(cached, labels, path, every)
            return labels
        teacher = teacher or default_teacher()
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        labels = []
        start = time.perf_counter()
        bar = tqdm(total=total and -(-total // every), desc="teacher " + Path(path).name,
                   unit="frame", disable=not progress)
        for chunk in _frames(cap, every, batch):
            for (index, _), lab in zip(chunk, label_frames([f for _, f in chunk], teacher, batch)):
                lab["frame"] = index
                labels.append(lab)
            bar.update(len(chunk))
        bar.close()
    finally:
        cap.release()
    if not labels:
        raise DataMissing("no frames decoded from {}".format(path))
    if progress:
        print("teacher: {} frames of {} in {:.1f} s ({:.0f} ms/frame)".format(
            len(labels), Path(path).name, time.perf_counter() - start,
            1000 * (time.perf_counter() - start) / len(labels)))
    _write_cache(cached, labels, path, every)
    return labels


def _write_cache(cached, labels, path, every):
    """The labels file, tagged with the video's sha256 and the frame step so that
    `pynq-deploy evaluate-detector --video` (runtime.measure.detector_tasks) finds it."""
    packed = dict(_pack(labels), video_sha256=np.array(sha256_file(path)), every=np.array(int(every)))
    write_files_atomically(cached.parent, [(cached.name, lambda f: np.savez(f, **packed))])


def main(argv=None):
    """python -m training.teacher.labels VIDEO [VIDEO ...]: label (and cache) every frame."""
    import argparse
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("videos", nargs="+")
    ap.add_argument("--every", type=int, default=1)
    args = ap.parse_args(argv)
    for v in args.videos:
        labels = label_video(v, every=args.every)
        print("{}: {} frames labelled -> {}".format(v, len(labels), cache_path(v, args.every)))
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
