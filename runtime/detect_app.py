"""The detector application behind `demos/run_detector.py` and `pynq-deploy detect`.

Input: a camera index (0, 1, ...), a video file, an image file or a folder of images. Output: a
window (when a display is available and --headless is not given), or an annotated video / annotated
images (--output) plus JSON lines of detections (--json-lines), with fps and per-stage
milliseconds (pre-processing, PL, post-processing) drawn on each frame and summarised at the end.
Frames are pipelined (runtime.Detector.stream). It ends cleanly at the end of the stream, when a
camera stops delivering frames, and on Ctrl-C: what was produced so far is finalised, and output
files appear only complete (written under a temporary name, renamed at the end).
"""
import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError, PynqDeployError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
CAMERA_READ_RETRIES = 30           # consecutive failed reads before a camera counts as stopped
STATS_WINDOW = 30                  # frames in the running fps / ms shown on the frame


class Source:
    """Frames (BGR uint8) with a name each, from a camera, a video, an image or a folder."""

    def __init__(self, spec, max_frames=None):
        self.spec, self.max_frames = str(spec), max_frames
        self.cap, self.paths, self.kind, self.fps = None, None, None, 10.0
        if self.spec.isdigit():
            self.kind = "camera"
            self.cap = cv2.VideoCapture(int(self.spec))
            if not self.cap.isOpened():
                raise InputError("camera {} does not exist or cannot be opened".format(self.spec))
        else:
            p = Path(self.spec)
            if p.is_dir():
                self.kind = "images"
                self.paths = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
                if not self.paths:
                    raise InputError("folder {} holds no images ({})".format(p, ", ".join(IMAGE_SUFFIXES)))
            elif not p.is_file():
                raise InputError("input not found: {}".format(p))
            elif p.suffix.lower() in IMAGE_SUFFIXES:
                self.kind, self.paths = "images", [p]
            else:
                self.kind = "video"
                self.cap = cv2.VideoCapture(str(p))
                if not self.cap.isOpened():
                    raise InputError("cannot open video {} (missing codec or not a video)".format(p))
                ok, first = self.cap.read()
                if not ok:
                    raise InputError("video {} has no decodable frame".format(p))
                self._first = first
        if self.cap is not None:
            f = self.cap.get(cv2.CAP_PROP_FPS)
            self.fps = f if f and 0 < f < 1000 else 10.0

    def __iter__(self):
        n = 0
        if self.kind == "images":
            for p in self.paths:
                if self.max_frames is not None and n >= self.max_frames:
                    return
                img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
                if img is None:
                    raise InputError("cannot decode image {}".format(p))
                if img.dtype != np.uint8:            # 16-bit PNG/TIFF: scale to 8 bits
                    img = cv2.convertScaleAbs(img, alpha=255.0 / max(1, int(img.max())))
                n += 1
                yield p.name, img
            return
        pending = getattr(self, "_first", None)
        fails = 0
        while self.max_frames is None or n < self.max_frames:
            if pending is not None:
                ok, frame, pending = True, pending, None
            else:
                ok, frame = self.cap.read()
            if not ok:
                if self.kind == "camera" and fails < CAMERA_READ_RETRIES:
                    fails += 1
                    time.sleep(0.01)
                    continue
                return                                   # end of stream, or the camera stopped
            fails = 0
            yield "frame{:06d}".format(n), frame
            n += 1

    def close(self):
        if self.cap is not None:
            self.cap.release()


