"""Build the HLS C-simulation of an engine into a shared library (called through ctypes).

The sources are the real `hls_src/<engine>/` files: every `*.cpp` except the testbench mains
(`*_tb.cpp`) goes into the library; `compile_testbench` builds a testbench executable. They are
compiled by g++ against Xilinx's `ap_int.h` / `ap_fixed.h`, which ship inside the hls4ml wheel
(`hls4ml/templates/vivado/ap_types/`): we locate them without importing hls4ml. Builds are cached
by a hash of every source, header, flag and the compiler version, as hls4ml does for its C-sim.
"""
import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..paths import cache_root, repo_root

# -Wno-unknown-pragmas: g++ 12 warns on every `#pragma HLS` under -Wall (GCC bug 53431)
CXX_FLAGS = ["-O2", "-Wall", "-Wno-unknown-pragmas", "-std=c++14", "-fPIC"]
_loaded = {}


class CsimBuildError(RuntimeError):
    """The C-simulation cannot be built (missing compiler, headers or sources, or a compile error)."""


def hls_src_dir(engine=None):
    base = repo_root() / "hls_src"
    return base / engine if engine else base


def find_ap_types():
    """Folder holding ap_int.h, from the installed hls4ml package (not imported: it is heavy)."""
    env = os.environ.get("PYNQ_DEPLOY_AP_TYPES")
    candidates = [Path(env)] if env else []
    try:
        spec = importlib.util.find_spec("hls4ml")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidates.append(Path(loc) / "templates" / "vivado" / "ap_types")
    for c in candidates:
        if (c / "ap_int.h").is_file() and (c / "ap_fixed.h").is_file():
            return c
    raise CsimBuildError(
        "Xilinx ap_types headers (ap_int.h, ap_fixed.h) not found: install the simulation extra "
        "with `pip install -e .[sim]` (they ship inside the hls4ml package), or point "
        "PYNQ_DEPLOY_AP_TYPES at a folder holding them")


def find_compiler():
    cxx = os.environ.get("CXX", "g++")
    path = shutil.which(cxx)
    if path is None:
        raise CsimBuildError(
            "C++ compiler {!r} not found: the C-simulation needs g++ "
            "(`apt-get install g++`), or use the numpy engine".format(cxx))
    return path


def cache_dir():
    return cache_root() / "csim"


def _sources(engine):
    folder = hls_src_dir(engine)
    if not folder.is_dir():
        raise CsimBuildError("no HLS sources for engine {!r}: {} does not exist".format(engine, folder))
    cpp = sorted(folder.glob("*.cpp"))
    lib_sources = [p for p in cpp if not p.name.endswith("_tb.cpp")]
    tb_sources = [p for p in cpp if p.name.endswith("_tb.cpp")]
    headers = sorted(folder.glob("*.h")) + sorted(hls_src_dir("common").glob("*.h"))
    if not lib_sources:
        raise CsimBuildError("no C++ sources in {}".format(folder))
    return lib_sources, tb_sources, headers


def _digest(files, flags, cxx):
    h = hashlib.sha256()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    h.update(version.encode())
    h.update(" ".join(flags).encode())
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def include_flags(engine):
    """g++ include flags for an engine's sources: hls_src/common, hls_src/<engine>, ap_types."""
    # ap_types are third-party: -isystem keeps their own warnings out of our -Wall check.
    return ["-I", str(hls_src_dir("common")), "-I", str(hls_src_dir(engine)),
            "-isystem", str(find_ap_types())]


def _compile(cmd, target):
    """Run g++ into a temporary file, then move it in place: a failed build leaves nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(target.parent), suffix=".tmp")
    os.close(fd)
    try:
        proc = subprocess.run(cmd + ["-o", tmp], capture_output=True, text=True)
        if proc.returncode != 0:
            raise CsimBuildError("C-simulation build failed:\n{}\n{}".format(" ".join(cmd), proc.stderr))
        os.replace(tmp, str(target))
        return proc.stderr
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build_library(engine, extra_flags=()):
    """Compile the engine's C-simulation into a shared library; return (path, compiler warnings)."""
    cxx = find_compiler()
    lib_sources, _, headers = _sources(engine)
    flags = CXX_FLAGS + list(extra_flags) + include_flags(engine)
    key = _digest(lib_sources + headers, flags + ["-shared"], cxx)
    target = cache_dir() / "{}-{}.so".format(engine, key)
    if target.is_file():
        return target, ""
    warnings = _compile([cxx] + flags + ["-shared"] + [str(s) for s in lib_sources], target)
    return target, warnings


def load_csim_library(engine, extra_flags=()):
    """The engine's C-simulation as a ctypes.CDLL (built once per source hash, loaded once)."""
    path, _ = build_library(engine, extra_flags)
    if path not in _loaded:
        _loaded[path] = ctypes.CDLL(str(path))
    return _loaded[path]


def compile_testbench(engine, extra_flags=()):
    """Build the engine's testbench executable (`*_tb.cpp` + the kernel sources, without the
    ctypes wrappers `*_csim.cpp`); return its path."""
    cxx = find_compiler()
    lib_sources, tb_sources, headers = _sources(engine)
    if not tb_sources:
        raise CsimBuildError("no testbench (*_tb.cpp) in {}".format(hls_src_dir(engine)))
    kernel = [p for p in lib_sources if not p.name.endswith("_csim.cpp")]
    flags = [f for f in CXX_FLAGS if f != "-fPIC"] + list(extra_flags) + include_flags(engine)
    key = _digest(kernel + tb_sources + headers, flags + ["tb"], cxx)
    target = cache_dir() / "{}-tb-{}".format(engine, key)
    if not target.is_file():
        _compile([cxx] + flags + [str(s) for s in kernel + tb_sources], target)
    return target
