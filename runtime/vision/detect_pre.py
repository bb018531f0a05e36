"""Detector pre-processing (OpenCV, board-safe): the frame stretched to the network's square input
exactly as in training, colour order fixed, written straight into a caller's buffer.

The detector was trained on whole frames stretched to S x S (no letterbox): the same resize
(`RESIZE_INTERPOLATION`) is used by training (training/codenet/detdata.py) and here.
"""
import cv2
import numpy as np

# bilinear: 0.4 ms for 768x576 -> 256x256 on this 2-core x86 host, where INTER_AREA's
# anti-aliasing takes 2.9 ms (it would use the whole per-frame host budget); training sees the
# same resize, so the network learns on the same aliasing it meets here
RESIZE_INTERPOLATION = cv2.INTER_LINEAR


def interpolation(src_hw, size):
    return RESIZE_INTERPOLATION


def resize_square(img, size, out=None):
    """uint8 (H, W, 3) -> uint8 (size, size, 3), same channel order; into `out` when given."""
    if out is None:
        return cv2.resize(img, (size, size), interpolation=interpolation(img.shape, size))
    r = cv2.resize(img, (size, size), dst=out, interpolation=interpolation(img.shape, size))
    if r is not out and not np.shares_memory(r, out):     # OpenCV reallocated: copy back
        np.copyto(out, r)
    return out


def bgr_to_network(frame_bgr, size, out=None):
    """An OpenCV BGR frame -> RGB uint8 (size, size, 3), written into `out` (e.g. the arena's input
    region viewed as HWC) when given."""
    out = resize_square(frame_bgr, size, out)
    cv2.cvtColor(out, cv2.COLOR_BGR2RGB, dst=out)
    return out
