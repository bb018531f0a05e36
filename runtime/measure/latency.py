"""Latency per stage of one inference: pre-processing, input cache flush, PL compute, output cache
invalidate, post-processing; per layer where a figure exists. demos/measure_latency.py is its
command line, demos/notebooks/latency.ipynb its notebook.

A pipeline is three callables: `pre(item)` (host), `engine(x)` (the runtime's call that starts the
engine: its driver marks the flush / start / done / invalidated points, see HlsIP.timeline), and
`post(raw)` (host). Stage boundaries come from those marks, so whatever the engine call does on
the host before the flush (copying into the DMA buffer, quantizing) counts as pre-processing and
whatever it does after the invalidate (copying out, dequantizing) as post-processing. Adding a
stage function (e.g. the detector's decode) is adding it to `pre` or `post`.

On the board every stage is measured. On the simulated PL the host stages are measured for real;
the PL stage's wall time there is the simulator's, meaningless for the board, so it is reported
as `simulated_pl_wall` and the PL figure is the engine's cycle model, in fields named `modelled`.
"""
import platform
import time

import numpy as np

STAGES = ("pre-processing", "input flush", "PL compute", "output invalidate", "post-processing")
HOST_STAGES = ("pre-processing", "input flush", "output invalidate", "post-processing")
PERCENTILES = (5, 25, 75, 95, 99)
MARKS = ("flush", "start", "done", "invalidated")


class Pipeline:
    def __init__(self, name, ip, pre, engine, post, items, modelled, pl, engine_kind, describe):
        self.name, self.ip, self.pre, self.engine, self.post = name, ip, pre, engine, post
        self.items = items                # real inputs, cycled through the runs
        self.modelled = modelled          # {"pl_ms", "layers": [{name, op, cycles, ms}], "label"}
        self.pl, self.engine_kind, self.describe = pl, engine_kind, describe


def time_one(pipeline, item):
    """Seconds per stage of one inference of `item`."""
    marks = []
    pipeline.ip.timeline = marks
    try:
        t0 = time.perf_counter()
        x = pipeline.pre(item)
        raw = pipeline.engine(x)
        pipeline.post(raw)
        t_end = time.perf_counter()
    finally:
        pipeline.ip.timeline = None
    events = [e for e, _ in marks]
    if events != list(MARKS):
        raise RuntimeError("{}: expected one engine start per inference (marks {}), got {}".format(
            pipeline.name, list(MARKS), events))
    t = dict(marks)
    return {"pre-processing": t["flush"] - t0, "input flush": t["start"] - t["flush"],
            "PL compute": t["done"] - t["start"], "output invalidate": t["invalidated"] - t["done"],
            "post-processing": t_end - t["invalidated"]}


def summary_ms(seconds):
    """median, mean, min, max and percentiles (ms) of a list of durations in seconds."""
    ms = np.asarray(seconds, np.float64) * 1e3
    out = {"n": int(ms.size), "median_ms": float(np.median(ms)), "mean_ms": float(ms.mean()),
           "min_ms": float(ms.min()), "max_ms": float(ms.max())}
    for p in PERCENTILES:
        out["p{}_ms".format(p)] = float(np.percentile(ms, p))
    return out


def measure(pipeline, runs=200, warmup=20):
    """Warm-up, then `runs` timed inferences; -> the result dict (see the module docstring)."""
    if runs < 1 or warmup < 0:
        raise ValueError("runs must be >= 1 and warmup >= 0")
    n_items = len(pipeline.items)
    for i in range(warmup):
        time_one(pipeline, pipeline.items[i % n_items])
    samples = [time_one(pipeline, pipeline.items[i % n_items]) for i in range(runs)]
    per_stage = {s: [x[s] for x in samples] for s in STAGES}
    stages = {}
    for s in HOST_STAGES:
        stages[s] = {"measured": summary_ms(per_stage[s])}
    on_board = pipeline.pl == "board"
    pl = {"modelled": {"ms": pipeline.modelled["pl_ms"], "label": pipeline.modelled["label"]}}
    pl["measured" if on_board else "simulated_pl_wall"] = summary_ms(per_stage["PL compute"])
    stages["PL compute"] = pl
    host = [sum(x[s] for s in HOST_STAGES) for x in samples]
    result = {
        "overlay": pipeline.name, "pl": pipeline.pl, "engine": pipeline.engine_kind,
        "input": pipeline.describe, "runs": runs, "warmup": warmup,
        "host": {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                 "python": platform.python_version()},
        "stages": {s: stages[s] for s in STAGES},
        "host_stages_measured": summary_ms(host),
        "layers": {"modelled": pipeline.modelled["layers"],
                   "measured": None,
                   "note": "one engine start runs the whole network, so per-layer times are not "
                           "observable from the host; the per-layer figures are the cycle model's"},
    }
    if on_board:
        result["end_to_end_measured"] = summary_ms([sum(x.values()) for x in samples])
    else:
        result["end_to_end_host_measured_plus_pl_modelled_ms"] = (
            result["host_stages_measured"]["median_ms"] + pipeline.modelled["pl_ms"])
        result["note"] = ("simulated PL: host stages measured on this machine ({}), PL compute "
                          "MODELLED; simulated_pl_wall is the simulator's time, not the board's".format(
                              platform.machine()))
    return result


