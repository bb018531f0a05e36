"""Exact cycle accounting of the CoDeNet HLS engine (hls_src/codenet/codenet_engine.h).

`layer_cycles(spec)` returns, for one `LayerSpec`, the trip counts of every pipelined loop of the
HLS code (all II = 1; one count per iteration) and its single-beat DDR accesses, per phase:

  desc     descriptor words (32-bit program port)
  load     gather table, requant records and zero points, 1x1 / depthwise weights (128-bit
           weights port, `ByteReader`: one item per cycle, + 1 cycle to prime each stream),
           and the 1x1 extraction table (one entry per logical input)
  read     activation beats read: 1x1 pixel runs (or one beat per input on the narrow path),
           depthwise line-buffer rows, deformable dilation rows
  compute  1x1: MAC tiles (PA x PE per cycle; the first tile also extracts the inputs);
           depthwise: one cycle per pixel and tile (9 x PE MACs)
  write    output beats + the read-modify-write reads of partial first / last beats
  entries  pipelined-loop invocations (NOT cycles: each costs a pipeline fill / DDR latency in
           hardware, which the trip counts leave out; see `frame_estimate`)

`cycles` = desc + load + read + compute + write. The C simulation counts the same numbers while it
runs (codenet_csim_cycles); tests/test_codenet_cycles.py proves them equal layer by layer.
Everything here is MODELLED (no board).
"""
import numpy as np

from ..engines import codenet_config as cfg

PHASES = ("desc", "load", "read", "compute", "write", "entries")
BUS = cfg.ARENA_BUS_BYTES


