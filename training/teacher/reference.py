"""Run the original TF.js teacher graph (pure-JS TensorFlow.js, cpu backend, under node) to check
the ONNX conversion against it.

    run_tfjs(inputs) -> {"detections": N x 100 x 6, "keypoints": N x 128 x 128 x 80, "wh": ...}
    run_tfjs(inputs, model_json, outputs={key: tensor name}) -> {key: N x ...}   any graph

Needs node + npm (Debian: nodejs npm); fetch_tfjs() npm-installs @tensorflow/tfjs-core,
-backend-cpu and -converter 4.22.0 into <cache>/teacher/node once.
"""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from training.teacher.fetch import TeacherMissing, fetch_tfjs, require_weights

SCRIPT = Path(__file__).with_name("tfjs_reference.js")
TIMEOUT_S = 1800


def run_tfjs(inputs, model_json=None, outputs=None):
    """inputs: float32 N x (the graph's input shape), for the teacher N x 512 x 512 x 3 (NHWC,
    RGB 0..255). Returns the graph's outputs (NHWC), by default the teacher's three."""
    inputs = np.ascontiguousarray(inputs, dtype="<f4")
    node = shutil.which("node")
    if node is None:
        raise TeacherMissing("node not found: install Node.js (Debian: `apt-get install nodejs npm`)")
    model_json = Path(model_json) if model_json is not None else require_weights()
    modules = fetch_tfjs() / "node_modules"
    with tempfile.TemporaryDirectory(prefix="tfjs_ref.") as tmp:
        tmp = Path(tmp)
        inputs.tofile(str(tmp / "input.f32"))
        env = dict(os.environ, NODE_PATH=str(modules))
        done = subprocess.run([node, str(SCRIPT), str(model_json), str(tmp / "input.f32"),
                               str(len(inputs)), str(tmp / "out")]
                              + ([json.dumps(outputs)] if outputs else []), env=env, timeout=TIMEOUT_S,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True)
        if done.returncode != 0:
            raise RuntimeError("tfjs_reference.js failed ({}):\n{}".format(done.returncode,
                                                                          done.stdout[-3000:]))
        meta = json.loads((tmp / "out" / "outputs.json").read_text())
        return {name: np.fromfile(str(tmp / "out" / (name + ".f32")), "<f4").reshape(shape)
                for name, shape in meta["shapes"].items()}
