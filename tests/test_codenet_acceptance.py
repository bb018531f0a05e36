"""The CoDeNet engine end to end on the simulated PL: the default CoDeNet-1x W4A8 network (the
shipped trained detector's QONNX, compiled by runtime.compiler), real frames, one ap_start per
frame."""
import json
import re

import numpy as np
import pytest

from runtime.cli import main
from runtime.codenet_runner import CodenetRunner
from runtime.compiler.codenet_compiler import CompiledModel
from runtime.errors import InputError
from runtime.measure.codenet_tasks import NumpyFramePool, default_model_dir, real_frames
N_OUT = 20 + 2 + 2          # heatmap (20 VOC classes), size, offset


@pytest.fixture(scope="module")
def net256():
    return default_model_dir(256)


@pytest.fixture(scope="module")
def model256(net256):
    return CompiledModel.load(net256 / "compiled")


def test_verify_codenet_full_network_on_real_frames(net256, tmp_path):
    out = tmp_path / "verify.json"
    assert main(["verify", "codenet", "--model", str(net256), "--frames", "3", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["frames"] == 3 and r["input_shape"] == [1, 3, 256, 256]
    assert r["output_values"] == 3 * N_OUT * 64 * 64
    assert r["mismatching_outputs"] == 0
    assert r["starts_per_frame"] == {"numpy": 1.0, "csim": 1.0}


def test_one_ap_start_per_frame_and_no_host_work_between_layers(model256):
    x = real_frames(3, 256)
    with CodenetRunner(model256, pl="sim", engine="numpy") as net:
        dev = net.overlay.device
        assert model256.n_layers > 70
        out_bytes = sum(size for _, size in model256.output_regions())
        assert out_bytes < model256.arena_size // 2
        for i in range(3):
            dev.register_log.clear()
            dev.cache_bytes.clear()
            before = dev.starts["codenet_0"]
            out = net.run(x[i:i + 1])
            assert dev.starts["codenet_0"] == before + 1
            # cache maintenance: the input the host wrote, the outputs it reads; not the arena
            assert dev.cache_bytes == {"flush": model256.input_bytes(), "invalidate": out_bytes}
            # the host wrote the arena pointer (the read and the write port) and ap_start, nothing per layer
            lo, hi = net._arena.physical_address & 0xFFFFFFFF, net._arena.physical_address >> 32
            assert [(off, v) for _, off, v in dev.register_log] == [
                (0x28, lo), (0x2C, hi), (0x34, lo), (0x38, hi), (0x00, 1)]
            ref = model256.run_numpy(x[i:i + 1])
            assert sorted(out) == ["heatmap", "offset", "size"]
            for k in ref:
                assert np.array_equal(out[k], ref[k])


def test_run_cli_writes_every_output_dequantized(net256, model256, tmp_path):
    x = real_frames(2, 256)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(net256 / "compiled"), "--input", str(tmp_path / "x.npy"),
                 "--output", str(tmp_path / "y.npz")]) == 0
    y = np.load(tmp_path / "y.npz")
    assert sorted(y.files) == ["heatmap", "offset", "size"]
    assert y["heatmap"].shape == (2, 20, 64, 64) and y["heatmap"].dtype == np.float32
    for i in range(2):
        ref = model256.run_numpy(x[i:i + 1])
        assert np.array_equal(y["size"][i:i + 1], ref["size"])


def test_run_refuses_bad_inputs_and_writes_nothing(net256, tmp_path, capsys):
    np.save(tmp_path / "int.npy", np.zeros((1, 3, 256, 256), np.uint8))
    np.save(tmp_path / "shape.npy", np.zeros((1, 3, 128, 128), np.float32))
    for name, msg in (("int.npy", "must be a float array"), ("shape.npy", r"must have shape \[1, 3, 256, 256\]")):
        assert main(["run", str(net256 / "compiled"), "--input", str(tmp_path / name),
                     "--output", str(tmp_path / "y.npz")]) == 2
        assert re.search(msg, capsys.readouterr().err)
    assert not (tmp_path / "y.npz").exists()
    with CodenetRunner(net256 / "compiled", pl="sim") as net:
        with pytest.raises(InputError):
            net.run(np.zeros((2, 3, 256, 256), np.float32))