def _cdiv(a, b):
    return -(-a // b)


def _beats(addr, n):
    """Bus beats holding the n-byte run at byte address addr (numpy-friendly)."""
    return (addr % BUS + n + BUS - 1) // BUS


def _write_cost(addr, n):
    """Cycles to store an n-byte run at addr: its beats + one read per partial end beat."""
    s = np.asarray(addr) % BUS
    nb = (s + n + BUS - 1) // BUS
    end = (s + n) % BUS
    first_partial = (s != 0) | (nb == 1) & (end != 0)
    last_partial = (nb > 1) & (end != 0)
    return nb + first_partial.astype(np.int64) + last_partial.astype(np.int64)


def _tap_beats(span):
    """Pixel-buffer beats reserved per tap: the worst alignment of a span-byte run."""
    return (span + 2 * BUS - 2) // BUS


def conv_wide(spec):
    """True when a 1x1 pixel's runs fit the on-chip pixel buffer (else the narrow path)."""
    g = np.asarray(spec.gather, np.int64)
    span = int(g.max() - g.min()) + 1
    ntap = 9 if spec.in_mode == cfg.MODE_PATCH3X3 else 1
    return ntap * _tap_beats(span) <= cfg.PIX_BEATS


def _load(spec):
    c = {"load": 1 + spec.cin + 2 + 2 * spec.cout, "entries": 3}
    if spec.op == "conv1x1":
        k = spec.k
        kt = _cdiv(spec.row_bytes(), cfg.W_WORD_BYTES)
        c["load"] += 1 + spec.cout * kt + k
        c["entries"] += 2
    else:
        c["load"] += 1 + spec.cout
        c["entries"] += 1
    return c


def _conv(spec):
    g = np.asarray(spec.gather, np.int64)
    gmin, span = int(g.min()), int(g.max() - g.min()) + 1
    patch = spec.in_mode == cfg.MODE_PATCH3X3
    up = spec.in_mode == cfg.MODE_UPSAMPLE2
    seen_h, seen_w = (2 * spec.in_h, 2 * spec.in_w) if up else (spec.in_h, spec.in_w)
    rep = 2 if up and spec.stride == 1 else 1
    k = spec.k
    kt = _cdiv(spec.row_bytes(), cfg.W_WORD_BYTES)
    ot = _cdiv(spec.cout, cfg.PE)
    wide = conv_wide(spec)
    nby, nbx = _cdiv(spec.out_h, rep), _cdiv(spec.out_w, rep)
    blocks = nby * nbx
    yb, xb = np.meshgrid(np.arange(nby), np.arange(nbx), indexing="ij")
    yb, xb = yb.ravel(), xb.ravel()
    read = entries = 0
    if wide:
        taps = [(ky, kx) for ky in range(3) for kx in range(3)] if patch else [(0, 0)]
        for ky, kx in taps:
            if patch:
                sy = yb * spec.stride - spec.pad + ky
                sx = xb * spec.stride - spec.pad + kx
            else:
                sy, sx = yb * rep * spec.stride, xb * rep * spec.stride
            ok = (sy >= 0) & (sy < seen_h) & (sx >= 0) & (sx < seen_w)
            py, px = (sy >> 1, sx >> 1) if up else (sy, sx)
            a = spec.in_off + (py[ok] * spec.in_w + px[ok]) * spec.in_cs + gmin
            read += int(_beats(a, span).sum())
            entries += int(ok.sum())
        compute = blocks * ot * kt                 # extraction rides in the MAC loop's first tile
        entries += blocks                          # MAC loop (tap read loops counted above)
    else:
        read = blocks * k
        compute = blocks * ot * kt
        entries += 2 * blocks                      # narrow read loop, MAC
    # writes: every output pixel of every block
    y, x = np.meshgrid(np.arange(spec.out_h), np.arange(spec.out_w), indexing="ij")
    a = spec.out_off + (y * spec.out_w + x) * spec.out_cs + spec.out_choff
    write = int(_write_cost(a, spec.cout).sum())
    entries += spec.out_h * spec.out_w
    return {"read": read, "compute": compute, "write": write, "entries": entries}


def _dw(spec):
    g = np.asarray(spec.gather, np.int64)
    up = spec.in_mode == cfg.MODE_UPSAMPLE2
    seen_h = 2 * spec.in_h if up else spec.in_h
    # physical input rows the tile pass fills (each once): up to the last one any output row needs
    y = spec.out_h - 1
    seen_hi = y + cfg.MAX_DIL if spec.deformable else y * spec.stride - spec.pad + 2
    seen_hi = min(seen_hi, seen_h - 1)
    rows = ((seen_hi >> 1) if up else seen_hi) + 1
    tiles = _cdiv(spec.cout, cfg.PE)
    x_in = np.arange(spec.in_w)
    r_in = np.arange(rows)[:, None]
    yy, xx = np.meshgrid(np.arange(spec.out_h), np.arange(spec.out_w), indexing="ij")
    out_pix = spec.out_off + (yy * spec.out_w + xx) * spec.out_cs + spec.out_choff
    read = write = 0
    for ct in range(tiles):
        n = min(cfg.PE, spec.cout - ct * cfg.PE)
        gt = g[ct * cfg.PE:ct * cfg.PE + n]
        gmin, span = int(gt.min()), int(gt.max() - gt.min()) + 1
        a = spec.in_off + (r_in * spec.in_w + x_in) * spec.in_cs + gmin
        read += int(_beats(a, span).sum())
        write += int(_write_cost(out_pix + ct * cfg.PE, n).sum())
    if spec.deformable:
        run = (spec.out_w - 1) * spec.dil_cs + 1
        a = spec.dil_off + np.arange(spec.out_h) * spec.out_w * spec.dil_cs
        nb = _beats(a, run)
        read += tiles * int(np.where(nb <= cfg.DIL_BEATS, nb, spec.out_w).sum())
    pix = spec.out_h * spec.out_w
    compute = tiles * pix
    entries = tiles * (rows + pix + (spec.out_h if spec.deformable else 0))
    return {"read": read, "compute": compute, "write": write, "entries": entries}


def layer_cycles(spec):
    """{phase: count} of one LayerSpec (PHASES) plus `cycles` (all phases but entries)."""
    c = dict.fromkeys(PHASES, 0)
    c["desc"] = cfg.DESC_WORDS
    ld = _load(spec)
    c["load"], c["entries"] = ld["load"], ld["entries"] + 1          # + the descriptor loop
    body = _conv(spec) if spec.op == "conv1x1" else _dw(spec)
    for key in ("read", "compute", "write"):
        c[key] = body[key]
    c["entries"] += body["entries"]
    c["cycles"] = sum(c[p] for p in PHASES[:5])
    return c


def program_cycles(layers):
    return [layer_cycles(s) for s in layers]


def frame_estimate(layers, clock_mhz=None, fill_cycles=0):
    """Frame cycles / ms / fps; fill_cycles: assumed pipeline fill + latency per loop entry."""
    clock_mhz = float(clock_mhz or cfg.CLOCK_MHZ)
    rows = program_cycles(layers)
    total = {p: sum(r[p] for r in rows) for p in PHASES + ("cycles",)}
    cyc = total["cycles"] + fill_cycles * total["entries"]
    ms = cyc / (clock_mhz * 1e3)
    return {"cycles": cyc, "ms": ms, "fps": 1e3 / ms, "phases": total, "layers": rows}