class Sink:
    """Annotated output: a video (one file, for camera/video input) or images (a folder), and
    JSON lines; everything written under temporary names and renamed by finish()."""

    def __init__(self, output, json_lines, kind, fps):
        self.output = Path(output) if output else None
        self.json_path = Path(json_lines) if json_lines else None
        self.kind, self.fps = kind, fps
        self.writer, self.tmp_video, self.images = None, None, []
        self.json_tmp = None
        if self.output is not None:
            if kind == "images":
                if self.output.exists() and not self.output.is_dir():
                    raise InputError("--output {} must be a folder for image input".format(self.output))
            else:
                if self.output.is_dir():
                    raise InputError("--output {} is a folder; give a video file (.mp4 or .avi)".format(self.output))
                if self.output.suffix.lower() not in (".mp4", ".avi"):
                    raise InputError("--output must end in .mp4 or .avi, got {}".format(self.output.name))
                if not self.output.parent.is_dir():
                    raise InputError("folder of --output does not exist: {}".format(self.output.parent))
        if self.json_path is not None:
            if self.json_path.is_dir() or not self.json_path.parent.is_dir():
                raise InputError("--json-lines {} is not a writable file path".format(self.json_path))
            self.json_tmp = self.json_path.with_name(".{}.tmp{}".format(self.json_path.name, os.getpid()))
            self.json_f = open(str(self.json_tmp), "w")

    def write(self, name, frame, record):
        if self.json_tmp is not None:
            self.json_f.write(json.dumps(record) + "\n")
        if self.output is None:
            return
        if self.kind == "images":
            self.output.mkdir(parents=True, exist_ok=True)
            dst = self.output / (Path(name).stem + ".jpg")
            tmp = dst.with_name(".{}.tmp.jpg".format(dst.stem))
            if not cv2.imwrite(str(tmp), frame):
                raise PynqDeployError("cannot write {}".format(dst))
            os.replace(str(tmp), str(dst))
            self.images.append(dst)
            return
        if self.writer is None:
            h, w = frame.shape[:2]
            self.tmp_video = self.output.with_name(".{}.tmp{}".format(self.output.stem, self.output.suffix))
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.output.suffix.lower() == ".mp4" else "MJPG"))
            self.writer = cv2.VideoWriter(str(self.tmp_video), fourcc, self.fps, (w, h))
            if not self.writer.isOpened():
                raise PynqDeployError("cannot write video {} (no encoder for {})".format(
                    self.output, self.output.suffix))
            self.size = (w, h)
        if frame.shape[1::-1] != self.size:                  # frames of another size: fit them
            frame = cv2.resize(frame, self.size)
        self.writer.write(frame)

    def finish(self, keep=True):
        """Close and rename into place (keep) or remove what was started (not keep)."""
        if self.writer is not None:
            self.writer.release()
            if keep:
                os.replace(str(self.tmp_video), str(self.output))
            else:
                os.unlink(str(self.tmp_video))
        if self.json_tmp is not None:
            self.json_f.close()
            if keep:
                os.replace(str(self.json_tmp), str(self.json_path))
            else:
                os.unlink(str(self.json_tmp))


def _window_ok():
    try:
        cv2.namedWindow("pynq-deploy detector", cv2.WINDOW_NORMAL)
        return True
    except cv2.error:
        return False


