"""`Classifier`: the BNN overlay + a compiled model, behind one object.

    from runtime import Classifier
    with Classifier() as clf:                  # board if present, else the simulated PL
        label, scores = clf.classify(image)    # one 28x28 uint8 image
        labels = clf.predict(images)           # a batch (N, 28, 28)
"""
import sys
import time

import numpy as np
import pynq

from .compiler.bnn_model_file import load_bnn_model
from .engines import bnn_config as cfg
from .errors import EngineTimeoutError, InputError, OverlayError
from .platform.buffers import BufferOwner
from .platform.overlay import load_overlay

# Generous: the modelled engine needs ~0.2 ms per image; this only guards against a hang.
TIMEOUT_BASE_S = 1.0
TIMEOUT_PER_IMAGE_S = 2e-3


def check_images(images):
    """Validate a batch of images; return it as a contiguous uint8 array (N, H, W, C)."""
    if not isinstance(images, np.ndarray):
        raise InputError("images must be a numpy array, got {}".format(type(images).__name__))
    shape = (cfg.IN_H, cfg.IN_W, cfg.IN_C)
    if images.ndim == 2:
        images = images[None, :, :, None]
    elif images.ndim == 3 and images.shape[1:] == shape[:2]:
        images = images[..., None]
    elif images.ndim == 3 and images.shape == shape:
        images = images[None]
    if images.ndim != 4 or images.shape[1:] != shape:
        raise InputError("images must have shape (N, {0}, {1}), (N, {0}, {1}, {2}) or ({0}, {1}); "
                         "got {3}".format(cfg.IN_H, cfg.IN_W, cfg.IN_C, images.shape))
    if images.shape[0] == 0:
        raise InputError("empty batch: at least one image is needed")
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.integer):
            raise InputError("images must be uint8 pixels 0..255, got dtype {} (convert with "
                             "np.clip(x, 0, 255).astype(np.uint8) if that is what you mean)".format(images.dtype))
        lo, hi = int(images.min()), int(images.max())
        if lo < 0 or hi > 255:
            raise InputError("pixel values must be in 0..255, got {}..{}".format(lo, hi))
        images = images.astype(np.uint8)
    return np.ascontiguousarray(images)


class Classifier(BufferOwner):
    """The BNN overlay loaded on the board or the simulated PL, with a model in its on-chip memory."""

    _buffer_names = ("_params", "_images", "_scores")

    def __init__(self, overlay="bnn", model=None, pl="auto", engine="numpy", batch_size=1024):
        if not 1 <= int(batch_size) <= cfg.MAX_BATCH:
            raise ValueError("batch_size must be in 1..{}".format(cfg.MAX_BATCH))
        self.overlay, self.manifest, self.pl = load_overlay(overlay, pl=pl, engine=engine)
        self.engine = engine if self.pl == "sim" else "fpga"
        self.model = load_bnn_model(self.manifest.model_dir(model))
        self.classes = self.model.classes
        self.batch_size = int(batch_size)
        ip_names = [n for n, ip in self.manifest.ips.items() if ip["engine"] == "bnn"]
        if not ip_names:
            raise OverlayError("overlay {} has no bnn IP".format(self.manifest.name))
        self.ip = getattr(self.overlay, ip_names[0])
        self._params = self._images = self._scores = None
        try:
            self._params = pynq.allocate((cfg.PARAM_WORDS,), np.uint64, target=self.overlay.device)
            self._images = pynq.allocate((self.batch_size, cfg.IN_H, cfg.IN_W, cfg.IN_C), np.uint8,
                                         target=self.overlay.device)
            self._scores = pynq.allocate((self.batch_size, cfg.NUM_CLASSES), np.int32,
                                         target=self.overlay.device)
            self._params[:] = self.model.words
            self._needs_reload = False
            self.ip.load_params(self._params, timeout_s=TIMEOUT_BASE_S)
        except BaseException:
            self.close()
            raise

    # ---- inference ---------------------------------------------------------------------------
    def scores(self, images):
        """int32 class scores (N, num_classes) of a batch, computed by the engine."""
        images = check_images(images)
        if self._images is None:
            raise RuntimeError("this Classifier is closed")
        if self._needs_reload:
            self._recover()
        out = np.empty((images.shape[0], cfg.NUM_CLASSES), np.int32)
        for lo in range(0, images.shape[0], self.batch_size):
            n = min(self.batch_size, images.shape[0] - lo)
            self._images[:n] = images[lo:lo + n]
            try:
                self.ip.classify(self._images, self._scores, n,
                                 timeout_s=TIMEOUT_BASE_S + TIMEOUT_PER_IMAGE_S * n)
            except EngineTimeoutError:
                self._needs_reload = True
                raise
            out[lo:lo + n] = self._scores[:n]
        return out

    def predict(self, images):
        return np.argmax(self.scores(images), axis=1)

    def classify(self, image, top=3):
        """One image -> (best class index, [(class name, score), ...] for the top classes)."""
        s = self.scores(image)
        if s.shape[0] != 1:
            raise InputError("classify takes one image; use predict() or scores() for a batch")
        order = np.argsort(-s[0], kind="stable")[:top]
        return int(order[0]), [(self.classes[i], int(s[0, i])) for i in order]

    def evaluate(self, images, labels=None, progress=True, chunk=None):
        """Classify a whole dataset; returns predictions, and accuracy when labels are given."""
        images = check_images(images)
        chunk = chunk or self.batch_size
        preds = np.empty(images.shape[0], np.int64)
        t0 = time.perf_counter()
        for lo in range(0, images.shape[0], chunk):
            hi = min(lo + chunk, images.shape[0])
            preds[lo:hi] = self.predict(images[lo:hi])
            if progress:
                _progress(hi, images.shape[0], t0)
        seconds = time.perf_counter() - t0
        result = {"predictions": preds, "images": int(images.shape[0]), "seconds": seconds,
                  "images_per_s": images.shape[0] / seconds if seconds > 0 else float("inf")}
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (images.shape[0],):
                raise InputError("labels must have shape ({},), got {}".format(images.shape[0], labels.shape))
            result["accuracy"] = float(np.mean(preds == labels))
        return result

    # ---- recovery ---------------------------------------------------------------
    def _recover(self):
        """After a hang: reprogram the PL (resets the engine) and reload the weights."""
        self.overlay.download()
        self.ip = getattr(self.overlay, self.ip.name)
        self.ip.load_params(self._params, timeout_s=TIMEOUT_BASE_S)
        self._needs_reload = False



def _progress(done, total, t0):
    if not sys.stderr.isatty() and done != total:
        return
    rate = done / max(time.perf_counter() - t0, 1e-9)
    bar = "#" * int(30 * done / total)
    sys.stderr.write("\r[{:<30}] {}/{} images, {:.0f} images/s".format(bar, done, total, rate))
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
