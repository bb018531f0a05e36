"""Tensor layout of the CoDeNet arena, format version 3 (hls_src/codenet/FORMAT.md "Memory").

A tensor buffer at byte `off` with H x W pixels and channel stride `cs` bytes per pixel:

* cs a multiple of ARENA_BUS_BYTES (every computed tensor, the beat layout): each row is split
  into pixel groups of GROUP_PIX pixels (the last one gw = W - 16 g <= 16 wide); inside a group,
  16-byte channel block b of its gw pixels is ONE run of gw beats:
      byte (y, x, c) = off + y*W*cs + g*GROUP_PIX*cs + (c // 16)*gw*16 + (x % 16)*16 + c % 16
  with g = x // GROUP_PIX. So one 16-channel tile of a row (the depthwise reader and writer) is
  one run of gw beats per group, a channel range of a group (a 1x1 layer's input run, a concat's
  output blocks) one run, and a row with all its channels one run. For cs = 16 this is plain
  NHWC: off + (y*W + x)*16 + c.
* any other cs (the network input image as the host writes it, read only by PATCH3X3): packed
  NHWC, off + (y*W + x)*cs + c.

`read` / `write` move (H, W, n) arrays of channels c0 .. c0 + n - 1 in and out of an arena with
numpy views (no per-element Python)."""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import codenet_config as cfg

BLOCK = cfg.ARENA_BUS_BYTES          # bytes of a channel block (one beat of one pixel)
GROUP = cfg.GROUP_PIX                # pixels of a group


def is_grouped(cs):
    """True when a buffer of channel stride cs uses pixel groups (a multiple of 16 above 16)."""
    return cs % BLOCK == 0 and cs > BLOCK


def byte_address(off, w, cs, y, x, c):
    """Arena byte of element (y, x, c) (numpy arrays broadcast)."""
    y, x, c = (np.asarray(v, np.int64) for v in (y, x, c))
    if cs % BLOCK:
        return off + (y * w + x) * cs + c
    g = x // GROUP
    gw = np.minimum(GROUP, w - g * GROUP)
    return off + y * w * cs + g * GROUP * cs + (c // BLOCK) * gw * BLOCK + (x % GROUP) * BLOCK + c % BLOCK


BLOCK_DTYPE = np.dtype("V{}".format(BLOCK))   # one 16-byte channel block as one numpy element: copies
                                               # of blocks run ~3x faster than 16-byte inner loops


def blocks_of(a):
    """(..., nb) BLOCK_DTYPE view of a C-contiguous uint8 array (..., nb * 16)."""
    if not a.flags.c_contiguous:
        raise ValueError("blocks_of needs a C-contiguous array")
    return a.view(BLOCK_DTYPE)


def block_views(arena, off, h, w, cs, b0, nb):
    """[(x0, view)]: writeable (h, groups, gw, nb) views, one BLOCK_DTYPE element per 16-byte
    channel block, of blocks b0 .. b0+nb-1 of a grouped buffer (cs a multiple of 16) in a 1-D
    contiguous uint8 arena: one for the full groups (gw = GROUP_PIX) starting at pixel x0 = 0 and
    one for the last partial group (x0 = its first pixel) if W is not a multiple of GROUP_PIX.
    The caller checks off .. off + h*w*cs lies inside the arena."""
    if arena.ndim != 1 or arena.strides[0] != 1:
        raise ValueError("a grouped tensor needs a 1-D contiguous uint8 arena")
    out = []
    full, tail = divmod(w, GROUP)
    end = off + h * w * cs
    for x0, ng, gw in ((0, full, GROUP), (full * GROUP, 1 if tail else 0, tail)):
        if not ng:
            continue
        start = off + x0 * cs + b0 * gw * BLOCK
        base = arena[start:end].view(BLOCK_DTYPE)       # end - start is a multiple of 16
        shape = (h, ng, gw, nb)
        strides = (w * cs, GROUP * cs, BLOCK, gw * BLOCK)
        out.append((x0, as_strided(base, shape=shape, strides=strides, writeable=arena.flags.writeable)))
    return out


def read(arena, off, h, w, cs, c0=0, n=None):
    """(h, w, n) uint8 copy of channels c0 .. c0 + n - 1 (n defaults to cs - c0)."""
    n = cs - c0 if n is None else n
    if not is_grouped(cs):
        st = arena.strides[0]
        return as_strided(arena[off + c0:], shape=(h, w, n), strides=(w * cs * st, cs * st, st)).copy()
    b0, b1 = c0 // BLOCK, -(-(c0 + n) // BLOCK)
    out = np.empty((h, w, (b1 - b0) * BLOCK), np.uint8)
    ob = blocks_of(out)
    for x0, v in block_views(arena, off, h, w, cs, b0, b1 - b0):
        ng, gw = v.shape[1], v.shape[2]
        ob[:, x0:x0 + ng * gw].reshape(v.shape)[...] = v
    lo = c0 - b0 * BLOCK
    return out[:, :, lo:lo + n]


def write(arena, off, h, w, cs, c0, values):
    """Store values (h, w, n) as channels c0 .. c0 + n - 1; grouped buffers take whole blocks
    (c0 a multiple of 16, n padded by the caller to whole blocks)."""
    values = np.asarray(values)
    n = values.shape[2]
    if not is_grouped(cs):
        v = as_strided(arena[off + c0:], shape=(h, w, n), strides=(w * cs * arena.strides[0], cs * arena.strides[0],
                                                                   arena.strides[0]), writeable=True)
        v[...] = values
        return
    if c0 % BLOCK or n % BLOCK:
        raise ValueError("grouped layout: writes are whole 16-byte channel blocks (c0 {}, n {})".format(c0, n))
    vb = blocks_of(np.ascontiguousarray(values, np.uint8))
    for x0, v in block_views(arena, off, h, w, cs, c0 // BLOCK, n // BLOCK):
        ng, gw = v.shape[1], v.shape[2]
        v[...] = vb[:, x0:x0 + ng * gw].reshape(v.shape)
