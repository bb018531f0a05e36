"""The cycle model (runtime/measure/codenet_cycles.py) counts exactly what the HLS C simulation
counts while it runs, per layer: the trip counts per phase (codenet_csim_cycles) and every event the
time model charges (codenet_csim_events: each loop entry / blocking access with its kind, trips and
beats, hence the bursts by length), on random layers of every op / mode and on whole programs."""
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.engines.codenet_program import LayerSpec, arena_bytes_needed, pack_program, validate_layer
from runtime.engines import codenet_config as cfg
from runtime.measure.codenet_cycles import (KIND_NAMES, MEMORY_KINDS, PHASES, counts_from_events, event_cycles,
                                            frame_estimate, latency_attribution,
                                            layer_cycles, layer_events, layer_is_dataflow, program_events,
                                            section_offsets)
from tests.codenet_gen import (Layout, csim_lib, csim_run, draw_chain, draw_single, fill_arena, fill_arena_rng,
                               run_both, run_tb, write_tb_vectors)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def lib():
    lib = csim_lib()  # no compiler or headers is a failure: CI installs both
    assert lib.codenet_csim_cycle_phases() == len(PHASES)
    return lib


def counted(lib, layers, arena, strict=True):
    """Run the C-sim on the program; -> (n_layers, len(PHASES)) counts it measured."""
    program, weights = pack_program(layers, strict=strict)
    rc, msg = csim_run(program, weights, arena.copy())
    assert rc == 0, msg
    out = np.zeros((len(layers), len(PHASES)), np.uint64)
    n = lib.codenet_csim_cycles(out.ctypes.data, len(layers))
    assert n == len(layers)
    return out.astype(np.int64)


def csim_events(lib, layer):
    """Counter {(phase, kind, trips, beats): count} the C simulation logged for one layer."""
    n = lib.codenet_csim_events(layer, None, 0)
    out = np.zeros((max(n, 1), cfg.EV_FIELDS), np.uint64)
    assert lib.codenet_csim_events(layer, out.ctypes.data, n) == n
    return Counter({tuple(int(v) for v in row[:4]): int(row[4]) for row in out[:n]})


def assert_model_equals_csim(lib, layers, arena, strict=True):
    got = counted(lib, layers, arena, strict)
    events = program_events(layers)
    for i, spec in enumerate(layers):
        ev = csim_events(lib, i)
        assert ev == events[i], "layer {} ({} {}): events csim - model {}, model - csim {}".format(
            i, spec.name, spec.op, dict(ev - events[i]), dict(events[i] - ev))
        model = counts_from_events(events[i])          # at the layer's real blob offsets
        want = [model[p] for p in PHASES]
        assert got[i].tolist() == want, "layer {} ({} {} mode {}): csim {} model {} ({})".format(
            i, spec.name, spec.op, spec.in_mode, got[i].tolist(), want, PHASES)
        assert model["cycles"] == sum(want[:5])
        ev = csim_events(lib, i)
        assert ev == events[i], "layer {} ({} {}): events csim - model {}, model - csim {}".format(
            i, spec.name, spec.op, dict(ev - events[i]), dict(events[i] - ev))


def _single(lib, data, strict=True, **kw):
    spec, arena = draw_single(data.draw, 20, **kw)
    assert_model_equals_csim(lib, [spec], arena, strict)
    return spec


@SETTINGS
@given(st.data())
def test_conv1x1_cycles(lib, data):
    _single(lib, data, op="conv1x1", in_mode=data.draw(st.sampled_from([0, 1, 2])),
            max_ch=data.draw(st.sampled_from([20, 70])))


@SETTINGS
@given(st.data())
def test_dw3x3_cycles(lib, data):
    _single(lib, data, op="dw3x3", deformable=data.draw(st.booleans()), max_ch=data.draw(st.sampled_from([20, 40])))


@settings(SETTINGS, max_examples=15)
@given(st.data())
def test_free_output_size_cycles(lib, data):
    """Descriptors a compiler would not emit (output larger / smaller than the geometry gives)."""
    _single(lib, data, strict=False, odd_geometry=True)


