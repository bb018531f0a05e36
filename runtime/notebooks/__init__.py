"""PYNQ's `pynq.notebooks` entry point of this package: `pynq get-notebooks pynq-deploy` copies the
board notebooks (demos/notebooks, found through runtime.paths) into the Jupyter folder.

PYNQ calls `deliver_notebooks` of the entry point's module when it has one, with the module's own
folder as `src_path`; the notebooks live in demos/notebooks (the checkout, or the wheel's copy),
so that folder is handed to PYNQ's own delivery instead.
"""
from ..paths import notebooks_dir


def deliver_notebooks(device_name, src_path, dst_path, name, folder=False, overlays_res_lookup=True):
    from pynqutils.setup_utils import deliver_notebooks as pynq_deliver
    pynq_deliver(device_name, str(notebooks_dir()), dst_path, name, folder=folder,
                 overlays_res_lookup=overlays_res_lookup)
