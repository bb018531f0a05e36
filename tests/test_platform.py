"""The platform: PYNQ's own Overlay / DefaultIP / MMIO / allocate on the simulated PL."""
import json
import shutil

import numpy as np
import pynq
import pytest
from pynq.overlay import DefaultIP, _ip_drivers

from runtime import classifier as classifier_mod
from runtime.classifier import Classifier
from runtime.drivers.bnn import BnnDriver
from runtime.engines import bnn_config as cfg
from runtime.engines.bnn_model import BnnEngineModel
from runtime.errors import (AllocationError, EngineTimeoutError, InputError, ModelError,
                            OverlayError, SimulationError)
from runtime.platform import overlay as overlay_mod
from runtime.platform.manifest import check_register_map, load_manifest, resolve_overlay_dir
from runtime.platform.sim_device import SimulatedPL, process_device


@pytest.fixture
def clf(random_bnn_model):
    with Classifier(model=str(random_bnn_model), pl="sim", engine="numpy", batch_size=64) as c:
        yield c


def reference_scores(model_dir, images):
    from runtime.compiler.bnn_model_file import load_bnn_model
    engine = BnnEngineModel()
    engine.load_params(load_bnn_model(model_dir).words)
    return engine.classify(images[..., None])


def test_driver_is_pynq_defaultip_bound_by_vlnv(clf):
    assert isinstance(clf.ip, BnnDriver) and isinstance(clf.ip, DefaultIP)
    assert _ip_drivers["pynq-deploy.org:hls:bnn:1.0"] is BnnDriver
    assert isinstance(clf.overlay, pynq.Overlay)
    assert isinstance(clf.overlay.device, SimulatedPL)
    assert isinstance(clf.ip.mmio, pynq.MMIO) and clf.ip.mmio.device is clf.overlay.device
    # the buffers are PYNQ buffers with simulated physical addresses in the CMA window
    assert isinstance(clf._images, pynq.buffer.PynqBuffer)
    assert clf._images.physical_address >= 0x6000_0000


def test_register_writes_land_in_the_simulated_register_file(clf, fmnist_test, random_bnn_model):
    images = fmnist_test[0][:10]
    dev = clf.overlay.device
    dev.register_log.clear()
    starts = dev.starts["bnn_0"]
    scores = clf.scores(images)
    writes = {(off, val) for ip, off, val in dev.register_log if ip == "bnn_0"}
    assert (0x1C, clf._images.physical_address & 0xFFFFFFFF) in writes
    assert (0x28, clf._scores.physical_address & 0xFFFFFFFF) in writes
    assert (0x34, 1) in writes and (0x3C, 10) in writes and (0x00, 1) in writes
    assert dev.starts["bnn_0"] == starts + 1
    ip = dev.ips["bnn_0"]
    assert ip.reg("n_images") == 10 and ip.reg("mode") == 1
    assert ip.reg("scores") == clf._scores.physical_address
    assert np.array_equal(scores, reference_scores(random_bnn_model, images))
    # PYNQ's register_map reads the same register file
    assert clf.ip.register_map.CTRL.AP_IDLE == 1


def test_buffers_are_not_coherent_like_the_board():
    dev = SimulatedPL()
    buf = pynq.allocate((16,), np.uint8, target=dev)
    buf[:] = 7
    assert dev.dma(buf.physical_address, 16, "test").max() == 0  # engine sees DDR, not the cache
    buf.flush()
    assert dev.dma(buf.physical_address, 16, "test").min() == 7
    dev.dma(buf.physical_address, 16, "test")[:] = 9
    assert buf.max() == 7
    buf.invalidate()
    assert buf.min() == 9
    with pytest.raises(SimulationError, match="runs past the end of its buffer"):
        dev.dma(buf.physical_address, 1 << 20, "test")
    addr = buf.physical_address
    buf.freebuffer()
    with pytest.raises(SimulationError, match="does not fall in any allocated buffer"):
        dev.dma(addr, 16, "stale pointer")


