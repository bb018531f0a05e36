"""Compiled BNN models: `params.npy` (the packed uint64 words the engine loads) + `model.json`.

Loading checks everything before anything reaches the engine: files present, JSON valid, the
array intact (sha256), the whole model (metadata and array) unchanged since it was written
(`model_sha256`, required), the right format and size for the engine's on-chip buffers.
"""
import hashlib
import json
from pathlib import Path

import numpy as np

from ..engines import bnn_config as cfg
from ..errors import ModelError
from ..fileio import write_files_atomically
from .model_files import check_model_sha256, load_npy, with_model_sha256

MODEL_FORMAT = "pynq-deploy/bnn-model"
PARAMS_FILE, META_FILE = "params.npy", "model.json"


class BnnModelFile:
    def __init__(self, path, words, meta):
        self.path = Path(path)
        self.words = words
        self.meta = meta
        self.classes = list(meta.get("classes") or [str(i) for i in range(cfg.NUM_CLASSES)])

    @property
    def name(self):
        return self.meta.get("name", self.path.name)


def params_sha256(words):
    return hashlib.sha256(np.ascontiguousarray(words, dtype="<u8").tobytes()).hexdigest()


def load_bnn_model(path):
    path = Path(path)
    if not path.is_dir():
        raise ModelError("BNN model folder not found: {}".format(path))
    meta_path, params_path = path / META_FILE, path / PARAMS_FILE
    for p in (meta_path, params_path):
        if not p.is_file():
            raise ModelError("BNN model {} is incomplete: {} is missing".format(path, p.name))
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError("BNN model {}: {} is corrupt: {}".format(path, META_FILE, e)) from e
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise ModelError("BNN model {}: {} is not a {} file".format(path, META_FILE, MODEL_FORMAT))
    words = load_npy(params_path, "BNN model {}".format(path))
    if words.dtype != np.dtype("<u8") or words.ndim != 1:
        raise ModelError("BNN model {}: {} must be a 1-D little-endian uint64 array, got {} {}".format(
            path, PARAMS_FILE, words.dtype, words.shape))
    if words.size > cfg.PARAM_WORDS:
        raise ModelError("BNN model {} is too large for the engine's on-chip buffers: {} parameter words, "
                         "the bnn overlay holds {} (its network is fixed in hls_src/bnn/bnn_config.h)".format(
                             path, words.size, cfg.PARAM_WORDS))
    if words.size < cfg.PARAM_WORDS:
        raise ModelError("BNN model {}: {} holds {} words, the engine needs exactly {} "
                         "(truncated, or built for another network)".format(
                             path, PARAMS_FILE, words.size, cfg.PARAM_WORDS))
    if meta.get("params_sha256") != params_sha256(words):
        raise ModelError("BNN model {}: {} does not match the sha256 in {} (field params_sha256; corrupt file{})".format(
            path, PARAMS_FILE, META_FILE, "" if "params_sha256" in meta else ": the field is missing"))
    check_model_sha256("BNN model {}: {}".format(path, META_FILE), meta, [words])
    classes = meta.get("classes")
    if classes is not None and (not isinstance(classes, list) or len(classes) != cfg.NUM_CLASSES
                                or not all(isinstance(c, str) for c in classes)):
        raise ModelError("BNN model {}: {}: field classes must be a list of {} strings".format(
            path, META_FILE, cfg.NUM_CLASSES))
    from ..engines.bnn_format import validate_params
    try:
        validate_params(words)
    except ValueError as e:
        raise ModelError("BNN model {}: {}".format(path, e)) from e
    return BnnModelFile(path, words, meta)


def save_bnn_model(path, words, meta):
    """Write params.npy + model.json atomically (temp files renamed into place)."""
    path = Path(path)
    words = np.ascontiguousarray(words, dtype="<u8")
    meta = dict(meta, format=MODEL_FORMAT, param_words=int(words.size), params_sha256=params_sha256(words))
    meta = with_model_sha256(meta, [words])
    write_files_atomically(path, [
        (PARAMS_FILE, lambda f: np.save(f, words, allow_pickle=False)),
        (META_FILE, lambda f: f.write((json.dumps(meta, indent=2) + "\n").encode()))])
    return path