# ---- the two overlays ---------------------------------------------------------------------------
def bnn_pipeline(clf, images, batch=1):
    """The BNN classifier on real images (uint8 (N, 28, 28)), `batch` images per engine start."""
    from ..classifier import check_images
    from ..engines import bnn_config as cfg
    from .bnn_perf import modelled
    if not 1 <= batch <= clf.batch_size:
        raise ValueError("batch must be in 1..{} (the Classifier's batch_size)".format(clf.batch_size))
    items = [images[i:i + batch] for i in range(0, len(images) - batch + 1, batch)]
    if not items:
        raise ValueError("need at least {} images".format(batch))
    m = modelled()
    per_image_ms = 1e3 / m["images_per_s"]
    layers = [{"name": k, "cycles": int(v), "ms": v / (m["clock_mhz"] * 1e3)}
              for k, v in m["cycles_per_layer"].items()]

    def post(scores):
        order = np.argsort(-scores, axis=1, kind="stable")[:, :3]
        return [[clf.classes[j] for j in row] for row in order]

    return Pipeline(
        "bnn", clf.ip, pre=check_images, engine=clf.scores, post=post, items=items, pl=clf.pl,
        engine_kind=clf.engine, describe="{} real Fashion-MNIST test image(s) per start, {}x{}".format(
            batch, cfg.IN_H, cfg.IN_W),
        modelled={"pl_ms": m["latency_ms"] + (batch - 1) * per_image_ms, "layers": layers,
                  "label": "MODELLED: bnn_perf (pipeline latency + (batch - 1) / throughput at "
                           "{:g} MHz), not measured on a board".format(m["clock_mhz"])})


def codenet_pipeline(runner, frames):
    """A compiled CoDeNet-engine model on real frames (uint8 RGB HWC, any size): pre-processing is
    the resize to the model's input and the float NCHW layout; the runner quantizes into the arena
    (pre-processing too, before the flush), the engine runs, post-processing dequantizes every
    output. The detector's decode is one more function in `post` once it lands."""
    import cv2
    from .codenet_perf import modelled
    _, _, h, w = runner.model.input["shape"]

    def pre(rgb):
        interp = cv2.INTER_AREA if rgb.shape[0] > h else cv2.INTER_LINEAR
        x = cv2.resize(rgb, (w, h), interpolation=interp)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None], np.float32)

    m = modelled(runner.model.layers, h)
    layers = [{"name": r["name"], "op": r["op"], "cycles": int(r["cycles"]), "ms": r["ms"]} for r in m["layers"]]
    return Pipeline(
        "codenet", runner.ip, pre=pre, engine=runner.run_quantized, post=runner.model.read_outputs,
        items=frames, pl=runner.pl, engine_kind=runner.engine,
        describe="real sample frames resized to {}x{}, {} layers".format(w, h, runner.model.n_layers),
        modelled={"pl_ms": m["latency_ms"], "layers": layers, "label": m["label"]})


def detector_pipeline(det, frames_bgr):
    """The detector (runtime.Detector) on real BGR frames: pre-processing is the resize and colour
    conversion straight into the arena, post-processing the CenterNet decode to boxes."""
    from .codenet_perf import modelled
    s = det.input_size
    m = modelled(det.model.layers, s)
    layers = [{"name": r["name"], "op": r["op"], "cycles": int(r["cycles"]), "ms": r["ms"]} for r in m["layers"]]

    def engine(hw):
        det.run_pl(0)
        return hw
    return Pipeline(
        "codenet", det.runner.ip, pre=lambda bgr: det.preprocess(bgr, 0), engine=engine,
        post=lambda hw: det.postprocess(hw, 0), items=frames_bgr, pl=det.pl, engine_kind=det.backend,
        describe="the detector on real {}x{} frames -> {}x{}, {} layers, boxes out".format(
            frames_bgr[0].shape[1], frames_bgr[0].shape[0], s, s, det.model.n_layers),
        modelled={"pl_ms": m["latency_ms"], "layers": layers, "label": m["label"]})


# ---- output -------------------------------------------------------------------------------------
CSV_FIELDS = ("overlay", "pl", "row", "name", "kind", "n", "median_ms", "mean_ms", "min_ms", "max_ms") + tuple(
    "p{}_ms".format(p) for p in PERCENTILES)


