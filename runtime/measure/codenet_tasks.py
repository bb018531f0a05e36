"""CoDeNet tasks of the CLI: the default test network, `verify codenet` and `bench codenet`.

The default network is a CoDeNet-1x (ShuffleNetV2 1x backbone, deformable decoder, CenterNet
heads) with random weights whose BatchNorm statistics and activation ranges are calibrated on
real frames, exported by `training/codenet/export.py` as QONNX with 4-bit weights and 8-bit
activations (W4A8), and compiled by `runtime.compiler`. Building it needs the `train` extra
(torch); it is cached by the hash of the code that makes it.
"""
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..engines.parallel import blas_single_threaded, default_workers
from .timing import best_rate

from ..errors import ModelError
from ..paths import cache_root, repo_root


def _cache_root():
    return cache_root() / "codenet"


def _source_hash():
    h = hashlib.sha256()
    root = repo_root()
    for folder in ("training/codenet", "runtime/compiler", "runtime/engines"):
        for p in sorted((root / folder).glob("*.py")):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def default_model_dir(input_size=256):
    """Build (once) and return the folder holding codenet_float.onnx, codenet_qonnx.onnx and the
    compiled W4A8 model under compiled/."""
    from ..compiler.codenet_compiler import compile_onnx
    out = _cache_root() / "codenet1x_{}_{}".format(input_size, _source_hash())
    compiled = out / "compiled"
    if (compiled / "model.json").is_file():
        return out
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ModelError("no --model given, and building the default CoDeNet test network needs the "
                         "train extra (torch): `pip install torch==2.13.0 && pip install -e .[train]`, "
                         "or pass --model DIR (a folder written by `pynq-deploy compile`)")
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "training.codenet.export", "--input-size", str(input_size),
           "--out", str(out), "--qonnx", "--data", "samples", "--threads", "2"]
    proc = subprocess.run(cmd, cwd=str(repo_root()), capture_output=True, text=True)
    if proc.returncode != 0:
        raise ModelError("building the default CoDeNet network failed:\n{}\n{}".format(
            " ".join(cmd), proc.stderr[-4000:]))
    model = compile_onnx(str(out / "codenet_qonnx.onnx"))
    model.save(compiled)
    return out


def resolve_model(model=None, input_size=256):
    """(compiled model folder, float ONNX path or None) for --model or the default network."""
    if model is None:
        d = default_model_dir(input_size)
        return d / "compiled", d / "codenet_float.onnx"
    d = Path(model)
    if (d / "compiled" / "model.json").is_file():
        return d / "compiled", (d / "codenet_float.onnx") if (d / "codenet_float.onnx").is_file() else None
    if (d / "model.json").is_file():
        f = d / "codenet_float.onnx"
        return d, f if f.is_file() else None
    raise ModelError("{} holds no compiled CoDeNet model (model.json)".format(d))


def real_frames(n, size):
    """n real frames (the committed samples, repeated if needed) as float32 NCHW 0..255 RGB."""
    from ..vision.samples import sample_frames
    frames = sample_frames(size)
    if not frames:
        raise ModelError("no sample frames found (demos/data)")
    x = np.stack([frames[i % len(frames)] for i in range(n)]).astype(np.float32)
    return x.transpose(0, 3, 1, 2)


def verify_codenet(model=None, frames=3):
    """C-simulation vs numpy engine model, both through PYNQ on the simulated PL, on real frames:
    every output byte of the arena's output tensors compared."""
    from ..codenet_runner import CodenetRunner
    from ..compiler.codenet_compiler import CompiledModel
    compiled_dir, _ = resolve_model(model)
    cm = CompiledModel.load(compiled_dir)
    _, _, h, w = cm.input["shape"]
    x = real_frames(frames, (h, w))
    outs = {}
    starts = {}
    for engine in ("numpy", "csim"):
        with CodenetRunner(cm, pl="sim", engine=engine) as net:
            outs[engine] = [cm.read_outputs_q(net.run_quantized(x[i:i + 1])) for i in range(frames)]
            starts[engine] = net.overlay.device.starts[net.ip.name]
    mismatching = total = 0
    for a, b in zip(outs["numpy"], outs["csim"]):
        for name in a:
            mismatching += int(np.count_nonzero(a[name] != b[name]))
            total += int(a[name].size)
    return {"frames": frames, "mismatching_outputs": mismatching, "output_values": total,
            "starts_per_frame": {k: v / frames for k, v in starts.items()},
            "model": str(compiled_dir), "input_shape": cm.input["shape"], "layers": cm.n_layers,
            "data": "committed real sample frames (demos/data), stretched to the input size"}


# ------------------------------------------------------------------ frames spread over the cores
_worker = {}


def _shared_arrays(buf, layout):
    """{name: numpy array} over the shared buffer, per (name, shape, byte offset) of the layout."""
    out = {}
    for name, shape, off in layout:
        out[name] = np.frombuffer(buf, np.float32, int(np.prod(shape)), off).reshape(shape)
    return out


