"""The shipped detector and its runtime: Detector API, decode, pipelining, run_detector, bad input.
Everything on the simulated PL with real frames (demos/data)."""
import ast
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from runtime.compiler.codenet_compiler import CompiledModel, compile_onnx
from runtime.detector import Detector, default_model_path, load_detector_model
from runtime.errors import InputError, ModelError
from runtime.vision.centernet import decode, logit_threshold_q, maxpool3x3_peaks, peaks_above
from runtime.vision.samples import sample_clip_path, samples_dir

ROOT = Path(__file__).resolve().parents[1]
VTEST_SAMPLES = ("vtest_040.jpg", "vtest_200.jpg", "vtest_360.jpg", "vtest_520.jpg", "vtest_700.jpg")


@pytest.fixture
def det():
    """A Detector on the numpy engine (made per test: the process has one PL, and a test that
    loads the csim engine reprograms it, as a bitstream download would)."""
    with Detector(pl="sim") as d:
        yield d


def _frame(name):
    img = cv2.imread(str(samples_dir() / name), cv2.IMREAD_COLOR)
    assert img is not None
    return img


# ---- the shipped model ----------------------------------------------------------------------
def test_shipped_model_recompiles_from_its_onnx_to_the_same_program():
    """The ONNX ships beside the compiled program: compiling it again gives the same bytes, so an
    engine change needs only a recompile."""
    d = default_model_path()
    cm = CompiledModel.load(d)
    meta = cm.meta["detector"]
    for key in ("classes", "input_size", "training_data", "heldout_ap50", "teacher", "score_threshold"):
        assert key in meta, key
    again = compile_onnx(str(d / meta["onnx"]), input_size=meta["input_size"], class_names=meta["classes"])
    assert np.array_equal(again.program, cm.program)
    assert np.array_equal(again.weights, cm.weights)
    assert again.arena_size == cm.arena_size and again.outputs == cm.outputs


def test_a_version_2_model_is_refused_with_the_recompile_command(tmp_path):
    """Format version 3 changed the tensor layout (pixel groups, FORMAT.md "Memory"): a version-2
    compiled folder would compute garbage, so loading it raises ModelError naming the layout change
    and the command that fixes it; that command (recompile_folder) makes it load again."""
    from runtime.compiler.codenet_compiler import FORMAT_VERSION, recompile_folder
    old = tmp_path / "old"
    shutil.copytree(str(default_model_path()), str(old))
    meta = json.loads((old / "model.json").read_text())
    assert meta["version"] == FORMAT_VERSION == 3
    meta["version"] = 2
    (old / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"format version 2 is not 3 \(the tensor layout changed.*\); recompile it: "
                                         r"`pynq-deploy compile --recompile .*old`"):
        CompiledModel.load(old)
    with pytest.raises(ModelError, match="tensor layout changed"):
        Detector(model=str(old), pl="sim")
    recompile_folder(old)
    assert CompiledModel.load(old).meta_dict()["version"] == 3


def test_detects_the_people_in_real_frames(det):
    """Every committed vtest frame (a street with 3-11 people) yields people, inside the frame."""
    for name in VTEST_SAMPLES:
        img = _frame(name)
        dets = det.detect(img)
        people = [d for d in dets if d.class_name == "person"]
        assert len(people) >= 2, (name, dets)
        for d in dets:
            x0, y0, x1, y1 = d.box
            assert 0 <= x0 < x1 <= img.shape[1] and 0 <= y0 < y1 <= img.shape[0]
            assert 0.3 <= d.score <= 1.0
        # persons are upright: taller than wide, as the teacher labels them
        assert np.median([(d.box[3] - d.box[1]) / (d.box[2] - d.box[0]) for d in people]) > 1.2


def test_csim_backend_gives_identical_detections(det):
    img = _frame("vtest_360.jpg")
    want = det.detect(img)
    det.close()
    with Detector(pl="sim", backend="csim") as dc:
        got = dc.detect(img)
    assert got == want and len(want) >= 2


def test_pipelined_stream_equals_frame_by_frame(det):
    cap = cv2.VideoCapture(str(sample_clip_path()))
    frames = []
    while len(frames) < 8:
        ok, f = cap.read()
        assert ok
        frames.append(f)
    cap.release()
    want = [det.detect(f) for f in frames]
    got = list(det.stream(iter(frames)))
    assert [g[1] for g in got] == want
    assert all(g[0] is f for g, f in zip(got, frames))
    assert all(set(g[2]) == {"pre_ms", "pl_ms", "post_ms"} for g in got)


