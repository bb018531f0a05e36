"""The command line and image files under hostile use: one-line errors with exit code 2, output
paths checked before the work, `run` streaming to disk, images checked before decoding."""
import gzip
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from runtime.cli import main
from runtime.compiler.codenet_compiler import compile_onnx
from runtime.errors import DatasetError, InputError, PynqDeployError
from runtime.image_io import MAX_IMAGE_PIXELS, image_size, read_image
from runtime.platform.manifest import resolve_overlay_dir
from tests.conftest import ROOT
from tests.hardening_models import small_qdq_net


def run_main(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_small")
    compile_onnx(small_qdq_net()).save(d)
    return d


def test_dataset_error_is_a_pynq_deploy_error(tmp_path, monkeypatch, capsys):
    assert issubclass(DatasetError, PynqDeployError)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(b"\x00\x00\x08\x03" + b"\xff" * 12)      # header claims 4G images, no data
    monkeypatch.setenv("PYNQ_DEPLOY_FASHION_MNIST", str(tmp_path))
    rc, out, err = run_main(["classify", "--quiet"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "truncated or padded" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["classify", "--limit", "0"], ["verify", "bnn", "--limit", "-5"], ["verify", "codenet", "--frames", "0"],
    ["bench", "bnn", "--images", "0"], ["soak", "bnn", "--frames", "0"], ["classify", "--limit", "many"],
])
def test_count_arguments_validated(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "must be an integer >= 1" in capsys.readouterr().err


def test_output_paths_checked_before_the_work(tmp_path, compiled, capsys, monkeypatch):
    import runtime.codenet_runner as runner_mod
    started = []
    monkeypatch.setattr(runner_mod.CodenetRunner, "__init__", lambda *a, **k: started.append(1))
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 3, 16, 16), np.float32))
    a_file = tmp_path / "file"
    a_file.write_text("")
    cases = [
        ["run", str(compiled), "--input", str(x), "--output", str(tmp_path)],               # a directory
        ["run", str(compiled), "--input", str(x), "--output", str(a_file / "y.npz")],       # under a file
        ["compile", str(x), "-o", str(a_file)],                                              # -o a file
        ["classify", "--json", str(tmp_path)],
        ["classify", "--predictions", str(a_file / "p.npy")],
        ["verify", "bnn", "--json", str(a_file / "sub" / "r.json")],
        ["soak", "bnn", "--json", str(tmp_path)],
    ]
    for argv in cases:
        rc, out, err = run_main(argv, capsys)
        assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert "directory" in err, err
    assert started == []


def test_debug_shows_the_traceback(tmp_path, capsys):
    with pytest.raises(InputError, match="is a directory"):
        main(["--debug", "run", "m", "--input", "x.npy", "--output", str(tmp_path)])
    with pytest.raises(InputError, match="is a directory"):
        main(["run", "m", "--input", "x.npy", "--output", str(tmp_path), "--debug"])


def test_multi_line_errors_print_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not protobuf" * 3)
    rc, out, err = run_main(["compile", str(bad), "-o", str(tmp_path / "o")], capsys)
    assert rc == 2 and err.count("\n") == 1 and "cannot read ONNX model" in err
    assert not (tmp_path / "o").exists()


