"""Mutation fuzzing of everything the runtime reads: ONNX models, compiled-model folders (both
formats), overlay manifests and image files. Shared by the CI tests (tests/test_hardening_fuzz.py,
hypothesis drives the `random.Random` each mutator draws from) and the long runs
(`python -m tests.fuzzing --seconds N`, which reports executions, raw tracebacks, crashes and
hangs).

Every target returns "ok" or "refused" (a PynqDeployError: the runtime's clear errors). Any other
exception is a raw traceback: a bug.
"""
import argparse
import copy
import json
import multiprocessing
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime.errors import PynqDeployError

TARGETS = ("onnx", "codenet_folder", "bnn_folder", "manifest", "image")
SPECIAL_FLOATS = [0.0, -0.02, 1e-30, 1e30, float("nan"), float("inf"), -float("inf"), 1e-45, 3.4e38, 0.5]
SPECIAL_INTS = [0, -1, 1, 2, 3, 5, 7, 255, 256, -128, 2 ** 31 - 1, 2 ** 31, 2 ** 63 - 1, -2 ** 63, 99]


def _value(rng):
    """A hostile JSON value."""
    return rng.choice([None, True, False, "", "x", [], {}, [1, 2], rng.choice(SPECIAL_INTS),
                       rng.choice([0.0, -1.5, 1e300, 1e-300, 0.5]), "0x10", "nan"])


# ------------------------------------------------------------------------------- ONNX models
_BASE = {}


def base_onnx():
    if "onnx" not in _BASE:
        from tests.hardening_models import small_qdq_net
        _BASE["onnx"] = small_qdq_net()
    return _BASE["onnx"]


def mutate_onnx(rng):
    """A mutant of the small QDQ network: serialized bytes (some are not even valid protobuf)."""
    m = copy.deepcopy(base_onnx())
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["attr", "init_value", "init_shape", "init_type", "input", "op", "opset", "ir",
                           "drop_node", "output_shape", "domain", "bytes"])
        try:
            out = _mutate_step(rng, m, kind)
        except (ValueError, KeyError, TypeError, IndexError):
            continue          # a mutation that cannot apply to an earlier mutant (e.g. type 999)
        if out is not None:
            return out
    return m.SerializeToString()


def _mutate_step(rng, m, kind):
    """Apply one mutation in place; returns serialized bytes when the mutation is on the bytes."""
    nodes, inits = m.graph.node, m.graph.initializer
    if kind == "attr":
        node = rng.choice([n for n in nodes if n.attribute] or list(nodes))
        if node.attribute:
            a = rng.choice(list(node.attribute))
            if a.type == onnx.AttributeProto.INTS:
                del a.ints[:]
                a.ints.extend(rng.choice(SPECIAL_INTS) for _ in range(rng.choice([0, 1, 2, 4])))
            elif a.type == onnx.AttributeProto.INT:
                a.i = rng.choice(SPECIAL_INTS)
        else:
            node.attribute.append(helper.make_attribute(rng.choice(["axis", "group", "kernel_shape", "strides"]),
                                                        rng.choice([1, 2, [5, 5], [2, 2]])))
    elif kind == "init_value":
        t = rng.choice(list(inits))
        arr = numpy_helper.to_array(t).copy()
        if arr.size:
            flat = arr.reshape(-1)
            if arr.dtype.kind == "f":
                flat[rng.randrange(flat.size)] = rng.choice(SPECIAL_FLOATS)
            else:
                info = np.iinfo(arr.dtype)
                flat[rng.randrange(flat.size)] = rng.choice([info.min, info.max, 0, 1])
            t.CopyFrom(numpy_helper.from_array(arr, t.name))
    elif kind == "init_shape":
        t = rng.choice(list(inits))
        arr = numpy_helper.to_array(t)
        new = rng.choice([arr.reshape(-1)[:1], np.concatenate([arr.reshape(-1)] * 2), arr.reshape(-1)[:0],
                          arr.reshape((1,) + arr.shape)])
        t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(new), t.name))
    elif kind == "init_type":
        t = rng.choice(list(inits))
        arr = numpy_helper.to_array(t)
        dt = rng.choice([np.float16, np.float64, np.int32, np.uint8, np.int8, np.int64])
        with np.errstate(all="ignore"):
            t.CopyFrom(numpy_helper.from_array(arr.astype(dt), t.name))
        if rng.random() < 0.3:
            t.data_type = rng.choice([TensorProto.INT4, TensorProto.UINT4, TensorProto.STRING, 999])
    elif kind == "input":
        node = rng.choice(list(nodes))
        names = [i.name for i in m.graph.input] + [t.name for t in inits] + [o for n in nodes for o in n.output]
        if node.input:
            node.input[rng.randrange(len(node.input))] = rng.choice(names + ["", "nowhere"])
    elif kind == "op":
        rng.choice(list(nodes)).op_type = rng.choice(["Conv", "Relu", "Add", "QuantizeLinear", "DequantizeLinear",
                                                      "Sigmoid", "Concat", "MaxPool", "Bogus"])
    elif kind == "opset":
        m.opset_import[0].version = rng.choice([1, 7, 10, 13, 19, 21, 99])
    elif kind == "ir":
        m.ir_version = rng.choice([0, 3, 7, 10, 99])
    elif kind == "drop_node":
        del nodes[rng.randrange(len(nodes))]
    elif kind == "output_shape":
        o = m.graph.output[0].type.tensor_type.shape
        del o.dim[:]
        for _ in range(rng.choice([0, 3, 4, 5])):
            o.dim.add().dim_value = rng.choice([1, 3, 6, 16, 7])
    elif kind == "domain":
        rng.choice(list(nodes)).domain = rng.choice(["com.microsoft", "qonnx.custom_op.general", "bogus"])
    else:
        data = bytearray(m.SerializeToString())
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[:rng.randrange(len(data))]
        return bytes(data)
    return None


