"""The simulated programmable logic: a `pynq.Device` subclass used when no board is present.

PYNQ's own `Overlay`, `DefaultIP`, `MMIO`, `RegisterMap` and `allocate` run unchanged on it:

- `allocate` returns `PynqBuffer`s with simulated physical addresses from a simulated CMA pool.
  Buffers are *not* coherent, as on the board: the simulated engine sees the host's data only
  after `flush()` and the host sees the engine's results only after `invalidate()`, so a driver
  that forgets a cache operation fails here too.
- Every IP of the manifest gets a register file reached through the `REGISTER_RW` capability of
  `MMIO` (`read_registers` / `write_registers`).
- Writing `ap_start` runs the IP model (C-simulation of the HLS code, or the bit-exact numpy
  model), which reads the registers and the buffers they point to, computes, writes its outputs
  and raises `ap_done` / `ap_idle` / `ap_ready`, as the Vitis HLS `ap_ctrl_hs` block does.
- Faults can be injected to test the host's handling of a misbehaving engine (`inject_fault`:
  a hang, outputs of garbage, an engine that never returns to idle). Pending faults survive a
  download, as a broken bitstream or board would.
- One simulated PL per process (`process_device`), as a board has one PL and one CMA pool.
"""
import importlib
import itertools
import numbers
import threading
from collections import Counter, deque

import numpy as np
from pynq.buffer import PynqBuffer
from pynq.pl_server.device import Device

from ..errors import AllocationError, OverlayError, SimulationError
from .ap_ctrl import AP_DONE, AP_IDLE, AP_READY, AP_START, HOST_WRITABLE
from .manifest import load_manifest

CMA_BASE = 0x6000_0000
DEFAULT_CMA_BYTES = 512 * 1024 * 1024
PAGE = 4096

# engine name (manifest "engine") -> "module:class" of its simulated IP model
IP_MODELS = {
    "bnn": "runtime.engines.bnn_ip:BnnIPModel",
    "codenet": "runtime.engines.codenet_ip:CodenetIPModel",
}
ENGINES = ("numpy", "csim")
# fault kind -> what the next start of the IP does
FAULTS = {
    "hang": "never finishes: ap_done and ap_idle stay low until the PL is reprogrammed",
    "garbage": "finishes and raises ap_done, but every byte it wrote holds random values",
    "never_idle": "finishes and raises ap_done with correct outputs, but ap_idle stays low",
}
MAX_FAULT_COUNT = 1 << 20


class SimBuffer(PynqBuffer):
    """A PynqBuffer in simulated CMA memory. Only the allocation itself frees its pages."""

    def freebuffer(self):
        if getattr(self, "_sim_owner", False) and not self.freed:
            self.freed = True
            self.device._release(self.bo)


class _Allocation:
    __slots__ = ("address", "nbytes", "host", "shadow", "freed")

    def __init__(self, address, nbytes, host):
        self.address = address
        self.nbytes = nbytes
        self.host = host                      # what the CPU sees (the PynqBuffer's storage)
        self.shadow = np.zeros(nbytes, np.uint8)  # what the engine sees (DDR behind the caches)
        self.freed = False


class SimMetadata:
    """Stands in for PYNQ's HWH parser: the dictionaries a .hwh would give, from the manifest."""

    def __init__(self, manifest):
        self.manifest = manifest
        self.engine = None                # set by load_overlay: the engine the download builds
        self.ip_dict = {}
        for name, ip in manifest.ips.items():
            self.ip_dict[name] = {
                "fullpath": name, "type": ip["vlnv"], "bdtype": None, "state": None,
                "phys_addr": ip["phys_addr"], "addr_range": ip["addr_range"],
                "mem_id": "s_axi_control", "memtype": "REGISTER", "gpio": {}, "interrupts": {},
                "parameters": {"C_S_AXI_CONTROL_ADDR_WIDTH": "16"},
                "registers": manifest.pynq_registers(name),
            }
        self.gpio_dict = {}
        self.interrupt_controllers = {}
        self.interrupt_pins = {}
        self.hierarchy_dict = {}
        self.mem_dict = {"PSDDR": {"base_address": 0, "size": 1 << 32, "type": "DDR", "used": 1,
                                   "raw_type": None, "tag": "PSDDR", "streaming": False,
                                   "idx": 0, "memtype": "MEMORY"}}
        self.clock_dict = {}  # PL clocks are set by the PS on the board; nothing to set here
        self.systemgraph = None


