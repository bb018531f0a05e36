"""The compiler reproduces the shipped CoDeNet model byte for byte: compiling the ONNX beside the
shipped program (at its input size, with its class names) gives the program.npy / weights.npy
whose sha256 model.json records, and the same model.json fields. Pins every compiler refactor
(and says so when a layout change needs `pynq-deploy compile --recompile` of the shipped folder)."""
import json
from pathlib import Path

import numpy as np
import pytest

from runtime.compiler.codenet_compiler import META_FILE, PROGRAM_FILE, WEIGHTS_FILE, compile_onnx

SHIPPED = Path(__file__).resolve().parents[1] / "overlays" / "codenet" / "models" / "codenet_voc512"


@pytest.fixture(scope="module")
def shipped_and_recompiled():
    meta = json.loads((SHIPPED / META_FILE).read_text())
    _, _, h, w = meta["input"]["shape"]
    cm = compile_onnx(str(SHIPPED / meta["meta"]["detector"]["onnx"]), input_size=(h, w),
                      class_names=meta.get("class_names"))
    return meta, cm


def test_recompiled_program_and_weights_are_the_shipped_bytes(shipped_and_recompiled):
    meta, cm = shipped_and_recompiled
    new = cm.meta_dict()
    assert new["program_sha256"] == meta["program_sha256"], "recompile the shipped folder after a layout change"
    assert new["weights_sha256"] == meta["weights_sha256"], "recompile the shipped folder after a layout change"
    assert np.array_equal(np.load(SHIPPED / PROGRAM_FILE), cm.program.astype("<u4"))
    assert np.array_equal(np.load(SHIPPED / WEIGHTS_FILE), cm.weights)


def test_recompiled_model_json_fields_are_the_shipped_ones(shipped_and_recompiled):
    meta, cm = shipped_and_recompiled
    new = json.loads(json.dumps(cm.meta_dict()))        # the JSON round trip save() does
    for key in new:
        if key != "meta":                                # the folder's own metadata (evaluation, source)
            assert new[key] == meta[key], key
    assert new["meta"]["n_copy_layers"] == meta["meta"]["n_copy_layers"]
    assert new["meta"]["source"]["sha256"] == meta["meta"]["source"]["sha256"]
