"""demos/measure_latency.py and runtime.measure.latency: stages from the drivers' marks, measured
and modelled figures in separately named fields, JSON + CSV + PNG."""
import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from runtime.measure import latency
from runtime.measure.bnn_perf import modelled as bnn_modelled

ROOT = Path(__file__).resolve().parents[1]


class FakeIP:
    timeline = None

    def mark(self, event):
        self.timeline.append((event, time.perf_counter()))


def fake_pipeline(pl, marks=latency.MARKS, pause=0.002):
    ip = FakeIP()

    def engine(x):
        for event in marks:
            time.sleep(pause)
            ip.mark(event)
        time.sleep(pause)
        return x

    return latency.Pipeline("fake", ip, pre=lambda x: x, engine=engine, post=lambda x: x, items=[1, 2, 3],
                            modelled={"pl_ms": 1.5, "layers": [{"name": "l0", "ms": 1.5, "cycles": 375000}],
                                      "label": "MODELLED test"},
                            pl=pl, engine_kind="numpy", describe="test")


def test_stages_come_from_the_driver_marks_and_sum_to_the_call():
    p = fake_pipeline("sim", pause=0.003)
    t0 = time.perf_counter()
    stages = latency.time_one(p, 1)
    wall = time.perf_counter() - t0
    assert list(stages) == list(latency.STAGES)
    assert all(v >= 0.003 for v in stages.values())            # each stage holds one pause
    assert sum(stages.values()) == pytest.approx(wall, abs=2e-3)
    assert p.ip.timeline is None                               # recording switched off again


def test_an_engine_call_without_exactly_one_start_is_an_error():
    with pytest.raises(RuntimeError, match="expected one engine start per inference"):
        latency.time_one(fake_pipeline("sim", marks=("flush", "start", "done")), 1)
    with pytest.raises(RuntimeError, match="expected one engine start"):
        latency.time_one(fake_pipeline("sim", marks=latency.MARKS * 2), 1)


def test_summary_percentiles():
    s = latency.summary_ms(np.arange(1, 102) * 1e-3)            # 1..101 ms
    assert s["n"] == 101 and s["median_ms"] == pytest.approx(51) and s["p5_ms"] == pytest.approx(6)
    assert s["p95_ms"] == pytest.approx(96) and s["min_ms"] == pytest.approx(1) and s["max_ms"] == pytest.approx(101)


def test_simulated_pl_keeps_measured_and_modelled_apart():
    r = latency.measure(fake_pipeline("sim"), runs=5, warmup=1)
    pl = r["stages"]["PL compute"]
    assert set(pl) == {"modelled", "simulated_pl_wall"} and pl["modelled"]["ms"] == 1.5
    for s in latency.HOST_STAGES:
        assert set(r["stages"][s]) == {"measured"} and r["stages"][s]["measured"]["n"] == 5
    assert "end_to_end_measured" not in r
    assert r["end_to_end_host_measured_plus_pl_modelled_ms"] == pytest.approx(
        r["host_stages_measured"]["median_ms"] + 1.5)


def test_on_the_board_the_pl_stage_is_measured():
    r = latency.measure(fake_pipeline("board"), runs=5, warmup=0)
    assert set(r["stages"]["PL compute"]) == {"modelled", "measured"}
    assert r["end_to_end_measured"]["n"] == 5 and "end_to_end_host_measured_plus_pl_modelled_ms" not in r


def test_measure_latency_script_on_the_simulated_pl(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "demos" / "measure_latency.py"), "--runs", "15",
                        "--warmup", "2", "--out", str(tmp_path)], capture_output=True, text=True,
                       cwd=str(tmp_path), timeout=900)
    assert r.returncode == 0, r.stderr
    assert "PL compute         MODELLED" in r.stdout
    results = {x["overlay"]: x for x in json.loads((tmp_path / "latency.json").read_text())["results"]}
    assert set(results) == {"bnn", "codenet"}
    for x in results.values():
        assert x["pl"] == "sim" and x["runs"] == 15
        assert set(x["stages"]["PL compute"]) == {"modelled", "simulated_pl_wall"}
        assert x["stages"]["pre-processing"]["measured"]["median_ms"] > 0
        assert x["layers"]["measured"] is None and x["layers"]["modelled"]
    assert results["bnn"]["stages"]["PL compute"]["modelled"]["ms"] == pytest.approx(bnn_modelled()["latency_ms"])
    assert [l["name"] for l in results["bnn"]["layers"]["modelled"]] == list(bnn_modelled()["cycles_per_layer"])
    codenet = results["codenet"]
    assert codenet["stages"]["PL compute"]["modelled"]["ms"] == pytest.approx(
        sum(l["ms"] for l in codenet["layers"]["modelled"]), rel=0.01)  # + the start overhead
    rows = list(csv.DictReader(io.StringIO((tmp_path / "latency.csv").read_text())))
    kinds = {(row["overlay"], row["name"], row["kind"]) for row in rows if row["row"] == "stage"}
    assert ("bnn", "PL compute", "modelled") in kinds and ("codenet", "pre-processing", "measured") in kinds
    assert not any(k[1] == "PL compute" and k[2] == "measured" for k in kinds)
    assert sum(row["row"] == "layer" for row in rows) == len(codenet["layers"]["modelled"]) + len(
        results["bnn"]["layers"]["modelled"])
    png = (tmp_path / "latency.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000
