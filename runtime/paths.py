"""Where the runtime finds its data folders and keeps its cache (the one place for both).

The data folders are overlays/ (manifests, compiled models, .bit/.hwh once built, build scripts),
hls_src/ (the HLS sources: the C-simulation and the bitstream build need them) and demos/
(scripts, notebooks, sample images). They live at the top of the checkout. A wheel carries a copy
of them inside the package, under runtime/_data/ (setup.py puts it there; a checkout never has
one), so a non-editable install works from any directory, as PYNQ packages ship their overlays.
"""
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGED_DATA = PACKAGE_DIR / "_data"      # only in an installed wheel
DATA_FOLDERS = ("overlays", "hls_src", "demos")


def repo_root():
    """The folder holding overlays/, hls_src/ and demos/: the copy inside an installed wheel, else
    the checkout the package lives in (editable install, PYTHONPATH). PYNQ_DEPLOY_ROOT overrides."""
    env = os.environ.get("PYNQ_DEPLOY_ROOT")
    if env:
        return Path(env)
    if PACKAGED_DATA.is_dir():
        return PACKAGED_DATA
    return PACKAGE_DIR.parent


def overlays_root():
    """overlays/, or PYNQ_DEPLOY_OVERLAYS."""
    env = os.environ.get("PYNQ_DEPLOY_OVERLAYS")
    return Path(env) if env else repo_root() / "overlays"


def notebooks_dir():
    """The board notebooks (delivered by `pynq get-notebooks pynq-deploy`)."""
    return repo_root() / "demos" / "notebooks"


def demos_dir():
    return repo_root() / "demos"


def cache_root():
    """~/.cache/pynq-deploy, or PYNQ_DEPLOY_CACHE: C-simulation builds, default test networks."""
    env = os.environ.get("PYNQ_DEPLOY_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "pynq-deploy"
