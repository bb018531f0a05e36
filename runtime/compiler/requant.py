"""Real requantization multipliers -> the engine's integer (M, S) pairs (FORMAT.md: t = acc * M,
r = (t + 2^(S-1)) >> S, M int16 >= 0, S 0..31)."""
import math

from ..engines import codenet_config as cfg

MIN_SIGNIFICANT_BITS = 8     # an (M, S) pair must keep at least this many bits of the multiplier


class ScaleError(ValueError):
    """A multiplier the engine's (M, S) cannot represent."""


def mult_shift(m):
    """m >= 0 -> (M, S, relative error). The largest shift whose M still fits int16 is chosen
    (most precision). Raises ScaleError when m is too large for M at S = 0 or so small that
    even S = 31 keeps fewer than MIN_SIGNIFICANT_BITS bits."""
    m = float(m)
    if not math.isfinite(m) or m < 0:
        raise ScaleError("multiplier {!r} is not a finite non-negative number".format(m))
    if m == 0.0:
        return 0, 0, 0.0
    if m > cfg.MAX_MULT + 0.5:
        raise ScaleError("multiplier {:.6g} exceeds {} (the largest int16 M, at shift 0)".format(m, cfg.MAX_MULT))
    s = cfg.MAX_SHIFT
    mm = int(round(m * (1 << s)))
    while mm > cfg.MAX_MULT and s > 0:
        s -= 1
        mm = int(round(m * (1 << s)))
    if mm > cfg.MAX_MULT:
        mm = cfg.MAX_MULT
    if mm < (1 << (MIN_SIGNIFICANT_BITS - 1)):
        raise ScaleError("multiplier {:.6g} is too small: it needs shift S > {} (M = {} at S = {} keeps fewer "
                         "than {} significant bits)".format(m, cfg.MAX_SHIFT, mm, cfg.MAX_SHIFT,
                                                            MIN_SIGNIFICANT_BITS))
    return mm, s, abs(mm / float(1 << s) - m) / m


def pow2_shift(m):
    """S when m == 2^-S exactly with 0 <= S <= MAX_SHIFT, else None (shift-only requant)."""
    m = float(m)
    if m <= 0 or not math.isfinite(m):
        return None
    mant, exp = math.frexp(m)          # m = mant * 2^exp, mant in [0.5, 1)
    if mant != 0.5:
        return None
    s = 1 - exp
    return s if 0 <= s <= cfg.MAX_SHIFT else None
