"""The simulated CoDeNet IP: what the bitstream does on `ap_start` (one start runs the whole
program), run by the C-simulation of `hls_src/codenet` or by the bit-exact numpy model. Both read
the same packed buffers in simulated DDR (hls_src/codenet/FORMAT.md, "IP interface")."""
import ctypes

import numpy as np

from ..errors import SimulationError
from . import codenet_config as cfg


class CodenetIPModel:
    def __init__(self, engine="numpy", manifest=None):
        if engine not in ("numpy", "csim"):
            raise ValueError("engine must be 'numpy' or 'csim', not {!r}".format(engine))
        self.engine = engine
        self.manifest = manifest
        self._lib = None
        if engine == "csim":
            from .csim import load_csim_library
            lib = load_csim_library("codenet")
            lib.codenet_csim_run.restype = ctypes.c_int
            lib.codenet_csim_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                             ctypes.c_uint32, ctypes.c_uint64, ctypes.c_uint64]
            lib.codenet_csim_last_error.restype = ctypes.c_char_p
            lib.codenet_csim_last_error.argtypes = []
            self._lib = lib
        self.reset()

    def reset(self):
        """Bitstream (re)load. The engine keeps nothing between starts (every layer reloads its
        weights from DDR), so there is no state to lose."""
        self.last_layers = 0

    def start(self, reg, device):
        n = reg("n_layers")
        if n > cfg.MAX_LAYERS:
            raise SimulationError("codenet IP: n_layers = {} exceeds the engine's {} (MAX_LAYERS)".format(
                n, cfg.MAX_LAYERS))
        self.last_layers = n
        if n == 0:
            return                                   # an empty program runs nothing
        program = device.dma(reg("program"), n * cfg.DESC_WORDS * 4, "codenet program")
        weights = device.dma_extent(reg("weights"), "codenet weights")
        arena = device.dma_extent(reg("arena"), "codenet arena")
        words = np.frombuffer(program.tobytes(), "<u4")
        if self.engine == "numpy":
            from .codenet_model import run_program
            try:
                run_program(words, weights, arena)
            except ValueError as exc:
                raise SimulationError("codenet IP: the engine refuses the program: {}".format(exc)) from None
            return
        weights_c = np.ascontiguousarray(weights)
        if not arena.flags.c_contiguous:
            raise SimulationError("codenet IP: the arena view is not contiguous")
        rc = self._lib.codenet_csim_run(words.ctypes.data, weights_c.ctypes.data, arena.ctypes.data,
                                        n, arena.size, weights_c.size)
        if rc != 0:
            msg = self._lib.codenet_csim_last_error().decode("utf-8", "replace")
            raise SimulationError("codenet IP (C simulation) refused the program, code {}: {}".format(rc, msg))
