"""CoDeNet engine constants (mirror of hls_src/codenet/codenet_config.h, the one source of truth;
contract: hls_src/codenet/FORMAT.md).

`check_header_agrees` (run by the tests) proves that every constant below that the header also
defines has the header's value, and that the header defines every engine limit listed in
`HEADER_REQUIRED`.
"""
from pathlib import Path

from .bnn_config import read_header_constants as _read_header

# ---- engine parameters (FORMAT.md "Engine constants") ----
PA = 16                 # input channels consumed per cycle (1x1)
PE = 16                 # output channels produced per cycle (1x1); dw: PE channels x 9 taps
CLOCK_MHZ = 250
MAX_CH = 1024           # max channels of any layer input/output
MAX_W = 256             # max tensor width (line buffers)
MAX_H = 256             # max tensor height
W_BUF_BYTES = 262144    # on-chip weight buffer: one layer's packed weights must fit
MAX_LAYERS = 512        # max descriptors in a program
ACC_BITS = 24           # signed accumulator width
LINE_ROWS = 15          # deformable line buffer rows
MAX_DIL = 7             # max dilation

# ---- program format ----
DESC_WORDS = 32         # uint32 words per layer descriptor

OP_CONV1X1 = 0
OP_DW3X3 = 1

MODE_DIRECT = 0
MODE_UPSAMPLE2 = 1
MODE_PATCH3X3 = 2

FLAG_IN_SIGNED = 1 << 0
FLAG_OUT_SIGNED = 1 << 1
FLAG_DEFORMABLE = 1 << 2
FLAG_SHIFT_ONLY = 1 << 3
FLAG_W8 = 1 << 4

# descriptor word indices
W_OP, W_IN_OFF, W_IN_H, W_IN_W, W_IN_CS, W_CIN, W_IN_MODE, W_STRIDE, W_IN_ZP, W_FLAGS = range(10)
W_OUT_OFF, W_OUT_H, W_OUT_W, W_OUT_CS, W_OUT_CHOFF, W_COUT = range(10, 16)
W_GATHER_OFF, W_W_OFF, W_Q_OFF, W_CLAMP_LO, W_CLAMP_HI, W_DIL_OFF, W_DIL_CS, W_PAD = range(16, 24)

SECTION_ALIGN = 8       # weights-blob sections are 8-byte aligned
REQUANT_RECORD_BYTES = 8
MAX_SHIFT = 31
MAX_MULT = 32767

# the engine limits the header must define (checked by check_header_agrees)
HEADER_REQUIRED = ("PA", "PE", "CLOCK_MHZ", "MAX_CH", "MAX_W", "MAX_H", "W_BUF_BYTES",
                   "MAX_LAYERS", "ACC_BITS", "LINE_ROWS", "MAX_DIL", "DESC_WORDS")


def header_path():
    return Path(__file__).resolve().parents[2] / "hls_src" / "codenet" / "codenet_config.h"


def read_header_constants(path=None):
    """Parse codenet_config.h: {NAME: int} for every `constexpr` / `#define` integer constant."""
    return _read_header(path or header_path())


def check_header_agrees(path=None):
    """Raise ValueError naming the first constant whose value differs between the header and this
    module, or an engine limit the header lacks; return the header's constants otherwise."""
    path = path or header_path()
    header = read_header_constants(path)
    here = {k: v for k, v in globals().items()
            if k.isupper() and isinstance(v, int) and not isinstance(v, bool)}
    for name in sorted(header):
        if name in here and header[name] != here[name]:
            raise ValueError("{}: {} = {} in the header but {} in codenet_config.py".format(
                path, name, header[name], here[name]))
    missing = [n for n in HEADER_REQUIRED if n not in header]
    if missing:
        raise ValueError("{}: engine constant {} of codenet_config.py is missing from the header".format(
            path, missing[0]))
    return header
