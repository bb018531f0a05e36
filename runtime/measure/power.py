"""Power and energy on the Ultra96-V2, from PYNQ's PMBus rails (`pynq.get_rails()`) recorded by
`pynq.DataRecorder`: an idle baseline, then sustained inference; mean power per rail and per group,
energy per frame / image. demos/measure_power.py is its command line.

Only a board has these sensors. Without them `find_rails` raises NoPowerSensors and nothing is
reported: this module never makes a number up.

Rail names: the Ultra96-V2 PYNQ image labels its PMBus regulators through the libsensors
configuration that Avnet's board support ships (two IRPS5401 PMICs and an IR38060): `5V` is the
IR38060's output that feeds the on-board regulators (the closest the sensors come to the board's
total power; the 12 V input itself is not monitored), `INT` is VCCINT (the PL fabric's core
supply), `AUX` VCCAUX, `PSINT_FP` / `PSINT_LP` the PS full- and low-power domains, `PSDDR` the DDR.
"""
import time

import numpy as np

from ..errors import PynqDeployError

# rail groups of the Ultra96-V2: group -> rail names (libsensors labels of the PYNQ image)
ULTRA96V2_GROUPS = {
    "board": ("5V",),
    "pl": ("INT", "AUX"),
    "ps": ("PSINT_FP", "PSINT_LP", "PSAUX", "PSPLL"),
    "ddr": ("PSDDR",),
}
PHASES = ("idle", "inference")
POWER_SUFFIX = "_power"          # DataRecorder names a power column <rail>_power
_trapezoid = getattr(np, "trapezoid", None) or np.trapz      # numpy 2 renamed it


class NoPowerSensors(PynqDeployError):
    """No PMBus power rails on this machine (not a board), or none of the expected names."""


def board_rails():
    """pynq.get_rails(): {name: Rail} of this machine ({} without libsensors or PMBus chips)."""
    import warnings
    import pynq
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # PYNQ warns when libsensors is absent
        return pynq.get_rails()


def find_rails(rails, groups=ULTRA96V2_GROUPS):
    """{group: [rail name, ...]} of the `rails` ({name: Rail}, as get_rails gives) present with a
    power sensor. Raises NoPowerSensors when there are none, or when the board rail is missing."""
    with_power = sorted(n for n, r in (rails or {}).items() if getattr(r, "power", None) is not None)
    if not with_power:
        raise NoPowerSensors(
            "no power sensors: PYNQ's get_rails() finds no PMBus power rails on this machine (it is "
            "not an Ultra96-V2 running the PYNQ image). Power can only be measured on the board; "
            "nothing was measured.")
    selected = {g: [n for n in names if n in with_power] for g, names in groups.items()}
    if not selected.get("board"):
        raise NoPowerSensors(
            "power rails found ({}), but not the Ultra96-V2 board rail {}: pass the rail names of "
            "this board".format(", ".join(with_power), " / ".join(groups["board"])))
    return {g: names for g, names in selected.items() if names}


def record(rails, selected, workload, idle_s=10.0, run_s=30.0, interval_s=0.1):
    """Record the selected rails with PYNQ's DataRecorder: `idle_s` of idle baseline (Mark 0), then
    `workload()` called again and again for at least `run_s` (Mark 1); workload returns how many
    items (frames / images) it processed. -> (recorder frame, items, inference seconds)."""
    import pynq
    names = [n for group in selected.values() for n in group]
    recorder = pynq.DataRecorder(*[rails[n].power for n in dict.fromkeys(names)])
    items = 0
    with recorder.record(interval_s):
        time.sleep(idle_s)
        recorder.mark()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < run_s:
            items += int(workload())
        seconds = time.perf_counter() - t0
    return recorder.frame, items, seconds


def _seconds(index):
    t = np.asarray(index.values, dtype="datetime64[ns]").astype(np.int64)
    return (t - t[0]) / 1e9


def analyse(frame, selected, items, inference_s):
    """Mean power per rail and group in each phase (Mark 0 idle, Mark 1 inference), the energy of
    the inference phase (trapezoidal integral of the group's power over the recorded times) and
    per item, both total and above the idle baseline. All figures MEASURED (from the sensors)."""
    if items < 1 or inference_s <= 0:
        raise ValueError("need at least one processed item and a positive inference time")
    marks = frame["Mark"].to_numpy()
    out = {"rails": {}, "groups": {}, "items": int(items), "inference_s": float(inference_s),
           "samples": {p: int(np.sum(marks == i)) for i, p in enumerate(PHASES)}}
    for phase_id, phase in enumerate(PHASES):
        if out["samples"][phase] < 2:
            raise ValueError("phase {!r} has {} samples; record longer or sample faster".format(
                phase, out["samples"][phase]))
    for group, names in selected.items():
        columns = [n + POWER_SUFFIX for n in names]
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError("recorded data has no column {} (columns: {})".format(
                ", ".join(missing), ", ".join(frame.columns)))
        total = frame[columns].astype(np.float64).sum(axis=1)
        g = {}
        for phase_id, phase in enumerate(PHASES):
            sel = marks == phase_id
            g[phase + "_mean_w"] = float(total[sel].mean())
        sel = marks == 1
        energy = float(_trapezoid(total[sel].to_numpy(), _seconds(frame.index[sel])))
        g["inference_energy_j"] = energy
        g["energy_per_item_mj"] = 1e3 * g["inference_mean_w"] * inference_s / items
        g["dynamic_w"] = g["inference_mean_w"] - g["idle_mean_w"]
        g["dynamic_energy_per_item_mj"] = 1e3 * g["dynamic_w"] * inference_s / items
        g["rails"] = names
        out["groups"][group] = g
        for n, c in zip(names, columns):
            out["rails"][n] = {phase + "_mean_w": float(frame[c][marks == i].astype(np.float64).mean())
                               for i, phase in enumerate(PHASES)}
    out["items_per_s"] = items / inference_s
    return out


def plot(frame, selected, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = _seconds(frame.index)
    marks = frame["Mark"].to_numpy()
    fig, ax = plt.subplots(figsize=(10, 4))
    for group, names in selected.items():
        ax.plot(t, frame[[n + POWER_SUFFIX for n in names]].astype(float).sum(axis=1),
                label="{} ({})".format(group, " + ".join(names)))
    if np.any(marks == 1):
        start = t[np.argmax(marks == 1)]
        ax.axvspan(start, t[-1], color="0.9", zorder=0, label="inference")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("power (W, measured)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)