def run_onnx(rng, workdir=None):
    from runtime.compiler.codenet_compiler import compile_onnx
    data = mutate_onnx(rng)
    try:
        cm = compile_onnx(data)
    except PynqDeployError:
        return "refused"
    _ort_accepts(data)                               # the compiler accepted: onnxruntime must too
    x = np.random.default_rng(0).random(cm.input["shape"], dtype=np.float32)
    cm.run_numpy(x)
    return "ok"


def _ort_accepts(data):
    import onnxruntime as ort
    m = onnx.load_from_string(data)
    if any(n.domain not in ("", "ai.onnx", "com.microsoft") for n in m.graph.node):
        return
    so = ort.SessionOptions()
    so.log_severity_level = 4
    ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------------- compiled folders
def _json_paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:8]):
            yield from _json_paths(v, prefix + (i,))


def _set(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value


def _mutate_json(rng, meta):
    paths = [p for p in _json_paths(meta) if p]
    for _ in range(rng.randint(1, 3)):
        p = rng.choice(paths)
        try:
            if rng.random() < 0.2 and isinstance(meta, dict):
                parent = meta
                for k in p[:-1]:
                    parent = parent[k]
                if isinstance(parent, dict):
                    parent.pop(p[-1], None)
                    continue
            _set(meta, p, _value(rng))
        except (KeyError, IndexError, TypeError):
            pass
    return meta


def _mutate_folder(rng, folder, array_files, rehash):
    from runtime.compiler.model_files import MODEL_SHA_FIELD, whole_model_sha256
    kind = rng.choice(["json", "json", "json_rehash", "array_bits", "truncate", "delete", "json_garbage"])
    meta_path = folder / "model.json"
    if kind in ("json", "json_rehash"):
        meta = _mutate_json(rng, json.loads(meta_path.read_text()))
        if kind == "json_rehash" and isinstance(meta, dict):
            try:
                meta[MODEL_SHA_FIELD] = whole_model_sha256(meta, rehash())
            except (TypeError, ValueError):
                pass
        meta_path.write_text(json.dumps(meta))
    elif kind == "json_garbage":
        meta_path.write_bytes(rng.choice([b"", b"{", b"[]", b"null", b"\xff\xfe", b'{"format": 1}']))
    else:
        p = folder / rng.choice(array_files + ["model.json"])
        data = bytearray(p.read_bytes())
        if kind == "array_bits" and data:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            p.write_bytes(bytes(data))
        elif kind == "truncate":
            p.write_bytes(bytes(data[:rng.randrange(len(data) + 1)]))
        else:
            p.unlink()


def run_codenet_folder(rng, workdir):
    from runtime.compiler.codenet_compiler import CompiledModel, compile_onnx
    base = Path(workdir) / "codenet_base"
    if not base.exists():
        compile_onnx(base_onnx()).save(base)
    d = Path(workdir) / "codenet_mut"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(base, d)
    _mutate_folder(rng, d, ["program.npy", "weights.npy"],
                   lambda: [np.load(d / "program.npy"), np.load(d / "weights.npy")])
    try:
        cm = CompiledModel.load(d)
    except PynqDeployError:
        return "refused"
    x = np.random.default_rng(0).random(cm.input["shape"], dtype=np.float32)
    try:
        cm.run_numpy(x)
    except PynqDeployError:
        return "refused"
    return "ok"


def run_bnn_folder(rng, workdir):
    from runtime.compiler.bnn_model_file import load_bnn_model, save_bnn_model
    from runtime.engines.bnn_format import pack_params, random_layers
    base = Path(workdir) / "bnn_base"
    if not base.exists():
        save_bnn_model(base, pack_params(random_layers(np.random.default_rng(1))), {"name": "fuzz"})
    d = Path(workdir) / "bnn_mut"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(base, d)
    _mutate_folder(rng, d, ["params.npy"], lambda: [np.load(d / "params.npy")])
    try:
        load_bnn_model(d)
    except PynqDeployError:
        return "refused"
    return "ok"


# -------------------------------------------------------------------------------- manifests
def run_manifest(rng, workdir):
    from runtime.classifier import Classifier
    from runtime.platform.manifest import load_manifest, resolve_overlay_dir
    src = resolve_overlay_dir(rng.choice(["bnn", "codenet"]))
    data = json.loads((src / "manifest.json").read_text())
    data.pop("models", None)
    data.pop("default_model", None)
    data = _mutate_json(rng, data)
    d = Path(workdir) / "overlay_mut"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps(data))
    try:
        m = load_manifest(d)
        if "bnn_0" in m.ips or any(ip["engine"] == "bnn" for ip in m.ips.values()):
            model = Path(workdir) / "bnn_base"
            if not model.exists():
                run_bnn_folder(random.Random(0), workdir)
            with Classifier(overlay=str(d), model=str(model), pl="sim") as c:
                c.scores(np.zeros((2, 28, 28), np.uint8))
    except PynqDeployError:
        return "refused"
    return "ok"


