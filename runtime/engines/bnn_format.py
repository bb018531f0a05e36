"""Pack / unpack / validate the BNN parameter buffer (contract: hls_src/bnn/FORMAT.md).

`layers` is a dict:
    {"conv0".."conv3": {"weights": int8 +-1 (Cout, 3, 3, Cin), "thresholds": int32 (Cout,)},
     "fc0":  {"weights": +-1 (F0, FC_IN) in NHWC-flatten input order, "thresholds": int32 (F0,)},
     "fc1":  {"weights": +-1 (NUM_CLASSES, F0), "shift": (NUM_CLASSES,) 0..7,
              "bias": (NUM_CLASSES,) |bias| <= 2^20}}
The buffer is a little-endian uint64 array of PARAM_WORDS words.
"""
import numpy as np

from . import bnn_config as cfg

WORD = np.dtype("<u8")

# (name, Cout, K, weight shape after Cout, input-channels per tap) in buffer order
THRESHOLD_LAYERS = (
    ("conv0", cfg.C0, cfg.K0, (3, 3, cfg.IN_C)),
    ("conv1", cfg.C1, cfg.K1, (3, 3, cfg.C0)),
    ("conv2", cfg.C2, cfg.K2, (3, 3, cfg.C1)),
    ("conv3", cfg.C3, cfg.K3, (3, 3, cfg.C2)),
    ("fc0", cfg.F0, cfg.KF0, (cfg.FC_IN,)),
)
OUTPUT_LAYER = ("fc1", cfg.NUM_CLASSES, cfg.KF1, (cfg.F0,))
LAYER_NAMES = tuple(name for name, _, _, _ in THRESHOLD_LAYERS) + ("fc1",)


def _words_per_row(k):
    return (k + 63) // 64


