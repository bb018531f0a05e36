"""Random CoDeNet layers and programs for the tests (hypothesis `data.draw` based), a runner that
executes a program on both the numpy model and the C simulation, and the C testbench's golden-vector
files."""
import subprocess

import numpy as np
from hypothesis import strategies as st

from runtime.engines import codenet_config as cfg
from runtime.engines import codenet_layout as layout
from runtime.engines.codenet_program import LayerSpec, arena_bytes_needed, expected_out_hw, pack_program


def csim_lib():
    """The C-simulation library with its ctypes signatures (hls_src/codenet; built once per source
    hash, loaded once)."""
    from runtime.engines.codenet_ip import load_codenet_csim
    return load_codenet_csim()


def csim_run(program, weights, arena):
    """Run the C simulation in place on `arena`; -> (rc, message)."""
    lib = csim_lib()
    program = np.ascontiguousarray(program, np.uint32)
    weights = np.ascontiguousarray(weights, np.uint8)
    if weights.size == 0:
        weights = np.zeros(8, np.uint8)
    n = program.size // cfg.DESC_WORDS
    rc = lib.codenet_csim_run(program.ctypes.data, weights.ctypes.data, arena.ctypes.data, n, arena.size,
                              weights.size)
    return rc, lib.codenet_csim_last_error().decode()


BUS = cfg.ARENA_BUS_BYTES


