"""Detection data for CoDeNet: real frames with teacher labels (or VOC's true labels), splits,
augmentation and CenterNet targets.

A sample is (uint8 RGB HWC image, boxes float32 (n, 4) xyxy in its pixels, classes int (n,) VOC
ids, ignore bool (n,)). `ignore` marks teacher detections inside the uncertain score band (they
neither count as objects nor as background in the heatmap loss).

Splits (held-out frames are never trained on):
* vtest.avi: frames 0..635 train, 636..794 held out;
* bikes.mp4 and any user video: the first 80 % train, the last 20 % held out;
* the photos: train.
"""
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from runtime.vision.detect_pre import resize_square
from runtime.vision.voc import voc_items
from runtime.measure.detector_tasks import split_range

OUTPUT_STRIDE = 4
MIN_BOX_PX = 2.0               # boxes narrower/shorter than this (input pixels) after augmentation are dropped
MIN_VISIBLE = 0.4              # a box cut to less than this fraction of its area becomes ignored
CROP_PROB = 0.6                # share of training samples cropped (the rest: the whole frame, as at inference)
CROP_MIN_SCALE = 0.6           # a crop keeps at least this fraction of the frame's side


@dataclass
class Sample:
    image: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    ignore: np.ndarray
    source: str = ""


def read_video(path, max_frames=None):
    """All frames of a video as uint8 RGB; raises a clear error for a missing/unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError("video not found: {}".format(path))
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError("cannot open video {} (not a video OpenCV can decode)".format(path))
    frames = []
    try:
        while max_frames is None or len(frames) < max_frames:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames:
        raise ValueError("no frame could be decoded from {}".format(path))
    return frames


def samples_from_labels(frames, labels, source):
    out = []
    for i, (img, lab) in enumerate(zip(frames, labels)):
        out.append(Sample(img, np.asarray(lab["boxes"], np.float32).reshape(-1, 4),
                          np.asarray(lab["classes"], np.int64).reshape(-1),
                          np.asarray(lab["ignore"], bool).reshape(-1), "{}:{}".format(source, i)))
    return out


def video_samples(path, split, frames=None, labels=None):
    """Teacher-labelled samples of one split of a video (labels cached by the teacher)."""
    from training.teacher.labels import label_video
    frames = frames if frames is not None else read_video(path)
    labels = labels if labels is not None else label_video(path)
    idx = list(split_range(len(frames), path, split))
    return samples_from_labels([frames[i] for i in idx], [labels[i] for i in idx], Path(path).name)


def image_samples(paths):
    from training.teacher.labels import label_frames
    imgs = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("cannot read image {}".format(p))
        imgs.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return samples_from_labels(imgs, label_frames(imgs), "photos")


def voc_samples(root, split="train", year=None):
    """Samples of a real VOCdevkit folder (true labels; `difficult` objects ignored).
    root: the VOCdevkit folder (holding VOC2007/VOC2012) or one VOC20xx folder."""
    out = []
    for path, boxes, cls, diff in voc_items(root, split, year):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("cannot read VOC image {}".format(path))
        out.append(Sample(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), boxes, cls, diff, "voc:" + path.stem))
    return out


# ---------------------------------------------------------------------------------------------
# augmentation

def _color_jitter(img, rng):
    x = img.astype(np.float32)
    x *= rng.uniform(0.7, 1.3)                                   # contrast-ish gain
    x += rng.uniform(-25, 25)                                    # brightness
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.6, 1.4)                # saturation
    return np.clip(x, 0, 255)


def augment(sample, size, rng, train=True):
    """-> (uint8 (size, size, 3) image, boxes in its pixels, classes, ignore). Training: random
    crop (scale, aspect), flip, colour; else the whole frame stretched, exactly as the runtime's
    pre-processing does (runtime.vision.detect_pre.resize_square)."""
    img = sample.image
    h, w = img.shape[:2]
    if train and rng.random() < CROP_PROB:
        s = rng.uniform(CROP_MIN_SCALE, 1.0)
        ar = np.exp(rng.uniform(-0.25, 0.25))
        cw = int(min(w, round(w * s * np.sqrt(ar))))
        ch = int(min(h, round(h * s / np.sqrt(ar))))
        x0 = int(rng.integers(0, w - cw + 1))
        y0 = int(rng.integers(0, h - ch + 1))
    else:
        x0, y0, cw, ch = 0, 0, w, h
    out = resize_square(np.ascontiguousarray(img[y0:y0 + ch, x0:x0 + cw]), size)
    sx, sy = size / cw, size / ch
    b = sample.boxes.copy()
    if len(b):
        b[:, [0, 2]] = (b[:, [0, 2]] - x0) * sx
        b[:, [1, 3]] = (b[:, [1, 3]] - y0) * sy
    cls, ign = sample.classes.copy(), sample.ignore.copy()
    if train and rng.random() < 0.5:
        out = out[:, ::-1]
        if len(b):
            b[:, [0, 2]] = size - b[:, [2, 0]]
    if train:
        out = np.rint(_color_jitter(out, rng)).astype(np.uint8)
    out = np.ascontiguousarray(out)
    if len(b):
        area0 = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-6)
        bc = np.clip(b, 0, size)
        area1 = (bc[:, 2] - bc[:, 0]) * (bc[:, 3] - bc[:, 1])
        keep = ((bc[:, 2] - bc[:, 0]) >= MIN_BOX_PX) & ((bc[:, 3] - bc[:, 1]) >= MIN_BOX_PX)
        ign = ign | (area1 / area0 < MIN_VISIBLE)
        b, cls, ign = bc[keep], cls[keep], ign[keep]
    return out, b.astype(np.float32), cls, ign


# ---------------------------------------------------------------------------------------------
# CenterNet targets

def gaussian_radius(h, w, min_overlap=0.7):
    """CenterNet's radius: the largest corner shift keeping IoU >= min_overlap (three cases)."""
    a1, b1 = 1, h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2, b2 = 4, 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + np.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + np.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def _splat(hm, cx, cy, radius, value=None):
    r = max(0, int(radius))
    d = 2 * r + 1
    sigma = d / 6.0
    ys, xs = np.ogrid[-r:r + 1, -r:r + 1]
    g = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma)) if value is None else np.full((d, d), value, np.float32)
    H, W = hm.shape
    l, rr = min(cx, r), min(W - cx, r + 1)
    t, bb = min(cy, r), min(H - cy, r + 1)
    if rr <= 0 or bb <= 0 or l < 0 or t < 0:
        return
    region = hm[cy - t:cy + bb, cx - l:cx + rr]
    np.maximum(region, g[r - t:r + bb, r - l:r + rr], out=region)