def _wide_gather_layer(rng, op, in_cs, deformable=False, dil_cs=16, w=5):
    """A layer whose gathered channels spread over in_cs bytes (1x1: up to the pixel buffer; dw:
    tiles whose channels lie in beats far apart), optionally deformable with a wide dilation-map
    stride."""
    cin = 20
    g = np.sort(rng.choice(in_cs, cin, replace=False)).astype(np.uint16)
    g[0], g[-1] = 0, in_cs - 1
    rng.shuffle(g)
    s = LayerSpec(op=op, in_off=16, in_h=3, in_w=w, in_cs=in_cs, cin=cin, pad=1 if op == "dw3x3" else 0,
                  deformable=deformable, gather=g, out_h=3, out_w=w, out_cs=3 * 16, out_choff=16, cout=cin,
                  weights=rng.integers(-8, 8, (cin, 9 if op == "dw3x3" else cin)).astype(np.int8),
                  bias=np.zeros(cin, np.int32), mult=np.ones(cin, np.int16), shift=np.full(cin, 4, np.uint8),
                  zp_out=np.zeros(cin, np.int16), name="wide")
    s.out_off = 16 + 3 * w * in_cs + 16
    if deformable:
        s.dil_off, s.dil_cs = s.out_off + 3 * w * s.out_cs + 16 + 7, dil_cs
    return s


def test_wide_gathers(lib):
    """1x1 whose gather spans up to the pixel buffer (and one beyond it: refused), depthwise tiles
    whose channels lie in blocks thousands of bytes apart (layout v3: one run of the group's pixels
    per block, requested ahead, then re-ordered on chip), deformable. No one-beat access anywhere."""
    rng = np.random.default_rng(3)
    wide = _wide_gather_layer(rng, "conv1x1", 2128)
    with pytest.raises(ValueError, match="PIX_BEATS"):
        validate_layer(wide, strict=False)
    ok = _wide_gather_layer(rng, "conv1x1", 2048)
    dw = _wide_gather_layer(rng, "dw3x3", 3008, deformable=True, w=21)
    for spec in (ok, dw):
        arena = fill_arena_rng(rng, arena_bytes_needed([spec]) + 16, [spec])
        run_both([spec], arena, strict=False)
        assert_model_equals_csim(lib, [spec], arena)
    kinds = {k[1] for k in layer_events(dw, (0, 0, 0)) if k[0] == cfg.PH_READ}
    assert kinds == {cfg.EV_LATENCY, cfg.EV_QUEUED, cfg.EV_LOOP}
    for spec in (ok, dw):
        arena_kinds = {k[1] for k in layer_events(spec, (0, 0, 0)) if k[0] in (cfg.PH_READ, cfg.PH_WRITE)}
        assert cfg.EV_SINGLES not in arena_kinds and cfg.EV_BURST not in arena_kinds


@settings(SETTINGS, max_examples=15)
@given(st.data())
def test_multilayer_program_cycles(lib, data):
    """2..4 random layers chained through random gathers of the previous output buffer."""
    draw = data.draw
    layers = draw_chain(draw, Layout(draw), max_ch=24, sort=True)
    arena = fill_arena(draw, arena_bytes_needed(layers) + 3, layers)
    assert_model_equals_csim(lib, layers, arena)


def test_shufflenet_codenet_program_cycles(lib):
    """The synthetic ShuffleNetV2-1x CoDeNet (tests/codenet_synth.py) at 64 x 64: all 74 layers."""
    from tests.codenet_synth import shufflenet_codenet
    layers, nbytes, img = shufflenet_codenet(size=64)
    arena = np.random.default_rng(0).integers(0, 256, nbytes).astype(np.uint8)
    for s in layers:
        if s.deformable:
            arena[s.dil_off:s.dil_off + s.out_h * s.out_w * s.dil_cs:s.dil_cs] = 1
    assert_model_equals_csim(lib, layers, arena)
    est = frame_estimate(layers, axi_latency=0)
    assert est["trip_counts"]["cycles"] == sum(layer_cycles(s, o)["cycles"]
                                               for s, o in zip(layers, section_offsets(layers)))
    # latency costs: more at a longer latency, and every loop entry pays at least its trips
    assert frame_estimate(layers, axi_latency=128)["cycles"] > frame_estimate(layers)["cycles"] > est["cycles"]
    # a sequential layer costs more than its trips; a DATAFLOW layer at least its busiest stage's
    for spec, row in zip(layers, est["layers"]):
        tc = row["trip_counts"]
        if layer_is_dataflow(spec):
            assert row["cycles"] >= tc["desc"] + tc["load"] + max(tc["read"], tc["compute"], tc["write"])
        else:
            assert row["cycles"] > tc["cycles"]
    assert sum(layer_is_dataflow(s) for s in layers) >= len(layers) - 4   # all but the first layer and a few


