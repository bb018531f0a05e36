"""Schema of an overlay manifest, checked before anything is built from it: types, ranges,
alignment, no overlapping registers or IPs, known IP cores. Every error names the file and the
field (OverlayError)."""
import math
import numbers

from ..errors import OverlayError
from .ap_ctrl import CTRL_OFFSET

# VLNV -> (engine, registers its driver writes): the IP cores this runtime has drivers for
KNOWN_IPS = {
    "pynq-deploy.org:hls:bnn:1.0": ("bnn", ("params", "images", "scores", "mode", "n_images")),
    "pynq-deploy.org:hls:codenet:1.0": ("codenet", ("program", "weights", "arena", "arena_wr", "n_layers", "profile_off")),
}
# where the PS maps the PL's AXI-Lite slaves on the Zynq UltraScale+ (M_AXI_HPM0_LPD at
# 0x8000_0000, M_AXI_HPM0/1_FPD from 0xA000_0000): the low 32-bit windows
PL_WINDOW = (0x8000_0000, 0xB000_0000)
MIN_RANGE = 4096                  # Vivado's smallest address segment
ACCESS = ("read-write", "read-only", "write-only")


def _int(path, field, value, lo, hi):
    if isinstance(value, str):
        try:
            value = int(value, 0)
        except ValueError:
            _fail(path, field, "must be an integer (decimal or 0x hex), got {!r}".format(value))
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _fail(path, field, "must be an integer, got {!r}".format(value))
    if not lo <= value <= hi:
        _fail(path, field, "must be in 0x{:X}..0x{:X}, got 0x{:X}".format(lo, hi, value))
    return int(value)


def _fail(path, field, why):
    raise OverlayError("manifest {}: field {}: {}".format(path, field, why))


def _str(path, field, value, optional=False):
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        _fail(path, field, "must be a non-empty string, got {!r}".format(value))
    return value


def validate_manifest_data(path, data):
    """Raise OverlayError naming the first problem of a parsed manifest.json."""
    name = _str(path, "name", data.get("name"))
    if "/" in name or "\\" in name:
        _fail(path, "name", "must be a plain name, got {!r}".format(name))
    clock = data.get("clock_mhz")
    if isinstance(clock, bool) or not isinstance(clock, numbers.Real) or not math.isfinite(clock) \
            or not 0 < clock <= 1000:
        _fail(path, "clock_mhz", "must be a number in (0, 1000], got {!r}".format(clock))
    for key in ("bitstream", "hwh", "description", "default_model"):
        _str(path, key, data.get(key), optional=True)
    for key in ("bitstream", "hwh"):
        if data.get(key) and ("/" in data[key] or "\\" in data[key]):
            _fail(path, key, "must be a file name next to the manifest, got {!r}".format(data[key]))
    models = data.get("models", {})
    if not isinstance(models, dict) or not all(isinstance(v, str) and v for v in models.values()):
        _fail(path, "models", "must map model names to folder paths, got {!r}".format(models))
    if "engine" in data and not isinstance(data["engine"], dict):
        _fail(path, "engine", "must be an object")
    ips = data.get("ips")
    if not isinstance(ips, dict) or not ips:
        _fail(path, "ips", "must be a non-empty object of IPs, got {!r}".format(ips))
    spans = []
    for ip_name, ip in ips.items():
        f = "ips.{}".format(ip_name)
        if not isinstance(ip, dict):
            _fail(path, f, "must be an object")
        vlnv = _str(path, f + ".vlnv", ip.get("vlnv"))
        if vlnv not in KNOWN_IPS:
            _fail(path, f + ".vlnv", "unknown IP core {!r}: this runtime has drivers for {}".format(
                vlnv, ", ".join(sorted(KNOWN_IPS))))
        engine, needed = KNOWN_IPS[vlnv]
        if ip.get("engine") != engine:
            _fail(path, f + ".engine", "must be {!r} for {}, got {!r}".format(engine, vlnv, ip.get("engine")))
        size = _int(path, f + ".addr_range", ip.get("addr_range"), MIN_RANGE, PL_WINDOW[1] - PL_WINDOW[0])
        if size & (size - 1):
            _fail(path, f + ".addr_range", "must be a power of two, got {}".format(size))
        base = _int(path, f + ".phys_addr", ip.get("phys_addr"), PL_WINDOW[0], PL_WINDOW[1] - size)
        if base % size:
            _fail(path, f + ".phys_addr", "0x{:X} is not aligned to its addr_range 0x{:X}".format(base, size))
        spans.append((base, base + size, ip_name))
        _registers(path, f + ".registers", ip.get("registers"), size, needed)
    spans.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        if b0 < a1:
            _fail(path, "ips.{}.phys_addr".format(bn),
                  "its range overlaps IP {} (0x{:X}..0x{:X})".format(an, a0, a1 - 1))


def _registers(path, field, regs, addr_range, needed):
    if not isinstance(regs, dict) or not regs:
        _fail(path, field, "must be a non-empty object of registers")
    spans = []
    for reg_name, reg in regs.items():
        f = "{}.{}".format(field, reg_name)
        if not isinstance(reg, dict):
            _fail(path, f, "must be an object")
        if "offset" not in reg:
            _fail(path, f + ".offset", "is missing")
        size = _int(path, f + ".size", reg.get("size", 32), 32, 64)
        if size not in (32, 64):
            _fail(path, f + ".size", "must be 32 or 64, got {}".format(size))
        off = _int(path, f + ".offset", reg["offset"], 0, addr_range - size // 8)
        if off % 4:
            _fail(path, f + ".offset", "0x{:X} is not 4-byte aligned".format(off))
        if reg.get("access", "read-write") not in ACCESS:
            _fail(path, f + ".access", "must be one of {}, got {!r}".format(", ".join(ACCESS), reg.get("access")))
        spans.append((off, off + size // 8, reg_name))
    spans.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        if b0 < a1:
            _fail(path, "{}.{}.offset".format(field, bn),
                  "overlaps register {} (0x{:X}..0x{:X})".format(an, a0, a1 - 1))
    ctrl = regs.get("CTRL")
    if ctrl is None or _int(path, field + ".CTRL.offset", ctrl["offset"], 0, 0) != CTRL_OFFSET:
        _fail(path, field + ".CTRL", "the ap_ctrl_hs control register CTRL at offset {} is required".format(
            CTRL_OFFSET))
    for reg_name in needed:
        if reg_name not in regs:
            _fail(path, "{}.{}".format(field, reg_name), "is missing (the driver writes it)")
