"""The `pynq-deploy` command line."""
import argparse
import json
import sys
import warnings
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


# ---- info -----------------------------------------------------------------------------------
def cmd_info(args):
    from .platform.manifest import available_overlays, load_manifest, overlays_dir
    from .platform.overlay import board_devices
    boards = board_devices()
    overlays = {}
    for name in available_overlays():
        m = load_manifest(overlays_dir() / name)
        models = {}
        for model_name in m.data.get("models", {}):
            d = m.model_dir(model_name)
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
            print("overlay {}: {} ({}; bitstream {})".format(
                name, o["description"], o["pl"], "present" if o["bitstream_present"] else "not built"))
            for model_name, mo in o["models"].items():
                print("  model {}: {}".format(model_name, mo["path"]))


# ---- classify -------------------------------------------------------------------------------
def cmd_classify(args):
    from .classifier import Classifier
    from .datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
    if args.dataset != "fashion-mnist":
        raise SystemExit("unknown dataset {!r} (supported: fashion-mnist)".format(args.dataset))
    images, labels = load_fashion_mnist("test")
    if args.limit is not None:
        if args.limit < 1:
            raise SystemExit("--limit must be >= 1")
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
    from .compiler.codenet_compiler import compile_onnx
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
    from .codenet_runner import CodenetRunner
    from .errors import InputError
    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError("cannot read input {}: {}".format(args.input, e))
    if x.dtype.kind != "f":
        raise InputError("input {} must be a float array (NCHW, as the ONNX model expects), got {}".format(
            args.input, x.dtype))
    with CodenetRunner(args.model_dir, pl=args.pl, engine=args.engine) as net:
        shape = net.model.input["shape"]
        if x.ndim == len(shape) - 1:
            x = x[None]
        if x.ndim != len(shape) or x.shape[0] < 1:
            raise InputError("input must have shape (N, {}, {}, {}), got {}".format(*shape[1:], list(x.shape)))
        frames = [net.run(x[i:i + 1]) for i in range(x.shape[0])]
        starts = net.overlay.device.starts[net.ip.name] if net.pl == "sim" else None
    outputs = {k: np.concatenate([f[k] for f in frames]) for k in frames[0]}
    out = Path(args.output)
    write_files_atomically(out.parent, [(out.name, lambda f: np.savez(f, **outputs))])
    print("ran {} frame(s) on the {} PL ({} engine{}): wrote {} to {}".format(
        x.shape[0], "simulated" if net.pl == "sim" else "board", net.engine,
        ", {} ap_start".format(starts) if starts is not None else "", ", ".join(sorted(outputs)), out))


def build_parser():
    p = argparse.ArgumentParser(prog="pynq-deploy", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="which PL is in use, which overlays and models are available")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("classify", help="classify a dataset with the BNN overlay")
    s.add_argument("--dataset", default="fashion-mnist")
    s.add_argument("--limit", type=int, default=None, help="first N test images only")
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
    s.add_argument("model", metavar="MODEL.onnx")
    s.add_argument("-o", "--output", required=True, metavar="DIR")
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
    s.add_argument("--limit", type=int, default=500, help="bnn: real test images")
    s.add_argument("--frames", type=int, default=3, help="codenet: real frames")
    s.add_argument("--input-size", type=int, choices=[256, 512], default=256,
                   help="codenet: input size of the default network")
    s.add_argument("--model", default=None)
    s.add_argument("--json", default=None, metavar="FILE")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("bench", help="measured host throughput and modelled Ultra96 figures")
    s.add_argument("target", choices=["bnn", "codenet", "detector"])
    s.add_argument("--images", type=int, default=2000, help="bnn: images for the throughput runs")
    s.add_argument("--csim-images", type=int, default=100, help="bnn: images for the C-sim run")
    s.add_argument("--model", default=None, help="bnn: model name or folder; codenet: compiled model folder")
    s.add_argument("--input-size", type=int, choices=[256, 512], default=256)
    s.add_argument("--frames", type=int, default=8,
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
    s.add_argument("--model", default=None, help="compiled detector folder (default: the shipped model)")
    s.add_argument("--backend", choices=["numpy", "csim"], default="numpy")
    s.add_argument("--limit", type=int, default=None, help="first N frames of the split")
    s.add_argument("--json", default=None, metavar="FILE")
    s.set_defaults(func=cmd_evaluate_detector)
    return p


def cmd_detect(args):
    from .detect_app import run
    run(args)
    return 0


def cmd_evaluate_detector(args):
    from .measure.detector_tasks import evaluate_detector
    r = evaluate_detector(model=args.model, video=args.video, split=args.split, voc=args.voc, labels=args.labels,
                          backend=args.backend, limit=args.limit)
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
        rc = args.func(args)
    except PynqDeployError as e:
        print("pynq-deploy: error: {}".format(e), file=sys.stderr)
        return 2
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
