"""The teacher (training/teacher): fetching its weights, the TF.js -> ONNX converter checked against
the original graph run by TensorFlow.js (pure JS, cpu backend, under node), the numpy decode, and
the pseudo labels.

Needs node + npm (Debian: `apt-get install nodejs npm`) and the real data
(`bash training/fetch_data.sh`); the fixtures install the teacher weights (what `make teacher`
does) and TensorFlow.js into the cache folder, through npm.
"""
import base64
import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from training.data import DataMissing, VIDEO, data_dir, to_nchw, video_frames
from training.teacher import fetch, labels, tfjs_onnx
from training.teacher.reference import run_tfjs

# --- fixtures ---------------------------------------------------------------------------------

# Real frames for the converter check: vtest.avi people + the van, bikes.mp4 cyclists + taxi.
VTEST_FRAMES = (0, 400, 790)
BIKES_FRAMES = (126, 165)            # a cyclist; the parked cars


@pytest.fixture(scope="session")
def teacher_json():
    fetch.fetch()
    return fetch.require_weights()


@pytest.fixture(scope="session")
def teacher(teacher_json):
    return labels.Teacher()


@pytest.fixture(scope="module")
def real_frames():
    frames = video_frames(data_dir() / VIDEO, indices=VTEST_FRAMES)
    frames += video_frames(fetch.ensure_bikes(), indices=BIKES_FRAMES)
    assert len(frames) == len(VTEST_FRAMES) + len(BIKES_FRAMES)
    return frames


@pytest.fixture(scope="module")
def real_inputs(real_frames):
    return np.ascontiguousarray(to_nchw(real_frames, labels.INPUT_SIZE).transpose(0, 2, 3, 1))


@pytest.fixture(scope="module")
def tfjs_real(teacher_json, real_inputs):
    """The original graph's outputs on the real frames (about 10 s a frame)."""
    return run_tfjs(real_inputs, teacher_json)


# --- fetching ---------------------------------------------------------------------------------

def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_fetch_is_idempotent(teacher_json):
    folder = fetch.teacher_dir()
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}
    assert fetch.fetch() == folder
    after = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}
    assert before == after
    assert not list(folder.parent.glob(".teacher.*"))          # no half-finished installs left