class _SimIP:
    """Register file + IP model + fault state of one simulated IP."""

    def __init__(self, name, spec, model):
        self.name = name
        self.spec = spec
        self.base = spec["phys_addr"]
        self.size = spec["addr_range"]
        self.regs = np.zeros(self.size // 4, np.uint32)
        self.model = model
        self.hung = False
        self.stuck_busy = False
        self.reset()

    def reset(self):
        self.regs[:] = 0
        self.regs[0] = AP_IDLE
        self.hung = False
        self.stuck_busy = False
        self.model.reset()

    def reg(self, name):
        r = self.spec["registers"][name]
        value = int(self.regs[r["offset"] // 4])
        if r["size"] == 64:
            value |= int(self.regs[r["offset"] // 4 + 1]) << 32
        return value


class SimulatedPL(Device):
    """A simulated Ultra96 PL behind PYNQ's Device seam (no `_probe_`: it is never picked by
    PYNQ's own probing, only by the runtime when no board is present)."""

    _counter = itertools.count()

    def __init__(self, engine="numpy", cma_bytes=DEFAULT_CMA_BYTES):
        if engine not in ENGINES:
            raise ValueError("engine must be one of {}, not {!r}".format(ENGINES, engine))
        super().__init__("simulated_pl{}".format(next(self._counter)))
        self.name = "Ultra96-V2 (simulated PL)"
        self.engine = engine
        self.capabilities = {"REGISTER_RW": True, "MEMORY_MAPPED": False, "CALLABLE": False}
        self.cma_bytes = int(cma_bytes)
        self._allocs = {}                  # bo id -> _Allocation
        self._bo_ids = itertools.count(1)
        self._next_free = CMA_BASE
        self._free_ranges = []             # (address, nbytes) of released allocations
        self._lock = threading.RLock()
        self.ips = {}
        self.faults = {}                   # IP name -> deque of pending fault kinds (kept over downloads)
        self._rng = np.random.default_rng(0)
        self.manifest = None
        self.bitfile_name = None
        self.timestamp = ""
        self.starts = Counter()            # ap_start pulses per IP since the last download
        self.register_log = deque(maxlen=4096)  # (ip, offset, value) of every register write
        self.cache_bytes = Counter()       # bytes flushed / invalidated by the host, as on the board

    # ---- PYNQ Device API ------------------------------------------------------------------
    def get_bitfile_metadata(self, bitfile_name, partial=False):
        """Called by pynq.Overlay: in simulation the 'bitfile' is the overlay's manifest."""
        return SimMetadata(load_manifest(_parent(bitfile_name)))

    def download(self, bitstream, parser=None):
        """'Program' the simulated PL: fresh register files and empty on-chip memories. Pending
        faults stay pending (reprogramming does not repair a broken design)."""
        if isinstance(parser, SimMetadata):
            manifest, engine = parser.manifest, parser.engine or self.engine
        else:
            manifest, engine = load_manifest(_parent(bitstream.bitfile_name)), self.engine
        ips = {}
        for name, spec in manifest.ips.items():
            ips[name] = _SimIP(name, spec, _make_ip_model(spec, engine, manifest))
        with self._lock:
            self.ips = ips
            self.manifest = manifest
            self.engine = engine
            self.starts = Counter()
        self.bitfile_name = bitstream.bitfile_name
        self.post_download(bitstream, parser)

    def read_registers(self, address, length):
        ip, offset = self._find_ip(address, length)
        with self._lock:
            words = ip.regs[offset // 4: (offset + length + 3) // 4].copy()
            if offset == 0:
                ip.regs[0] &= ~np.uint32(AP_DONE | AP_READY)  # clear-on-read, as Vitis HLS does
        return words.tobytes()[:length]

    def write_registers(self, address, data):
        ip, offset = self._find_ip(address, len(data))
        if len(data) % 4 or offset % 4:
            raise SimulationError("unaligned AXI-Lite write to {} at 0x{:X}".format(ip.name, offset))
        values = np.frombuffer(bytes(data), np.uint32)
        with self._lock:
            for i, v in enumerate(values):
                off = offset + 4 * i
                self.register_log.append((ip.name, off, int(v)))
                if off == 0:
                    self._write_ctrl(ip, int(v))
                else:
                    ip.regs[off // 4] = v

    @property
    def default_memory(self):
        return self

    def allocate(self, shape, dtype="u4", cacheable=True, **kwargs):
        """Simulated CMA allocation: page-aligned, physically 'contiguous', bounded pool."""
        dtype = np.dtype(dtype)
        shape = (shape,) if np.isscalar(shape) else tuple(shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        size = max(PAGE, -(-nbytes // PAGE) * PAGE)
        with self._lock:
            address = self._take(size)
            bo = next(self._bo_ids)
            host = np.zeros(max(nbytes, 1), np.uint8)
            self._allocs[bo] = _Allocation(address, size, host)
        buf = SimBuffer(shape, dtype, buffer=host.data, device=self, device_address=address,
                        bo=bo, coherent=not cacheable)
        buf._sim_owner = True
        return buf

    def flush(self, bo, offset, ptr, size):
        a = self._alloc(bo)
        a.shadow[offset:offset + size] = a.host[offset:offset + size]
        self.cache_bytes["flush"] += size

    def invalidate(self, bo, offset, ptr, size):
        a = self._alloc(bo)
        a.host[offset:offset + size] = a.shadow[offset:offset + size]
        self.cache_bytes["invalidate"] += size

    # ---- what the IP models use ------------------------------------------------------------
    def dma(self, address, nbytes, what):
        """The engine's view (uint8) of [address, address + nbytes) in simulated DDR. Raises
        SimulationError if it is not inside one live allocation (a bus error on the board)."""
        with self._lock:
            for a in self._allocs.values():
                if a.address <= address < a.address + a.nbytes:
                    if address + nbytes > a.address + a.nbytes:
                        raise SimulationError(
                            "{}: DMA of {} bytes at 0x{:X} runs past the end of its buffer "
                            "(0x{:X} + {} bytes)".format(what, nbytes, address, a.address, a.nbytes))
                    off = address - a.address
                    return a.shadow[off:off + nbytes]
        raise SimulationError("{}: DMA at 0x{:X} does not fall in any allocated buffer "
                              "(an unset or stale pointer register)".format(what, address))

    def dma_extent(self, address, what):
        """The engine's view from `address` to the end of the allocation holding it (for IPs that
        are given a base pointer and compute their own offsets, e.g. an activation arena)."""
        with self._lock:
            for a in self._allocs.values():
                if a.address <= address < a.address + a.nbytes:
                    return a.shadow[address - a.address:]
        raise SimulationError("{}: DMA at 0x{:X} does not fall in any allocated buffer "
                              "(an unset or stale pointer register)".format(what, address))

    def inject_fault(self, ip_name, kind="hang", count=1):
        """Make the next `count` starts of `ip_name` misbehave as `kind` (see FAULTS)."""
        if kind not in FAULTS:
            raise ValueError("unknown fault {!r}; supported: {}".format(kind, ", ".join(sorted(FAULTS))))
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) \
                or not 1 <= count <= MAX_FAULT_COUNT:
            raise ValueError("fault count must be an integer in 1..{}, got {!r}".format(MAX_FAULT_COUNT, count))
        with self._lock:
            self._ip(ip_name)
            self.faults.setdefault(ip_name, deque()).extend([kind] * int(count))

    def pending_faults(self, ip_name):
        with self._lock:
            return list(self.faults.get(ip_name, ()))

    def reset_ip(self, ip_name):
        """Pulse the IP's reset (what reprogramming the PL does): idle, on-chip memories lost."""
        with self._lock:
            self._ip(ip_name).reset()

    @property
    def live_allocations(self):
        """Number of buffers allocated and not freed."""
        with self._lock:
            return len(self._allocs)

    @property
    def cma_used(self):
        with self._lock:
            return sum(a.nbytes for a in self._allocs.values())

    # ---- internals -------------------------------------------------------------------------
    def _write_ctrl(self, ip, value):
        ip.regs[0] = (ip.regs[0] & ~np.uint32(HOST_WRITABLE)) | np.uint32(value & HOST_WRITABLE)
        if not value & AP_START:
            return
        if not ip.regs[0] & AP_IDLE:
            return  # a start while busy is ignored, as in hardware
        self.starts[ip.name] += 1
        pending = self.faults.get(ip.name)
        fault = pending.popleft() if pending else None
        if fault == "hang":
            ip.hung = True
            ip.regs[0] = (ip.regs[0] & ~np.uint32(AP_IDLE | AP_DONE | AP_READY)) | np.uint32(AP_START)
            return
        ip.regs[0] = (ip.regs[0] & ~np.uint32(AP_IDLE | AP_DONE)) | np.uint32(AP_START)
        before = self._snapshot_targets(ip) if fault == "garbage" else None
        try:
            ip.model.start(ip.reg, self)
        finally:
            # the block returns to idle whether or not the model raised (the error propagates)
            ip.stuck_busy = ip.stuck_busy or fault == "never_idle"
            idle = 0 if ip.stuck_busy else AP_IDLE
            ip.regs[0] = (ip.regs[0] & ~np.uint32(AP_START | AP_IDLE)) | np.uint32(AP_DONE | AP_READY | idle)
        if before is not None:
            self._scramble_writes(before)

    def _snapshot_targets(self, ip):
        """Copies of every allocation a 64-bit (pointer) register of `ip` points into."""
        out = []
        for name, r in ip.spec["registers"].items():
            if r["size"] != 64:
                continue
            a = self._alloc_at(ip.reg(name))
            if a is not None and all(a is not b for b, _ in out):
                out.append((a, a.shadow.copy()))
        return out

    def _scramble_writes(self, before):
        """The 'garbage' fault: every byte the engine changed gets a random value."""
        for a, old in before:
            changed = np.flatnonzero(a.shadow != old)
            a.shadow[changed] = self._rng.integers(0, 256, changed.size, dtype=np.uint8)

    def _alloc_at(self, address):
        for a in self._allocs.values():
            if a.address <= address < a.address + a.nbytes:
                return a
        return None

    def _find_ip(self, address, length):
        for ip in self.ips.values():
            if ip.base <= address and address + length <= ip.base + ip.size:
                return ip, address - ip.base
        raise SimulationError("AXI-Lite access at 0x{:X} hits no IP of the loaded overlay".format(address))

    def _ip(self, name):
        if name not in self.ips:
            raise OverlayError("no IP {!r} in the loaded overlay (has {})".format(name, sorted(self.ips)))
        return self.ips[name]

    def _alloc(self, bo):
        a = self._allocs.get(bo)
        if a is None:
            raise SimulationError("cache operation on a freed buffer (bo {})".format(bo))
        return a

    def _take(self, size):
        for i, (addr, n) in enumerate(self._free_ranges):
            if n >= size:
                if n == size:
                    del self._free_ranges[i]
                else:
                    self._free_ranges[i] = (addr + size, n - size)
                return addr
        if self._next_free + size > CMA_BASE + self.cma_bytes:
            top = CMA_BASE + self.cma_bytes - self._next_free
            free = top + sum(n for _, n in self._free_ranges)
            largest = max([top] + [n for _, n in self._free_ranges])
            why = ("fragmented: {} bytes are free in total but the largest contiguous block is {} "
                   "bytes".format(free, largest) if free >= size else
                   "{} of the {} MiB contiguous pool in use".format(self.cma_bytes - free, self.cma_bytes >> 20))
            raise AllocationError(
                "CMA allocation of {} bytes failed: {} (free unused buffers, or allocate smaller "
                "batches)".format(size, why))
        addr = self._next_free
        self._next_free += size
        return addr

    def _release(self, bo):
        with self._lock:
            a = self._allocs.pop(bo, None)
            if a is None:
                return
            # coalesce neighbouring free ranges; give the top one back to the unused space
            ranges = sorted(self._free_ranges + [(a.address, a.nbytes)])
            merged = []
            for addr, n in ranges:
                if merged and merged[-1][0] + merged[-1][1] == addr:
                    merged[-1] = (merged[-1][0], merged[-1][1] + n)
                else:
                    merged.append((addr, n))
            if merged and merged[-1][0] + merged[-1][1] == self._next_free:
                self._next_free = merged.pop()[0]
            self._free_ranges = merged


def _parent(path):
    from pathlib import Path
    return Path(path).parent


def _make_ip_model(spec, engine, manifest):
    target = IP_MODELS.get(spec["engine"])
    if target is None:
        raise OverlayError("no simulation model for engine {!r} (IP {})".format(spec["engine"], spec["vlnv"]))
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(engine=engine, manifest=manifest)


_process_device = None
_process_device_lock = threading.Lock()


def process_device():
    """The simulated PL of this process (made on first use): like a board, a process has one PL
    and one CMA pool, whatever number of overlays and objects it makes."""
    global _process_device
    with _process_device_lock:
        if _process_device is None:
            _process_device = SimulatedPL()
        return _process_device