def test_stream_keeps_its_threads_and_recovers_after_an_early_stop(det):
    """A camera loop calls stream() again and again: no new threads per call (each new thread
    costs the process a malloc arena), and a consumer that stops early leaves nothing in flight."""
    frames = [_frame("vtest_040.jpg"), _frame("vtest_360.jpg")] * 3
    want = [det.detect(f) for f in frames]
    assert [d for _, d, _ in det.stream(frames)] == want
    threads = threading.active_count()
    for _ in range(3):
        assert [d for _, d, _ in det.stream(frames)] == want
        gen = det.stream(frames)
        next(gen)
        gen.close()                              # stopped early: the other frame is drained
        with pytest.raises(InputError):          # a bad frame mid-stream: raised, rest drained
            list(det.stream(frames[:3] + [np.zeros((0, 4, 3), np.uint8)] + frames[3:]))
    assert threading.active_count() == threads
    assert [d for _, d, _ in det.stream(frames)] == want
    names = {t.name for t in threading.enumerate()}
    assert {"detector-pl", "detector-post"} <= names
    det.close()
    alive = [t for t in threading.enumerate() if t.name in ("detector-pl", "detector-post")]
    for t in alive:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in alive)


def test_a_second_thread_is_refused_clearly(det):
    frames = [_frame("vtest_040.jpg")] * 4
    errors = []
    gen = det.stream(iter(frames))
    next(gen)                                    # the first thread holds the detector
    t = threading.Thread(target=lambda: errors.append(pytest.raises(RuntimeError, det.detect, frames[0])))
    t.start()
    t.join()
    assert errors and "another thread" in str(errors[0].value)
    list(gen)
    assert isinstance(det.detect(frames[0]), list)     # usable again afterwards


# ---- decode ---------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 31), scale=st.floats(0.02, 0.2), zp=st.integers(-20, 20),
       score=st.floats(0.05, 0.95))
def test_integer_domain_decode_equals_float_decode(seed, scale, zp, score):
    """Peaks, threshold and top-K on the int8 heatmap give what the float logits give."""
    rng = np.random.default_rng(seed)
    q = rng.integers(-128, 128, (3, 16, 16)).astype(np.int8)
    size = rng.uniform(1, 10, (2, 16, 16)).astype(np.float32)
    off = rng.uniform(0, 1, (2, 16, 16)).astype(np.float32)
    bi, si, ci = decode(q, size, off, scale, zp, score, top_k=20)
    logits = (q.astype(np.float64) - zp) * scale
    bf, sf, cf = decode(logits, size, off, 1.0, 0, score, top_k=20)
    assert np.array_equal(ci, cf) and np.array_equal(bi, bf) and np.allclose(si, sf)
    assert np.all(si >= score - 1e-6)
    t = logit_threshold_q(score, scale, zp)
    assert 1 / (1 + np.exp(-(t - zp) * scale)) >= score - 1e-9 > 1 / (1 + np.exp(-(t - 1 - zp) * scale)) - 1e-6


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 31), t=st.integers(-128, 127), levels=st.integers(2, 256))
def test_peaks_above_threshold_equal_the_maxpool_definition(seed, t, levels):
    """Candidates first, then their 3x3 neighbourhood: the same set as a full 3x3 max-pool
    (ties broken in raster order, outside the map lower), on int8 maps with few or many levels."""
    rng = np.random.default_rng(seed)
    hm = (rng.integers(0, levels, (3, 9, 11)) - 128).astype(np.int8)
    want = np.flatnonzero(maxpool3x3_peaks(hm) & (hm >= t))
    assert np.array_equal(peaks_above(hm, t), want)
    assert np.array_equal(peaks_above(hm.transpose(0, 2, 1).copy().transpose(0, 2, 1), t), want)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 31), levels=st.integers(2, 6), boxes=st.integers(1, 4))
def test_a_plateau_gives_one_peak(seed, levels, boxes):
    """Equal neighbours (an int8 heatmap has many) are one object, not one per pixel: against a
    loop over every pixel, a peak has no larger neighbour and no equal one before it in raster
    order; a rectangular plateau above its surroundings yields exactly its top-left pixel."""
    rng = np.random.default_rng(seed)
    hm = rng.integers(-levels, 0, (2, 10, 12)).astype(np.int8)
    tops = []
    for _ in range(boxes):
        c, y, x = int(rng.integers(0, 2)), int(rng.integers(0, 8)), int(rng.integers(0, 10))
        h, w = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        if hm[c, max(y - 1, 0):y + h + 1, max(x - 1, 0):x + w + 1].max() >= 0:
            continue                                 # keep the plateaus apart
        hm[c, y:y + h, x:x + w] = 10
        tops.append((c, y, x))
    peaks = maxpool3x3_peaks(hm)
    for c, y, x in np.ndindex(hm.shape):
        v, want = hm[c, y, x], True
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ny, nx = y + dy, x + dx
                if (dy, dx) == (0, 0) or not (0 <= ny < hm.shape[1] and 0 <= nx < hm.shape[2]):
                    continue
                earlier = dy < 0 or (dy == 0 and dx < 0)
                if hm[c, ny, nx] > v or (earlier and hm[c, ny, nx] == v):
                    want = False
        assert peaks[c, y, x] == want, (c, y, x)
    assert sorted(zip(*np.nonzero(peaks & (hm == 10)))) == sorted(tops)
    # two equal pixels side by side: one detection, at the first
    hm2 = np.full((1, 5, 5), -50, np.int8)
    hm2[0, 2, 2] = hm2[0, 2, 3] = 40
    b, s, c = decode(hm2, np.ones((2, 5, 5), np.float32), np.zeros((2, 5, 5), np.float32), 0.1, 0, 0.5)
    assert len(s) == 1 and b[0][0] == (2 - 0.5) * 4