# ----------------------------------------------------------------------------------- images
_IMAGES = {}


def run_image(rng, workdir):
    import cv2
    from runtime.image_io import read_image
    if not _IMAGES:
        img = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8), (5, 5), 0)
        for ext in (".png", ".jpg", ".bmp"):
            _IMAGES[ext] = cv2.imencode(ext, img)[1].tobytes()
    ext = rng.choice(sorted(_IMAGES))
    data = bytearray(_IMAGES[ext])
    kind = rng.choice(["bits", "truncate", "dims", "append", "splice"])
    if kind == "bits":
        for _ in range(rng.randint(1, 10)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == "truncate":
        data = data[:rng.randrange(len(data))]
    elif kind == "dims":           # header size fields: PNG IHDR, BMP, JPEG SOF (searched)
        pos = {".png": 16, ".bmp": 18}.get(ext, data.find(b"\xff\xc0") + 5)
        for i in range(rng.choice([2, 4, 8])):
            if 0 <= pos + i < len(data):
                data[pos + i] = rng.choice([0, 0xFF, 0x7F, rng.randrange(256)])
    elif kind == "append":
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:
        a = rng.randrange(len(data))
        data[a:a] = data[rng.randrange(len(data)):][:rng.randint(1, 200)]
    p = Path(workdir) / ("img" + ext)
    p.write_bytes(bytes(data))
    try:
        img = read_image(p)
    except PynqDeployError:
        return "refused"
    assert isinstance(img, np.ndarray) and img.size > 0
    return "ok"


RUNNERS = {"onnx": run_onnx, "codenet_folder": run_codenet_folder, "bnn_folder": run_bnn_folder,
           "manifest": run_manifest, "image": run_image}


# ------------------------------------------------------------------------------ long runs
def _alarm(signum, frame):
    raise _Hang()


class _Hang(BaseException):
    pass


def _worker(target, seconds, seed, hang_s, queue):
    """Run one target for `seconds` in this (child) process; report counts and tracebacks."""
    import warnings
    warnings.filterwarnings("ignore")
    os.environ["PYNQ_DEPLOY_PL"] = "sim"
    signal.signal(signal.SIGALRM, _alarm)
    stats = {"executions": 0, "ok": 0, "refused": 0, "raw_tracebacks": {}, "hangs": 0}
    workdir = tempfile.mkdtemp(prefix="fuzz_" + target + "_")
    try:                 # warm-up, untimed: an alarm inside a first import would break the module
        RUNNERS[target](random.Random(-1), workdir)
    except Exception:  # noqa: BLE001 - the timed executions report it
        pass
    end = time.monotonic() + seconds
    i = 0
    try:
        while time.monotonic() < end and not stats["hangs"]:   # after a hang: a fresh process
            i += 1
            signal.alarm(hang_s)
            try:
                outcome = RUNNERS[target](random.Random(seed * 1_000_003 + i), workdir)
                stats[outcome] += 1
            except _Hang:
                stats["hangs"] += 1
            except Exception as e:  # noqa: BLE001 - a raw traceback: what the fuzzer hunts
                tb = traceback.extract_tb(e.__traceback__)[-1]
                key = "{}: {} at {}:{}".format(type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "",
                                             Path(tb.filename).name, tb.lineno)
                rec = stats["raw_tracebacks"].setdefault(key, {"count": 0, "seed": seed * 1_000_003 + i,
                                                               "traceback": traceback.format_exc()[-3000:]})
                rec["count"] += 1
            finally:
                signal.alarm(0)
            stats["executions"] += 1
            if stats["executions"] % 200 == 0:
                queue.put(("progress", target, dict(stats, raw_tracebacks=len(stats["raw_tracebacks"]))))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    queue.put(("done", target, stats))


def _one_process(ctx, target, seconds, seed, hang_s):
    queue = ctx.Queue()
    p = ctx.Process(target=_worker, args=(target, seconds, seed, hang_s, queue))
    p.start()
    stats, last = None, None
    while p.is_alive() or not queue.empty():
        try:
            kind, _, payload = queue.get(timeout=1)
        except Exception:  # noqa: BLE001 - queue.Empty
            continue
        if kind == "done":
            stats = payload
        else:
            last = payload
            print("  {}: {executions} executions, {raw_tracebacks} raw tracebacks, {hangs} hangs".format(
                target, **payload), file=sys.stderr)
    p.join()
    if stats is None:
        stats = dict(last or {"executions": 0, "ok": 0, "refused": 0, "hangs": 0}, raw_tracebacks={})
    stats["crashes"] = 0 if p.exitcode == 0 else 1
    return stats


def long_run(targets, seconds, seed=0, hang_s=20):
    """Each target in its own processes (a crash, e.g. a segfault in a decoder, kills only one;
    after a hang or a crash a fresh process takes over for the time left)."""
    ctx = multiprocessing.get_context("fork")
    report = {"seconds_per_target": seconds, "seed": seed, "targets": {}}
    for target in targets:
        t0 = time.monotonic()
        total = {"executions": 0, "ok": 0, "refused": 0, "hangs": 0, "crashes": 0, "raw_tracebacks": {},
                 "processes": 0}
        part = 0
        while True:
            left = seconds - (time.monotonic() - t0)
            if left <= 0 and total["processes"]:
                break
            s = _one_process(ctx, target, max(left, 0.1), seed * 1000 + part, hang_s)
            part += 1
            total["processes"] += 1
            for k in ("executions", "ok", "refused", "hangs", "crashes"):
                total[k] += s.get(k, 0)
            for key, r in s["raw_tracebacks"].items():
                t = total["raw_tracebacks"].setdefault(key, dict(r, count=0))
                t["count"] += r["count"]
            if not (s.get("hangs") or s["crashes"]):
                break
        total["wall_s"] = round(time.monotonic() - t0, 1)
        report["targets"][target] = total
    report["executions"] = sum(s["executions"] for s in report["targets"].values())
    report["raw_tracebacks"] = sum(sum(r["count"] for r in s["raw_tracebacks"].values()) if isinstance(
        s["raw_tracebacks"], dict) else 0 for s in report["targets"].values())
    report["crashes"] = sum(s["crashes"] for s in report["targets"].values())
    report["hangs"] = sum(s.get("hangs", 0) for s in report["targets"].values())
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description="long fuzzing runs of the runtime's readers")
    ap.add_argument("--seconds", type=float, default=60, help="per target")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        ap.error("unknown targets {} (known: {})".format(unknown, ", ".join(TARGETS)))
    report = long_run(targets, args.seconds, args.seed)
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    for t, s in report["targets"].items():
        print("{}: {} executions ({} ok, {} refused), {} raw tracebacks, {} crashes, {} hangs".format(
            t, s["executions"], s.get("ok", 0), s.get("refused", 0),
            sum(r["count"] for r in s["raw_tracebacks"].values()), s["crashes"], s.get("hangs", 0)))
        for key, r in s["raw_tracebacks"].items():
            print("  RAW {} x{} (seed {})\n{}".format(key, r["count"], r["seed"], r["traceback"]))
    print("total: {executions} executions, {raw_tracebacks} raw tracebacks, {crashes} crashes, {hangs} hangs".format(
        **report))
    return 0 if report["raw_tracebacks"] == report["crashes"] == report["hangs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
