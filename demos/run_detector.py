#!/usr/bin/env python3
"""Run the CoDeNet detector on a camera, a video, an image or a folder of images.

    python demos/run_detector.py 0                                  # camera 0, in a window
    python demos/run_detector.py street.mp4 --headless --output out.mp4 --json-lines dets.jsonl
    python demos/run_detector.py photos/ --headless --output annotated/ --max-frames 50

On an Ultra96-V2 with the codenet bitstream the network runs on the PL; elsewhere on the
simulated PL (bit-exact numpy engine by default, `--backend csim` for the HLS C-simulation).
Per-stage milliseconds (pre-processing, PL, post-processing) and fps are drawn on every frame and
summarised at the end. Same as `pynq-deploy detect`.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing

from runtime.detect_app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
