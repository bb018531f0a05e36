"""The C-simulation build: clear errors when the compiler or the ap_types headers are missing."""
import importlib.util

import pytest

from runtime.engines import csim


def test_missing_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-g++")
    with pytest.raises(csim.CsimBuildError, match=r"C\+\+ compiler 'no-such-g\+\+' not found: .*apt-get install g\+\+"):
        csim.build_library("bnn")


def test_missing_ap_types_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PYNQ_DEPLOY_AP_TYPES", str(tmp_path))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(csim.CsimBuildError, match=r"ap_types headers .* not found: install the simulation extra"):
        csim.find_ap_types()


def test_ap_types_come_from_the_installed_hls4ml_package():
    path = csim.find_ap_types()
    assert path.parts[-4:] == ("hls4ml", "templates", "vivado", "ap_types")
    assert (path / "ap_fixed.h").is_file()


def test_build_is_cached_by_source_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("PYNQ_DEPLOY_CACHE", str(tmp_path))
    first, warnings = csim.build_library("bnn")
    assert first.parent == tmp_path / "csim" and warnings == ""   # -Wall clean
    again, _ = csim.build_library("bnn")
    assert again == first
    monkeypatch.setattr(csim, "CXX_FLAGS", csim.CXX_FLAGS + ["-DPYNQ_DEPLOY_TEST_FLAG"])
    other, _ = csim.build_library("bnn")
    assert other != first and other.is_file()


def test_compile_error_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("PYNQ_DEPLOY_CACHE", str(tmp_path))
    with pytest.raises(csim.CsimBuildError, match="C-simulation build failed"):
        csim.build_library("bnn", extra_flags=["-DBNN_CONFIG_H", "-DPARAM_WORDS=oops"])
    assert list((tmp_path / "csim").glob("*")) == []


def test_unknown_engine():
    with pytest.raises(csim.CsimBuildError, match="no HLS sources for engine 'nope'"):
        csim.build_library("nope")
