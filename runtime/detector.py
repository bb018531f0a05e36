"""The CoDeNet object detector: image in, boxes out, the network on the PL (board or simulated).

    from runtime import Detector
    with Detector() as det:                         # the shipped model, board if present
        for d in det.detect(cv2.imread("street.jpg")):   # BGR, as OpenCV reads it
            print(d.class_name, d.score, d.box)          # box: x0, y0, x1, y1 in the image's pixels

Per frame: pre-processing on the host (OpenCV resize to the network's square input exactly as in
training, BGR -> RGB, written straight into the engine's input buffer: no other copy), the whole
network in one engine start, then the CenterNet decode on the int8 heatmap
(runtime.vision.centernet). `stream(frames)` pipelines frames over two buffers: while the engine
works on frame n, frame n+1 is pre-processed and frame n-1 decoded, so throughput is set by the
slowest stage rather than by the sum of the three.

Thread safety: a Detector is used by one thread at a time (its own pipeline threads excepted); a
second thread entering `detect` or `stream` while one is running is refused with a clear error.
"""
import collections
import queue
import threading
import time
from typing import NamedTuple, Tuple

import cv2
import numpy as np

from .codenet_runner import CodenetRunner
from .compiler.codenet_compiler import CompiledModel
from .errors import InputError, ModelError
from .vision.centernet import DEFAULT_TOP_K, decode
from .vision.detect_pre import bgr_to_network

DEFAULT_SCORE = 0.3
MAX_PIXELS = 100_000_000           # decoded frames above this (e.g. a 10000 x 10000 image) are refused
OUTPUTS = ("heatmap", "size", "offset")
STREAM_TIMEOUT_S = 30.0            # a pipeline stage waiting this long for its neighbour gives up
TIMINGS_KEPT = 10000
_END = object()                    # end of the frames iterable


class Detection(NamedTuple):
    box: Tuple[float, float, float, float]     # x0, y0, x1, y1 in the input image's pixels
    score: float
    class_id: int
    class_name: str


def default_model_path():
    """The codenet overlay's default model (its manifest's "default_model")."""
    from .platform.manifest import load_manifest, overlays_dir
    return load_manifest(overlays_dir() / "codenet").model_dir()


