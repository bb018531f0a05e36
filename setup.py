"""pynq-deploy: quantized CNNs (CoDeNet detector, multiplier-free BNN) on Ultra96-V2 through PYNQ."""
import runpy
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PATHS = runpy.run_path(str(HERE / "runtime" / "paths.py"))   # no runtime import: deps not there yet
# build products and editor litter that never ship
EXCLUDED_PARTS = {"__pycache__", ".ipynb_checkpoints", "build"}
EXCLUDED_SUFFIXES = (".pyc", "_prj")


def _shipped(path):
    parts = path.relative_to(HERE).parts
    return not (set(parts) & EXCLUDED_PARTS or any(p.endswith(EXCLUDED_SUFFIXES) for p in parts))


class BuildPyWithData(build_py):
    """A wheel carries overlays/, hls_src/ and demos/ inside the package, under runtime/_data/
    (where runtime.paths looks first), as PYNQ packages ship their overlays and notebooks. An
    editable install reads them from the checkout instead."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / PATHS["PACKAGED_DATA"].relative_to(PATHS["PACKAGE_DIR"].parent)
        shutil.rmtree(str(target), ignore_errors=True)      # nothing stale from an earlier build
        for folder in PATHS["DATA_FOLDERS"]:
            for src in sorted((HERE / folder).rglob("*")):
                if src.is_file() and _shipped(src):
                    dst = target / src.relative_to(HERE)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(str(src), str(dst))

setup(
    name="pynq-deploy",
    version="0.1.0",
    description="Runtime and HLS accelerators for quantized CNNs on the Ultra96-V2 via PYNQ, "
                "with a simulated PL when no board is present",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.8",
    packages=find_packages(include=["runtime", "runtime.*"]),
    install_requires=[
        "pynq>=3.0",
        "numpy>=1.21,<2",            # as PYNQ pins; the board image ships numpy 1.x
        "onnx>=1.14",
        # pynq 4 needs grpcio-tools 1.64, i.e. protobuf < 6; without this bound pip backtracks
        # to an older pynq whose metadata names a git URL, which pip refuses
        "protobuf<6",
        "opencv-python-headless>=4.7,<5",   # 4.7: cv2.dnn.NMSBoxesBatched (teacher labels)
        "threadpoolctl>=3",          # single-threaded BLAS per worker thread in the numpy engines
        # pynqutils imports pkg_resources, which setuptools removed after 80
        "setuptools<=80",
    ],
    extras_require={
        # the C-simulation: Xilinx's ap_int/ap_fixed headers ship inside the hls4ml wheel
        "sim": ["hls4ml>=0.8"],
        # training code (training/): install torch first, e.g. `pip install torch==2.13.0`
        # (the teacher detector runs on onnxruntime; tqdm shows its progress)
        "train": ["torch>=2.0", "onnxruntime>=1.16", "tqdm>=4", "pycocotools>=2.0.7"],
        # detector evaluation (`pynq-deploy evaluate-detector`): AP from pycocotools
        "eval": ["pycocotools>=2.0.7"],
        # latency / power measurement (the PYNQ board image already has both)
        "measure": ["matplotlib>=3.3", "pandas>=1.1"],
        "dev": ["pytest>=7", "hypothesis>=6", "onnxruntime>=1.16", "nbclient>=0.7", "nbformat>=5",
                "ipykernel>=6", "matplotlib>=3.3", "pandas>=1.1", "pycocotools>=2.0.7"],
    },
    cmdclass={"build_py": BuildPyWithData},
    entry_points={
        "console_scripts": ["pynq-deploy=runtime.cli:main"],
        # `pynq get-notebooks pynq-deploy` delivers demos/notebooks (see runtime/notebooks)
        "pynq.notebooks": ["pynq-deploy = runtime.notebooks"],
    },
)
