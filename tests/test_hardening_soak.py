"""Soak runs (short in CI; the long runs are reported in the README): memory flat, buffers freed,
results unchanged frame after frame."""
import json

import pytest

from runtime.cli import main
from runtime.compiler.codenet_compiler import compile_onnx
from runtime.soak import TARGETS, soak
from tests.hardening_models import small_qdq_net

KEYS = {"frames", "rss_mb", "live_buffers", "fps", "target", "rss_growth_after_1000"}


def _check(r, frames):
    assert set(r) == KEYS and r["frames"] == frames
    assert set(r["rss_mb"]) == {"start", "after_1000", "peak", "end"}
    assert r["live_buffers"]["end"] == r["live_buffers"]["baseline"]
    assert r["rss_mb"]["peak"] >= r["rss_mb"]["end"] > 0
    assert r["rss_growth_after_1000"] < 0.2         # a short run: the long runs are held to 5%
    assert r["fps"]["first_1000"] > 0 and r["fps"]["last_1000"] > 0


def test_soak_bnn_cli(tmp_path, capsys):
    out = tmp_path / "soak.json"
    assert main(["soak", "bnn", "--frames", "4000", "--json", str(out), "--quiet"]) == 0
    _check(json.loads(out.read_text()), 4000)
    assert "soak bnn: 4000 frames" in capsys.readouterr().out


def test_soak_codenet(tmp_path):
    d = tmp_path / "m"
    compile_onnx(small_qdq_net()).save(d)
    _check(soak("codenet", 2500, model=str(d)), 2500)


def test_soak_targets_and_arguments():
    assert {"bnn", "codenet"} <= set(TARGETS)
    with pytest.raises(ValueError, match="unknown soak target 'toaster'"):
        soak("toaster", 10)
    with pytest.raises(ValueError, match="frames must be"):
        soak("bnn", 0)