def load_detector_model(model=None):
    """A CompiledModel that is a detector: input (1, 3, S, S) uint8 pixels (scale 1, zero point
    0), outputs heatmap (1, C, S/4, S/4) with C = len(classes), size and offset (1, 2, S/4, S/4);
    its metadata must agree. Raises ModelError naming the mismatch."""
    if model is None:
        model = default_model_path()
    cm = model if isinstance(model, CompiledModel) else CompiledModel.load(model)
    where = "model" if isinstance(model, CompiledModel) else str(model)
    det = (cm.meta or {}).get("detector")
    if not isinstance(det, dict):
        raise ModelError("{}: not a detector (model.json has no meta.detector section)".format(where))
    shape = list(cm.input["shape"])
    s = det.get("input_size")
    if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3] or shape[2] != s:
        raise ModelError("{}: input shape {} does not match the metadata's input_size {} (1, 3, S, S)".format(
            where, shape, s))
    if cm.input["scale"] != 1.0 or cm.input["zp"] != 0 or cm.input["signed"]:
        raise ModelError("{}: the detector input must be the image bytes (scale 1, zero point 0, unsigned)".format(
            where))
    if cm.input.get("cs", 3) != 3:
        raise ModelError("{}: the detector writes packed 3-byte pixels, but the program reads its input with a "
                         "{}-byte stride (a first layer other than a 3x3 conv)".format(where, cm.input["cs"]))
    outs = {o["name"]: o for o in cm.outputs}
    for name in OUTPUTS:
        if name not in outs:
            raise ModelError("{}: output {!r} missing (has {})".format(where, name, sorted(outs)))
    classes = cm.class_names or det.get("classes")
    nc = outs["heatmap"]["shape"][1]
    if not classes or len(classes) != nc or list(det.get("classes", classes)) != list(classes):
        raise ModelError("{}: the heatmap has {} classes but the metadata lists {}".format(
            where, nc, len(classes or [])))
    for name in OUTPUTS:
        if outs[name].get("up"):
            raise ModelError("{}: output {} is stored at half size (an upsample at the end of the network "
                             "is not a detector head)".format(where, name))
        o = outs[name]["shape"]
        if o[2:] != [s // 4, s // 4] or (name != "heatmap" and o[1] != 2):
            raise ModelError("{}: output {} has shape {}, expected (1, {}, {}, {})".format(
                where, name, o, nc if name == "heatmap" else 2, s // 4, s // 4))
    return cm


def as_bgr(image):
    """Any common image array -> uint8 (H, W, 3) BGR: grey (H, W) / (H, W, 1) and BGRA (H, W, 4)
    are converted; other shapes or dtypes, empty or too large frames are refused."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise InputError("image must be uint8 (as OpenCV decodes it), got {}".format(img.dtype))
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif not (img.ndim == 3 and img.shape[2] == 3):
        raise InputError("image must be (H, W) grey, (H, W, 3) BGR or (H, W, 4) BGRA, got shape {}".format(
            img.shape))
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise InputError("image is empty: shape {}".format(img.shape))
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise InputError("image of {}x{} pixels exceeds the limit of {} pixels".format(
            img.shape[1], img.shape[0], MAX_PIXELS))
    return img


class Detector:
    """model: a compiled detector folder, a CompiledModel, or None (the shipped default);
    pl: "auto" | "board" | "sim"; backend: the simulated engine, "numpy" (bit-exact model) or
    "csim" (the HLS C-simulation); on a board the bitstream runs whatever backend says."""

    def __init__(self, model=None, pl="auto", backend="numpy", score_threshold=DEFAULT_SCORE,
                 top_k=DEFAULT_TOP_K, timeout_s=None, profile=False):
        self.model = load_detector_model(model)
        self.class_names = list(self.model.class_names or self.model.meta["detector"]["classes"])
        self.input_size = int(self.model.input["shape"][2])
        if not 0.0 < float(score_threshold) < 1.0:
            raise ValueError("score_threshold must be inside (0, 1), got {}".format(score_threshold))
        if int(top_k) < 1:
            raise ValueError("top_k must be >= 1, got {}".format(top_k))
        self.score_threshold, self.top_k = float(score_threshold), int(top_k)
        kw = {} if timeout_s is None else {"timeout_s": timeout_s}
        self.runner = CodenetRunner(self.model, pl=pl, engine=backend, n_arenas=2, profile=profile, **kw)
        self.pl, self.backend = self.runner.pl, self.runner.engine
        self._outs = {o["name"]: o for o in self.model.outputs}
        self._busy = threading.Lock()
        self._workers = None               # the stream pipeline's threads and queues, once started
        # the last TIMINGS_KEPT frames' stage times (bounded: a camera may run for days)
        self.timings = {k: collections.deque(maxlen=TIMINGS_KEPT) for k in ("pre_ms", "pl_ms", "post_ms")}

    @property
    def last_profile(self):
        """The engine's per-layer profile of the last frame (CodenetRunner.profile: "source" is
        "measured" on a board, "modelled" in simulation), or None before the first frame or
        without Detector(..., profile=True)."""
        if not self.runner.profile_off or self.runner._last_index is None:
            return None
        return self.runner.profile()

    # ---- stages (each works on one of the runner's arenas)
    def preprocess(self, image, index=0):
        """BGR image -> network input written into arena `index`; returns the image's (H, W)."""
        img = as_bgr(image)
        s = self.input_size
        # the packed 3-byte image is plain NHWC in tensor layout v3 (load_detector_model checks cs 3)
        bgr_to_network(img, s, out=self.runner.input_region(index).reshape(s, s, 3))
        return img.shape[:2]

    def run_pl(self, index=0):
        self.runner.run_prepared(index)

    def postprocess(self, image_hw, index=0):
        """Decode arena `index`'s outputs -> [Detection] in the image's pixel coordinates. The
        heatmap is read as int8 (in place from a 16-byte-stride buffer, a copy from a grouped one,
        tensor layout v3); size and offset are dequantized at the winners only."""
        outs = self.model.stored_outputs(np.asarray(self.runner.arena(index)))
        info, hm = outs["heatmap"]

        def at_winners(name):
            o, px = outs[name]
            return lambda ys, xs: (px[ys, xs, :].T.astype(np.float32) - np.float32(o["zp"])) * np.float32(o["scale"])
        boxes, scores, classes = decode(hm.transpose(2, 0, 1), at_winners("size"), at_winners("offset"),
                                        info["scale"], info["zp"], self.score_threshold, self.top_k)
        h, w = image_hw
        s = self.input_size
        boxes = boxes * np.array([w / s, h / s, w / s, h / s], np.float32)
        np.clip(boxes, 0, [w, h, w, h], out=boxes)
        return [Detection(tuple(float(v) for v in b), float(sc), int(c), self.class_names[int(c)])
                for b, sc, c in zip(boxes, scores, classes)]

    # ---- one frame
    def detect(self, image):
        """One BGR image (uint8; grey and BGRA accepted) -> [Detection], best first."""
        with self._exclusive():
            t0 = time.perf_counter()
            hw = self.preprocess(image, 0)
            t1 = time.perf_counter()
            self.run_pl(0)
            t2 = time.perf_counter()
            dets = self.postprocess(hw, 0)
            t3 = time.perf_counter()
        self._record(t1 - t0, t2 - t1, t3 - t2)
        return dets

    def _record(self, pre, pl, post):
        self.timings["pre_ms"].append(pre * 1e3)
        self.timings["pl_ms"].append(pl * 1e3)
        self.timings["post_ms"].append(post * 1e3)

    def _exclusive(self):
        det = self

        class _Guard:
            def __enter__(self):
                if not det._busy.acquire(blocking=False):
                    raise RuntimeError("this Detector is already in use by another thread; use one "
                                       "Detector per thread")
                if det.runner._arena is None:
                    det._busy.release()
                    raise RuntimeError("this Detector is closed")

            def __exit__(self, *exc):
                det._busy.release()
        return _Guard()

    # ---- pipelined frames
    def stream(self, frames):
        """Iterate (frame, [Detection], {"pre_ms", "pl_ms", "post_ms"}) over an iterable of BGR
        frames, pipelined: pre-processing of frame n+1 and decoding of frame n-1 overlap the
        engine's frame n (two arenas, a thread for the engine and one for decoding). Frames come
        out in order. Stops at the end of `frames`; an exception in any stage is raised here.
        The two worker threads live as long as the Detector (started by the first `stream`,
        stopped by `close`): a camera loop calling `stream` again and again creates no threads."""
        with self._exclusive():
            yield from self._pipeline(iter(frames))

    def _start_workers(self):
        """The engine and decoding threads, fed through FIFO queues (so frames stay in order). A
        stage's exception travels with its frame to the consumer; the threads keep running."""
        if self._workers is not None:
            return
        to_pl, to_post, done = queue.Queue(), queue.Queue(), queue.Queue()

        def stage(inbox, outbox, work, key):
            while True:
                item = inbox.get()
                if item is None:                     # close(): pass the stop on and end
                    if outbox is not done:
                        outbox.put(None)
                    return
                if "error" not in item:
                    try:
                        t = time.perf_counter()
                        work(item)
                        item[key] = (time.perf_counter() - t) * 1e3
                    except BaseException as e:      # handed to the consumer, raised there
                        item["error"] = e
                outbox.put(item)

        def run_pl(item):
            self.run_pl(item["index"])

        def decode_frame(item):
            item["dets"] = self.postprocess(item["hw"], item["index"])
        threads = [threading.Thread(target=stage, args=(to_pl, to_post, run_pl, "pl_ms"),
                                    daemon=True, name="detector-pl"),
                   threading.Thread(target=stage, args=(to_post, done, decode_frame, "post_ms"),
                                    daemon=True, name="detector-post")]
        for t in threads:
            t.start()
        self._workers = {"to_pl": to_pl, "done": done, "threads": threads}

    def _pipeline(self, frames):
        self._start_workers()
        to_pl, done = self._workers["to_pl"], self._workers["done"]
        free = list(range(self.runner.n_arenas))
        pending = 0
        exhausted = False
        try:
            while True:
                if not exhausted and free:           # feed while an arena is free
                    frame = next(frames, _END)
                    if frame is _END:
                        exhausted = True
                    else:
                        index = free.pop()
                        t = time.perf_counter()
                        hw = self.preprocess(frame, index)
                        to_pl.put({"index": index, "frame": frame, "hw": hw,
                                   "pre_ms": (time.perf_counter() - t) * 1e3})
                        pending += 1
                        continue
                if pending == 0:
                    break
                item = self._next_done(done)
                pending -= 1
                free.append(item["index"])
                if "error" in item:
                    raise item["error"]
                self._record(item["pre_ms"] / 1e3, item["pl_ms"] / 1e3, item["post_ms"] / 1e3)
                yield item["frame"], item["dets"], {k: item[k] for k in ("pre_ms", "pl_ms", "post_ms")}
        finally:
            # frames still in flight (the consumer stopped early, or a stage failed) are waited
            # for, so the next stream starts with both arenas free and empty queues
            try:
                for _ in range(pending):
                    self._next_done(done)
            except RuntimeError:
                self._stop_workers(wait=False)   # a stalled stage: the next stream starts new ones

    def _next_done(self, done):
        try:
            return done.get(timeout=STREAM_TIMEOUT_S)
        except queue.Empty:
            raise RuntimeError("detector pipeline stalled: no frame finished within {} s".format(
                STREAM_TIMEOUT_S)) from None

    def _stop_workers(self, wait=True):
        workers, self._workers = self._workers, None
        if workers is None:
            return
        workers["to_pl"].put(None)
        if wait:
            for t in workers["threads"]:
                t.join(timeout=STREAM_TIMEOUT_S)

    # ---- lifetime
    def close(self):
        """Stops the pipeline threads and frees the arenas; the Detector cannot be used after."""
        self._stop_workers()
        self.runner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def draw_detections(image, detections, color=None, thickness=2, font_scale=0.5):
    """Draw boxes and "class score" labels on a BGR image in place; returns it."""
    for d in detections:
        c = color or _class_color(d.class_id)
        x0, y0, x1, y1 = (int(round(v)) for v in d.box)
        cv2.rectangle(image, (x0, y0), (x1, y1), c, thickness)
        label = "{} {:.2f}".format(d.class_name, d.score)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = max(y0, th + base)
        cv2.rectangle(image, (x0, ty - th - base), (x0 + tw, ty), c, -1)
        cv2.putText(image, label, (x0, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return image


def draw_stats(image, lines, origin=(8, 20), font_scale=0.55):
    """Text lines (e.g. fps and per-stage ms) drawn top-left with a dark background; in place."""
    x, y = origin
    for ln in lines:
        (tw, th), base = cv2.getTextSize(ln, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        cv2.rectangle(image, (x - 4, y - th - 4), (x + tw + 4, y + base), (0, 0, 0), -1)
        cv2.putText(image, ln, (x, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
        y += th + base + 6
    return image


def _class_color(k):
    rng = np.random.default_rng(k * 7919 + 17)
    return tuple(int(v) for v in rng.integers(64, 256, 3))
