"""Tensor layout v3 (runtime/engines/codenet_layout.py, FORMAT.md "Memory"): the address formula is
a bijection onto the buffer, the numpy views agree with it, cs = 16 and packed buffers are NHWC, a
16-byte channel block of a pixel group is one run of beats."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from runtime.engines import codenet_config as cfg
from runtime.engines import codenet_layout as layout

B, G = cfg.ARENA_BUS_BYTES, cfg.GROUP_PIX
SETTINGS = settings(max_examples=60, deadline=None)


def test_constants():
    assert (layout.BLOCK, layout.GROUP) == (B, G) == (16, 16)
    assert layout.BLOCK_DTYPE.itemsize == B


@st.composite
def buffers(draw, packed=None):
    """(off, h, w, cs): grouped (cs a multiple of 16) or packed (any other cs); widths around the
    group size (partial last groups)."""
    h = draw(st.integers(1, 5))
    w = draw(st.sampled_from([1, 3, 15, 16, 17, 31, 32, 33, 40, 48]))
    is_packed = draw(st.booleans()) if packed is None else packed
    cs = draw(st.integers(1, 40).filter(lambda c: c % B)) if is_packed else B * draw(st.integers(1, 8))
    off = draw(st.integers(0, 64)) if is_packed else B * draw(st.integers(0, 4))
    return off, h, w, cs


def _grid(off, h, w, cs):
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(cs), indexing="ij")
    return y, x, c, layout.byte_address(off, w, cs, y, x, c)


@SETTINGS
@given(buffers())
def test_byte_address_is_a_bijection_onto_the_buffer(buf):
    off, h, w, cs = buf
    a = _grid(*buf)[3]
    assert np.array_equal(np.sort(a.ravel()), off + np.arange(h * w * cs))


@SETTINGS
@given(st.data())
def test_cs16_and_packed_buffers_are_nhwc(data):
    off, h, w, cs = data.draw(buffers(packed=data.draw(st.booleans())).filter(
        lambda b: b[3] == B or b[3] % B))
    y, x, c, a = _grid(off, h, w, cs)
    assert not layout.is_grouped(cs)
    assert np.array_equal(a, off + (y * w + x) * cs + c)
    arena = np.random.default_rng(0).integers(0, 256, off + h * w * cs + 8).astype(np.uint8)
    assert np.array_equal(layout.read(arena, off, h, w, cs), arena[off:off + h * w * cs].reshape(h, w, cs))


@SETTINGS
@given(buffers(packed=False))
def test_a_groups_channel_block_is_one_run_of_beats(buf):
    """Block b of group g of row y: its gw pixels' 16 bytes each are gw consecutive beats (pixel
    order), at a beat boundary; the blocks of a group follow each other (a channel range of a group
    is one run), and so do the groups of a row (a row with all its channels is one run)."""
    off, h, w, cs = buf
    a = _grid(*buf)[3]
    assert layout.is_grouped(cs) == (cs > B)
    for y in range(h):
        row_start = off + y * w * cs
        assert a[y].min() == row_start and a[y].max() == row_start + w * cs - 1
        for g in range(-(-w // G)):
            x0, gw = g * G, min(G, w - g * G)
            for b in range(cs // B):
                run = a[y, x0:x0 + gw, b * B:(b + 1) * B]           # (gw, 16), pixel-major
                start = row_start + x0 * cs + b * gw * B
                assert start % B == off % B
                assert np.array_equal(run.ravel(), start + np.arange(gw * B))


@SETTINGS
@given(st.data())
def test_write_then_read_round_trips_and_matches_byte_address(data):
    off, h, w, cs = data.draw(buffers())
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    if layout.is_grouped(cs):
        b0 = data.draw(st.integers(0, cs // B - 1))
        nb = data.draw(st.integers(1, cs // B - b0))
        c0, n = b0 * B, nb * B
    else:
        c0 = data.draw(st.integers(0, cs - 1))
        n = data.draw(st.integers(1, cs - c0))
    arena = rng.integers(0, 256, off + h * w * cs + 16).astype(np.uint8)
    before = arena.copy()
    v = rng.integers(0, 256, (h, w, n)).astype(np.uint8)
    layout.write(arena, off, h, w, cs, c0, v)
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(c0, c0 + n), indexing="ij")
    addr = layout.byte_address(off, w, cs, y, x, c)
    assert np.array_equal(arena[addr], v)                          # the views follow the formula
    untouched = np.ones(arena.size, bool)
    untouched[addr.ravel()] = False
    assert np.array_equal(arena[untouched], before[untouched])     # nothing else written
    assert np.array_equal(layout.read(arena, off, h, w, cs, c0, n), v)
    # any sub-range of channels reads back (reads need not be whole blocks)
    r0 = data.draw(st.integers(c0, c0 + n - 1))
    rn = data.draw(st.integers(1, c0 + n - r0))
    assert np.array_equal(layout.read(arena, off, h, w, cs, r0, rn), v[:, :, r0 - c0:r0 - c0 + rn])


def test_grouped_writes_are_whole_blocks():
    arena = np.zeros(4 * 4 * 32, np.uint8)
    with pytest.raises(ValueError, match="whole 16-byte channel blocks"):
        layout.write(arena, 0, 4, 4, 32, 8, np.zeros((4, 4, 16), np.uint8))
    with pytest.raises(ValueError, match="whole 16-byte channel blocks"):
        layout.write(arena, 0, 4, 4, 32, 0, np.zeros((4, 4, 8), np.uint8))


def test_grouped_views_need_a_contiguous_arena():
    arena = np.zeros(2 * 4 * 4 * 32, np.uint8)[::2]
    with pytest.raises(ValueError, match="contiguous"):
        layout.read(arena, 0, 4, 4, 32)


# ------------------------------------------------------------------ the numpy model on layout v3
@settings(max_examples=40, deadline=None)
@given(st.data())
def test_model_results_do_not_depend_on_the_layout(data):
    """One random layer run twice by the numpy model: on 16-byte-stride (NHWC, the model's plain
    strided path) input and output buffers, and on grouped ones (wider cs, the layer's channels at
    other blocks, widths up to 40: several and partial pixel groups; the model's staged block
    copies and grouped stores). The output values (and the 0 pad bytes up to whole blocks) are the
    same, and the grouped run writes nothing outside its output blocks. Checks the model's layout
    handling without the C simulation."""
    from runtime.engines.codenet_model import run_program
    from runtime.engines.codenet_program import pack_program
    from tests.codenet_gen import Layout, draw_layer, up16
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    op = draw(st.sampled_from(["conv1x1", "dw3x3"]))
    s = draw_layer(draw, Layout(draw), op=op, in_mode=draw(st.sampled_from([cfg.MODE_DIRECT, cfg.MODE_UPSAMPLE2])),
                   max_hw=draw(st.sampled_from([7, 20, 40])), max_ch=B)
    h, w, oh, ow, cin, cout = s.in_h, s.in_w, s.out_h, s.out_w, s.cin, s.cout
    g = rng.permutation(B)[:cin] if draw(st.booleans()) else rng.integers(0, B, cin)
    x = rng.integers(0, 256, (h, w, B)).astype(np.uint8)               # the input tensor's 16 channels
    dil = rng.integers(0, cfg.MAX_DIL + 1, oh * ow).astype(np.uint8)
    runs = []
    for grouped in (False, True):
        k = draw(st.integers(2, 4)) if grouped else 1                  # input: k blocks, x at block bx
        bx = draw(st.integers(0, k - 1))
        m = draw(st.integers(2, 4)) if grouped else 1                  # output: m blocks, at block bo
        bo = draw(st.integers(0, m - 1))
        in_n, out_n = h * w * k * B, oh * ow * m * B
        out_off = up16(in_n)
        dil_off = out_off + up16(out_n)
        arena = rng.integers(0, 256, dil_off + oh * ow * B + B).astype(np.uint8)
        layout.write(arena, 0, h, w, k * B, bx * B, x)
        arena[dil_off + 5:dil_off + 5 + oh * ow * B:B] = dil               # lane 5 of a 16-byte-stride map
        s.in_off, s.in_cs, s.gather = 0, k * B, (g + bx * B).astype(np.uint16)
        s.out_off, s.out_cs, s.out_choff = out_off, m * B, bo * B
        s.dil_off, s.dil_cs = dil_off + 5, B
        before = arena.copy()
        run_program(*pack_program([s], strict=False), arena)
        got = layout.read(arena, out_off, oh, ow, m * B, bo * B, B)
        assert layout.is_grouped(m * B) == grouped
        others = np.ones(arena.size, bool)
        yy, xx, cc = np.meshgrid(np.arange(oh), np.arange(ow), np.arange(bo * B, bo * B + B), indexing="ij")
        others[layout.byte_address(out_off, ow, m * B, yy, xx, cc).ravel()] = False
        assert np.array_equal(arena[others], before[others])
        runs.append(got)
    assert np.array_equal(runs[0][:, :, :cout], runs[1][:, :, :cout])
    assert not runs[1][:, :, cout:].any() and not runs[0][:, :, cout:].any()
