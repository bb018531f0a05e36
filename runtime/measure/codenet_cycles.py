"""Cycle model v2 of the CoDeNet HLS engine (hls_src/codenet/codenet_engine.h). MODELLED.

Two levels, both counted by the C simulation too (codenet_csim_cycles / codenet_csim_events) and
proven equal by tests/test_codenet_cycles.py:

* `layer_events(spec, offsets)`: every loop entry and blocking access of one layer as a Counter of
  `(phase, kind, trips, beats) -> count`. kind (codenet_config.h "kinds of events"):
    EV_LOOP      pipelined loop without memory access (trips iterations at II = 1)
    EV_BURST     pipelined loop moving one contiguous run of `beats` beats (an inferred burst)
    EV_SINGLES   pipelined loop issuing `beats` separate one-beat requests (no burst inferred:
                 strided or conditional addresses)
    EV_BLOCKING  one blocking one-beat access outside any loop (a per-layer profile entry)
    EV_STEP      one pass of a loop body that is not pipelined (none left in the streaming engine)
    EV_QUEUED    pipelined loop moving `beats` arena beats in bursts requested ahead
                 (codenet_port.h: every arena access of the streaming stages)
    EV_LATENCY   a stage's AXI latency, paid once per layer: its first read data / its last
                 write responses
* `layer_cycles(spec)`: the v1 trip counts per phase derived from the events (desc, load, read,
  compute, write; `entries` = pipelined-loop entries).

Time (`event_cycles`): with L the AXI latency, N the outstanding requests per port, B the burst
limit, D the loop's pipeline depth (all in codenet_config.h, each with its source):
    EV_LOOP      D + trips
    EV_BURST     D + L + max(trips, flow(r = ceil(beats / B) requests))
    EV_SINGLES   D + L + max(trips, flow(r = beats one-beat requests))
    EV_BLOCKING  L + 1
    EV_STEP      DEPTH_DW_PIXEL
    EV_QUEUED    D + max(trips, beats, r * (L + b) / N): no latency waited for, but each of the r
                 bursts holds one of the N request slots for L + b cycles (the slot frees when
                 its data is consumed / its response taken)
    EV_LATENCY   L
flow(r) = min(r, N) * b + max(0, r - N) * (L + b) / N with b = beats / r: the first N requests
stream back to back, each later one waits for a slot, held L + b cycles (Little's law). An
EV_BURST write loop is charged the same L for its write responses (the loop's last responses are
awaited before it exits); the streaming stages' writes are EV_QUEUED, their last responses one
EV_LATENCY per layer. Every layer of the engine is a DATAFLOW region (codenet_dataflow.h): its read, compute
and write stages (phases PH_READ, PH_COMPUTE, PH_WRITE) run concurrently, so a layer takes its
descriptor and loads, then its slowest stage plus the longest single event (one row) and the
EV_LATENCY of each other stage (`events_cycles`); a frame the sum of its layers. `published_structure` applies the
same costs to the published system's structure (a DATAFLOW call per layer with row bursts, plus
its host work).
"""
from collections import Counter

import numpy as np

from ..engines import codenet_config as cfg

PHASES = ("desc", "load", "read", "compute", "write", "entries")
BUS = cfg.ARENA_BUS_BYTES
LOOP_KINDS = (cfg.EV_LOOP, cfg.EV_BURST, cfg.EV_SINGLES, cfg.EV_QUEUED)


