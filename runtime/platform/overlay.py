"""Load an overlay on the board (PYNQ's own device) or on the simulated PL: one code path.

`load_overlay` returns a real `pynq.Overlay` in both cases; its IPs are our `DefaultIP` drivers,
bound by VLNV. Only what sits behind PYNQ's `Device` seam differs.
"""
import os
import warnings

import pynq
from pynq.pl_server.device import Device

from ..errors import OverlayError
from .manifest import check_register_map, load_manifest, resolve_overlay_dir
from .sim_device import ENGINES, SimulatedPL

PL_CHOICES = ("auto", "board", "sim")


def board_devices():
    """PYNQ's devices (an Ultra96 running PYNQ has one); [] on a machine without a board."""
    if os.environ.get("PYNQ_DEPLOY_PL") == "sim":
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return [d for d in Device.devices if not isinstance(d, SimulatedPL)]
        except Exception:  # PYNQ's probing raises on machines without XRT / FPGA manager
            return []


def _build_hint(manifest):
    return ("build them on a machine with Vitis HLS and Vivado 2022.1: `make -C {} bitstream` (runs "
            "hls_src/{}/run_hls.tcl, then {}/block_design.tcl, and writes {} and {} there), or copy "
            "{} and {} built elsewhere next to {}".format(
                manifest.dir, manifest.name, manifest.dir, manifest.bitstream_path.name,
                manifest.hwh_path.name, manifest.bitstream_path.name, manifest.hwh_path.name,
                manifest.path))


def choose_pl(manifest, pl="auto"):
    """'board' or 'sim' for this manifest: the board when PYNQ finds one and the overlay's
    .bit/.hwh exist. On a board, missing files are an error that says how to build them."""
    if pl not in PL_CHOICES:
        raise ValueError("pl must be one of {}, not {!r}".format(PL_CHOICES, pl))
    pl = os.environ.get("PYNQ_DEPLOY_PL", pl) if pl == "auto" else pl
    if pl == "sim":
        return "sim"
    have_board = bool(board_devices())
    if not have_board:
        if pl == "board":
            raise OverlayError("no board found: PYNQ finds no FPGA device on this machine "
                               "(use pl='sim' to run on the simulated PL)")
        return "sim"
    missing = [p.name for p in (manifest.bitstream_path, manifest.hwh_path) if not p.is_file()]
    if missing:
        raise OverlayError("overlay {}: {} missing in {}: {}".format(
            manifest.name, " and ".join(missing), manifest.dir, _build_hint(manifest)))
    return "board"


def load_overlay(overlay, pl="auto", engine="numpy"):
    """Load an overlay (name or folder). Returns (pynq.Overlay, manifest, pl_kind)."""
    from .. import drivers  # noqa: F401  (registers our DefaultIP drivers by VLNV)
    manifest = load_manifest(resolve_overlay_dir(overlay))
    kind = choose_pl(manifest, pl)
    if kind == "board":
        ov = pynq.Overlay(str(manifest.bitstream_path))
        for ip_name, spec in manifest.ips.items():
            if ip_name not in ov.ip_dict:
                raise OverlayError("bitstream {} has no IP {!r} (its IPs: {})".format(
                    manifest.bitstream_path, ip_name, sorted(ov.ip_dict)))
            if ov.ip_dict[ip_name]["type"] != spec["vlnv"]:
                raise OverlayError("IP {} in {} is {}, the manifest expects {}".format(
                    ip_name, manifest.hwh_path, ov.ip_dict[ip_name]["type"], spec["vlnv"]))
            check_register_map(manifest, ip_name, ov.ip_dict[ip_name].get("registers"))
        return ov, manifest, "board"
    if engine not in ENGINES:
        raise ValueError("engine must be one of {}, not {!r}".format(ENGINES, engine))
    device = SimulatedPL(engine=engine)
    Device.active_device = device  # plain pynq.allocate() lands here too, as on a board
    ov = pynq.Overlay(str(manifest.path), device=device, download=True)
    return ov, manifest, "sim"
