"""The simulated CoDeNet IP: what the bitstream does on `ap_start` (one start runs the whole
program), run by the C-simulation of `hls_src/codenet` or by the bit-exact numpy model. Both read
the same packed buffers in simulated DDR (hls_src/codenet/FORMAT.md, "IP interface")."""
import ctypes

import numpy as np

from ..errors import SimulationError
from . import codenet_config as cfg
from .codenet_program import PROFILE_BEAT_BYTES, pack_profile, profile_region_bytes


def load_codenet_csim(extra_flags=()):
    """The C simulation of hls_src/codenet as a ctypes.CDLL with every entry point's signature
    declared (codenet_csim.cpp, FORMAT.md); built once per source hash, loaded once."""
    from .csim import load_csim_library
    lib = load_csim_library("codenet", extra_flags)
    ptr, u32, u64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64
    lib.codenet_csim_run.restype = ctypes.c_int
    lib.codenet_csim_run.argtypes = [ptr, ptr, ptr, u32, u64, u64]
    lib.codenet_csim_run_profiled.restype = ctypes.c_int
    lib.codenet_csim_run_profiled.argtypes = [ptr, ptr, ptr, u32, u64, u64, u64, u64]
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


def _profile_region(arena, profile_off, n):
    """The arena bytes of the profile region (FORMAT.md "Profile region"), checked as the C-sim
    checks it (a multiple of 16, n beats inside the arena)."""
    end = profile_off + profile_region_bytes(n)
    if profile_off % PROFILE_BEAT_BYTES or end > arena.size or profile_off >= 1 << 32:
        raise SimulationError("codenet IP: profile_off = {} (+ {} layers x {} bytes) is not a beat-aligned "
                              "region inside the {}-byte arena".format(profile_off, n, PROFILE_BEAT_BYTES,
                                                                       arena.size))
    return arena[profile_off:end]


class CodenetIPModel:
    def __init__(self, engine="numpy", manifest=None):
        # manifest: the simulated device passes it to every IP model; this one needs nothing from it
        if engine not in ("numpy", "csim"):
            raise ValueError("engine must be 'numpy' or 'csim', not {!r}".format(engine))
        self.engine = engine
        self._lib = load_codenet_csim() if engine == "csim" else None
        self._profile_cache = (None, None)       # (program + weights digest, modelled region bytes)
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
        if reg("arena_wr") != reg("arena"):
            raise SimulationError("codenet IP: arena_wr = 0x{:X} but arena = 0x{:X}: the engine reads and writes "
                                  "one arena (both ports must hold its address)".format(reg("arena_wr"), reg("arena")))
        words = np.frombuffer(program.tobytes(), "<u4")
        profile_off = reg("profile_off") or 0           # 0: the profile is off
        region = _profile_region(arena, profile_off, n) if profile_off else None
        if self.engine == "numpy":
            from .codenet_model import run_program
            try:
                run_program(words, weights, arena)
            except ValueError as exc:
                raise SimulationError("codenet IP: the engine refuses the program: {}".format(exc)) from None
        else:
            weights_c = np.ascontiguousarray(weights)
            if not arena.flags.c_contiguous:
                raise SimulationError("codenet IP: the arena view is not contiguous")
            # the C simulation writes the region itself (its own clock, sample_clock); the
            # simulated device then puts the cycle model's numbers there, as for the numpy engine
            rc = self._lib.codenet_csim_run_profiled(words.ctypes.data, weights_c.ctypes.data, arena.ctypes.data,
                                                     n, arena.size, weights_c.size, profile_off, 0)
            if rc != 0:
                msg = self._lib.codenet_csim_last_error().decode("utf-8", "replace")
                raise SimulationError("codenet IP (C simulation) refused the program, code {}: {}".format(rc, msg))
        if region is not None:
            region[:] = self._modelled_region(words, weights)

    def _modelled_region(self, words, weights):
        """The profile region a board would hold, from the cycle model (MODELLED): per layer
        {start, end} of a counter at 0 when the frame starts. Cached per program and weights."""
        import hashlib
        from ..measure.codenet_cycles import modelled_profile     # only when a profile is asked for
        from .codenet_program import unpack_program
        key = hashlib.sha1(words.tobytes() + np.ascontiguousarray(weights).tobytes()).digest()
        if self._profile_cache[0] != key:
            self._profile_cache = (key, pack_profile(modelled_profile(unpack_program(words, weights))))
        return self._profile_cache[1]
