"""Bit-exactness checks between the levels of numerical truth, on real data."""
import sys

import numpy as np

from ..paths import repo_root


def _torch_integer_forward():
    """training.bnn.model.integer_forward when torch and the training code are present, else None."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    root = str(repo_root())
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        from training.bnn.model import integer_forward
    except ImportError:
        return None
    return integer_forward


def verify_bnn(limit=500, model=None, overlay="bnn"):
    """Scores of the first `limit` Fashion-MNIST test images from: the HLS C-simulation and the
    numpy engine model (both through PYNQ on the simulated PL), and the PyTorch integer forward."""
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
    integer_forward = _torch_integer_forward()
    if integer_forward is not None:
        out = integer_forward(unpack_params(words), images)
        scores["torch_integer"] = np.asarray(out.numpy() if hasattr(out, "numpy") else out, np.int32)
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

