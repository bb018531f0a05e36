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
from .errors import InputError, OverlayError
from .platform.buffers import BufferOwner
from .platform.overlay import load_overlay
from .platform.shared_ip import SharedIP
from .validate import check_finite

TIMEOUT_S = 2.0


class CodenetRunner(SharedIP, BufferOwner):
    """Thread-safe: one frame at a time runs on the engine, under the IP's lock."""

    _buffer_names = ("_program", "_weights", "_arena")

    def __init__(self, model, overlay="codenet", pl="auto", engine="numpy", timeout_s=TIMEOUT_S):
        self.model = model if isinstance(model, CompiledModel) else CompiledModel.load(model)
        self.overlay, self.manifest, self.pl = load_overlay(overlay, pl=pl, engine=engine)
        self.engine = engine if self.pl == "sim" else "fpga"
        self.timeout_s = float(timeout_s)
        if not 0 < self.timeout_s < float("inf"):
            raise ValueError("timeout_s must be a positive number of seconds, got {!r}".format(timeout_s))
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
            self._attach()
            self._locked_call(lambda: None)      # points the engine at the program
        except BaseException:
            self.close()
            raise

    def _configure(self):
        """Point the engine at this runner's program and weights (under the IP's lock)."""
        self.ip.set_model(self._program, self._weights, self.model.n_layers)

    def _check(self, x):
        if self._arena is None:
            raise RuntimeError("this CodenetRunner is closed")
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":
            raise InputError("input must be a numeric array, got dtype {}".format(x.dtype))
        return check_finite(x, "input {!r}".format(self.model.input["name"]))

    def _frame(self, x):
        """Quantize x into the arena and run the engine once (under the IP's lock)."""
        off, n = self.model.input["offset"], self.model.input_bytes()
        self.model.quantize_input(x, out=self._arena[off:off + n])   # checks the shape before writing
        self.ip.run(self._arena, timeout_s=self.timeout_s, written=[(off, n)],
                    read=self.model.output_regions())
        return np.asarray(self._arena)

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
