"""Quantization-aware training of CoDeNet in the engine's W4A8 arithmetic.

`enable_qat(model)` gives every module of a `network.CoDeNet` the same quantization points, in the
same groups, as the QONNX graph that `export.GraphBuilder` writes, so the trained model exports
with exactly the scales it was trained with:

* weights: per output channel, symmetric, scale = r_o * max|w_o| / (2^(b-1) - 1) with the clip
  ratio r_o from CLIP_RATIOS that minimises the channel's squared quantization error (at 4 bits
  clipping the few largest weights is cheaper than the coarse grid max|w| gives everyone),
  b = 8 for the first layer, 4 elsewhere except the heads' output 1x1 convs (`head_out_bits` of
  the model: 4, or 8 as the shipped detector), BatchNorm folded first (frozen statistics, as
  exported). `weight_scale_np` is the exported scale (export and the integer forward use it);
  the torch twin used while training picks the same ratios up to float rounding;
* activations: 8 bits, zero point 0, scale = range / 255 after a ReLU and range / 127 otherwise;
  one range per group (the tensors meeting at a ShuffleNet stage's Concat share one), taken as an
  exponential moving average of the batch maximum while `QuantState.calibrating`, then frozen;
* rounding half to even (QONNX "ROUND" = torch.round), straight-through gradients inside the clip
  range.

The deformable decoder's dilation d = clamp(round(z), 0, 7) stays an integer from the predictor's
output z (the engine computes it from its accumulator).

Why our own modules and not Brevitas: the engine's integer contract (one shared scale for every
tensor of a Concat group, the integer-dilation deformable conv, BatchNorm folded before the 4-bit
weight quantizer, per-layer bit widths) is the whole model here, and `export.GraphBuilder` already
writes the compiler's fixed QONNX patterns; the quantizers above are a few lines each and export
needs no translation layer.

Accumulator safety (A2Q): the engine accumulates in ACC_BITS = 24 bits. For every output channel
the compiler requires ||q_o||_1 * 255 + |bias_o| <= 2^23 - 1 (8-bit inputs, the zero point in the
bias). `a2q_project` enforces it during training on the integer bias (the 4-bit weights of the
widest layer, 1024 inputs, use at most 7 * 1024 * 255 = 1.83M of the 8.39M budget), and
`accumulator_report` prints each layer's worst margin.
"""
import numpy as np
import torch
import torch.nn as nn

from runtime.engines import codenet_config as engine_cfg

from .network import CoDeNet, ConvBN

ACT_BITS = 8
FIRST_LAYER_W_BITS = 8
W_BITS = 4
RANGE_MOMENTUM = 0.9
ACC_LIMIT = 2 ** (engine_cfg.ACC_BITS - 1) - 1
IN_MAX = 255                      # the compiler's bound on |input byte| (raw bytes, signed or not)


CLIP_RATIOS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5)


def weight_scale_np(w, bits):
    """float32 weights (Cout, ...) -> float32 per-channel scales (Cout,): the clip ratio of
    CLIP_RATIOS with the least squared error, the larger ratio on a tie. The QONNX export writes
    these scales; the compiler and the integer forward read them."""
    qmax = 2 ** (bits - 1) - 1
    w = np.asarray(w, np.float32).reshape(w.shape[0], -1)
    mx = np.maximum(np.abs(w).max(axis=1), np.float32(1e-12))
    best, best_err = None, None
    for r in CLIP_RATIOS:
        sc = (mx * np.float32(r) / np.float32(qmax)).astype(np.float32)
        q = np.clip(np.rint(w / sc[:, None]), -qmax - 1, qmax) * sc[:, None]
        err = ((q - w).astype(np.float64) ** 2).sum(axis=1)
        if best is None:
            best, best_err = sc, err
        else:
            better = err < best_err
            best, best_err = np.where(better, sc, best), np.where(better, err, best_err)
    return best.astype(np.float32)


def _round_ste(x):
    return x + (torch.round(x) - x).detach()


def fake_quant(x, scale, lo, hi):
    """clip(round(x / scale), lo, hi) * scale with a straight-through gradient inside the clip."""
    return _round_ste(torch.clamp(x / scale, lo, hi)) * scale


class QuantState:
    """Shared by every module of one model: activation ranges per group, folding, quantizers."""

    def __init__(self):
        self.active = False
        self.calibrating = False
        self.ranges = {}

    @staticmethod
    def fold(weight, bias, bn):
        """(weight, bias) with the BatchNorm folded in, from its running statistics."""
        s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        w = weight * s.view(-1, 1, 1, 1)
        b = bn.bias - bn.running_mean * s
        if bias is not None:
            b = b + bias * s
        return w, b

    @staticmethod
    @torch.no_grad()
    def weight_scale(w, bits):
        """The torch twin of weight_scale_np, shape (Cout, 1, 1, 1)."""
        qmax = 2 ** (bits - 1) - 1
        w = w.detach().reshape(w.shape[0], -1)
        mx = w.abs().amax(dim=1).clamp(min=1e-12)
        best, best_err = None, None
        for r in CLIP_RATIOS:
            sc = mx * r / qmax
            err = ((torch.clamp(torch.round(w / sc[:, None]), -qmax - 1, qmax) * sc[:, None] - w) ** 2).sum(dim=1)
            if best is None:
                best, best_err = sc, err
            else:
                better = err < best_err
                best, best_err = torch.where(better, sc, best), torch.where(better, err, best_err)
        return best.view(-1, 1, 1, 1)

    def weight(self, w, bits):
        qmax = 2 ** (bits - 1) - 1
        return fake_quant(w, self.weight_scale(w, bits), -qmax - 1, qmax)

    def act_scale(self, group, signed):
        return max(float(self.ranges[group]), 1e-8) / (127.0 if signed else 255.0)

    def act(self, x, group, signed):
        if self.calibrating:
            m = float(x.detach().abs().max())
            old = self.ranges.get(group)
            self.ranges[group] = m if old is None else RANGE_MOMENTUM * old + (1 - RANGE_MOMENTUM) * m
        scale = float(np.float32(self.act_scale(group, signed)))
        lo, hi = (-128, 127) if signed else (0, 255)
        return fake_quant(x, scale, lo, hi)


