"""Content-addressed on-disk cache for kernels and trained networks.

    value = cached("entk", (arch, params, x1, x2), lambda: compute(...))

What makes an entry
-------------------
An entry's key is the SHA-256 of its kind, everything that determines it (architecture, data,
parameters, settings) and :func:`code_fingerprint`: a hash of the library source that computes
numbers, of the pinned package versions and of what else changes the numbers' last bits (the
backend, the CPUs this process may use, the BLAS/OpenMP thread settings). So a kernel that
several notebooks need is computed once, and a change to any input, to that code (train.py,
fast_ntk.py, ...), to jax & co. or to the thread settings gives a new entry rather than a stale
hit. Old entries are never read again; delete the folder to reclaim the space.

The fingerprint hashes the modules that compute what is cached (COMPUTES_CACHED: networks,
eNTKs, infinite NTKs), as code: their syntax tree without docstrings, so a documentation edit
keeps the cache while any change to what runs invalidates it. Modules that compute from cached
values on every run (experiments, sections, claims) need not be in it: their numbers are never
stored. Tests change it by monkeypatching ``cache.code_fingerprint``.

Files and corruption
--------------------
``<cache dir>/<kind>/<key>.pkl`` holds a header, MAGIC + payload length (8 bytes, little endian)
+ SHA-256 of the payload (32 bytes) + the entry's key (32 bytes), then the payload: the pickled
value. Writes go to a temporary file renamed into place: a run killed midway leaves no entry, and
the temporary files of killed writes are swept by the next process to use the folder
(:func:`sweep_temporary`). On load, a file that is truncated, fails its checksum, holds another
key (copied over this one), does not unpickle, or fails the caller's ``check(value)`` (each kind
checks type and shape) is reported with a warning naming it, deleted, and treated as missing: the
value is recomputed and rewritten.

:func:`stats` counts this process's hits and misses per kind and lists the corrupt files it
recomputed; results.json records it (ntk_utils.results.metadata).

Location: ``$NTK_CACHE_DIR``, else ``outputs/cache`` in a checkout of the repository, else
``~/.cache/ntk-limits/cache`` (the package installed alone: Colab, pip).
"""
import ast
import collections
import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import pathlib
import pickle
import socket
import struct
import time
import warnings

import numpy as np

from ntk_utils.paths import IN_CHECKOUT, REPO_ROOT, USER_CACHE, atomic_write

PACKAGE = pathlib.Path(__file__).resolve().parent
COMPUTES_CACHED = ("_compat.py", "models.py", "layers.py", "train.py", "regression.py", "kernels.py", "fast_ntk.py",
                   "pair_tiles.py", "tiles.py")
MAGIC = b"ntk-cache-2\n"
HEADER = struct.Struct(f"<{len(MAGIC)}sQ32s32s")  # magic, payload length, sha256(payload), key
# Environment variables that set how many threads a BLAS or OpenMP library uses: a reduction
# split over other thread counts can round differently.
THREAD_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS")
STALE_SECONDS = 3600   # a temporary file untouched this long is a killed write's (a live one keeps growing)


