"""Integrity of compiled-model folders (both formats): one sha256 over the whole model, the
metadata and every array, required on load; and a schema check of the CoDeNet metadata the host
uses around the engine (input / output placement and quantization), naming file and field."""
import hashlib
import json
import math
import numbers

import numpy as np

from ..errors import ModelError

MODEL_SHA_FIELD = "model_sha256"
MAX_ARENA_BYTES = 1 << 31          # far above the board's 2 GB of DDR shared with Linux


def whole_model_sha256(meta, arrays):
    """sha256 over the metadata (canonical JSON, without the hash field itself) and the
    little-endian bytes of every array, in order."""
    h = hashlib.sha256()
    rest = {k: v for k, v in meta.items() if k != MODEL_SHA_FIELD}
    h.update(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode())
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(b"\0" + arr.dtype.newbyteorder("<").str.encode() + b"\0")
        h.update(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()


def with_model_sha256(meta, arrays):
    """meta (as JSON will store it) with the whole-model hash added."""
    meta = json.loads(json.dumps(meta))
    meta[MODEL_SHA_FIELD] = whole_model_sha256(meta, arrays)
    return meta


def check_model_sha256(where, meta, arrays):
    """Raise ModelError unless meta holds the right whole-model hash. `where`: 'model <dir>: model.json'."""
    expected = meta.get(MODEL_SHA_FIELD)
    if not isinstance(expected, str):
        raise ModelError("{}: the field {!r} (sha256 over the metadata and the arrays) is missing: the model "
                         "was written by an older version or edited; recompile / re-save it".format(
                             where, MODEL_SHA_FIELD))
    if expected != whole_model_sha256(meta, arrays):
        raise ModelError("{}: {} does not match the model's contents: a field of the metadata or an array "
                         "was changed after it was written (corrupt or edited file)".format(where, MODEL_SHA_FIELD))


def load_npy(path, where):
    """np.load of one array file; any failure (numpy parses the header with ast: a corrupt one
    raises SyntaxError, TokenError, ...) is a ModelError naming the file."""
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - every way a corrupt .npy fails is the same refusal
        raise ModelError("{}: {} is corrupt or truncated: {}: {}".format(
            where, path.name, type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")) from None


# ------------------------------------------------------------------------ CoDeNet metadata schema
class _Checker:
    def __init__(self, where):
        self.where = where

    def fail(self, field, why):
        raise ModelError("{}: field {}: {}".format(self.where, field, why))

    def int(self, v, field, lo, hi):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not lo <= v <= hi:
            self.fail(field, "must be an integer in {}..{}, got {!r}".format(lo, hi, v))
        return int(v)

    def scale(self, v, field):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or not v > 0:
            self.fail(field, "must be a finite number > 0, got {!r}".format(v))
        if not 1e-30 < v < 1e30:
            self.fail(field, "{!r} is outside 1e-30..1e30".format(v))

    def quant(self, q, field):
        if not isinstance(q.get("signed"), bool):
            self.fail(field + ".signed", "must be true or false, got {!r}".format(q.get("signed")))
        self.scale(q.get("scale"), field + ".scale")
        lo, hi = (-128, 127) if q["signed"] else (0, 255)
        self.int(q.get("zp"), field + ".zp", lo, hi)

    def shape(self, v, field):
        if not isinstance(v, list) or len(v) != 4:
            self.fail(field, "must be [1, C, H, W], got {!r}".format(v))
        self.int(v[0], field + "[0]", 1, 1)
        for i in (1, 2, 3):
            self.int(v[i], "{}[{}]".format(field, i), 1, 1 << 16)
        return v


def check_codenet_meta(where, meta):
    """Schema of the host-side fields of a compiled CoDeNet model.json (ModelError naming the field)."""
    c = _Checker(where)
    arena = c.int(meta.get("arena_size"), "arena_size", 1, MAX_ARENA_BYTES)
    inp = meta.get("input")
    if not isinstance(inp, dict):
        c.fail("input", "must be an object, got {!r}".format(inp))
    if not isinstance(inp.get("name"), str):
        c.fail("input.name", "must be a string")
    _, ch, h, w = c.shape(inp.get("shape"), "input.shape")
    c.quant(inp, "input")
    # bytes per input pixel: the channels, padded to whole beats unless the image stays packed
    cs = c.int(inp["cs"], "input.cs", ch, 1 << 16) if "cs" in inp else ch
    off = c.int(inp.get("offset"), "input.offset", 0, arena)
    if off + cs * h * w > arena:
        c.fail("input.offset", "the input ({} bytes at {}) runs past the arena ({} bytes)".format(cs * h * w, off, arena))
    outs = meta.get("outputs")
    if not isinstance(outs, list) or not outs:
        c.fail("outputs", "must be a non-empty list, got {!r}".format(outs))
    names = set()
    for i, o in enumerate(outs):
        f = "outputs[{}]".format(i)
        if not isinstance(o, dict):
            c.fail(f, "must be an object")
        if not isinstance(o.get("name"), str) or o["name"] in names:
            c.fail(f + ".name", "must be a string naming one output, got {!r}".format(o.get("name")))
        names.add(o["name"])
        _, ch, h, w = c.shape(o.get("shape"), f + ".shape")
        up = c.int(o.get("up"), f + ".up", 0, 1)
        if up and (h % 2 or w % 2):
            c.fail(f + ".up", "an upsampled output needs an even height and width, got {}x{}".format(h, w))
        cs = c.int(o.get("cs"), f + ".cs", 1, 1 << 16)
        chans = o.get("channels")
        if not isinstance(chans, list) or len(chans) != ch:
            c.fail(f + ".channels", "must list {} channel indices".format(ch))
        for j, v in enumerate(chans):
            c.int(v, "{}.channels[{}]".format(f, j), 0, cs - 1)
        c.quant(o, f)
        off = c.int(o.get("offset"), f + ".offset", 0, arena)
        size = (h >> up) * (w >> up) * cs
        if off + size > arena:
            c.fail(f + ".offset", "the output ({} bytes at {}) runs past the arena ({} bytes)".format(size, off, arena))
    n = c.int(meta.get("n_layers"), "n_layers", 0, 1 << 20)
    names = meta.get("layer_names")
    if names is not None and (not isinstance(names, list) or len(names) != n
                              or not all(isinstance(x, str) for x in names)):
        c.fail("layer_names", "must be a list of {} strings".format(n))
    if not isinstance(meta.get("report", []), list):
        c.fail("report", "must be a list")
    if not isinstance(meta.get("meta", {}), dict):
        c.fail("meta", "must be an object")
    cn = meta.get("class_names")
    if cn is not None and (not isinstance(cn, list) or not all(isinstance(x, str) for x in cn)):
        c.fail("class_names", "must be null or a list of strings")