def test_fetch_into_an_empty_cache(teacher_json, tmp_path, monkeypatch):
    monkeypatch.setenv("PYNQ_DEPLOY_CACHE", str(tmp_path))
    assert fetch.teacher_dir() == tmp_path / "teacher"
    with pytest.raises(fetch.TeacherMissing, match="make teacher"):
        fetch.require_weights()
    with pytest.raises(fetch.TeacherMissing, match="make teacher"):
        labels.Teacher()
    fetch.fetch(quiet=True)
    for name in ("centernet.json", "centernet.bin", "labels.ts"):
        assert _sha(tmp_path / "teacher" / name) == _sha(teacher_json.parent / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher"]


def test_bikes_video_is_extracted():
    path = fetch.ensure_bikes()
    assert fetch.ensure_bikes() == path == fetch.bikes_path()
    cap = cv2.VideoCapture(str(path))
    n, w, h = (int(cap.get(p)) for p in (cv2.CAP_PROP_FRAME_COUNT, cv2.CAP_PROP_FRAME_WIDTH,
                                         cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    assert (n, w, h) == (250, 640, 272)


# --- the class lists --------------------------------------------------------------------------

def test_coco_names_are_the_packages(teacher_json):
    text = (teacher_json.parent / "labels.ts").read_text()
    found = [(int(c), name) for c, name in re.findall(r"class:\s*(\d+),\s*label:\s*'([^']+)'", text)]
    assert [c for c, _ in found] == list(range(1, 81))         # labels[classValue] in centernet.ts
    assert tuple(name for _, name in found) == labels.COCO_NAMES


def test_coco_to_voc_mapping():
    voc = dict((labels.COCO_NAMES[i], labels.VOC_NAMES[v])
               for i, v in enumerate(labels.COCO_TO_VOC) if v >= 0)
    assert voc["airplane"] == "aeroplane" and voc["motorcycle"] == "motorbike"
    assert voc["couch"] == "sofa" and voc["dining table"] == "diningtable"
    assert voc["potted plant"] == "pottedplant" and voc["tv"] == "tvmonitor"
    assert voc["truck"] == "car" and voc["car"] == "car" and voc["person"] == "person"
    assert "elephant" not in voc and "traffic light" not in voc
    assert len(voc) == 21 and set(voc.values()) == set(labels.VOC_NAMES)
    assert labels.VOC_NAMES == tuple(
        "aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike "
        "person pottedplant sheep sofa train tvmonitor".split())


# --- converter pieces -------------------------------------------------------------------------

@pytest.mark.parametrize("size, kernel, stride, dilation, pads", [
    (512, 3, 2, 1, (0, 1)),       # even size, stride 2: TF puts the extra pixel after
    (10, 3, 2, 1, (0, 1)),
    (11, 3, 2, 1, (1, 1)),
    (6, 5, 2, 1, (1, 2)),
    (5, 3, 1, 1, (1, 1)),
    (8, 3, 1, 2, (2, 2)),
    (7, 1, 2, 1, (0, 0)),
    (4, 5, 1, 1, (2, 2)),
])
def test_same_pads(size, kernel, stride, dilation, pads):
    assert tfjs_onnx.same_pads(size, kernel, stride, dilation) == pads
    before, after = pads
    assert tfjs_onnx._conv_out(size, kernel, stride, dilation, before, after) == -(-size // stride)


def _write_manifest(folder, entries):
    """entries: [(name, stored bytes, manifest entry)] -> model.json with only a manifest."""
    (folder / "w.bin").write_bytes(b"".join(raw for _, raw, _ in entries))
    manifest = [{"paths": ["w.bin"], "weights": [dict(e, name=n) for n, _, e in entries]}]
    (folder / "model.json").write_text(json.dumps({"modelTopology": {"node": []},
                                                   "weightsManifest": manifest}))
    return folder / "model.json"


def test_load_weights_dequantizes(tmp_path):
    half = np.array([[0.5, -1.25], [3.0e-3, 65504.0]], np.float16)
    q = np.array([0, 7, 255], np.uint8)
    full = np.array([1.5, -2.0], np.float32)
    ints = np.array([128, -1], np.int32)
    path = _write_manifest(tmp_path, [
        ("h", half.tobytes(), {"shape": [2, 2], "dtype": "float32",
                                "quantization": {"dtype": "float16", "original_dtype": "float32"}}),
        ("q", q.tobytes(), {"shape": [3], "dtype": "float32",
                             "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}}),
        ("f", full.tobytes(), {"shape": [2], "dtype": "float32"}),
        ("i", ints.tobytes(), {"shape": [2], "dtype": "int32"}),
    ])
    w = tfjs_onnx.load_weights(path)
    assert w["h"].dtype == np.float32 and np.array_equal(w["h"], half.astype(np.float32))
    assert np.array_equal(w["q"], np.array([-1.0, 2.5, 126.5], np.float32))
    assert np.array_equal(w["f"], full) and np.array_equal(w["i"], ints)
    (tmp_path / "w.bin").write_bytes(half.tobytes())               # too short for the rest
    with pytest.raises(tfjs_onnx.ConversionError, match="too short"):
        tfjs_onnx.load_weights(path)


# A small TF.js graph that exercises what the teacher does not: odd sizes (asymmetric SAME),
# stride-2 5x5 depthwise with a channel multiplier, dilation, fused Relu6, uint8-quantized
# weights, the three ResizeBilinear coordinate modes, a channel-vector constant.

def _attr_list(ints):
    return {"list": {"i": [str(i) for i in ints]}}


def _s(text):
    return {"s": base64.b64encode(text.encode()).decode()}


def _conv_attrs(stride=1, padding="SAME", dilation=1, fused=None):
    attrs = {"strides": _attr_list([1, stride, stride, 1]), "padding": _s(padding),
             "dilations": _attr_list([1, dilation, dilation, 1]), "data_format": _s("NHWC"),
             "T": {"type": "DT_FLOAT"}}
    if fused:
        attrs.update(fused_ops={"list": {"s": [_s(f)["s"] for f in fused]}},
                     num_args={"i": "1"}, epsilon={"f": 0})
    return attrs


class _GraphWriter:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.weights, self.raw = [], [], []

    def node(self, name, op, inputs=(), **attrs):
        self.nodes.append({"name": name, "op": op, "input": list(inputs), "attr": attrs})
        return name

    def const(self, name, value, quant=None):
        value = np.asarray(value)
        dtype = "int32" if value.dtype.kind == "i" else "float32"
        entry = {"name": name, "shape": list(value.shape), "dtype": dtype}
        if quant == "float16":
            raw = value.astype(np.float16).tobytes()
            entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
        elif quant == "uint8":
            lo, hi = float(value.min()), float(value.max())
            scale = (hi - lo) / 255
            raw = np.round((value - lo) / scale).astype(np.uint8).tobytes()
            entry["quantization"] = {"dtype": "uint8", "scale": scale, "min": lo,
                                     "original_dtype": "float32"}
        else:
            raw = value.astype(np.int32 if dtype == "int32" else np.float32).tobytes()
        self.weights.append(entry)
        self.raw.append(raw)
        dt = "DT_INT32" if dtype == "int32" else "DT_FLOAT"
        return self.node(name, "Const", dtype={"type": dt}, value={"tensor": {
            "dtype": dt, "tensorShape": {"dim": [{"size": str(d)} for d in value.shape]}}})

    def randn(self, name, shape, quant=None, scale=0.5):
        return self.const(name, self.rng.normal(0, scale, shape).astype(np.float32), quant)

    def write(self, folder):
        (folder / "g.bin").write_bytes(b"".join(self.raw))
        (folder / "g.json").write_text(json.dumps({
            "format": "graph-model", "modelTopology": {"node": self.nodes, "library": {},
                                                       "versions": {}},
            "weightsManifest": [{"paths": ["g.bin"], "weights": self.weights}]}))
        return folder / "g.json"


def _synthetic_graph(folder):
    g = _GraphWriter(seed=7)
    f = {"T": {"type": "DT_FLOAT"}}
    g.node("x", "Placeholder", dtype={"type": "DT_FLOAT"}, shape={"shape": {"dim": [
        {"size": "1"}, {"size": "10"}, {"size": "11"}, {"size": "3"}]}})
    g.node("c1", "_FusedConv2D", ["x", g.randn("w1", [3, 3, 3, 8], "float16"),
                                  g.randn("b1", [8])], **_conv_attrs(2, fused=["BiasAdd", "Relu6"]))
    g.node("d1", "FusedDepthwiseConv2dNative", ["c1", g.randn("wd", [5, 5, 8, 2], "uint8"),
                                                g.randn("bd", [16], "float16")],
           **_conv_attrs(2, fused=["BiasAdd", "Relu"]))
    g.node("m", "Mean", ["d1", g.const("axes", np.array([1, 2], np.int32))], keep_dims={"b": True},
           Tidx={"type": "DT_INT32"}, **f)
    g.node("se", "Conv2D", ["m", g.randn("wse", [1, 1, 16, 16])], **_conv_attrs(padding="VALID"))
    g.node("sg", "Sigmoid", ["se"], **f)
    g.node("mul", "Mul", ["d1", "sg"], **f)
    g.node("add", "Add", ["mul", g.randn("vec", [16])], **f)
    size = g.const("size", np.array([5, 6], np.int32))
    for name, align, half in (("ra", True, False), ("rh", False, True), ("rl", False, False)):
        g.node(name, "ResizeBilinear", ["add", size], align_corners={"b": align},
               half_pixel_centers={"b": half}, **f)
    g.node("cat", "ConcatV2", ["c1", "ra", "rh", "rl", g.const("axis", np.array(-1, np.int32))],
           N={"i": "4"}, Tidx={"type": "DT_INT32"}, **f)
    g.node("dw", "DepthwiseConv2dNative", ["cat", g.randn("wdw", [3, 3, 56, 1])], **_conv_attrs())
    g.node("c2", "_FusedConv2D", ["dw", g.randn("w2", [3, 3, 56, 4], "float16", 0.2),
                                  g.randn("b2", [4])], **_conv_attrs(dilation=2, fused=["BiasAdd"]))
    g.node("sub", "Sub", ["c2", g.const("half", np.array(0.5, np.float32))], **f)
    g.node("hs_add", "Add", ["sub", g.const("three", np.array(3.0, np.float32))], **f)
    g.node("hs_r6", "Relu6", ["hs_add"], **f)
    g.node("hs_mul", "Mul", [g.const("sixth", np.array(1 / 6, np.float32)), "sub"], **f)
    g.node("hs", "Mul", ["hs_mul", "hs_r6"], **f)
    g.node("out", "Identity", ["hs"], **f)
    return g.write(folder)


def _run_onnx(model, inputs, names):
    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(names, {tfjs_onnx.INPUT_NAME: inputs})


def test_converter_matches_tfjs_on_a_synthetic_graph(teacher_json, tmp_path, monkeypatch):
    path = _synthetic_graph(tmp_path)
    monkeypatch.setattr(tfjs_onnx, "OUTPUTS", (("out", "out"), ("gate", "sg")))
    monkeypatch.setattr(tfjs_onnx, "check_decode_constants", lambda nodes, weights: None)
    model = tfjs_onnx.convert(path)
    x = np.random.default_rng(1).uniform(0, 255, (3, 10, 11, 3)).astype(np.float32) / 64
    ref = run_tfjs(x, path, outputs={"out": "out", "gate": "sg"})
    out, gate = _run_onnx(model, x, ["out", "gate"])
    assert ref["out"].shape == (3, 5, 6, 4) and out.shape == (3, 4, 5, 6)
    np.testing.assert_allclose(out.transpose(0, 2, 3, 1), ref["out"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gate.transpose(0, 2, 3, 1), ref["gate"], rtol=1e-5, atol=1e-6)
    assert np.abs(ref["out"]).max() > 0.5                       # not a degenerate all-zero graph


def test_unsupported_ops_are_named(tmp_path, monkeypatch):
    g = _GraphWriter(seed=0)
    g.node("x", "Placeholder", dtype={"type": "DT_FLOAT"}, shape={"shape": {"dim": [
        {"size": "1"}, {"size": "4"}, {"size": "4"}, {"size": "3"}]}})
    g.node("y", "Softmax", ["x"], T={"type": "DT_FLOAT"})
    path = g.write(tmp_path)
    monkeypatch.setattr(tfjs_onnx, "OUTPUTS", (("y", "y"),))
    monkeypatch.setattr(tfjs_onnx, "check_decode_constants", lambda nodes, weights: None)
    with pytest.raises(tfjs_onnx.ConversionError, match="Softmax"):
        tfjs_onnx.convert(path)


# --- decode -----------------------------------------------------------------------------------

def _decode_oracle(heatmap, wh, k):
    """Straight from the graph: loops for the max-pool, a full stable sort for TopKV2."""
    n, c, h, w = heatmap.shape
    out = np.zeros((n, k, 6), np.float32)
    for i in range(n):
        nhwc = heatmap[i].transpose(1, 2, 0)
        peaks = np.zeros_like(nhwc)
        for y in range(h):
            for x in range(w):
                window = nhwc[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].reshape(-1, c).max(0)
                peaks[y, x] = nhwc[y, x] * (nhwc[y, x] == window)
        flat = peaks.reshape(-1)
        top = np.argsort(-flat, kind="stable")[:k]
        for j, idx in enumerate(top):
            y, x, cls = idx // c // w, idx // c % w, idx % c
            l, t, r, b = wh[i, :, y, x]
            cx, cy = np.float32(4 * x), np.float32(4 * y)           # float32 throughout
            out[i, j] = [cx - l, cy - t, cx + r, cy + b, flat[idx], cls]
    return out


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 2), st.integers(2, 5), st.integers(3, 9), st.integers(3, 9),
       st.integers(1, 12), st.data())
def test_decode_matches_the_graph_definition(n, c, h, w, k, data):
    k = min(k, c * h * w)
    # few distinct values: many ties, in the pool and in the ranking
    heat = data.draw(hnp.arrays(np.float32, (n, c, h, w),
                                elements=st.sampled_from([0.0, 0.125, 0.25, 0.5, 0.875])))
    wh = data.draw(hnp.arrays(np.float32, (n, 4, h, w), elements=st.floats(0, 50, width=32)))
    got = tfjs_onnx.decode(heat, wh, k)
    np.testing.assert_array_equal(got, _decode_oracle(heat, wh, k))


def test_decode_reproduces_the_graphs_detections(tfjs_real):
    """decode() on the TF.js graph's own heatmap and wh gives the graph's own detections."""
    got = tfjs_onnx.decode(tfjs_real["keypoints"].transpose(0, 3, 1, 2),
                           tfjs_real["wh"].transpose(0, 3, 1, 2))
    np.testing.assert_allclose(got, tfjs_real["detections"], rtol=0, atol=1e-4)


# --- the converted teacher against the original graph -----------------------------------------

def test_converted_teacher_matches_tfjs_on_real_frames(teacher, tfjs_real, real_inputs):
    heatmap, wh = teacher.outputs(real_inputs)
    assert heatmap.shape == (len(real_inputs), 80, 128, 128) and wh.shape[1] == 4
    heat_diff = np.abs(heatmap.transpose(0, 2, 3, 1) - tfjs_real["keypoints"]).max()
    wh_diff = np.abs(wh.transpose(0, 2, 3, 1) - tfjs_real["wh"]).max()
    det, ref = tfjs_onnx.decode(heatmap, wh), tfjs_real["detections"]
    box_diff = np.abs(det[..., :4] - ref[..., :4]).max()
    score_diff = np.abs(det[..., 4] - ref[..., 4]).max()
    agree = (det[..., 5] == ref[..., 5]).mean()
    print("converter vs TF.js on {} real frames: heatmap {:.2e}, wh {:.2e} (of {:.0f}), boxes "
          "{:.2e} px, scores {:.2e}, classes agree {:.1%}".format(
              len(real_inputs), heat_diff, wh_diff, np.abs(tfjs_real["wh"]).max(), box_diff,
              score_diff, agree))
    assert heat_diff < 1e-4 and wh_diff < 1e-5 * np.abs(tfjs_real["wh"]).max() + 1e-2
    assert box_diff < 0.05 and score_diff < 1e-4 and agree == 1.0
    assert (ref[:, 0, 4] > 0.4).all()          # real detections, not an empty comparison


# --- labels -----------------------------------------------------------------------------------

COCO = {name: i for i, name in enumerate(labels.COCO_NAMES)}
VOC = {name: i for i, name in enumerate(labels.VOC_NAMES)}


def _det(box, score, coco_name):
    return list(box) + [score, COCO[coco_name]]


def test_to_labels_rule():
    rows = [
        _det((100, 100, 200, 300), 0.9, "person"),
        _det((105, 100, 205, 300), 0.6, "person"),       # IoU > 0.5 with the first: suppressed
        _det((105, 100, 205, 300), 0.5, "dog"),          # same box, other class: kept
        _det((300, 300, 400, 350), 0.35, "truck"),       # -> car
        _det((310, 300, 410, 350), 0.32, "car"),         # overlaps the truck, now both car
        _det((0, 0, 50, 50), 0.25, "bicycle"),           # ignore band
        _det((-20, 400, 60, 600), 0.31, "motorcycle"),   # clipped to the input
        _det((10, 10, 20, 20), 0.19, "person"),          # below LOW
        _det((10, 10, 20, 20), 0.8, "elephant"),         # no VOC class
    ]
    dets = np.array(rows + [[0, 0, 1, 1, 0.01, 0]] * (100 - len(rows)), np.float32)
    out = labels.to_labels(dets, (256, 1024, 3))                # frame h=256, w=1024
    assert out["classes"].tolist() == [VOC["person"], VOC["dog"], VOC["car"], VOC["motorbike"],
                                       VOC["bicycle"]]
    np.testing.assert_allclose(out["scores"], [0.9, 0.5, 0.35, 0.31, 0.25], rtol=1e-6)
    assert out["ignore"].tolist() == [False, False, False, False, True]
    np.testing.assert_allclose(out["boxes"][0], [200, 50, 400, 150])        # x * 2, y / 2
    np.testing.assert_allclose(out["boxes"][3], [0, 200, 120, 256])
    assert out["boxes"].dtype == np.float32 and out["classes"].dtype == np.int64
    empty = labels.to_labels(np.zeros((100, 6), np.float32), (10, 10, 3))
    assert empty["boxes"].shape == (0, 4) and empty["ignore"].shape == (0,)


def test_label_frames_on_real_frames(teacher, real_frames, tfjs_real):
    out = labels.label_frames(real_frames, teacher)
    assert len(out) == len(real_frames)
    for lab, frame, ref in zip(out, real_frames, tfjs_real["detections"]):
        h, w = frame.shape[:2]
        boxes = lab["boxes"]
        assert ((boxes >= 0) & (boxes <= [w, h, w, h])).all()
        assert (np.diff(lab["scores"]) <= 0).all() and (lab["scores"] >= labels.LOW).all()
        assert np.array_equal(lab["ignore"], lab["scores"] < labels.THRESHOLD)
        # the same labels as from the ORIGINAL graph's detections
        want = labels.to_labels(ref, frame.shape)
        assert np.array_equal(lab["classes"], want["classes"])
        np.testing.assert_allclose(lab["boxes"], want["boxes"], atol=0.1)
    persons = [int(((l["classes"] == VOC["person"]) & ~l["ignore"]).sum()) for l in out]
    assert min(persons[:len(VTEST_FRAMES)]) >= 3                   # vtest.avi: a crowd walking
    bikes = out[len(VTEST_FRAMES):]
    assert (bikes[0]["classes"] == VOC["bicycle"]).any() and (bikes[1]["classes"] == VOC["car"]).sum() >= 3
    with pytest.raises(ValueError, match="uint8"):
        labels.label_frames([real_frames[0].astype(np.float32)], teacher)


def _write_clip(path, frames):
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    assert out.isOpened()
    for f in frames:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()


class _NoTeacher:
    """Stands in for the teacher where the cache must answer."""

    def __init__(self, sha):
        self.weights_sha256 = sha

    def detections(self, frames):
        raise AssertionError("the teacher ran although the labels were cached")


def test_label_video_caches(teacher, tmp_path, monkeypatch):
    monkeypatch.setattr(labels, "labels_dir", lambda: tmp_path / "labels")
    clip = tmp_path / "clip.avi"
    _write_clip(clip, video_frames(data_dir() / VIDEO, indices=range(5)))
    decoded = video_frames(clip)
    assert len(decoded) == 5
    got = labels.label_video(clip, every=2, teacher=teacher, progress=False)
    assert [l["frame"] for l in got] == [0, 2, 4]
    want = labels.label_frames(decoded[::2], teacher)
    for g, wnt in zip(got, want):
        for key in ("boxes", "scores", "classes", "ignore"):
            assert g[key].dtype == wnt[key].dtype and np.array_equal(g[key], wnt[key])
    cached = labels.cache_path(clip, every=2)
    assert cached.parent == tmp_path / "labels" and cached.is_file()
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]      # no temporaries left
    again = labels.label_video(clip, every=2, teacher=_NoTeacher(teacher.weights_sha256))
    for g, a in zip(got, again):
        assert g["frame"] == a["frame"] and np.array_equal(g["boxes"], a["boxes"])
    assert labels.cache_path(clip, every=1) != cached
    with pytest.raises(AssertionError, match="teacher ran"):           # other key: not cached
        labels.label_video(clip, every=1, teacher=_NoTeacher(teacher.weights_sha256))
    with pytest.raises(AssertionError, match="teacher ran"):           # other weights
        labels.label_video(clip, every=2, teacher=_NoTeacher("0" * 64))


def test_label_video_bad_input(teacher, tmp_path, monkeypatch):
    monkeypatch.setattr(labels, "labels_dir", lambda: tmp_path / "labels")
    with pytest.raises(DataMissing, match="not found"):
        labels.label_video(tmp_path / "missing.avi", teacher=teacher)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(DataMissing, match="junk.avi"):
        labels.label_video(junk, teacher=teacher)
    with pytest.raises(ValueError, match="every"):
        labels.label_video(fetch.ensure_bikes(), every=0, teacher=teacher)
    assert not (tmp_path / "labels").exists() or not list((tmp_path / "labels").iterdir())


def test_label_video_needs_the_teacher(tmp_path, monkeypatch):
    monkeypatch.setenv("PYNQ_DEPLOY_CACHE", str(tmp_path))
    monkeypatch.setattr(labels, "_TEACHER", None)
    with pytest.raises(fetch.TeacherMissing, match="make teacher"):
        labels.label_video(fetch.ensure_bikes())
