"""Cycle-level simulation of the BNN's DATAFLOW region (hls_src/bnn/bnn_top.cpp `classify`) with
its FIFOs. MODELLED.

Every process of the region is written as, per image, the sequence of cycles its loops run (II = 1
everywhere, as in bnn_layers.h): a cycle may read one item from its input stream and / or write
one item to its output stream. A read waits until the item was written (the cycle before, at the
latest); a write waits until the FIFO has room (the item `depth` places earlier was read). The
processes run concurrently; the steady-state interval between images is the throughput.
`interval(depths)` with depth 2 everywhere reproduces the stall the review measured (a stage that
buffers a whole image before computing blocks its producer), `bnn_config.FIFO_DEPTHS` (the
STREAM depths of bnn_top.cpp) lets every stage run at its own rate.
"""
from ..engines import bnn_config as cfg

STREAMS = ("s_img", "s_c0", "s_c1", "s_p0", "s_c2", "s_c3", "s_p1", "s_f0in", "s_f0", "s_sc")


def _conv(src, dst, h, w, cin, cout, pe, simd, taps=9):
    """Buffer the input image (one read a cycle), then per output pixel groups * taps * folds
    cycles, writing the pixel's word on the last."""
    per = -(-cout // pe) * taps * -(-cin // simd)
    px = (h - 2) * (w - 2) if taps == 9 else 1
    return [(h * w, src, None)] + [(per - 1, None, None), (1, None, dst)] * px


def _pool(src, dst, h, w):
    """One read a cycle; the 2x2 block's result written on the cycle of its last pixel."""
    segs = []
    for y in range(h):
        for x in range(w):
            last = y % 2 == 1 and x % 2 == 1 and y < h // 2 * 2 and x < w // 2 * 2
            segs.append((1, src, dst if last else None))
    return segs


def image_programs():
    """{process: [(cycles, read stream or None, write stream or None), ...]} for one image."""
    split = cfg.C3 // cfg.SIMDF0
    f0_folds = -(-cfg.FC_IN // cfg.SIMDF0)
    f1_folds = -(-cfg.F0 // cfg.SIMDF1)
    return {
        "read_images": [(cfg.IN_H * cfg.IN_W, None, "s_img")],
        "conv0": _conv("s_img", "s_c0", cfg.IN_H, cfg.IN_W, cfg.IN_C, cfg.C0, cfg.PE0, cfg.SIMD0),
        "conv1": _conv("s_c0", "s_c1", cfg.H0, cfg.W0, cfg.C0, cfg.C1, cfg.PE1, cfg.SIMD1),
        "pool0": _pool("s_c1", "s_p0", cfg.H1, cfg.W1),
        "conv2": _conv("s_p0", "s_c2", cfg.HP0, cfg.WP0, cfg.C1, cfg.C2, cfg.PE2, cfg.SIMD2),
        "conv3": _conv("s_c2", "s_c3", cfg.H2, cfg.W2, cfg.C2, cfg.C3, cfg.PE3, cfg.SIMD3),
        "pool1": _pool("s_c3", "s_p1", cfg.H3, cfg.W3),
        "pixels_to_words": [(1, "s_p1", None), (split, None, "s_f0in")] * (cfg.HP1 * cfg.WP1),
        "fc0": [(f0_folds, "s_f0in", None), (-(-cfg.F0 // cfg.PEF0) * f0_folds, None, None),
                (-(-cfg.F0 // cfg.SIMDF1), None, "s_f0")],
        "fc1": [(f1_folds, "s_f0", None)] + [(f1_folds - 1, None, None), (1, None, "s_sc")] * cfg.NUM_CLASSES,
        "write_scores": [(cfg.NUM_CLASSES, "s_sc", None)],
    }


def simulate(depths, images=6):
    """Run `images` images through the region; -> {process: [finish cycle of each image]}."""
    progs = image_programs()
    written = {s: [] for s in STREAMS}
    read = {s: [] for s in STREAMS}
    state = {p: {"t": 0, "img": 0, "seg": 0, "done": 0, "finish": []} for p in progs}
    active = set(progs)
    while active:
        moved = False
        for p in list(active):
            st, prog = state[p], progs[p]
            while st["img"] < images:
                n, src, dst = prog[st["seg"]]
                if src is None and dst is None:
                    st["t"] += n
                    step_done = True
                else:
                    t = st["t"]
                    if src is not None:
                        k = len(read[src])
                        if k >= len(written[src]):
                            break                              # the item is not written yet
                        t = max(t, written[src][k] + 1)
                    if dst is not None:
                        k = len(written[dst])
                        if k >= depths[dst]:
                            if k - depths[dst] >= len(read[dst]):
                                break                          # the FIFO is full
                            t = max(t, read[dst][k - depths[dst]] + 1)
                    if src is not None:
                        read[src].append(t)
                    if dst is not None:
                        written[dst].append(t)
                    st["t"] = t + 1
                    st["done"] += 1
                    step_done = st["done"] == n
                moved = True
                if step_done:
                    st["done"] = 0
                    st["seg"] += 1
                    if st["seg"] == len(prog):
                        st["seg"] = 0
                        st["img"] += 1
                        st["finish"].append(st["t"])
            if st["img"] == images:
                active.discard(p)
        if not moved:
            raise RuntimeError("BNN dataflow simulation deadlocked (FIFO depths {})".format(depths))
    return {p: state[p]["finish"] for p in progs}


def interval(depths, images=6):
    """Steady-state cycles between two images leaving the region (the last images)."""
    fin = simulate(depths, images)["write_scores"]
    return (fin[-1] - fin[2]) / (len(fin) - 3)


def uniform_depths(depth):
    return {s: depth for s in STREAMS}
