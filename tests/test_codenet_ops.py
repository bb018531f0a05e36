"""CoDeNet engine: the numpy model against the C simulation of hls_src/codenet, byte for byte on
the whole arena, for every operation (hypothesis-drawn small layers and programs); the program
packer; every validate_layer refusal; the IP model; the C testbench on golden vectors."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.codenet_gen import (Layout, csim_lib, up16, csim_run, draw_chain, draw_layer, draw_single, fill_arena,
                               run_both, run_tb, set_out_signed, write_tb_vectors)
from runtime.engines import codenet_config as cfg
from runtime.engines import codenet_layout as layout
from runtime.engines.codenet_model import EngineLimitError, _Layer, requant, run_program, wrap_acc
from runtime.engines.codenet_program import (LayerSpec, arena_bytes_needed, output_extent, pack_program,
                                             unpack_program, validate_layer)

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def csim():
    return csim_lib()  # no compiler or headers is a failure: CI installs both


def _single(data, dil_max=cfg.MAX_DIL, strict=True, **kw):
    spec, arena = draw_single(data.draw, 4, dil_max, **kw)
    return run_both([spec], arena, strict=strict), spec


# ---------------------------------------------------------------- single operations vs C-sim
@SETTINGS
@given(st.data())
def test_conv1x1_direct_and_upsample(csim, data):
    _single(data, op="conv1x1", in_mode=data.draw(st.sampled_from([cfg.MODE_DIRECT, cfg.MODE_UPSAMPLE2])))


@SETTINGS
@given(st.data())
def test_conv1x1_patch3x3(csim, data):
    _single(data, op="conv1x1", in_mode=cfg.MODE_PATCH3X3)


@SETTINGS
@given(st.data())
def test_dw3x3(csim, data):
    _single(data, op="dw3x3", deformable=False)


@SETTINGS
@given(st.data())
def test_dw3x3_deformable(csim, data):
    _single(data, op="dw3x3", deformable=True)


@settings(SETTINGS, max_examples=20)
@given(st.data())
def test_dw3x3_sparse_taps(csim, data):
    """dw3x3 whose taps are zero for every channel (skipped by the model), none left, or one tap of
    weight 1 (an upsampling copy: the model reads the padded input directly)."""
    draw = data.draw
    lay = Layout(draw)
    spec = draw_layer(draw, lay, op="dw3x3", deformable=False)
    kind = draw(st.sampled_from(["subset", "none", "identity"]))
    keep = np.zeros(9, bool)
    if kind == "subset":
        keep[draw(st.lists(st.integers(0, 8), min_size=1, max_size=8))] = True
    elif kind == "identity":
        keep[draw(st.integers(0, 8))] = True
        spec.weights = np.ones_like(spec.weights)
    spec.weights = np.where(keep[None, :], spec.weights, 0).astype(np.int8)
    arena = fill_arena(draw, arena_bytes_needed([spec]) + 2, [spec])
    run_both([spec], arena, strict=False)


@settings(SETTINGS, max_examples=20)
@given(st.data())
def test_conv1x1_shuffled_gather(csim, data):
    """A permuted gather table over many channels (the model copies contiguous runs of the
    physical channels, or takes the whole table at once when there are many runs)."""
    draw = data.draw
    lay = Layout(draw)
    h, w, k = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(17, 60))
    cs = up16(k + draw(st.integers(0, 3)))
    x = dict(off=lay.alloc(h * w * cs), h=h, w=w, cs=cs, signed=draw(st.booleans()))
    perm = np.asarray(draw(st.permutations(range(cs))))[:k]
    if draw(st.booleans()):                      # a few long runs instead of a random order
        cut = draw(st.integers(1, k - 1))
        perm = np.concatenate([np.arange(cut, k), np.arange(cut)])
    spec = draw_layer(draw, lay, op="conv1x1", in_mode=draw(st.sampled_from([cfg.MODE_DIRECT, cfg.MODE_UPSAMPLE2])),
                      src={**x, "gather": perm}, max_ch=24)     # (PATCH3X3 gathers within one beat)
    arena = fill_arena(draw, arena_bytes_needed([spec]) + 2, [spec])
    run_both([spec], arena, strict=False)


@settings(SETTINGS, max_examples=10)
@given(st.data())
def test_deformable_dilation_bytes_above_max_read_as_max(csim, data):
    _, spec = _single(data, dil_max=255, op="dw3x3", deformable=True)


@settings(SETTINGS, max_examples=20)
@given(st.data())
def test_free_output_size_reads_zero_point(csim, data):
    """Output sizes other than the input geometry gives: the engine reads in_zp outside the seen
    input (descriptors a compiler would not emit; the engine and the model still agree)."""
    _single(data, strict=False, odd_geometry=True)


@settings(SETTINGS, max_examples=15)
@given(st.data())
def test_accumulator_wraps_at_acc_bits(csim, data):
    """Biases far beyond ACC_BITS: the engine's accumulator wraps; the model's int64 path too."""
    _, spec = _single(data, strict=False, big_bias=True)
    with pytest.raises(ValueError, match="ACC_BITS"):
        validate_layer(spec)


# ---------------------------------------------------------------- zero-copy split / concat / shuffle
@SETTINGS
@given(st.data())
def test_zero_copy_split_concat_shuffle(csim, data):
    """Split = gather slices of one buffer; concat = two layers writing channel offsets of one
    wider buffer; shuffle = a permuted gather table of the next layer. Also checks the result
    against the same layer run on an explicitly concatenated and shuffled copy."""
    draw = data.draw
    lay = Layout(draw)
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    k = draw(st.integers(1, 8))
    x = dict(off=lay.alloc(h * w * up16(2 * k)), h=h, w=w, cs=up16(2 * k), signed=False)
    ca = draw(st.integers(1, 8))
    cat_cs = up16(ca) + up16(k)                 # beat layout: each producer's channels start a beat
    cat = dict(off=lay.alloc(h * w * cat_cs), h=h, w=w, cs=cat_cs)
    a = draw_layer(draw, lay, op="conv1x1", in_mode=cfg.MODE_DIRECT, src={**x, "gather": np.arange(k)}, cout=ca,
                   dst={**cat, "choff": 0}, stride=1, pad=0)
    b = draw_layer(draw, lay, op="dw3x3", in_mode=cfg.MODE_DIRECT, deformable=False, src={**x, "gather": np.arange(k, 2 * k)},
                   dst={**cat, "choff": up16(ca)}, stride=1, pad=1)
    set_out_signed(b, a.out_signed)
    perm = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).permutation(cat_cs).astype(np.uint16)
    c = draw_layer(draw, lay, op="conv1x1", in_mode=cfg.MODE_DIRECT, src={**cat, "signed": a.out_signed, "gather": perm},
                   stride=1, pad=0)
    arena = fill_arena(draw, arena_bytes_needed([a, b, c]), [a, b, c])
    out = run_both([a, b, c], arena)
    # the same last layer on an explicit (copied) concat + shuffle
    cat_bytes = layout.read(out, cat["off"], h, w, cat_cs)
    explicit = np.ascontiguousarray(cat_bytes[:, :, perm])
    off2 = up16(out.size)
    n2 = h * w * cat_cs
    arena2 = np.concatenate([out, np.zeros(off2 - out.size + n2 + h * w * c.out_cs, np.uint8)])
    layout.write(arena2, off2, h, w, cat_cs, 0, explicit)
    c2 = LayerSpec(**{**c.__dict__, "in_off": off2, "in_cs": cat_cs, "gather": np.arange(cat_cs, dtype=np.uint16),
                      "out_off": off2 + n2})
    run_program(*pack_program([c2]), arena2)
    v1 = layout.read(out, c.out_off, c.out_h, c.out_w, c.out_cs, c.out_choff, c.cout)
    v2 = layout.read(arena2, c2.out_off, c2.out_h, c2.out_w, c2.out_cs, c2.out_choff, c2.cout)
    assert np.array_equal(v1, v2)


# ---------------------------------------------------------------- multi-layer programs
@SETTINGS
@given(st.data())
def test_multilayer_program(csim, data):
    """2..4 random layers, each reading the previous layer's output buffer (through a random
    gather over its channel stride)."""
    draw = data.draw
    layers = draw_chain(draw, Layout(draw), max_ch=12)
    arena = fill_arena(draw, arena_bytes_needed(layers) + 3, layers)
    run_both(layers, arena)


# ---------------------------------------------------------------- requant and packing (numpy only)
@SETTINGS
@given(st.data())
def test_fast_requant_equals_format_reference(data):
    """The float64 requant of the fast paths against FORMAT.md's int64 formula, extremes included."""
    draw = data.draw
    cout = draw(st.integers(1, 16))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    out_signed = draw(st.booleans())
    shift_only = draw(st.booleans())
    bias = rng.integers(-(1 << 22), 1 << 22, cout)
    mult = rng.choice([0, 1, 32767, 12345, 2 ** 14], cout)
    shift = rng.choice([0, 1, 2, 15, 16, 30, 31], cout)
    zp = rng.choice([-32768, 32767, 0, -5, 77], cout)
    lo_t, hi_t = (-128, 127) if out_signed else (0, 255)
    lo = draw(st.integers(lo_t, hi_t))
    hi = draw(st.integers(lo, hi_t))
    spec = LayerSpec(op="conv1x1", in_off=0, in_h=1, in_w=1, in_cs=1, cin=1, out_h=1, out_w=1, out_cs=cout,
                     cout=cout, out_signed=out_signed, shift_only=shift_only, clamp_lo=lo, clamp_hi=hi,
                     gather=np.zeros(1, np.uint16), weights=np.zeros((cout, 1), np.int8), bias=bias.astype(np.int32),
                     mult=mult.astype(np.int16), shift=shift.astype(np.uint8), zp_out=zp.astype(np.int16))
    layer = _Layer(spec)
    bound = data.draw(st.sampled_from([100, 5000, 1 << 16, (1 << 23) - 1]))
    room = np.minimum(bound, (1 << 23) - 1 - np.abs(bias))
    layer.bound_c = room                  # the accumulators below stay within this bound
    acc = rng.integers(-room, room + 1, (64, cout))
    acc[0] = room
    acc[1] = -room
    want = requant(acc + bias, layer.mult, shift, zp, lo, hi)
    paths = layer._init_requant()
    for path in ("i32", "f64i32", "f64"):
        if paths[path]:
            layer._init_requant(prefer=path)
            assert layer.rq == path
            got = layer.requant_values(acc.astype(np.float32 if bound < (1 << 24) else np.float64))
            assert np.array_equal(got, want), path