def csv_rows(result):
    rows = []
    base = {"overlay": result["overlay"], "pl": result["pl"]}
    for stage, kinds in result["stages"].items():
        for kind, fig in kinds.items():
            row = dict(base, row="stage", name=stage, kind=kind)
            if kind == "modelled":
                row.update(n=0, median_ms=fig["ms"])
            else:
                row.update({k: fig[k] for k in fig if k in CSV_FIELDS})
            rows.append(row)
    for layer in result["layers"]["modelled"]:
        rows.append(dict(base, row="layer", name=layer["name"], kind="modelled", n=0, median_ms=layer["ms"]))
    return rows


def csv_text(results):
    import csv
    import io
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    for r in results:
        for row in csv_rows(r):
            w.writerow(row)
    return buf.getvalue()


STAGE_COLOURS = {"pre-processing": "#4c72b0", "input flush": "#dd8452", "PL compute": "#55a868",
                 "output invalidate": "#c44e52", "post-processing": "#8172b3"}


def plot(results, path):
    """Per overlay: a stacked bar of the stage medians (measured host stages; the PL stage measured
    on a board, modelled and hatched otherwise) and the modelled PL time per layer."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2 * len(results), 1, figsize=(10, 4.2 * len(results)), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 2.2] * len(results)})
    axes = axes[:, 0]
    for k, r in enumerate(results):
        ax = axes[2 * k]
        left = 0.0
        for stage in STAGES:
            figs = r["stages"][stage]
            modelled = "measured" not in figs
            ms = figs["modelled"]["ms"] if modelled else figs["measured"]["median_ms"]
            ax.barh(0, ms, left=left, color=STAGE_COLOURS[stage], hatch="//" if modelled else None,
                    edgecolor="black", linewidth=0.5,
                    label="{} {:.3f} ms{}".format(stage, ms, " (MODELLED)" if modelled else ""))
            left += ms
        ax.set_yticks([])
        ax.set_xlim(0, left * 1.02)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, frameon=False)
        where = ("all stages measured on the board" if r["pl"] == "board" else
                 "simulated PL: host stages measured on {}, PL compute MODELLED (hatched)".format(
                     r["host"]["machine"]))
        ax.set_title("{}: median {:.3f} ms per inference (ms axis); {}, {} runs".format(
            r["overlay"], left, where, r["runs"]), fontsize=9)
        ax = axes[2 * k + 1]
        layers = r["layers"]["modelled"]
        ax.bar(range(len(layers)), [l["ms"] for l in layers], color=STAGE_COLOURS["PL compute"], hatch="//",
               edgecolor="black", linewidth=0.3)
        ax.set_ylabel("ms (MODELLED)")
        ax.set_title("{}: PL time per layer from the cycle model (not measured)".format(r["overlay"]), fontsize=9)
        step = max(1, len(layers) // 40)
        ax.set_xticks(range(0, len(layers), step))
        ax.set_xticklabels([layers[i]["name"][-18:] for i in range(0, len(layers), step)], rotation=90, fontsize=6)
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)


def write_outputs(results, out_dir, stem="latency"):
    """JSON + CSV + PNG into out_dir (each written whole or not at all). -> the three paths."""
    import json
    import tempfile
    from pathlib import Path
    from ..fileio import write_files_atomically
    out_dir = Path(out_dir)
    text = json.dumps({"results": results}, indent=2).encode()
    csv_bytes = csv_text(results).encode()
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "plot.png"
        plot(results, png)
        png_bytes = png.read_bytes()
    names = [stem + ".json", stem + ".csv", stem + ".png"]
    write_files_atomically(out_dir, [(names[0], lambda f: f.write(text)), (names[1], lambda f: f.write(csv_bytes)),
                                     (names[2], lambda f: f.write(png_bytes))])
    return [out_dir / n for n in names]


def print_result(r, file=None):
    import sys
    file = file or sys.stdout
    print("{} on the {} PL ({} engine), {}: {} runs after {} warm-up".format(
        r["overlay"], "board" if r["pl"] == "board" else "simulated", r["engine"], r["input"],
        r["runs"], r["warmup"]), file=file)
    for stage in STAGES:
        for kind, fig in r["stages"][stage].items():
            if kind == "modelled":
                if r["pl"] == "board":
                    continue
                print("  {:<18} MODELLED  {:9.3f} ms".format(stage, fig["ms"]), file=file)
            else:
                print("  {:<18} {:<9} median {:9.3f} ms  p95 {:9.3f}  p99 {:9.3f}".format(
                    stage, "measured" if kind == "measured" else "sim wall", fig["median_ms"],
                    fig["p95_ms"], fig["p99_ms"]), file=file)
    if r["pl"] == "board":
        print("  end to end (measured): median {:.3f} ms".format(r["end_to_end_measured"]["median_ms"]), file=file)
    else:
        print("  end to end: host measured + PL modelled = {:.3f} ms".format(
            r["end_to_end_host_measured_plus_pl_modelled_ms"]), file=file)
