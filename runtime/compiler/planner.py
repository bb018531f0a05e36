"""Arena planning: give every buffer a byte offset so that buffers alive at the same time never
overlap (first fit, lowest offset; buffers whose lifetimes are disjoint share memory)."""

ALIGN = 64


def _align(n, a=ALIGN):
    return (n + a - 1) // a * a


def plan_arena(buffers, align=ALIGN):
    """buffers: list of dicts with size, first, last (inclusive step indices of the first write and
    the last read) and optionally `fixed` (a required offset). Returns (offsets, arena size).
    Two buffers may share bytes only when one's last read comes strictly before the other's first
    write, so a layer never writes over its own input."""
    order = sorted(range(len(buffers)), key=lambda i: (buffers[i].get("fixed") is None, buffers[i]["first"],
                                                       -buffers[i]["size"]))
    placed, offsets = [], [0] * len(buffers)
    for i in order:
        b = buffers[i]
        live = [(offsets[j], offsets[j] + buffers[j]["size"]) for j in placed
                if not (buffers[j]["last"] < b["first"] or b["last"] < buffers[j]["first"])]
        if b.get("fixed") is not None:
            off = b["fixed"]
        else:
            off = 0
            for lo, hi in sorted(live):
                if off + b["size"] <= lo:
                    break
                off = max(off, _align(hi, align))
        offsets[i] = off
        placed.append(i)
    size = max([offsets[i] + buffers[i]["size"] for i in range(len(buffers))] + [0])
    return offsets, _align(size, align)