def test_run_streams_frames_and_leaves_nothing_half_written(tmp_path, compiled, capsys):
    from runtime.compiler.codenet_compiler import CompiledModel
    cm = CompiledModel.load(compiled)
    x = np.random.default_rng(0).random((5, 3, 16, 16), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npz"
    rc, text, err = run_main(["run", str(compiled), "--input", str(tmp_path / "x.npy"), "--output", str(out)], capsys)
    assert rc == 0 and "5 ap_start" in text
    y = np.load(out)
    name = cm.outputs[0]["name"]
    assert y[name].shape == (5, 6, 16, 16)
    for i in range(5):
        assert np.array_equal(y[name][i:i + 1], cm.run_numpy(x[i:i + 1])[name])
    # a NaN in frame 3: a one-line error, the old output untouched, no temporary left
    x[3, 0, 0, 0] = np.nan
    np.save(tmp_path / "x.npy", x)
    before = out.read_bytes()
    rc, text, err = run_main(["run", str(compiled), "--input", str(tmp_path / "x.npy"), "--output", str(out)], capsys)
    assert rc == 2 and "non-finite" in err and err.count("\n") == 1
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy", "y.npz"]


def test_info_survives_a_broken_overlay(tmp_path, monkeypatch, capsys):
    for name in ("bnn", "codenet"):
        shutil.copytree(str(resolve_overlay_dir(name)), str(tmp_path / name))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text('{"format": "pynq-deploy/overlay-manifest", "name": 1}')
    data = json.loads((tmp_path / "bnn" / "manifest.json").read_text())
    data["models"]["gone"] = "/nonexistent/model"
    (tmp_path / "bnn" / "manifest.json").write_text(json.dumps(data))
    monkeypatch.setenv("PYNQ_DEPLOY_OVERLAYS", str(tmp_path))
    rc, out, err = run_main(["info"], capsys)
    assert rc == 0
    assert "overlay broken: BROKEN: manifest" in out and "overlay codenet:" in out and "overlay bnn:" in out
    rc, out, err = run_main(["info", "--json"], capsys)
    info = json.loads(out)
    assert "error" in info["overlays"]["broken"] and info["overlays"]["codenet"]["ips"]


# -------------------------------------------------------------------------------- images
def _encode(ext, img):
    ok, data = cv2.imencode(ext, img)
    assert ok
    return data.tobytes()


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (5, 5), 0)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
def test_good_images_are_read(tmp_path, photo, ext):
    p = tmp_path / ("a" + ext)
    p.write_bytes(_encode(ext, photo))
    img = read_image(p)
    assert img.shape == (60, 80, 3)


@pytest.mark.parametrize("ext, cut, message", [
    (".jpg", 0.5, "truncated JPEG"), (".jpg", 0.98, "truncated JPEG"), (".png", 0.5, "truncated PNG"),
    (".png", 0.999, "truncated PNG"), (".bmp", 0.5, "truncated or corrupt BMP"),
])
def test_truncated_images_are_refused(tmp_path, photo, ext, cut, message):
    data = _encode(ext, photo)
    p = tmp_path / ("t" + ext)
    p.write_bytes(data[:int(len(data) * cut)])
    with pytest.raises(InputError, match=message):
        read_image(p)


def test_corrupt_and_foreign_files_are_refused(tmp_path, photo):
    data = bytearray(_encode(".png", photo))
    data[60] ^= 0xFF                                     # inside the first data chunk
    (tmp_path / "c.png").write_bytes(bytes(data))
    with pytest.raises(InputError, match="CRC mismatch"):
        read_image(tmp_path / "c.png")
    (tmp_path / "n.png").write_bytes(b"GIF89a" + b"\x00" * 100)
    with pytest.raises(InputError, match="not a PNG, JPEG or BMP"):
        read_image(tmp_path / "n.png")
    with pytest.raises(InputError, match="cannot read image"):
        read_image(tmp_path / "missing.png")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    """A valid PNG of 32000x32000 black pixels (1 MB of zlib): refused from its header."""
    import zlib
    w = h = 32000
    row = b"\x00" + b"\x00" * w
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()

    def chunk(kind, payload):
        import struct
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    import struct
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    assert len(png) < 2 << 20
    (tmp_path / "bomb.png").write_bytes(png)
    assert image_size(png) == (w, h)
    with pytest.raises(InputError, match=r"32000x32000 pixels; images up to {} pixels".format(MAX_IMAGE_PIXELS)):
        read_image(tmp_path / "bomb.png")


def test_demo_refuses_a_truncated_jpeg(tmp_path, photo):
    data = _encode(".jpg", photo)
    (tmp_path / "t.jpg").write_bytes(data[:len(data) // 2])
    r = subprocess.run([sys.executable, str(ROOT / "demos" / "classify.py"), str(tmp_path / "t.jpg"), "--pl", "sim"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "truncated JPEG" in r.stderr and "Traceback" not in r.stderr


def test_damaged_jpeg_entropy_data_is_refused(tmp_path, photo):
    """No checksum in a JPEG: a damaged scan is only known from the decoder's warning, which is
    captured and refuses the image (with exit code 0 OpenCV would return a garbled picture)."""
    data = bytearray(_encode(".jpg", photo))
    sos = data.find(b"\xff\xda")
    for i in range(sos + 40, len(data) - 40, 7):
        data[i] = 0x00 if data[i] != 0 else 0x55
    (tmp_path / "d.jpg").write_bytes(bytes(data))
    with pytest.raises(InputError, match="damaged JPEG data .*Corrupt JPEG data"):
        read_image(tmp_path / "d.jpg")
