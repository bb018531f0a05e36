"""pynq-deploy runtime: quantized CNNs on the Ultra96-V2 through PYNQ (or its simulated PL).

`from runtime import Classifier, Detector` (import PYNQ lazily: `import runtime` stays cheap).
"""
__version__ = "0.1.0"


def __getattr__(name):
    if name == "Classifier":
        from .classifier import Classifier
        return Classifier
    if name in ("Detector", "Detection"):
        from . import detector
        return getattr(detector, name)
    raise AttributeError("module 'runtime' has no attribute {!r}".format(name))