def cache_dir():
    path = pathlib.Path(os.environ.get("NTK_CACHE_DIR") or (REPO_ROOT / "outputs" / "cache" if IN_CHECKOUT
                                                            else USER_CACHE / "cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.lru_cache(maxsize=None)
def code_fingerprint():
    """16 hex digits: SHA-256 of the code of each module in COMPUTES_CACHED (:func:`code_text`), of
    the pinned packages' installed versions, and of the backend (platform, device kind, numpy
    version, default matmul precision, the CPUs this process may use and THREAD_SETTINGS).
    Computed once per process."""
    from ntk_utils._compat import installed_versions
    h = hashlib.sha256()
    for name in COMPUTES_CACHED:
        h.update(f"{name}:{code_text(PACKAGE / name)}".encode())
    h.update(json.dumps(installed_versions(), sort_keys=True).encode())
    import jax   # the same code can give other numbers on another backend or with other XLA flags
    device = jax.devices()[0]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = {name: os.environ.get(name, "") for name in THREAD_SETTINGS}
    h.update(f"{device.platform}:{getattr(device, 'device_kind', '')}:numpy {np.__version__}:"
             f"{jax.config.jax_default_matmul_precision}:cpus {cpus} of {os.cpu_count()}:"
             f"{json.dumps(threads, sort_keys=True)}".encode())
    return h.hexdigest()[:16]


def code_text(path):
    """The syntax tree of a Python file without its docstrings, as text: what runs."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


# ----------------------------------------------------------------------------- keys

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
    """Hex digest identifying ``parts`` (nested dicts/tuples of arrays, Archs, configs, scalars)
    as computed by this code (:func:`code_fingerprint`)."""
    h = hashlib.sha256()
    _feed(h, ("code", code_fingerprint()))
    _feed(h, parts)
    return h.hexdigest()[:32]


def _path(kind, k):
    return cache_dir() / kind / f"{k}.pkl"


# ----------------------------------------------------------------------------- hit/miss record

_STATS = {"hits": collections.Counter(), "misses": collections.Counter(), "disabled": collections.Counter(),
          "recomputed_corrupt": []}


def stats():
    """This process's cache use: {"hits": {kind: n}, "misses": {kind: n}, "disabled": {kind: n}
    (calls with enabled=False), "recomputed_corrupt": [paths of corrupt entries deleted]}."""
    return {name: dict(v) if isinstance(v, collections.Counter) else list(v) for name, v in _STATS.items()}


def reset_stats():
    for v in _STATS.values():
        v.clear()


# ----------------------------------------------------------------------------- files

class _HashingWriter:
    """File wrapper that hashes and counts what pickle writes through it."""

    def __init__(self, f):
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def write(self, b):
        self.sha.update(b)
        self.size += memoryview(b).nbytes
        return self.f.write(b)


def _read_checked(path, k, check):
    """The value stored at ``path`` under key ``k``; raises ValueError saying what is wrong with
    the file. Two passes (checksum, then unpickle) so a multi-GB kernel is held in memory only once."""
    with open(path, "rb") as f:
        header = f.read(HEADER.size)
        if len(header) < HEADER.size:
            raise ValueError(f"is truncated or not a cache entry ({len(header)} bytes, shorter than the header)")
        magic, size, digest, stored_key = HEADER.unpack(header)
        if magic != MAGIC:
            raise ValueError("is not a cache entry (bad header)")
        stored_key = stored_key.rstrip(b"\0").decode(errors="replace")
        if stored_key != k:   # e.g. a file copied over another key's
            raise ValueError(f"holds the key {stored_key}, not the key {k} of its name")
        actual = os.fstat(f.fileno()).st_size - HEADER.size
        if actual != size:
            raise ValueError(f"has a {actual}-byte payload, {size} expected (truncated?)")
        sha = hashlib.sha256()
        while block := f.read(1 << 24):
            sha.update(block)
        if sha.digest() != digest:
            raise ValueError("fails its checksum")
        f.seek(HEADER.size)
        try:
            value = pickle.load(f)
        except Exception as e:  # anything unpickling raises means the payload is unusable
            raise ValueError(f"does not unpickle ({type(e).__name__}: {e})") from None
    if check is not None:
        try:
            ok = bool(check(value))
        except Exception:  # a check that cannot even run on the value: the value is wrong
            ok = False
        if not ok:
            raise ValueError("fails its check (e.g. a wrong shape)")
    return value


def load(kind, k, check=None):
    """The cached object, or None if absent. A corrupt entry (see the module docstring) or one
    for which ``check(value)`` is false is deleted, with a warning naming it, and None returned."""
    path = _path(kind, k)
    if not path.exists():
        return None
    try:
        return _read_checked(path, k, check)
    except (ValueError, OSError) as e:
        warnings.warn(f"cache entry {e}: deleted it, recomputing: {path}", stacklevel=3)
        path.unlink(missing_ok=True)
        _STATS["recomputed_corrupt"].append(str(path))
        return None


def save(kind, k, obj):
    """Write ``obj`` atomically (temporary file + rename), with its length, checksum and key."""
    path = _path(kind, k)
    if len(k.encode()) > 32:
        raise ValueError(f"a cache key has at most 32 characters, got {k!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        f.write(b"\0" * HEADER.size)  # placeholder: the checksum is known only after pickling
        w = _HashingWriter(f)
        pickle.dump(obj, w, protocol=pickle.HIGHEST_PROTOCOL)
        f.seek(0)
        f.write(HEADER.pack(MAGIC, w.size, w.sha.digest(), k.encode()))


def cached(kind, parts, compute, enabled=True, check=None):
    """``compute()`` once per distinct ``parts`` and code fingerprint; later calls load it from
    disk. ``check(value) -> bool`` (optional, e.g. a shape test) rejects a loaded entry."""
    if not enabled:
        _STATS["disabled"][kind] += 1
        return compute()
    k = key(kind, parts)
    _sweep_once(str(_path(kind, k).parent))
    hit = load(kind, k, check)
    if hit is None:
        with computing(kind, k):             # another process computing it: wait, then read its entry
            hit = load(kind, k, check)
            if hit is None:
                _STATS["misses"][kind] += 1
                value = compute()
                save(kind, k, value)
                return value
    _STATS["hits"][kind] += 1
    return hit


def sweep_temporary(folder):
    """Remove the temporary files (``.<name>.<host>.<pid>.<random>.tmp``, paths.atomic_write) that
    killed writes left in ``folder``: those untouched for STALE_SECONDS, and those of a process of
    this host that has ended. A live writer's file, here or on another host, is left alone."""
    host = "." + socket.gethostname()
    for tmp in pathlib.Path(folder).glob(".*.tmp"):
        parts = tmp.name[:-len(".tmp")].rsplit(".", 2)
        try:
            ended = len(parts) == 3 and parts[1].isdigit() and parts[0].endswith(host) and not _running(int(parts[1]))
            if ended or time.time() - tmp.stat().st_mtime > STALE_SECONDS:
                tmp.unlink()
        except OSError:   # renamed into place or removed meanwhile
            pass


@functools.lru_cache(maxsize=None)
def _sweep_once(folder):
    """sweep_temporary(folder), the first time this process uses ``folder``."""
    sweep_temporary(folder)


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process
        return True
    return True


@contextlib.contextmanager
def computing(kind, k):
    """Hold an exclusive lock on ``<cache dir>/<kind>/<key>.lock`` while an entry is computed, so
    cells running side by side (``grid run --executor``) compute it once: the second waits, then
    loads what the first saved. flock: the OS releases it when its process dies (a killed
    computation blocks nothing); it works on local disks and on NFS and Lustre mounted with
    flock support. The small lock files stay (removing them would race with a waiting process)."""
    path = _path(kind, k).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
