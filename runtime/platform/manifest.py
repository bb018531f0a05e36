"""Overlay manifests: the IP names, VLNVs, register maps and engine parameters of an overlay.

The manifest is the runtime's description of what the bitstream contains. On the board PYNQ
parses the `.hwh` and we check its register map against the manifest; in simulation the
simulated PL is built from the manifest alone.
"""
import json
import os
from pathlib import Path

from ..errors import OverlayError
from ..paths import overlays_root
from .ap_ctrl import CTRL_FIELDS
from .manifest_schema import validate_manifest_data

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "pynq-deploy/overlay-manifest"


def overlays_dir():
    return overlays_root()


def available_overlays():
    base = overlays_dir()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / MANIFEST_NAME).is_file())


def resolve_overlay_dir(name_or_dir):
    """An overlay given by name (a folder of overlays/) or by path."""
    p = Path(name_or_dir)
    candidates = [p] if (p.is_absolute() or os.sep in str(name_or_dir)) else [overlays_dir() / p, p]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    raise OverlayError("overlay directory not found: {} (looked in {}; available overlays: {})".format(
        name_or_dir, ", ".join(str(c) for c in candidates), ", ".join(available_overlays()) or "none"))


def _int(value, what):
    try:
        return int(value, 0) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise OverlayError("manifest: {} must be an integer, got {!r}".format(what, value))


class Manifest:
    """A parsed, validated manifest.json."""

    def __init__(self, path, data):
        self.path = Path(path)
        self.dir = self.path.parent
        self.data = data
        self.name = data["name"]
        self.clock_mhz = float(data["clock_mhz"])
        self.engine = data.get("engine", {})
        self.ips = {}
        for ip_name, ip in data["ips"].items():
            for key in ("vlnv", "engine", "phys_addr", "addr_range", "registers"):
                if key not in ip:
                    raise OverlayError("manifest {}: IP {!r} has no {!r}".format(self.path, ip_name, key))
            regs = {}
            for reg_name, reg in ip["registers"].items():
                size = _int(reg.get("size", 32), "{}.{}.size".format(ip_name, reg_name))
                if size not in (32, 64):
                    raise OverlayError("manifest {}: register {}.{} has size {} (32 or 64 only)".format(
                        self.path, ip_name, reg_name, size))
                regs[reg_name] = {"offset": _int(reg["offset"], "{}.{}.offset".format(ip_name, reg_name)),
                                  "size": size, "access": reg.get("access", "read-write")}
            self.ips[ip_name] = {"vlnv": ip["vlnv"], "engine": ip["engine"],
                                 "phys_addr": _int(ip["phys_addr"], ip_name + ".phys_addr"),
                                 "addr_range": _int(ip["addr_range"], ip_name + ".addr_range"),
                                 "registers": regs}

    @property
    def bitstream_path(self):
        return self.dir / self.data.get("bitstream", self.name + ".bit")

    @property
    def hwh_path(self):
        return self.dir / self.data.get("hwh", self.name + ".hwh")

    def model_dir(self, model=None):
        models = self.data.get("models", {})
        model = model or self.data.get("default_model")
        if model is None:
            raise OverlayError("overlay {} names no default model; pass one".format(self.name))
        if model in models:
            return (self.dir / models[model]).resolve()
        p = Path(model)
        if p.is_dir():
            return p.resolve()
        raise OverlayError("model {!r} not found: overlay {} has models {} and no folder {} exists".format(
            model, self.name, sorted(models) or "none", p))

    def pynq_registers(self, ip_name):
        """The register map in the form PYNQ's ip_dict uses (what a .hwh would give)."""
        out = {}
        for reg_name, reg in self.ips[ip_name]["registers"].items():
            out[reg_name] = {"address_offset": reg["offset"], "size": reg["size"],
                             "access": reg["access"], "description": reg_name,
                             "fields": _ctrl_fields() if reg_name == "CTRL" else {}}
        return out


def _ctrl_fields():
    return {n: {"bit_offset": o, "bit_width": 1, "access": a, "description": n} for n, o, a in CTRL_FIELDS}


def load_manifest(overlay_dir):
    overlay_dir = Path(overlay_dir)
    path = overlay_dir / MANIFEST_NAME
    if not path.is_file():
        raise OverlayError("overlay {} has no {}: every overlay folder needs its manifest".format(
            overlay_dir, MANIFEST_NAME))
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise OverlayError("manifest {} is not valid JSON: {}".format(path, e)) from e
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise OverlayError("{} is not a pynq-deploy overlay manifest (format must be {!r})".format(
            path, MANIFEST_FORMAT))
    for key in ("name", "clock_mhz", "ips"):
        if key not in data:
            raise OverlayError("manifest {} has no {!r}".format(path, key))
    validate_manifest_data(path, data)
    return Manifest(path, data)


def check_register_map(manifest, ip_name, hwh_registers):
    """Compare a register map parsed from the .hwh (PYNQ's ip_dict 'registers') with the manifest.

    Vitis HLS names a 64-bit pointer register either `name` (size 64) or `name_1`/`name_2`
    (two 32-bit words); both are accepted. Raises OverlayError listing every difference.
    """
    problems = []
    hwh = {}
    for name, reg in (hwh_registers or {}).items():
        hwh[name] = (int(reg["address_offset"]), int(reg["size"]))
    for name, reg in manifest.ips[ip_name]["registers"].items():
        if name in hwh:
            off, size = hwh[name]
            if off != reg["offset"]:
                problems.append("{}: offset 0x{:X} in .hwh, 0x{:X} in manifest".format(name, off, reg["offset"]))
            elif size != reg["size"]:
                problems.append("{}: {} bits in .hwh, {} in manifest".format(name, size, reg["size"]))
        elif reg["size"] == 64 and name + "_1" in hwh and name + "_2" in hwh:
            lo, hi = hwh[name + "_1"][0], hwh[name + "_2"][0]
            if (lo, hi) != (reg["offset"], reg["offset"] + 4):
                problems.append("{}: words at 0x{:X}/0x{:X} in .hwh, 0x{:X}/0x{:X} in manifest".format(
                    name, lo, hi, reg["offset"], reg["offset"] + 4))
        elif name in ("GIER", "IP_IER", "IP_ISR") and name not in hwh:
            continue  # interrupt registers are optional in the .hwh
        else:
            problems.append("{}: missing from the .hwh".format(name))
    if problems:
        raise OverlayError("register map of {} in the .hwh differs from {}: {}".format(
            ip_name, manifest.path, "; ".join(problems)))
