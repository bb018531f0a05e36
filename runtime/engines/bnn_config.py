"""BNN engine constants (mirror of hls_src/bnn/bnn_config.h, the one source of truth).

`check_header_agrees` (run by the tests) proves that every constant below has the header's value;
`read_header_constants` parses the header (`constexpr int NAME = expr;` and `#define NAME value`
lines, expressions of integers and earlier names with C integer semantics).
"""
import ast
import re
from pathlib import Path

BNN_FORMAT_VERSION = 1
BNN_MAGIC = 0x0000_0001_424E_4E31

IN_H, IN_W, IN_C = 28, 28, 1
C0, C1, C2, C3 = 32, 32, 64, 64
F0 = 256
NUM_CLASSES = 10
MAX_BATCH = 65536
TRIPCOUNT_IMAGES = 16   # LOOP_TRIPCOUNT estimate only

H0, W0 = IN_H - 2, IN_W - 2
H1, W1 = H0 - 2, W0 - 2
HP0, WP0 = H1 // 2, W1 // 2
H2, W2 = HP0 - 2, WP0 - 2
H3, W3 = H2 - 2, W2 - 2
HP1, WP1 = H3 // 2, W3 // 2
FC_IN = HP1 * WP1 * C3

K0, K1, K2, K3 = 9 * IN_C, 9 * C0, 9 * C1, 9 * C2
KF0, KF1 = FC_IN, F0

WPR0 = (K0 + 63) // 64
WPR1 = (K1 + 63) // 64
WPR2 = (K2 + 63) // 64
WPR3 = (K3 + 63) // 64
WPRF0 = (KF0 + 63) // 64
WPRF1 = (KF1 + 63) // 64

OFF_CONV0 = 1
OFF_CONV1 = OFF_CONV0 + C0 * WPR0 + C0 // 2
OFF_CONV2 = OFF_CONV1 + C1 * WPR1 + C1 // 2
OFF_CONV3 = OFF_CONV2 + C2 * WPR2 + C2 // 2
OFF_FC0 = OFF_CONV3 + C3 * WPR3 + C3 // 2
OFF_FC1 = OFF_FC0 + F0 * WPRF0 + F0 // 2
PARAM_WORDS = OFF_FC1 + NUM_CLASSES * WPRF1 + NUM_CLASSES

PE0, SIMD0 = 32, 1
PE1, SIMD1 = 8, 32
PE2, SIMD2 = 8, 32
PE3, SIMD3 = 8, 32
PEF0, SIMDF0 = 4, 64
PEF1, SIMDF1 = 1, 64

CLOCK_MHZ = 250

# DATAFLOW stream depths (bnn_config.h: one image of items into a stage that buffers its input)
FIFO_MIN = 2
FIFO_IMG = IN_H * IN_W
FIFO_C0 = H0 * W0
FIFO_P0 = HP0 * WP0
FIFO_C2 = H2 * W2
FIFO_F0IN = FC_IN // SIMDF0
FIFO_F0 = F0 // SIMDF1
# stream name in bnn_top.cpp -> (depth, width in bits)
FIFO_DEPTHS = {"s_img": FIFO_IMG, "s_c0": FIFO_C0, "s_c1": FIFO_MIN, "s_p0": FIFO_P0, "s_c2": FIFO_C2,
               "s_c3": FIFO_MIN, "s_p1": FIFO_MIN, "s_f0in": FIFO_F0IN, "s_f0": FIFO_F0, "s_sc": FIFO_MIN}
FIFO_WIDTHS = {"s_img": 8 * IN_C, "s_c0": C0, "s_c1": C1, "s_p0": C1, "s_c2": C2, "s_c3": C3, "s_p1": C3,
               "s_f0in": SIMDF0, "s_f0": SIMDF1, "s_sc": 32}

# m_axi settings (same as the CoDeNet engine's, codenet_config.h "memory system")
AXI_LATENCY = 64
AXI_OUTSTANDING = 8
AXI_MAX_BURST = 16
AXI_UNUSED_OUTSTANDING = 1
AXI_UNUSED_BURST = 2

SHIFT_MAX = 7            # FORMAT.md: SHIFT in 0..7
BIAS_LIMIT = 1 << 20     # FORMAT.md: |BIAS| <= 2^20

