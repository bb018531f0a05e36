"""Objects that own PYNQ buffers free them on every path: close(), `with`, garbage collection."""


class BufferOwner:
    """Subclasses list the attribute names of their PynqBuffers in `_buffer_names`."""

    _buffer_names = ()

    def close(self):
        self._free_buffers()

    def _free_buffers(self):
        for name in self._buffer_names:
            buf = getattr(self, name, None)
            if buf is not None:
                buf.freebuffer()
                setattr(self, name, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # Never close() here: a subclass's close may wait for a lock (SharedIP: the IP's frame
        # lock), and the collector runs finalizers on whatever thread allocates, e.g. a worker
        # the lock's holder is waiting for (a deadlock). An unreachable object has no frame in
        # flight, so its buffers are freed without the lock.
        try:
            self._free_buffers()
        except Exception:
            pass
