"""Real images for the detector: frames of OpenCV's `vtest.avi` and photos.

The full set is installed outside git by `bash training/fetch_data.sh` into
`$PYNQ_DEPLOY_DATA` (default `~/.cache/pynq-deploy/data`): Debian's opencv-doc unpacked (not
installed) and the scikit-image 0.26.0 wheel unzipped (not installed). A small sample of the same
material is committed under `demos/data/` (runtime.vision.samples) so that tests and demos run
on a fresh machine.

    calibration_frames(n, size)  -> float32 (n, 3, size, size), RGB, 0..255 (stretched, no crop)
"""
import os
import sys
from pathlib import Path

import cv2
import numpy as np

DATA_DIR = Path(os.environ.get("PYNQ_DEPLOY_DATA", str(Path.home() / ".cache" / "pynq-deploy" / "data")))
OPENCV_DATA = Path("opencv-doc/usr/share/doc/opencv-doc/examples/data")
SKIMAGE_DATA = Path("skimage/skimage/data")
VIDEO = OPENCV_DATA / "vtest.avi"
PHOTOS = (
    OPENCV_DATA / "messi5.jpg",
    OPENCV_DATA / "basketball1.png",
    OPENCV_DATA / "basketball2.png",
    OPENCV_DATA / "home.jpg",
    OPENCV_DATA / "licenseplate_motion.jpg",
    SKIMAGE_DATA / "astronaut.png",
    SKIMAGE_DATA / "chelsea.png",
    SKIMAGE_DATA / "coffee.png",
    SKIMAGE_DATA / "motorcycle_left.png",
)
FETCH_HINT = "run `bash training/fetch_data.sh` (installs into {})".format(DATA_DIR)


class DataMissing(RuntimeError):
    """The installed real data (opencv-doc / scikit-image files) is not there."""


def data_dir(root=None):
    return Path(root) if root is not None else DATA_DIR


def installed(root=None):
    root = data_dir(root)
    return (root / VIDEO).is_file() and all((root / p).is_file() for p in PHOTOS)


def _require(root):
    if not installed(root):
        raise DataMissing("real detector data not found under {}: {}".format(root, FETCH_HINT))


def read_rgb(path):
    """Read an image file as uint8 RGB HWC."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataMissing("cannot read image {}".format(path))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def video_frames(path=None, indices=None, root=None):
    """Frames of a video as uint8 RGB HWC (default: all of vtest.avi; `indices` picks frames)."""
    if path is None:
        _require(data_dir(root))
        path = data_dir(root) / VIDEO
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataMissing("cannot open video {}".format(path))
    want = None if indices is None else set(int(i) for i in indices)
    out, i = [], 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if want is None or i in want:
                out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            i += 1
            if want is not None and i > max(want):
                break
    finally:
        cap.release()
    if not out:
        raise DataMissing("no frames decoded from {}".format(path))
    return out


def video_length(path=None, root=None):
    path = path or data_dir(root) / VIDEO
    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return n


def photos(root=None):
    """The installed photos as a list of (name, uint8 RGB HWC)."""
    root = data_dir(root)
    _require(root)
    return [(p.name, read_rgb(root / p)) for p in PHOTOS]


def to_nchw(images, size):
    """List of uint8 RGB HWC -> float32 (n, 3, size, size) in 0..255, stretched (no crop)."""
    out = np.empty((len(images), 3, size, size), np.float32)
    for k, img in enumerate(images):
        r = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR)
        out[k] = r.transpose(2, 0, 1)
    return out


def _sample_images():
    from runtime.vision.samples import sample_frames
    return sample_frames()


def calibration_images(n, source="auto", root=None):
    """`n` real images (uint8 RGB HWC), deterministic.

    source: "installed" (vtest.avi frames spread over the video, interleaved with the photos;
    raises DataMissing if not installed), "samples" (the committed demos/data sample, cycled),
    "auto" (installed if present, else the samples with a warning on stderr).
    """
    if n <= 0:
        return []
    if source == "auto":
        if installed(root):
            source = "installed"
        else:
            print("training.data: installed data missing ({}); using the committed demos/data "
                  "sample".format(FETCH_HINT), file=sys.stderr)
            source = "samples"
    if source == "samples":
        imgs = _sample_images()
        return [imgs[i % len(imgs)] for i in range(n)]
    if source != "installed":
        raise ValueError("source must be auto, installed or samples, not {!r}".format(source))
    root = data_dir(root)
    _require(root)
    n_photos = min(len(PHOTOS), n // 4)          # about a quarter photos, the rest video
    n_video = n - n_photos
    length = video_length(root=root) or 795
    idx = np.linspace(0, length - 1, n_video).round().astype(int) if n_video else []
    frames = video_frames(indices=idx, root=root) if n_video else []
    if len(frames) < n_video:                    # duplicates in idx when n_video > length
        frames = [frames[i % len(frames)] for i in range(n_video)]
    ph = [img for _, img in photos(root)][:n_photos]
    out = []
    step = max(1, n // max(1, n_photos)) if n_photos else n + 1
    fi = pi = 0
    for k in range(n):
        if pi < len(ph) and k % step == step - 1:
            out.append(ph[pi]); pi += 1
        elif fi < len(frames):
            out.append(frames[fi]); fi += 1
        else:
            out.append(ph[pi]); pi += 1
    return out


def calibration_frames(n, size, source="auto", root=None):
    """float32 (n, 3, size, size) RGB images in 0..255 from real frames / photos (stretched)."""
    return to_nchw(calibration_images(n, source=source, root=root), size)
