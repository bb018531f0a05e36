"""File integrity: one hash over the whole model (both formats), required; manifests checked
against their schema before anything is built; every load error names the file and the field."""
import copy
import json
import shutil

import numpy as np
import pytest

from runtime.classifier import Classifier
from runtime.compiler.bnn_model_file import load_bnn_model, params_sha256
from runtime.compiler.codenet_compiler import CompiledModel, compile_onnx
from runtime.compiler.model_files import MODEL_SHA_FIELD, whole_model_sha256
from runtime.drivers import BnnDriver, CodenetDriver
from runtime.errors import ModelError, OverlayError, PynqDeployError
from runtime.platform.manifest import load_manifest, resolve_overlay_dir
from runtime.platform.manifest_schema import KNOWN_IPS
from tests.hardening_models import small_qdq_net


# ------------------------------------------------------------------------------ BNN model
def _copy(src, dst):
    shutil.copytree(str(src), str(dst))
    return dst


def test_shipped_bnn_model_carries_the_whole_model_hash():
    m = load_bnn_model(resolve_overlay_dir("bnn") / "models" / "fashion_mnist")
    assert m.meta[MODEL_SHA_FIELD] == whole_model_sha256(m.meta, [m.words])


def test_bnn_hash_is_required(tmp_path, random_bnn_model):
    m = _copy(random_bnn_model, tmp_path / "m")
    meta = json.loads((m / "model.json").read_text())
    del meta[MODEL_SHA_FIELD]
    (m / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"m: model.json: the field 'model_sha256' .* is missing"):
        load_bnn_model(m)
    meta.pop("params_sha256")
    (m / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="params.npy does not match .*the field is missing"):
        load_bnn_model(m)


def test_bnn_inverted_weights_with_a_fixed_params_hash_are_refused(tmp_path, random_bnn_model):
    m = _copy(random_bnn_model, tmp_path / "m")
    words = np.load(m / "params.npy")
    from runtime.engines.bnn_format import _section
    a, b = _section("fc1", "weights")
    words[a:b] = ~words[a:b]                        # every output weight inverted
    np.save(m / "params.npy", words)
    meta = json.loads((m / "model.json").read_text())
    meta["params_sha256"] = params_sha256(words)    # the per-array hash "repaired"
    (m / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="model_sha256 does not match the model's contents"):
        Classifier(model=str(m), pl="sim")


@pytest.mark.parametrize("field, value", [("classes", ["x"] * 10), ("name", "other"), ("extra", 1)])
def test_bnn_edited_metadata_is_refused(tmp_path, random_bnn_model, field, value):
    m = _copy(random_bnn_model, tmp_path / "m")
    meta = json.loads((m / "model.json").read_text())
    meta[field] = value
    (m / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="model.json: model_sha256 does not match"):
        load_bnn_model(m)


# -------------------------------------------------------------------------- CoDeNet model
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("codenet_small")
    compile_onnx(small_qdq_net()).save(d)
    return d


def _edit(saved, tmp_path, fn, rehash=False):
    d = _copy(saved, tmp_path / "edited")
    meta = json.loads((d / "model.json").read_text())
    fn(meta)
    if rehash:
        arrays = [np.load(d / "program.npy"), np.load(d / "weights.npy")]
        meta[MODEL_SHA_FIELD] = whole_model_sha256(meta, arrays)
    (d / "model.json").write_text(json.dumps(meta))
    return d


EDITS = {
    "input.scale": lambda m: m["input"].__setitem__("scale", m["input"]["scale"] * 2),
    "input.zp": lambda m: m["input"].__setitem__("zp", 3),
    "input.offset": lambda m: m["input"].__setitem__("offset", m["input"]["offset"] + 16),
    "outputs[0].offset": lambda m: m["outputs"][0].__setitem__("offset", 0),
    "outputs[0].scale": lambda m: m["outputs"][0].__setitem__("scale", 1.0),
    "outputs": lambda m: m.__setitem__("outputs", []),
    "arena_size": lambda m: m.__setitem__("arena_size", 10),
}


