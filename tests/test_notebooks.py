"""The board notebooks, executed as Jupyter runs them (nbclient, an ipykernel) on the simulated PL:
their code is what a user runs, and every cell must succeed."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "demos" / "notebooks").glob("*.ipynb"))

# what each notebook must print on the simulated PL (a notebook without an entry fails: add one)
EXPECTED = {
    "bnn_classifier.ipynb": [r"PL: sim", r"accuracy 0\.[89]\d{3} on 10000 images"],
    "latency.ipynb": [r"PL: sim", r"bnn on the simulated PL", r"PL compute\s+MODELLED",
                      r"codenet on the simulated PL", r"wrote .*latency\.json .*latency\.csv .*latency\.png"],
    "detector.ipynb": [r"PL: sim", r"people: [2-9]", r"people per frame: ([2-9]|1\d)\.\d"],
    "power.ipynb": [r"no power sensors: PYNQ's get_rails\(\) finds no PMBus power rails",
                    r"no board: nothing measured"],
}


def executed_text(path, workdir):
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                out.append(o["text"])
            elif o.get("output_type") in ("execute_result", "display_data"):
                out.append(o.get("data", {}).get("text/plain", ""))
    return "".join(out)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes_on_the_simulated_pl(path, tmp_path):
    import re
    assert path.name in EXPECTED, "no expected output listed for {}".format(path.name)
    text = executed_text(path, tmp_path)
    for pattern in EXPECTED[path.name]:
        assert re.search(pattern, text), "{}: {!r} not in the output:\n{}".format(path.name, pattern, text[-3000:])
    if path.name == "latency.ipynb":
        assert (tmp_path / "latency_out" / "latency.png").is_file()