def test_event_costs():
    """The time of each kind of event (codenet_cycles docstring), at hand-computed points."""
    lat, n_out, burst = cfg.AXI_LATENCY, cfg.AXI_OUTSTANDING, cfg.AXI_MAX_BURST
    assert event_cycles(cfg.PH_COMPUTE, cfg.EV_LOOP, 100, 0) == cfg.DEPTH_MAC_LOOP + 100
    assert event_cycles(cfg.PH_WRITE, cfg.EV_BLOCKING, 1, 1) == lat + 1
    assert event_cycles(cfg.PH_COMPUTE, cfg.EV_STEP, 1, 0) == cfg.DEPTH_DW_PIXEL
    # a short burst: one latency plus its beats
    assert event_cycles(cfg.PH_READ, cfg.EV_BURST, 4, 4) == cfg.DEPTH_MEM_LOOP + lat + 4
    # a long burst: the port streams a beat a cycle while N bursts of B beats cover L
    long_run = 64 * burst
    assert n_out * burst >= lat
    assert event_cycles(cfg.PH_READ, cfg.EV_BURST, long_run, long_run) == cfg.DEPTH_MEM_LOOP + lat + long_run
    # at L = 4 N B the requests, not the beats, bound it
    slow_lat = 4 * n_out * burst
    slow = event_cycles(cfg.PH_READ, cfg.EV_BURST, long_run, long_run, axi_latency=slow_lat)
    assert slow == cfg.DEPTH_MEM_LOOP + slow_lat + (64 - n_out) * (slow_lat + burst) / n_out + n_out * burst
    # one-beat requests: N back to back, then each waits L + 1 cycles for one of the N slots
    assert event_cycles(cfg.PH_READ, cfg.EV_SINGLES, 80, 80) == cfg.DEPTH_MEM_LOOP + lat + n_out + (80 - n_out) * (lat + 1) / n_out


def test_latency_attribution():
    """latency_attribution: "all" is the frame's latency cost; each class of memory event alone
    costs between nothing and all of it, and more at a longer latency."""
    from tests.codenet_synth import shufflenet_codenet
    layers, _, _ = shufflenet_codenet(size=64)
    zero = latency_attribution(layers, 0)
    assert set(zero.values()) == {0}
    a = latency_attribution(layers, 128)
    assert a["all"] == pytest.approx(frame_estimate(layers, axi_latency=128)["cycles"] -
                                     frame_estimate(layers, axi_latency=0)["cycles"])
    events = program_events(layers)
    present = {"{}/{}".format(PHASES[p], KIND_NAMES[k]) for e in events for (p, k, _t, _b) in e
               if k in MEMORY_KINDS}
    assert set(a) == present | {"all"}
    assert "read/queued" in a and "write/queued" in a and "read/latency" in a
    assert a["all"] > 0
    for key, v in a.items():
        assert 0 <= v <= a["all"] + 1e-6, key
    # every memory access of the engine (without the profile) is a burst: no one-beat request left
    assert not [k for k in a if k.endswith(("/singles", "/blocking"))] and "load/burst" in a
    # more latency never costs less, and costs more overall
    b = latency_attribution(layers, 64, events)
    assert all(b[k] <= a[k] + 1e-6 for k in a) and b["all"] < a["all"]


def _conv_layer(cout, out_cs, out_off, in_mode=cfg.MODE_DIRECT, w=6):
    rng = np.random.default_rng(cout)
    cin = 16
    return LayerSpec(op="conv1x1", in_off=0, in_h=4, in_w=w, in_cs=cin, cin=cin, in_mode=in_mode,
                     gather=np.arange(cin, dtype=np.uint16), out_off=out_off,
                     out_h=8 if in_mode else 4, out_w=2 * w if in_mode else w, out_cs=out_cs, cout=cout,
                     weights=rng.integers(-8, 8, (cout, cin)).astype(np.int8), bias=np.zeros(cout, np.int32),
                     mult=np.ones(cout, np.int16), shift=np.full(cout, 4, np.uint8),
                     zp_out=np.zeros(cout, np.int16), name="hazard")