def group_names(model):
    """{module: quantization group} in export.GraphBuilder's naming."""
    names = {model.conv1: "conv1"}
    for si, stage in enumerate(model.stages):
        sg = "stage{}".format(si + 2)
        for ui, u in enumerate(stage):
            base = "stage{}_unit{}".format(si + 2, ui)
            b2 = u.branch2
            names[b2[0]] = base + "_b2pw1"
            names[b2[1]] = base + "_b2dw"
            names[b2[2]] = sg
            if u.branch1 is not None:
                names[u.branch1[0]] = base + "_b1dw"
                names[u.branch1[1]] = sg
    names[model.conv5] = "conv5"
    for bi, blk in enumerate(model.decoder):
        names[blk] = "dec{}_dw".format(bi)
        names[blk.pw] = "dec{}_pw".format(bi)
    for hname, hd in (("head_hm", model.hm), ("head_wh", model.wh), ("head_reg", model.reg)):
        names[hd.pw1] = hname + "_pw1"
        names[hd.dw] = hname + "_dw"
        names[hd] = hname + "_out"
    return names


def enable_qat(model, ranges=None):
    """Attach one QuantState to every quantizing module (QAT off until `qs.active = True`)."""
    assert isinstance(model, CoDeNet)
    qs = QuantState()
    if ranges:
        qs.ranges = dict(ranges)
    for mod, g in group_names(model).items():
        mod.qs = qs
        mod.qgroup = g
        if isinstance(mod, ConvBN):
            mod.w_bits = FIRST_LAYER_W_BITS if mod is model.conv1 else W_BITS
    model.qs = qs
    return qs


def freeze_bn(model):
    """BatchNorm in eval mode (QAT folds it with frozen statistics)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


@torch.no_grad()
def calibrate_ranges(model, batches):
    """Activation ranges (EMA of the batch maxima) over `batches` of float images 0..255."""
    qs = model.qs
    qs.ranges = {}
    qs.active = qs.calibrating = True
    was = model.training
    model.eval()
    try:
        for x in batches:
            model(x)
    finally:
        qs.calibrating = False
        model.train(was)
    return dict(qs.ranges)


def _quant_layers(model):
    """(name, conv weight, bias, bn or None, w_bits, input group) of every accumulating layer, the
    input group telling the input scale."""
    out = []
    gn = group_names(model)

    def add(name, w, b, bn, bits):
        out.append((name, w, b, bn, bits))

    add("conv1", model.conv1.conv.weight, None, model.conv1.bn, FIRST_LAYER_W_BITS)
    for m, g in gn.items():
        if isinstance(m, ConvBN) and m is not model.conv1:
            add(g, m.conv.weight, None, m.bn, W_BITS)
    for bi, blk in enumerate(model.decoder):
        add("dec{}_dw".format(bi), blk.dw.weight, None, blk.dw_bn, W_BITS)
        if blk.deformable:
            add("dec{}_dil".format(bi), blk.dil.weight, blk.dil.bias, None, W_BITS)
    for hname, hd in (("head_hm", model.hm), ("head_wh", model.wh), ("head_reg", model.reg)):
        add(hname + "_out", hd.out.weight, hd.out.bias, None, hd.out_bits)
    return out


@torch.no_grad()
def weight_l1(model):
    """{layer: max over output channels of ||q_o||_1} of the quantized weights."""
    res = {}
    for name, w, b, bn, bits in _quant_layers(model):
        if bn is not None:
            w, _ = QuantState.fold(w, b, bn)
        s = QuantState.weight_scale(w, bits)
        q = torch.round(w / s)
        res[name] = int(q.abs().sum(dim=(1, 2, 3)).max())
    return res


def accumulator_report(model):
    """[(layer, worst ||q||_1 * 255, budget 2^23 - 1)]: the weight part of the A2Q bound."""
    return [(n, l1 * IN_MAX, ACC_LIMIT) for n, l1 in weight_l1(model).items()]


@torch.no_grad()
def a2q_project(model):
    """Keep every layer inside the 24-bit accumulator: the weights' worst case ||q||_1 * 255 must
    leave room for the bias; raises if a layer's weights alone exceed the budget (cannot happen
    with 4-bit weights up to 4,681 inputs). Returns the smallest remaining margin (accumulator
    units) over all layers."""
    worst = ACC_LIMIT
    for name, l1x in ((n, v) for n, v, _ in accumulator_report(model)):
        if l1x > ACC_LIMIT:
            raise ValueError("layer {}: ||q||_1 * 255 = {} exceeds the 24-bit accumulator".format(name, l1x))
        worst = min(worst, ACC_LIMIT - l1x)
    return worst
