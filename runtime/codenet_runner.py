"""Run a compiled CoDeNet-engine model on the board or the simulated PL: one start per frame.

    from runtime.codenet_runner import CodenetRunner
    with CodenetRunner("out/codenet_256") as net:       # a folder written by `pynq-deploy compile`
        outputs = net.run(x)                            # float NCHW in, {onnx output name: float NCHW}

A CodenetRunner may be shared between threads: `run` holds the IP's lock from writing the input
to reading the outputs (see platform/shared_ip.py), so frames of several threads never interleave.
"""
import numpy as np
import pynq

from .compiler.codenet_compiler import CompiledModel
from .engines import codenet_config as cfg
from .engines.codenet_program import PROFILE_BEAT_BYTES, profile_region_bytes, unpack_profile
from .errors import InputError, OverlayError
from .platform.buffers import BufferOwner
from .platform.overlay import load_overlay
from .platform.shared_ip import SharedIP
from .validate import check_finite

TIMEOUT_S = 2.0


class CodenetRunner(SharedIP, BufferOwner):
    """Thread-safe: one frame at a time runs on the engine, under the IP's lock.

    `n_arenas` > 1 gives the runner more arenas (activation buffers) over the same program and
    weights, so that a caller can fill one frame's input and read another frame's outputs while
    the engine works on a third (the detector's pipeline); the engine itself runs one at a time."""

    _buffer_names = ("_program", "_weights", "_arena", "_arena_1", "_arena_2")
    ARENA_NAMES = ("_arena", "_arena_1", "_arena_2")

    def __init__(self, model, overlay="codenet", pl="auto", engine="numpy", timeout_s=TIMEOUT_S, n_arenas=1,
                 profile=False):
        self.model = model if isinstance(model, CompiledModel) else CompiledModel.load(model)
        # per-layer profile: each arena gets the region past the model's tensors (FORMAT.md
        # "Profile region"); the engine writes one beat per layer there, read after each frame
        self.profile_off = -(-self.model.arena_size // PROFILE_BEAT_BYTES) * PROFILE_BEAT_BYTES if profile else 0
        self._last_index = None
        self.overlay, self.manifest, self.pl = load_overlay(overlay, pl=pl, engine=engine)
        self.engine = engine if self.pl == "sim" else "fpga"
        self.timeout_s = float(timeout_s)
        if not 0 < self.timeout_s < float("inf"):
            raise ValueError("timeout_s must be a positive number of seconds, got {!r}".format(timeout_s))
        names = [n for n, ip in self.manifest.ips.items() if ip["engine"] == "codenet"]
        if not names:
            raise OverlayError("overlay {} has no codenet IP".format(self.manifest.name))
        self.ip = getattr(self.overlay, names[0])
        if not 1 <= int(n_arenas) <= len(self.ARENA_NAMES):
            raise ValueError("n_arenas must be 1..{}, got {}".format(len(self.ARENA_NAMES), n_arenas))
        self._program = self._weights = self._arena = self._arena_1 = self._arena_2 = None
        try:
            dev = self.overlay.device
            self._program = pynq.allocate(self.model.program.shape, np.uint32, target=dev)
            self._weights = pynq.allocate(self.model.weights.shape, np.uint8, target=dev)
            for name in self.ARENA_NAMES[:int(n_arenas)]:
                size = self.profile_off + profile_region_bytes(self.model.n_layers) if profile else self.model.arena_size
                arena = pynq.allocate((size,), np.uint8, target=dev)
                setattr(self, name, arena)
                arena[:] = 0
                arena.flush()          # once: a frame then flushes only the input it writes
            self._program[:] = self.model.program
            self._weights[:] = self.model.weights
            self._attach()
            self._locked_call(lambda: None)      # points the engine at the program
        except BaseException:
            self.close()
            raise

    def _configure(self):
        """Point the engine at this runner's program and weights (under the IP's lock)."""
        self.ip.set_model(self._program, self._weights, self.model.n_layers)
        self.ip.set_profile(self.profile_off)

    def _check(self, x):
        if self._arena is None:
            raise RuntimeError("this CodenetRunner is closed")
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":
            raise InputError("input must be a numeric array, got dtype {}".format(x.dtype))
        return check_finite(x, "input {!r}".format(self.model.input["name"]))

    def _frame(self, x):
        """Quantize x into the arena and run the engine once (under the IP's lock)."""
        self.model.quantize_input(x, out=self.input_region(0))   # checks the shape before writing
        return self._start(0)

    def _start(self, index):
        off, n = self.model.input["offset"], self.model.input_bytes()
        arena = self.arena(index)
        read = list(self.model.output_regions())
        if self.profile_off:
            read.append((self.profile_off, profile_region_bytes(self.model.n_layers)))
        self.ip.run(arena, timeout_s=self.timeout_s, written=[(off, n)], read=read)
        self._last_index = index
        return np.asarray(arena)

    def profile(self, index=None):
        """The per-layer profile of the last frame run on arena `index` (default: the last frame
        of this runner) -> {"source": "measured" (board) | "modelled" (simulated PL: the cycle
        model's counts), "clock_mhz", "total_cycles", "total_us", "layers": [{"index", "name",
        "op", "start", "end", "cycles", "us"}]}. start / end are the engine's cycle counter; a
        layer's interval runs from its descriptor read to its last write (FORMAT.md "Profile
        region"). Needs CodenetRunner(..., profile=True) and a frame run."""
        if not self.profile_off:
            raise RuntimeError("profiling is off: create the runner with profile=True")
        index = self._last_index if index is None else index
        if index is None:
            raise RuntimeError("no frame has run yet")
        n = self.model.n_layers
        stamps = unpack_profile(np.asarray(self.arena(index))[self.profile_off:], n).astype(np.int64)
        mhz = float(cfg.CLOCK_MHZ)
        layers = [{"index": i, "name": spec.name, "op": spec.op, "start": int(s), "end": int(e),
                   "cycles": int(e - s), "us": (e - s) / mhz} for i, (spec, (s, e)) in enumerate(zip(self.model.layers, stamps))]
        total = int(stamps[-1, 1] - stamps[0, 0]) if n else 0
        return {"source": "modelled" if self.pl == "sim" else "measured", "clock_mhz": mhz,
                "total_cycles": total, "total_us": total / mhz, "layers": layers}

    def arena(self, index=0):
        """The arena PynqBuffer number `index`."""
        name = self.ARENA_NAMES[index] if 0 <= index < len(self.ARENA_NAMES) else None
        arena = getattr(self, name, None) if name else None
        if arena is None:
            raise RuntimeError("this CodenetRunner is closed" if self._arena is None else
                               "arena {} does not exist (n_arenas = {})".format(index, self.n_arenas))
        return arena

    @property
    def n_arenas(self):
        return sum(getattr(self, n) is not None for n in self.ARENA_NAMES)

    def input_region(self, index=0):
        """uint8 view of arena `index`'s input tensor bytes (tensor layout v3, codenet_layout: packed
        NHWC for the detector's image), for a caller that writes the input itself (the detector's
        pre-processing), followed by run_prepared(index)."""
        off, n = self.model.input["offset"], self.model.input_bytes()
        return np.asarray(self.arena(index))[off:off + n]

    def run_prepared(self, index=0):
        """Run the engine once on arena `index`, whose input region the caller has written
        (under the IP's lock) -> the arena as a numpy array (its output regions current)."""
        self.arena(index)
        return self._locked_call(lambda: self._start(index))

    def run_quantized(self, x):
        """Float NCHW input -> the arena after the engine ran (one ap_start). Only the output
        regions of the returned arena are current: the others are not invalidated (on the board
        the CPU may see stale cache lines there). The arena is this runner's buffer: it holds
        this frame's results until the next frame of any thread; threads should use `run`."""
        x = self._check(x)
        return self._locked_call(lambda: self._frame(x))

    def run(self, x):
        """Float NCHW input -> {ONNX output name: dequantized float32 NCHW array} (thread-safe)."""
        x = self._check(x)
        return self._locked_call(lambda: self.model.read_outputs(self._frame(x)))