# (name, kind, in H, in W, Cin, Cout, PE, SIMD) in execution order; kind: conv0 / conv / pool / fc
LAYERS = (
    ("conv0", "conv0", IN_H, IN_W, IN_C, C0, PE0, SIMD0),
    ("conv1", "conv", H0, W0, C0, C1, PE1, SIMD1),
    ("pool0", "pool", H1, W1, C1, C1, 1, 1),
    ("conv2", "conv", HP0, WP0, C1, C2, PE2, SIMD2),
    ("conv3", "conv", H2, W2, C2, C3, PE3, SIMD3),
    ("pool1", "pool", H3, W3, C3, C3, 1, 1),
    ("fc0", "fc", 1, 1, FC_IN, F0, PEF0, SIMDF0),
    ("fc1", "fc", 1, 1, F0, NUM_CLASSES, PEF1, SIMDF1),
)


def _ceil_div(a, b):
    return -(-a // b)


def modelled_layer_cycles():
    """Modelled cycles per image and layer of the HLS kernel (II = 1 loops; formula in bnn_config.h):
    a dict name -> cycles. MODELLED, not measured."""
    cycles = {"read": IN_H * IN_W * IN_C}
    for name, kind, h, w, cin, cout, pe, simd in LAYERS:
        if kind in ("conv0", "conv"):
            cycles[name] = h * w + (h - 2) * (w - 2) * _ceil_div(cout, pe) * 9 * _ceil_div(cin, simd)
        elif kind == "pool":
            cycles[name] = h * w
        else:
            folds = _ceil_div(cin, simd)
            cycles[name] = folds + _ceil_div(cout, pe) * folds
    return cycles


def modelled_images_per_second(clock_mhz=CLOCK_MHZ):
    """Steady-state throughput of the DATAFLOW pipeline (slowest layer), MODELLED."""
    return clock_mhz * 1e6 / max(modelled_layer_cycles().values())


# ---------------------------------------------------------------- header parsing
_CONSTEXPR = re.compile(r"^\s*constexpr\s+(?:unsigned\s+|long\s+|int\s+)*\s*([A-Za-z_]\w*)\s*=\s*(.+?);\s*(//.*)?$")
_DEFINE = re.compile(r"^\s*#\s*define\s+([A-Za-z_]\w*)\s+(.+?)\s*(//.*)?$")
_INT_SUFFIX = re.compile(r"\b(0[xX][0-9a-fA-F']+|\d[\d']*)([uUlL]+)\b")


def _c_int_eval(expr, names):
    """Evaluate a C integer constant expression over ints and already-known names."""
    text = _INT_SUFFIX.sub(r"\1", expr).replace("'", "")
    tree = ast.parse(text, mode="eval")

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise ValueError("unknown name {!r} in {!r}".format(node.id, expr))
            return names[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            op = node.op
            if isinstance(op, ast.Add):
                return a + b
            if isinstance(op, ast.Sub):
                return a - b
            if isinstance(op, ast.Mult):
                return a * b
            if isinstance(op, (ast.Div, ast.FloorDiv)):   # C: truncation toward zero
                q = abs(a) // abs(b)
                return q if (a >= 0) == (b >= 0) else -q
            if isinstance(op, ast.Mod):
                return a - b * (abs(a) // abs(b) if (a >= 0) == (b >= 0) else -(abs(a) // abs(b)))
            if isinstance(op, ast.LShift):
                return a << b
            if isinstance(op, ast.RShift):
                return a >> b
        raise ValueError("unsupported expression {!r}".format(expr))

    return ev(tree)


def read_header_constants(path):
    """Parse bnn_config.h: {NAME: int} for every `constexpr` / `#define` integer constant."""
    names = {}
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        m = _CONSTEXPR.match(line) or _DEFINE.match(line)
        if not m:
            continue
        name, expr = m.group(1), m.group(2).strip()
        if name.endswith("_H") and not expr:      # include guard
            continue
        try:
            names[name] = _c_int_eval(expr, names)
        except (ValueError, SyntaxError) as exc:
            raise ValueError("{}:{}: cannot evaluate {}: {}".format(path, lineno, name, exc)) from None
    return names


def check_header_agrees(path):
    """Raise ValueError naming the first constant whose value differs between the header and this
    module (or that the header lacks); return the header's constants otherwise."""
    header = read_header_constants(path)
    here = {k: v for k, v in globals().items() if k.isupper() and isinstance(v, int)}
    for name in sorted(header):
        if name in here and header[name] != here[name]:
            raise ValueError("{}: {} = {} in the header but {} in bnn_config.py".format(
                path, name, header[name], here[name]))
    python_only = {"SHIFT_MAX", "BIAS_LIMIT"}
    missing = sorted(set(here) - set(header) - python_only)
    if missing:
        raise ValueError("{}: constant {} of bnn_config.py is missing from the header".format(path, missing[0]))
    return header
