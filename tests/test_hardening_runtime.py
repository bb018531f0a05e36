"""Runtime hardening: objects shared between threads, faults of the simulated PL, one PL per
process, and the validation of every input and count argument."""
import threading

import numpy as np
import pynq
import pytest

from runtime import classifier as classifier_mod
from runtime import codenet_runner as runner_mod
from runtime.classifier import Classifier
from runtime.codenet_runner import CodenetRunner
from runtime.compiler.codenet_compiler import compile_onnx
from runtime.engines.bnn_model import BnnEngineModel
from runtime.errors import (AllocationError, EngineError, EngineTimeoutError, InputError, OverlayError,
                            SimulationError)
from runtime.platform import pl_state
from runtime.platform.sim_device import process_device
from tests.hardening_models import small_qdq_net


def reference_scores(model_dir, images):
    from runtime.compiler.bnn_model_file import load_bnn_model
    engine = BnnEngineModel()
    engine.load_params(load_bnn_model(model_dir).words)
    return engine.classify(images[..., None])


@pytest.fixture
def clf(random_bnn_model, monkeypatch):
    monkeypatch.setattr(classifier_mod, "TIMEOUT_BASE_S", 0.05)
    monkeypatch.setattr(classifier_mod, "TIMEOUT_PER_IMAGE_S", 0.0)
    with Classifier(model=str(random_bnn_model), pl="sim", engine="numpy", batch_size=32) as c:
        yield c


@pytest.fixture(scope="module")
def small_model():
    return compile_onnx(small_qdq_net())


@pytest.fixture
def net(small_model):
    with CodenetRunner(small_model, pl="sim", engine="numpy", timeout_s=0.05) as n:
        yield n


def frames(n, seed=0):
    return np.random.default_rng(seed).random((n, 1, 3, 16, 16), dtype=np.float32)


def run_threads(work, n_threads=2):
    errors = []

    def body(k):
        try:
            work(k)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=body, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    return errors


# ------------------------------------------------------------------------------------ threads
def test_two_threads_share_one_classifier(random_bnn_model, fmnist_test):
    images = fmnist_test[0][:256]
    ref = reference_scores(random_bnn_model, images)
    wrong = [0, 0]
    with Classifier(model=str(random_bnn_model), pl="sim", batch_size=16) as c:
        dev, starts = c.overlay.device, c.overlay.device.starts["bnn_0"]

        def work(k):
            rng = np.random.default_rng(k)
            for _ in range(25):
                lo = int(rng.integers(0, 200))
                n = int(rng.integers(1, 56))
                wrong[k] += int((c.scores(images[lo:lo + n]) != ref[lo:lo + n]).any(axis=1).sum())
                label, _ = c.classify(images[lo])
                wrong[k] += label != int(np.argmax(ref[lo]))
        assert run_threads(work) == []
        assert dev.starts["bnn_0"] > starts        # no reprogram (it resets the count): no timeout
    assert wrong == [0, 0]


def test_two_threads_share_one_codenet_runner(small_model):
    x = frames(8)
    ref = [small_model.run_numpy(x[i])[small_model.outputs[0]["name"]].copy() for i in range(8)]
    wrong = [0, 0]
    with CodenetRunner(small_model, pl="sim") as net:
        dev = net.overlay.device

        def work(k):
            for r in range(30):
                i = (r * 3 + k) % 8
                out = net.run(x[i])
                wrong[k] += not np.array_equal(out[small_model.outputs[0]["name"]], ref[i])
        assert run_threads(work) == []
        assert dev.starts["codenet_0"] == 60      # one start per frame, no reprogram
    assert wrong == [0, 0]


def test_two_objects_on_one_ip_take_turns(random_bnn_model, tmp_path, fmnist_test):
    """Two Classifiers with different weights on the one BNN IP: each reloads its own weights
    when the other used the IP last."""
    from runtime.compiler.bnn_model_file import save_bnn_model
    from runtime.engines.bnn_format import pack_params, random_layers
    other = save_bnn_model(tmp_path / "other", pack_params(random_layers(np.random.default_rng(7))), {})
    images = fmnist_test[0][:20]
    with Classifier(model=str(random_bnn_model), pl="sim") as a, Classifier(model=str(other), pl="sim") as b:
        for _ in range(2):
            assert np.array_equal(a.scores(images), reference_scores(random_bnn_model, images))
            assert np.array_equal(b.scores(images), reference_scores(other, images))