def test_bench_codenet_256_modelled_targets(net256, tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "codenet", "--model", str(net256), "--frames", "2", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    m, mod = r["measured"], r["modelled"]
    assert r["input_size"] == 256
    assert m["starts_per_frame"] == 1 and m["numpy_fps"] > 0 and m["onnxruntime_fps"] > 0
    assert m["onnxruntime_frames_in_parallel_fps"] > 0 and m["numpy_workers"] >= 1
    assert m["numpy_vs_onnxruntime"] == pytest.approx(m["numpy_fps"] / m["onnxruntime_fps"])
    assert mod["clock_mhz"] == 250 and mod["pa"] == 16 and mod["pe"] == 16
    assert "MODELLED" in mod["label"] and len(mod["layers"]) > 70
    check_modelled_fields(mod)
    pc = r["published_comparison"]
    assert pc["published_measured_fps"] == 32.2
    # the published system's structure under the same model lands within 2x of its measured figure
    assert 0.5 <= pc["model_with_published_host_work_fps"] / 32.2 <= 2.0
    assert mod["published_structure_fps"] == pc["model_with_published_host_work_fps"]


def check_modelled_fields(mod):
    """bench codenet's modelled block: the figures the issue asks for, consistent with each other."""
    from runtime.measure.codenet_perf import ZU3EG
    by_lat = mod["fps_by_axi_latency"]
    assert sorted(by_lat, key=int) == ["0", "64", "128"] and mod["axi_latency_cycles"] == 64
    assert mod["fps"] == pytest.approx(1e3 / mod["latency_ms"])
    assert by_lat["0"] > by_lat["64"] > by_lat["128"] > 0
    assert mod["fps"] < by_lat["64"] < mod["fps"] * 1.01           # + one start's overhead
    assert mod["trip_count_fps"] > by_lat["0"]                      # depths and fill cost even at L = 0
    # where L = 128 costs: the classes of memory event, "all" the frame's whole latency cost
    att = mod["latency_cycles_by_event_class"]
    assert att["all"] == pytest.approx(mod["clock_mhz"] * 1e6 * (1 / by_lat["128"] - 1 / by_lat["0"]), rel=1e-3)
    assert all(0 <= v <= att["all"] + 1e-6 for v in att.values()) and len(att) > 3
    for key in ("dsp", "bram36", "lut"):
        assert 0 < mod[key] and isinstance(mod[key], int), key
    # the ZU3EG budget: every DSP and BRAM36 (LUTs <= 70 %: test_modelled_lut_target)
    assert mod["dsp"] <= ZU3EG["dsp"] and mod["bram36"] <= ZU3EG["bram36"] and mod["lut"] <= ZU3EG["lut"]


def test_modelled_targets_of_the_rebuilt_engine(model256):
    """Issue 9 (modelled, L = 64 cycles, 250 MHz): >= 64 fps at 256 and >= 18 at 512; DSP <= 360
    and BRAM36 <= 216 including the FIFOs."""
    from runtime.measure.codenet_perf import ZU3EG, modelled
    mod = modelled(model256.layers, 256)
    assert mod["axi_latency_cycles"] == 64 and mod["fps"] >= 64
    mod512 = modelled(CompiledModel.load(default_model_dir(512) / "compiled").layers, 512)
    assert mod512["fps"] >= 18
    assert mod["dsp"] <= ZU3EG["dsp"] and mod["bram36"] <= ZU3EG["bram36"]
    assert mod["dataflow_layers"] == len(model256.layers)          # every layer streams


def test_modelled_lut_target(model256):
    """Issue 9 (modelled): LUT <= 70 % of the ZU3EG's 70,560 (the 1x1 adder trees in DSP48E2
    cascades, 5 of the 9 depthwise taps per channel on DSPs), with the DSPs still <= 360."""
    from runtime.measure.codenet_perf import ZU3EG, modelled
    from runtime.platform.zu3eg import LUT_TARGET_FRACTION
    mod = modelled(model256.layers, 256)
    assert mod["lut"] <= LUT_TARGET_FRACTION * ZU3EG["lut"]
    assert mod["dsp"] <= ZU3EG["dsp"]


def test_modelled_latency_hiding_target(model256):
    """Issue 9 (modelled): fps at AXI latency 128 >= 0.8x the fps at 0, at 256 and 512. Layout v3
    makes every arena access a run of whole beats and the stages request their bursts ahead
    (codenet_port.h), so what latency still costs is the loads' one-beat reads and one latency per
    stage and layer."""
    from runtime.measure.codenet_perf import modelled
    for model, size in ((model256, 256), (CompiledModel.load(default_model_dir(512) / "compiled"), 512)):
        by_lat = modelled(model.layers, size)["fps_by_axi_latency"]
        assert by_lat["128"] >= 0.8 * by_lat["0"], (size, by_lat)


def test_an_arena_reused_with_stale_bytes_gives_the_fresh_result(model256):
    """run_numpy reuses its arena frame after frame, as the board reuses its buffer: the program
    writes every byte it reads in the same frame, so stale or random bytes change nothing."""
    x = real_frames(2, 256)
    fresh = model256.read_outputs_q(model256.run_arena(x[1:2]))
    junk = np.random.default_rng(0).integers(0, 256, model256.arena_size, dtype=np.uint8)
    dirty = model256.read_outputs_q(model256.run_arena(x[1:2], junk))
    model256.run_numpy(x[0:1])
    reused = model256.run_numpy(x[1:2])
    for o in model256.outputs:
        name = o["name"]
        assert np.array_equal(dirty[name], fresh[name]), name
        want = (fresh[name].astype(np.float32) - np.float32(o["zp"])) * np.float32(o["scale"])
        assert np.array_equal(reused[name], want), name


def test_dequantized_outputs_are_the_stored_integers_scaled(model256):
    """read_outputs (the host's dequantization, also into caller-given arrays) is (q - zp) * scale
    in float32 of read_outputs_q's stored integers, for every output."""
    arena = model256.run_arena(real_frames(1, 256))
    q = model256.read_outputs_q(arena)
    out = {o["name"]: np.full([1] + o["shape"][1:], np.nan, np.float32) for o in model256.outputs}
    for got in (model256.read_outputs(arena), model256.read_outputs(arena, out)):
        for o in model256.outputs:
            want = (q[o["name"]].astype(np.float32) - np.float32(o["zp"])) * np.float32(o["scale"])
            assert got[o["name"]].dtype == np.float32 and np.array_equal(got[o["name"]], want), o["name"]
    assert all(out[o["name"]] is model256.read_outputs(arena, out)[o["name"]] for o in model256.outputs)


def test_frames_over_worker_processes_give_the_same_outputs(net256, model256):
    """The benchmark's worker processes (shared-memory frames and outputs) return exactly what
    run_numpy returns in this process, frame by frame, in order."""
    x = real_frames(3, 256)
    with NumpyFramePool(net256 / "compiled", 2, 3) as pool:
        got = pool.run(x)
        with pytest.raises(ValueError, match="4 frames, the pool holds at most 3"):
            pool.run(real_frames(4, 256))
    assert sorted(got) == sorted(o["name"] for o in model256.outputs)
    for i in range(3):
        for name, y in model256.run_numpy(x[i:i + 1]).items():
            assert got[name].shape[0] == 3 and np.array_equal(got[name][i], y[0]), (name, i)


def test_modelled_512(tmp_path):
    net512 = default_model_dir(512)
    out = tmp_path / "bench512.json"
    assert main(["bench", "codenet", "--model", str(net512), "--input-size", "512", "--frames", "1",
                 "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["input_size"] == 512
    check_modelled_fields(r["modelled"])
    assert 0.5 <= r["published_comparison"]["model_with_published_host_work_fps"] / 9.3 <= 2.0
