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
    _buffer_names = ("_program", "_weights", "_arena")

    def __init__(self, model, overlay="codenet", pl="auto", engine="numpy", timeout_s=TIMEOUT_S):
        self.model = model if isinstance(model, CompiledModel) else CompiledModel.load(model)
        self.overlay, self.manifest, self.pl = load_overlay(overlay, pl=pl, engine=engine)
        self.engine = engine if self.pl == "sim" else "fpga"
        self.timeout_s = float(timeout_s)
        names = [n for n, ip in self.manifest.ips.items() if ip["engine"] == "codenet"]
        if not names:
            raise OverlayError("overlay {} has no codenet IP".format(self.manifest.name))
        self.ip = getattr(self.overlay, names[0])
        self._program = self._weights = self._arena = None
        try:
            dev = self.overlay.device
            self._program = pynq.allocate(self.model.program.shape, np.uint32, target=dev)
            self._weights = pynq.allocate(self.model.weights.shape, np.uint8, target=dev)
            self._arena = pynq.allocate((self.model.arena_size,), np.uint8, target=dev)
            self._program[:] = self.model.program
            self._weights[:] = self.model.weights
            self._arena[:] = 0
            self._arena.flush()        # once: a frame then flushes only the input it writes
            self.ip.set_model(self._program, self._weights, self.model.n_layers)
            self._needs_reset = False
        except BaseException:
            self.close()
            raise

    def run_quantized(self, x):
        """Float NCHW input -> the arena after the engine ran (one ap_start). Only the output
        regions of the returned arena are current: the others are not invalidated (on the board
        the CPU may see stale cache lines there)."""
        if self._arena is None:
            raise RuntimeError("this CodenetRunner is closed")
        off, n = self.model.input["offset"], self.model.input_bytes()
        self.model.quantize_input(x, out=self._arena[off:off + n])   # checks the shape before writing
        if self._needs_reset:
            self.overlay.download()
            self.ip = getattr(self.overlay, self.ip.name)
            self.ip.set_model(self._program, self._weights, self.model.n_layers)
            self._needs_reset = False
        try:
            self.ip.run(self._arena, timeout_s=self.timeout_s, written=[(off, n)],
                        read=self.model.output_regions())
        except EngineTimeoutError:
            self._needs_reset = True
            raise
        return np.asarray(self._arena)

    def run(self, x):
        """Float NCHW input -> {ONNX output name: dequantized float32 NCHW array}."""
        return self.model.read_outputs(self.run_quantized(x))