def test_cma_exhaustion_is_a_clear_error_and_frees_everything(random_bnn_model):
    dev = SimulatedPL(cma_bytes=1 << 20)
    a = dev.allocate((512 * 1024,), np.uint8)
    with pytest.raises(AllocationError, match="CMA allocation of .* bytes failed"):
        dev.allocate((1 << 20,), np.uint8)
    a.freebuffer()
    assert dev.cma_used == 0
    dev.allocate((1 << 20,), np.uint8)  # the freed pages are reused


def test_classifier_frees_its_buffers(random_bnn_model):
    used = process_device().cma_used
    c = Classifier(model=str(random_bnn_model), pl="sim")
    dev = c.overlay.device
    assert dev is process_device() and dev.cma_used > used
    c.close()
    assert dev.cma_used == used
    with pytest.raises(RuntimeError, match="closed"):
        c.scores(np.zeros((1, 28, 28), np.uint8))


def test_classify_before_load_is_caught_by_the_simulation(clf):
    clf.overlay.device.reset_ip("bnn_0")  # what a bitstream reload does: on-chip memories lost
    with pytest.raises(SimulationError, match="before its weights were loaded"):
        clf.ip.classify(clf._images, clf._scores, 1)


def test_hang_times_out_and_the_next_call_works(clf, fmnist_test, monkeypatch, random_bnn_model):
    images = fmnist_test[0][:5]
    monkeypatch.setattr(classifier_mod, "TIMEOUT_BASE_S", 0.05)
    monkeypatch.setattr(classifier_mod, "TIMEOUT_PER_IMAGE_S", 0.0)
    clf.overlay.device.inject_fault("bnn_0", "hang")
    with pytest.raises(EngineTimeoutError, match=r"bnn_0: ap_done not raised within 0\.05 s"):
        clf.scores(images)
    # the next call reprograms the PL, reloads the weights and gives the right answer
    assert np.array_equal(clf.scores(images), reference_scores(random_bnn_model, images))


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 28, 27), np.uint8), r"images must have shape \(N, 28, 28\)"),
    (np.zeros((2, 28, 28, 3), np.uint8), r"got \(2, 28, 28, 3\)"),
    (np.zeros((2, 28, 28), np.float32), "images must be uint8 pixels 0..255, got dtype float32"),
    (np.full((2, 28, 28), 300, np.int32), r"pixel values must be in 0..255, got 300..300"),
    (np.full((1, 28, 28), -1, np.int16), r"pixel values must be in 0..255, got -1..-1"),
    (np.zeros((0, 28, 28), np.uint8), "empty batch"),
    ([[0] * 28] * 28, "images must be a numpy array"),
])
def test_bad_images_are_refused_and_nothing_changes(clf, fmnist_test, bad, message, random_bnn_model):
    starts = clf.overlay.device.starts["bnn_0"]
    with pytest.raises(InputError, match=message):
        clf.scores(bad)
    assert clf.overlay.device.starts["bnn_0"] == starts  # the engine was never started
    images = fmnist_test[0][:3]
    assert np.array_equal(clf.scores(images), reference_scores(random_bnn_model, images))


def test_integer_pixels_in_range_are_accepted(clf, fmnist_test):
    images = fmnist_test[0][:3]
    assert np.array_equal(clf.scores(images.astype(np.int32)), clf.scores(images))


def test_missing_overlay_directory(tmp_path):
    with pytest.raises(OverlayError, match="overlay directory not found: .*nope"):
        Classifier(overlay=str(tmp_path / "nope"), pl="sim")


def test_missing_or_corrupt_manifest(tmp_path):
    with pytest.raises(OverlayError, match="has no manifest.json"):
        Classifier(overlay=str(tmp_path), pl="sim")
    (tmp_path / "manifest.json").write_text("{ not json")
    with pytest.raises(OverlayError, match="is not valid JSON"):
        Classifier(overlay=str(tmp_path), pl="sim")


def _copy_model(src, dst):
    shutil.copytree(str(src), str(dst))
    return dst


def test_truncated_params(tmp_path, random_bnn_model):
    m = _copy_model(random_bnn_model, tmp_path / "m")
    data = (m / "params.npy").read_bytes()
    (m / "params.npy").write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelError, match="params.npy is corrupt or truncated"):
        Classifier(model=str(m), pl="sim")


