"""Driver of the CoDeNet engine (hls_src/codenet, VLNV pynq-deploy.org:hls:codenet:1.0).

One start runs a whole compiled network: the engine walks the program of layer descriptors."""
from ..engines.codenet_program import PROFILE_BEAT_BYTES
from .hls_ip import HlsIP


class CodenetDriver(HlsIP):
    bindto = ["pynq-deploy.org:hls:codenet:1.0"]

    def set_model(self, program, weights, n_layers):
        """Point the engine at a compiled program (uint32 PynqBuffer) and weights (uint8); once
        per model: the registers keep their values between frames."""
        program.flush()
        weights.flush()
        self.write_reg("program", program.physical_address)
        self.write_reg("weights", weights.physical_address)
        self.write_reg("n_layers", n_layers)

    def set_profile(self, profile_off):
        """Per-layer profile (FORMAT.md "Profile region"): the engine writes layer l's
        {start, end} cycle counter beat at arena byte profile_off + 16 * l; 0 turns it off. Kept
        between frames like the model's registers."""
        if profile_off % PROFILE_BEAT_BYTES or not 0 <= profile_off < 1 << 32:
            raise ValueError("profile_off must be a 32-bit multiple of {}, got {}".format(PROFILE_BEAT_BYTES, profile_off))
        self.write_reg("profile_off", profile_off)

    def run(self, arena, timeout_s=2.0, written=None, read=None):
        """One frame: the arena (uint8 PynqBuffer) holds the quantized input on entry and every
        output on return. Exactly one ap_start. `written` / `read`: the (byte offset, size) regions
        the host wrote before the frame / reads after it; only they are flushed / invalidated
        (default: the whole arena; 1.2 MB at 256x256, against about 0.5 MB of input and outputs)."""
        self._mark("flush")
        for off, size in written if written is not None else [(0, arena.size)]:
            arena[off:off + size].flush()
        self._mark("start")
        self.write_reg("arena", arena.physical_address)        # the engine's read port
        self.write_reg("arena_wr", arena.physical_address)     # its write port: the same buffer
        self.start()
        self.wait(timeout_s)
        self._mark("done")
        for off, size in read if read is not None else [(0, arena.size)]:
            arena[off:off + size].invalidate()
        self._mark("invalidated")
