"""Checks of user-given arguments shared by the runtime's entry points."""
import numbers

import numpy as np

from .errors import InputError


def check_count(value, name, lo, hi=None):
    """An integer count or size in lo..hi (hi None: no upper bound) -> int; InputError otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InputError("{} must be an integer, got {!r}".format(name, value))
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        want = ">= {}".format(lo) if hi is None else "in {}..{}".format(lo, hi)
        raise InputError("{} must be {}, got {}".format(name, want, value))
    return value


def check_finite(x, name):
    """Refuse NaN / +-inf in a float array (they would be cast to arbitrary integers)."""
    if x.dtype.kind in "fc" and not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x.ravel()))
        raise InputError("{} holds {} non-finite value(s) (NaN or inf), the first at flat index {}: {}".format(
            name, bad.size, int(bad[0]), x.ravel()[bad[0]]))
    return x
