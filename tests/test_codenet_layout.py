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
