"""Where the repository is, and how files are written so that a killed run leaves no half file."""
import contextlib
import os
import pathlib
import tempfile

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def atomic_write(path, mode="w"):
    """``with atomic_write(path) as f:`` writes a temporary file beside ``path`` and renames it
    into place when the block ends without error; otherwise the temporary file is removed and
    ``path`` is left as it was."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
