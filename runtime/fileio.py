"""Writing files so that a crash or an error leaves the old files or none, never half of one."""
import os
import tempfile
from pathlib import Path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_files_atomically(folder, writers):
    """writers: [(file name, function(binary file object))]. Every file is written to a temporary
    file in `folder` first; only when all succeeded are they renamed into place (data files before
    the metadata that describes them: pass them in that order)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staged = []
    mode = 0o666 & ~_umask()          # what open() would give; mkstemp makes files 0600
    try:
        for name, write in writers:
            fd, tmp = tempfile.mkstemp(dir=str(folder), prefix="." + name, suffix=".tmp")
            staged.append((tmp, folder / name))
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
        for tmp, final in staged:
            os.replace(tmp, str(final))
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return folder
