"""`Classifier`: the BNN overlay + a compiled model, behind one object.

    from runtime import Classifier
    with Classifier() as clf:                  # board if present, else the simulated PL
        label, scores = clf.classify(image)    # one 28x28 uint8 image
        labels = clf.predict(images)           # a batch (N, 28, 28)

A Classifier may be shared between threads: each batch runs under the IP's lock (see
platform/shared_ip.py), so calls from several threads are serialized, never interleaved.
"""
import sys
import time

import numpy as np
import pynq

from .compiler.bnn_model_file import load_bnn_model
from .engines import bnn_config as cfg
from .engines.bnn_format import fc1_shift_bias
from .errors import EngineError, EngineTimeoutError, InputError, OverlayError
from .platform.buffers import BufferOwner
from .platform.overlay import load_overlay
from .platform.shared_ip import SharedIP
from .validate import check_count

# Generous: the modelled engine needs ~0.2 ms per image; this only guards against a hang.
TIMEOUT_BASE_S = 1.0
TIMEOUT_PER_IMAGE_S = 2e-3


def check_labels(labels, n, num_classes):
    """Labels for n images: integer class indices in 0..num_classes-1 -> int64 array."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise InputError("labels must have shape ({},), got {}".format(n, labels.shape))
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError("labels must be integer class indices, got dtype {}".format(labels.dtype))
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise InputError("labels must be in 0..{}, got {}..{}".format(num_classes - 1, labels.min(), labels.max()))
    return labels.astype(np.int64)


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


class Classifier(SharedIP, BufferOwner):
    """The BNN overlay loaded on the board or the simulated PL, with a model in its on-chip memory.
    Thread-safe: one batch at a time runs on the engine, under the IP's lock."""

    _buffer_names = ("_params", "_images", "_scores")

    def __init__(self, overlay="bnn", model=None, pl="auto", engine="numpy", batch_size=1024):
        batch_size = check_count(batch_size, "batch_size", 1, cfg.MAX_BATCH)
        self.overlay, self.manifest, self.pl = load_overlay(overlay, pl=pl, engine=engine)
        self.engine = engine if self.pl == "sim" else "fpga"
        self.model = load_bnn_model(self.manifest.model_dir(model))
        self.classes = self.model.classes
        self.batch_size = batch_size
        self._shift, self._bias = fc1_shift_bias(self.model.words)
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
            self._attach()
            self._locked_call(lambda: None)      # loads the weights
        except BaseException:
            self.close()
            raise

    # ---- inference ---------------------------------------------------------------------------
    def scores(self, images):
        """int32 class scores (N, num_classes) of a batch, computed by the engine."""
        images = check_images(images)
        if self._images is None:
            raise RuntimeError("this Classifier is closed")
        out = np.empty((images.shape[0], cfg.NUM_CLASSES), np.int32)
        for lo in range(0, images.shape[0], self.batch_size):
            n = min(self.batch_size, images.shape[0] - lo)
            self._locked_call(lambda: self._batch(images[lo:lo + n], out[lo:lo + n]))
        return out

    def _batch(self, images, out):
        """One engine start on one batch (runs under the IP's lock)."""
        n = images.shape[0]
        self._images[:n] = images
        self.ip.classify(self._images, self._scores, n, timeout_s=TIMEOUT_BASE_S + TIMEOUT_PER_IMAGE_S * n)
        out[:] = self._scores[:n]
        self._check_scores(out)

    def _check_scores(self, scores):
        """Every score the network can give is ((2 popcount - F0) << shift) + bias: outside that
        set the engine returned garbage (a broken bitstream, a lost DMA)."""
        d = scores.astype(np.int64) - self._bias
        ok = (np.abs(d) <= (cfg.F0 << self._shift)) & ((d & ((2 << self._shift) - 1)) == 0)
        if not ok.all():
            i, c = np.argwhere(~ok)[0]
            raise EngineError("{}: the engine returned impossible scores (image {}, class {}: {}); its "
                              "outputs are garbage. The PL will be reprogrammed before the next call".format(
                                  self.ip.name, int(i), int(c), int(scores[i, c])))

    def predict(self, images):
        return np.argmax(self.scores(images), axis=1)

    def classify(self, image, top=3):
        """One image -> (best class index, [(class name, score), ...] for the top classes)."""
        top = check_count(top, "top", 1, len(self.classes))
        s = self.scores(image)
        if s.shape[0] != 1:
            raise InputError("classify takes one image; use predict() or scores() for a batch")
        order = np.argsort(-s[0], kind="stable")[:top]
        return int(order[0]), [(self.classes[i], int(s[0, i])) for i in order]

    def evaluate(self, images, labels=None, progress=True, chunk=None):
        """Classify a whole dataset; returns predictions, and accuracy when labels are given.
        A chunk whose engine call fails (hang, garbage) is retried once after the PL is
        reprogrammed; if the retry fails too, the error carries the predictions done so far in
        its `partial` attribute ({"predictions", "images"})."""
        images = check_images(images)
        chunk = self.batch_size if chunk is None else check_count(chunk, "chunk", 1, cfg.MAX_BATCH)
        if labels is not None:
            labels = check_labels(labels, images.shape[0], len(self.classes))
        preds = np.empty(images.shape[0], np.int64)
        t0 = time.perf_counter()
        for lo in range(0, images.shape[0], chunk):
            hi = min(lo + chunk, images.shape[0])
            try:
                preds[lo:hi] = self.predict(images[lo:hi])
            except (EngineTimeoutError, EngineError):
                try:
                    preds[lo:hi] = self.predict(images[lo:hi])   # reprograms first
                except (EngineTimeoutError, EngineError) as e:
                    err = type(e)("{} (failed again after reprogramming; {} of {} images were classified "
                                  "before it: see the error's .partial)".format(e, lo, images.shape[0]))
                    err.partial = {"predictions": preds[:lo].copy(), "images": lo}
                    raise err from e
            if progress:
                _progress(hi, images.shape[0], t0)
        seconds = time.perf_counter() - t0
        result = {"predictions": preds, "images": int(images.shape[0]), "seconds": seconds,
                  "images_per_s": images.shape[0] / seconds if seconds > 0 else float("inf")}
        if labels is not None:
            result["accuracy"] = float(np.mean(preds == labels))
        return result

    # ---- set-up (under the IP's lock) ------------------------------------------------------
    def _configure(self):
        """Load the weights into the engine's on-chip memories."""
        self.ip.load_params(self._params, timeout_s=TIMEOUT_BASE_S)



def _progress(done, total, t0):
    if not sys.stderr.isatty() and done != total:
        return
    rate = done / max(time.perf_counter() - t0, 1e-9)
    bar = "#" * int(30 * done / total)
    sys.stderr.write("\r[{:<30}] {}/{} images, {:.0f} images/s".format(bar, done, total, rate))
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
