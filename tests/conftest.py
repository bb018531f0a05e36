import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Never touch a real board from the test suite, even if one is present.
os.environ.setdefault("PYNQ_DEPLOY_PL", "sim")
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")


@pytest.fixture(scope="session")
def random_bnn_model(tmp_path_factory):
    """A compiled BNN model with random weights (platform tests must not depend on training)."""
    from runtime.compiler.bnn_model_file import save_bnn_model
    from runtime.engines.bnn_format import pack_params, random_layers
    words = pack_params(random_layers(np.random.default_rng(1234)))
    path = tmp_path_factory.mktemp("bnn_random")
    save_bnn_model(path, words, {"name": "random", "classes": ["c{}".format(i) for i in range(10)]})
    return path


@pytest.fixture(scope="session")
def fmnist_test():
    from runtime.datasets import load_fashion_mnist
    return load_fashion_mnist("test")


def require_torch():
    """torch is the optional `train` extra: CI installs it, so there its absence is a failure."""
    if os.environ.get("CI"):
        import torch  # noqa: F401  (fail loudly in CI)
        return torch
    return pytest.importorskip("torch", reason="the optional train extra (torch) is not installed")
