"""CenterNet decode of the detector's outputs (numpy, board-safe).

The engine returns the heatmap logits as int8 q with a scale s and zero point z (logit = (q - z) s).
Everything before the winners are known runs on those integers: a 3x3 max-pool keeps local peaks
(q == max of its 3x3 neighbourhood, a plateau giving one peak: see maxpool3x3_peaks), the score
threshold p is compared as the int8 logit
ceil(logit(p) / s + z), the top K peaks are chosen by q, and only they get a sigmoid. Boxes come
from the size (w, h) and sub-pixel offset maps at the peaks, in output pixels (stride 4), and are
returned in network-input pixels.
"""
import math

import numpy as np

OUTPUT_STRIDE = 4
DEFAULT_TOP_K = 100


# The 3x3 neighbours that come before a position in raster order: a peak must be strictly above
# these and at least equal to the others, so a plateau of equal values (common on an int8 map, and
# on the nearest-upsampled decoder's float map) yields one peak, its first pixel, not one per pixel.
_EARLIER = ((-1, -1), (-1, 0), (-1, 1), (0, -1))
_NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


def maxpool3x3_peaks(hm):
    """Boolean (C, H, W): hm is the max of its 3x3 neighbourhood (outside the map counts as
    lower), and a tie with a neighbour earlier in raster order is that neighbour's peak."""
    c, h, w = hm.shape
    lo = np.iinfo(hm.dtype).min if np.issubdtype(hm.dtype, np.integer) else -np.inf
    p = np.full((c, h + 2, w + 2), lo, hm.dtype)
    p[:, 1:-1, 1:-1] = hm
    inside = np.zeros((h + 2, w + 2), bool)
    inside[1:-1, 1:-1] = True
    peak = np.ones(hm.shape, bool)
    for dy, dx in _NEIGHBOURS:
        nb = p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        nb_in = inside[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        beaten = (nb >= hm) if (dy, dx) in _EARLIER else (nb > hm)
        peak &= ~(beaten & nb_in)
    return peak


def peaks_above(hm, t):
    """Flat (C, H, W) indices of the positions with hm >= t that are 3x3 peaks: the same set as
    maxpool3x3_peaks(hm) & (hm >= t), computed on the few positions above the threshold only (a
    heatmap is mostly background far below it)."""
    c, h, w = hm.shape
    flat = np.flatnonzero(hm >= t)
    if flat.size == 0:
        return flat
    ci, rem = np.divmod(flat, h * w)
    ys, xs = np.divmod(rem, w)
    v = hm[ci, ys, xs]
    peak = np.ones(flat.size, bool)
    for dy, dx in _NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        nb = hm[ci, np.clip(ny, 0, h - 1), np.clip(nx, 0, w - 1)]
        beaten = (nb >= v) if (dy, dx) in _EARLIER else (nb > v)
        peak &= ~(inside & beaten)
    return flat[peak]


def logit_threshold_q(score, scale, zero_point):
    """The smallest stored heatmap value whose sigmoid((q - z) s) >= score."""
    if not 0.0 < score < 1.0:
        raise ValueError("score threshold must be inside (0, 1), got {}".format(score))
    return int(math.ceil(math.log(score / (1.0 - score)) / scale + zero_point - 1e-9))


def _topk(values, k):
    """Indices of the k largest values, largest first (ties: lower flat index first)."""
    if values.size > k:
        idx = np.argpartition(-values, k - 1)[:k]
    else:
        idx = np.arange(values.size)
    order = np.lexsort((idx, -values[idx].astype(np.int64 if values.dtype.kind in "iu" else np.float64)))
    return idx[order]


def decode(hm, size, offset, hm_scale=1.0, hm_zero_point=0, score_threshold=0.3, top_k=DEFAULT_TOP_K):
    """hm (C, H, W) int8/int32 stored logits (or float logits with scale 1, zero point 0; any
    strided view), size / offset (2, H, W) float in output pixels, or callables (ys, xs) -> (2, n)
    values at those positions (to dequantize only the winners) -> (boxes float32 (n, 4) xyxy in
    input pixels, scores float32 (n,), classes int64 (n,)), best first."""
    hm = np.asarray(hm)
    if hm.ndim != 3 or any(not callable(m) and np.shape(m) != (2,) + hm.shape[1:] for m in (size, offset)):
        raise ValueError("decode needs hm (C, H, W) and size/offset (2, H, W), got {}, {}, {}".format(
            hm.shape, np.shape(size), np.shape(offset)))
    if top_k < 1:
        raise ValueError("top_k must be >= 1, got {}".format(top_k))
    c, h, w = hm.shape
    if np.issubdtype(hm.dtype, np.integer):
        t = logit_threshold_q(score_threshold, hm_scale, hm_zero_point)
    else:
        t = math.log(score_threshold / (1.0 - score_threshold)) / hm_scale + hm_zero_point
    flat = peaks_above(hm, t)
    if flat.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    cls, rem = np.divmod(flat, h * w)
    ys, xs = np.divmod(rem, w)
    vals = hm[cls, ys, xs]
    k = _topk(vals, top_k)
    cls, ys, xs = cls[k], ys[k], xs[k]
    logit = (hm[cls, ys, xs].astype(np.float64) - hm_zero_point) * hm_scale
    scores = (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    size = size(ys, xs) if callable(size) else np.asarray(size, np.float32)[:, ys, xs]
    offset = offset(ys, xs) if callable(offset) else np.asarray(offset, np.float32)[:, ys, xs]
    bw, bh = size[0], size[1]
    cx = xs + offset[0]
    cy = ys + offset[1]
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) * OUTPUT_STRIDE
    return boxes.astype(np.float32), scores, cls.astype(np.int64)
