"""The per-layer profile (FORMAT.md "Profile region", issue 9 item 8): the HLS engine writes one
{start, end} beat per layer of its cycle counter; the C simulation's clock is its own trip counts;
the simulated device fills the region with the cycle model's numbers, which the driver reads and
labels "modelled"; `pynq-deploy profile codenet` prints them."""
import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.cli import main
from runtime.codenet_runner import CodenetRunner
from runtime.compiler.codenet_compiler import compile_onnx
from runtime.engines import codenet_config as cfg
from runtime.engines.codenet_program import arena_bytes_needed, pack_program, unpack_profile
from runtime.measure.codenet_cycles import (PHASES, frame_estimate, layer_events, modelled_profile,
                                            profile_write_cycles, program_events)
from tests.codenet_gen import Layout, csim_lib, csim_run, draw_chain, fill_arena
from tests.hardening_models import small_qdq_net

BEAT = cfg.ARENA_BUS_BYTES


def profiled_run(lib, program, weights, arena, profile_off, t0=0):
    n = program.size // cfg.DESC_WORDS
    rc = lib.codenet_csim_run_profiled(program.ctypes.data, weights.ctypes.data, arena.ctypes.data, n,
                                       arena.size, weights.size, profile_off, t0)
    return rc, lib.codenet_csim_last_error().decode()


