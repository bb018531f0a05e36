"""CoDeNet HLS C-simulation (hls_src/codenet/): warning-free build, hand-computed smoke layers,
limit checks, the C testbench on golden vectors from the numpy model, and random layers
bit-exact against the numpy model (runtime/engines/codenet_model.py).

Contract: hls_src/codenet/FORMAT.md. Needs g++ and the ap_types headers (hls4ml wheel).
"""
import subprocess

import numpy as np
import pytest

from runtime.engines import codenet_config as cfg
from runtime.engines.csim import find_ap_types, find_compiler, hls_src_dir, include_flags
from tests.codenet_gen import csim_lib, csim_run, run_tb, write_tb_vectors

# no compiler or headers is a failure, not a skip: CI installs both
find_compiler()
find_ap_types()

SRC = hls_src_dir("codenet")
WARN_FLAGS = ["-Wall", "-Wextra", "-Werror", "-Wno-unknown-pragmas", "-std=c++14", "-fPIC"]


# ------------------------------------------------------------------ build hygiene
@pytest.mark.parametrize("source", sorted(p.name for p in SRC.glob("*.cpp")) +
                         sorted(p.name for p in SRC.glob("*.h")))
def test_source_is_warning_free(source):
    """Every source and header compiles under -Wall -Wextra -Werror (`#pragma HLS` lines are
    unknown to g++: -Wno-unknown-pragmas is the only exception)."""
    cmd = [find_compiler(), "-fsyntax-only", *WARN_FLAGS, *include_flags("codenet")]
    if source.endswith(".h"):
        cmd += ["-x", "c++"]
    proc = subprocess.run(cmd + [str(SRC / source)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_weight_buffer_words_cover_every_admitted_layer():
    """W_WORDS (words per PE lane of the 1x1 weight buffer) is the exact worst case of the tiled
    layout over every 1x1 layer that FORMAT.md admits (cout * row_bytes <= W_BUF_BYTES)."""
    h = cfg.read_header_constants()
    cout = np.arange(1, cfg.MAX_CH + 1)[:, None]
    k = np.arange(1, cfg.MAX_CH + 1)[None, :]
    worst = 0
    for row_bytes in ((k + 1) // 2, k):            # 4-bit, 8-bit rows
        words = -(-cout // cfg.PE) * -(-row_bytes // h["W_WORD_BYTES"])
        worst = max(worst, int(np.where(cout * row_bytes <= cfg.W_BUF_BYTES, words, 0).max()))
    assert h["W_WORDS"] == worst


# ------------------------------------------------------------------ ctypes wrapper
@pytest.fixture(scope="module")
def lib():
    return csim_lib()


def run_on_copy(program, blob, arena):
    """codenet_gen.csim_run on a copy of arena; -> (return code, arena after)."""
    out = np.array(arena, np.uint8, copy=True)
    rc, _ = csim_run(program, blob, out)
    return rc, out


def desc(**f):
    """One descriptor from FORMAT.md field names (signed fields two's complement)."""
    order = ["op", "in_off", "in_h", "in_w", "in_cs", "cin", "in_mode", "stride", "in_zp", "flags",
             "out_off", "out_h", "out_w", "out_cs", "out_choff", "cout", "gather_off", "w_off",
             "q_off", "clamp_lo", "clamp_hi", "dil_off", "dil_cs", "pad"]
    words = np.zeros(cfg.DESC_WORDS, np.uint32)
    for i, name in enumerate(order):
        words[i] = f.pop(name, 0) & 0xFFFFFFFF
    assert not f, f
    return words


def requant_section(bias, mult, shift, zp):
    n = len(bias)
    rec = np.zeros(n, np.dtype([("b", "<i4"), ("m", "<i2"), ("s", "u1"), ("r", "i1")]))
    rec["b"], rec["m"], rec["s"] = bias, mult, shift
    zps = np.zeros((2 * n + 7) // 8 * 8, np.uint8)
    zps[:2 * n] = np.asarray(zp, "<i2").view(np.uint8)
    return np.concatenate([rec.view(np.uint8), zps])


# ------------------------------------------------------------------ hand-computed smoke layers
def test_conv1x1_hand_computed(lib):
    """1x2 image, 3 logical channels gathered [2, 0, 1] from a 4-channel buffer, 4-bit weights
    with an odd row (the pad nibble holds garbage the engine must ignore), two output channels
    at channel offset 1 of a 3-channel buffer.
      pixel 0 x = [30, 10, 20], pixel 1 x = [3, 1, 2]; w0 = [1, -2, 7], w1 = [-8, 3, 0]
      o0: bias 5, M 3, S 2, zp 10 : (155*3 + 2) >> 2 = 116 -> 126 ; (20*3 + 2) >> 2 = 15 -> 25
      o1: bias -100, M 5, S 3, zp 300: (-310*5 + 4) >> 3 = -194 -> 106 ; (-121*5 + 4) >> 3 = -76 -> 224
    """
    gather = np.array([2, 0, 1, 0], "<u2").view(np.uint8)                    # 8 bytes
    weights = np.array([0xE1, 0xF7, 0x38, 0xF0, 0, 0, 0, 0], np.uint8)       # rows of 2 bytes
    rq = requant_section([5, -100], [3, 5], [2, 3], [10, 300])               # 16 + 8 bytes
    blob = np.concatenate([gather, weights, rq])
    prog = desc(op=0, in_off=0, in_h=1, in_w=2, in_cs=16, cin=3, stride=1, out_off=32, out_h=1,
                out_w=2, out_cs=32, out_choff=16, cout=2, gather_off=0, w_off=8, q_off=16,
                clamp_lo=0, clamp_hi=255)
    arena = np.full(96, 0xAA, np.uint8)
    arena[0:4] = [10, 20, 30, 99]
    arena[16:20] = [1, 2, 3, 200]
    rc, out = run_on_copy(prog, blob, arena)
    assert rc == 0
    # layout v3: the 2-pixel row is one group; its channel block 1 (channels 16..31) is the run of
    # the two pixels' beats at out_off + 1 * 2 * 16 = 64 (2 values, 14 zero pad bytes each); block
    # 0 (another producer's beats, 32..63) and the input keep their bytes
    assert list(out[64:80]) == [126, 106] + [0] * 14 and list(out[80:96]) == [25, 224] + [0] * 14
    assert list(out[:64]) == list(arena[:64])


def _dw_reference(img, taps, zp, dil=None):
    """Plain-loop 3x3 depthwise (one channel, stride 1, pad 1) of a 2-D list."""
    h, w = len(img), len(img[0])
    out = []
    for y in range(h):
        row = []
        for x in range(w):
            d = 1 if dil is None else dil[y][x]
            s = 0
            for t in range(9):
                py, px = y + (t // 3 - 1) * d, x + (t % 3 - 1) * d
                s += taps[t] * (img[py][px] if 0 <= py < h and 0 <= px < w else zp)
            row.append(s)
        out.append(row)
    return out


def test_dw3x3_normal_and_deformable_hand_computed(lib):
    """Two layers of one program over the 3x3 image 1..9 (uint8, in_zp 5):
    layer 0: Sobel-x taps, 4-bit, zp_out 128 -> centre 1-3+8-12+7-9 = -8 -> 120; corner (0, 0):
             the 5 out-of-image taps read 5: 2*5 - 2*2 = 6 -> 134.
    layer 1: deformable, all-ones taps, dilation map d = 1 except (0,0) d=0 (centre read 9 times:
             9), (0,1) d=2 (in-image taps 2 and 8, 7 taps of 5: 45), (2,2) d=7 (only the centre:
             9 + 8*5 = 49); (1,1) d=1: 45; (1,0) d=1: 27 + 3*5 = 42."""
    img = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    sobel = [1, 0, -1, 2, 0, -2, 1, 0, -1]
    dil = [[0, 2, 1], [1, 1, 1], [1, 1, 7]]

    def pack4(taps):
        nib = [t & 0xF for t in taps] + [0]
        return [nib[2 * i] | (nib[2 * i + 1] << 4) for i in range(5)]

    gather = np.zeros(8, np.uint8)                                  # one channel: [0]
    w0 = np.array(pack4(sobel) + [0, 0, 0], np.uint8)
    w1 = np.array(pack4([1] * 9) + [0, 0, 0], np.uint8)
    rq0 = requant_section([0], [1], [0], [128])
    rq1 = requant_section([0], [1], [0], [0])
    blob = np.concatenate([gather, w0, rq0, w1, rq1])               # 0, 8, 16, 32, 40
    common = dict(op=1, in_off=0, in_h=3, in_w=3, in_cs=16, cin=1, stride=1, pad=1, in_zp=5,
                  out_h=3, out_w=3, out_cs=16, cout=1, gather_off=0, clamp_lo=0, clamp_hi=255)
    prog = np.concatenate([desc(out_off=144, w_off=8, q_off=16, **common),
                           desc(out_off=288, w_off=32, q_off=40, flags=cfg.FLAG_DEFORMABLE,
                                dil_off=432 + 3, dil_cs=16, **common)])
    arena = np.zeros(432 + 9 * 16, np.uint8)
    arena[0:144:16] = np.ravel(img)                    # one beat per pixel
    arena[435::16] = np.ravel(dil)
    rc, out = run_on_copy(prog, blob, arena)
    assert rc == 0, lib.codenet_csim_last_error()
    sob = np.array(out[144:288:16]).reshape(3, 3)     # one beat per pixel: the value, 15 zero bytes
    dfm = np.array(out[288:432:16]).reshape(3, 3)
    assert not out[144:432].reshape(-1, 16)[:, 1:].any()
    assert sob[1, 1] == 120 and sob[0, 0] == 134
    assert dfm[0, 0] == 9 and dfm[0, 1] == 45 and dfm[2, 2] == 49 and dfm[1, 1] == 45 and dfm[1, 0] == 42
    assert sob.tolist() == (np.array(_dw_reference(img, sobel, 5)) + 128).tolist()
    assert dfm.tolist() == _dw_reference(img, [1] * 9, 5, dil)


def test_limits_are_refused_without_touching_the_arena(lib):
    gather = np.zeros(8, np.uint8)
    blob = np.concatenate([gather, np.zeros(8, np.uint8), requant_section([0], [1], [0], [0])])
    good = dict(op=0, in_off=0, in_h=2, in_w=2, in_cs=16, cin=1, stride=1, out_off=64, out_h=2,
                out_w=2, out_cs=16, cout=1, gather_off=0, w_off=8, q_off=16, clamp_lo=0, clamp_hi=255)
    arena = np.arange(128, dtype=np.uint8)
    assert run_on_copy(desc(**good), blob, arena)[0] == 0
    bad = [dict(op=2), dict(cin=cfg.MAX_CH + 1), dict(in_w=cfg.MAX_IMG + 1), dict(stride=3),
           dict(pad=1), dict(in_mode=cfg.MODE_PATCH3X3 + 1), dict(flags=cfg.FLAG_DEFORMABLE), dict(flags=64),
           dict(clamp_lo=-1), dict(clamp_hi=256), dict(out_choff=1), dict(out_off=13),
           dict(out_off=72), dict(out_cs=24), dict(in_off=8), dict(in_cs=24), dict(q_off=24), dict(w_off=4), dict(in_cs=0)]
    for change in bad:
        rc, out = run_on_copy(desc(**{**good, **change}), blob, arena)
        assert rc != 0, change
        assert np.array_equal(out, arena), change
        assert lib.codenet_csim_last_error().startswith(b"codenet_csim: layer 0"), change
    too_many = np.tile(desc(**good), cfg.MAX_LAYERS + 1)
    assert run_on_copy(too_many, blob, arena)[0] != 0


# ------------------------------------------------------------------ against the numpy model
from runtime.engines import codenet_model as M  # noqa: E402
from runtime.engines import codenet_program as P  # noqa: E402


def _spec(rng, op, hmax=12, cmax=40, **fixed):
    """A random valid layer (validate_layer's limits) at arena offset 16, plus its arena."""
    in_mode, stride, pad, deform = 0, 1, 0, False
    w_bits = int(rng.choice([4, 8]))
    h, w = int(rng.integers(1, hmax)), int(rng.integers(1, hmax))
    if op == "conv1x1":
        in_mode = int(rng.choice([0, 1, 2]))
        if in_mode == cfg.MODE_PATCH3X3:
            stride, pad, cin = int(rng.choice([1, 2, 4])), int(rng.integers(2)), int(rng.integers(1, 8))
            h, w = max(h, 3 - 2 * pad), max(w, 3 - 2 * pad)
        else:
            stride, cin = int(rng.choice([1, 2])), int(rng.integers(1, cmax))
        cout = int(rng.integers(1, cmax))
    else:
        in_mode, deform = int(rng.choice([0, 1])), bool(rng.integers(2))
        if deform:
            stride, pad = 1, 1
        else:
            stride, pad = int(rng.choice([1, 2, 4])), int(rng.integers(2))
            up = 2 if in_mode else 1
            h, w = (3 if h * up + 2 * pad < 3 else h), (3 if w * up + 2 * pad < 3 else w)
        cin = cout = int(rng.integers(1, cmax))
    if in_mode == cfg.MODE_PATCH3X3:    # the packed image: any stride, a gather within one beat
        in_cs = cin + int(rng.integers(0, 5))
    else:                               # a tensor the engine wrote: whole-beat pixels
        in_cs = -(-(cin + int(rng.integers(0, 5))) // cfg.ARENA_BUS_BYTES) * cfg.ARENA_BUS_BYTES
    s = P.LayerSpec(op=op, in_off=16, in_h=h, in_w=w, in_cs=in_cs, cin=cin, in_mode=in_mode,
                    stride=stride, pad=pad, in_zp=int(rng.integers(256)),
                    in_signed=bool(rng.integers(2)), out_signed=bool(rng.integers(2)),
                    deformable=deform, shift_only=bool(rng.integers(4) == 0), w_bits=w_bits)
    for k, v in fixed.items():
        setattr(s, k, v)
    s.out_h, s.out_w = P.expected_out_hw(s)
    s.cout = cout if s.op == "conv1x1" else s.cin
    up16 = lambda n: -(-n // cfg.ARENA_BUS_BYTES) * cfg.ARENA_BUS_BYTES   # beat layout: whole beats
    s.out_choff = 16 * int(rng.integers(0, 2))
    s.out_cs = s.out_choff + up16(s.cout) + 16 * int(rng.integers(0, 2))
    s.out_off = up16(16 + s.in_h * s.in_w * s.in_cs) + 16 * int(rng.integers(0, 2))
    end = s.out_off + s.out_h * s.out_w * s.out_cs
    if s.deformable:
        s.dil_off, s.dil_cs = end + 3, 16      # layout v3: a dilation map lies in a 16-byte-stride buffer
        end = s.dil_off + s.out_h * s.out_w * s.dil_cs
    lo, hi = -(1 << (s.w_bits - 1)), (1 << (s.w_bits - 1)) - 1
    s.gather = rng.permutation(s.in_cs)[:s.cin].astype(np.uint16)
    if s.in_mode == cfg.MODE_PATCH3X3:
        s.gather = (rng.permutation(max(s.in_cs, 16))[:s.cin] % min(s.in_cs, 16)).astype(np.uint16)
    s.weights = rng.integers(lo, hi + 1, size=(s.cout, s.k)).astype(np.int8)
    s.bias = rng.integers(-3000, 3000, size=s.cout).astype(np.int32)
    s.mult = rng.integers(0, 32768, size=s.cout).astype(np.int16)
    s.shift = rng.integers(0, 32, size=s.cout).astype(np.uint8)
    s.shift[rng.random(s.cout) < 0.5] = rng.integers(8, 22)
    s.zp_out = rng.integers(-200, 200, size=s.cout).astype(np.int16)
    a, b = (-128, 127) if s.out_signed else (0, 255)
    s.clamp_lo, s.clamp_hi = sorted(int(v) for v in rng.integers(a, b + 1, size=2)) if rng.integers(2) else (a, b)
    arena = rng.integers(0, 256, size=end + 32).astype(np.uint8)
    if s.deformable:
        arena[s.dil_off:s.dil_off + s.out_h * s.out_w * s.dil_cs:s.dil_cs] = rng.integers(0, 8, s.out_h * s.out_w)
    return s, arena


@pytest.mark.parametrize("seed", range(4))
def test_random_layers_bit_exact_with_numpy_model(lib, seed):
    rng = np.random.default_rng(seed)
    ran = 0
    for it in range(60):
        s, arena = _spec(rng, "conv1x1" if it % 2 == 0 else "dw3x3",
                         hmax=40 if it % 10 == 1 else 12, cmax=70 if it % 7 == 0 else 40)
        try:
            prog, blob = P.pack_program([s])
        except ValueError:          # e.g. the accumulator bound of a random 8-bit layer
            continue
        ref = arena.copy()
        M.run_program(prog, blob, ref)
        rc, got = run_on_copy(prog, blob, arena)
        assert rc == 0, lib.codenet_csim_last_error()
        diff = np.nonzero(ref != got)[0]
        assert diff.size == 0, (s, diff[:8], ref[diff[:8]], got[diff[:8]])
        ran += 1
    assert ran >= 40


def test_weight_buffer_worst_case_layer(lib):
    """The largest padded 1x1 layer the contract admits (cout 257, K 1017, 8-bit: 2176 words per
    lane) runs bit-exact."""
    rng = np.random.default_rng(7)
    k, n = 1017, 257
    s = P.LayerSpec(op="conv1x1", in_off=16, in_h=1, in_w=2, in_cs=1024, cin=k, in_signed=True,
                    w_bits=8, out_off=16 + 2 * 1024, out_h=1, out_w=2, out_cs=272, cout=n,
                    clamp_lo=0, clamp_hi=255, gather=rng.permutation(k).astype(np.uint16),
                    weights=rng.integers(-1, 2, size=(n, k)).astype(np.int8),
                    bias=rng.integers(-99, 99, size=n).astype(np.int32),
                    mult=np.full(n, 3, np.int16), shift=np.full(n, 4, np.uint8),
                    zp_out=np.full(n, 100, np.int16))
    arena = rng.integers(0, 256, size=s.out_off + 2 * 272 + 8).astype(np.uint8)
    prog, blob = P.pack_program([s])
    ref = arena.copy()
    M.run_program(prog, blob, ref)
    rc, got = run_on_copy(prog, blob, arena)
    assert rc == 0, lib.codenet_csim_last_error()
    assert np.array_equal(ref, got)


def _chain(rng):
    """A small realistic program: stride-2 PATCH3X3 first layer (8-bit weights), a 1x1 dilation
    predictor clamped to 0..7, a deformable depthwise 3x3 using it, and an upsampling 1x1 into
    channel offset 16 of a wider (concat) buffer."""
    h = w = 14
    oh = ow = 7
    L = []

    def fill(s, wb=4, wmax=None, shift=10):
        lo, hi = -(1 << (wb - 1)), (1 << (wb - 1)) - 1
        s.w_bits = wb
        s.weights = rng.integers(lo if wmax is None else -wmax, (hi if wmax is None else wmax) + 1,
                                 size=(s.cout, s.k)).astype(np.int8)
        s.bias = rng.integers(-500, 500, size=s.cout).astype(np.int32)
        s.mult = rng.integers(100, 200, size=s.cout).astype(np.int16)
        s.shift = (shift + rng.integers(0, 2, size=s.cout)).astype(np.uint8)
        s.zp_out = rng.integers(0, 100, size=s.cout).astype(np.int16)
        return s

    img, a0, dmap, a1, cat = 0, 1024, 2048, 3072, 4096
    L.append(fill(P.LayerSpec(op="conv1x1", in_off=img, in_h=h, in_w=w, in_cs=4, cin=3, in_mode=cfg.MODE_PATCH3X3,
                              stride=2, pad=1, in_zp=128, out_off=a0, out_h=oh, out_w=ow, out_cs=16,
                              cout=8, gather=np.array([2, 1, 0], np.uint16), clamp_lo=0,
                              clamp_hi=255, name="first"), wb=8, wmax=20, shift=15))
    L.append(fill(P.LayerSpec(op="conv1x1", in_off=a0, in_h=oh, in_w=ow, in_cs=16, cin=8,
                              out_off=dmap, out_h=oh, out_w=ow, out_cs=16, cout=1,
                              gather=np.arange(8, dtype=np.uint16), clamp_lo=0, clamp_hi=7,
                              name="dilation")))
    # dilation = (sum of the 8 channels) >> 6, clamped to 0..7
    L[-1].weights[:] = 1
    L[-1].mult, L[-1].shift = np.ones(1, np.int16), np.full(1, 6, np.uint8)
    L[-1].bias, L[-1].zp_out = np.zeros(1, np.int32), np.zeros(1, np.int16)
    L.append(fill(P.LayerSpec(op="dw3x3", in_off=a0, in_h=oh, in_w=ow, in_cs=16, cin=8, stride=1,
                              pad=1, in_zp=0, deformable=True, dil_off=dmap, dil_cs=16, out_off=a1,
                              out_h=oh, out_w=ow, out_cs=16, cout=8,
                              gather=np.array([7, 6, 5, 4, 3, 2, 1, 0], np.uint16), clamp_lo=0,
                              clamp_hi=255, name="deform")))
    L.append(fill(P.LayerSpec(op="conv1x1", in_off=a1, in_h=oh, in_w=ow, in_cs=16, cin=8, in_mode=cfg.MODE_UPSAMPLE2,
                              out_off=cat, out_h=2 * oh, out_w=2 * ow, out_cs=32, out_choff=16,
                              cout=5, gather=np.arange(8, dtype=np.uint16), out_signed=True,
                              clamp_lo=-128, clamp_hi=127, name="up")))
    arena = np.zeros(cat + 4 * oh * ow * 32 + 64, np.uint8)
    arena[:h * w * 4] = rng.integers(0, 256, size=h * w * 4)
    return L, arena


def test_testbench_on_golden_vectors(lib, tmp_path):
    rng = np.random.default_rng(11)
    layers, arena = _chain(rng)
    prog, blob = P.pack_program(layers)
    expected = arena.copy()
    M.run_program(prog, blob, expected)
    assert len(np.unique(expected[2048:2048 + 49 * 16:16])) >= 3     # the dilation map varies
    rc, got = run_on_copy(prog, blob, arena)                   # the shared library agrees ...
    assert rc == 0 and np.array_equal(got, expected)
    ranges = P.arena_ranges(layers)                            # ... and so does the testbench
    write_tb_vectors(tmp_path, prog, blob, arena, expected,
                     [(r["write"][0], r["write"][1] - r["write"][0], s.name) for r, s in zip(ranges, layers)])
    proc = run_tb(tmp_path, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("PASS"), proc.stdout + proc.stderr
    # a wrong expectation must fail
    bad = expected.copy()
    bad[ranges[-1]["write"][0] + 4] ^= 1
    write_tb_vectors(tmp_path, arena_out=bad)
    proc = run_tb(tmp_path, timeout=120)
    assert proc.returncode == 1 and "FAIL" in proc.stdout and "mismatch up" in proc.stdout

