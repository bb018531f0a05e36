"""runtime/engines/codenet_config.py mirrors hls_src/codenet/codenet_config.h."""
import pytest

from runtime.engines import codenet_config as cfg


def test_header_and_python_constants_agree():
    header = cfg.check_header_agrees()
    for name in cfg.HEADER_REQUIRED:
        assert header[name] == getattr(cfg, name), name
    shared = [n for n in header if hasattr(cfg, n)]
    assert len(shared) >= 40                 # engine limits, descriptor words, codes, blob layout
    assert header["DESC_WORDS"] == 32 and header["W_WORD_BYTES"] == cfg.PA // 2


def test_format_md_defaults():
    """The defaults of FORMAT.md's constant table."""
    assert (cfg.PA, cfg.PE, cfg.CLOCK_MHZ, cfg.MAX_CH, cfg.MAX_W, cfg.MAX_H) == (16, 16, 250, 1024, 256, 256)
    assert (cfg.W_BUF_BYTES, cfg.MAX_LAYERS, cfg.ACC_BITS, cfg.LINE_ROWS, cfg.MAX_DIL) == (262144, 512, 24, 15, 7)
    assert cfg.DESC_WORDS == 32 and cfg.LINE_ROWS == 2 * cfg.MAX_DIL + 1


def test_mismatch_is_reported(tmp_path):
    import re
    text = re.sub(r"constexpr int CLOCK_MHZ = \d+;", "constexpr int CLOCK_MHZ = 200;", cfg.header_path().read_text())
    bad = tmp_path / "codenet_config.h"
    bad.write_text(text)
    with pytest.raises(ValueError, match="CLOCK_MHZ = 200 in the header but 250"):
        cfg.check_header_agrees(bad)


def test_missing_constant_is_reported(tmp_path):
    lines = [ln for ln in cfg.header_path().read_text().splitlines() if "constexpr int LINE_ROWS" not in ln]
    bad = tmp_path / "codenet_config.h"
    bad.write_text("\n".join(lines))
    with pytest.raises(ValueError, match="LINE_ROWS"):
        cfg.check_header_agrees(bad)


def test_training_side_copies_agree_with_the_header():
    """training/codenet keeps its own MAX_DIL (it must not import runtime's engine package at
    training time); it is the header's."""
    from tests.conftest import require_torch
    require_torch()
    from training.codenet import network
    assert network.MAX_DIL == cfg.check_header_agrees()["MAX_DIL"]


def test_compiler_uses_the_engine_constants_not_literals():
    """The compiler's dilation bound is MAX_DIL from the mirror (no literal 7 in the lowering)."""
    import re
    from runtime.compiler import frontend
    src = open(frontend.__file__).read()
    assert frontend.MAX_DIL == cfg.MAX_DIL
    assert not re.search(r"<= 7\b|0, 7\)|0\.\.7", src)


# ---- one home per constant: no literal copies elsewhere -------------------------------------
# Each pattern is a literal copy of a constant that has one home (named on the right); the scan
# covers runtime/, training/ and tests/ (Python), the homes themselves excepted.
LITERAL_COPIES = [
    (r"\b70_?560\b", "the ZU3EG LUT count: runtime.platform.zu3eg.LUT"),
    (r"(\]|\)|\{\})\s*(<=|/)\s*360\b|\"dsp\":\s*360\b", "the ZU3EG DSP count: runtime.platform.zu3eg.DSP"),
    (r"(\]|\)|\{\})\s*(<=|/)\s*216\b|\"bram36\":\s*216\b", "the ZU3EG BRAM36 count: runtime.platform.zu3eg.BRAM36"),
    (r"\b0\.7\s*\*\s*(\d|ZU3EG)", "the LUT target: runtime.platform.zu3eg.LUT_TARGET_FRACTION"),
    (r"\bAP_(START|DONE|IDLE|READY)\b[\w\s,]*=\s*(0x)?\d", "the ap_ctrl_hs bits: runtime.platform.ap_ctrl"),
    (r"\b0x81\b", "AP_START | AUTO_RESTART: runtime.platform.ap_ctrl.HOST_WRITABLE"),
    (r"\bin_mode\s*(==|!=|=)\s*\d", "the input mode codes: codenet_config.MODE_*"),
    (r"//\s*16\)\s*\*\s*16\b", "the beat size: codenet_config.ARENA_BUS_BYTES"),
    (r"\bMAX_DIL\s*=\s*\d|clamp=\(0,\s*7\)", "the largest dilation: codenet_config.MAX_DIL"),
    (r"\b250(\.0)?e6\b|\b250_000_000\b", "the clock: CLOCK_MHZ of the engine's config"),
    # every other constant of codenet_config.h, by name
    (r"^\s*(" + "|".join(sorted(set(cfg.check_header_agrees()) - {"MAX_DIL"})) + r")\s*=\s*\d",
     "an engine constant redefined: the engine's config module"),
]
LITERAL_HOMES = {"runtime/engines/codenet_config.py", "runtime/engines/bnn_config.py",
                 "runtime/platform/zu3eg.py", "runtime/platform/ap_ctrl.py",
                 "training/codenet/network.py",        # its MAX_DIL: test_training_side_copies_agree...
                 "tests/test_codenet_config.py"}


def literal_copies(root, files=None):
    """[(path, line number, what)] of every LITERAL_COPIES match outside LITERAL_HOMES."""
    import re
    from pathlib import Path
    root = Path(root)
    if files is None:
        files = [p for d in ("runtime", "training", "tests") for p in sorted((root / d).rglob("*.py"))]
    found = []
    for p in files:
        rel = p.relative_to(root).as_posix()
        if rel in LITERAL_HOMES:
            continue
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            for pat, what in LITERAL_COPIES:
                if re.search(pat, line):
                    found.append((rel, n, what))
    return found


def test_no_literal_copies_of_constants_with_one_home():
    from runtime.paths import repo_root
    assert literal_copies(repo_root()) == []


def test_the_literal_scan_finds_planted_copies(tmp_path):
    """Each pattern of the scan catches the copy it names (the scan above cannot pass vacuously)."""
    planted = ['print("LUT {} / 70560")', 'assert r["dsp"] <= 360', 'ZU3EG = {"bram36": 216}',
               'assert lut <= 0.7 * ZU3EG["lut"]', "AP_START, AP_DONE = 0x1, 0x2",
               "regs[0] &= ~0x81", "if spec.in_mode == 2:", "return -(-n // 16) * 16", "MAX_DIL = 7",
               "fps = 250e6 / cycles", "    MODE_UPSAMPLE2 = 1"]
    (tmp_path / "runtime").mkdir()
    f = tmp_path / "runtime" / "planted.py"
    f.write_text("\n".join(planted) + "\n")
    found = literal_copies(tmp_path, [f])
    assert [n for _, n, _ in found] == list(range(1, len(planted) + 1))
    assert {w for _, _, w in found} == {w for _, w in LITERAL_COPIES}
