"""The `pynq-deploy` command line.

User errors (a bad file, argument or input) print one line and exit with code 2; `--debug`
shows the traceback instead. Output paths are checked before any work starts."""
import argparse
import json
import os
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .fileio import write_files_atomically


def _quiet_imports():
    # pynqutils imports the deprecated pkg_resources; its warning is noise for our users
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="pynqutils")


def write_json(path, data):
    """Write JSON atomically (a crash leaves the old file or none, never half of one)."""
    if path is None:
        return
    path = Path(path)
    text = (json.dumps(data, indent=2, default=_json_default) + "\n").encode()
    write_files_atomically(path.parent, [(path.name, lambda f: f.write(text))])


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError("not JSON serialisable: {!r}".format(type(o)))


# ---- argument and output checks -----------------------------------------------------------
def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an integer >= 1, got {!r}".format(text))
    if value < 1:
        raise argparse.ArgumentTypeError("must be an integer >= 1, got {}".format(value))
    return value


def _writable_parent(path, what):
    from .errors import InputError
    parent = path.parent.resolve()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(str(parent), os.W_OK | os.X_OK):
        raise InputError("{} {}: cannot create files under {} (not a writable directory)".format(what, path, parent))


def check_output_file(path, what):
    """Refuse, before any work, an output file that cannot be written."""
    from .errors import InputError
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise InputError("{} {} is a directory; give a file name".format(what, path))
    if path.exists() and not os.access(str(path), os.W_OK):
        raise InputError("{} {} exists and is not writable".format(what, path))
    _writable_parent(path, what)


def check_output_dir(path, what):
    from .errors import InputError
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError("{} {} exists and is not a directory".format(what, path))
    if path.is_dir() and not os.access(str(path), os.W_OK | os.X_OK):
        raise InputError("{} {} is not writable".format(what, path))
    _writable_parent(path, what)


def check_outputs(args):
    for attr, what in (("json", "--json"), ("predictions", "--predictions")):
        value = getattr(args, attr, None)
        if isinstance(value, str):
            check_output_file(value, what)
    if args.command == "run":
        check_output_file(args.output, "--output")
    if args.command == "compile":
        if args.output is None and not args.recompile:
            from .errors import InputError
            raise InputError("compile needs -o/--output DIR (or --recompile DIR)")
        check_output_dir(args.model if args.recompile else args.output, "--output")


# ---- info -----------------------------------------------------------------------------------
def cmd_info(args):
    from .errors import PynqDeployError
    from .platform.manifest import available_overlays, load_manifest, overlays_dir
    from .platform.overlay import board_devices
    boards = board_devices()
    overlays = {}
    for name in available_overlays():
        try:
            m = load_manifest(overlays_dir() / name)
        except PynqDeployError as e:      # one broken overlay must not hide the others
            overlays[name] = {"error": str(e)}
            continue
        models = {}
        for model_name in m.data.get("models", {}):
            try:
                d = m.model_dir(model_name)
            except PynqDeployError as e:
                models[model_name] = {"error": str(e), "present": False}
                continue
            meta = d / "model.json"
            models[model_name] = {"path": str(d), "present": meta.is_file()}
        overlays[name] = {
            "description": m.data.get("description", ""),
            "bitstream": str(m.bitstream_path), "bitstream_present": m.bitstream_path.is_file(),
            "hwh_present": m.hwh_path.is_file(), "clock_mhz": m.clock_mhz,
            "ips": {k: v["vlnv"] for k, v in m.ips.items()}, "models": models,
            "pl": "board" if boards and m.bitstream_path.is_file() and m.hwh_path.is_file() else "simulated",
        }
    info = {"pl": "board" if boards else "simulated",
            "board_devices": [getattr(d, "name", d.tag) for d in boards],
            "engines": ["numpy", "csim"], "overlays": overlays}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print("PL: {}".format(info["pl"]))
        for name, o in overlays.items():
            if "error" in o:
                print("overlay {}: BROKEN: {}".format(name, o["error"]))
                continue
            print("overlay {}: {} ({}; bitstream {})".format(
                name, o["description"], o["pl"], "present" if o["bitstream_present"] else "not built"))
            for model_name, mo in o["models"].items():
                print("  model {}: {}".format(model_name, mo.get("path") or "BROKEN: " + mo["error"]))


