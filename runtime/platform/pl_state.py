"""The one programmable logic of this process, and who may use its IPs when.

A board has one PL: downloading a bitstream replaces whatever was loaded and resets every IP
(registers and on-chip memories). This module is the process-wide record of that:

- `generation` counts downloads; `loaded` names what the PL holds now (the bitstream, and in
  simulation the engine behind it).
- every IP has one lock. A driver-level object (`Classifier`, `CodenetRunner`) holds it around a
  whole frame (buffers -> registers -> ap_start -> wait for ap_done -> read the results), so two
  threads sharing an object, or two objects sharing an IP, never interleave, and only the lock
  holder reads the clear-on-read `ap_done`.
- `owner` records which object's set-up (weights, program pointers) an IP holds, so an object
  re-does its set-up when another object, or a download, replaced it.
"""
import threading

from ..errors import OverlayError

_lock = threading.Lock()          # guards the fields below and every download
_ip_locks = {}                    # IP name -> threading.RLock
_owners = {}                      # IP name -> token of the object whose set-up the IP holds
_generation = 0
_loaded = None                    # identity of what the PL holds (see download)


def ip_lock(ip_name):
    """The lock every frame on IP `ip_name` holds (one per IP, process-wide). Re-entrant: a frame
    may close another object of the same IP. (The garbage collector never takes it:
    BufferOwner.__del__.)"""
    with _lock:
        lock = _ip_locks.get(ip_name)
        if lock is None:
            lock = _ip_locks[ip_name] = threading.RLock()
        return lock


def download(overlay, identity):
    """Program the PL with `overlay` (a pynq.Overlay made with download=False, or one already
    loaded, to reset it). `identity` (hashable) names what is loaded: objects made on another
    identity refuse to run afterwards. Returns the new generation."""
    global _generation, _loaded
    with _lock:
        overlay.download()
        _generation += 1
        _loaded = identity
        _owners.clear()
        return _generation


def generation():
    return _generation


def loaded():
    return _loaded


def owner(ip_name):
    return _owners.get(ip_name)


def set_owner(ip_name, token):
    _owners[ip_name] = token


def check_loaded(identity, what):
    """Raise OverlayError if the PL no longer holds `identity` (another overlay was downloaded)."""
    now = _loaded
    if now != identity:
        raise OverlayError(
            "{}: the PL was reprogrammed with {} since this object was made on {}; one PL holds one "
            "bitstream at a time: close this object and make a new one".format(
                what, _describe(now), _describe(identity)))


def _describe(identity):
    if identity is None:
        return "nothing"
    path, engine = identity
    return "{} ({})".format(path, "board" if engine is None else "simulated, {} engine".format(engine))