def up16(n):
    """n rounded up to whole ARENA_BUS_BYTES beats (the beat layout of FORMAT.md "Memory")."""
    return -(-int(n) // BUS) * BUS


class Layout:
    """Bump allocator over the arena with random gaps, every tensor beat aligned."""

    def __init__(self, draw):
        self.draw = draw
        self.top = BUS * draw(st.integers(0, 2))

    def alloc(self, nbytes):
        off = up16(self.top) + BUS * self.draw(st.integers(0, 2))
        self.top = off + nbytes
        return off


def draw_requant(draw, cout, typical, out_signed, shift_only=None):
    """Requant parameters that spread typical accumulators (magnitude `typical`) over the output
    range, with extremes (S = 0 / 1 / 31, M = 0, wide zero points, narrow clamps) mixed in."""
    if shift_only is None:
        shift_only = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    lo_t, hi_t = (-128, 127) if out_signed else (0, 255)
    if shift_only:
        mult = rng.integers(-5, 6, cout) if draw(st.booleans()) else np.ones(cout, np.int64)
        m_eff = np.ones(cout)
    else:
        mult = rng.integers(1, 32768, cout)
        if draw(st.booleans()):
            mult[rng.integers(0, cout)] = 0
        m_eff = np.maximum(mult, 1)
    base = np.log2(np.maximum(typical * m_eff, 1)).astype(np.int64) - 6
    shift = np.clip(base + rng.integers(-1, 2, cout), 0, cfg.MAX_SHIFT)
    if draw(st.booleans()):
        shift[rng.integers(0, cout)] = draw(st.sampled_from([0, 1, 31]))
    zp = (lo_t + hi_t + 1) // 2 + rng.integers(-40, 41, cout)
    if draw(st.integers(0, 4)) == 0:
        zp[rng.integers(0, cout)] = draw(st.sampled_from([-32768, 32767, -300, 300]))
    if draw(st.integers(0, 2)):
        clamp_lo, clamp_hi = lo_t, hi_t
    else:
        clamp_lo = draw(st.integers(lo_t, hi_t))
        clamp_hi = draw(st.integers(clamp_lo, hi_t))
    return dict(mult=mult.astype(np.int16), shift=shift.astype(np.uint8), zp_out=zp.astype(np.int16),
                shift_only=shift_only, clamp_lo=clamp_lo, clamp_hi=clamp_hi)


def draw_gather(draw, cin, extra_max=3, packed=False):
    """(gather, in_cs): identity, a shifted slice, a permutation or a subset with repeats. The
    stride is whole beats (a tensor the engine wrote), or with `packed` any stride with every
    gathered channel within one beat's span (the PATCH3X3 image; cin <= 16 then)."""
    kind = draw(st.sampled_from(["identity", "slice", "perm", "subset"]))
    extra = draw(st.integers(0, extra_max))
    in_cs = cin + extra if packed else up16(cin + extra)
    if packed and kind in ("perm", "subset"):
        in_cs = max(in_cs, BUS)
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    if kind == "identity":
        g = np.arange(cin)
    elif kind == "slice":
        g = np.arange(cin) + draw(st.integers(0, extra))
    elif kind == "perm":
        g = rng.permutation(min(in_cs, BUS) if packed else in_cs)[:cin]
    else:
        g = rng.integers(0, min(in_cs, BUS) if packed else in_cs, cin)
    return g.astype(np.uint16), in_cs


def set_out_signed(spec, signed):
    """Force the output signedness (full clamp range if it changes)."""
    if spec.out_signed != signed:
        spec.out_signed = signed
        spec.clamp_lo, spec.clamp_hi = (-128, 127) if signed else (0, 255)
        spec.zp_out = np.zeros(spec.cout, np.int16)


def draw_layer(draw, lay, op=None, in_mode=None, src=None, cin=None, deformable=None, odd_geometry=False,
               cout=None, dst=None, big_bias=False, max_hw=7, max_ch=20, stride=None, pad=None):
    """One random valid layer. src: dict(off, h, w, cs, signed, zp) of an existing tensor to read
    (else a new input tensor is placed); dst: dict(off, h, w, cs, choff) to write into."""
    if op is None:
        op = draw(st.sampled_from(["conv1x1", "dw3x3"]))
    conv = op == "conv1x1"
    if deformable is None:
        deformable = (not conv) and draw(st.booleans())
    if in_mode is None:
        # PATCH3X3 reads a packed image, never a grouped tensor (layout v3)
        patch_ok = src is None or not layout.is_grouped(src["cs"])
        in_mode = draw(st.sampled_from([cfg.MODE_DIRECT, cfg.MODE_UPSAMPLE2] + [cfg.MODE_PATCH3X3] * patch_ok
                                       if conv else [cfg.MODE_DIRECT, cfg.MODE_UPSAMPLE2]))
    patch = in_mode == cfg.MODE_PATCH3X3
    if stride is not None:
        pass
    elif deformable:
        stride, pad = 1, 1
    elif conv and not patch:
        stride, pad = draw(st.sampled_from([1, 2])), 0
    else:
        stride = draw(st.sampled_from([1, 2, 4]))
        pad = draw(st.integers(0, cfg.MAX_PAD))
    if src is None:
        in_h, in_w = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
        if patch or not conv:
            # the padded input must hold one 3x3 window (unless the output size is free)
            in_h, in_w = max(in_h, 3 - 2 * pad), max(in_w, 3 - 2 * pad)
        if cin is None:
            cin = draw(st.integers(1, max_ch if not patch else min(max_ch, cfg.ARENA_BUS_BYTES)))
        gather, in_cs = draw_gather(draw, cin, packed=patch)
        in_signed = draw(st.booleans())
        skew = draw(st.integers(0, 3)) if patch else 0   # the packed image may start at any byte
        in_off = lay.alloc(in_h * in_w * in_cs + skew) + skew
    else:
        in_h, in_w, in_cs, in_off, in_signed = src["h"], src["w"], src["cs"], src["off"], src["signed"]
        gather = np.asarray(src["gather"], np.uint16)
        if patch and int(gather.max()) - int(gather.min()) >= BUS:
            # PATCH3X3 gathers within one beat's span: fold the table into the lowest one's beat
            gather = (int(gather.min()) // BUS * BUS + gather % BUS).astype(np.uint16)
            assert gather.max() < in_cs
        cin = gather.size
        up = 2 if in_mode == cfg.MODE_UPSAMPLE2 else 1
        if (patch or not conv) and min(in_h, in_w) * up + 2 * pad < 3:
            pad = 1                  # one 3x3 window must fit the padded input
    in_zp = draw(st.integers(0, 255))
    if not conv:
        cout = cin
    elif cout is None:
        cout = draw(st.integers(1, max_ch))
    w_bits = draw(st.sampled_from([4, 8]))
    k = 9 if not conv else (9 * cin if patch else cin)
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    wlo = -(1 << (w_bits - 1))
    weights = rng.integers(wlo, -wlo, (cout, k))
    if draw(st.booleans()):
        weights[:, rng.integers(0, k)] = draw(st.sampled_from([wlo, -wlo - 1]))
    xmax = 128 if in_signed else 255
    while int(np.abs(weights).sum(axis=1).max()) * xmax > (1 << (cfg.ACC_BITS - 1)) - 1 and not big_bias:
        weights = weights // 2          # wide 8-bit layers: keep the weights alone within ACC_BITS
    typical = np.sqrt(k) * (np.abs(weights).mean() + 0.5) * xmax / 2
    bound = int(np.abs(weights).sum(axis=1).max()) * xmax
    room = (1 << (cfg.ACC_BITS - 1)) - 1 - bound
    if big_bias:
        bias = rng.integers(-(1 << 31), 1 << 31, cout)
    else:
        # room < 0: the weights alone can overflow the accumulator (wide 8-bit layers); zero bias
        b = max(0, int(min(room, np.sqrt(k) * 8 * xmax / 2)))
        bias = rng.integers(-b, b + 1, cout)
    out_signed = draw(st.booleans())
    rq = draw_requant(draw, cout, typical, out_signed)
    spec = LayerSpec(op=op, in_off=in_off, in_h=in_h, in_w=in_w, in_cs=in_cs, cin=cin, in_mode=in_mode,
                     stride=stride, pad=pad, in_zp=in_zp, in_signed=in_signed, out_signed=out_signed,
                     deformable=deformable, w_bits=w_bits, gather=gather, weights=weights.astype(np.int8),
                     bias=bias.astype(np.int32), name="L{}".format(draw(st.integers(0, 99))), **rq)
    oh, ow = expected_out_hw(spec)
    if odd_geometry:
        oh = max(1, oh + draw(st.integers(-2, 3)))
        ow = max(1, ow + draw(st.integers(-2, 3)))
    spec.out_h, spec.out_w = oh, ow
    if dst is None:
        out_choff = BUS * draw(st.integers(0, 1))
        out_cs = out_choff + up16(cout) + BUS * draw(st.integers(0, 1))
        out_off = lay.alloc(oh * ow * out_cs)
    else:
        assert (dst["h"], dst["w"]) == (oh, ow)
        out_off, out_cs, out_choff = dst["off"], dst["cs"], dst["choff"]
    spec.out_off, spec.out_cs, spec.out_choff, spec.cout = out_off, out_cs, out_choff, cout
    if deformable:
        spec.dil_cs = BUS                    # a dilation map lies in a 16-byte-stride (NHWC) buffer
        spec.dil_off = lay.alloc(oh * ow * spec.dil_cs) + draw(st.integers(0, BUS - 1))   # any byte of a beat
    return spec


def fill_arena_rng(rng, size, layers, dil_max=cfg.MAX_DIL):
    """Random arena bytes from the numpy generator `rng`; deformable layers' dilation maps get
    values 0..dil_max."""
    arena = rng.integers(0, 256, size).astype(np.uint8)
    for s in layers:
        if s.deformable:
            n = s.out_h * s.out_w
            idx = s.dil_off + np.arange(n) * s.dil_cs
            arena[idx] = rng.integers(0, dil_max + 1, n)
    return arena


def fill_arena(draw, size, layers, dil_max=cfg.MAX_DIL):
    """fill_arena_rng with a generator seeded by a hypothesis draw."""
    return fill_arena_rng(np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))), size, layers, dil_max)