def test_upsample_to_one_channel_is_hazard_free(lib):
    """The nearest-x2 upsample of a 1-channel output (the dilation predictor's shape) used to
    revisit beats written 2-3 runs earlier (read-modify-write of partial beats). In the beat layout
    every output pixel owns a whole beat (1 channel + 15 zero pad bytes): nothing is read back, and
    the C-sim, which aborts on any read of a beat its layer wrote, runs it (and a whole-beat
    output) to the end, bit-exact with the model, pad bytes zero."""
    whole = _conv_layer(cout=16, out_cs=16, out_off=1024)
    narrow = _conv_layer(cout=1, out_cs=16, out_off=1024, in_mode=cfg.MODE_UPSAMPLE2)
    for spec in (whole, narrow):
        arena = np.random.default_rng(0).integers(0, 256, arena_bytes_needed([spec]) + 16).astype(np.uint8)
        out = run_both([spec], arena)
        assert_model_equals_csim(lib, [spec], arena)
        pix = out[spec.out_off:spec.out_off + spec.out_h * spec.out_w * spec.out_cs].reshape(-1, spec.out_cs)
        assert (pix[:, spec.cout:] == 0).all()
        events = layer_events(spec, section_offsets([spec])[0])
        # the writer: group fills (on chip), group runs as bursts, the last responses; no read-back
        assert {k[1] for k in events if k[0] == cfg.PH_WRITE} == {cfg.EV_LOOP, cfg.EV_QUEUED, cfg.EV_LATENCY}
        assert not [k for k in events if k[0] == cfg.PH_READ and k[1] in (cfg.EV_SINGLES, cfg.EV_BLOCKING)]


def _run_tb_subprocess(tmp_path, spec, arena, **words):
    """Run the C testbench (no descriptor checks: it trusts the program) on one layer, descriptor
    words replaced by `words` (D_* name: value)."""
    program, weights = pack_program([spec], strict=False)
    for name, v in words.items():
        program[getattr(cfg, name)] = v
    write_tb_vectors(tmp_path, program, weights, arena, arena, [(0, 16, "x")])
    return run_tb(tmp_path)


def test_partial_beat_write_aborts_the_csim(tmp_path):
    """A run that does not start a beat would need a read-modify-write: the engine asserts."""
    spec = _conv_layer(cout=16, out_cs=16, out_off=1024)
    arena = np.zeros(arena_bytes_needed([spec]) + 64, np.uint8)
    spec.out_off += 1
    with pytest.raises(ValueError, match="out_off 1025 is not a multiple of 16"):
        validate_layer(spec, strict=False)
    spec.out_off -= 1
    res = _run_tb_subprocess(tmp_path, spec, arena, D_OUT_OFF=1025)
    assert res.returncode != 0 and "partial-beat write" in res.stderr, res.stderr


def test_read_of_a_beat_written_in_the_same_layer_aborts_the_csim(tmp_path, lib):
    """A PATCH3X3 layer computed in place reads pixels it also writes: a hazard (AXI orders no
    read against a write, and the layer's DATAFLOW stages run concurrently; no barrier inside a
    layer). The checks cannot see it (buffers may overlap); the engine's C simulation aborts with
    a message, although its sequential run of the stages reads every beat before writing it."""
    rng = np.random.default_rng(1)
    spec = LayerSpec(op="conv1x1", in_off=0, in_h=4, in_w=4, in_cs=16, cin=1, in_mode=cfg.MODE_PATCH3X3, stride=1,
                     pad=1, gather=np.zeros(1, np.uint16), out_off=0, out_h=4, out_w=4, out_cs=16, cout=1,
                     weights=rng.integers(-8, 8, (1, 9)).astype(np.int8), bias=np.zeros(1, np.int32),
                     mult=np.ones(1, np.int16), shift=np.full(1, 4, np.uint8), zp_out=np.zeros(1, np.int16),
                     name="in place")
    validate_layer(spec, strict=False)
    res = _run_tb_subprocess(tmp_path, spec, np.zeros(arena_bytes_needed([spec]) + 64, np.uint8))
    assert res.returncode != 0 and "arena beat both read and written by one layer" in res.stderr, res.stderr
