"""Run a compiled CoDeNet-engine model on the board or the simulated PL: one start per frame.

    from runtime.codenet_runner import CodenetRunner
    with CodenetRunner("out/codenet_256") as net:       # a folder written by `pynq-deploy compile`
        outputs = net.run(x)                            # float NCHW in, {onnx output name: float NCHW}
"""
import numpy as np
import pynq

from .compiler.codenet_compiler import CompiledModel
from .errors import EngineTimeoutError, OverlayError
from .platform.buffers import BufferOwner
from .platform.overlay import load_overlay

TIMEOUT_S = 2.0


class CodenetRunner(BufferOwner):
    """`n_arenas` > 1 gives the runner more arenas (activation buffers) over the same program and
    weights, so that a caller can fill one frame's input and read another frame's outputs while
    the engine works on a third (the detector's pipeline); the engine itself runs one at a time."""
    _buffer_names = ("_program", "_weights", "_arena", "_arena_1", "_arena_2")
    MAX_ARENAS = 3

    def __init__(self, model, overlay="codenet", pl="auto", engine="numpy", timeout_s=TIMEOUT_S, n_arenas=1):
        self.model = model if isinstance(model, CompiledModel) else CompiledModel.load(model)
        self.overlay, self.manifest, self.pl = load_overlay(overlay, pl=pl, engine=engine)
        self.engine = engine if self.pl == "sim" else "fpga"
        self.timeout_s = float(timeout_s)
        names = [n for n, ip in self.manifest.ips.items() if ip["engine"] == "codenet"]
        if not names:
            raise OverlayError("overlay {} has no codenet IP".format(self.manifest.name))
        self.ip = getattr(self.overlay, names[0])
        if not 1 <= int(n_arenas) <= self.MAX_ARENAS:
            raise ValueError("n_arenas must be 1..{}, got {}".format(self.MAX_ARENAS, n_arenas))
        self._program = self._weights = self._arena = self._arena_1 = self._arena_2 = None
        try:
            dev = self.overlay.device
            self._program = pynq.allocate(self.model.program.shape, np.uint32, target=dev)
            self._weights = pynq.allocate(self.model.weights.shape, np.uint8, target=dev)
            for k, name in enumerate(("_arena", "_arena_1", "_arena_2")[:int(n_arenas)]):
                arena = pynq.allocate((self.model.arena_size,), np.uint8, target=dev)
                setattr(self, name, arena)
                arena[:] = 0
                arena.flush()          # once: a frame then flushes only the input it writes
            self._program[:] = self.model.program
            self._weights[:] = self.model.weights
            self.ip.set_model(self._program, self._weights, self.model.n_layers)
            self._needs_reset = False
        except BaseException:
            self.close()
            raise

    def arena(self, index=0):
        """The arena PynqBuffer number `index`."""
        arena = getattr(self, ("_arena", "_arena_1", "_arena_2")[index], None) if 0 <= index < 3 else None
        if arena is None:
            raise RuntimeError("this CodenetRunner is closed" if self._arena is None else
                               "arena {} does not exist (n_arenas = {})".format(index, self.n_arenas))
        return arena

    @property
    def n_arenas(self):
        return sum(getattr(self, n) is not None for n in ("_arena", "_arena_1", "_arena_2"))

    def input_region(self, index=0):
        """uint8 view of arena `index`'s input tensor bytes (NHWC), to be written in place."""
        off, n = self.model.input["offset"], self.model.input_bytes()
        return np.asarray(self.arena(index))[off:off + n]

    def run_quantized(self, x, index=0):
        """Float NCHW input -> the arena after the engine ran (one ap_start). Only the output
        regions of the returned arena are current: the others are not invalidated (on the board
        the CPU may see stale cache lines there)."""
        self.model.quantize_input(x, out=self.input_region(index))   # checks the shape before writing
        return self.run_prepared(index)

    def run_prepared(self, index=0):
        """Run the engine on arena `index`, whose input region the caller has written (one
        ap_start) -> the arena as a numpy array (its output regions current)."""
        arena = self.arena(index)
        off, n = self.model.input["offset"], self.model.input_bytes()
        if self._needs_reset:
            self.overlay.download()
            self.ip = getattr(self.overlay, self.ip.name)
            self.ip.set_model(self._program, self._weights, self.model.n_layers)
            self._needs_reset = False
        try:
            self.ip.run(arena, timeout_s=self.timeout_s, written=[(off, n)],
                        read=self.model.output_regions())
        except EngineTimeoutError:
            self._needs_reset = True
            raise
        return np.asarray(arena)

    def run(self, x):
        """Float NCHW input -> {ONNX output name: dequantized float32 NCHW array}."""
        return self.model.read_outputs(self.run_quantized(x))
