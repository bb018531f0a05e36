"""Soak runs: many frames through one driver-level object, watching memory and speed.

    pynq-deploy soak bnn --frames 1000000 --json out/soak_bnn.json
    pynq-deploy soak codenet --frames 10000 --json out/soak_codenet.json
    pynq-deploy soak detector --frames 10000 --json out/soak_detector.json

Writes {"target", "frames", "rss_mb": {"start", "after_1000", "peak", "end"},
"live_buffers": {"baseline", "end"}, "fps": {"first_1000", "last_1000"}, "rss_growth_after_1000"}.
A target is one function registered with `@soak_target(name)`: given the options, it returns a
context manager that yields `step(i, n) -> None`, which processes frames i..i+n-1.
"""
import contextlib
import resource
import time

import numpy as np

from .validate import check_count

WINDOW = 1000                     # frames of the first / last speed window and the RSS mark
TARGETS = {}


def soak_target(name):
    def register(fn):
        TARGETS[name] = fn
        return fn
    return register


def rss_mb():
    """Resident set size of this process now (Linux /proc), in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2 ** 20


def live_buffers():
    """Contiguous buffers allocated and not freed in this process's simulated PL (None on a board:
    the kernel's CMA accounting is the place to look there)."""
    from .platform.sim_device import process_device
    return process_device().live_allocations


@soak_target("bnn")
@contextlib.contextmanager
def _bnn(model=None, engine="numpy", batch=WINDOW, **_):
    from .classifier import Classifier
    from .datasets import load_fashion_mnist
    images, _labels = load_fashion_mnist("test")
    with Classifier(model=model, pl="sim", engine=engine) as clf:
        expected = clf.predict(images)

        def step(i, n):
            idx = np.arange(i, i + n) % images.shape[0]
            got = clf.predict(images[idx])
            if not np.array_equal(got, expected[idx]):
                raise AssertionError("soak bnn: predictions changed at images {}..{}".format(i, i + n - 1))
        step.batch = batch
        yield step


@soak_target("codenet")
@contextlib.contextmanager
def _codenet(model=None, engine="numpy", **_):
    from .codenet_runner import CodenetRunner
    from .compiler.codenet_compiler import CompiledModel
    from .measure.codenet_tasks import real_frames, resolve_model
    compiled_dir, _ = resolve_model(model)
    cm = CompiledModel.load(compiled_dir)
    _, _, h, w = cm.input["shape"]
    x = real_frames(8, (h, w))
    with CodenetRunner(cm, pl="sim", engine=engine) as net:
        first = [{k: v.copy() for k, v in net.run(x[j:j + 1]).items()} for j in range(len(x))]

        def step(i, n):
            for f in range(i, i + n):
                out = net.run(x[f % len(x):f % len(x) + 1])
                if f % 97 == 0 and any(not np.array_equal(v, first[f % len(x)][k]) for k, v in out.items()):
                    raise AssertionError("soak codenet: outputs of frame {} changed".format(f))
        step.batch = 1
        yield step


@soak_target("detector")
@contextlib.contextmanager
def _detector(model=None, engine="numpy", **_):
    """The detector end to end (BGR frame in, boxes out) over the bundled clip's real frames,
    pipelined as run_detector runs it; every frame's detections must stay the same."""
    from .detector import Detector
    from .measure.detector_tasks import bench_frames
    frames = bench_frames(30)
    with Detector(model, pl="sim", backend=engine) as det:
        expected = [det.detect(f) for f in frames]

        def step(i, n):
            k = [j % len(frames) for j in range(i, i + n)]
            for j, (_, dets, _ms) in zip(k, det.stream(frames[j] for j in k)):
                if dets != expected[j]:
                    raise AssertionError("soak detector: detections changed at frame {}".format(i))
        step.batch = 10
        yield step


def soak(target, frames, progress=None, **options):
    """Run `frames` frames of `target` (see TARGETS); returns the report dict."""
    if target not in TARGETS:
        raise ValueError("unknown soak target {!r} (known: {})".format(target, ", ".join(sorted(TARGETS))))
    frames = check_count(frames, "frames", 1)
    baseline = live_buffers()
    start = rss_mb()
    peak = start
    marks = {}
    times = []                                   # (frames done, seconds since start)
    with TARGETS[target](**options) as step:
        batch = getattr(step, "batch", 1)
        t0 = time.perf_counter()
        done = 0
        while done < frames:
            n = min(batch, frames - done, WINDOW - done % WINDOW)
            step(done, n)
            done += n
            if done % WINDOW == 0 or done == frames:
                times.append((done, time.perf_counter() - t0))
                rss = rss_mb()
                peak = max(peak, rss)
                if done == WINDOW:
                    marks["after_1000"] = rss
                if progress:
                    progress(done, frames, rss)
    end = rss_mb()
    result = {
        "target": target, "frames": done,
        "rss_mb": {"start": round(start, 2), "after_1000": round(marks.get("after_1000", end), 2),
                   "peak": round(max(peak, end), 2), "end": round(end, 2)},
        "live_buffers": {"baseline": baseline, "end": live_buffers()},
        "fps": {"first_1000": _rate(times, first=True), "last_1000": _rate(times, first=False)},
    }
    result["rss_growth_after_1000"] = round((end - result["rss_mb"]["after_1000"]) / result["rss_mb"]["after_1000"], 4)
    return result


def _rate(times, first):
    """Frames per second over the first / last window of WINDOW frames (or all, if fewer)."""
    if first:
        n, t = times[0]
        return round(n / t, 2) if t > 0 else None
    if len(times) < 2:
        n, t = times[-1]
        return round(n / t, 2) if t > 0 else None
    (n0, t0), (n1, t1) = times[-2], times[-1]
    return round((n1 - n0) / (t1 - t0), 2) if t1 > t0 else None
