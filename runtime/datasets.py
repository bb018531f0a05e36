"""Real datasets installed from the package registries: Fashion-MNIST as IDX files.

Debian's `dataset-fashion-mnist` puts the four IDX files under /usr/share/datasets/fashion-mnist.
Set PYNQ_DEPLOY_FASHION_MNIST to use another folder (e.g. the board, where the files are copied).
"""
import gzip
import os
from pathlib import Path

import numpy as np

from .errors import DatasetError  # noqa: F401  (re-exported: runtime.datasets.DatasetError)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}




def read_idx(path):
    """Read an IDX file (optionally gzip-compressed) into a numpy array."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError("IDX file not found: {}".format(path))
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError("cannot read IDX file {}: {}".format(path, e)) from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DatasetError("{} is not an IDX file (bad magic number)".format(path))
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError("{} is truncated (header)".format(path))
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    count = 1
    for d in shape:
        count *= d                                  # Python ints: no overflow on a forged header
    if len(data) - header != count * dtype.itemsize:
        raise DatasetError("{} is truncated or padded: header says shape {} ({} bytes of data), "
                           "file has {}".format(path, shape, count * dtype.itemsize,
                                                len(data) - header))
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def fashion_mnist_dir():
    return Path(os.environ.get("PYNQ_DEPLOY_FASHION_MNIST", str(FASHION_MNIST_DIR)))


def load_fashion_mnist(split="test"):
    """Return (images uint8 (N, 28, 28), labels uint8 (N,)) for split 'train' or 'test'."""
    if split not in ("train", "test"):
        raise ValueError("split must be 'train' or 'test', not {!r}".format(split))
    prefix = "train" if split == "train" else "t10k"
    folder = fashion_mnist_dir()
    images_path = folder / "{}-images-idx3-ubyte.gz".format(prefix)
    labels_path = folder / "{}-labels-idx1-ubyte.gz".format(prefix)
    if not images_path.is_file() or not labels_path.is_file():
        raise DatasetError(
            "Fashion-MNIST not found in {}: install it with "
            "`apt-get install dataset-fashion-mnist` (Debian) or set PYNQ_DEPLOY_FASHION_MNIST "
            "to a folder holding {}-images-idx3-ubyte.gz and {}-labels-idx1-ubyte.gz".format(
                folder, prefix, prefix))
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DatasetError("Fashion-MNIST files in {} disagree: images {}, labels {}".format(
            folder, images.shape, labels.shape))
    return images, labels
