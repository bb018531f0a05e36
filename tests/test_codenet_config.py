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
