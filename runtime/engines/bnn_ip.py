"""The simulated BNN IP: what the bitstream does on `ap_start`, run by the C-simulation of
`hls_src/bnn` or by the bit-exact numpy model. Both read the same packed buffers."""
import ctypes

import numpy as np

from ..errors import SimulationError
from . import bnn_config as cfg

MODE_LOAD, MODE_CLASSIFY = 0, 1


class BnnIPModel:
    def __init__(self, engine="numpy", manifest=None):
        self.engine = engine
        self._lib = None
        self._numpy = None
        if engine == "csim":
            from .csim import load_csim_library
            self._lib = load_csim_library("bnn")
            self._lib.bnn_csim_run.restype = ctypes.c_int
            self._lib.bnn_csim_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                               ctypes.c_uint32, ctypes.c_uint32]
        self.reset()

    def reset(self):
        """Bitstream (re)load: the on-chip weight memories hold nothing usable."""
        self.loaded = False
        if self.engine == "numpy":
            from .bnn_model import BnnEngineModel
            self._numpy = BnnEngineModel()

    def start(self, reg, device):
        mode, n = reg("mode"), reg("n_images")
        if mode == MODE_LOAD:
            words = device.dma(reg("params"), cfg.PARAM_WORDS * 8, "bnn params").view(np.uint64)
            if self.engine == "numpy":
                self._numpy.load_params(words.copy())
            else:
                self._lib.bnn_csim_run(words.ctypes.data, None, None, MODE_LOAD, 0)
            self.loaded = True
        elif mode == MODE_CLASSIFY:
            if not self.loaded:
                raise SimulationError("bnn IP started in CLASSIFY mode before its weights were loaded "
                                      "(since the last bitstream download): on the board the scores "
                                      "would be garbage")
            if not 1 <= n <= cfg.MAX_BATCH:
                raise SimulationError("bnn IP: n_images = {} outside 1..{}".format(n, cfg.MAX_BATCH))
            pixels = cfg.IN_H * cfg.IN_W * cfg.IN_C
            images = device.dma(reg("images"), n * pixels, "bnn images")
            scores = device.dma(reg("scores"), n * cfg.NUM_CLASSES * 4, "bnn scores").view(np.int32)
            if self.engine == "numpy":
                scores[:] = self._numpy.classify(images.reshape(n, cfg.IN_H, cfg.IN_W, cfg.IN_C)).ravel()
            else:
                self._lib.bnn_csim_run(None, images.ctypes.data, scores.ctypes.data, MODE_CLASSIFY, n)
        else:
            raise SimulationError("bnn IP: mode register = {} (0 = load, 1 = classify)".format(mode))