def layout():
    """[(name, section, start, stop)] word ranges of every section (section: weights / thresholds /
    shift_bias), in buffer order after the magic word."""
    out, pos = [], 1
    for name, cout, k, _ in THRESHOLD_LAYERS:
        n = cout * _words_per_row(k)
        out.append((name, "weights", pos, pos + n))
        pos += n
        out.append((name, "thresholds", pos, pos + cout // 2))
        pos += cout // 2
    name, cout, k, _ = OUTPUT_LAYER
    n = cout * _words_per_row(k)
    out.append((name, "weights", pos, pos + n))
    pos += n
    out.append((name, "shift_bias", pos, pos + cout))
    pos += cout
    assert pos == cfg.PARAM_WORDS, (pos, cfg.PARAM_WORDS)
    return out


_LAYOUT = layout()


def _section(name, section):
    for n, s, a, b in _LAYOUT:
        if n == name and s == section:
            return a, b
    raise KeyError((name, section))


# ---------------------------------------------------------------- bit rows
def pack_rows(bits):
    """(Cout, K) array of 0/1 (or bool) -> (Cout, ceil(K/64)) little-endian uint64 rows,
    input b = bit b % 64 of word b / 64, bits past K zero."""
    bits = np.asarray(bits)
    cout, k = bits.shape
    nw = _words_per_row(k)
    padded = np.zeros((cout, nw * 64), dtype=np.uint8)
    padded[:, :k] = bits != 0
    packed = np.packbits(padded, axis=1, bitorder="little")          # (Cout, nw * 8) bytes
    return np.ascontiguousarray(packed).view(WORD).reshape(cout, nw)


def unpack_rows(rows, k):
    """(Cout, nw) uint64 rows -> (Cout, K) uint8 0/1."""
    rows = np.ascontiguousarray(rows, dtype=WORD)
    cout = rows.shape[0]
    bits = np.unpackbits(rows.view(np.uint8).reshape(cout, -1), axis=1, bitorder="little")
    return bits[:, :k]


def pm1_to_bits(weights):
    return (np.asarray(weights) > 0).astype(np.uint8)


def bits_to_pm1(bits):
    return (np.asarray(bits, dtype=np.int8) * 2 - 1).astype(np.int8)


# ---------------------------------------------------------------- checks on the layers dict
def _check_pm1(name, w, shape):
    w = np.asarray(w)
    if w.shape != shape:
        raise ValueError("{}: weights have shape {}, expected {}".format(name, w.shape, shape))
    if not np.issubdtype(w.dtype, np.number):
        raise ValueError("{}: weights must be numeric +-1, got dtype {}".format(name, w.dtype))
    if not np.all((w == 1) | (w == -1)):
        raise ValueError("{}: weights must all be +1 or -1".format(name))
    return w


def _check_int(name, what, v, shape, lo, hi):
    v = np.asarray(v)
    if v.shape != shape:
        raise ValueError("{}: {} have shape {}, expected {}".format(name, what, v.shape, shape))
    if not np.issubdtype(v.dtype, np.integer):
        if not (np.issubdtype(v.dtype, np.floating) and np.all(np.isfinite(v)) and np.all(v == np.round(v))):
            raise ValueError("{}: {} must be integers, got dtype {}".format(name, what, v.dtype))
    v = v.astype(np.int64)
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError("{}: {} must lie in {} .. {}, got {} .. {}".format(
            name, what, lo, hi, int(v.min()), int(v.max())))
    return v


def pack_params(layers):
    """The layers dict (module docstring) -> the PARAM_WORDS-word uint64 parameter buffer."""
    missing = [n for n in LAYER_NAMES if n not in layers]
    if missing:
        raise ValueError("layers: missing layer(s) {}".format(", ".join(missing)))
    words = np.zeros(cfg.PARAM_WORDS, dtype=WORD)
    words[0] = cfg.BNN_MAGIC
    for name, cout, k, tail in THRESHOLD_LAYERS:
        lay = layers[name]
        w = _check_pm1(name, lay["weights"], (cout,) + tail)
        t = _check_int(name, "thresholds", lay["thresholds"], (cout,), -2 ** 31, 2 ** 31 - 1)
        a, b = _section(name, "weights")
        words[a:b] = pack_rows(pm1_to_bits(w).reshape(cout, k)).reshape(-1)
        a, b = _section(name, "thresholds")
        words[a:b] = t.astype("<i4").view(WORD)                       # channel 2j low, 2j+1 high
    name, cout, k, tail = OUTPUT_LAYER
    lay = layers[name]
    w = _check_pm1(name, lay["weights"], (cout,) + tail)
    shift = _check_int(name, "shift", lay["shift"], (cout,), 0, cfg.SHIFT_MAX)
    bias = _check_int(name, "bias", lay["bias"], (cout,), -cfg.BIAS_LIMIT, cfg.BIAS_LIMIT)
    a, b = _section(name, "weights")
    words[a:b] = pack_rows(pm1_to_bits(w).reshape(cout, k)).reshape(-1)
    a, b = _section(name, "shift_bias")
    words[a:b] = (bias.astype("<i4").view("<u4").astype(WORD)) | (shift.astype(WORD) << np.uint64(32))
    return words


def validate_params(words):
    """Raise ValueError naming the problem if `words` is not a valid parameter buffer."""
    if not isinstance(words, np.ndarray):
        raise ValueError("params must be a numpy uint64 array, got {}".format(type(words).__name__))
    if words.dtype != WORD:
        raise ValueError("params must have dtype uint64 (little-endian), got {}".format(words.dtype))
    if words.ndim != 1:
        raise ValueError("params must be 1-D, got shape {}".format(words.shape))
    if words.size != cfg.PARAM_WORDS:
        raise ValueError("params has {} words, expected PARAM_WORDS = {}".format(words.size, cfg.PARAM_WORDS))
    magic = int(words[0])
    if magic & 0xFFFFFFFF != cfg.BNN_MAGIC & 0xFFFFFFFF:
        raise ValueError("params: bad magic 0x{:016X} (expected 'BNN1' = 0x{:08X} in the low 32 bits)".format(
            magic, cfg.BNN_MAGIC & 0xFFFFFFFF))
    if magic >> 32 != cfg.BNN_FORMAT_VERSION:
        raise ValueError("params: format version {} not supported (expected {})".format(
            magic >> 32, cfg.BNN_FORMAT_VERSION))
    for name, cout, k, _ in THRESHOLD_LAYERS + (OUTPUT_LAYER,):
        if k % 64:
            a, b = _section(name, "weights")
            nw = _words_per_row(k)
            last = words[a:b].reshape(cout, nw)[:, -1]
            pad = last & ~np.uint64((1 << (k % 64)) - 1)
            bad = np.flatnonzero(pad)
            if bad.size:
                raise ValueError("params: {} weight row {} has padding bits set past K = {} (word {})".format(
                    name, int(bad[0]), k, a + int(bad[0]) * nw + nw - 1))
    a, b = _section("fc1", "shift_bias")
    sb = words[a:b]
    shift = sb >> np.uint64(32)
    bias = (sb & np.uint64(0xFFFFFFFF)).astype("<u4").view("<i4").astype(np.int64)
    bad = np.flatnonzero(shift > np.uint64(cfg.SHIFT_MAX))
    if bad.size:
        raise ValueError("params: fc1 SHIFT[{}] = {} out of range 0..{}".format(
            int(bad[0]), int(shift[bad[0]]), cfg.SHIFT_MAX))
    bad = np.flatnonzero(np.abs(bias) > cfg.BIAS_LIMIT)
    if bad.size:
        raise ValueError("params: fc1 BIAS[{}] = {} out of range -2^20..2^20".format(int(bad[0]), int(bias[bad[0]])))


def fc1_shift_bias(words):
    """(shift, bias) int64 arrays (NUM_CLASSES,) of the output layer of a parameter buffer."""
    a, b = _section("fc1", "shift_bias")
    sb = np.asarray(words[a:b], WORD)
    return ((sb >> np.uint64(32)).astype(np.int64),
            (sb & np.uint64(0xFFFFFFFF)).astype("<u4").view("<i4").astype(np.int64))


def unpack_params(words):
    """Validated parameter buffer -> the layers dict (weights int8 +-1, thresholds int32)."""
    validate_params(words)
    layers = {}
    for name, cout, k, tail in THRESHOLD_LAYERS:
        a, b = _section(name, "weights")
        bits = unpack_rows(words[a:b].reshape(cout, -1), k)
        a, b = _section(name, "thresholds")
        layers[name] = {
            "weights": bits_to_pm1(bits).reshape((cout,) + tail),
            "thresholds": words[a:b].view("<i4").astype(np.int32),
        }
    name, cout, k, tail = OUTPUT_LAYER
    a, b = _section(name, "weights")
    bits = unpack_rows(words[a:b].reshape(cout, -1), k)
    a, b = _section(name, "shift_bias")
    sb = words[a:b]
    layers[name] = {
        "weights": bits_to_pm1(bits).reshape((cout,) + tail),
        "shift": (sb >> np.uint64(32)).astype(np.int32),
        "bias": (sb & np.uint64(0xFFFFFFFF)).astype("<u4").view("<i4").astype(np.int32),
    }
    return layers


def random_layers(rng, threshold_spread=1.0):
    """Random valid layers (for tests / benchmarks): thresholds around the middle of each layer's
    range so that output bits are mixed."""
    layers = {}
    for name, cout, k, tail in THRESHOLD_LAYERS:
        w = rng.choice(np.array([-1, 1], dtype=np.int8), size=(cout,) + tail)
        if name == "conv0":
            centre, spread = 0, 255 * k * 0.3
        else:
            centre, spread = k / 2, np.sqrt(k) * 0.7
        t = np.round(centre + rng.normal(0, spread * threshold_spread, size=cout)).astype(np.int32)
        layers[name] = {"weights": w, "thresholds": t}
    name, cout, k, tail = OUTPUT_LAYER
    layers[name] = {
        "weights": rng.choice(np.array([-1, 1], dtype=np.int8), size=(cout,) + tail),
        "shift": rng.integers(0, cfg.SHIFT_MAX + 1, size=cout).astype(np.int32),
        "bias": rng.integers(-1000, 1001, size=cout).astype(np.int32),
    }
    return layers