def csim_events(lib, layer):
    n = lib.codenet_csim_events(layer, None, 0)
    out = np.zeros((max(n, 1), cfg.EV_FIELDS), np.uint64)
    lib.codenet_csim_events(layer, out.ctypes.data, n)
    return Counter({tuple(int(v) for v in row[:4]): int(row[4]) for row in out[:n]})


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_csim_writes_one_beat_per_layer_of_its_clock(data):
    """2..4 random chained layers with the profile region past their tensors: the outputs are the
    unprofiled run's, byte for byte; layer l's beat holds {start, end} of the C simulation's clock
    (t0 + every trip counted before the sample: end - start = the layer's trips, the next start =
    end + its profile write); the events are the cycle model's with profile=True."""
    lib = csim_lib()
    draw = data.draw
    layers = draw_chain(draw, Layout(draw), max_ch=24, sort=True)
    program, weights = pack_program(layers)
    n = len(layers)
    need = arena_bytes_needed(layers)
    off = -(-need // BEAT) * BEAT + BEAT * draw(st.integers(0, 3))
    arena = fill_arena(draw, off + n * BEAT + draw(st.integers(0, 40)), layers)
    plain = arena.copy()
    assert csim_run(program, weights, plain) == (0, "")
    t0 = draw(st.integers(0, 2 ** 40))
    rc, msg = profiled_run(lib, program, weights, arena, off, t0)
    assert rc == 0, msg
    region = arena[off:off + n * BEAT]
    assert np.array_equal(np.delete(arena, np.s_[off:off + n * BEAT]), np.delete(plain, np.s_[off:off + n * BEAT]))
    counts = np.zeros((n, len(PHASES)), np.uint64)
    assert lib.codenet_csim_cycles(counts.ctypes.data, n) == n
    trips = counts[:, :5].astype(np.int64).sum(1)          # per layer, its profile write included
    stamps = unpack_profile(region, n).astype(np.int64)
    t = t0
    for i in range(n):
        assert stamps[i].tolist() == [t, t + trips[i] - 1], i   # the write (1 trip) follows the end
        t += trips[i]
    assert np.all(stamps[:, 0] < stamps[:, 1]) and np.all(stamps[1:, 0] > stamps[:-1, 1])
    events = program_events(layers, profile=True)
    for i in range(n):
        assert csim_events(lib, i) == events[i], i
        assert events[i] - layer_events(layers[i], (0, 0, 0)) >= Counter({(cfg.PH_DESC, cfg.EV_BLOCKING, 1, 1): 1})


def test_csim_refuses_a_profile_region_outside_the_arena_or_off_the_beat_grid():
    lib = csim_lib()
    layers = [s for s in _small_model().layers]
    program, weights = pack_program(layers)
    size = arena_bytes_needed(layers) + len(layers) * BEAT + BEAT
    good = -(-arena_bytes_needed(layers) // BEAT) * BEAT
    for off, code, what in ((good + 8, 2, "multiple of 16"), (size, 5, "past the arena"),
                            (size - (len(layers) - 1) * BEAT, 5, "past the arena")):
        arena = np.zeros(size, np.uint8)
        rc, msg = profiled_run(lib, program, weights, arena, off)
        assert rc == code and what in msg, (off, rc, msg)
        assert not arena.any()                     # nothing written on an error
    assert profiled_run(lib, program, weights, np.zeros(size, np.uint8), good)[0] == 0


_MODEL = []


def _small_model():
    if not _MODEL:
        _MODEL.append(compile_onnx(small_qdq_net()))
    return _MODEL[0]


@pytest.mark.parametrize("engine", ["numpy", "csim"])
def test_runner_profile_on_the_simulated_pl_is_the_cycle_model(engine):
    """The driver reads the region the simulated device filled: the cycle model's per-layer
    cycles (each layer's modelled cycles less its profile write), labelled modelled; outputs as
    without the profile; a runner without profile=True refuses profile()."""
    model = _small_model()
    x = np.random.default_rng(1).uniform(0, 255, model.input["shape"]).astype(np.float32)
    with CodenetRunner(model, pl="sim", engine=engine) as plain:
        want = plain.run(x)
        with pytest.raises(RuntimeError, match="profile=True"):
            plain.profile()
    with CodenetRunner(model, pl="sim", engine=engine, profile=True) as net:
        with pytest.raises(RuntimeError, match="no frame"):
            net.profile()
        got = net.run(x)
        prof = net.profile()
    for k in want:
        assert np.array_equal(want[k], got[k]), k
    assert prof["source"] == "modelled" and prof["clock_mhz"] == cfg.CLOCK_MHZ
    rows = frame_estimate(model.layers, profile=True)["layers"]
    write = profile_write_cycles()
    # stamps are rounded cumulative sums: each interval within one cycle of the model's
    assert np.allclose([r["cycles"] for r in prof["layers"]], [r["cycles"] - write for r in rows], atol=1)
    assert all(b["start"] - a["end"] == pytest.approx(write, abs=1) for a, b in zip(prof["layers"], prof["layers"][1:]))
    assert [(r["start"], r["end"]) for r in prof["layers"]] == [tuple(map(int, s)) for s in modelled_profile(model.layers)]
    assert [r["name"] for r in prof["layers"]] == [s.name for s in model.layers]
    assert prof["total_cycles"] == prof["layers"][-1]["end"] - prof["layers"][0]["start"]
    assert prof["layers"][0]["us"] == pytest.approx(prof["layers"][0]["cycles"] / cfg.CLOCK_MHZ)


def test_cli_profile_prints_a_modelled_table_and_writes_json(tmp_path, capsys):
    d = tmp_path / "model"
    _small_model().save(d)
    out_json = tmp_path / "p.json"
    rc = main(["profile", "codenet", "--model", str(d), "--pl", "sim", "--json", str(out_json)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("per-layer profile, MODELLED") and "nothing measured" in lines[0]
    assert lines[-1].startswith("total (modelled):")
    data = json.loads(out_json.read_text())
    assert data["source"] == "modelled" and len(data["layers"]) == _small_model().n_layers
    assert len(lines) == 3 + len(data["layers"])
    assert "{:,} cycles".format(data["total_cycles"]) in lines[-1]


@pytest.mark.parametrize("size", ["300", "big", "0"])
def test_cli_profile_bad_size_is_a_one_line_error(size, capsys):
    rc = main(["profile", "codenet", "--size", size])
    out, err = capsys.readouterr()
    assert rc == 2 and err.count("\n") == 1 and "--size must be 256 or 512" in err and "Traceback" not in err


def test_detector_exposes_the_last_frames_profile():
    from runtime.detector import Detector
    from runtime.vision.samples import samples_dir
    import cv2
    img = cv2.imread(str(sorted(samples_dir().glob("*.jpg"))[0]))
    with Detector(pl="sim") as d:
        d.detect(img)
        assert d.last_profile is None                         # profiling is off by default
    with Detector(pl="sim", profile=True) as d:
        assert d.last_profile is None                         # no frame yet
        d.detect(img)
        prof = d.last_profile
    assert prof["source"] == "modelled" and len(prof["layers"]) == d.model.n_layers
    assert [(r["start"], r["end"]) for r in prof["layers"]] == [tuple(map(int, s)) for s in modelled_profile(d.model.layers)]