# ---- classify -------------------------------------------------------------------------------
def cmd_classify(args):
    from .classifier import Classifier
    from .datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
    from .errors import InputError
    if args.dataset != "fashion-mnist":
        raise InputError("unknown dataset {!r} (supported: fashion-mnist)".format(args.dataset))
    images, labels = load_fashion_mnist("test")
    if args.limit is not None:
        images, labels = images[:args.limit], labels[:args.limit]
    with Classifier(overlay=args.overlay, model=args.model, pl=args.pl, engine=args.engine) as clf:
        r = clf.evaluate(images, labels, progress=not args.quiet)
        result = {"accuracy": r["accuracy"], "images": r["images"], "images_per_s": r["images_per_s"],
                  "seconds": r["seconds"], "engine": clf.engine, "pl": clf.pl,
                  "overlay": clf.manifest.name, "model": clf.model.name}
        confusion = np.zeros((10, 10), np.int64)
        np.add.at(confusion, (labels.astype(np.int64), r["predictions"]), 1)
        result["per_class_accuracy"] = {FASHION_MNIST_CLASSES[i]: float(confusion[i, i] / max(confusion[i].sum(), 1))
                                        for i in range(10)}
    if args.predictions:
        np.save(args.predictions, r["predictions"])
    write_json(args.json, result)
    print("{} Fashion-MNIST test images on the {} PL ({} engine): accuracy {:.4f}, {:.0f} images/s".format(
        result["images"], "simulated" if result["pl"] == "sim" else "board", result["engine"],
        result["accuracy"], result["images_per_s"]))
    for i in range(min(5, len(labels))):
        print("  image {}: predicted {:<12} true {}".format(
            i, FASHION_MNIST_CLASSES[r["predictions"][i]], FASHION_MNIST_CLASSES[labels[i]]))
    return result


# ---- verify ---------------------------------------------------------------------------------
def cmd_verify(args):
    if args.target == "bnn":
        from .measure.verify import verify_bnn
        result = verify_bnn(limit=args.limit, model=args.model)
        write_json(args.json, result)
        print("verify bnn: {} real test images, levels {}: {} mismatches".format(
            result["images"], ", ".join(result["levels"]), result["mismatches"]))
        for pair, n in result["pairwise_mismatches"].items():
            print("  {}: {} mismatching images".format(pair, n))
        return 0 if result["mismatches"] == 0 else 1
    from .measure.codenet_tasks import verify_codenet
    result = verify_codenet(model=args.model, frames=args.frames, input_size=args.input_size)
    write_json(args.json, result)
    print("verify codenet: {} real frames at {}x{}, levels {}: {} mismatching output values".format(
        result["frames"], result["input_shape"][2], result["input_shape"][3], ", ".join(result["levels"]),
        result["mismatching_outputs"]))
    return 0 if result["mismatching_outputs"] == 0 else 1


# ---- profile --------------------------------------------------------------------------------
def cmd_profile(args):
    """One real frame through the CoDeNet engine with the per-layer profile on: a table of the
    engine's per-layer cycle counters (measured on a board, the cycle model's in simulation)."""
    from .codenet_runner import CodenetRunner
    from .errors import InputError
    from .measure.codenet_tasks import real_frames, resolve_model
    if args.size not in ("256", "512"):
        raise InputError("--size must be 256 or 512, got {!r}".format(args.size))
    compiled_dir, _ = resolve_model(args.model, int(args.size))
    with CodenetRunner(compiled_dir, pl=args.pl, engine=args.engine, profile=True) as net:
        _, _, h, w = net.model.input["shape"]
        net.run(real_frames(1, (h, w)))
        prof = net.profile()
    prof["input_size"] = int(h)
    label = prof["source"].upper()
    print("per-layer profile, {} ({}x{}, {} layers, {:g} MHz): {}".format(
        label, h, w, len(prof["layers"]), prof["clock_mhz"],
        "the engine's cycle counter" if prof["source"] == "measured" else
        "the cycle model's counts (simulated PL; nothing measured)"))
    print("{:>4}  {:<40} {:<8} {:>10} {:>10} {:>6}".format("#", "layer", "op", "cycles", "us", "share"))
    total = prof["total_cycles"] or 1
    for r in prof["layers"]:
        print("{:>4}  {:<40} {:<8} {:>10,} {:>10.1f} {:>5.1f}%".format(
            r["index"], r["name"][:40], r["op"], r["cycles"], r["us"], 100.0 * r["cycles"] / total))
    print("total ({}): {:,} cycles = {:.3f} ms = {:.1f} fps at {:g} MHz".format(
        prof["source"], prof["total_cycles"], prof["total_us"] / 1e3,
        1e6 / prof["total_us"] if prof["total_us"] else float("inf"), prof["clock_mhz"]))
    if args.json:
        write_json(args.json, prof)
    return prof