def draw_single(draw, slack_max, dil_max=cfg.MAX_DIL, **kw):
    """One random layer (draw_layer's keywords) and a random arena for it, up to slack_max bytes
    longer than the layer needs; -> (spec, arena)."""
    lay = Layout(draw)
    spec = draw_layer(draw, lay, **kw)
    arena = fill_arena(draw, arena_bytes_needed([spec]) + draw(st.integers(0, slack_max)), [spec], dil_max)
    return spec, arena


def draw_chain(draw, lay, max_ch, sort=False):
    """2..4 random layers, each reading the previous layer's output buffer through a random gather
    of 1..max_ch channels over its channel stride (sorted half of the time when sort is set)."""
    layers = [draw_layer(draw, lay, max_hw=6, max_ch=max_ch)]
    for _ in range(draw(st.integers(1, 3))):
        p = layers[-1]
        # the two callers have always drawn these in different orders: kept, so that each one
        # draws exactly the examples it drew before (and its saved hypothesis examples replay)
        if sort:
            seed = draw(st.integers(0, 2 ** 32 - 1))
            cin = draw(st.integers(1, max_ch))
        else:
            cin = draw(st.integers(1, max_ch))
            seed = draw(st.integers(0, 2 ** 32 - 1))
        gather = np.random.default_rng(seed).integers(0, p.out_cs, cin)
        if sort and draw(st.booleans()):
            gather = np.sort(gather)
        src = dict(off=p.out_off, h=p.out_h, w=p.out_w, cs=p.out_cs, signed=p.out_signed, gather=gather)
        if p.out_h * 3 > 40 or p.out_w * 3 > 40:
            break
        layers.append(draw_layer(draw, lay, src=src, max_ch=max_ch))
    return layers


