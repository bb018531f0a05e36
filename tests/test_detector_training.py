"""The training side of the detector: the third level of truth on real frames, QAT export scales,
and the adapt workflow end to end (a short smoke run). Needs the train extra (torch), the teacher
and the detector data (`make detector-data`), which CI installs."""
import json

import cv2
import numpy as np
import pytest

from tests.conftest import require_torch

torch = require_torch()

from runtime.compiler.codenet_compiler import CompiledModel  # noqa: E402
from runtime.detector import Detector, default_model_path  # noqa: E402
from runtime.vision.samples import sample_clip_path, samples_dir  # noqa: E402


@pytest.fixture(scope="module")
def shipped_qat():
    from training.codenet.adapt import shipped_checkpoint
    from training.codenet.deploy import load_qat_model
    model, state = load_qat_model(shipped_checkpoint())
    return model, state


def test_three_levels_agree_on_real_frames(tmp_path):
    """C-simulation, numpy engine and the PyTorch integer forward of the shipped model."""
    from training.verify import main as verify
    out = tmp_path / "v.json"
    size = CompiledModel.load(default_model_path()).meta["detector"]["input_size"]
    assert verify(["codenet", "--frames", "3", "--input-size", str(size), "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["levels"] == ["csim", "numpy", "torch_integer"]
    assert r["mismatching_outputs"] == 0 and r["output_values"] == 3 * 24 * (size // 4) ** 2
    assert r["pairwise_mismatches"] == {"csim vs numpy": 0, "csim vs torch_integer": 0}


def test_checkpoint_is_the_shipped_model(shipped_qat):
    """The QAT checkpoint exports to exactly the shipped QONNX's quantizers and weights."""
    import onnx
    from onnx import numpy_helper
    from training.codenet.deploy import export_qonnx
    model, _ = shipped_qat
    onx = export_qonnx(model)
    shipped = onnx.load(str(default_model_path() / "codenet_qonnx.onnx"))
    a = {t.name: numpy_helper.to_array(t) for t in onx.graph.initializer}
    b = {t.name: numpy_helper.to_array(t) for t in shipped.graph.initializer}
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_qat_forward_tracks_the_deployed_integers(shipped_qat):
    """The fake-quantized training forward and the engine's integers agree up to the requantization
    rounding (the engine's (M, S) multiplier and round-half-up): heatmap logits within a few LSB."""
    from training.codenet.intforward import IntegerCoDeNet
    model, _ = shipped_qat
    img = cv2.cvtColor(cv2.imread(str(samples_dir() / "vtest_200.jpg")), cv2.COLOR_BGR2RGB)
    s = model.input_size
    x = cv2.resize(img, (s, s), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)[None]
    ints = IntegerCoDeNet(model)(x)
    with torch.no_grad():
        hm = model(torch.as_tensor(x, dtype=torch.float32))[0].numpy()
    q, scale = ints["heatmap"]
    diff = np.abs(q.numpy() * scale - hm) / scale
    assert np.median(diff) <= 1.0 and np.percentile(diff, 99) <= 8


def test_adapt_end_to_end_smoke(tmp_path):
    """Teacher labels of a short clip -> fine-tune from the shipped model -> QAT -> export ->
    compile -> held-out AP; the result loads and detects."""
    from training.codenet.adapt import main as adapt
    out = tmp_path / "adapted"
    assert adapt(["--video", str(sample_clip_path()), "--out", str(out), "--float-iters", "2",
                  "--qat-iters", "2", "--batch", "2"]) == 0
    rep = json.loads((out / "adapt_report.json").read_text())
    assert set(rep["adapted"]) == {"vtest_clip.mp4"} and rep["adapted"]["vtest_clip.mp4"]["frames"] == 6
    assert (out / "codenet_qonnx.onnx").is_file()
    with Detector(out / "compiled", pl="sim") as det:
        dets = det.detect(cv2.imread(str(samples_dir() / "vtest_200.jpg")))
    assert sum(d.class_name == "person" for d in dets) >= 1


def test_heatmap_distillation_loss():
    """QAT's distillation term: zero when the student's heat map equals the float student's,
    growing with the difference, normalised per ground-truth object, and it trains the student."""
    from training.codenet.train_detector import distill_loss
    g = torch.Generator().manual_seed(0)
    t_hm = torch.randn(2, 20, 16, 16, generator=g)
    gt = torch.zeros(2, 20, 16, 16)
    gt[0, 14, 3, 4] = gt[1, 6, 9, 9] = 1.0
    batch = {"hm": gt}
    assert float(distill_loss((t_hm,), (t_hm,), batch)) == 0.0
    near, far = (t_hm + 0.1,), (t_hm + 1.0,)
    assert 0 < float(distill_loss(near, (t_hm,), batch)) < float(distill_loss(far, (t_hm,), batch))
    want = ((torch.sigmoid(t_hm + 1.0) - torch.sigmoid(t_hm)) ** 2).sum() / 2
    assert torch.allclose(distill_loss(far, (t_hm,), batch), want)
    s = (t_hm + 1.0).requires_grad_()
    distill_loss((s,), (t_hm,), batch).backward()
    assert (s.grad > 0).all()                   # pushes every logit back toward the float student's


def test_weight_scales_clip_to_the_least_squared_error():
    """The exported per-channel weight scale: never worse than max|w| / qmax, strictly better on
    Gaussian-like 4-bit weights, a ratio of CLIP_RATIOS, and the training twin agrees."""
    from training.codenet.qat import CLIP_RATIOS, QuantState, weight_scale_np
    rng = np.random.default_rng(3)
    w = rng.standard_normal((48, 16, 3, 3)).astype(np.float32)
    w[5] = 0.0                                   # a dead channel keeps a finite scale
    w[7, 0, 0, 0] = 40.0                         # an outlier: clipping it is cheaper
    for bits in (4, 8):
        qmax = 2 ** (bits - 1) - 1
        s = weight_scale_np(w, bits)
        flat = w.reshape(48, -1)
        mx = np.abs(flat).max(axis=1)

        def err(sc):
            return ((np.clip(np.rint(flat / sc[:, None]), -qmax - 1, qmax) * sc[:, None] - flat) ** 2).sum(1)
        naive = np.maximum(mx, 1e-12).astype(np.float32) / np.float32(qmax)
        assert s.dtype == np.float32 and np.isfinite(s).all() and (s > 0).all()
        assert (err(s) <= err(naive)).all()
        ratios = s[mx > 0] * qmax / mx[mx > 0]
        assert np.isclose(ratios[:, None], np.array(CLIP_RATIOS)[None], rtol=1e-5).any(axis=1).all()
        if bits == 4:
            gaussian = np.arange(48) != 7
            assert err(s)[gaussian].sum() < 0.8 * err(naive)[gaussian].sum()
        assert np.array_equal(QuantState.weight_scale(torch.from_numpy(w), bits).numpy().ravel(), s)