def test_decode_box_geometry():
    hm = np.full((2, 8, 8), -100, np.int8)
    hm[1, 3, 5] = 50
    size = np.zeros((2, 8, 8), np.float32)
    size[:, 3, 5] = (2.0, 4.0)
    off = np.zeros((2, 8, 8), np.float32)
    off[:, 3, 5] = (0.5, 0.25)
    b, s, c = decode(hm, size, off, 0.1, 0, 0.5)
    assert c.tolist() == [1]
    assert np.allclose(b[0], np.array([5.5 - 1, 3.25 - 2, 5.5 + 1, 3.25 + 2]) * 4)
    assert s[0] == pytest.approx(1 / (1 + np.exp(-5.0)))


# ---- evaluation ------------------------------------------------------------------------------
def test_ap50_from_pycocotools():
    from runtime.measure.detection_eval import evaluate_ap50
    names = ["a", "b"]
    gt = [{"boxes": np.array([[10, 10, 50, 90], [100, 10, 140, 90]], np.float32), "classes": np.array([0, 0])}]
    perfect = [(gt[0]["boxes"], np.array([0.9, 0.8]), np.array([0, 0]))]
    r = evaluate_ap50(gt, perfect, names)
    assert r["ap50"] == {"a": pytest.approx(1.0)} and r["ground_truth"] == {"a": 2} and r["map50"] == pytest.approx(1.0)
    half = [(gt[0]["boxes"][:1], np.array([0.9]), np.array([0]))]
    assert 0.45 < evaluate_ap50(gt, half, names)["ap50"]["a"] < 0.55
    wrong_class = [(gt[0]["boxes"], np.array([0.9, 0.8]), np.array([1, 1]))]
    assert evaluate_ap50(gt, wrong_class, names)["ap50"]["a"] == 0.0
    shifted = [(gt[0]["boxes"] + np.array([30, 0, 30, 0], np.float32), np.array([0.9, 0.8]), np.array([0, 0]))]
    assert evaluate_ap50(gt, shifted, names)["ap50"]["a"] == 0.0       # IoU 0.14 < 0.5


