"""`pynq-deploy bench bnn`: measured throughput on this machine + MODELLED Ultra96 figures."""
import ctypes
import os
import platform

import numpy as np

from ..engines import bnn_config as cfg
from ..platform.zu3eg import budget_line
from . import bnn_perf
from .timing import best_rate


def _ort_scores_and_rate(sess, x):
    feed = {sess.get_inputs()[0].name: x.transpose(0, 3, 1, 2).astype(np.float32)}
    return sess.run(None, feed)[0], best_rate(lambda: sess.run(None, feed), x.shape[0])


def bench_bnn(images=2000, csim_images=100, model=None):
    from ..compiler.bnn_model_file import load_bnn_model
    from ..datasets import load_fashion_mnist
    from ..engines.bnn_model import BnnEngineModel
    from ..engines.bnn_onnx import export_onnx
    from ..platform.manifest import load_manifest, resolve_overlay_dir
    manifest = load_manifest(resolve_overlay_dir("bnn"))
    words = load_bnn_model(manifest.model_dir(model)).words
    test, _ = load_fashion_mnist("test")
    x = test[np.arange(images) % len(test)][..., None]

    engine = BnnEngineModel()
    engine.load_params(words)
    numpy_scores = engine.classify(x)
    numpy_rate = best_rate(lambda: engine.classify(x), images)

    import onnxruntime as ort
    onnx_model = export_onnx(words)
    # default session options; the session (whose threads spin between runs) is gone on return,
    # before the C-sim is timed
    ort_scores, ort_rate = _ort_scores_and_rate(
        ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]), x)

    from ..engines.csim import load_csim_library
    lib = load_csim_library("bnn")
    xc = np.ascontiguousarray(x[:csim_images])
    out = np.zeros((csim_images, cfg.NUM_CLASSES), np.int32)
    lib.bnn_csim_run(ctypes.c_void_p(words.ctypes.data), None, None, ctypes.c_uint32(0), ctypes.c_uint32(0))
    run = lambda: lib.bnn_csim_run(None, ctypes.c_void_p(xc.ctypes.data), ctypes.c_void_p(out.ctypes.data),
                                   ctypes.c_uint32(1), ctypes.c_uint32(csim_images))
    csim_rate = best_rate(run, csim_images, repeats=1)

    measured = {
        "numpy_images_per_s": numpy_rate,
        "onnxruntime_images_per_s": ort_rate,
        "csim_images_per_s": csim_rate,
        "numpy_vs_onnxruntime": numpy_rate / ort_rate,
        "onnxruntime_scores_equal_engine": bool(np.array_equal(ort_scores.astype(np.int64), numpy_scores)),
        "csim_scores_equal_engine": bool(np.array_equal(out, numpy_scores[:csim_images])),
        "images": images, "csim_images": csim_images,
        "host": "{} ({} cores), Python {}".format(platform.machine(), os.cpu_count(), platform.python_version()),
        "onnxruntime": ort.__version__,
        "method": "best of 3 runs on one batch of real Fashion-MNIST test images; same process, same run; "
                  "onnxruntime with its default session options",
    }
    return {"measured": measured, "modelled": bnn_perf.modelled(), "zu3eg": bnn_perf.ZU3EG}


def print_bench(r):
    m, mod = r["measured"], r["modelled"]
    print("BNN benchmark")
    print("  measured on this machine ({}):".format(m["host"]))
    print("    numpy engine model     {:10.0f} images/s".format(m["numpy_images_per_s"]))
    print("    onnxruntime (+-1 ONNX) {:10.0f} images/s   numpy/onnxruntime = {:.2f}x".format(
        m["onnxruntime_images_per_s"], m["numpy_vs_onnxruntime"]))
    print("    HLS C-simulation       {:10.1f} images/s".format(m["csim_images_per_s"]))
    print("    same scores: onnxruntime {}, C-sim {}".format(m["onnxruntime_scores_equal_engine"],
                                                            m["csim_scores_equal_engine"]))
    print("  MODELLED Ultra96-V2 (analytical model, not measured on a board):")
    print("    {:.0f} MHz: {:.0f} images/s, latency {:.3f} ms, bottleneck {}".format(
        mod["clock_mhz"], mod["images_per_s"], mod["latency_ms"], mod["bottleneck_layer"]))
    print("    {} ({:.0%})".format(budget_line(mod), mod["lut_fraction_of_zu3eg"]))