def make_targets(boxes, classes, ignore, size, num_classes, max_objs=128):
    """CenterNet targets at output stride 4: heatmap (C, S/4, S/4), heatmap weight (same; 0 where
    an ignored box's Gaussian lies), and for up to max_objs objects: index, size (w, h) and
    sub-pixel offset in output pixels, mask."""
    o = size // OUTPUT_STRIDE
    hm = np.zeros((num_classes, o, o), np.float32)
    ign_map = np.zeros((num_classes, o, o), np.float32)
    ind = np.zeros(max_objs, np.int64)
    wh = np.zeros((max_objs, 2), np.float32)
    off = np.zeros((max_objs, 2), np.float32)
    mask = np.zeros(max_objs, np.float32)
    k = 0
    for b, c, ig in zip(boxes / OUTPUT_STRIDE, classes, ignore):
        bw, bh = b[2] - b[0], b[3] - b[1]
        if bw <= 0 or bh <= 0:
            continue
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        ix, iy = min(int(cx), o - 1), min(int(cy), o - 1)
        r = gaussian_radius(np.ceil(bh), np.ceil(bw))
        if ig:
            _splat(ign_map[c], ix, iy, max(1, r), value=1.0)
            continue
        _splat(hm[c], ix, iy, r)
        if k < max_objs:
            ind[k] = iy * o + ix
            wh[k] = (bw, bh)
            off[k] = (cx - ix, cy - iy)
            mask[k] = 1
            k += 1
    weight = np.where((ign_map > 0) & (hm < 1), 0.0, 1.0).astype(np.float32)
    return hm, weight, ind, wh, off, mask


class Batcher:
    """Endless shuffled batches of augmented samples -> dict of numpy arrays."""

    def __init__(self, samples, size, num_classes, batch, seed=0, train=True, weights=None):
        self.samples, self.size, self.nc, self.batch, self.train = samples, size, num_classes, batch, train
        self.rng = np.random.default_rng(seed)
        p = np.ones(len(samples)) if weights is None else np.asarray(weights, np.float64)
        self.p = p / p.sum()

    def next(self):
        idx = self.rng.choice(len(self.samples), self.batch, p=self.p)
        imgs, tg = [], []
        for i in idx:
            img, b, c, ig = augment(self.samples[i], self.size, self.rng, self.train)
            imgs.append(img.transpose(2, 0, 1))
            tg.append(make_targets(b, c, ig, self.size, self.nc))
        out = {"image": np.stack(imgs).astype(np.float32)}
        for k, name in enumerate(("hm", "hm_weight", "ind", "wh", "off", "mask")):
            out[name] = np.stack([t[k] for t in tg])
        return out


def default_sources(data_root=None):
    """The real training material installed by training/fetch_data.sh and the teacher set-up:
    (video paths, photo paths)."""
    from training import data as D
    root = D.data_dir(data_root)
    from training.teacher.fetch import ensure_bikes
    vids = [root / D.VIDEO, Path(ensure_bikes(data_root))]
    photos = [root / p for p in D.PHOTOS if (root / p).is_file()]
    extra = os.environ.get("PYNQ_DEPLOY_EXTRA_PHOTOS")
    if extra:
        photos += [Path(p) for p in extra.split(os.pathsep)]
    return vids, photos
