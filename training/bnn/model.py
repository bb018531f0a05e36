"""Binarized CNN of the BNN overlay (hls_src/bnn/FORMAT.md), its exact folding and integer forward.

Three pieces, all in PyTorch:

* `BnnNet`: the float training model. Latent float weights are binarized with a straight-through
  estimator (sign, clipped-identity gradient); every hidden layer is conv/fc -> BatchNorm -> sign;
  the output layer is `score = acc * 2**shift + bias` with `shift` (per class, 0..7) and `bias`
  trained through rounding STEs, so the float model already is the multiplier-free network.
  The network sees the raw pixels 0..255 (float), exactly what the hardware receives.
* `fold(model) -> layers`: BatchNorm + sign -> one integer threshold per channel (weights of a
  channel with a decreasing BN are inverted), output layer -> integer shift + bias. The layers dict
  is the one `runtime.engines.bnn_format.pack_params` takes.
* `integer_forward(layers, images) -> int32 scores`: the hardware integers (conv0 signed
  accumulate, XNOR-popcount, OR pooling, shift + bias), computed with torch integer tensors.

Exactness of the fold. In eval mode the float model decides a hidden bit with
`bn_affine_eval(acc) >= 0`, a fixed sequence of float64 element-wise operations
(`(acc - mean) * scale + beta`, `scale = gamma / sqrt(var + eps)`); every accumulator is an integer
in a small known range, and IEEE rounding is monotone, so the decision is a monotone step in
`acc`. `fold` evaluates that same function on every reachable accumulator value and reads off the
step, hence the folded thresholds reproduce the float decisions bit for bit, ties at the threshold,
zero gamma and negative gamma included (no ceil/floor reasoning that could be off by one).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

IN_H, IN_W, IN_C = 28, 28, 1
C0, C1, C2, C3, F0, NUM_CLASSES = 32, 32, 64, 64, 256, 10
CONV_NAMES = ("conv0", "conv1", "conv2", "conv3")
LAYER_NAMES = CONV_NAMES + ("fc0", "fc1")
SHIFT_MAX = 7
BIAS_LIMIT = 1 << 20
PIXEL_MAX = 255


# --------------------------------------------------------------------------- STE primitives

class _SignSTE(torch.autograd.Function):
    """sign with sign(0) = +1 (bit 1 <=> value >= 0); gradient: identity clipped to |x| <= 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


def sign_ste(x):
    return _SignSTE.apply(x)


def round_ste(x):
    return _RoundSTE.apply(x)


def binarize(w):
    """+-1 values of latent weights (no gradient path): w >= 0 -> +1."""
    return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))


# --------------------------------------------------------------------------- float model

def bn_affine_eval(acc, bn, shape):
    """Eval-mode BatchNorm of integer accumulators as a fixed float64 op sequence.

    `shape` views the per-channel vectors for broadcasting (e.g. (1, C, 1, 1)). This is THE
    reference decision of the float model in eval mode (bit = result >= 0); `fold` evaluates the
    very same function, so the folded thresholds are exact.
    """
    mean = bn.running_mean.detach().double().view(shape)
    var = bn.running_var.detach().double().view(shape)
    gamma = bn.weight.detach().double().view(shape)
    beta = bn.bias.detach().double().view(shape)
    scale = gamma / torch.sqrt(var + bn.eps)
    t = acc.double() - mean
    t = t * scale
    return t + beta


