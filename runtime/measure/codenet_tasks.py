"""CoDeNet tasks of the CLI: the default network, `verify codenet` and `bench codenet`.

The default network is the codenet overlay's default model, the shipped detector
(overlays/codenet/models/codenet_voc512/): a trained CoDeNet-1x W4A8 whose QONNX ships beside its
compiled program. The QONNX is compiled at the requested input size (256 or 512: the network is
fully convolutional) and cached. No torch is needed.
"""
import hashlib
import os
import platform
from pathlib import Path

import numpy as np

from ..engines.parallel import blas_single_threaded, default_workers
from .timing import best_rate

from ..errors import ModelError
from ..paths import cache_root, repo_root
from ..platform.zu3eg import budget_line


def _cache_root():
    return cache_root() / "codenet"


def _source_hash():
    h = hashlib.sha256()
    root = repo_root()
    for folder in ("runtime/compiler", "runtime/engines"):
        for p in sorted((root / folder).glob("*.py")):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def shipped_onnx():
    """The QONNX of the shipped detector (overlays/codenet/models/<default>/), the source of the
    default network of `verify codenet` and `bench codenet` at any input size."""
    from ..detector import default_model_path
    from ..compiler.codenet_compiler import CompiledModel
    d = default_model_path()
    cm = CompiledModel.load(d)
    name = (cm.meta.get("detector") or {}).get("onnx")
    if not name or not (d / name).is_file():
        raise ModelError("the shipped model {} has no ONNX beside its compiled program".format(d))
    return d, d / name


def float_reference(qonnx_model):
    """The QONNX graph with every Quant node replaced by Identity: the float network with the
    trained weights (the onnxruntime peer of `bench codenet`)."""
    import onnx
    from onnx import helper
    m = onnx.ModelProto()
    m.CopyFrom(qonnx_model)
    nodes = []
    for nd in m.graph.node:
        if nd.op_type in ("Quant", "BipolarQuant") and nd.domain.endswith("custom_op.general"):
            nodes.append(helper.make_node("Identity", [nd.input[0]], list(nd.output), name=nd.name))
        else:
            nodes.append(nd)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    used = {i for nd in nodes for i in nd.input}
    keep = [t for t in m.graph.initializer if t.name in used]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    ops = [o for o in m.opset_import if not o.domain.endswith("custom_op.general")]
    del m.opset_import[:]
    m.opset_import.extend(ops)
    return m


def default_model_dir(input_size=256):
    """The folder holding the default network at `input_size`: the shipped detector's QONNX
    compiled at that size (compiled/) and its float reference (codenet_float.onnx); cached by the
    hash of the ONNX and of the compiler's code. Needs no torch."""
    import onnx
    from ..compiler.codenet_compiler import compile_onnx
    from ..fileio import write_files_atomically
    shipped, onx_path = shipped_onnx()
    h = hashlib.sha256(onx_path.read_bytes())
    h.update(_source_hash().encode())
    out = _cache_root() / "{}_{}_{}".format(shipped.name, input_size, h.hexdigest()[:12])
    compiled = out / "compiled"
    if (compiled / "model.json").is_file() and (out / "codenet_float.onnx").is_file():
        return out
    onx = onnx.load(str(onx_path))
    names = _class_names(shipped)
    cm = compile_onnx(onx, input_size=input_size, class_names=names)
    cm.meta["detector"] = {"classes": names, "input_size": int(input_size), "onnx": onx_path.name,
                           "compiled_from": str(onx_path)}
    cm.save(compiled)
    flt = float_reference(onx).SerializeToString()
    write_files_atomically(out, [("codenet_float.onnx", lambda f: f.write(flt))])
    return out


def _class_names(model_dir):
    from ..compiler.codenet_compiler import CompiledModel
    return list(CompiledModel.load(model_dir).class_names or [])


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


def verify_codenet(model=None, frames=3, input_size=256, extra_levels=None):
    """C-simulation vs numpy engine model, both through PYNQ on the simulated PL, on real frames:
    every output byte of the arena's output tensors compared. extra_levels: {name: fn(uint8 NCHW
    frame batch) -> {output name: int array (N, C, H, W)}}; the training side adds its integer
    forward (`python -m training.verify codenet`)."""
    from ..codenet_runner import CodenetRunner
    from ..compiler.codenet_compiler import CompiledModel
    compiled_dir, _ = resolve_model(model, input_size)
    cm = CompiledModel.load(compiled_dir)
    _, _, h, w = cm.input["shape"]
    x = real_frames(frames, (h, w))
    outs = {}
    starts = {}
    for engine in ("csim", "numpy"):
        with CodenetRunner(cm, pl="sim", engine=engine) as net:
            outs[engine] = [cm.read_outputs_q(net.run_quantized(x[i:i + 1])) for i in range(frames)]
            starts[engine] = net.overlay.device.starts[net.ip.name]
    for name, fn in (extra_levels or {}).items():
        got = fn(x.astype(np.uint8))
        outs[name] = [{k: np.asarray(v[i:i + 1]) for k, v in got.items()} for i in range(frames)]
    levels = list(outs)
    mismatching = total = 0
    pairwise = {}
    for a in levels[1:]:
        bad = 0
        for fa, fb in zip(outs[levels[0]], outs[a]):
            for name in fa:
                bad += int(np.count_nonzero(fa[name] != fb[name]))
                if a == levels[1]:
                    total += int(fa[name].size)
        pairwise["{} vs {}".format(levels[0], a)] = bad
        mismatching += bad
    return {"frames": frames, "mismatching_outputs": mismatching, "output_values": total, "levels": levels,
            "pairwise_mismatches": pairwise,
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
    print("    fps by AXI latency: {}; trip counts alone (busiest DATAFLOW stage per layer; no latency, depth or "
          "fill): {:.1f} fps".format(
        ", ".join("L={}: {:.1f}".format(k, v) for k, v in mod["fps_by_axi_latency"].items()), mod["trip_count_fps"]))
    att = mod["latency_cycles_by_event_class"]
    print("    L={} vs L=0 adds {:.2f} M cycles; each class of memory event alone: {}".format(
        max(int(k) for k in mod["fps_by_axi_latency"]), att["all"] / 1e6,
        ", ".join("{} {:.2f} M".format(k, v / 1e6) for k, v in sorted(att.items(), key=lambda kv: -kv[1])
                  if k != "all" and v >= 0.01 * att["all"])))
    print("    " + budget_line(mod))
    pc = r.get("published_comparison")
    if pc:
        print("    published system: {} fps measured; its structure under this model: {:.1f} fps; "
              "ours: {:.1f} fps".format(pc["published_measured_fps"], pc["model_with_published_host_work_fps"],
                                        pc["ours_fps"]))