def test_corrupt_params_detected_by_sha(tmp_path, random_bnn_model):
    m = _copy_model(random_bnn_model, tmp_path / "m")
    words = np.load(m / "params.npy")
    words[100] ^= np.uint64(1)
    np.save(m / "params.npy", words)
    with pytest.raises(ModelError, match="does not match the sha256"):
        Classifier(model=str(m), pl="sim")


def test_corrupt_model_json_and_missing_file(tmp_path, random_bnn_model):
    m = _copy_model(random_bnn_model, tmp_path / "m")
    (m / "model.json").write_text("{\"format\": ")
    with pytest.raises(ModelError, match="model.json is corrupt"):
        Classifier(model=str(m), pl="sim")
    (m / "model.json").unlink()
    with pytest.raises(ModelError, match="model.json is missing"):
        Classifier(model=str(m), pl="sim")


def test_model_too_large_for_the_on_chip_buffers(tmp_path, random_bnn_model):
    m = _copy_model(random_bnn_model, tmp_path / "m")
    words = np.load(m / "params.npy")
    np.save(m / "params.npy", np.concatenate([words, np.zeros(64, np.uint64)]))
    meta = json.loads((m / "model.json").read_text())
    meta.pop("params_sha256")
    (m / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"too large for the engine's on-chip buffers: {} parameter words, "
                                         r"the bnn overlay holds {}".format(cfg.PARAM_WORDS + 64, cfg.PARAM_WORDS)):
        Classifier(model=str(m), pl="sim")


def test_failed_construction_frees_buffers(tmp_path, random_bnn_model, monkeypatch):
    dev = process_device()
    used = dev.cma_used
    m = _copy_model(random_bnn_model, tmp_path / "m")
    m.joinpath("params.npy").write_bytes(b"garbage")
    with pytest.raises(ModelError):
        Classifier(model=str(m), pl="sim")
    # a failure after the buffers were allocated (the weights load times out) frees them too
    monkeypatch.setattr(BnnDriver, "load_params", lambda *a, **k: (_ for _ in ()).throw(
        EngineTimeoutError("load hung")))
    with pytest.raises(EngineTimeoutError, match="load hung"):
        Classifier(model=str(random_bnn_model), pl="sim")
    assert dev.cma_used == used


def test_board_without_bitstream_says_how_to_build(monkeypatch):
    monkeypatch.delenv("PYNQ_DEPLOY_PL", raising=False)
    monkeypatch.setattr(overlay_mod, "board_devices", lambda: ["fake-ultra96"])
    manifest = load_manifest(resolve_overlay_dir("bnn"))
    assert not manifest.bitstream_path.exists()
    with pytest.raises(OverlayError, match=r"bnn.bit and bnn.hwh missing .*make -C .* bitstream"):
        overlay_mod.choose_pl(manifest, "auto")
    monkeypatch.setattr(overlay_mod, "board_devices", lambda: [])
    assert overlay_mod.choose_pl(manifest, "auto") == "sim"
    with pytest.raises(OverlayError, match="no board found"):
        overlay_mod.choose_pl(manifest, "board")


def test_hwh_register_map_is_checked_against_the_manifest():
    manifest = load_manifest(resolve_overlay_dir("bnn"))
    regs = manifest.pynq_registers("bnn_0")
    check_register_map(manifest, "bnn_0", regs)  # identical: fine
    # Vitis HLS may split a 64-bit pointer into name_1 / name_2 words
    split = dict(regs)
    p = split.pop("params")
    split["params_1"] = dict(p, size=32)
    split["params_2"] = dict(p, size=32, address_offset=p["address_offset"] + 4)
    check_register_map(manifest, "bnn_0", split)
    moved = dict(regs)
    moved["n_images"] = dict(regs["n_images"], address_offset=0x40)
    del moved["mode"]
    with pytest.raises(OverlayError, match=r"mode: missing from the .hwh; n_images: offset 0x40 in .hwh, 0x3C in manifest$"):
        check_register_map(manifest, "bnn_0", moved)