def _cdiv(a, b):
    return -(-a // b)


def _beats(addr, n):
    """Bus beats holding the n-byte run at byte address addr (numpy-friendly)."""
    return (np.asarray(addr) % BUS + n + BUS - 1) // BUS


def section_offsets(layers):
    """Weights-blob byte offsets (gather, weights, requant) of every layer, as pack_program lays
    them out (each section 8-byte aligned, in that order)."""
    def align(n):
        return _cdiv(n, cfg.SECTION_ALIGN) * cfg.SECTION_ALIGN
    out, pos = [], 0
    for s in layers:
        g = pos
        w = g + align(2 * s.cin)
        q = w + align(s.cout * s.row_bytes())
        pos = q + align(cfg.RQ_RECORD_BYTES * s.cout + align(2 * s.cout))
        out.append((g, w, q))
    return out


class _Events:
    def __init__(self):
        self.c = Counter()

    def add(self, phase, kind, trips, beats, count=1):
        """Add `count` events; trips / beats may be arrays (one event per element)."""
        t, b = np.broadcast_arrays(np.asarray(trips, np.int64).ravel(), np.asarray(beats, np.int64).ravel())
        if t.size == 1:
            if count:
                self.c[(phase, kind, int(t[0]), int(b[0]))] += int(count)
            return
        rows, n = np.unique(np.stack([t, b], 1), axis=0, return_counts=True)
        for (tt, bb), k in zip(rows.tolist(), n.tolist()):
            self.c[(phase, kind, tt, bb)] += k


def _section(ev, addr, nbytes, *loops):
    """A weights-blob section read as one burst (burst_beats) feeding its parse loops (one per
    entry of `loops`, that many iterations each; StreamByteReader)."""
    nb = int(_beats(addr, nbytes))
    ev.add(cfg.PH_LOAD, cfg.EV_BURST, nb, nb)
    for trips in loops:
        ev.add(cfg.PH_LOAD, cfg.EV_LOOP, trips, 0)


def conv_streams(spec):
    """True when a CONV1X1 layer runs the streaming DATAFLOW path (codenet_dataflow.h
    conv_streams): direct / x2 input, beat-aligned input tensor, a pixel's gathered run within
    PIX_BEATS."""
    if spec.op != "conv1x1":
        return False
    g = np.asarray(spec.gather, np.int64)
    if spec.in_mode == cfg.MODE_PATCH3X3:
        return int(g.max() - g.min()) < BUS and spec.in_w * spec.in_cs + 2 * BUS - 2 <= cfg.PATCH_ROW_BEATS * BUS
    sb = int(g.max()) // BUS - int(g.min()) // BUS + 1
    return spec.in_off % BUS == 0 and spec.in_cs % BUS == 0 and sb <= cfg.PIX_BEATS


def _tile_beats(spec):
    """Per PE-channel tile: the distinct beats of a pixel holding its gathered channels (sorted)."""
    g = np.asarray(spec.gather, np.int64)
    return [sorted(set((g[ct * cfg.PE:(ct + 1) * cfg.PE] // BUS).tolist())) for ct in range(_cdiv(spec.cout, cfg.PE))]


def dw_streams(spec):
    """True when a DW3X3 layer runs the streaming DATAFLOW path (codenet_dataflow.h dw_streams)."""
    return spec.op == "dw3x3" and spec.in_off % BUS == 0 and spec.in_cs % BUS == 0


def layer_is_dataflow(spec):
    """The layer's read / compute / write stages run concurrently (DATAFLOW)."""
    return conv_streams(spec) or dw_streams(spec)


def _dw_rows_needed(spec, y):
    up = spec.in_mode == cfg.MODE_UPSAMPLE2
    seen_h = 2 * spec.in_h if up else spec.in_h
    seen_hi = min(y + cfg.MAX_DIL if spec.deformable else y * spec.stride - spec.pad + 2, seen_h - 1)
    return ((seen_hi >> 1) if up else seen_hi) + 1


def _groups(w):
    """Widths of a row's pixel groups (layout v3: GROUP_PIX, the last one the rest)."""
    full, tail = divmod(w, cfg.GROUP_PIX)
    return [cfg.GROUP_PIX] * full + ([tail] if tail else [])


def _write_groups(ev, spec, ot, rep, count):
    """conv_writer per output row (`count` rows): per group, the fill loop (computed pixels x OT
    pops) and the group's run of OT x gw beats."""
    for gw in _groups(spec.out_w):
        ev.add(cfg.PH_WRITE, cfg.EV_LOOP, _cdiv(gw, rep) * ot, 0, count=count)
        ev.add(cfg.PH_WRITE, cfg.EV_QUEUED, ot * gw, ot * gw, count=count)


def _dw_stream_events(ev, spec):
    """dw_reader / dw_compute / dw_writer of codenet_dataflow.h: per tile, the input rows (each
    once), per output row the dilation run, the pixel loop and the output row."""
    rows = max([_dw_rows_needed(spec, y) for y in range(spec.out_h)] + [0])   # filled once per tile
    tiles = _tile_beats(spec)
    ev.add(cfg.PH_LOAD, cfg.EV_LOOP, spec.cout, 0)                           # load_tiles: a channel a cycle
    ev.add(cfg.PH_READ, cfg.EV_LATENCY, 0, 0)
    for beats in tiles:
        nbt = len(beats)
        if rows > 0:
            for gw in _groups(spec.in_w):          # per group and block: one run (then re-ordered)
                ev.add(cfg.PH_READ, cfg.EV_QUEUED, gw, gw, count=rows * nbt)
                if nbt > 1:
                    ev.add(cfg.PH_READ, cfg.EV_LOOP, gw * nbt, 0, count=rows)
            ev.add(cfg.PH_COMPUTE, cfg.EV_LOOP, spec.in_w * nbt, 0, count=rows)
        if spec.deformable:
            ev.add(cfg.PH_READ, cfg.EV_QUEUED, spec.out_w, spec.out_w, count=spec.out_h)
        ev.add(cfg.PH_COMPUTE, cfg.EV_LOOP, spec.out_w, 0, count=spec.out_h)
        ev.add(cfg.PH_WRITE, cfg.EV_QUEUED, spec.out_w, spec.out_w, count=spec.out_h)
    ev.add(cfg.PH_WRITE, cfg.EV_LATENCY, 0, 0)


def _patch_stream_events(ev, spec):
    """PATCH3X3 on the streaming path: patch_reader (the output row's input rows, one run each,
    then 9 tap beats per pixel), conv_mac (9 pops + OT x KT per pixel), conv_writer."""
    row_bytes = spec.in_w * spec.in_cs
    ev.add(cfg.PH_READ, cfg.EV_LATENCY, 0, 0)
    for y in range(spec.out_h):
        for ky in range(3):
            sy = y * spec.stride - spec.pad + ky
            if 0 <= sy < spec.in_h:
                nb = int(_beats(spec.in_off + sy * row_bytes, row_bytes))
                ev.add(cfg.PH_READ, cfg.EV_QUEUED, nb, nb)
    ev.add(cfg.PH_READ, cfg.EV_LOOP, spec.out_w * cfg.TAPS, 0, count=spec.out_h)
    ot = _cdiv(spec.cout, cfg.PE)
    kt = _cdiv(spec.row_bytes(), cfg.W_WORD_BYTES)
    ev.add(cfg.PH_COMPUTE, cfg.EV_LOOP, spec.out_w * (cfg.TAPS + ot * kt), 0, count=spec.out_h)
    _write_groups(ev, spec, ot, 1, spec.out_h)
    ev.add(cfg.PH_WRITE, cfg.EV_LATENCY, 0, 0)


def _conv_stream_events(ev, spec):
    """conv_reader / conv_mac / conv_writer of codenet_dataflow.h: per output row, the reader's
    group runs (and their emission), one MAC loop, the writer's groups."""
    if spec.in_mode == cfg.MODE_PATCH3X3:
        _patch_stream_events(ev, spec)
        return
    g = np.asarray(spec.gather, np.int64)
    up = spec.in_mode == cfg.MODE_UPSAMPLE2
    rep = 2 if up and spec.stride == 1 else 1
    ncx = _cdiv(spec.out_w, 2) if rep == 2 else spec.out_w
    pstep = 1 if up else spec.stride
    seen_h, seen_w = (2 * spec.in_h, 2 * spec.in_w) if up else (spec.in_h, spec.in_w)
    lo_beat = int(g.min()) // BUS
    sb = int(g.max()) // BUS - lo_beat + 1
    ot = _cdiv(spec.cout, cfg.PE)
    kt = _cdiv(spec.row_bytes(), cfg.W_WORD_BYTES)
    nvalid = min((seen_w - 1) // (rep * spec.stride) + 1, ncx)
    rows_ok = int(sum(1 for y in range(spec.out_h) if y * spec.stride < seen_h))
    rows_read = rows_ok if nvalid else 0
    last_px = (nvalid - 1) * pstep
    if rows_read:
        ev.add(cfg.PH_READ, cfg.EV_LATENCY, 0, 0)
        for gi, gw in enumerate(_groups(spec.in_w)[:last_px // cfg.GROUP_PIX + 1]):
            ev.add(cfg.PH_READ, cfg.EV_QUEUED, sb * gw, sb * gw, count=rows_read)
            last = min(last_px - gi * cfg.GROUP_PIX, gw - 1)
            ne = last + 1 if pstep == 1 else (last >> 1) + 1
            ev.add(cfg.PH_READ, cfg.EV_LOOP, ne * sb, 0, count=rows_read)
    ev.add(cfg.PH_COMPUTE, cfg.EV_LOOP, nvalid * sb + ncx * ot * kt, 0, count=rows_ok)
    ev.add(cfg.PH_COMPUTE, cfg.EV_LOOP, ncx * ot * kt, 0, count=spec.out_h - rows_ok)
    _write_groups(ev, spec, ot, rep, spec.out_h)
    ev.add(cfg.PH_WRITE, cfg.EV_LATENCY, 0, 0)


def _conv_events(ev, spec):
    _conv_stream_events(ev, spec)


def _dw_events(ev, spec):
    _dw_stream_events(ev, spec)


def layer_events(spec, offsets, profile=False):
    """Counter {(phase, kind, trips, beats): count} of one layer; offsets = its (gather, weights,
    requant) blob offsets (section_offsets). profile: the per-layer profile is on (profile_off
    != 0): the layer's {start, end} beat, one blocking write after it (write_profile)."""
    g_off, w_off, q_off = offsets
    ev = _Events()
    ev.add(cfg.PH_DESC, cfg.EV_BURST, cfg.DESC_WORDS, cfg.DESC_WORDS)
    if profile:
        ev.add(cfg.PH_DESC, cfg.EV_BLOCKING, 1, 1)
    _section(ev, g_off, 2 * spec.cin, spec.cin)
    _section(ev, q_off, (cfg.RQ_RECORD_BYTES + 2) * spec.cout, spec.cout, spec.cout)
    if spec.op == "conv1x1":
        kt = _cdiv(spec.row_bytes(), cfg.W_WORD_BYTES)
        # load_conv_weights: one burst of the section's beats feeding the parser (one word a cycle)
        nb = int(_beats(w_off, spec.cout * spec.row_bytes()))
        ev.add(cfg.PH_LOAD, cfg.EV_BURST, nb, nb)
        ev.add(cfg.PH_LOAD, cfg.EV_LOOP, spec.cout * kt, 0)
        ev.add(cfg.PH_LOAD, cfg.EV_LOOP, spec.k, 0)
        _conv_events(ev, spec)
    else:
        _section(ev, w_off, spec.cout * spec.row_bytes(), spec.cout)
        _dw_events(ev, spec)
    return ev.c


def program_events(layers, profile=False):
    return [layer_events(s, o, profile) for s, o in zip(layers, section_offsets(layers))]


def counts_from_events(events):
    """v1 trip counts per phase (PHASES) of one layer's events, plus `cycles` (all but entries)."""
    c = dict.fromkeys(PHASES, 0)
    for (phase, kind, trips, _beats_), n in events.items():
        c[PHASES[phase]] += trips * n
        if kind in LOOP_KINDS:
            c["entries"] += n
    c["cycles"] = sum(c[p] for p in PHASES[:5])
    return c


def layer_cycles(spec, offsets=(0, 0, 0)):
    """{phase: trip count} of one LayerSpec (PHASES) plus `cycles`, its weights-blob sections at
    `offsets` (their alignment changes the beats of the weight burst, hence its trips)."""
    return counts_from_events(layer_events(spec, offsets))


def program_cycles(layers):
    return [counts_from_events(e) for e in program_events(layers)]


# ------------------------------------------------------------------------------------------ time
def _depth(phase, kind):
    if kind == cfg.EV_LOOP:
        return cfg.DEPTH_MAC_LOOP if phase == cfg.PH_COMPUTE else cfg.DEPTH_XSRC_LOOP
    return cfg.DEPTH_MEM_LOOP


def event_cycles(phase, kind, trips, beats, axi_latency=None, outstanding=None, max_burst=None):
    """Cycles of one event (module docstring)."""
    lat = cfg.AXI_LATENCY if axi_latency is None else axi_latency
    n_out = outstanding or cfg.AXI_OUTSTANDING
    burst = max_burst or (cfg.PROG_MAX_BURST if phase == cfg.PH_DESC else cfg.AXI_MAX_BURST)
    if kind == cfg.EV_LOOP:
        return _depth(phase, kind) + trips
    if kind == cfg.EV_STEP:
        return cfg.DEPTH_DW_PIXEL
    if kind == cfg.EV_BLOCKING:
        return lat + 1
    if kind == cfg.EV_LATENCY:
        return lat
    if kind == cfg.EV_QUEUED:
        return _depth(phase, kind) + max(trips, _queued_flow(beats, burst, lat, n_out))
    requests = _cdiv(beats, burst) if kind == cfg.EV_BURST else beats
    return _depth(phase, kind) + (lat if beats else 0) + max(trips, _flow(requests, beats, lat, n_out))


def _queued_flow(beats, burst, lat, n_out):
    """Cycles to move `beats` beats whose bursts were requested ahead (codenet_port.h Prefetch /
    WriteBursts): none of the latency is waited for, but each burst holds one of n_out request
    slots for its latency plus its beats, so r bursts take at least r * (lat + b) / n_out."""
    if not beats:
        return 0
    r = _cdiv(beats, burst)
    return max(beats, r * (lat + beats / r) / n_out)


def _flow(requests, beats, lat, n_out):
    """Cycles after the first latency to move `beats` beats in `requests` requests with n_out in
    flight: the first n_out requests stream back to back; each later one waits for a slot, which
    a request holds for its latency plus its beats (Little's law)."""
    if not requests:
        return 0
    per = beats / requests
    return max(0, requests - n_out) * (lat + per) / n_out + min(requests, n_out) * per


STAGES = (cfg.PH_READ, cfg.PH_COMPUTE, cfg.PH_WRITE)


def events_cycles(events, axi_latency=None, dataflow=False, latency_of=None):
    """(total cycles, cycles per phase name) of one layer's events. Sequential layers: the sum of
    every event. DATAFLOW layers (layer_is_dataflow): desc + load (sequential, before the region),
    then the read / compute / write stages run concurrently: the slowest stage's sum plus, for
    each other stage, its longest single event (one row: the pipeline fills before the slowest
    stage runs at its rate, and drains after it) and its EV_LATENCY (the reader's first data, the
    writer's last responses). Each load's burst and parser (a small DATAFLOW of their own) are
    charged one after the other: conservative by up to the shorter.
    latency_of(phase, kind), if given, is each event's AXI latency instead of axi_latency
    (latency_attribution)."""
    by_phase = dict.fromkeys(PHASES[:5], 0.0)
    longest = dict.fromkeys(STAGES, 0.0)
    latency = dict.fromkeys(STAGES, 0.0)
    for (phase, kind, trips, beats), n in events.items():
        lat = axi_latency if latency_of is None else latency_of(phase, kind)
        c = event_cycles(phase, kind, trips, beats, lat)
        by_phase[PHASES[phase]] += n * c
        if phase in longest:
            if kind == cfg.EV_LATENCY:
                latency[phase] += n * c
            else:
                longest[phase] = max(longest[phase], c)
    if not dataflow:
        return sum(by_phase.values()), by_phase
    stage = {p: by_phase[PHASES[p]] for p in STAGES}
    slowest = max(stage, key=stage.get)
    # a stage that is not the slowest still delays the layer by its fill (its first row, after
    # its first data's latency) or its drain (its last row, then its last write responses)
    fill = sum(longest[p] + latency[p] for p in STAGES if p != slowest)
    total = by_phase["desc"] + by_phase["load"] + stage[slowest] + fill
    return total, dict(by_phase, dataflow_slowest=PHASES[slowest], dataflow_fill=fill)


def frame_estimate(layers, clock_mhz=None, axi_latency=None, events=None, profile=False):
    """The engine as written on one frame: per layer cycles (events at AXI latency L) and the v1
    trip counts; frame = sum of layers. events: program_events(layers, profile), if already
    computed. profile: with the per-layer profile on. -> dict with cycles, ms, fps, per-layer rows."""
    clock_mhz = float(clock_mhz or cfg.CLOCK_MHZ)
    rows = []
    for spec, ev in zip(layers, events if events is not None else program_events(layers, profile)):
        cyc, by_phase = events_cycles(ev, axi_latency, layer_is_dataflow(spec))
        rows.append({"cycles": cyc, "cycles_by_phase": by_phase, "trip_counts": counts_from_events(ev),
                     "bursts": sum(n * _cdiv(b, cfg.AXI_MAX_BURST) for (p, k, t, b), n in ev.items()
                                   if k in (cfg.EV_BURST, cfg.EV_QUEUED)),
                     "single_beat_requests": sum(n * b for (p, k, t, b), n in ev.items()
                                                 if k in (cfg.EV_SINGLES, cfg.EV_BLOCKING))})
    total = sum(r["cycles"] for r in rows)
    ms = total / (clock_mhz * 1e3)
    return {"cycles": total, "ms": ms, "fps": 1e3 / ms if ms else float("inf"),
            "axi_latency_cycles": cfg.AXI_LATENCY if axi_latency is None else axi_latency,
            "trip_counts": {p: sum(r["trip_counts"][p] for r in rows) for p in PHASES + ("cycles",)},
            "layers": rows}


# ------------------------------------------------------------------------------ per-layer profile
def profile_write_cycles(axi_latency=None):
    """Cycles of one profile entry's write (the blocking one-beat write after each layer)."""
    return event_cycles(cfg.PH_DESC, cfg.EV_BLOCKING, 1, 1, axi_latency)


def modelled_profile(layers, axi_latency=None, start=0):
    """The profile region the engine would write for `layers`, from this model: (n, 2) uint64
    {start, end} counter values per layer, the counter at `start` when the frame begins. As on the
    board, layer l's interval runs from before its descriptor read to after its last stage, and
    its own profile write lies between its end and the next layer's start. MODELLED."""
    write = profile_write_cycles(axi_latency)
    est = frame_estimate(layers, axi_latency=axi_latency, profile=True)
    out = np.zeros((len(layers), 2), np.uint64)
    t = float(start)
    for i, row in enumerate(est["layers"]):
        end = t + row["cycles"] - write
        out[i] = (int(round(t)), int(round(end)))
        t = end + write
    return out


KIND_NAMES = {cfg.EV_LOOP: "loop", cfg.EV_BURST: "burst", cfg.EV_SINGLES: "singles", cfg.EV_BLOCKING: "blocking",
              cfg.EV_STEP: "step", cfg.EV_QUEUED: "queued", cfg.EV_LATENCY: "latency"}
MEMORY_KINDS = (cfg.EV_BURST, cfg.EV_SINGLES, cfg.EV_BLOCKING, cfg.EV_QUEUED, cfg.EV_LATENCY)


def latency_attribution(layers, axi_latency, events=None):
    """Where the AXI latency's cycles come from. -> {"all": frame cycles at axi_latency minus frame
    cycles at latency 0, "<phase>/<kind>": the same when ONLY that class of memory event sees the
    latency (every other event at 0)}, for every class of memory event the frame has. Within a
    DATAFLOW layer the stages overlap, so the classes need not add up to "all": each is what that
    class's latency costs on its own. MODELLED."""
    events = events if events is not None else program_events(layers)
    flows = [layer_is_dataflow(s) for s in layers]

    def frame(latency_of):
        return sum(events_cycles(e, 0, f, latency_of)[0] for e, f in zip(events, flows))

    base = frame(lambda p, k: 0)
    out = {"all": frame(lambda p, k: axi_latency) - base}
    classes = sorted({(p, k) for e in events for (p, k, _t, _b) in e if k in MEMORY_KINDS})
    for pc, kc in classes:
        out["{}/{}".format(PHASES[pc], KIND_NAMES[kc])] = frame(
            lambda p, k: axi_latency if (p, k) == (pc, kc) else 0) - base
    return out
