"""Content-addressed on-disk cache for kernels and trained networks.

An entry's key is the SHA-256 of everything that determines it (architecture, data,
parameters, settings), so a kernel that several notebooks need is computed once, and a
change to any input gives a new entry rather than a stale hit. Entries are written to a
temporary file and renamed into place: a run killed midway leaves no entry.

Location: ``$NTK_CACHE_DIR``, else ``outputs/cache`` in the repository.
"""
import dataclasses
import hashlib
import os
import pathlib
import pickle
import tempfile

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def cache_dir():
    path = pathlib.Path(os.environ.get("NTK_CACHE_DIR", REPO_ROOT / "outputs" / "cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _feed(h, obj):
    """Feed a stable byte description of ``obj`` (arrays, pytrees, dataclasses, scalars) to ``h``."""
    if hasattr(obj, "describe"):
        h.update(b"A" + obj.describe().encode())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(b"D" + type(obj).__name__.encode())
        _feed(h, dataclasses.asdict(obj))
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=str):
            _feed(h, str(k))
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"(")
        for item in obj:
            _feed(h, item)
        h.update(b")")
    elif obj is None or isinstance(obj, (str, int, float, bool, np.generic)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    else:  # arrays: numpy, jax, or anything np.asarray understands
        a = np.ascontiguousarray(np.asarray(obj))
        h.update(f"nd{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())


def key(*parts):
    """Hex digest identifying ``parts`` (nested dicts/tuples of arrays, Archs, configs, scalars)."""
    h = hashlib.sha256()
    _feed(h, parts)
    return h.hexdigest()[:32]


def _path(kind, k):
    return cache_dir() / kind / f"{k}.pkl"


def load(kind, k):
    """The cached object, or None if absent."""
    path = _path(kind, k)
    if not path.exists():
        return None
    with open(path, "rb") as f:
        return pickle.load(f)


def save(kind, k, obj):
    """Write ``obj`` atomically (temporary file + rename)."""
    path = _path(kind, k)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def cached(kind, parts, compute, enabled=True):
    """``compute()`` once per distinct ``parts``; later calls load it from disk."""
    if not enabled:
        return compute()
    k = key(kind, parts)
    hit = load(kind, k)
    if hit is not None:
        return hit
    value = compute()
    save(kind, k, value)
    return value