# ---- bench ----------------------------------------------------------------------------------
def cmd_bench(args):
    if args.target == "detector":
        from .measure.detector_tasks import bench_detector, print_bench
        result = bench_detector(model=args.model, frames=args.frames if args.frames != 8 else 120)
        write_json(args.json, result)
        print_bench(result)
        return result
    if args.target == "bnn":
        from .measure.bench_bnn import bench_bnn, print_bench
        result = bench_bnn(images=args.images, csim_images=args.csim_images, model=args.model)
    else:
        from .measure.codenet_tasks import bench_codenet, print_bench
        result = bench_codenet(model=args.model, input_size=args.input_size, frames=args.frames)
    write_json(args.json, result)
    print_bench(result)
    return result


# ---- compile / run (CoDeNet engine) ----------------------------------------------------------
def cmd_compile(args):
    from .compiler.codenet_compiler import compile_onnx, recompile_folder
    if args.recompile:
        model = recompile_folder(args.model)
        print("recompiled {}: {} layers (program {} words, weights {} bytes, arena {} bytes)".format(
            args.model, model.n_layers, model.program.size, model.weights.size, model.arena_size))
        return
    names = args.classes.split(",") if args.classes else None
    model = compile_onnx(args.model, class_names=names)
    out = Path(args.output)
    model.save(out)
    report = model.report_text()
    write_files_atomically(out, [("report.txt", lambda f: f.write((report + "\n").encode()))])
    print(report)
    print("compiled {} layers into {} (program {} words, weights {} bytes, arena {} bytes)".format(
        model.n_layers, out, model.program.size, model.weights.size, model.arena_size))


def cmd_run(args):
    """Frames are read from the input file (memory-mapped) and their outputs written to disk one
    frame at a time: memory stays flat whatever the number of frames."""
    from .codenet_runner import CodenetRunner
    from .errors import InputError
    try:
        x = np.load(args.input, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise InputError("cannot read input {}: {}".format(args.input, e))
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise InputError("input {} must be a float array (NCHW, as the ONNX model expects), got {}".format(
            args.input, getattr(x, "dtype", type(x).__name__)))
    out = Path(args.output)
    with CodenetRunner(args.model_dir, pl=args.pl, engine=args.engine) as net:
        shape = net.model.input["shape"]
        if x.ndim == len(shape) - 1:
            x = x[None]
        if x.ndim != len(shape) or x.shape[0] < 1:
            raise InputError("input must have shape (N, {}, {}, {}), got {}".format(*shape[1:], list(x.shape)))
        before = net.overlay.device.starts[net.ip.name] if net.pl == "sim" else None
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=str(out.parent), prefix="." + out.name + ".") as tmp:
            files = {}
            for i in range(x.shape[0]):
                frame = net.run(np.asarray(x[i:i + 1]))
                for k, v in frame.items():
                    if k not in files:
                        files[k] = np.lib.format.open_memmap(
                            os.path.join(tmp, "{}.npy".format(len(files))), mode="w+", dtype=v.dtype,
                            shape=(x.shape[0],) + v.shape[1:])
                    files[k][i] = v[0]
            names = {k: m.filename for k, m in files.items()}
            for m in files.values():
                m.flush()
            del files, m
            write_files_atomically(out.parent, [(out.name, lambda f: _zip_npy_files(f, names))])
        starts = net.overlay.device.starts[net.ip.name] - before if net.pl == "sim" else None
    print("ran {} frame(s) on the {} PL ({} engine{}): wrote {} to {}".format(
        x.shape[0], "simulated" if net.pl == "sim" else "board", net.engine,
        ", {} ap_start".format(starts) if starts is not None else "", ", ".join(sorted(names)), out))


