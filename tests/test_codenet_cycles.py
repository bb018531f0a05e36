"""The analytical cycle model (runtime/measure/codenet_cycles.py) equals the cycles the HLS C
simulation counts while it runs (codenet_csim_cycles: pipelined-loop trip counts, single-beat
accesses and loop entries), per layer and phase, on random layers of every op / mode and on
multi-layer programs."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.engines.codenet_program import LayerSpec, arena_bytes_needed, pack_program
from runtime.measure.codenet_cycles import PHASES, conv_wide, frame_estimate, layer_cycles
from tests.codenet_gen import Layout, csim_lib, csim_run, draw_chain, draw_single, fill_arena, fill_arena_rng

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


def assert_model_equals_csim(lib, layers, arena, strict=True):
    got = counted(lib, layers, arena, strict)
    for i, spec in enumerate(layers):
        model = layer_cycles(spec)
        want = [model[p] for p in PHASES]
        assert got[i].tolist() == want, "layer {} ({} {} mode {}): csim {} model {} ({})".format(
            i, spec.name, spec.op, spec.in_mode, got[i].tolist(), want, PHASES)
        assert model["cycles"] == sum(want[:5])


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


def _wide_gather_layer(rng, op, in_cs, deformable=False, dil_cs=1, w=5):
    """A layer whose gathered channels spread over in_cs bytes (1x1: the narrow path once the
    runs exceed the pixel buffer), optionally deformable with a wide dilation-map stride."""
    cin = 20
    g = np.sort(rng.choice(in_cs, cin, replace=False)).astype(np.uint16)
    g[0], g[-1] = 0, in_cs - 1
    rng.shuffle(g)
    s = LayerSpec(op=op, in_off=3, in_h=3, in_w=w, in_cs=in_cs, cin=cin, pad=1 if op == "dw3x3" else 0,
                  deformable=deformable, gather=g, out_h=3, out_w=w, out_cs=cin + 1, out_choff=1, cout=cin,
                  weights=rng.integers(-8, 8, (cin, 9 if op == "dw3x3" else cin)).astype(np.int8),
                  bias=np.zeros(cin, np.int32), mult=np.ones(cin, np.int16), shift=np.full(cin, 4, np.uint8),
                  zp_out=np.zeros(cin, np.int16), name="wide")
    s.out_off = 3 + 3 * w * in_cs + 5
    if deformable:
        s.dil_off, s.dil_cs = s.out_off + 3 * w * s.out_cs + 7, dil_cs
    return s


def test_narrow_paths(lib):
    """1x1 whose gather spans more than the pixel buffer (one beat per input), depthwise tiles
    spanning thousands of bytes, and a dilation map too sparse for the row buffer."""
    rng = np.random.default_rng(3)
    wide = _wide_gather_layer(rng, "conv1x1", 2100)
    assert not conv_wide(wide)
    ok = _wide_gather_layer(rng, "conv1x1", 1900)
    assert conv_wide(ok)
    dw = _wide_gather_layer(rng, "dw3x3", 3000, deformable=True, dil_cs=1100, w=5)
    for spec in (wide, ok, dw):
        arena = fill_arena_rng(rng, arena_bytes_needed([spec]) + 16, [spec])
        assert_model_equals_csim(lib, [spec], arena)


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
    est = frame_estimate(layers)
    assert est["cycles"] == sum(layer_cycles(s)["cycles"] for s in layers)