@SETTINGS
@given(st.data())
def test_int32_requant_of_float64_layers(data):
    """Layers whose static bound needs the float64 requant take an int32 variant (uniform or
    per-channel shift) when a call's max |acc| allows; each against FORMAT.md's int64 formula,
    at the largest accumulator the variant accepts and just beyond it."""
    draw = data.draw
    cout = draw(st.integers(1, 16))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    out_signed = draw(st.booleans())
    bias = rng.integers(-(1 << 12), 1 << 12, cout)
    mult = rng.integers(1 << 14, 1 << 15, cout)
    shift = rng.integers(draw(st.integers(0, 24)), 25, cout)
    zp = rng.choice([0, -3, 40], cout)
    lo_t, hi_t = (-128, 127) if out_signed else (0, 255)
    lo = draw(st.integers(lo_t, hi_t))
    hi = draw(st.integers(lo, hi_t))
    spec = LayerSpec(op="conv1x1", in_off=0, in_h=1, in_w=1, in_cs=1, cin=1, out_h=1, out_w=1, out_cs=cout,
                     cout=cout, out_signed=out_signed, clamp_lo=lo, clamp_hi=hi,
                     gather=np.zeros(1, np.uint16), weights=np.zeros((cout, 1), np.int8), bias=bias.astype(np.int32),
                     mult=mult.astype(np.int16), shift=shift.astype(np.uint8), zp_out=zp.astype(np.int16))
    layer = _Layer(spec)
    layer.bound_c = np.full(cout, (1 << 23) - 1 - (1 << 12))    # static: needs float64
    assert layer._init_requant()["i32"] is False and layer.rq in ("f64i32", "f64") and layer.dyn
    for amax, *_ in layer.dyn:
        for a in (amax, amax + 1, draw(st.integers(0, amax))):
            a = min(a, int(layer.bound_c[0]))
            acc = rng.integers(-a, a + 1, (32, cout))
            acc[0], acc[1] = a, -a
            want = requant(acc + bias, layer.mult, shift, zp, lo, hi)
            got = layer.requant_values(acc.astype(np.float32))
            assert np.array_equal(got, want)
            ctx = layer.requant_ctx(32)
            assert ctx.used == ("i32dyn" if a <= layer.dyn[-1][0] else layer.rq)


