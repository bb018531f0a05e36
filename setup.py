"""pynq-deploy: quantized CNNs (CoDeNet detector, multiplier-free BNN) on Ultra96-V2 through PYNQ."""
from setuptools import find_packages, setup

setup(
    name="pynq-deploy",
    version="0.1.0",
    description="Runtime and HLS accelerators for quantized CNNs on the Ultra96-V2 via PYNQ, "
                "with a simulated PL when no board is present",
    long_description=open("README.md").read(),
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
        "dev": ["pytest>=7", "hypothesis>=6", "onnxruntime>=1.16", "pycocotools>=2.0.7"],
    },
    entry_points={"console_scripts": ["pynq-deploy=runtime.cli:main"]},
)
