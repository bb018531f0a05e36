"""Fuzzing in CI (bounded: well under a minute here): hypothesis drives the mutators of
tests/fuzzing.py over ONNX models, compiled-model folders, manifests and images. Every mutant is
compiled / loaded / decoded, or refused with a PynqDeployError; nothing else may escape. A
compiled ONNX mutant must also be accepted by onnxruntime and run. The long runs use
`python -m tests.fuzzing --seconds N` (results in the README)."""
import os
import signal
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import fuzzing

BUDGET = {"onnx": 3000, "codenet_folder": 1200, "bnn_folder": 1200, "manifest": 1200, "image": 4000}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("target", fuzzing.TARGETS)
def test_fuzz_target(target, workdir):
    outcomes = []

    @settings(max_examples=BUDGET[target], deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.randoms(use_true_random=False))
    def check(rng):
        outcomes.append(fuzzing.RUNNERS[target](rng, str(workdir)))
    check()
    assert set(outcomes) <= {"ok", "refused"}
    assert "refused" in outcomes                 # the mutators do reach the checks
    if target != "onnx":
        assert "ok" in outcomes                  # and leave some inputs valid


def _sleeps(rng, workdir):
    time.sleep(5)


def _raises(rng, workdir):
    raise ValueError("raw")


def _dies(rng, workdir):
    os.kill(os.getpid(), signal.SIGSEGV)


def test_long_run_harness_reports_hangs_tracebacks_and_crashes(monkeypatch):
    for name, fn in (("onnx", _sleeps), ("image", _raises), ("manifest", _dies)):
        monkeypatch.setitem(fuzzing.RUNNERS, name, fn)
    r = fuzzing.long_run(["onnx", "image", "manifest", "bnn_folder"], seconds=1.5, hang_s=1)
    t = r["targets"]
    assert t["onnx"]["hangs"] >= 1
    assert sum(v["count"] for v in t["image"]["raw_tracebacks"].values()) >= 1
    assert t["manifest"]["crashes"] >= 1          # a fresh process after each crash
    assert t["bnn_folder"]["executions"] > 0 and t["bnn_folder"]["crashes"] == 0
    assert r["crashes"] >= 1 and r["hangs"] >= 1 and r["raw_tracebacks"] >= 1