# ---- bad input -------------------------------------------------------------------------------
def test_odd_frames_are_handled_or_refused_clearly(det):
    grey = cv2.cvtColor(_frame("vtest_200.jpg"), cv2.COLOR_BGR2GRAY)
    assert any(d.class_name == "person" for d in det.detect(grey))
    assert det.detect(grey[:, :, None]) == det.detect(grey)
    bgra = cv2.cvtColor(_frame("vtest_200.jpg"), cv2.COLOR_BGR2BGRA)
    assert det.detect(bgra) == det.detect(_frame("vtest_200.jpg"))
    for d in det.detect(np.zeros((1, 1, 3), np.uint8)):
        assert 0 <= d.box[0] <= d.box[2] <= 1
    big = det.detect(np.full((8000, 8000, 3), 128, np.uint8))
    assert isinstance(big, list)
    with pytest.raises(InputError, match="exceeds the limit"):
        det.detect(np.broadcast_to(np.uint8(0), (12000, 9000, 3)))
    with pytest.raises(InputError, match="must be uint8"):
        det.detect(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(InputError, match="shape"):
        det.detect(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(InputError, match="empty"):
        det.detect(np.zeros((0, 10, 3), np.uint8))


def _resaved(tmp_path, edit):
    """The shipped model with its metadata changed and saved again (a valid model file whose
    metadata no longer describes its program)."""
    cm = CompiledModel.load(default_model_path())
    edit(cm)
    return cm.save(tmp_path / "model")


def test_a_model_whose_metadata_disagrees_is_refused(tmp_path):
    def size(cm):
        cm.meta["detector"]["input_size"] = 2 * cm.meta["detector"]["input_size"]

    def classes(cm):
        cm.meta["detector"]["classes"] = cm.meta["detector"]["classes"][:5]
        cm.class_names = cm.class_names[:5]

    def nondet(cm):
        del cm.meta["detector"]
    for edit, msg in ((size, "does not match the metadata's input_size"), (classes, "20 classes but the metadata"),
                      (nondet, "not a detector")):
        with pytest.raises(ModelError, match=msg):
            load_detector_model(_resaved(tmp_path / edit.__name__, edit))
    tampered = tmp_path / "tampered"
    shutil.copytree(default_model_path(), tampered)
    meta = json.loads((tampered / "model.json").read_text())
    meta["meta"]["detector"]["input_size"] = 1
    (tampered / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="sha256"):                  # an edited file: the hash says so
        load_detector_model(tampered)


def run_demo(*args, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "demos" / "run_detector.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))


def test_run_detector_headless_writes_a_playable_video_and_json_lines(tmp_path):
    out, js = tmp_path / "out.mp4", tmp_path / "dets.jsonl"
    p = run_demo(sample_clip_path(), "--headless", "--output", out, "--json-lines", js, "--max-frames", "12")
    assert p.returncode == 0, p.stderr
    assert "12 frames" in p.stdout and "per frame, median: pre" in p.stdout and "person" in p.stdout
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 12 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 768
    lines = [json.loads(ln) for ln in js.read_text().splitlines()]
    assert len(lines) == 12 and all("detections" in ln and set(ln["ms"]) == {"pre_ms", "pl_ms", "post_ms"}
                                     for ln in lines)
    assert sum(d["class_name"] == "person" for ln in lines for d in ln["detections"]) >= 24
    assert not list(tmp_path.glob(".*tmp*"))                        # no temporary file left behind


def test_run_detector_on_images_and_a_folder(tmp_path):
    p = run_demo(samples_dir(), "--headless", "--output", tmp_path / "ann", "--max-frames", "3")
    assert p.returncode == 0, p.stderr
    assert len(list((tmp_path / "ann").glob("*.jpg"))) == 3
    p = run_demo(samples_dir() / "vtest_040.jpg", "--headless", "--json-lines", tmp_path / "one.jsonl")
    assert p.returncode == 0 and len((tmp_path / "one.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize("args,msg", [
    (("missing.mp4", "--headless"), "input not found"),
    (("99", "--headless"), "camera 99 does not exist"),
    (("{clip}", "--headless", "--output", "{tmp}"), "is a folder"),
    (("{clip}", "--headless", "--output", "{tmp}/x.txt"), "must end in .mp4 or .avi"),
    (("{clip}", "--headless", "--max-frames", "0"), "--max-frames must be >= 1"),
    (("{bad}", "--headless"), "cannot open video|no decodable frame"),
])
def test_run_detector_bad_input_is_one_clear_line(tmp_path, args, msg):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    args = [a.format(clip=sample_clip_path(), tmp=tmp_path, bad=bad) for a in args]
    p = run_demo(*args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert __import__("re").search(msg, p.stderr), p.stderr
    assert not list(tmp_path.glob("*.mp4")) or [q.name for q in tmp_path.glob("*.mp4")] == ["bad.mp4"]


# ---- the board's runtime -------------------------------------------------------------------
def test_runtime_never_imports_training():
    for path in (ROOT / "runtime").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            assert not any(n == "training" or n.startswith("training.") for n in names), path


def test_detector_runs_without_torch_or_onnxruntime():
    """The board's install has no torch, onnxruntime or hls4ml: block them and detect."""
    code = ("import sys\n"
            "for m in ('torch', 'onnxruntime', 'hls4ml', 'training'): sys.modules[m] = None\n"
            "import cv2\n"
            "from runtime import Detector\n"
            "img = cv2.imread(sys.argv[1])\n"
            "with Detector(pl='sim') as d:\n"
            "    print(sum(x.class_name == 'person' for x in d.detect(img)))\n")
    p = subprocess.run([sys.executable, "-c", code, str(samples_dir() / "vtest_200.jpg")], capture_output=True,
                       text=True, cwd=str(ROOT), timeout=300)
    assert p.returncode == 0, p.stderr
    assert int(p.stdout.strip().splitlines()[-1]) >= 2


def test_soak_detector_short_run():
    """`pynq-deploy soak detector`: frames keep their detections, buffers come back (short CI run)."""
    from runtime.soak import soak
    r = soak("detector", 40)
    assert r["frames"] == 40 and r["live_buffers"]["end"] == r["live_buffers"]["baseline"]
    assert r["rss_mb"]["peak"] >= r["rss_mb"]["start"] > 0
