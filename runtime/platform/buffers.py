"""Objects that own PYNQ buffers free them on every path: close(), `with`, garbage collection."""


class BufferOwner:
    """Subclasses list the attribute names of their PynqBuffers in `_buffer_names`."""

    _buffer_names = ()

    def close(self):
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
        try:
            self.close()
        except Exception:
            pass