@pytest.mark.parametrize("field", sorted(EDITS))
def test_codenet_edited_fields_are_refused_by_the_hash(saved, tmp_path, field):
    d = _edit(saved, tmp_path, EDITS[field])
    with pytest.raises(ModelError, match="model_sha256 does not match the model's contents"):
        CompiledModel.load(d)


@pytest.mark.parametrize("fn, field", [
    (lambda m: m.__setitem__("arena_size", 10), "arena_size|input.offset"),
    (lambda m: m["input"].__setitem__("scale", float("nan")), "input.scale"),
    (lambda m: m["input"].__setitem__("scale", 1e-40), "input.scale"),
    (lambda m: m["input"].__setitem__("zp", 300), "input.zp"),
    (lambda m: m["input"].__setitem__("signed", "no"), "input.signed"),
    (lambda m: m["input"].__setitem__("shape", [1, 3, 16]), "input.shape"),
    (lambda m: m["input"].__setitem__("offset", -1), "input.offset"),
    (lambda m: m["input"].__setitem__("cs", 0), "input.cs"),
    (lambda m: m["input"].__setitem__("cs", 2), "input.cs"),
    (lambda m: m["input"].__setitem__("cs", None), "input.cs"),
    (lambda m: m["input"].__setitem__("cs", "16"), "input.cs"),
    (lambda m: m["input"].__setitem__("cs", 1 << 15), "input.offset"),
    (lambda m: m.__setitem__("outputs", []), "outputs"),
    (lambda m: m["outputs"][0].__setitem__("offset", 1 << 30), r"outputs\[0\].offset"),
    (lambda m: m["outputs"][0].__setitem__("channels", [0, 1, 2, 3, 4, 99]), r"outputs\[0\].channels\[5\]"),
    (lambda m: m["outputs"][0].__setitem__("up", 2), r"outputs\[0\].up"),
    (lambda m: m["outputs"][0].__setitem__("scale", "big"), r"outputs\[0\].scale"),
    (lambda m: m["outputs"][0].pop("zp"), r"outputs\[0\].zp"),
    (lambda m: m.__setitem__("class_names", [1, 2]), "class_names"),
])
def test_codenet_inconsistent_fields_name_the_field(saved, tmp_path, fn, field):
    """A model.json whose hash was recomputed after a bad edit: the schema names the field."""
    d = _edit(saved, tmp_path, fn, rehash=True)
    with pytest.raises(ModelError, match=r"model.json: field ({}):".format(field)):
        CompiledModel.load(d)


def test_codenet_hash_is_required_and_a_good_model_loads(saved, tmp_path):
    cm = CompiledModel.load(saved)
    x = np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)
    ref = compile_onnx(small_qdq_net()).run_numpy(x)
    assert all(np.array_equal(v, ref[k]) for k, v in cm.run_numpy(x).items())
    d = _edit(saved, tmp_path, lambda m: m.pop(MODEL_SHA_FIELD))
    with pytest.raises(ModelError, match="the field 'model_sha256' .* is missing"):
        CompiledModel.load(d)


# ------------------------------------------------------------------------------ manifests
def _overlay(tmp_path, mutate, name="bnn"):
    data = json.loads((resolve_overlay_dir(name) / "manifest.json").read_text())
    data.pop("models", None)
    data.pop("default_model", None)
    mutate(data)
    d = tmp_path / "ov"
    d.mkdir(exist_ok=True)
    (d / "manifest.json").write_text(json.dumps(data))
    return d


def _ip(d):
    return d["ips"]["bnn_0"]


def _reg(name, **kw):
    return lambda d: _ip(d)["registers"][name].update(kw)


