"""Load an overlay on the board (PYNQ's own device) or on the simulated PL: one code path.

`load_overlay` returns a real `pynq.Overlay` in both cases; its IPs are our `DefaultIP` drivers,
bound by VLNV. Only what sits behind PYNQ's `Device` seam differs.
"""
import os
import warnings

import pynq
from pynq.pl_server.device import Device

from ..errors import OverlayError
from . import pl_state
from .manifest import check_register_map, load_manifest, resolve_overlay_dir
from .sim_device import ENGINES, SimulatedPL, process_device

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


def check_ip_dict(manifest, ip_dict, source):
    """Compare PYNQ's ip_dict (parsed from the .hwh) with the manifest, IP by IP: VLNV, address,
    range, the clock the HLS IP was synthesized for, and the register map. Raises OverlayError
    naming what differs."""
    for ip_name, spec in manifest.ips.items():
        if ip_name not in ip_dict:
            raise OverlayError("{} has no IP {!r} (its IPs: {})".format(source, ip_name, sorted(ip_dict)))
        ip = ip_dict[ip_name]
        if ip["type"] != spec["vlnv"]:
            raise OverlayError("IP {} in {} is {}, the manifest expects {}".format(
                ip_name, source, ip["type"], spec["vlnv"]))
        problems = []
        for key in ("phys_addr", "addr_range"):
            if ip.get(key) is not None and int(ip[key]) != spec[key]:
                problems.append("{} 0x{:X} in the .hwh, 0x{:X} in the manifest".format(key, int(ip[key]), spec[key]))
        period = (ip.get("parameters") or {}).get("clk_period")
        if period is not None and abs(float(period) - 1000.0 / manifest.clock_mhz) > 1e-6:
            problems.append("parameter clk_period {} ns in the .hwh: the IP was synthesized for {:g} MHz, "
                            "the manifest says clock_mhz {:g}".format(period, 1000.0 / float(period),
                                                                       manifest.clock_mhz))
        if problems:
            raise OverlayError("IP {} in {} differs from {}: {}".format(
                ip_name, source, manifest.path, "; ".join(problems)))
        check_register_map(manifest, ip_name, ip.get("registers"))


def parse_hwh(hwh_path):
    """PYNQ's own ip_dict of a .hwh file, parsed without a board (what pynq.Overlay would see)."""
    from pynq.metadata.runtime_metadata_parser import RuntimeMetadataParser
    from pynqmetadata.frontends import Metadata
    try:
        return RuntimeMetadataParser(Metadata(input=str(hwh_path))).ip_dict
    except Exception as e:  # PYNQ's parser raises many types on a malformed file
        raise OverlayError("cannot parse {}: {}: {}".format(hwh_path, type(e).__name__, e)) from e


def check_hwh(overlay, hwh_path=None):
    """Check an overlay's .hwh (default: the one next to its manifest) against the manifest, without
    a board: run it on a freshly built .hwh before copying it to the board. Returns the ip_dict."""
    manifest = load_manifest(resolve_overlay_dir(overlay))
    hwh_path = hwh_path or manifest.hwh_path
    ip_dict = parse_hwh(hwh_path)
    check_ip_dict(manifest, ip_dict, hwh_path)
    return ip_dict


def load_overlay(overlay, pl="auto", engine="numpy"):
    """Load an overlay (name or folder). Returns (pynq.Overlay, manifest, pl_kind).

    Every load downloads the bitstream, as PYNQ's Overlay does: it replaces what the process's
    one PL held (`ov.pl_identity` names what was loaded; see platform/pl_state.py)."""
    from .. import drivers  # noqa: F401  (registers our DefaultIP drivers by VLNV)
    manifest = load_manifest(resolve_overlay_dir(overlay))
    kind = choose_pl(manifest, pl)
    if kind == "board":
        ov = pynq.Overlay(str(manifest.bitstream_path), download=False)
        check_ip_dict(manifest, ov.ip_dict, manifest.hwh_path)
        ov.pl_identity = (str(manifest.bitstream_path), None)
        pl_state.download(ov, ov.pl_identity)
        return ov, manifest, "board"
    if engine not in ENGINES:
        raise ValueError("engine must be one of {}, not {!r}".format(ENGINES, engine))
    device = process_device()
    Device.active_device = device  # plain pynq.allocate() lands here too, as on a board
    ov = pynq.Overlay(str(manifest.path), device=device, download=False)
    ov.parser.engine = engine
    ov.pl_identity = (str(manifest.path), engine)
    pl_state.download(ov, ov.pl_identity)
    return ov, manifest, "sim"
