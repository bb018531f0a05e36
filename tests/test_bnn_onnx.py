"""ONNX export of the BNN (runtime/engines/bnn_onnx.py): onnxruntime scores == engine scores."""
import json
from pathlib import Path

import numpy as np
import pytest

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402  (the dev extra; CI installs it)

from runtime.engines.bnn_format import pack_params, random_layers  # noqa: E402
from runtime.engines.bnn_model import BnnEngineModel  # noqa: E402
from runtime.engines.bnn_onnx import export_onnx, images_to_nchw_float  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "overlays" / "bnn" / "models" / "fashion_mnist"


def _session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _run(model, images):
    return _session(model).run(["scores"], {"images": images_to_nchw_float(images)})[0]


def _engine_scores(words, images):
    eng = BnnEngineModel()
    eng.load_params(words)
    return eng.classify(images)


def test_shipped_model_onnx_equals_engine(tmp_path):
    from runtime.datasets import load_fashion_mnist
    words = np.load(SHIPPED / "params.npy", allow_pickle=False)
    x, y = load_fashion_mnist("test")
    x, y = x[:1000], y[:1000]
    path = tmp_path / "bnn.onnx"
    model = export_onnx(words, path)
    assert path.is_file()
    onnx.checker.check_model(onnx.load(str(path)))
    got = _run(model, x)
    ref = _engine_scores(words, x)
    assert got.dtype == np.float32 and got.shape == (1000, 10)
    assert np.array_equal(got, ref.astype(np.float32))
    assert np.array_equal(got.astype(np.int64), ref.astype(np.int64))     # integers, exactly
    meta = json.loads((SHIPPED / "model.json").read_text())
    acc = float((got.argmax(1) == y).mean())
    assert acc >= meta["test_accuracy_integer"] - 0.05


@pytest.mark.parametrize("seed", [0, 1])
def test_random_layers_onnx_equals_engine(seed):
    rng = np.random.default_rng(seed)
    layers = random_layers(rng)
    # thresholds at the extremes: clamped in the graph, decisions unchanged
    layers["conv0"]["thresholds"][:2] = [-2 ** 31, 2 ** 31 - 1]
    layers["conv1"]["thresholds"][:3] = [-2 ** 31, 2 ** 31 - 1, 289]
    layers["fc0"]["thresholds"][:3] = [0, 1025, -5]
    layers["fc1"]["shift"][:2] = [0, 7]
    layers["fc1"]["bias"][:2] = [-2 ** 20, 2 ** 20]
    words = pack_params(layers)
    images = rng.integers(0, 256, size=(64, 28, 28), dtype=np.uint8)
    ref = _engine_scores(words, images)
    np.testing.assert_array_equal(_run(export_onnx(words), images), ref.astype(np.float32))
    np.testing.assert_array_equal(_run(export_onnx(layers), images), ref.astype(np.float32))


def test_export_annotations_and_interface():
    rng = np.random.default_rng(3)
    model = export_onnx(random_layers(rng))
    g = model.graph
    assert [i.name for i in g.input] == ["images"] and [o.name for o in g.output] == ["scores"]
    assert model.opset_import[0].version == 17
    ann = {a.tensor_name: a.quant_parameter_tensor_names[0].value for a in g.quantization_annotation}
    assert ann["images"] == "UINT8"
    for init in g.initializer:
        if init.name.endswith("_W"):
            assert ann[init.name] == "BIPOLAR"
            assert set(np.unique(onnx.numpy_helper.to_array(init))) <= {-1.0, 1.0}
    ops = {n.op_type for n in g.node}
    assert ops <= {"Conv", "Add", "Sign", "MaxPool", "Transpose", "Flatten", "MatMul", "Mul"}