# ------------------------------------------------------------------------ one PL per process
def test_one_device_and_one_cma_pool_per_process(random_bnn_model, small_model):
    with Classifier(model=str(random_bnn_model), pl="sim") as c:
        assert c.overlay.device is process_device()
        with CodenetRunner(small_model, pl="sim") as n:
            assert n.overlay.device is c.overlay.device


def test_another_overlay_replaces_the_first(random_bnn_model, small_model, fmnist_test):
    images = fmnist_test[0][:4]
    c = Classifier(model=str(random_bnn_model), pl="sim")
    try:
        with CodenetRunner(small_model, pl="sim"):
            with pytest.raises(OverlayError, match=r"Classifier: the PL was reprogrammed with .*codenet"):
                c.scores(images)
    finally:
        c.close()
    # the same overlay downloaded again by another object: the first re-does its set-up
    with Classifier(model=str(random_bnn_model), pl="sim") as a:
        with Classifier(model=str(random_bnn_model), pl="sim"):
            pass
        assert np.array_equal(a.scores(images), reference_scores(random_bnn_model, images))


def test_another_engine_is_another_simulated_bitstream(random_bnn_model, fmnist_test):
    with Classifier(model=str(random_bnn_model), pl="sim", engine="numpy") as a:
        Classifier(model=str(random_bnn_model), pl="sim", engine="csim").close()
        with pytest.raises(OverlayError, match="csim engine"):
            a.scores(fmnist_test[0][:1])


# --------------------------------------------------------------------------------- faults
def test_fault_hang_and_hang_during_recovery(clf, fmnist_test, random_bnn_model):
    images = fmnist_test[0][:5]
    ref = reference_scores(random_bnn_model, images)
    dev = clf.overlay.device
    dev.inject_fault("bnn_0", "hang", count=2)
    with pytest.raises(EngineTimeoutError, match="ap_done not raised"):
        clf.scores(images)
    # the recovery reprograms the PL (pending faults survive it) and hangs loading the weights
    assert dev.pending_faults("bnn_0") == ["hang"]
    with pytest.raises(EngineTimeoutError, match="while setting the engine up again"):
        clf.scores(images)
    assert np.array_equal(clf.scores(images), ref)


def test_fault_garbage_outputs_detected_for_the_bnn(clf, fmnist_test, random_bnn_model):
    images = fmnist_test[0][:5]
    clf.overlay.device.inject_fault("bnn_0", "garbage")
    with pytest.raises(EngineError, match="impossible scores"):
        clf.scores(images)
    assert np.array_equal(clf.scores(images), reference_scores(random_bnn_model, images))


def test_fault_garbage_outputs_of_codenet_are_not_detectable(net, small_model):
    """The CoDeNet engine's outputs carry no redundancy: garbage is returned (documented), and
    the next frame is right."""
    x = frames(1)[0]
    name = small_model.outputs[0]["name"]
    ref = small_model.run_numpy(x)[name].copy()
    net.overlay.device.inject_fault("codenet_0", "garbage")
    assert not np.array_equal(net.run(x)[name], ref)
    assert np.array_equal(net.run(x)[name], ref)


@pytest.mark.parametrize("target", ["bnn", "codenet"])
def test_fault_engine_never_idle_is_reprogrammed_transparently(target, clf, fmnist_test, random_bnn_model,
                                                                small_model):
    if target == "bnn":
        images = fmnist_test[0][:5]
        ref = reference_scores(random_bnn_model, images)
        clf.overlay.device.inject_fault("bnn_0", "never_idle")
        assert np.array_equal(clf.scores(images), ref)       # finished with ap_done: right
        assert not clf.ip.idle
        assert np.array_equal(clf.scores(images), ref)       # busy at start: reprogram, retry
        assert clf.ip.idle
        return
    with CodenetRunner(small_model, pl="sim", timeout_s=0.05) as net:
        x = frames(1)[0]
        name = small_model.outputs[0]["name"]
        ref = small_model.run_numpy(x)[name].copy()
        net.overlay.device.inject_fault("codenet_0", "never_idle", count=1)
        for _ in range(3):
            assert np.array_equal(net.run(x)[name], ref)


def test_fault_codenet_hang_then_next_frame_right(net, small_model):
    x = frames(1)[0]
    name = small_model.outputs[0]["name"]
    net.overlay.device.inject_fault("codenet_0", "hang")
    with pytest.raises(EngineTimeoutError):
        net.run(x)
    assert np.array_equal(net.run(x)[name], small_model.run_numpy(x)[name])