def run_both(layers, arena, strict=True):
    """Pack, run the numpy model and the C simulation on copies of `arena`; assert that the whole
    arenas agree byte for byte. Returns the numpy result."""
    from runtime.engines.codenet_model import run_program
    program, weights = pack_program(layers, strict=strict)
    a_np, a_cs = arena.copy(), arena.copy()
    run_program(program, weights, a_np)
    rc, msg = csim_run(program, weights, a_cs)
    assert rc == 0, msg
    if not np.array_equal(a_np, a_cs):
        bad = np.flatnonzero(a_np != a_cs)
        raise AssertionError("numpy model and C-sim differ in {} arena bytes, first at {}: numpy {} csim {}"
                             "\nlayers: {}".format(bad.size, bad[0], a_np[bad[0]], a_cs[bad[0]], layers))
    return a_np


def write_tb_vectors(folder, program=None, weights=None, arena_in=None, arena_out=None, checks=None):
    """Write the golden-vector files the C testbench (hls_src/codenet/codenet_tb.cpp) reads from
    `folder`; only those given (a test can then replace one, e.g. with a corrupted expectation).
    checks: (offset, length, name) of the arena ranges to compare."""
    from pathlib import Path
    folder = Path(folder)
    if program is not None:
        np.asarray(program).astype("<u4").tofile(folder / "program.bin")
    for name, data in (("weights", weights), ("arena_in", arena_in), ("arena_out", arena_out)):
        if data is not None:
            np.ascontiguousarray(data, np.uint8).tofile(folder / (name + ".bin"))
    if checks is not None:
        (folder / "check.txt").write_text("# offset length name\n" + "".join(
            "{} {} {}\n".format(off, length, name) for off, length, name in checks))


def run_tb(folder, timeout=300):
    """Build the C testbench (cached) and run it on the vectors in `folder`; -> CompletedProcess."""
    from runtime.engines.csim import compile_testbench
    tb = compile_testbench("codenet")
    return subprocess.run([str(tb), str(folder)], capture_output=True, text=True, timeout=timeout)
