"""Synthetic CoDeNet engine programs: a ShuffleNetV2-1x CoDeNet at 256x256 with random weights
(layer shapes of the real network, zero-copy split/concat/shuffle through channel offsets and
gather tables), for benchmarking the numpy model and the C-sim. Also `python -m tests.codenet_synth`
prints ms per frame of the numpy model, per layer path."""
import time

import numpy as np

from runtime.engines import codenet_config as cfg
from runtime.engines.codenet_program import LayerSpec, arena_bytes_needed


def _up16(n):
    return -(-n // cfg.ARENA_BUS_BYTES) * cfg.ARENA_BUS_BYTES


class Arena:
    """Bump allocator of arena byte ranges."""

    def __init__(self):
        self.top = 0

    def alloc(self, nbytes, align=64):
        off = (self.top + align - 1) // align * align
        self.top = off + nbytes
        return off


def _requant(rng, cout, k, w_bits, out_lo, out_hi):
    # scale so that typical accumulators land inside the output range
    typ = max(1.0, np.sqrt(k) * (2 if w_bits == 4 else 30) * 40)
    shift = np.full(cout, 16, np.uint8)
    mult = np.clip(rng.normal(1.0, 0.2, cout) * (out_hi - out_lo) / typ * (1 << 16) / 4, 1, 32767).astype(np.int16)
    bias = rng.integers(-200, 200, cout).astype(np.int32)
    zp = np.full(cout, (out_lo + out_hi) // 2, np.int16)
    return bias, mult, shift, zp


def layer(rng, op, name, src, cin, dst, cout, gather=None, w_bits=4, in_mode=cfg.MODE_DIRECT, stride=1, pad=None,
          deformable=False, dil=None, relu=True, clamp=None, in_zp=0):
    """src/dst: dict(off, h, w, cs[, choff]). Unsigned activations throughout."""
    h, w = src["h"], src["w"]
    eh, ew = (2 * h, 2 * w) if in_mode == cfg.MODE_UPSAMPLE2 else (h, w)
    if pad is None:
        pad = 1 if (op == "dw3x3" or in_mode == cfg.MODE_PATCH3X3) else 0
    if op == "conv1x1" and in_mode != cfg.MODE_PATCH3X3:
        oh, ow = (eh - 1) // stride + 1, (ew - 1) // stride + 1
    else:
        oh, ow = (eh + 2 * pad - 3) // stride + 1, (ew + 2 * pad - 3) // stride + 1
    assert (oh, ow) == (dst["h"], dst["w"]), (name, oh, ow, dst)
    k = 9 if op == "dw3x3" else (9 * cin if in_mode == cfg.MODE_PATCH3X3 else cin)
    lo = -(1 << (w_bits - 1))
    weights = rng.integers(lo, -lo, (cout, k)).astype(np.int8)
    clamp_lo, clamp_hi = clamp if clamp else ((128 if relu else 0), 255)
    bias, mult, shift, zp = _requant(rng, cout, k, w_bits, 0, 255)
    if gather is None:
        gather = np.arange(cin)
    spec = LayerSpec(op=op, in_off=src["off"], in_h=h, in_w=w, in_cs=src["cs"], cin=cin, in_mode=in_mode,
                     stride=stride, pad=pad, in_zp=in_zp, w_bits=w_bits, out_off=dst["off"], out_h=oh, out_w=ow,
                     out_cs=dst["cs"], out_choff=dst.get("choff", 0), cout=cout, clamp_lo=clamp_lo,
                     clamp_hi=clamp_hi, gather=np.asarray(gather, np.uint16), weights=weights, bias=bias,
                     mult=mult, shift=shift, zp_out=zp, name=name, deformable=deformable)
    if deformable:
        spec.dil_off, spec.dil_cs = dil["off"], dil["cs"]
    return spec


def shufflenet_codenet(seed=0, size=256, classes=20, stage_units=(4, 8, 4), stage_ch=(116, 232, 464)):
    """-> (layers, arena_bytes, input (off, h, w, cs)). Input image: size x size x 3 uint8."""
    rng = np.random.default_rng(seed)
    ar = Arena()
    layers = []

    def buf(h, w, cs, packed=False):
        cs = cs if packed else _up16(cs)          # beat layout: computed tensors are whole beats
        return dict(off=ar.alloc(h * w * cs), h=h, w=w, cs=cs)

    img = buf(size, size, 3, packed=True)
    s = size // 4
    x = buf(s, s, 24)
    layers.append(layer(rng, "conv1x1", "conv1", img, 3, x, 24, w_bits=8, in_mode=cfg.MODE_PATCH3X3, stride=4, pad=1))
    cin, xg = 24, np.arange(24)                     # current logical tensor: buffer x, gather xg
    for si, (units, c) in enumerate(zip(stage_units, stage_ch)):
        half = c // 2
        s //= 2
        # stage buffer: every unit appends `half` channels; channel stride holds all of them
        ph = _up16(half)                             # channels of one unit's group, with its pad
        cs = ph * (units + 1)
        st = buf(s, s, cs)
        # downsample unit: branch1 dw s2 + 1x1 -> channels [0, half); branch2 1x1, dw s2, 1x1 -> [half, c)
        big = dict(off=None, h=s * 2, w=s * 2)
        t1 = buf(s, s, cin)
        layers.append(layer(rng, "dw3x3", "s{}u0.b1dw".format(si), {**x}, cin, t1, cin, gather=xg, stride=2,
                            relu=False))
        layers.append(layer(rng, "conv1x1", "s{}u0.b1pw".format(si), t1, cin, {**st, "choff": 0}, half))
        t2 = buf(s * 2, s * 2, half)
        layers.append(layer(rng, "conv1x1", "s{}u0.b2pw1".format(si), x, cin, t2, half, gather=xg))
        t3 = buf(s, s, half)
        layers.append(layer(rng, "dw3x3", "s{}u0.b2dw".format(si), t2, half, t3, half, stride=2, relu=False))
        layers.append(layer(rng, "conv1x1", "s{}u0.b2pw2".format(si), t3, half, {**st, "choff": ph}, half))
        del big
        phys = np.concatenate([np.arange(half), ph + np.arange(half)])   # logical -> physical channel of st
        for u in range(1, units):
            # channel shuffle (groups 2): logical j of the shuffled tensor = concat[(j % 2) * half + j // 2]
            shuffled = phys[(np.arange(c) % 2) * half + np.arange(c) // 2]
            x1, x2 = shuffled[:half], shuffled[half:]
            ta = buf(s, s, half)
            layers.append(layer(rng, "conv1x1", "s{}u{}.pw1".format(si, u), st, half, ta, half, gather=x2))
            tb = buf(s, s, half)
            layers.append(layer(rng, "dw3x3", "s{}u{}.dw".format(si, u), ta, half, tb, half, relu=False))
            dst_ch = ph * (u + 1)
            layers.append(layer(rng, "conv1x1", "s{}u{}.pw2".format(si, u), tb, half,
                                {**st, "choff": dst_ch}, half))
            phys = np.concatenate([x1, np.arange(dst_ch, dst_ch + half)])
        x, cin, xg = st, c, phys[(np.arange(c) % 2) * half + np.arange(c) // 2]
    # conv5, upsampled x2 on the fly (in_mode 1): the decoder's deformable layers need a stored
    # input (the engine's deformable window reads a direct tensor)
    s *= 2
    c5 = buf(s, s, 1024)
    layers.append(layer(rng, "conv1x1", "conv5", x, cin, c5, 1024, gather=xg, in_mode=cfg.MODE_UPSAMPLE2))
    x, cin = c5, 1024
    # decoder: three blocks at 16, 32, 64 px: dilation 1x1 (C -> 1, clamp 0..7), deformable dw,
    # 1x1 + ReLU (upsampled x2 by its input mode, except in the last block)
    for bi, cout in enumerate((256, 128, 64)):
        dil = buf(s, s, 1)
        layers.append(layer(rng, "conv1x1", "dec{}.dil".format(bi), x, cin, dil, 1, clamp=(0, cfg.MAX_DIL)))
        d = buf(s, s, cin)
        layers.append(layer(rng, "dw3x3", "dec{}.dcn".format(bi), x, cin, d, cin, deformable=True,
                            dil=dil, relu=False))
        up = 1 if bi < 2 else 0
        y = buf(s << up, s << up, cout)
        layers.append(layer(rng, "conv1x1", "dec{}.pw".format(bi), d, cin, y, cout, in_mode=up))
        x, cin, s = y, cout, s << up
    # CenterNet heads at stride 4: 1x1 -> dw3x3 -> 1x1 for heatmap, size, offset
    out = buf(s, s, _up16(classes) + 2 * cfg.ARENA_BUS_BYTES)
    choff = 0
    for hname, n in (("hm", classes), ("wh", 2), ("reg", 2)):
        a = buf(s, s, 64)
        layers.append(layer(rng, "conv1x1", "head.{}.pw1".format(hname), x, cin, a, 64))
        b = buf(s, s, 64)
        layers.append(layer(rng, "dw3x3", "head.{}.dw".format(hname), a, 64, b, 64, relu=False))
        layers.append(layer(rng, "conv1x1", "head.{}.pw2".format(hname), b, 64, {**out, "choff": choff}, n,
                            relu=False))
        choff += _up16(n)
    need = max(arena_bytes_needed(layers), ar.top)
    return layers, need, img


def float_onnx(deform=False, size=256, classes=20):
    """A float ONNX of the same ShuffleNetV2-1x CoDeNet (random weights, NCHW input 1x3xSxS):
    Conv / Relu / Split / Concat / channel-shuffle Reshape-Transpose-Reshape / Resize; the
    deformable depthwise layers as ONNX DeformConv (deform=True, offsets from the 1x1 dilation
    predictor) or as plain depthwise Convs. For timing comparisons with onnxruntime."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    count = [0]

    def name(prefix):
        count[0] += 1
        return "{}{}".format(prefix, count[0])

    def const(a):
        n = name("k")
        inits.append(numpy_helper.from_array(np.asarray(a), n))
        return n

    def conv(x, cin, cout, k=1, s=1, p=0, g=1, relu=True):
        w, b, y = name("w"), name("b"), name("c")
        inits.append(numpy_helper.from_array((rng.standard_normal((cout, cin // g, k, k)) * 0.1).astype(np.float32), w))
        inits.append(numpy_helper.from_array(np.zeros(cout, np.float32), b))
        nodes.append(helper.make_node("Conv", [x, w, b], [y], kernel_shape=[k, k], strides=[s, s], pads=[p] * 4,
                                      group=g))
        if not relu:
            return y
        r = name("r")
        nodes.append(helper.make_node("Relu", [y], [r]))
        return r

    def shuffle(x, c, h):
        a, b, o = name("s"), name("s"), name("s")
        nodes.append(helper.make_node("Reshape", [x, const(np.array([1, 2, c // 2, h, h], np.int64))], [a]))
        nodes.append(helper.make_node("Transpose", [a], [b], perm=[0, 2, 1, 3, 4]))
        nodes.append(helper.make_node("Reshape", [b, const(np.array([1, c, h, h], np.int64))], [o]))
        return o

    def concat(parts):
        y = name("cat")
        nodes.append(helper.make_node("Concat", parts, [y], axis=1))
        return y

    x = conv("img", 3, 24, 3, 4, 1)
    cin, s = 24, size // 4
    for units, c in zip((4, 8, 4), (116, 232, 464)):
        half = c // 2
        s //= 2
        b1 = conv(conv(x, cin, cin, 3, 2, 1, cin, False), cin, half)
        b2 = conv(conv(conv(x, cin, half), half, half, 3, 2, 1, half, False), half, half)
        x = shuffle(concat([b1, b2]), c, s)
        for _ in range(1, units):
            x1, x2 = name("sp"), name("sp")
            nodes.append(helper.make_node("Split", [x, const(np.array([half, half], np.int64))], [x1, x2], axis=1))
            b = conv(conv(conv(x2, half, half), half, half, 3, 1, 1, half, False), half, half)
            x = shuffle(concat([x1, b]), c, s)
        cin = c
    x = conv(x, cin, 1024)
    cin = 1024
    for cout in (256, 128, 64):
        u = name("up")
        s *= 2
        nodes.append(helper.make_node("Resize", [x, "", const(np.array([1, 1, 2, 2], np.float32))], [u],
                                      mode="nearest"))
        d = conv(u, cin, 1, relu=False)
        if deform:
            w, y = name("w"), name("dc")
            inits.append(numpy_helper.from_array((rng.standard_normal((cin, 1, 3, 3)) * 0.1).astype(np.float32), w))
            nodes.append(helper.make_node("DeformConv", [u, w, concat([d] * 18)], [y], kernel_shape=[3, 3],
                                          pads=[1] * 4, group=cin, offset_group=1))
        else:
            y = conv(u, cin, cin, 3, 1, 1, cin, False)
        x = conv(y, cin, cout)
        cin = cout
    outs = [conv(conv(conv(x, 64, 64), 64, 64, 3, 1, 1, 64, False), 64, n, relu=False) for n in (classes, 2, 2)]
    graph = helper.make_graph(nodes, "codenet", [helper.make_tensor_value_info("img", TensorProto.FLOAT,
                                                                               [1, 3, size, size])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def main(rounds=30, per_round=1):
    """ms/frame of the numpy model on the synthetic program, interleaved with onnxruntime on the
    float ONNX (plain dw and DeformConv variants) so that all see the same machine load."""
    from runtime.engines.codenet_model import run_program
    from runtime.engines.codenet_program import pack_program
    layers, nbytes, img = shufflenet_codenet()
    program, weights = pack_program(layers)
    arena = np.zeros(nbytes, np.uint8)
    rng = np.random.default_rng(1)
    arena[img["off"]:img["off"] + 256 * 256 * 3] = rng.integers(0, 256, 256 * 256 * 3)
    run_program(program, weights, arena)
    try:
        import onnxruntime as ort
        opts = ort.SessionOptions()
        # ORT's worker threads spin after each run by default, stealing the cores from whatever runs
        # next in the process (here: the numpy model); switch that off for a fair interleaving
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sessions = {k: ort.InferenceSession(float_onnx(deform=k == "deform").SerializeToString(), opts,
                                            providers=["CPUExecutionProvider"]) for k in ("dw", "deform")}
    except ImportError:
        sessions = {}
    inp = rng.standard_normal((1, 3, 256, 256)).astype(np.float32)
    times = {"numpy": []}
    for k, sess in sessions.items():
        times[k] = []
        sess.run(None, {"img": inp})
    for _ in range(rounds):
        for _ in range(per_round):
            t0 = time.perf_counter()
            run_program(program, weights, arena)
            times["numpy"].append(time.perf_counter() - t0)
        for k, sess in sessions.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                sess.run(None, {"img": inp})
                times[k].append(time.perf_counter() - t0)
    prof = []
    run_program(program, weights, arena, profile=prof)
    prof = [(layers[i].name, p, t) for i, (_, p, t) in enumerate(prof)]
    paths = {}
    for name, path, t in prof:
        paths.setdefault(path, [0, 0.0])
        paths[path][0] += 1
        paths[path][1] += t
    print("layers {}  weights {} bytes  arena {} bytes".format(len(layers), weights.size, nbytes))
    med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    best = {k: 1e3 * float(min(v)) for k, v in times.items()}
    print("numpy model:                 median {:6.1f} ms/frame (min {:.1f})".format(med["numpy"], best["numpy"]))
    for k in sessions:
        print("onnxruntime float ({:6s}):   median {:6.1f} ms/frame (min {:.1f});  numpy fps / ort fps = "
              "{:.2f} (medians), {:.2f} (minima)".format(k, med[k], best[k], med[k] / med["numpy"],
                                                        best[k] / best["numpy"]))
    for path, (n, t) in sorted(paths.items()):
        print("  {:28s} {:3d} layers {:7.2f} ms".format(path, n, 1e3 * t))
    for name, path, t in sorted(prof, key=lambda r: -r[2])[:8]:
        print("  slowest {:14s} {:28s} {:6.2f} ms".format(name, path, 1e3 * t))


if __name__ == "__main__":
    main()
