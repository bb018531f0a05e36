"""PYNQ drivers of our HLS IPs: `pynq.DefaultIP` subclasses bound by VLNV. Importing this package
registers them with PYNQ, so `Overlay.<ip>` is our driver on the board and in simulation alike."""
from .hls_ip import HlsIP  # noqa: F401
from .bnn import BnnDriver  # noqa: F401
from .codenet import CodenetDriver  # noqa: F401
