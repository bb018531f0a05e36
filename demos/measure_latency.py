#!/usr/bin/env python3
"""Latency per stage (pre-processing, input flush, PL compute, output invalidate, post-processing)
of the BNN classifier and the CoDeNet detector (frames in, boxes out; or any compiled CoDeNet
model with --codenet-model): warm-up, N timed runs, median and percentiles.
Writes latency.json, latency.csv and latency.png into --out.

On the board every stage is measured. On the simulated PL (no board, or --pl sim) the host
stages are measured on this machine and the PL stage is the engine's cycle model, in fields named
`modelled`; the simulator's own time is reported as `simulated_pl_wall` and is not the board's.

    python demos/measure_latency.py                                 # both overlays, 200 runs each
    python demos/measure_latency.py --overlay bnn --batch 64 --runs 500
    python demos/measure_latency.py --overlay codenet --codenet-model out/codenet_256/compiled
"""
import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--overlay", nargs="+", choices=["bnn", "codenet"], default=["bnn", "codenet"])
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch", type=int, default=1, help="bnn: images per engine start")
    p.add_argument("--codenet-model", default=None,
                   help="a compiled CoDeNet model folder (`pynq-deploy compile`), run with float input "
                        "and dequantized outputs; default: the shipped detector, frames in, boxes out")
    p.add_argument("--input-size", type=int, choices=[256, 512], default=256,
                   help="codenet: input size of the default test network")
    p.add_argument("--pl", choices=["auto", "board", "sim"], default="auto")
    p.add_argument("--engine", choices=["numpy", "csim"], default="numpy", help="simulated PL only")
    p.add_argument("--out", default="out/latency", help="output folder")
    args = p.parse_args(argv)

    from runtime.errors import PynqDeployError
    from runtime.measure import latency
    results = []
    try:
        if "bnn" in args.overlay:
            from runtime.classifier import Classifier
            from runtime.datasets import load_fashion_mnist
            images, _ = load_fashion_mnist("test")
            with Classifier(pl=args.pl, engine=args.engine, batch_size=max(args.batch, 1)) as clf:
                results.append(latency.measure(latency.bnn_pipeline(clf, images[:2000], args.batch),
                                               args.runs, args.warmup))
            latency.print_result(results[-1])
        if "codenet" in args.overlay and args.codenet_model is None:
            from runtime.detector import Detector
            from runtime.measure.detector_tasks import bench_frames
            with Detector(pl=args.pl, backend=args.engine) as det:
                results.append(latency.measure(latency.detector_pipeline(det, bench_frames(30)),
                                               args.runs, args.warmup))
            latency.print_result(results[-1])
        elif "codenet" in args.overlay:
            from runtime.codenet_runner import CodenetRunner
            from runtime.measure.codenet_tasks import resolve_model
            from runtime.vision.samples import sample_frames
            compiled_dir, _ = resolve_model(args.codenet_model, args.input_size)
            with CodenetRunner(str(compiled_dir), pl=args.pl, engine=args.engine) as net:
                results.append(latency.measure(latency.codenet_pipeline(net, sample_frames()),
                                               args.runs, args.warmup))
            latency.print_result(results[-1])
    except (PynqDeployError, ValueError) as e:
        print("measure_latency: error: {}".format(e), file=sys.stderr)
        return 2
    paths = latency.write_outputs(results, args.out)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
