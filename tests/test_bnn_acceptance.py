"""The shipped BNN model through the CLI, on real Fashion-MNIST test images, on the simulated PL."""
import json

import numpy as np
from runtime.cli import main
from runtime.engines import bnn_config
from runtime.platform import zu3eg
from tests.conftest import require_torch


def run_cli(args, tmp_path, name="out.json"):
    out = tmp_path / name
    rc = main(args + ["--json", str(out)])
    return rc, json.loads(out.read_text())


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["pl"] == "simulated"
    bnn = info["overlays"]["bnn"]
    assert bnn["ips"] == {"bnn_0": "pynq-deploy.org:hls:bnn:1.0"}
    assert bnn["models"]["fashion_mnist"]["present"] is True
    assert "codenet" in info["overlays"]


def test_classify_all_10000_test_images_numpy(tmp_path):
    rc, r = run_cli(["classify", "--dataset", "fashion-mnist", "--engine", "numpy", "--quiet",
                     "--predictions", str(tmp_path / "pred.npy")], tmp_path)
    assert rc == 0
    assert r["images"] == 10000 and r["engine"] == "numpy" and r["pl"] == "sim"
    assert r["accuracy"] >= 0.88, r
    assert r["images_per_s"] > 0


def test_csim_makes_the_same_predictions_as_numpy(tmp_path):
    rc, r_np = run_cli(["classify", "--limit", "1000", "--engine", "numpy", "--quiet",
                        "--predictions", str(tmp_path / "np.npy")], tmp_path, "np.json")
    rc2, r_cs = run_cli(["classify", "--limit", "1000", "--engine", "csim", "--quiet",
                         "--predictions", str(tmp_path / "cs.npy")], tmp_path, "cs.json")
    assert rc == rc2 == 0 and r_cs["engine"] == "csim" and r_cs["images"] == 1000
    pred_np, pred_cs = np.load(tmp_path / "np.npy"), np.load(tmp_path / "cs.npy")
    assert pred_np.shape == (1000,)
    assert np.array_equal(pred_np, pred_cs)
    assert r_np["accuracy"] == r_cs["accuracy"]


def test_verify_bnn_three_levels_agree(tmp_path):
    rc, r = run_cli(["verify", "bnn", "--limit", "200"], tmp_path)
    assert rc == 0 and r["levels"] == ["hls_csim", "numpy"] and r["mismatches"] == 0
    require_torch()
    from training.verify import main as training_verify
    assert training_verify(["bnn", "--limit", "200", "--json", str(tmp_path / "v3.json")]) == 0
    r = json.loads((tmp_path / "v3.json").read_text())
    assert r["images"] == 200
    assert r["levels"] == ["hls_csim", "numpy", "torch_integer"]
    assert r["mismatches"] == 0 and all(v == 0 for v in r["pairwise_mismatches"].values())


def test_bench_bnn_json(tmp_path):
    rc, r = run_cli(["bench", "bnn", "--images", "500", "--csim-images", "20"], tmp_path)
    assert rc == 0
    m, mod = r["measured"], r["modelled"]
    for key in ("numpy_images_per_s", "csim_images_per_s", "onnxruntime_images_per_s"):
        assert m[key] > 0
    assert m["onnxruntime_scores_equal_engine"] and m["csim_scores_equal_engine"]
    assert mod["clock_mhz"] <= bnn_config.CLOCK_MHZ and mod["dsp"] == 0
    assert mod["lut"] <= zu3eg.LUT_TARGET_FRACTION * zu3eg.LUT and mod["bram36"] <= zu3eg.BRAM36
    assert mod["images_per_s"] >= 5311
    assert "MODELLED" in mod["label"]


def test_the_numpy_engine_reuses_one_thread_pool():
    """Batches run on the process's one worker pool: calling predict again and again starts no
    threads (each new thread can cost another malloc arena: RSS creeping over a long soak), and
    the predictions do not depend on how the chunks were spread over the workers."""
    import threading
    from runtime.classifier import Classifier
    from runtime.datasets import load_fashion_mnist
    images, _ = load_fashion_mnist("test")
    with Classifier(pl="sim") as clf:
        want = clf.predict(images[:1000])
        threads = threading.active_count()
        for _ in range(5):
            assert np.array_equal(clf.predict(images[:1000]), want)
        assert threading.active_count() == threads
        assert any(t.name.startswith("numpy-engine") for t in threading.enumerate())
    from runtime.engines.parallel import run_spread
    seen = []
    run_spread(seen.append, range(10), 3)
    assert sorted(seen) == list(range(10))


def test_a_forked_child_gets_a_pool_of_its_own():
    """fork() copies the pool object but none of its threads: the child must not submit to it
    (the work would never run). The child classifies and exits within the timeout."""
    import multiprocessing
    from runtime.engines.parallel import run_spread
    import time
    run_spread(lambda i: time.sleep(0.05), range(4), 2)   # both of the parent's workers exist
    time.sleep(0.2)                                        # and are idle
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_spread_in_child)
    p.start()
    p.join(60)
    alive = p.is_alive()
    if alive:
        p.kill()
    assert not alive and p.exitcode == 0


def _spread_in_child():
    from runtime.engines.parallel import run_spread
    seen = []
    run_spread(seen.append, range(10), 2)
    assert sorted(seen) == list(range(10))


def test_run_spread_inside_a_pool_thread_runs_serially():
    from runtime.engines.parallel import run_spread, shared_pool
    seen = []
    shared_pool().submit(run_spread, seen.append, range(6), 2).result(timeout=30)
    assert sorted(seen) == list(range(6))
