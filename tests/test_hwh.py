"""A .hwh that does not match the manifest is refused, naming what differs. The .hwh files are
parsed by PYNQ's own parser (what pynq.Overlay does on the board)."""
import shutil

import pytest

from runtime.errors import OverlayError
from runtime.platform import overlay as overlay_mod
from runtime.platform.manifest import load_manifest, resolve_overlay_dir
from runtime.platform.overlay import check_hwh, load_overlay, parse_hwh
from tests.hwh_fixture import hwh_text


def manifest_of(name):
    return load_manifest(resolve_overlay_dir(name))


def registers(manifest):
    (ip,) = manifest.ips.values()
    return {n: (r["offset"], r["size"]) for n, r in ip["registers"].items()}


def write_hwh(tmp_path, name, **changes):
    path = tmp_path / "{}.hwh".format(name)
    path.write_text(hwh_text(manifest_of(name), **changes))
    return path


@pytest.mark.parametrize("name", ["bnn", "codenet"])
def test_matching_hwh_is_accepted(tmp_path, name):
    ip_dict = check_hwh(name, write_hwh(tmp_path, name))
    (ip_name,) = manifest_of(name).ips
    assert ip_dict[ip_name]["phys_addr"] == manifest_of(name).ips[ip_name]["phys_addr"]


def test_pointer_split_into_two_words_is_accepted(tmp_path):
    regs = registers(manifest_of("bnn"))
    off, _ = regs.pop("images")
    regs["images_1"], regs["images_2"] = (off, 32), (off + 4, 32)
    check_hwh("bnn", write_hwh(tmp_path, "bnn", registers=regs))


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(n_images=(0x40, 32)), r"n_images: offset 0x40 in .hwh, 0x3C in manifest"),
    (lambda r: r.pop("mode"), r"mode: missing from the .hwh"),
    (lambda r: r.update(scores=(0x28, 32)), r"scores: 32 bits in .hwh, 64 in manifest"),
])
def test_differing_register_map_is_refused_naming_the_register(tmp_path, edit, message):
    regs = registers(manifest_of("bnn"))
    edit(regs)
    with pytest.raises(OverlayError, match=r"register map of bnn_0 in the .hwh differs from .*" + message):
        check_hwh("bnn", write_hwh(tmp_path, "bnn", registers=regs))


@pytest.mark.parametrize("changes, message", [
    ({"phys_addr": 0xA0020000}, r"phys_addr 0xA0020000 in the .hwh, 0xA0010000 in the manifest"),
    ({"addr_range": 4096}, r"addr_range 0x1000 in the .hwh, 0x10000 in the manifest"),
    ({"clock_mhz": 200}, r"parameter clk_period 5 ns in the .hwh: the IP was synthesized for 200 MHz, "
                         r"the manifest says clock_mhz 250"),
])
def test_differing_parameters_are_refused(tmp_path, changes, message):
    with pytest.raises(OverlayError, match=r"IP codenet_0 in .*codenet.hwh differs from .*manifest.json: " + message):
        check_hwh("codenet", write_hwh(tmp_path, "codenet", **changes))


def test_unparseable_hwh(tmp_path):
    bad = tmp_path / "bnn.hwh"
    bad.write_text("<EDKSYSTEM><MODULES>")
    with pytest.raises(OverlayError, match=r"cannot parse .*bnn.hwh"):
        parse_hwh(bad)


def test_board_load_refuses_a_differing_hwh(tmp_path, monkeypatch):
    """load_overlay on a board: PYNQ parses the .hwh next to the .bit; a register the manifest does
    not know stops the load before any driver touches the hardware."""
    overlay_dir = tmp_path / "bnn"
    shutil.copytree(str(resolve_overlay_dir("bnn")), str(overlay_dir))
    (overlay_dir / "bnn.bit").write_bytes(b"\0" * 64)
    regs = registers(manifest_of("bnn"))
    regs["n_images"] = (0x44, 32)
    (overlay_dir / "bnn.hwh").write_text(hwh_text(manifest_of("bnn"), registers=regs))
    monkeypatch.delenv("PYNQ_DEPLOY_PL", raising=False)
    monkeypatch.setattr(overlay_mod, "board_devices", lambda: ["fake-ultra96"])

    class BoardOverlay:       # what pynq.Overlay gives on the board: the parsed .hwh, no download here
        def __init__(self, bitfile, download=True):
            self.ip_dict = parse_hwh(bitfile.replace(".bit", ".hwh"))
            self.downloads = 0

        def download(self):
            self.downloads += 1
    monkeypatch.setattr(overlay_mod.pynq, "Overlay", BoardOverlay)
    with pytest.raises(OverlayError, match=r"n_images: offset 0x44 in .hwh, 0x3C in manifest"):
        load_overlay(str(overlay_dir))
    (overlay_dir / "bnn.hwh").write_text(hwh_text(manifest_of("bnn")))
    ov, manifest, kind = load_overlay(str(overlay_dir))
    assert kind == "board" and isinstance(ov, BoardOverlay)
    assert ov.downloads == 1              # checked first, then programmed once