def _zip_npy_files(f, names):
    """An .npz (what np.savez writes: one NAME.npy per array) from .npy files on disk, copied
    in chunks."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for key, path in names.items():
            z.write(path, arcname=key + ".npy")


# ---- soak -----------------------------------------------------------------------------------
def cmd_soak(args):
    from .soak import soak

    def progress(done, total, rss):
        if not args.quiet:
            sys.stderr.write("\r{}/{} frames, RSS {:.1f} MiB".format(done, total, rss))
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()
    result = soak(args.target, args.frames, progress=progress, model=args.model, engine=args.engine)
    write_json(args.json, result)
    print("soak {}: {} frames; RSS {start} MiB at start, {after_1000} after 1,000, {end} at the end "
          "(peak {peak}); live buffers {b} -> {e}; {f1} frames/s first 1,000, {f2} last 1,000".format(
              args.target, result["frames"], b=result["live_buffers"]["baseline"],
              e=result["live_buffers"]["end"], f1=result["fps"]["first_1000"], f2=result["fps"]["last_1000"],
              **result["rss_mb"]))
    return result


def build_parser():
    p = argparse.ArgumentParser(prog="pynq-deploy", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser

    def add_parser(name, **kw):
        return add(name, parents=[common], **kw)
    sub.add_parser = add_parser

    s = sub.add_parser("info", help="which PL is in use, which overlays and models are available")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("classify", help="classify a dataset with the BNN overlay")
    s.add_argument("--dataset", default="fashion-mnist")
    s.add_argument("--limit", type=positive_int, default=None, help="first N test images only")
    s.add_argument("--engine", choices=["numpy", "csim"], default="numpy",
                   help="simulated PL: bit-exact numpy model or C-simulation of the HLS code")
    s.add_argument("--pl", choices=["auto", "board", "sim"], default="auto")
    s.add_argument("--overlay", default="bnn")
    s.add_argument("--model", default=None, help="model name or folder (default: the overlay's)")
    s.add_argument("--json", default=None, metavar="FILE")
    s.add_argument("--predictions", default=None, metavar="FILE.npy", help="save predicted labels")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_classify)

    s = sub.add_parser("compile", help="compile a quantized ONNX model (QDQ or QONNX) for the CoDeNet engine")
    s.add_argument("model", metavar="MODEL.onnx", help="the ONNX (or, with --recompile, a compiled model folder)")
    s.add_argument("-o", "--output", default=None, metavar="DIR", help="output folder (required unless --recompile)")
    s.add_argument("--recompile", action="store_true",
                   help="recompile the compiled model folder MODEL in place from the ONNX beside it (meta.detector."
                        "onnx), same input size, classes and metadata (after an engine layout change)")
    s.add_argument("--classes", default=None, help="comma-separated class names")
    s.set_defaults(func=cmd_compile)

    s = sub.add_parser("run", help="run a compiled CoDeNet-engine model on an input .npy")
    s.add_argument("model_dir", metavar="DIR")
    s.add_argument("--input", required=True, metavar="X.npy", help="float NCHW batch as the ONNX model expects")
    s.add_argument("--output", required=True, metavar="Y.npz")
    s.add_argument("--engine", choices=["numpy", "csim"], default="numpy")
    s.add_argument("--pl", choices=["auto", "board", "sim"], default="auto")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("verify", help="check the levels of numerical truth agree bit for bit")
    s.add_argument("target", choices=["bnn", "codenet"])
    s.add_argument("--limit", type=positive_int, default=500, help="bnn: real test images")
    s.add_argument("--frames", type=positive_int, default=3, help="codenet: real frames")
    s.add_argument("--input-size", type=int, choices=[256, 512], default=256,
                   help="codenet: input size of the default network")
    s.add_argument("--model", default=None)
    s.add_argument("--json", default=None, metavar="FILE")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("profile", help="per-layer cycles of one frame on the CoDeNet engine (measured on a "
                                       "board, modelled in simulation)")
    s.add_argument("target", choices=["codenet"])
    s.add_argument("--size", default="256", help="input size of the default network: 256 or 512")
    s.add_argument("--model", default=None, help="a compiled model folder instead of the default network")
    s.add_argument("--pl", choices=["auto", "board", "sim"], default="auto")
    s.add_argument("--engine", choices=["numpy", "csim"], default="numpy",
                   help="simulated PL: bit-exact numpy model or C-simulation of the HLS code")
    s.add_argument("--json", default=None, metavar="FILE")
    s.set_defaults(func=cmd_profile)

    s = sub.add_parser("bench", help="measured host throughput and modelled Ultra96 figures")
    s.add_argument("target", choices=["bnn", "codenet", "detector"])
    s.add_argument("--images", type=positive_int, default=2000, help="bnn: images for the throughput runs")
    s.add_argument("--csim-images", type=positive_int, default=100, help="bnn: images for the C-sim run")
    s.add_argument("--model", default=None, help="bnn: model name or folder; codenet: compiled model folder")
    s.add_argument("--input-size", type=int, choices=[256, 512], default=256)
    s.add_argument("--frames", type=positive_int, default=8,
                   help="codenet: frames for the throughput runs (default 8); detector: frames (default 120)")
    s.add_argument("--json", default=None, metavar="FILE")
    s.set_defaults(func=cmd_bench)

    from .detect_app import add_arguments
    s = add_arguments(sub.add_parser("detect", help="run the detector on a camera, video, image or folder "
                                                    "(same as demos/run_detector.py)"))
    s.set_defaults(func=cmd_detect)

    s = sub.add_parser("evaluate-detector", help="held-out AP50 of a compiled detector (teacher labels of a "
                                                 "video, or a VOCdevkit's true labels)")
    s.add_argument("--video", default=None, help="a video the teacher has labelled")
    s.add_argument("--split", choices=["heldout", "all", "train"], default="heldout")
    s.add_argument("--voc", default=None, metavar="DIR", help="a VOCdevkit folder (true labels)")
    s.add_argument("--labels", default=None, metavar="FILE.npz", help="teacher labels file (default: the cache)")
    s.add_argument("--ignore-band", action="store_true",
                   help="teacher labels: its uncertain-band boxes become ignore regions (default: left out)")
    s.add_argument("--model", default=None, help="compiled detector folder (default: the shipped model)")
    s.add_argument("--backend", choices=["numpy", "csim"], default="numpy")
    s.add_argument("--limit", type=positive_int, default=None, help="first N frames of the split")
    s.add_argument("--json", default=None, metavar="FILE")
    s.set_defaults(func=cmd_evaluate_detector)

    from .soak import TARGETS
    s = sub.add_parser("soak", help="many frames through one object: RSS, live buffers and speed over time")
    s.add_argument("target", choices=sorted(TARGETS))
    s.add_argument("--frames", type=positive_int, default=10000)
    s.add_argument("--model", default=None, help="bnn: model name or folder; codenet: compiled model folder")
    s.add_argument("--engine", choices=["numpy", "csim"], default="numpy")
    s.add_argument("--json", default=None, metavar="FILE")
    s.add_argument("--quiet", action="store_true", help="no progress line")
    s.set_defaults(func=cmd_soak)
    return p


def cmd_detect(args):
    from .detect_app import run
    run(args)
    return 0


def cmd_evaluate_detector(args):
    from .measure.detector_tasks import evaluate_detector
    r = evaluate_detector(model=args.model, video=args.video, split=args.split, voc=args.voc, labels=args.labels,
                          backend=args.backend, limit=args.limit, ignore_band=args.ignore_band)
    write_json(args.json, r)
    print("evaluate-detector: {} frames ({}), mAP50 {}".format(
        r["frames"], r["source"].get("split"), "n/a" if r["map50"] is None else "{:.4f}".format(r["map50"])))
    for c, v in r["ap50"].items():
        print("  {:<12} AP50 {:.4f} ({} ground-truth boxes)".format(c, v, r["ground_truth"][c]))
    return 0


def main(argv=None):
    _quiet_imports()
    from .errors import PynqDeployError
    args = build_parser().parse_args(argv)
    try:
        check_outputs(args)
        rc = args.func(args)
    except PynqDeployError as e:
        if args.debug:
            raise
        lines = str(e).strip().splitlines() or [type(e).__name__]
        more = " (more with --debug)" if len(lines) > 1 else ""
        print("pynq-deploy: error: {}{}".format(lines[0], more), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("pynq-deploy: interrupted", file=sys.stderr)
        return 130
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
