"""Power measurement: rail selection and energy arithmetic on data in DataRecorder's format (and
through PYNQ's own DataRecorder with stand-in sensors); off the board a clear refusal."""
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runtime.measure import power

ROOT = Path(__file__).resolve().parents[1]


class FakeSensor:
    """What DataRecorder reads: a name, parents, get_value(parent values)."""
    parents = ()

    def __init__(self, name, value):
        self.name, self._value = name, value

    def get_value(self, parents=None):
        return self._value()


class FakeRail:
    def __init__(self, name, value=lambda: 1.0, with_power=True):
        self.name = name
        self.power = FakeSensor(name + "_power", value) if with_power else None
        self.voltage = FakeSensor(name + "_voltage", lambda: 0.85)


def ultra96_rails(**values):
    names = ["1V2", "3V3", "3V3_D", "AUX", "INT", "PSAUX", "PSDDR", "PSINT_FP", "PSINT_LP", "PSPLL", "5V"]
    rails = {n: FakeRail(n, values.get(n, lambda: 0.5)) for n in names}
    rails["in1"] = FakeRail("in1", with_power=False)                 # voltage-only channels exist too
    return rails


def test_rail_selection_on_the_ultra96v2_names():
    selected = power.find_rails(ultra96_rails())
    assert selected == {"board": ["5V"], "pl": ["INT", "AUX"],
                        "ps": ["PSINT_FP", "PSINT_LP", "PSAUX", "PSPLL"], "ddr": ["PSDDR"]}


def test_no_sensors_is_refused_and_names_the_reason():
    with pytest.raises(power.NoPowerSensors, match="no power sensors: PYNQ's get_rails.. finds no PMBus"):
        power.find_rails({})
    with pytest.raises(power.NoPowerSensors, match="no power sensors"):
        power.find_rails({"in1": FakeRail("in1", with_power=False)})
    rails = ultra96_rails()
    del rails["5V"]
    with pytest.raises(power.NoPowerSensors, match=r"not the Ultra96-V2 board rail 5V"):
        power.find_rails(rails)


def recorded_frame(idle_w, run_w, idle_n=20, run_n=30, dt=0.1):
    """A frame as DataRecorder.frame: DatetimeIndex, 'Mark', one '<rail>_power' column per rail."""
    t0 = pd.Timestamp("2026-12-03 12:00:00")
    index = pd.DatetimeIndex([t0 + pd.Timedelta(seconds=i * dt) for i in range(idle_n + run_n)])
    data = {"Mark": [0.0] * idle_n + [1.0] * run_n}
    for rail in idle_w:
        data[rail + "_power"] = [idle_w[rail]] * idle_n + [run_w[rail]] * run_n
    return pd.DataFrame(data, index=index, dtype="f4")


def test_energy_arithmetic_on_recorded_data():
    selected = {"board": ["5V"], "pl": ["INT", "AUX"]}
    frame = recorded_frame({"5V": 4.0, "INT": 0.5, "AUX": 0.25}, {"5V": 5.5, "INT": 1.25, "AUX": 0.25})
    r = power.analyse(frame, selected, items=600, inference_s=3.0)
    board, pl = r["groups"]["board"], r["groups"]["pl"]
    assert r["samples"] == {"idle": 20, "inference": 30}
    assert board["idle_mean_w"] == pytest.approx(4.0) and board["inference_mean_w"] == pytest.approx(5.5)
    assert pl["idle_mean_w"] == pytest.approx(0.75) and pl["inference_mean_w"] == pytest.approx(1.5)
    assert board["energy_per_item_mj"] == pytest.approx(5.5 * 3.0 / 600 * 1e3)             # 27.5 mJ
    assert board["dynamic_energy_per_item_mj"] == pytest.approx(1.5 * 3.0 / 600 * 1e3)     # 7.5 mJ
    assert pl["dynamic_w"] == pytest.approx(0.75)
    # the integral over the 30 samples, 0.1 s apart: 2.9 s of 5.5 W
    assert board["inference_energy_j"] == pytest.approx(5.5 * 2.9)
    assert r["rails"]["INT"] == {"idle_mean_w": pytest.approx(0.5), "inference_mean_w": pytest.approx(1.25)}
    assert r["items_per_s"] == pytest.approx(200.0)


def test_energy_follows_a_changing_power():
    frame = recorded_frame({"5V": 4.0}, {"5V": 0.0})
    frame.loc[frame["Mark"] == 1, "5V_power"] = np.linspace(4.0, 7.0, 30).astype("f4")    # a ramp
    r = power.analyse(frame, {"board": ["5V"]}, items=10, inference_s=2.9)
    assert r["groups"]["board"]["inference_energy_j"] == pytest.approx(5.5 * 2.9, rel=1e-5)


@pytest.mark.parametrize("frame, items, message", [
    (recorded_frame({"5V": 4.0}, {"5V": 5.0}, run_n=1), 10, "phase 'inference' has 1 samples"),
    (recorded_frame({"5V": 4.0}, {"5V": 5.0}), 0, "at least one processed item"),
    (recorded_frame({"INT": 4.0}, {"INT": 5.0}), 10, "no column 5V_power"),
])
def test_bad_recordings_are_refused(frame, items, message):
    with pytest.raises(ValueError, match=message):
        power.analyse(frame, {"board": ["5V"]}, items=items, inference_s=1.0)


def test_record_with_pynqs_data_recorder(tmp_path):
    """record() drives PYNQ's real DataRecorder: the idle phase is Mark 0, the workload's phase Mark 1."""
    busy = []
    rails = ultra96_rails(**{"5V": lambda: 6.0 if busy else 4.0})
    selected = power.find_rails(rails)

    def work():
        busy.append(1)
        time.sleep(0.02)
        return 8
    frame, items, seconds = power.record(rails, selected, work, idle_s=0.3, run_s=0.4, interval_s=0.02)
    assert list(frame.columns)[:2] == ["Mark", "5V_power"] and items == 8 * len(busy) and seconds >= 0.4
    r = power.analyse(frame, selected, items, seconds)
    assert r["groups"]["board"]["idle_mean_w"] == pytest.approx(4.0)
    assert 5.0 < r["groups"]["board"]["inference_mean_w"] <= 6.0
    power.plot(frame, selected, tmp_path / "power.png", "test")
    assert (tmp_path / "power.png").read_bytes()[:4] == b"\x89PNG"


def test_measure_power_off_the_board_says_so_and_fails(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "demos" / "measure_power.py"), "--out", str(tmp_path / "p")],
                       capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 3
    assert "no power sensors" in r.stderr and "nothing was measured" in r.stderr
    assert r.stdout == "" and not (tmp_path / "p").exists()


def test_sensors_but_a_simulated_pl_is_refused(tmp_path, monkeypatch, capsys):
    """A machine with rails but no bitstream: the rails would show the host's load, not the FPGA's."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("measure_power", str(ROOT / "demos" / "measure_power.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(power, "board_rails", ultra96_rails)
    assert script.main(["--overlay", "bnn", "--batch", "16", "--out", str(tmp_path / "p")]) == 3
    err = capsys.readouterr().err
    assert "runs on the simulated PL here" in err and "Nothing was measured" in err
    assert not (tmp_path / "p").exists()
