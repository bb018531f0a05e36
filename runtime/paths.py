"""Where the runtime finds the checkout's folders and keeps its cache (one place for both)."""
import os
from pathlib import Path


def repo_root():
    """The checkout holding overlays/, hls_src/ and demos/ (the runtime package lives beside them);
    PYNQ_DEPLOY_ROOT overrides it."""
    env = os.environ.get("PYNQ_DEPLOY_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[1]


def cache_root():
    """~/.cache/pynq-deploy, or PYNQ_DEPLOY_CACHE: C-simulation builds, default test networks."""
    env = os.environ.get("PYNQ_DEPLOY_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "pynq-deploy"
