"""The package as a board user installs it: a wheel built from this checkout, installed into a
fresh virtual environment (its dependencies from the package registry; no torch, hls4ml or
onnxruntime), and run from a directory outside the checkout."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOT_IN_THE_RUNTIME = ("torch", "hls4ml", "onnxruntime")


def _clean_env():
    """This process's environment without what points Python at the checkout or another venv
    (with PYTHONPATH on the checkout, pip would take its egg-info for an installed package)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def _run(cmd, cwd, timeout=600, env=None):
    r = subprocess.run([str(c) for c in cmd], cwd=str(cwd), capture_output=True, text=True,
                       timeout=timeout, env=env if env is not None else _clean_env())
    assert r.returncode == 0, "{} failed ({}):\n{}\n{}".format(" ".join(map(str, cmd)), r.returncode,
                                                              r.stdout[-3000:], r.stderr[-3000:])
    return r


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    """(venv bin folder, a working folder outside the checkout, the environment to run in)."""
    work = tmp_path_factory.mktemp("wheel_install")
    assert not (ROOT / "runtime" / "_data").exists(), "runtime/_data belongs in wheels, never in the checkout"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", work / "dist", ROOT], cwd=work)
    wheels = sorted((work / "dist").glob("pynq_deploy-*.whl"))
    assert len(wheels) == 1
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=work)
    bin_dir = venv / "bin"
    # the runtime's dependencies come from the registry (pip's cache makes a second run quick)
    _run([bin_dir / "python", "-m", "pip", "install", "-q", wheels[0]], cwd=work, timeout=1800)
    env = {"PATH": "{}:/usr/bin:/bin".format(bin_dir), "HOME": os.environ.get("HOME", str(work)),
           "PYNQ_DEPLOY_PL": "sim", "PYNQ_DEPLOY_CACHE": str(work / "cache")}
    run_dir = work / "elsewhere"
    run_dir.mkdir()
    return bin_dir, run_dir, env


def test_runtime_installs_without_training_or_simulation_extras(wheel_venv):
    bin_dir, run_dir, env = wheel_venv
    r = _run([bin_dir / "python", "-m", "pip", "list", "--format", "json"], cwd=run_dir, env=env)
    installed = {p["name"].lower().replace("_", "-") for p in json.loads(r.stdout)}
    assert {"pynq", "numpy", "onnx", "opencv-python-headless", "pynq-deploy"} <= installed
    assert not installed & set(NOT_IN_THE_RUNTIME), installed & set(NOT_IN_THE_RUNTIME)
    r = _run([bin_dir / "python", "-c", "import numpy, runtime; print(numpy.__version__, runtime.__file__)"],
             cwd=run_dir, env=env)
    numpy_version, location = r.stdout.split()
    assert numpy_version.startswith("1.")                      # as on the board image
    assert Path(location).resolve().is_relative_to(bin_dir.parent.resolve())   # not the checkout


def test_info_lists_both_overlays_and_their_models(wheel_venv):
    bin_dir, run_dir, env = wheel_venv
    info = json.loads(_run([bin_dir / "pynq-deploy", "info", "--json"], cwd=run_dir, env=env).stdout)
    assert info["pl"] == "simulated"
    assert set(info["overlays"]) >= {"bnn", "codenet"}
    bnn = info["overlays"]["bnn"]
    assert bnn["ips"] == {"bnn_0": "pynq-deploy.org:hls:bnn:1.0"}
    assert bnn["models"]["fashion_mnist"]["present"]
    assert info["overlays"]["codenet"]["ips"] == {"codenet_0": "pynq-deploy.org:hls:codenet:1.0"}
    # the overlays are the wheel's copy inside the installed package
    site = bin_dir.parent.resolve()
    assert Path(bnn["models"]["fashion_mnist"]["path"]).resolve().is_relative_to(site)
    assert Path(bnn["bitstream"]).parent.resolve().is_relative_to(site)


def test_bnn_classifies_real_images_on_the_simulated_pl(wheel_venv, tmp_path):
    bin_dir, run_dir, env = wheel_venv
    out = tmp_path / "classify.json"
    r = _run([bin_dir / "pynq-deploy", "classify", "--dataset", "fashion-mnist", "--limit", "500",
              "--quiet", "--json", out], cwd=run_dir, env=env)
    result = json.loads(out.read_text())
    assert result["pl"] == "sim" and result["engine"] == "numpy" and result["images"] == 500
    assert result["accuracy"] >= 0.85, r.stdout
    assert r.stdout.startswith("500 Fashion-MNIST test images on the simulated PL (numpy engine): accuracy")


def test_demo_scripts_and_sample_images_ship_with_the_wheel(wheel_venv, fmnist_test, tmp_path):
    import cv2
    bin_dir, run_dir, env = wheel_venv
    r = _run([bin_dir / "python", "-c", "from runtime.paths import demos_dir; print(demos_dir())"],
             cwd=run_dir, env=env)
    demos = Path(r.stdout.strip())
    assert (demos / "data" / "vtest_040.jpg").is_file()
    # a real test image (an ankle boot) as a photo would come: large, dark on white, BGR
    photo = cv2.resize(255 - fmnist_test[0][0], (280, 280), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(tmp_path / "boot.png"), cv2.cvtColor(photo, cv2.COLOR_GRAY2BGR))
    r = _run([bin_dir / "python", demos / "classify.py", tmp_path / "boot.png"], cwd=run_dir, env=env)
    assert r.stdout.splitlines()[1].startswith(str(tmp_path / "boot.png") + ": Ankle boot")


def test_pynq_get_notebooks_delivers_the_board_notebooks(wheel_venv, tmp_path):
    bin_dir, run_dir, env = wheel_venv
    r = _run([bin_dir / "pynq", "get-notebooks", "--list"], cwd=run_dir, env=env)
    assert "pynq-deploy (source: runtime)" in r.stdout
    target = tmp_path / "jupyter_notebooks"
    # -o: no overlay lookup by board name (our overlays ship inside the package, not as .link files)
    _run([bin_dir / "pynq", "get-notebooks", "pynq-deploy", "-o", "-p", target], cwd=run_dir, env=env)
    delivered = sorted(p.name for p in (target / "pynq-deploy").glob("*.ipynb"))
    shipped = sorted(p.name for p in (ROOT / "demos" / "notebooks").glob("*.ipynb"))
    assert shipped and delivered == shipped
