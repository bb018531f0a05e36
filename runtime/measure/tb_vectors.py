"""Golden vectors for the HLS testbenches (`csim_design -argv DIR` of hls_src/<engine>/run_hls.tcl,
step `make -C overlays/<engine> vectors`), computed by the bit-exact numpy engine models on real data.

    python -m runtime.measure.tb_vectors bnn DIR [--images N] [--model NAME_OR_DIR]
    python -m runtime.measure.tb_vectors codenet DIR [--model COMPILED_DIR]

bnn (hls_src/bnn/bnn_tb.cpp): params.bin (little-endian uint64 words of the overlay's model),
images.bin (the first N Fashion-MNIST test images, uint8), scores.bin (expected int32 scores).
codenet (hls_src/codenet/FORMAT.md "Testbench vectors"): program.bin, weights.bin, arena_in.bin
(a real sample frame quantized into the arena), arena_out.bin (the arena after the numpy model
ran) and check.txt (the output regions).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

# bnn_top.cpp sizes the co-simulation buffers (m_axi depth hints) for this many images
BNN_COSIM_IMAGES = 4


def write_bnn_vectors(folder, images=BNN_COSIM_IMAGES, model=None):
    from ..compiler.bnn_model_file import load_bnn_model
    from ..datasets import load_fashion_mnist
    from ..engines.bnn_model import BnnEngineModel
    from ..platform.manifest import load_manifest, resolve_overlay_dir
    manifest = load_manifest(resolve_overlay_dir("bnn"))
    words = load_bnn_model(manifest.model_dir(model)).words
    x = load_fashion_mnist("test")[0][:images][..., None]
    engine = BnnEngineModel()
    engine.load_params(words)
    scores = engine.classify(x)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    words.astype("<u8").tofile(str(folder / "params.bin"))
    np.ascontiguousarray(x, np.uint8).tofile(str(folder / "images.bin"))
    scores.astype("<i4").tofile(str(folder / "scores.bin"))
    return {"images": int(x.shape[0]), "param_words": int(words.size)}


def write_codenet_vectors(folder, model=None):
    from ..compiler.codenet_compiler import CompiledModel
    from ..engines.codenet_model import run_program
    from .codenet_tasks import real_frames, resolve_model
    compiled_dir, _ = resolve_model(model)
    cm = CompiledModel.load(compiled_dir)
    _, _, h, w = cm.input["shape"]
    arena = cm.new_arena()
    off, n = cm.input["offset"], cm.input_bytes()
    cm.quantize_input(real_frames(1, (h, w))[0], out=arena[off:off + n])
    arena_in = arena.copy()
    run_program(cm.program, cm.weights, arena)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cm.program.astype("<u4").tofile(str(folder / "program.bin"))
    cm.weights.tofile(str(folder / "weights.bin"))
    arena_in.tofile(str(folder / "arena_in.bin"))
    arena.tofile(str(folder / "arena_out.bin"))
    names = [o["name"] for o in cm.outputs]
    (folder / "check.txt").write_text("# offset length name\n" + "".join(
        "{} {} {}\n".format(o, s, name) for (o, s), name in zip(cm.output_regions(), names)))
    return {"layers": cm.n_layers, "arena_bytes": int(arena.size), "model": str(compiled_dir)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("engine", choices=["bnn", "codenet"])
    p.add_argument("folder")
    p.add_argument("--images", type=int, default=BNN_COSIM_IMAGES, help="bnn: test images")
    p.add_argument("--model", default=None)
    args = p.parse_args(argv)
    if args.engine == "bnn":
        info = write_bnn_vectors(args.folder, args.images, args.model)
    else:
        info = write_codenet_vectors(args.folder, args.model)
    print("wrote {} testbench vectors to {}: {}".format(args.engine, args.folder, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