def _worker_init(compiled_dir, buf, layout):
    from ..compiler.codenet_compiler import CompiledModel
    _worker["model"] = CompiledModel.load(compiled_dir)
    _worker["arrays"] = _shared_arrays(buf, layout)
    _worker["blas"] = blas_single_threaded()      # applied now, kept for the process's life


def _worker_run(frames):
    model, arrays = _worker["model"], _worker["arrays"]
    x = arrays[_INPUT]
    for i in range(*frames):
        model.run_numpy(x[i:i + 1], out={o["name"]: arrays[o["name"]][i:i + 1] for o in model.outputs})


_INPUT = "\0input"      # cannot clash with an ONNX output name in the layout


class NumpyFramePool:
    """Whole frames spread over worker processes, each running the numpy engine with a
    single-threaded BLAS. `run(x)` -> {output name: (N, C, H, W) float32} for the frames of x
    (views of the shared buffer, valid until the next call).

    Processes, not threads: the engine makes about 2,000 short numpy calls per frame, and threads
    serialise on the GIL between them (on 2 cores: 1.3-1.4x with threads, 1.95x with processes). Frames
    and outputs pass through shared memory, not pickles (a 256x256 frame's outputs are 1.5 MB of
    float32). The workers start, and load and decode the model, before anything is timed."""

    def __init__(self, compiled_dir, workers, max_frames):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from ..compiler.codenet_compiler import CompiledModel
        cm = CompiledModel.load(compiled_dir)
        shapes = [(_INPUT, cm.input["shape"][1:])] + [(o["name"], o["shape"][1:]) for o in cm.outputs]
        layout, size = [], 0
        for name, shape in shapes:
            layout.append((name, (max_frames,) + tuple(shape), size))
            size += 4 * max_frames * int(np.prod(shape))
        ctx = multiprocessing.get_context("spawn")
        self.buf = ctx.RawArray("b", size)
        self.arrays = _shared_arrays(self.buf, layout)
        self.workers, self.max_frames, self.n = workers, max_frames, 0
        self.pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                                        initargs=(str(compiled_dir), self.buf, layout))

    def load(self, x):
        """Put the frames x (N, C, H, W) into the shared input buffer, where a producer (a camera
        reader, a decoder) would write them."""
        n = x.shape[0]
        if n > self.max_frames:
            raise ValueError("{} frames, the pool holds at most {}".format(n, self.max_frames))
        self.arrays[_INPUT][:n] = x
        self.n = n

    def run(self, x=None):
        """Run the frames x (loaded first), or the frames loaded last."""
        if x is not None:
            self.load(x)
        n = self.n
        cuts = np.linspace(0, n, min(self.workers, n) + 1).astype(int)
        list(self.pool.map(_worker_run, [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]))
        return {name: a[:n] for name, a in self.arrays.items() if name != _INPUT}

    def close(self):
        self.pool.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _ort_session(path, threads=None):
    """An onnxruntime CPU session: onnxruntime's defaults (intra-op threads over every core,
    spinning while waiting), or `threads` intra-op threads."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _ort_sequential_fps(sess, x):
    name = sess.get_inputs()[0].name
    [sess.run(None, {name: x[i:i + 1]}) for i in range(x.shape[0])]              # warm-up
    return best_rate(lambda: [sess.run(None, {name: x[i:i + 1]}) for i in range(x.shape[0])], x.shape[0])


def ort_rates(float_onnx, x, workers):
    """onnxruntime frames/s on x: (one session with onnxruntime's defaults, frames one after
    another; one single-threaded session per core, frames spread over them in threads, which
    onnxruntime runs without the GIL). Measured after the numpy engine: the default session's
    threads spin between runs, so it is dropped before anything else runs."""
    from concurrent.futures import ThreadPoolExecutor
    frames = x.shape[0]
    default_fps = _ort_sequential_fps(_ort_session(float_onnx), x)    # the session is gone after
    sessions = [_ort_session(float_onnx, threads=1) for _ in range(workers)]
    name = sessions[0].get_inputs()[0].name
    chunks = np.array_split(np.arange(frames), workers)

    def part(k):
        return [sessions[k].run(None, {name: x[i:i + 1]}) for i in chunks[k]]

    with ThreadPoolExecutor(workers) as tp:
        list(tp.map(part, range(workers)))                     # warm-up
        parallel_fps = best_rate(lambda: list(tp.map(part, range(workers))), frames)
    return default_fps, parallel_fps


def bench_codenet(model=None, input_size=256, frames=8):
    from ..codenet_runner import CodenetRunner
    from ..compiler.codenet_compiler import CompiledModel
    from .codenet_perf import modelled, published_comparison
    compiled_dir, float_onnx = resolve_model(model, input_size)
    cm = CompiledModel.load(compiled_dir)
    _, _, h, w = cm.input["shape"]
    x = real_frames(frames, (h, w))

    # one frame after another (latency), then frames spread over the cores (dataset throughput)
    numpy_serial_fps = best_rate(lambda: [cm.run_numpy(x[i:i + 1]) for i in range(frames)], frames)
    workers = min(default_workers(), frames)
    with NumpyFramePool(compiled_dir, workers, frames) as pool:
        pool.run(x)                                           # warm-up: decode, allocate
        # the frames stay in the shared input buffer, as they are in memory for onnxruntime
        numpy_fps = best_rate(pool.run, frames)
    with CodenetRunner(cm, pl="sim", engine="numpy") as net:
        dev = net.overlay.device
        net.run(x[:1])                                        # warm-up
        before, ran = dev.starts[net.ip.name], []
        sim_fps = best_rate(lambda: ran.extend(net.run(x[i:i + 1]) for i in range(frames)), frames)
        starts_per_frame = (dev.starts[net.ip.name] - before) / len(ran)

    ort_fps = ort_parallel_fps = ort_version = None
    if float_onnx is not None:
        import onnxruntime as ort
        ort_version = ort.__version__
        ort_fps, ort_parallel_fps = ort_rates(float_onnx, x, workers)

    mod = modelled(cm.layers, h)
    return {
        "input_size": h,
        "measured": {
            "numpy_fps": numpy_fps, "numpy_workers": workers, "numpy_one_frame_at_a_time_fps": numpy_serial_fps,
            "onnxruntime_fps": ort_fps, "onnxruntime_frames_in_parallel_fps": ort_parallel_fps,
            "numpy_vs_onnxruntime": (numpy_fps / ort_fps) if ort_fps else None,
            "numpy_vs_onnxruntime_frames_in_parallel": (numpy_fps / ort_parallel_fps) if ort_parallel_fps else None,
            "simulated_pl_fps": sim_fps, "starts_per_frame": starts_per_frame,
            "host_work_between_layers": "none: the whole program runs inside one ap_start",
            "frames": frames, "onnxruntime": ort_version, "float_onnx": str(float_onnx) if float_onnx else None,
            "host": "{} ({} cores), Python {}".format(platform.machine(), os.cpu_count(), platform.python_version()),
            "method": "best of 3 passes over the same real frames, batch 1, same run. numpy_fps: the "
                      "frames split over one worker process per core (single-threaded BLAS each), "
                      "frames in a shared input buffer, outputs written to shared arrays; "
                      "onnxruntime_fps: one session with onnxruntime's defaults (intra-op threads over "
                      "every core, spinning), frames one after another (how a user runs it); "
                      "onnxruntime_frames_in_parallel_fps: one "
                      "single-threaded session per core, the frames split over them",
        },
        "modelled": mod,
        "published_comparison": published_comparison(cm.layers, h, ours=mod),
        "model": str(compiled_dir),
    }


def print_bench(r):
    m, mod = r["measured"], r["modelled"]
    print("CoDeNet benchmark, {0}x{0} input".format(r["input_size"]))
    print("  measured on this machine ({}):".format(m["host"]))
    print("    numpy engine model        {:8.2f} frames/s (frames over {} worker processes; one at a time: "
          "{:.2f} frames/s)".format(m["numpy_fps"], m["numpy_workers"], m["numpy_one_frame_at_a_time_fps"]))
    if m["onnxruntime_fps"]:
        print("    onnxruntime (float ONNX)  {:8.2f} frames/s   numpy/onnxruntime = {:.2f}x".format(
            m["onnxruntime_fps"], m["numpy_vs_onnxruntime"]))
        print("    onnxruntime, frames over {} single-threaded sessions {:.2f} frames/s   numpy/that = {:.2f}x".format(
            m["numpy_workers"], m["onnxruntime_frames_in_parallel_fps"], m["numpy_vs_onnxruntime_frames_in_parallel"]))
    print("    starts per frame: {:g}; host work between layers: none".format(m["starts_per_frame"]))
    print("  MODELLED Ultra96-V2 (cycle model v2 of the engine as written, not measured on a board):")
    print("    {:.0f} MHz, PA=PE={}, AXI latency {} cycles: {:.1f} fps, latency {:.2f} ms ({:.1f} M cycles, "
          "{} loop entries, {} bursts, {} one-beat requests)".format(
              mod["clock_mhz"], mod["pa"], mod["axi_latency_cycles"], mod["fps"], mod["latency_ms"],
              mod["cycles_per_frame"] / 1e6, mod["loop_entries_per_frame"], mod["bursts_per_frame"],
              mod["single_beat_requests_per_frame"]))
    print("    fps by AXI latency: {}; trip counts alone (no latency, no pipeline depth): {:.1f} fps".format(
        ", ".join("L={}: {:.1f}".format(k, v) for k, v in mod["fps_by_axi_latency"].items()), mod["trip_count_fps"]))
    print("    DSP {} / 360, BRAM36 {} / 216, LUT {} / 70560".format(mod["dsp"], mod["bram36"], mod["lut"]))
    pc = r.get("published_comparison")
    if pc:
        print("    published system: {} fps measured; its structure under this model: {:.1f} fps; "
              "ours: {:.1f} fps".format(pc["published_measured_fps"], pc["model_with_published_host_work_fps"],
                                        pc["ours_fps"]))