def test_wrap_acc():
    m = 1 << cfg.ACC_BITS
    a = np.array([0, m // 2 - 1, m // 2, -m // 2, -m // 2 - 1, 3 * m + 5])
    assert wrap_acc(a).tolist() == [0, m // 2 - 1, -m // 2, -m // 2, m // 2 - 1, 5]


@SETTINGS
@given(st.data())
def test_pack_unpack_round_trip(data):
    draw = data.draw
    lay = Layout(draw)
    layers = [draw_layer(draw, lay) for _ in range(draw(st.integers(1, 4)))]
    program, weights = pack_program(layers)
    assert program.dtype == np.uint32 and program.size == len(layers) * cfg.DESC_WORDS
    assert weights.dtype == np.uint8 and weights.size % cfg.SECTION_ALIGN == 0
    back = unpack_program(program, weights)
    for a, b in zip(layers, back):
        for k, v in a.__dict__.items():
            if k == "name":
                continue
            if isinstance(v, np.ndarray):
                assert np.array_equal(np.asarray(v, np.int64), np.asarray(getattr(b, k), np.int64)), k
            else:
                assert v == getattr(b, k), k
    p2, w2 = pack_program(back)
    assert np.array_equal(p2, program) and np.array_equal(w2, weights)


def test_nibble_packing_layout():
    """FORMAT.md: weight k of a row in the low nibble of byte k/2 when k is even, high when odd;
    rows padded to whole bytes."""
    from runtime.engines.codenet_program import pack_weight_rows
    w = np.array([[1, -2, 7], [-8, 0, 3]])
    assert pack_weight_rows(w, 4).tolist() == [[0xE1, 0x07], [0x08, 0x03]]
    assert pack_weight_rows(w, 8).tolist() == [[1, 0xFE, 7], [0xF8, 0, 3]]


# ---------------------------------------------------------------- validate_layer refusals
def _good():
    cin, cout = 8, 4
    return LayerSpec(op="conv1x1", in_off=0, in_h=4, in_w=4, in_cs=16, cin=cin, out_off=256, out_h=4, out_w=4,
                     out_cs=16, cout=cout, gather=np.arange(cin, dtype=np.uint16),
                     weights=np.ones((cout, cin), np.int8), bias=np.zeros(cout, np.int32),
                     mult=np.ones(cout, np.int16), shift=np.zeros(cout, np.uint8), zp_out=np.zeros(cout, np.int16),
                     name="conv5")


def _dw():
    s = _good()
    s.op, s.cout, s.pad, s.out_cs = "dw3x3", 8, 1, 16
    s.weights = np.ones((8, 9), np.int8)
    s.bias, s.mult, s.shift, s.zp_out = np.zeros(8, np.int32), np.ones(8, np.int16), np.zeros(8, np.uint8), \
        np.zeros(8, np.int16)
    return s


def _big_weights(s):
    s.cin, s.in_cs, s.cout, s.w_bits = 464, 464, 1024, 8
    s.gather = np.arange(464, dtype=np.uint16)
    s.weights = np.zeros((1024, 464), np.int8)
    s.bias, s.mult, s.shift, s.zp_out = (np.zeros(1024, np.int32), np.ones(1024, np.int16),
                                         np.zeros(1024, np.uint8), np.zeros(1024, np.int16))
    s.out_cs = 1024


REFUSALS = [
    (lambda s: setattr(s, "op", "maxpool"), "not an engine operation"),
    (lambda s: setattr(s, "in_mode", 3), "in_mode 3"),
    (lambda s: setattr(s, "cin", 0), "cin 0 outside the engine's 1..1024 (MAX_CH)"),
    (lambda s: setattr(s, "cout", 1025), "cout 1025 outside the engine's 1..1024 (MAX_CH)"),
    (lambda s: setattr(s, "in_h", 1025), "input height 1025 outside the engine's 1..1024 (MAX_IMG)"),
    (lambda s: setattr(s, "in_w", 0), "input width 0"),
    (lambda s: setattr(s, "out_h", 1100), "output height 1100 outside the engine's 1..1024 (MAX_IMG)"),
    (lambda s: setattr(s, "out_w", 1025), "(MAX_IMG)"),
    (lambda s: (setattr(s, "in_mode", 2), setattr(s, "cin", 120)), "1080 logical input channels"),
    (lambda s: setattr(s, "in_cs", 0), "input channel stride 0"),
    (lambda s: setattr(s, "out_choff", 1), "and their pad to whole 16-byte beats (to 16) do not fit the output "
                                           "channel stride 16"),
    (lambda s: setattr(s, "out_cs", 24), "out_cs 24 is not a multiple of 16 bytes (ARENA_BUS_BYTES"),
    (lambda s: setattr(s, "out_off", 200), "out_off 200 is not a multiple of 16"),
    (lambda s: setattr(s, "in_off", 8), "in_off 8 is not a multiple of 16 bytes (ARENA_BUS_BYTES: the engine reads "
                                        "whole-beat pixels; only patch 3x3 reads a packed image)"),
    (lambda s: setattr(s, "in_cs", 24), "in_cs 24 is not a multiple of 16"),
    (lambda s: (setattr(s, "in_cs", 3008), setattr(s, "gather", np.array([0, 1, 2, 3, 4, 5, 6, 2900], np.uint16))),
     "the gathered channels span 182 beats of a pixel, the pixel buffer holds 128 (PIX_BEATS)"),
    (lambda s: (setattr(s, "in_mode", 2), setattr(s, "pad", 1), setattr(s, "weights", np.ones((4, 72), np.int8)),
                setattr(s, "gather", np.array([0, 1, 2, 3, 4, 5, 6, 16], np.uint16)), setattr(s, "in_cs", 32)),
     "patch 3x3 gathers channels 0..16: the engine takes a span of at most 16 bytes"),
    (lambda s: (setattr(s, "in_mode", 2), setattr(s, "pad", 1), setattr(s, "weights", np.ones((4, 72), np.int8)),
                setattr(s, "in_w", 300)), "patch 3x3 input row of 4800 bytes exceeds the row buffer (256 beats"),
    (lambda s: (setattr(s, "in_mode", 2), setattr(s, "pad", 1), setattr(s, "weights", np.ones((4, 72), np.int8)),
                setattr(s, "in_cs", 32)), "patch 3x3 reads a packed (NHWC) input, but in_cs 32 (a multiple of 16 "
                                          "above 16) is a grouped tensor"),
    (lambda s: (setattr(s, "out_cs", 32), setattr(s, "out_choff", 8)), "out_choff 8 is not a multiple of 16"),
    (lambda s: setattr(s, "stride", 4), "conv1x1 takes stride 1 or 2"),
    (lambda s: setattr(s, "pad", 1), "conv1x1 (direct / upsample) has no padding"),
    (lambda s: setattr(s, "in_zp", 256), "in_zp 256"),
    (lambda s: setattr(s, "w_bits", 2), "w_bits 2"),
    (lambda s: setattr(s, "deformable", True), "deformable is for dw3x3 only"),
    (lambda s: (setattr(s, "clamp_lo", 10), setattr(s, "clamp_hi", 5)), "clamp 10..5"),
    (lambda s: setattr(s, "clamp_hi", 256), "uint8 output range 0..255"),
    (lambda s: (setattr(s, "out_signed", True), setattr(s, "clamp_lo", -129), setattr(s, "clamp_hi", 0)),
     "int8 output range -128..127"),
    (_big_weights, "layer 'conv5': 1x1 weights need 475136 bytes, the engine's weight buffer holds 262144 "
                   "(W_BUF_BYTES)"),
    (lambda s: setattr(s, "gather", np.arange(8, dtype=np.uint16)[:7]), "gather table has shape (7,)"),
    (lambda s: setattr(s, "gather", np.full(8, 16, np.uint16)), "physical channel 16 outside the input channel"),
    (lambda s: setattr(s, "weights", np.ones((4, 7), np.int8)), "weights have shape (4, 7), needs (4, 8)"),
    (lambda s: setattr(s, "weights", np.full((4, 8), 8, np.int8)), "4-bit weights hold -8..7"),
    (lambda s: setattr(s, "bias", np.zeros(3, np.int32)), "bias has shape (3,)"),
    (lambda s: setattr(s, "mult", np.full(4, -1, np.int16)), "mult spans -1..-1"),
    (lambda s: setattr(s, "shift", np.full(4, 32, np.uint8)), "shift spans 32..32, outside 0..31"),
    (lambda s: setattr(s, "out_h", 3), "output 3x4 but the input geometry gives 4x4"),
    (lambda s: setattr(s, "bias", np.full(4, 1 << 23, np.int32)), "overflows the 24-bit accumulator"),
]

DW_REFUSALS = [
    (lambda s: setattr(s, "cout", 4), "dw3x3 needs cin == cout"),
    (lambda s: setattr(s, "in_mode", 2), "patch 3x3) is for conv1x1 only"),
    (lambda s: setattr(s, "stride", 3), "dw3x3 takes stride 1, 2 or 4"),
    (lambda s: setattr(s, "pad", 2), "pad 0..1 (MAX_PAD)"),
    (lambda s: (setattr(s, "deformable", True), setattr(s, "stride", 2), setattr(s, "out_h", 2),
                setattr(s, "out_w", 2)), "deformable dw3x3 needs stride 1 and pad 1"),
    (lambda s: (setattr(s, "deformable", True), setattr(s, "dil_cs", 0)), "dilation map channel stride 0"),
    (lambda s: (setattr(s, "deformable", True), setattr(s, "dil_cs", 1)), "dil_cs 1 is not 16 bytes"),
    (lambda s: (setattr(s, "deformable", True), setattr(s, "dil_cs", 32)),
     "layer 'conv5': dil_cs 32 is not 16 bytes (ARENA_BUS_BYTES): the dilation map must lie in a 16-byte-stride "
     "buffer"),
    (lambda s: setattr(s, "weights", np.ones((8, 8), np.int8)), "needs (8, 9)"),
]


@pytest.mark.parametrize("mutate,message", REFUSALS + DW_REFUSALS,
                         ids=[m for _, m in REFUSALS] + ["dw: " + m for _, m in DW_REFUSALS])
def test_validate_layer_refusals(mutate, message):
    s = _dw() if (mutate, message) in DW_REFUSALS else _good()
    validate_layer(s)                  # the unmutated layer is fine
    mutate(s)
    with pytest.raises(ValueError) as err:
        validate_layer(s)
    text = str(err.value)
    assert text.startswith("layer 'conv5': "), text
    assert message in text, text


def test_pack_refuses_too_many_layers():
    with pytest.raises(ValueError, match="MAX_LAYERS"):
        pack_program([_good()] * (cfg.MAX_LAYERS + 1))


# ---------------------------------------------------------------- refusals: model and C-sim agree
def _mutated_program(kind):
    s = _good()
    if kind == "dil_cs":
        s = _dw()
        s.deformable, s.dil_off, s.dil_cs = True, 512, 16
    elif kind == "patch_grouped":
        s.in_mode, s.pad, s.weights = cfg.MODE_PATCH3X3, 1, np.ones((4, 72), np.int8)
    program, weights = pack_program([s])
    arena = np.zeros(arena_bytes_needed([s]), np.uint8)
    d = program.reshape(-1, cfg.DESC_WORDS)[0]
    if kind == "gather":
        weights[0:2] = [16, 0]                 # gather[0] = 16 >= in_cs
    elif kind == "arena":
        arena = arena[:-1]
    elif kind == "reserved":
        d[cfg.D_RESERVED + 3] = 1
    elif kind == "flags":
        d[cfg.D_FLAGS] |= 64
    elif kind == "op":
        d[cfg.D_OP] = 2
    elif kind == "stride":
        d[cfg.D_STRIDE] = 3
    elif kind == "clamp":
        d[cfg.D_CLAMP_HI] = 300
    elif kind == "shift":
        weights[int(d[cfg.D_Q_OFF]) + 6] = 32
    elif kind == "align":
        d[cfg.D_W_OFF] += 1
    elif kind == "blob":
        weights = weights[:int(d[cfg.D_Q_OFF]) + 8]
    elif kind == "cin":
        d[cfg.D_CIN] = 0
    elif kind == "out_align":
        d[cfg.D_OUT_OFF] -= 8                  # a partial-beat output run
    elif kind == "dil_cs":
        d[cfg.D_DIL_CS] = 32                   # layout v3: a dilation map lies in a 16-byte-stride buffer
        arena = np.zeros(arena.size + 16 * 16, np.uint8)
    elif kind == "patch_grouped":
        d[cfg.D_IN_CS] = 32                    # layout v3: patch 3x3 reads a packed image, not a grouped tensor
        arena = np.zeros(arena.size + 512, np.uint8)
    return program, weights, arena


@pytest.mark.parametrize("kind", ["gather", "arena", "reserved", "flags", "op", "stride", "clamp", "shift",
                                  "align", "blob", "cin", "out_align", "dil_cs", "patch_grouped"])
def test_engine_refusals_agree(csim, kind):
    program, weights, arena = _mutated_program(kind)
    before = arena.copy()
    with pytest.raises(EngineLimitError):
        run_program(program, weights, arena)
    assert np.array_equal(arena, before)
    rc, msg = csim_run(program, weights, arena)
    assert rc != 0 and msg
    assert np.array_equal(arena, before)


# ---------------------------------------------------------------- the IP model
class _FakeDevice:
    """Simulated DDR with the two DMA views the IP models use."""

    def __init__(self):
        self.bufs = {}

    def put(self, address, data):
        self.bufs[address] = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8).copy()

    def _find(self, address, what):
        for base, b in self.bufs.items():
            if base <= address < base + b.size:
                return b[address - base:]
        from runtime.errors import SimulationError
        raise SimulationError("{}: no buffer at 0x{:X}".format(what, address))

    def dma(self, address, nbytes, what):
        v = self._find(address, what)
        if nbytes > v.size:
            from runtime.errors import SimulationError
            raise SimulationError("{}: past the end".format(what))
        return v[:nbytes]

    def dma_extent(self, address, what):
        return self._find(address, what)


@pytest.mark.parametrize("engine", ["numpy", "csim"])
def test_ip_model_runs_program(csim, engine):
    from runtime.engines.codenet_ip import CodenetIPModel
    from runtime.errors import SimulationError
    rng = np.random.default_rng(5)
    s = _good()
    s.weights = rng.integers(-8, 8, (4, 8)).astype(np.int8)
    s.shift = np.full(4, 4, np.uint8)
    program, weights = pack_program([s])
    arena = rng.integers(0, 256, arena_bytes_needed([s]) + 10).astype(np.uint8)
    expect = arena.copy()
    run_program(program, weights, expect)
    dev = _FakeDevice()
    dev.put(0x1000, program)
    dev.put(0x20000, weights)
    dev.put(0x40000, arena)
    regs = {"program": 0x1000, "weights": 0x20000, "arena": 0x40000, "arena_wr": 0x40000, "n_layers": 1}
    ip = CodenetIPModel(engine=engine)
    ip.start(regs.get, dev)
    assert np.array_equal(dev.bufs[0x40000], expect)
    # a refused program: SimulationError, arena untouched
    bad_program, _, _ = _mutated_program("stride")
    dev.put(0x1000, bad_program)
    dev.put(0x40000, arena)
    with pytest.raises(SimulationError, match="stride"):
        ip.start(regs.get, dev)
    assert np.array_equal(dev.bufs[0x40000], arena)
    with pytest.raises(SimulationError, match="MAX_LAYERS"):
        ip.start({**regs, "n_layers": cfg.MAX_LAYERS + 1}.get, dev)
    # the arena's write port must hold the same buffer as its read port
    dev.put(0x1000, program)
    with pytest.raises(SimulationError, match="arena_wr = 0x50000 but arena = 0x40000"):
        ip.start({**regs, "arena_wr": 0x50000}.get, dev)
    assert np.array_equal(dev.bufs[0x40000], arena)


# ---------------------------------------------------------------- C testbench on golden vectors
def test_testbench_passes_on_golden_vectors(csim, tmp_path):
    """Write program / weights / arena-in / expected arena-out from the numpy model for a small
    multi-layer program (patch, 1x1, dw, deformable, upsample, concat offsets), build the C
    testbench and check it prints PASS (and FAIL on a corrupted expectation)."""
    from tests.codenet_synth import shufflenet_codenet
    layers, nbytes, img = shufflenet_codenet(seed=3, size=32, stage_units=(2, 2, 2))
    program, weights = pack_program(layers)
    rng = np.random.default_rng(9)
    arena_in = np.zeros(nbytes, np.uint8)
    arena_in[img["off"]:img["off"] + 32 * 32 * 3] = rng.integers(0, 256, 32 * 32 * 3)
    arena_out = arena_in.copy()
    run_program(program, weights, arena_out)
    checks = [(a, b - a, s.name) for s in layers for a, b in [output_extent(s)]] + [(0, nbytes, "whole_arena")]
    write_tb_vectors(tmp_path, program, weights, arena_in, arena_out, checks)
    proc = run_tb(tmp_path, timeout=300)
    assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout + proc.stderr
    a, b = output_extent(layers[-1])
    arena_out[b - 1] ^= 1
    write_tb_vectors(tmp_path, arena_out=arena_out)
    proc = run_tb(tmp_path, timeout=300)
    assert proc.returncode == 1 and "FAIL" in proc.stdout, proc.stdout + proc.stderr
