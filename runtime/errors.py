"""Every error the runtime raises on purpose. Each message names the problem and the fix."""


class PynqDeployError(RuntimeError):
    """Base class of the runtime's errors."""


class OverlayError(PynqDeployError):
    """An overlay directory, manifest, bitstream or .hwh is missing or inconsistent."""


class ModelError(PynqDeployError):
    """A compiled model file is missing, corrupt, truncated or does not fit the engine."""


class InputError(PynqDeployError, ValueError):
    """An input (image, batch, tensor) has the wrong shape, dtype or value range."""


class EngineTimeoutError(PynqDeployError, TimeoutError):
    """A hardware wait (ap_done, DMA idle) did not finish within its timeout."""


class EngineBusyError(EngineTimeoutError):
    """An engine is not idle when a start is due: it never returned to idle after an earlier one."""


class EngineError(PynqDeployError):
    """The engine finished, but what it returned cannot be right (outputs out of their range)."""


class SimulationError(PynqDeployError):
    """The simulated PL detected something that would misbehave on the board
    (a DMA outside any allocated buffer, a start without weights loaded, ...)."""


class AllocationError(PynqDeployError, MemoryError):
    """A contiguous (CMA) buffer could not be allocated."""


class DatasetError(PynqDeployError):
    """A dataset is missing or its files are not what they claim to be."""
