"""The board notebooks run, cell by cell, on the simulated PL (their code is what a user runs)."""
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "demos" / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_code_runs_on_the_simulated_pl(path, capsys):
    nb = json.loads(path.read_text())
    scope = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "{}:cell".format(path.name), "exec"), scope)
    out = capsys.readouterr().out
    assert "PL: sim" in out
    if path.name == "bnn_classifier.ipynb":
        assert "accuracy 0.8" in out or "accuracy 0.9" in out
    if path.name == "detector.ipynb":
        import re
        assert int(re.search(r"people: (\d+)", out).group(1)) >= 2
        assert float(re.search(r"people per frame: ([\d.]+)", out).group(1)) >= 2
