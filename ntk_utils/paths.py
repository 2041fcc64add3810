"""Where the repository is, and how files are written so that a killed run leaves no half file."""
import contextlib
import linecache
import os
import pathlib
import socket
import tempfile
import warnings

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# A checkout of the repository (an editable install), or the package installed alone (a wheel:
# Colab, pip), where REPO_ROOT is site-packages and the notebooks ship inside the package.
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "notebooks").is_dir()
NOTEBOOKS = REPO_ROOT / "notebooks" if IN_CHECKOUT else pathlib.Path(__file__).resolve().parent / "notebooks"
USER_CACHE = pathlib.Path.home() / ".cache" / "ntk-limits"     # beside data.py's data cache


def shown(path):
    """A path as written into outputs (no machine paths): relative to the repository root when
    inside it (relative paths are taken from there), else its last component."""
    path = os.path.abspath(os.path.join(REPO_ROOT, path))
    inside = os.path.commonpath([path, str(REPO_ROOT)]) == str(REPO_ROOT)
    return os.path.relpath(path, REPO_ROOT) if inside else os.path.basename(path)


def for_repository(path):
    """``path`` as a parameter that is read relative to the repository root: relative when
    inside it (so that no machine path is written into a notebook), else absolute."""
    path = os.path.abspath(path)
    inside = os.path.commonpath([path, str(REPO_ROOT)]) == str(REPO_ROOT)
    return os.path.relpath(path, REPO_ROOT) if inside else path


def warnings_without_machine_paths():
    """Warnings name their file as :func:`shown` does, so that an executed notebook's captured
    warnings hold no machine path (``ntk_utils`` installs this when imported)."""
    original = warnings.formatwarning
    if getattr(original, "shows_no_machine_paths", False):
        return

    def formatwarning(message, category, filename, lineno, line=None):
        line = linecache.getline(filename, lineno) if line is None else line
        return original(message, category, shown(filename), lineno, line)
    formatwarning.shows_no_machine_paths = True
    warnings.formatwarning = formatwarning


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