def test_evaluate_retries_a_batch_once_and_keeps_the_results_done(clf, fmnist_test, random_bnn_model):
    images, labels = fmnist_test[0][:100], fmnist_test[1][:100]
    ref = np.argmax(reference_scores(random_bnn_model, images), axis=1)
    for kind in ("hang", "garbage"):
        clf.overlay.device.inject_fault("bnn_0", kind)
        r = clf.evaluate(images, labels, progress=False, chunk=32)
        assert np.array_equal(r["predictions"], ref)


def test_evaluate_partial_results_after_two_failures(clf, fmnist_test, random_bnn_model, monkeypatch):
    from runtime.drivers.bnn import BnnDriver
    images = fmnist_test[0][:96]
    ref = np.argmax(reference_scores(random_bnn_model, images), axis=1)
    dev = clf.overlay.device
    calls = {"n": 0}
    real = BnnDriver.classify

    def flaky(self, *a, **k):     # the third chunk hangs, and hangs again after the reprogram
        calls["n"] += 1
        if calls["n"] in (3, 4):
            dev.inject_fault("bnn_0", "hang")
        return real(self, *a, **k)
    monkeypatch.setattr(BnnDriver, "classify", flaky)
    with pytest.raises(EngineTimeoutError, match="failed again after reprogramming; 64 of 96") as e:
        clf.evaluate(images, progress=False, chunk=32)
    assert e.value.partial["images"] == 64
    assert np.array_equal(e.value.partial["predictions"], ref[:64])
    assert np.array_equal(clf.predict(images), ref)


def test_fault_count_and_kind_validated(clf):
    dev = clf.overlay.device
    for bad in (0, -3, 1.5, True, "2", 1 << 30):
        with pytest.raises(ValueError, match="fault count must be an integer"):
            dev.inject_fault("bnn_0", "hang", count=bad)
    with pytest.raises(ValueError, match="unknown fault 'melt'; supported: garbage, hang, never_idle"):
        dev.inject_fault("bnn_0", "melt")
    with pytest.raises(OverlayError, match="no IP 'nope'"):
        dev.inject_fault("nope", "hang")
    assert dev.pending_faults("bnn_0") == []


def test_cma_exhaustion_and_fragmentation(random_bnn_model, fmnist_test):
    dev = process_device()
    used = dev.cma_used
    free = dev.cma_bytes - (dev._next_free - 0x6000_0000) + sum(n for _, n in dev._free_ranges)
    hog = pynq.allocate((free - 4096,), np.uint8, target=dev)
    try:
        with pytest.raises(AllocationError, match="CMA allocation of .* failed: .* contiguous pool in use"):
            Classifier(model=str(random_bnn_model), pl="sim")
        assert dev.cma_used == used + hog.nbytes
    finally:
        hog.freebuffer()
    # fragmentation: free space in total, but no contiguous block large enough
    pages = [pynq.allocate((1 << 20,), np.uint8, target=dev) for _ in range(8)]
    rest = pynq.allocate((dev.cma_bytes - (dev._next_free - 0x6000_0000) - 4096,), np.uint8, target=dev)
    try:
        for p in pages[::2]:
            p.freebuffer()
        with pytest.raises(AllocationError, match=r"fragmented: \d+ bytes are free in total but the largest "
                                                  r"contiguous block is 1048576"):
            pynq.allocate((2 << 20,), np.uint8, target=dev)
    finally:
        for p in pages[1::2] + [rest]:
            p.freebuffer()
    assert dev.cma_used == used
    with Classifier(model=str(random_bnn_model), pl="sim") as c:     # the next use works
        images = fmnist_test[0][:3]
        assert np.array_equal(c.scores(images), reference_scores(random_bnn_model, images))


@pytest.mark.parametrize("missing", ["flush", "invalidate"])
def test_a_missing_cache_operation_gives_wrong_results(clf, fmnist_test, random_bnn_model, monkeypatch, missing):
    """The simulated buffers are not coherent: removing one cache call from the driver is caught."""
    images = fmnist_test[0][:8]
    ref = reference_scores(random_bnn_model, images)
    assert np.array_equal(clf.scores(images), ref)
    clf.scores(fmnist_test[0][100:108])                 # other data in the buffers first
    monkeypatch.setattr(pynq.buffer.PynqBuffer, missing, lambda self, *a, **k: None)
    assert not np.array_equal(clf.scores(images), ref)   # stale images / stale scores
    monkeypatch.undo()
    assert np.array_equal(clf.scores(images), ref)


