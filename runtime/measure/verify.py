"""Bit-exactness checks between the levels of numerical truth, on real data."""
import numpy as np


def verify_bnn(limit=500, model=None, overlay="bnn", extra_levels=None):
    """Scores of the first `limit` Fashion-MNIST test images from: the HLS C-simulation and the
    numpy engine model (both through PYNQ on the simulated PL), plus `extra_levels` ({name:
    fn(layers, images) -> int scores}): the training side adds its PyTorch integer forward
    (`python -m training.verify bnn`; the runtime itself never imports the training code)."""
    from ..classifier import Classifier
    from ..datasets import load_fashion_mnist
    from ..engines.bnn_format import unpack_params
    images, labels = load_fashion_mnist("test")
    images, labels = images[:limit], labels[:limit]
    scores = {}
    for engine, level in (("csim", "hls_csim"), ("numpy", "numpy")):
        with Classifier(overlay=overlay, model=model, pl="sim", engine=engine) as clf:
            scores[level] = clf.scores(images)
            words = clf.model.words
    for name, fn in (extra_levels or {}).items():
        out = fn(unpack_params(words), images)
        scores[name] = np.asarray(out.numpy() if hasattr(out, "numpy") else out, np.int32)
    levels = list(scores)
    ref = scores["numpy"]
    bad = np.zeros(len(images), bool)
    pairwise = {}
    for i, a in enumerate(levels):
        for b in levels[i + 1:]:
            diff = np.any(scores[a] != scores[b], axis=1)
            pairwise["{} vs {}".format(a, b)] = int(diff.sum())
            bad |= diff
    return {"images": int(len(images)), "mismatches": int(bad.sum()), "levels": levels,
            "pairwise_mismatches": pairwise,
            "accuracy": float(np.mean(np.argmax(ref, 1) == labels)),
            "data": "Fashion-MNIST test split (first {} images)".format(len(images))}

