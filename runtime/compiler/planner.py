"""Arena planning: give every buffer a byte offset so that buffers alive at the same time never
overlap (first fit, lowest offset; buffers whose lifetimes are disjoint share memory)."""
from dataclasses import dataclass, field
from typing import List, Optional

ALIGN = 64


@dataclass(eq=False)
class Buffer:
    """One arena buffer: h x w pixels of `cs` bytes holding the channels of its member tensors
    (several when a consumer reads their channels together, e.g. a Concat). first / last: step
    indices of its first write and its last read (inclusive); fixed: a required offset."""
    h: int
    w: int
    cs: int
    first: int
    last: int
    fixed: Optional[int] = None
    members: List[int] = field(default_factory=list)     # tensor ids, in write order

    @property
    def size(self) -> int:
        return self.h * self.w * self.cs


def _align(n, a=ALIGN):
    return (n + a - 1) // a * a


def plan_arena(buffers, align=ALIGN):
    """buffers: list of Buffer (size, first, last and fixed are read). Returns (offsets, arena size).
    Two buffers may share bytes only when one's last read comes strictly before the other's first
    write, so a layer never writes over its own input."""
    order = sorted(range(len(buffers)), key=lambda i: (buffers[i].fixed is None, buffers[i].first,
                                                       -buffers[i].size))
    placed, offsets = [], [0] * len(buffers)
    for i in order:
        b = buffers[i]
        live = [(offsets[j], offsets[j] + buffers[j].size) for j in placed
                if not (buffers[j].last < b.first or b.last < buffers[j].first)]
        if b.fixed is not None:
            off = b.fixed
        else:
            off = 0
            for lo, hi in sorted(live):
                if off + b.size <= lo:
                    break
                off = max(off, _align(hi, align))
        offsets[i] = off
        placed.append(i)
    size = max([offsets[i] + buffers[i].size for i in range(len(buffers))] + [0])
    return offsets, _align(size, align)
