"""The simulated CoDeNet IP: what the bitstream does on `ap_start` (one start runs the whole
program), run by the C-simulation of `hls_src/codenet` or by the bit-exact numpy model. Both read
the same packed buffers in simulated DDR (hls_src/codenet/FORMAT.md, "IP interface")."""
import ctypes

import numpy as np

from ..errors import SimulationError
from . import codenet_config as cfg


def load_codenet_csim(extra_flags=()):
    """The C simulation of hls_src/codenet as a ctypes.CDLL with every entry point's signature
    declared (codenet_csim.cpp, FORMAT.md); built once per source hash, loaded once."""
    from .csim import load_csim_library
    lib = load_csim_library("codenet", extra_flags)
    ptr, u32, u64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64
    lib.codenet_csim_run.restype = ctypes.c_int
    lib.codenet_csim_run.argtypes = [ptr, ptr, ptr, u32, u64, u64]
    lib.codenet_csim_check.restype = ctypes.c_int
    lib.codenet_csim_check.argtypes = [ptr, ptr, u32, u64, u64]
    lib.codenet_csim_last_error.restype = ctypes.c_char_p
    lib.codenet_csim_last_error.argtypes = []
    lib.codenet_csim_cycles.restype = ctypes.c_uint32
    lib.codenet_csim_cycles.argtypes = [ptr, u32]
    lib.codenet_csim_cycle_phases.restype = ctypes.c_int
    lib.codenet_csim_cycle_phases.argtypes = []
    lib.codenet_csim_events.restype = ctypes.c_uint32
    lib.codenet_csim_events.argtypes = [u32, ptr, u32]
    lib.codenet_csim_dsp_pack_check.restype = u64
    lib.codenet_csim_dsp_pack_check.argtypes = [ctypes.c_int, ctypes.POINTER(u64)]
    lib.codenet_csim_dsp_chain_check.restype = u64
    lib.codenet_csim_dsp_chain_check.argtypes = [ctypes.c_int, ctypes.c_int, u64, ctypes.POINTER(u64)]
    return lib


class CodenetIPModel:
    def __init__(self, engine="numpy", manifest=None):
        # manifest: the simulated device passes it to every IP model; this one needs nothing from it
        if engine not in ("numpy", "csim"):
            raise ValueError("engine must be 'numpy' or 'csim', not {!r}".format(engine))
        self.engine = engine
        self._lib = load_codenet_csim() if engine == "csim" else None
        self.reset()

    def reset(self):
        """Bitstream (re)load (the simulated device calls it). The engine keeps nothing between
        starts (every layer reloads its weights from DDR), so there is no state to lose."""

    def start(self, reg, device):
        n = reg("n_layers")
        if n > cfg.MAX_LAYERS:
            raise SimulationError("codenet IP: n_layers = {} exceeds the engine's {} (MAX_LAYERS)".format(
                n, cfg.MAX_LAYERS))
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