class BnnNet(nn.Module):
    """FORMAT.md topology; input float (N, 1, 28, 28) with raw pixel values 0..255."""

    def __init__(self, init_scale=0.05):
        super().__init__()
        self.w_conv = nn.ParameterList()
        chans = [(C0, IN_C), (C1, C0), (C2, C1), (C3, C2)]
        for cout, cin in chans:
            self.w_conv.append(nn.Parameter(torch.empty(cout, cin, 3, 3).uniform_(-init_scale, init_scale)))
        self.w_fc0 = nn.Parameter(torch.empty(F0, 4 * 4 * C3).uniform_(-init_scale, init_scale))
        self.w_fc1 = nn.Parameter(torch.empty(NUM_CLASSES, F0).uniform_(-init_scale, init_scale))
        self.bn = nn.ModuleList([nn.BatchNorm2d(c) for c, _ in chans] + [nn.BatchNorm1d(F0)])
        # Output layer: score = acc * 2**round(log2_scale) + round(bias); a global temperature is
        # applied in the loss only (it does not change the argmax).
        self.log2_scale = nn.Parameter(torch.full((NUM_CLASSES,), 2.0))
        self.bias = nn.Parameter(torch.zeros(NUM_CLASSES))
        self.log_temp = nn.Parameter(torch.tensor(math.log(16.0)))

    def latent_weights(self):
        return list(self.w_conv) + [self.w_fc0, self.w_fc1]

    @torch.no_grad()
    def clip_latent(self):
        for w in self.latent_weights():
            w.clamp_(-1.0, 1.0)
        self.log2_scale.clamp_(0.0, float(SHIFT_MAX))
        self.bias.clamp_(-BIAS_LIMIT + 1, BIAS_LIMIT - 1)

    def out_shift(self):
        return round_ste(self.log2_scale.clamp(0.0, float(SHIFT_MAX)))

    def _hidden(self, acc, i, pool, exact):
        bn = self.bn[i]
        shape = (1, -1, 1, 1) if acc.dim() == 4 else (1, -1)
        if self.training:
            y = bn(acc)
            if pool:
                y = F.max_pool2d(y, 2)      # sign is monotone: pool-then-sign == sign-then-OR
            return sign_ste(y)
        if exact:
            y = bn_affine_eval(acc, bn, shape)
        else:
            y = bn(acc)                     # plain float32 BatchNorm kernel (for comparison)
        a = torch.where(y >= 0, 1.0, -1.0).to(acc.dtype)
        if pool:
            a = F.max_pool2d(a, 2)          # OR on bits
        return a

    @torch.no_grad()
    def hidden_bits(self, x, exact=True):
        """Eval mode: the hidden activations as uint8 bits, NHWC, keyed like `integer_hidden`."""
        assert not self.training
        out = {}
        a = x
        for i in range(4):
            a = self._hidden(F.conv2d(a, binarize(self.w_conv[i])), i, pool=i in (1, 3), exact=exact)
            out["pool{}".format(i // 2) if i in (1, 3) else CONV_NAMES[i]] = a
        a = a.permute(0, 2, 3, 1).flatten(1)
        out["fc0"] = self._hidden(F.linear(a, binarize(self.w_fc0)), 4, pool=False, exact=exact)
        return {k: ((v.permute(0, 2, 3, 1) if v.dim() == 4 else v) > 0).to(torch.uint8)
                for k, v in out.items()}

    def forward(self, x, exact=True):
        """Scores (float; integers in eval mode). `exact` picks the float64 BN eval path."""
        a = x
        for i in range(4):
            acc = F.conv2d(a, sign_ste(self.w_conv[i]))
            a = self._hidden(acc, i, pool=i in (1, 3), exact=exact)
        a = a.permute(0, 2, 3, 1).flatten(1)          # NHWC flatten (y, x, c)
        a = self._hidden(F.linear(a, sign_ste(self.w_fc0)), 4, pool=False, exact=exact)
        acc = F.linear(a, sign_ste(self.w_fc1))
        return acc * torch.pow(2.0, self.out_shift()) + round_ste(self.bias)

    def loss_logits(self, scores):
        return scores / torch.exp(self.log_temp)


# --------------------------------------------------------------------------- folding

def _step_threshold(bits, values):
    """bits (V, C) bool of a monotone step over ascending `values` (V,).

    Returns (first_on (C,), flip (C,) bool, const (C,) in {-1: never, 0: step, 1: always}) where
    for flip=False bit <=> value >= first_on, for flip=True bit <=> value <= last_on (returned in
    first_on's place).
    """
    b = bits.to(torch.int8)
    d = b[1:] - b[:-1]
    nondec = (d >= 0).all(0)
    noninc = (d <= 0).all(0)
    if not bool((nondec | noninc).all()):
        raise ArithmeticError("BatchNorm decision is not monotone in the accumulator")
    any_on = bits.any(0)
    all_on = bits.all(0)
    const = torch.zeros(bits.shape[1], dtype=torch.int64)
    const[all_on] = 1
    const[~any_on] = -1
    flip = noninc & ~nondec                  # strictly decreasing step (constant: no flip)
    idx = torch.arange(len(values)).view(-1, 1).expand_as(bits)
    first = torch.where(bits, idx, torch.full_like(idx, len(values))).min(0).values
    last = torch.where(bits, idx, torch.full_like(idx, -1)).max(0).values
    on = torch.where(flip, last, first).clamp(0, len(values) - 1)
    return values[on], flip, const


@torch.no_grad()
def fold_hidden(acc_values, bn, k=None):
    """Thresholds for one hidden layer.

    acc_values: ascending int64 tensor of every reachable accumulator value.
    k: None for conv0 (threshold on the signed accumulator), else K of a binary layer (threshold
       on the popcount, acc = 2*pop - K).
    Returns (thresholds int32 (C,), flip bool (C,)).
    """
    y = bn_affine_eval(acc_values.view(-1, 1), bn, (1, -1))
    bits = y >= 0
    on, flip, const = _step_threshold(bits, acc_values)
    # threshold on the (possibly negated) accumulator: acc' >= A
    a = torch.where(flip, -on, on)
    lo, hi = int(acc_values[0]), int(acc_values[-1])
    a = torch.where(const == 1, torch.full_like(a, min(lo, -hi)), a)
    a = torch.where(const == -1, torch.full_like(a, max(hi, -lo) + 1), a)
    if k is None:
        t = a
    else:
        # pop >= (A + K) / 2; A has the parity of K except for the 'never' case (K + 1 -> ceil)
        t = torch.div(a + k + 1, 2, rounding_mode="floor")
    return t.to(torch.int32), flip


@torch.no_grad()
def fold(model):
    """BnnNet (any mode; running stats are used) -> layers dict of numpy arrays for pack_params."""
    import numpy as np
    layers = {}
    model = model.cpu()
    for i, name in enumerate(CONV_NAMES):
        w = binarize(model.w_conv[i]).to(torch.int64)          # (Cout, Cin, 3, 3)
        cin = w.shape[1]
        if i == 0:
            lim = 9 * cin * PIXEL_MAX
            t, flip = fold_hidden(torch.arange(-lim, lim + 1), model.bn[i], None)
        else:
            k = 9 * cin
            t, flip = fold_hidden(torch.arange(-k, k + 1, 2), model.bn[i], k)
        w = torch.where(flip.view(-1, 1, 1, 1), -w, w)
        layers[name] = {"weights": w.permute(0, 2, 3, 1).numpy().astype(np.int8),
                        "thresholds": t.numpy().astype(np.int32)}
    w = binarize(model.w_fc0).to(torch.int64)
    k = w.shape[1]
    t, flip = fold_hidden(torch.arange(-k, k + 1, 2), model.bn[4], k)
    w = torch.where(flip.view(-1, 1), -w, w)
    layers["fc0"] = {"weights": w.numpy().astype(np.int8), "thresholds": t.numpy().astype(np.int32)}
    shift = torch.round(model.log2_scale.clamp(0.0, float(SHIFT_MAX))).to(torch.int64)
    bias = torch.round(model.bias).to(torch.int64).clamp(-BIAS_LIMIT, BIAS_LIMIT)
    layers["fc1"] = {"weights": binarize(model.w_fc1).numpy().astype(np.int8),
                     "shift": shift.numpy().astype(np.int32),
                     "bias": bias.numpy().astype(np.int32)}
    return layers


# --------------------------------------------------------------------------- integer forward

def _as_int(x, dtype=torch.int32):
    if not torch.is_tensor(x):
        x = torch.as_tensor(x)
    return x.to(dtype)


def _patches(x):
    """x (N, H, W, C) -> (N, H-2, W-2, 9*C), input index b = (ky*3 + kx)*C + ci."""
    h, w = x.shape[1] - 2, x.shape[2] - 2
    return torch.cat([x[:, ky:ky + h, kx:kx + w, :] for ky in range(3) for kx in range(3)], dim=-1)


def conv0_layer(images, weights, thresholds):
    """images uint8 (N, H, W, Cin); weights +-1 (Cout, 3, 3, Cin); thresholds int (Cout,).

    acc = sum(w_bit ? +p : -p) (signed), bit = acc >= T. Returns uint8 bits (N, H-2, W-2, Cout).
    """
    x = _as_int(images)
    w = _as_int(weights).reshape(weights.shape[0], -1)
    acc = torch.matmul(_patches(x), w.t())
    return (acc >= _as_int(thresholds)).to(torch.uint8)


def popcount_matches(bits, weights):
    """bits 0/1 (..., K); weights +-1 (Cout, K) -> number of XNOR matches (..., Cout)."""
    a = 2 * _as_int(bits) - 1
    w = _as_int(weights)
    acc = torch.matmul(a, w.t())                    # = 2*pop - K
    k = w.shape[1]
    return torch.div(acc + k, 2, rounding_mode="floor")


def binconv_layer(bits, weights, thresholds):
    """bits 0/1 (N, H, W, Cin); weights +-1 (Cout, 3, 3, Cin) -> bits (N, H-2, W-2, Cout), pop >= T."""
    w = _as_int(weights).reshape(weights.shape[0], -1)
    pop = popcount_matches(_patches(_as_int(bits)), w)
    return (pop >= _as_int(thresholds)).to(torch.uint8)


def pool_or(bits):
    """2x2 stride-2 OR pooling of bits (N, H, W, C)."""
    b = _as_int(bits)
    n, h, w, c = b.shape
    h2, w2 = h // 2, w // 2                         # an odd last row / column is dropped
    b = b[:, :2 * h2, :2 * w2, :]
    return b.reshape(n, h2, 2, w2, 2, c).amax(dim=(2, 4)).to(torch.uint8)


def fc_layer(bits, weights, thresholds):
    """bits 0/1 (N, K); weights +-1 (Cout, K) -> bits (N, Cout), pop >= T."""
    return (popcount_matches(bits, weights) >= _as_int(thresholds)).to(torch.uint8)


def fc_out_layer(bits, weights, shift, bias):
    """Output layer: acc = 2*pop - K, score = (acc << shift) + bias, int32 (N, classes)."""
    w = _as_int(weights)
    acc = 2 * popcount_matches(bits, w) - w.shape[1]
    return (torch.bitwise_left_shift(acc, _as_int(shift)) + _as_int(bias)).to(torch.int32)


@torch.no_grad()
def integer_hidden(layers, images):
    """Hidden bits of the integer network (conv0, pool0 (after conv1), conv2, pool1, fc0)."""
    imgs = torch.as_tensor(images)
    if imgs.dim() == 3:
        imgs = imgs.unsqueeze(-1)
    L = {name: {k: torch.as_tensor(v) for k, v in layer.items()} for name, layer in layers.items()}
    out = {"conv0": conv0_layer(imgs, L["conv0"]["weights"], L["conv0"]["thresholds"])}
    out["pool0"] = pool_or(binconv_layer(out["conv0"], L["conv1"]["weights"], L["conv1"]["thresholds"]))
    out["conv2"] = binconv_layer(out["pool0"], L["conv2"]["weights"], L["conv2"]["thresholds"])
    out["pool1"] = pool_or(binconv_layer(out["conv2"], L["conv3"]["weights"], L["conv3"]["thresholds"]))
    out["fc0"] = fc_layer(out["pool1"].reshape(imgs.shape[0], -1), L["fc0"]["weights"], L["fc0"]["thresholds"])
    return out


@torch.no_grad()
def integer_forward(layers, images, batch=256):
    """Hardware integers: images uint8 (N, 28, 28[, 1]) -> int32 scores (N, 10) (torch tensor)."""
    imgs = torch.as_tensor(images)
    if imgs.dim() == 3:
        imgs = imgs.unsqueeze(-1)
    L = {name: {k: torch.as_tensor(v) for k, v in layer.items()} for name, layer in layers.items()}
    out = []
    for s in range(0, imgs.shape[0], batch):
        x = imgs[s:s + batch]
        a = conv0_layer(x, L["conv0"]["weights"], L["conv0"]["thresholds"])
        a = binconv_layer(a, L["conv1"]["weights"], L["conv1"]["thresholds"])
        a = pool_or(a)
        a = binconv_layer(a, L["conv2"]["weights"], L["conv2"]["thresholds"])
        a = binconv_layer(a, L["conv3"]["weights"], L["conv3"]["thresholds"])
        a = pool_or(a)
        a = a.reshape(a.shape[0], -1)                # NHWC flatten
        a = fc_layer(a, L["fc0"]["weights"], L["fc0"]["thresholds"])
        out.append(fc_out_layer(a, L["fc1"]["weights"], L["fc1"]["shift"], L["fc1"]["bias"]))
    if not out:
        return torch.zeros((0, NUM_CLASSES), dtype=torch.int32)
    return torch.cat(out)
