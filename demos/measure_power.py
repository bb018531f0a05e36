#!/usr/bin/env python3
"""Power and energy per inference on the Ultra96-V2, from the board's PMBus rails through PYNQ
(`get_rails()`, `DataRecorder`): an idle baseline, then sustained inference on the overlay;
mean power per rail group (board, PL, PS, DDR), energy per image / frame, a plot over time.
Writes power.json, power_samples.csv and power.png into --out.

Board only. Without power sensors (any machine that is not the board) it says so and exits with
status 3; it never reports a number it did not measure. On the simulated PL it refuses too: the
host's power is not the FPGA's.

    python3 demos/measure_power.py --overlay bnn --idle-s 10 --run-s 30
    python3 demos/measure_power.py --overlay codenet --codenet-model DIR
"""
import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

EXIT_NO_SENSORS = 3


def workload(args):
    """(context manager of the loaded overlay, function running one unit of work -> items)."""
    if args.overlay == "bnn":
        from runtime.classifier import Classifier
        from runtime.datasets import load_fashion_mnist
        images, _ = load_fashion_mnist("test")
        clf = Classifier(pl=args.pl, batch_size=args.batch)
        batch = images[:args.batch]
        return clf, lambda: len(clf.predict(batch))
    from runtime.codenet_runner import CodenetRunner
    from runtime.measure.codenet_tasks import real_frames, resolve_model
    compiled_dir, _ = resolve_model(args.codenet_model, args.input_size)
    net = CodenetRunner(str(compiled_dir), pl=args.pl)
    _, _, h, w = net.model.input["shape"]
    x = real_frames(1, (h, w))

    def one_frame():
        net.run_quantized(x)
        return 1
    return net, one_frame


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--overlay", choices=["bnn", "codenet"], default="bnn")
    p.add_argument("--idle-s", type=float, default=10.0, help="idle baseline before inference")
    p.add_argument("--run-s", type=float, default=30.0, help="sustained inference")
    p.add_argument("--interval-s", type=float, default=0.1, help="sensor sampling interval")
    p.add_argument("--batch", type=int, default=1024, help="bnn: images per engine start")
    p.add_argument("--codenet-model", default=None, help="compiled CoDeNet model folder")
    p.add_argument("--input-size", type=int, choices=[256, 512], default=256)
    p.add_argument("--pl", choices=["auto", "board"], default="auto")
    p.add_argument("--out", default="out/power")
    args = p.parse_args(argv)

    from runtime.errors import PynqDeployError
    from runtime.measure import power
    try:
        rails = power.board_rails()
        selected = power.find_rails(rails)
    except power.NoPowerSensors as e:
        print("measure_power: {}".format(e), file=sys.stderr)
        return EXIT_NO_SENSORS
    try:
        engine, work = workload(args)
    except PynqDeployError as e:
        print("measure_power: error: {}".format(e), file=sys.stderr)
        return 2
    with engine:
        if engine.pl != "board":
            print("measure_power: the overlay runs on the simulated PL here, so the rails would "
                  "show this host's load, not the FPGA's; build or copy the bitstream (see README, "
                  "'On the Ultra96-V2'). Nothing was measured.", file=sys.stderr)
            return EXIT_NO_SENSORS
        frame, items, seconds = power.record(rails, selected, work, args.idle_s, args.run_s, args.interval_s)
    result = power.analyse(frame, selected, items, seconds)
    result.update(overlay=args.overlay, label="MEASURED on the board's PMBus rails (pynq.get_rails)",
                  idle_s=args.idle_s, interval_s=args.interval_s)
    from pathlib import Path
    from runtime.cli import write_json
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "power.json", result)
    frame.to_csv(str(out / "power_samples.csv"))
    power.plot(frame, selected, out / "power.png", "{}: {} items in {:.1f} s (measured)".format(
        args.overlay, items, seconds))
    unit = "image" if args.overlay == "bnn" else "frame"
    for group, g in result["groups"].items():
        print("{:<6} idle {:6.3f} W  inference {:6.3f} W  {:8.4f} mJ per {} ({:.4f} mJ above idle)".format(
            group, g["idle_mean_w"], g["inference_mean_w"], g["energy_per_item_mj"], unit,
            g["dynamic_energy_per_item_mj"]))
    print("{:.1f} {}s/s; wrote {}".format(result["items_per_s"], unit, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
