"""Common register access of a Vitis HLS IP with an `s_axilite` control block (ap_ctrl_hs)."""
import time

from pynq import DefaultIP

from ..errors import EngineBusyError, EngineTimeoutError, OverlayError
from ..platform.ap_ctrl import AP_DONE, AP_IDLE, AP_START, CTRL_OFFSET


class HlsIP(DefaultIP):
    """Registers by name, with the offsets PYNQ parsed (the .hwh on the board, the manifest in
    simulation). A 64-bit pointer is one 64-bit register or `name_1`/`name_2` words.

    Not locked itself: a start / wait sequence must run under the IP's lock
    (`platform.pl_state.ip_lock`), which `Classifier` and `CodenetRunner` hold around each frame;
    `wait` reads the clear-on-read ap_done, so only the lock holder may poll it."""

    def __init__(self, description):
        super().__init__(description)
        self.name = description.get("fullpath", "ip")
        self._offsets = {}
        for reg_name, reg in (description.get("registers") or {}).items():
            self._offsets[reg_name] = (int(reg["address_offset"]), int(reg["size"]))
        # a list to receive (event, time.perf_counter()) marks of each call's phases (cache
        # flush, start, done, invalidated), for runtime.measure.latency; None: not recorded
        self.timeline = None

    def _mark(self, event):
        if self.timeline is not None:
            self.timeline.append((event, time.perf_counter()))

    def _offset(self, name):
        if name in self._offsets:
            return self._offsets[name]
        if name + "_1" in self._offsets:
            return self._offsets[name + "_1"][0], 64
        raise OverlayError("IP {} has no register {!r} (registers: {})".format(
            self.name, name, sorted(self._offsets)))

    def write_reg(self, name, value):
        offset, size = self._offset(name)
        value = int(value)
        if value < 0 or value >= (1 << size):
            raise ValueError("value {} does not fit the {}-bit register {}.{}".format(value, size, self.name, name))
        self.mmio.write(offset, value & 0xFFFFFFFF)
        if size == 64:
            self.mmio.write(offset + 4, value >> 32)

    def read_reg(self, name):
        offset, size = self._offset(name)
        value = self.mmio.read(offset)
        if size == 64:
            value |= self.mmio.read(offset + 4) << 32
        return value

    @property
    def idle(self):
        return bool(self.mmio.read(CTRL_OFFSET) & AP_IDLE)

    def start(self):
        if not self.idle:
            raise EngineBusyError("{}: cannot start, the engine is still busy from an earlier "
                                     "start (ap_idle = 0); reload the overlay to reset it".format(self.name))
        self.mmio.write(CTRL_OFFSET, AP_START)

    def wait(self, timeout_s):
        """Poll ap_done (clear-on-read) until it rises or timeout_s passes."""
        deadline = time.monotonic() + timeout_s
        delay = 0.0
        while True:
            ctrl = self.mmio.read(CTRL_OFFSET)
            if ctrl & AP_DONE:
                return
            if time.monotonic() > deadline:
                raise EngineTimeoutError(
                    "{}: ap_done not raised within {:.3g} s (CTRL = 0x{:02X}); the engine is hung "
                    "or its inputs are wrong. The overlay will be reloaded before the next "
                    "call".format(self.name, timeout_s, ctrl))
            if delay:
                time.sleep(delay)
            delay = min(max(delay * 2, 20e-6), 5e-3)
