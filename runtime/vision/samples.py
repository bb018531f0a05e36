"""The committed sample images and clip (demos/data/, see demos/data/LICENSE-SAMPLES.md).

Runtime side: numpy + OpenCV only, Python 3.10-safe. Set PYNQ_DEPLOY_SAMPLES to another folder
(e.g. on the board when the runtime is installed without the repository checkout).

    sample_frames(size=None) -> list of uint8 RGB HWC arrays; size: None (original), an int
                                (stretched to size x size) or (height, width)
    sample_clip_path()       -> path of the short vtest clip (30 frames, 768x576, 10 fps)
"""
import os
from pathlib import Path

import cv2
import numpy as np

from ..paths import repo_root

SAMPLE_FILES = (
    "vtest_040.jpg", "vtest_200.jpg", "vtest_360.jpg", "vtest_520.jpg", "vtest_700.jpg",
    "astronaut.jpg", "coffee.jpg",
)
CLIP_FILE = "vtest_clip.mp4"


def samples_dir():
    env = os.environ.get("PYNQ_DEPLOY_SAMPLES")
    if env:
        return Path(env)
    return repo_root() / "demos" / "data"


def sample_names():
    return list(SAMPLE_FILES)


def _read(path):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError("sample image missing or unreadable: {}".format(path))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def sample_frames(size=None):
    """The committed sample images as uint8 RGB HWC (stretched to size x size if size is given)."""
    d = samples_dir()
    out = []
    for name in SAMPLE_FILES:
        img = _read(d / name)
        if size is not None:
            s = (int(size), int(size)) if np.isscalar(size) else (int(size[1]), int(size[0]))
            interp = cv2.INTER_AREA if img.shape[0] > s[1] else cv2.INTER_LINEAR
            img = cv2.resize(img, s, interpolation=interp)
        out.append(np.ascontiguousarray(img))
    return out


def sample_clip_path():
    p = samples_dir() / CLIP_FILE
    if not p.is_file():
        raise FileNotFoundError("sample clip missing: {}".format(p))
    return p