# ------------------------------------------------------------------------------- inputs
@pytest.mark.parametrize("bad, message", [
    (np.float32(np.nan), "non-finite"), (np.float32(np.inf), "non-finite"), (-np.float32(np.inf), "non-finite"),
])
def test_codenet_non_finite_inputs_refused(net, bad, message):
    x = frames(1)[0].copy()
    x[0, 2, 4, 5] = bad
    starts = net.overlay.device.starts["codenet_0"]
    with pytest.raises(InputError, match=message):
        net.run(x)
    with pytest.raises(InputError, match=message):
        net.run_quantized(x)
    assert net.overlay.device.starts["codenet_0"] == starts


@pytest.mark.parametrize("kw, message", [
    (dict(chunk=-1), "chunk must be in 1..65536, got -1"), (dict(chunk=0), "chunk must be in"),
    (dict(chunk=2.5), "chunk must be an integer"), (dict(labels=np.array(["a"] * 10)), "labels must be integer"),
    (dict(labels=np.full(10, 10)), r"labels must be in 0..9, got 10..10"),
    (dict(labels=np.zeros(10, np.float32)), "labels must be integer class indices, got dtype float32"),
    (dict(labels=np.zeros(9, np.int64)), r"labels must have shape \(10,\)"),
])
def test_evaluate_arguments_validated(clf, fmnist_test, kw, message):
    with pytest.raises(InputError, match=message):
        clf.evaluate(fmnist_test[0][:10], progress=False, **kw)


def test_top_and_batch_size_validated(clf, fmnist_test, random_bnn_model):
    for top in (0, -1, 11, 2.0):
        with pytest.raises(InputError, match="top must be"):
            clf.classify(fmnist_test[0][0], top=top)
    assert len(clf.classify(fmnist_test[0][0], top=10)[1]) == 10
    for bs in (0, -5, 1 << 17, 3.5, "8"):
        with pytest.raises(InputError, match="batch_size must be"):
            Classifier(model=str(random_bnn_model), pl="sim", batch_size=bs)


def test_runner_timeout_validated(small_model):
    for t in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="timeout_s must be"):
            CodenetRunner(small_model, pl="sim", timeout_s=t)
    assert runner_mod.TIMEOUT_S > 0


def test_pl_state_names_what_is_loaded(random_bnn_model):
    with Classifier(model=str(random_bnn_model), pl="sim") as c:
        assert pl_state.loaded() == c.overlay.pl_identity
        assert pl_state.owner("bnn_0") is c._token


def test_reload_behind_the_runtimes_back_then_the_next_call_is_right(clf, fmnist_test, random_bnn_model):
    """A bitstream reload the process did not see (another process): the simulation catches the
    classify without weights (on a board: garbage, usually caught by the score check); the PL
    is reprogrammed before the next call."""
    images = fmnist_test[0][:5]
    clf.overlay.device.reset_ip("bnn_0")
    with pytest.raises(SimulationError, match="before its weights were loaded"):
        clf.scores(images)
    assert np.array_equal(clf.scores(images), reference_scores(random_bnn_model, images))


def test_close_waits_for_a_frame_of_another_thread(random_bnn_model, fmnist_test):
    images = fmnist_test[0][:2000]
    c = Classifier(model=str(random_bnn_model), pl="sim", batch_size=2000)
    result = {}

    def work(k):
        result["scores"] = c.scores(images)
    t = threading.Thread(target=work, args=(0,))
    t.start()
    while not c._lock._is_owned() and t.is_alive():
        pass
    c.close()                                  # waits for the frame, then frees the buffers
    t.join()
    assert result["scores"].shape == (2000, 10)
    with pytest.raises(RuntimeError, match="closed"):
        c.scores(images[:1])


def test_a_collected_object_never_waits_for_the_ip_lock(random_bnn_model):
    """The garbage collector may finalize an unreachable Classifier on a worker thread that
    another object's frame (holding the IP's lock) is waiting for: the finalizer frees the
    buffers without the lock (it once waited for it: a deadlock that hung CI runs)."""
    dropped = Classifier(model=str(random_bnn_model), pl="sim")
    dev = dropped.overlay.device
    before = dev.live_allocations
    with Classifier(model=str(random_bnn_model), pl="sim") as busy, busy._lock:    # a frame in flight
        finalizer = threading.Thread(target=dropped.__del__, daemon=True)   # as the collector runs it
        finalizer.start()
        finalizer.join(10)
        assert not finalizer.is_alive(), "the finalizer waits for the IP lock"
    assert dev.live_allocations < before and dropped._params is None