MANIFEST_CASES = [
    (lambda d: _ip(d).update(addr_range=0), "ips.bnn_0.addr_range"),
    (lambda d: _ip(d).update(addr_range=16), "ips.bnn_0.addr_range"),
    (lambda d: _ip(d).update(addr_range=1.5), "ips.bnn_0.addr_range: must be an integer"),
    (lambda d: _ip(d).update(addr_range=2 ** 40), "ips.bnn_0.addr_range"),
    (lambda d: _ip(d).update(addr_range=3 * 4096), "ips.bnn_0.addr_range: must be a power of two"),
    (lambda d: _ip(d).update(addr_range="lots"), "ips.bnn_0.addr_range: must be an integer"),
    (lambda d: _ip(d).update(phys_addr="0xA0000100"), "ips.bnn_0.phys_addr: .* not aligned"),
    (lambda d: _ip(d).update(phys_addr=0x1000), "ips.bnn_0.phys_addr: must be in"),
    (lambda d: _ip(d).update(phys_addr=None), "ips.bnn_0.phys_addr: must be an integer"),
    (_reg("mode", offset=-4), "ips.bnn_0.registers.mode.offset: must be in"),
    (_reg("mode", offset="0x35"), "ips.bnn_0.registers.mode.offset: 0x35 is not 4-byte aligned"),
    (lambda d: _ip(d)["registers"]["mode"].pop("offset"), "ips.bnn_0.registers.mode.offset: is missing"),
    (_reg("mode", offset="0x3C"), r"registers.(mode|n_images).offset: overlaps register"),
    (_reg("params", offset="0x18"), r"registers.images.offset: overlaps register params"),
    (_reg("mode", size=16), "registers.mode.size"),
    (_reg("mode", offset=0x20000), "registers.mode.offset: must be in"),
    (_reg("mode", access="sometimes"), "registers.mode.access"),
    (lambda d: _ip(d)["registers"].pop("n_images"), "registers.n_images: is missing"),
    (lambda d: _ip(d)["registers"].pop("CTRL"), "registers.CTRL: the ap_ctrl_hs control register"),
    (lambda d: _ip(d).update(vlnv="xilinx.com:ip:axi_dma:7.1"), "ips.bnn_0.vlnv: unknown IP core"),
    (lambda d: _ip(d).update(vlnv=3), "ips.bnn_0.vlnv: must be a non-empty string"),
    (lambda d: _ip(d).update(engine="codenet"), "ips.bnn_0.engine: must be 'bnn'"),
    (lambda d: d["ips"].update(bnn_1=copy.deepcopy(_ip(d))), "ips.bnn_.\\.phys_addr: its range overlaps IP"),
    (lambda d: d["ips"].update(bnn_1=dict(copy.deepcopy(_ip(d)), phys_addr="0xA0008000", addr_range=32768)),
     "ips.bnn_1.phys_addr: its range overlaps IP bnn_0"),
    (lambda d: d.update(ips={}), "ips: must be a non-empty object"),
    (lambda d: d.update(ips=[]), "ips: must be a non-empty object"),
    (lambda d: d["ips"].update(bnn_0=7), "ips.bnn_0: must be an object"),
    (lambda d: d.update(clock_mhz=-1), "clock_mhz"),
    (lambda d: d.update(clock_mhz="fast"), "clock_mhz"),
    (lambda d: d.update(clock_mhz=float("nan")), "clock_mhz"),
    (lambda d: d.update(name=""), "name: must be"),
    (lambda d: d.update(name="../x"), "name: must be"),
    (lambda d: d.update(bitstream="/etc/passwd"), "bitstream: must be a file name"),
    (lambda d: d.update(models=[1]), "models: must map"),
]


@pytest.mark.parametrize("mutate, message", MANIFEST_CASES)
def test_bad_manifests_are_refused_naming_the_field(tmp_path, mutate, message):
    d = _overlay(tmp_path, mutate)
    with pytest.raises(OverlayError, match=r"manifest .*manifest.json: field .*" + message):
        load_manifest(d)
    with pytest.raises(PynqDeployError):
        Classifier(overlay=str(d), pl="sim")


@pytest.mark.parametrize("name", ["bnn", "codenet"])
def test_shipped_manifests_pass_the_schema(name):
    assert load_manifest(resolve_overlay_dir(name)).name == name


def test_known_ips_are_the_drivers_vlnvs():
    assert sorted(KNOWN_IPS) == sorted(BnnDriver.bindto + CodenetDriver.bindto)
