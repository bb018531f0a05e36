"""demos/classify.py on real data: an IDX file and photo files."""
import subprocess
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
IDX = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
LABELS = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"


def run_demo(*args):
    return subprocess.run([sys.executable, str(ROOT / "demos" / "classify.py")] + list(args),
                          capture_output=True, text=True, cwd=str(ROOT), timeout=300,
                          env={"PYNQ_DEPLOY_PL": "sim", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())})


def test_classify_demo_on_the_idx_file():
    r = run_demo("--idx", IDX, "--labels", LABELS, "--limit", "200")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("BNN on the simulated PL (numpy engine), model fashion_mnist")
    assert lines[1].startswith("t10k-images-idx3-ubyte.gz[0]: Ankle boot")   # the first test image is a boot
    acc = float(lines[-1].split()[1])
    assert 0.8 <= acc <= 1.0


def test_classify_demo_on_photo_files(tmp_path):
    from runtime.datasets import load_fashion_mnist
    images, labels = load_fashion_mnist("test")
    # a test image as a photo would come: bigger, dark object on a white background, BGR
    photo = cv2.resize(255 - images[0], (280, 280), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(tmp_path / "boot.png"), cv2.cvtColor(photo, cv2.COLOR_GRAY2BGR))
    r = run_demo(str(tmp_path / "boot.png"), "--top", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].startswith(str(tmp_path / "boot.png") + ": Ankle boot")


def test_classify_demo_bad_file(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not an image")
    r = run_demo(str(tmp_path / "x.png"))
    assert r.returncode != 0 and "cannot read image" in (r.stdout + r.stderr)
