"""What makes a driver-level object (`Classifier`, `CodenetRunner`) safe to share between threads
and robust to what happens to the PL between two of its calls.

Every frame runs as one call of `_locked_call(fn)`, under the IP's process-wide lock:
1. refuse if the PL now holds another bitstream (another overlay was loaded since);
2. reprogram the PL if the last frame failed (a hang leaves the engine busy);
3. redo the object's set-up (weights, program pointers) if the IP holds another object's, or if
   a download reset it;
4. run the frame; an engine still busy from an earlier frame (ap_idle never returned) gets one
   reprogram and one retry; a timeout or implausible outputs mark the PL for reprogramming
   before the next frame.
The lock costs one uncontended acquire per frame.
"""
from ..errors import EngineBusyError, EngineError, EngineTimeoutError, SimulationError
from . import pl_state

# failures after which the engine's state is unknown: reprogram before the next frame
ENGINE_FAILURES = (EngineTimeoutError, EngineError, SimulationError)


class SharedIP:
    """Mixin. Subclasses set `overlay`, `ip` and call `_attach()` once both exist, and define
    `_configure()` (load the object's set-up into the IP; runs under the lock)."""

    def _attach(self):
        self._identity = self.overlay.pl_identity
        self._ip_name = self.ip.name
        self._lock = pl_state.ip_lock(self._ip_name)
        self._token = object()
        self._needs_reset = False

    def _configure(self):
        raise NotImplementedError

    def close(self):
        """Free the buffers, never in the middle of another thread's frame."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return super().close()
        with lock:
            return super().close()

    def _locked_call(self, fn):
        with self._lock:
            self._prepare()
            try:
                return fn()
            except EngineBusyError:
                self._needs_reset = True
                self._prepare()
                return self._guarded(fn)
            except ENGINE_FAILURES:
                self._needs_reset = True
                raise

    def _guarded(self, fn):
        try:
            return fn()
        except ENGINE_FAILURES:
            self._needs_reset = True
            raise

    def _prepare(self):
        pl_state.check_loaded(self._identity, type(self).__name__)
        if self._needs_reset:
            pl_state.download(self.overlay, self._identity)
            self.ip = getattr(self.overlay, self._ip_name)
        if self._needs_reset or pl_state.owner(self._ip_name) is not self._token:
            try:
                self._configure()
            except ENGINE_FAILURES as e:
                self._needs_reset = True
                raise type(e)("{} (while setting the engine up again after a reprogram or another "
                              "object's use; the next call retries)".format(e)) from e
            pl_state.set_owner(self._ip_name, self._token)
            self._needs_reset = False