def run(args):
    from .detector import Detector, draw_detections, draw_stats
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError("--max-frames must be >= 1, got {}".format(args.max_frames))
    show = not args.headless
    if show and not (os.environ.get("DISPLAY") or sys.platform in ("win32", "darwin")) or show and not _window_ok():
        raise InputError("no display to open a window: use --headless (with --output and/or --json-lines)")
    src = Source(args.input, args.max_frames)
    sink = None
    ok = False
    det = None
    names = collections.deque()
    stats = {k: collections.deque(maxlen=STATS_WINDOW) for k in ("pre_ms", "pl_ms", "post_ms")}
    stamps = collections.deque(maxlen=STATS_WINDOW + 1)
    totals = {"frames": 0, "detections": collections.Counter()}
    interrupted = False
    try:
        sink = Sink(args.output, args.json_lines, src.kind, src.fps)
        det = Detector(args.model, pl=args.pl, backend=args.backend, score_threshold=args.score)

        def frames():
            for name, f in src:
                names.append(name)
                yield f

        t_start = time.perf_counter()
        try:
            for frame, dets, ms in det.stream(frames()):
                name = names.popleft()
                now = time.perf_counter()
                stamps.append(now)
                for k, v in ms.items():
                    stats[k].append(v)
                fps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
                out = frame if frame.ndim == 3 and frame.shape[2] == 3 else cv2.cvtColor(
                    frame, cv2.COLOR_GRAY2BGR if frame.ndim == 2 else cv2.COLOR_BGRA2BGR)
                if out is frame:
                    out = frame.copy()
                draw_detections(out, dets)
                draw_stats(out, ["{:.1f} fps ({} PL, {})".format(fps, det.pl, det.backend),
                                 "pre {:.1f} ms  PL {:.1f} ms  post {:.1f} ms".format(
                                     *(float(np.median(stats[k])) for k in ("pre_ms", "pl_ms", "post_ms")))])
                totals["frames"] += 1
                totals["detections"].update(d.class_name for d in dets)
                sink.write(name, out, {"frame": name, "detections": [
                    {"box": [round(v, 1) for v in d.box], "score": round(d.score, 4), "class_id": d.class_id,
                     "class_name": d.class_name} for d in dets], "ms": {k: round(v, 3) for k, v in ms.items()}})
                if show:
                    cv2.imshow("pynq-deploy detector", out)
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        break
        except KeyboardInterrupt:
            interrupted = True
        elapsed = time.perf_counter() - t_start
        ok = True
    finally:
        if sink is not None:
            sink.finish(keep=ok)
        if det is not None:
            det.close()
        src.close()
        if show:
            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass
    t = det.timings
    summary = {"frames": totals["frames"], "seconds": elapsed,
               "fps": totals["frames"] / elapsed if elapsed > 0 else 0.0,
               "ms_median": {k: float(np.median(v)) if v else None for k, v in t.items()},
               "detections": dict(totals["detections"]), "pl": det.pl, "backend": det.backend,
               "interrupted": interrupted, "output": str(sink.output) if sink.output else None,
               "json_lines": str(sink.json_path) if sink.json_path else None}
    print("run_detector: {} frames in {:.1f} s ({:.1f} fps end to end, {} PL, {} engine){}".format(
        summary["frames"], elapsed, summary["fps"], "simulated" if det.pl == "sim" else "board", det.backend,
        " - interrupted" if interrupted else ""))
    if totals["frames"]:
        m = summary["ms_median"]
        print("  per frame, median: pre {:.2f} ms, PL {:.2f} ms{}, post {:.2f} ms".format(
            m["pre_ms"], m["pl_ms"], " (simulated on this host)" if det.pl == "sim" else "", m["post_ms"]))
    print("  detections: {}".format(", ".join("{} {}".format(k, v) for k, v in totals["detections"].most_common())
                                     or "none"))
    for k in ("output", "json_lines"):
        if summary[k]:
            print("  wrote {}".format(summary[k]))
    return summary


def add_arguments(p):
    p.add_argument("input", help="camera index (0, 1, ...), video file, image file or folder of images")
    p.add_argument("--output", "-o", default=None,
                   help="annotated video (.mp4/.avi) for camera/video input, a folder for images")
    p.add_argument("--json-lines", default=None, metavar="FILE", help="detections, one JSON object per frame")
    p.add_argument("--headless", action="store_true", help="no window")
    p.add_argument("--max-frames", type=int, default=None, metavar="N")
    p.add_argument("--model", default=None, help="compiled detector folder (default: the shipped model)")
    p.add_argument("--pl", choices=["auto", "board", "sim"], default="auto")
    p.add_argument("--backend", choices=["numpy", "csim"], default="numpy",
                   help="simulated PL: bit-exact numpy engine model or the C-simulation of the HLS code")
    p.add_argument("--score", type=float, default=0.3, help="score threshold")
    return p


def main(argv=None):
    from .cli import _quiet_imports
    _quiet_imports()
    p = add_arguments(argparse.ArgumentParser(prog="run_detector.py", description=__doc__.split("\n")[0]))
    args = p.parse_args(argv)
    try:
        run(args)
    except PynqDeployError as e:
        print("run_detector: error: {}".format(e), file=sys.stderr)
        return 2
    return 0
