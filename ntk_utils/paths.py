"""Where the repository is, and how files are written so that a killed run leaves no half file."""
import contextlib
import os
import pathlib
import socket
import tempfile

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def umask():
    """The process's umask, read without changing it where /proc allows (no race with threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temporary_prefix(path):
    """``.<name>.<host>.<pid>.``: a temporary file beside ``path`` names its writer, so that a later
    run can tell one left by a killed process (:func:`ntk_utils.cache.sweep_temporary`)."""
    return f".{pathlib.Path(path).name}.{socket.gethostname()}.{os.getpid()}."


@contextlib.contextmanager
def atomic_write(path, mode="w"):
    """``with atomic_write(path) as f:`` writes a temporary file beside ``path`` and renames it
    into place when the block ends without error; otherwise the temporary file is removed and
    ``path`` is left as it was. The file gets the permissions of a plain ``open`` (0666 less the
    umask), not mkstemp's 0600, so a cache or output folder shared by a group stays readable."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            os.fchmod(f.fileno(), 0o666 & ~umask())
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
