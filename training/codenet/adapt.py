"""Adapt the shipped detector to your own camera: teacher labels of your video -> fine-tuning from
the shipped model -> QAT -> QONNX export -> compile -> held-out AP, before and after.

    python -m training.codenet.adapt --video MY.mp4 [--video MORE.mp4 ...] --out DIR
        [--float-iters 300] [--qat-iters 100] [--batch 12] [--device auto]

Each video's first 80 % trains and its last 20 % is held out (never trained on). The teacher (a
COCO detector, `make teacher`) labels every frame (cached). The result, DIR/compiled/, is a
detector the runtime loads like the shipped one:

    python demos/run_detector.py MY.mp4 --model DIR/compiled --headless --output out.mp4

DIR/adapt_report.json holds the held-out AP50 of the shipped model and of the adapted one on the
same frames.
"""
import argparse
import json
import sys
from pathlib import Path

from runtime.fileio import write_files_atomically

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


def shipped_checkpoint():
    from runtime.detector import default_model_path
    return CHECKPOINTS / (default_model_path().name + ".pt")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", action="append", required=True, help="your video (repeat for several)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--float-iters", type=int, default=300)
    ap.add_argument("--qat-iters", type=int, default=100)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--init", default=None, help="checkpoint to start from (default: the shipped model's)")
    args = ap.parse_args(argv)
    from training.teacher.labels import label_video
    from runtime.measure.detector_tasks import evaluate_detector
    videos = [Path(v) for v in args.video]
    for v in videos:
        if not v.is_file():
            raise SystemExit("adapt: video not found: {}".format(v))
        label_video(v)                                   # teacher labels, cached (TeacherMissing names `make teacher`)
    init = Path(args.init) if args.init else shipped_checkpoint()
    if not init.is_file():
        raise SystemExit("adapt: no checkpoint to start from: {}".format(init))
    out = Path(args.out)
    from training.codenet.train_detector import main as train
    rc = train(["--out", str(out), "--init", str(init), "--video", *map(str, videos), "--photos",
                "--float-iters", str(args.float_iters), "--qat-iters", str(args.qat_iters),
                "--batch", str(args.batch), "--lr", str(args.lr), "--qat-lr", str(args.lr / 5),
                "--device", args.device, "--eval-every", "0"])
    if rc:
        return rc
    report = {"videos": [str(v) for v in videos], "init": str(init), "adapted": {}, "shipped": {}}
    for v in videos:
        for key, model in (("shipped", None), ("adapted", out / "compiled")):
            r = evaluate_detector(model=model, video=v, split="heldout")
            report[key][v.name] = {"ap50": r["ap50"], "map50": r["map50"], "frames": r["frames"],
                                   "ground_truth": r["ground_truth"]}
        print("adapt: {} held-out frames of {}: mAP50 shipped {} -> adapted {}".format(
            report["adapted"][v.name]["frames"], v.name, _fmt(report["shipped"][v.name]["map50"]),
            _fmt(report["adapted"][v.name]["map50"])))
        for c, a in report["adapted"][v.name]["ap50"].items():
            print("  {:<12} AP50 {} -> {}".format(c, _fmt(report["shipped"][v.name]["ap50"].get(c)), _fmt(a)))
    write_files_atomically(out, [("adapt_report.json", lambda f: f.write(json.dumps(report, indent=1).encode()))])
    print("adapt: the adapted detector is {} (load it with --model)".format(out / "compiled"))
    return 0


def _fmt(v):
    return "n/a" if v is None else "{:.3f}".format(v)


if __name__ == "__main__":
    sys.exit(main())
