"""CoDeNet engine constants (mirror of hls_src/codenet/codenet_config.h, the one source of truth;
contract: hls_src/codenet/FORMAT.md).

`check_header_agrees` (run by the tests) proves that every constant below that the header also
defines has the header's value, and that the header defines every engine limit listed in
`HEADER_REQUIRED`.
"""

from ..paths import repo_root
from .bnn_config import read_header_constants as _read_header

# ---- engine parameters (FORMAT.md "Engine constants") ----
PA = 16                 # input channels consumed per cycle (1x1)
PE = 16                 # output channels produced per cycle (1x1); dw: PE channels x 9 taps
CLOCK_MHZ = 250
MAX_CH = 1024           # max channels of any layer input/output
MAX_W = 256             # max tensor width (line buffers)
MAX_H = 256             # max tensor height
MAX_IMG = 1024          # conv1x1 / PATCH3X3 tensor height and width (read from DDR, no line buffer)
W_BUF_BYTES = 262144    # on-chip weight buffer: one layer's packed weights must fit
MAX_LAYERS = 512        # max descriptors in a program
ACC_BITS = 24           # signed accumulator width
LINE_ROWS = 15          # deformable line buffer rows
MAX_DIL = 7             # max dilation
TAPS = 9                # taps of a 3x3 window
REQUANT_STAGES = 1      # requantization stages, shared by both ops
ACT_VALUE_BITS = 9      # an activation value: int8 or uint8 (act_t)
PACK_SHIFT = 18         # the low field of a packed DSP48E2 product (bits)
CHAIN_4BIT = PA         # 1x1 MAC: packed DSPs per PCOUT -> PCIN cascade, 4-bit weights
CHAIN_8BIT = 4          # 1x1 MAC: packed DSPs per cascade, 8-bit weights (two per weight word)
DW_DSP_TAPS = 6         # depthwise: taps per channel on a DSP48E2 cascade (the rest on LUTs)

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
D_OP, D_IN_OFF, D_IN_H, D_IN_W, D_IN_CS, D_CIN, D_IN_MODE, D_STRIDE, D_IN_ZP, D_FLAGS = range(10)
D_OUT_OFF, D_OUT_H, D_OUT_W, D_OUT_CS, D_OUT_CHOFF, D_COUT = range(10, 16)
D_GATHER_OFF, D_W_OFF, D_Q_OFF, D_CLAMP_LO, D_CLAMP_HI, D_DIL_OFF, D_DIL_CS, D_PAD = range(16, 24)
D_RESERVED = 24         # words 24..31 are reserved, 0

FLAGS_ALL = 31

# ---- on-chip buffers (derived, as in the header) ----
W_WORD_BYTES = PA // 2                       # one 1x1 weight word: PA 4-bit or PA/2 8-bit weights
W_WORDS = 2176                               # weight words per PE lane (see the header)
MAX_K = MAX_CH                               # 1x1 inputs per pixel (PATCH3X3: 9 * cin)
CH_TILES = MAX_CH // PE
ARENA_BUS_BYTES = 16                         # arena / weights m_axi width (128-bit beats)
GROUP_PIX = 16                               # tensor layout v3: pixels of a row group (codenet_layout)
PIX_BEATS = 128                              # 1x1 on-chip pixel buffer (beats)
STREAM_BEATS = 64                            # stream depth between a DATAFLOW layer's stages (beats)
PATCH_ROW_BEATS = 256                        # streaming PATCH3X3: one input row in the row buffer (beats)
LB_COPIES = 2                                # dw line buffer: copies of each row bank (2 ports each)
TAP_COLS = 3                                 # tap columns of a 3x3 window

# ---- memory system and loop pipeline depths (sources in the header) ----
AXI_LATENCY = 64        # cycles from a request to its first beat / from the last write beat to its response
AXI_OUTSTANDING = 8     # requests in flight per port and direction (HP port acceptance capability)
AXI_MAX_BURST = 16      # beats per burst on the HP ports (AXI3 inside the PS)
PROG_MAX_BURST = DESC_WORDS
AXI_UNUSED_OUTSTANDING = 1
AXI_UNUSED_BURST = 2
DEPTH_MEM_LOOP = 3      # estimates until the first csynth report
DEPTH_XSRC_LOOP = 2
DEPTH_MAC_LOOP = 1 + 3 + CHAIN_4BIT - 1 + 1 + 1 + 3   # 24: the longest DSP cascade (header)
DEPTH_DW_PIXEL = 13

# ---- cycle accounting (C simulation) ----
PH_DESC, PH_LOAD, PH_READ, PH_COMPUTE, PH_WRITE, PH_ENTRIES = range(6)
N_PHASES = 6
EV_LOOP, EV_BURST, EV_SINGLES, EV_BLOCKING, EV_STEP, EV_QUEUED, EV_LATENCY = range(7)
EV_FIELDS = 5

# ---- weights blob ----
SECTION_ALIGN = 8       # weights-blob sections are 8-byte aligned
RQ_RECORD_BYTES = 8     # int32 bias, int16 M, uint8 S, int8 reserved
MAX_SHIFT = 31
MAX_PAD = 1             # 3x3 windows (DW3X3, PATCH3X3) take pad 0..MAX_PAD
MAX_MULT = 32767

# the engine limits the header must define (checked by check_header_agrees)
HEADER_REQUIRED = ("PA", "PE", "CLOCK_MHZ", "MAX_CH", "MAX_W", "MAX_H", "MAX_IMG", "W_BUF_BYTES",
                   "MAX_LAYERS", "ACC_BITS", "LINE_ROWS", "MAX_DIL", "DESC_WORDS", "AXI_LATENCY",
                   "AXI_OUTSTANDING", "AXI_MAX_BURST", "DEPTH_MEM_LOOP", "DEPTH_MAC_LOOP", "DEPTH_DW_PIXEL",
                   "EV_FIELDS", "N_PHASES", "STREAM_BEATS", "PATCH_ROW_BEATS", "LB_COPIES", "TAP_COLS",
                   "PIX_BEATS", "ARENA_BUS_BYTES", "CHAIN_4BIT", "CHAIN_8BIT",
                   "DW_DSP_TAPS", "ACT_VALUE_BITS", "PACK_SHIFT", "GROUP_PIX")


def header_path():
    return repo_root() / "hls_src" / "codenet" / "codenet_config.h"


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
