"""The training side's integer forward of a QAT-trained CoDeNet: the third level of numerical truth.

From the trained torch model and its activation ranges alone (not from the compiled program), every
layer's integers are derived the way the engine's contract defines them (hls_src/codenet/FORMAT.md):
per-channel integer weights q = round(w / s_w), the int32 bias round(b / (s_in s_w)), the
requantization multiplier s_in s_w / s_out as the engine's (M, S) pair
(runtime.compiler.requant.mult_shift), then per layer

    acc = bias + sum w x;   r = (acc M + 2^(S-1)) >> S;   y = clamp(r + zp_out, lo, hi)

in exact integer arithmetic (float64 convolutions of integers below 2^53, int64 requantization).
The deformable layers read their dilation d (0..7) from the predictor's requantized output. The
result must equal the numpy engine model (and so the C-simulation) bit for bit on real frames;
tests/test_detector_training.py checks it.
"""
import numpy as np
import torch
import torch.nn.functional as F

from runtime.compiler.requant import mult_shift, pow2_shift

from .export import _fold, fold_conv_bn
from .network import _deform_taps, channel_shuffle
from .qat import FIRST_LAYER_W_BITS, W_BITS, weight_scale_np


class IntLayer:
    """One accumulating layer's integers (as the compiler derives them from the QONNX graph)."""

    def __init__(self, w32, b32, s_in, s_out, bits, lo, hi):
        cout = w32.shape[0]
        qmax = 2 ** (bits - 1) - 1
        ws32 = weight_scale_np(w32, bits)                                  # the exported Quant scale
        ws = ws32.astype(np.float64)
        self.w = np.clip(np.rint(w32.astype(np.float64) / ws.reshape((-1,) + (1,) * (w32.ndim - 1))),
                         -qmax - 1, qmax).astype(np.int64)
        effa = s_in * ws
        self.bias = np.rint(b32.astype(np.float64) / effa).astype(np.int64)
        ms = effa / s_out
        pow2 = [pow2_shift(m) for m in ms]
        if all(p is not None for p in pow2):
            self.mult, self.shift = np.ones(cout, np.int64), np.array(pow2, np.int64)
        else:
            ms_pairs = [mult_shift(m)[:2] for m in ms]
            self.mult = np.array([p[0] for p in ms_pairs], np.int64)
            self.shift = np.array([p[1] for p in ms_pairs], np.int64)
        self.lo, self.hi = lo, hi

    def requant(self, acc):
        """acc: int64 (N, C, H, W) including the bias -> the stored integers."""
        m = torch.as_tensor(self.mult).view(1, -1, 1, 1)
        s = torch.as_tensor(self.shift).view(1, -1, 1, 1)
        t = acc * m
        half = torch.where(s > 0, torch.ones_like(s) << (s - 1).clamp(min=0), torch.zeros_like(s))
        r = (t + half) >> s
        return r.clamp(self.lo, self.hi)

    def conv(self, x, stride=1, pad=0, groups=1):
        """x: int64 tensor -> requantized int64 tensor."""
        w = torch.as_tensor(self.w, dtype=torch.float64)
        acc = F.conv2d(x.double(), w, None, stride, pad, 1, groups).round().long()
        return self.requant(acc + torch.as_tensor(self.bias).view(1, -1, 1, 1))


class IntegerCoDeNet:
    """model: a CoDeNet with QAT enabled and calibrated ranges (model.qs.ranges)."""

    def __init__(self, model):
        self.m = model
        self.ranges = model.qs.ranges

    def scale(self, group, signed):
        if group == "input":
            return 1.0
        mx = max(float(self.ranges[group]), 1e-8)
        return float(np.float32(mx / (127.0 if signed else 255.0)))

    def convbn(self, x, m, s_in, bits=W_BITS):
        w, b = fold_conv_bn(m)
        signed = not m.relu
        s_out = self.scale(m.qgroup, signed)
        lo, hi = (-128, 127) if signed else (0, 255)
        c = m.conv
        y = IntLayer(w, b, s_in, s_out, bits, lo, hi).conv(x, c.stride[0], c.padding[0], c.groups)
        return y, s_out

    def unit(self, x, u, s_in):
        b2 = u.branch2
        if u.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            y, s = self.convbn(x2, b2[0], s_in)
            y, s = self.convbn(y, b2[1], s)
            y, s = self.convbn(y, b2[2], s)
            out = torch.cat((x1, y), 1)
        else:
            y1, s1 = self.convbn(x, u.branch1[0], s_in)
            y1, _ = self.convbn(y1, u.branch1[1], s1)
            y, s = self.convbn(x, b2[0], s_in)
            y, s = self.convbn(y, b2[1], s)
            y, s = self.convbn(y, b2[2], s)
            out = torch.cat((y1, y), 1)
        return channel_shuffle(out, 2), s

    def decoder(self, x, blk, s_in):
        w, b = _fold(blk.dw.weight, None, blk.dw_bn)
        s_dw = self.scale(blk.qgroup, True)
        dw = IntLayer(w, b, s_in, s_dw, W_BITS, -128, 127)
        if blk.deformable:
            wd = blk.dil.weight.detach().float().numpy()
            bd = blk.dil.bias.detach().float().numpy()
            d = IntLayer(wd, bd, s_in, 1.0, W_BITS, 0, 7).conv(x)           # the stored byte is d
            n, c, h, wd_ = x.shape
            acc = _deform_taps(x.double(), d.reshape(n, h, wd_), torch.as_tensor(dw.w, dtype=torch.float64))
            y = dw.requant(acc.round().long() + torch.as_tensor(dw.bias).view(1, -1, 1, 1))
            self.dilations.append(d)
        else:
            y = dw.conv(x, 1, 1, x.shape[1])
        y, s = self.convbn(y, blk.pw, s_dw)
        return F.interpolate(y.double(), scale_factor=2, mode="nearest").long(), s

    def head(self, x, hd, s_in):
        y, s = self.convbn(x, hd.pw1, s_in)
        y, s = self.convbn(y, hd.dw, s)
        w = hd.out.weight.detach().float().numpy()
        b = hd.out.bias.detach().float().numpy()
        s_out = self.scale(hd.qgroup, True)
        return IntLayer(w, b, s, s_out, hd.out_bits, -128, 127).conv(y), s_out

    @torch.no_grad()
    def __call__(self, image_u8):
        """image_u8: uint8 (N, 3, S, S) RGB -> {"heatmap", "size", "offset": (int64 (N, C, S/4, S/4),
        scale)}; self.dilations: the d maps of the deformable layers."""
        m = self.m
        self.dilations = []
        x = torch.as_tensor(np.asarray(image_u8)).long()
        x, s = self.convbn(x, m.conv1, 1.0, FIRST_LAYER_W_BITS)
        for stage in m.stages:
            for u in stage:
                x, s = self.unit(x, u, s)
        x, s = self.convbn(x, m.conv5, s)
        for blk in m.decoder:
            x, s = self.decoder(x, blk, s)
        return {name: self.head(x, hd, s) for name, hd in (("heatmap", m.hm), ("size", m.wh), ("offset", m.reg))}
