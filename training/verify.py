"""The third level of numerical truth, from the training side: `pynq-deploy verify` (C-simulation vs
numpy engine, in the runtime) plus the PyTorch integer forward of the training code.

    python -m training.verify bnn [--limit N] [--json FILE]
    python -m training.verify codenet [--frames N] [--input-size 256|512] [--json FILE]

codenet: the shipped detector's QAT checkpoint (training/codenet/checkpoints/<model>.pt) run by
training.codenet.intforward against the compiled program of its QONNX, on real frames.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from training.codenet.adapt import shipped_checkpoint


def codenet_integer_level(ckpt=None):
    """fn(uint8 NCHW frames) -> {output: int array} from the shipped model's training checkpoint."""
    import torch
    from training.codenet.deploy import load_qat_model
    from training.codenet.intforward import IntegerCoDeNet
    torch.set_num_threads(2)
    ckpt = ckpt or shipped_checkpoint()
    if not Path(ckpt).is_file():
        raise SystemExit("no QAT checkpoint {} for the shipped model".format(ckpt))
    model, _ = load_qat_model(ckpt)
    net = IntegerCoDeNet(model)

    def run(x):
        return {k: v[0].numpy() for k, v in net(x).items()}
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("target", choices=["bnn", "codenet"])
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--input-size", type=int, choices=[256, 512], default=256)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.target == "bnn":
        from runtime.measure.verify import verify_bnn
        from training.bnn.model import integer_forward
        r = verify_bnn(limit=args.limit, extra_levels={"torch_integer": integer_forward})
        bad = r["mismatches"]
        print("verify bnn: {} real test images, levels {}: {} mismatches".format(
            r["images"], ", ".join(r["levels"]), bad))
    else:
        from runtime.measure.codenet_tasks import verify_codenet
        r = verify_codenet(frames=args.frames, input_size=args.input_size,
                           extra_levels={"torch_integer": codenet_integer_level()})
        bad = r["mismatching_outputs"]
        print("verify codenet: {} real frames at {}, levels {}: {} mismatching output values ({} compared "
              "per level pair)".format(r["frames"], args.input_size, ", ".join(r["levels"]), bad, r["output_values"]))
    for pair, n in r["pairwise_mismatches"].items():
        print("  {}: {}".format(pair, n))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1, default=lambda o: o.tolist() if isinstance(
            o, np.ndarray) else int(o)))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
