"""ntk_utils.cache (code fingerprint in keys, checksummed entries, hit/miss record) and the data
and cache records in results.json."""
import hashlib
import json
import pickle

import numpy as np
import pytest

from ntk_utils import cache, data, results
from tests.test_data import write_cifar10


@pytest.fixture(autouse=True)
def fresh(tmp_path, monkeypatch):
    """A cache in tmp_path, empty stats, no data files read so far."""
    monkeypatch.setenv("NTK_CACHE_DIR", str(tmp_path / "cache"))
    cache.reset_stats()
    data.reset_files_read()
    yield
    data._load_split.cache_clear()
    data._channel_stats.cache_clear()
    data.reset_files_read()
    cache.reset_stats()


class Counter:
    """compute() for cached(): returns a fresh (3, 4) array and counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return np.arange(12.0).reshape(3, 4) + self.calls


def entry(kind="k"):
    (path,) = (cache.cache_dir() / kind).glob("*.pkl")
    return path


def test_hit_miss_and_stats():
    f = Counter()
    a = cache.cached("k", (np.ones(3), 1), f)
    b = cache.cached("k", (np.ones(3), 1), f)
    c = cache.cached("k", (np.ones(3), 2), f)
    cache.cached("k", (np.ones(3), 1), f, enabled=False)
    assert f.calls == 3 and np.array_equal(a, b) and not np.array_equal(a, c)
    assert cache.stats() == {"hits": {"k": 1}, "misses": {"k": 2}, "disabled": {"k": 1}, "recomputed_corrupt": []}
    cache.reset_stats()
    assert cache.stats()["hits"] == {}


def test_code_fingerprint_is_in_the_key(monkeypatch):
    fp = cache.code_fingerprint()
    assert len(fp) == 16 and fp == cache.code_fingerprint()
    f = Counter()
    first = cache.cached("k", ("x",), f)
    monkeypatch.setattr(cache, "code_fingerprint", lambda: "edited-code")
    second = cache.cached("k", ("x",), f)
    assert f.calls == 2 and not np.array_equal(first, second)   # edited code: recomputed
    assert cache.stats()["misses"] == {"k": 2}
    monkeypatch.setattr(cache, "code_fingerprint", lambda: fp)
    assert np.array_equal(cache.cached("k", ("x",), f), first) and f.calls == 2   # old code: old entry


def test_fingerprint_covers_the_code_of_cached_values_only(tmp_path, monkeypatch):
    """Editing what train.py runs changes the fingerprint; its docstrings and comments, or a
    module whose numbers are never cached (experiments.py), do not."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for name in cache.COMPUTES_CACHED + ("experiments.py",):
        (pkg / name).write_text('"""v1"""\nx = 1\n')
    monkeypatch.setattr(cache, "PACKAGE", pkg)

    def fingerprint():
        cache.code_fingerprint.cache_clear()
        return cache.code_fingerprint()

    try:
        before = fingerprint()
        (pkg / "experiments.py").write_text("x = 2\n")
        assert fingerprint() == before
        (pkg / "train.py").write_text('"""v2: documentation only"""\nx = 1  # a comment\n')
        assert fingerprint() == before
        (pkg / "train.py").write_text('"""v1"""\nx = 2\n')
        assert fingerprint() != before
        from ntk_utils import _compat
        after = fingerprint()
        monkeypatch.setattr(_compat, "installed_versions", lambda: {"jax": "9.9"})
        assert fingerprint() != after                       # package versions count too
    finally:  # the next call computes the real fingerprint again (monkeypatch restores PACKAGE)
        cache.code_fingerprint.cache_clear()


def corrupt_truncate(path):
    path.write_bytes(path.read_bytes()[:-7])


def corrupt_flip(path):
    b = bytearray(path.read_bytes())
    b[len(b) // 2] ^= 0xFF
    path.write_bytes(bytes(b))


def corrupt_garbage(path):
    path.write_bytes(b"not a cache entry at all")


def corrupt_header_only(path):
    path.write_bytes(path.read_bytes()[:10])


def corrupt_bad_pickle(path):
    """Consistent header and checksum, payload that does not unpickle (e.g. a class renamed)."""
    payload = b"\x80\x05garbage"
    path.write_bytes(cache.HEADER.pack(cache.MAGIC, len(payload), hashlib.sha256(payload).digest(), path.stem.encode())
                     + payload)


@pytest.mark.parametrize("damage", [corrupt_truncate, corrupt_flip, corrupt_garbage, corrupt_header_only,
                                    corrupt_bad_pickle])
def test_corrupt_entry_is_recomputed(damage):
    f = Counter()
    good = cache.cached("k", ("x",), f)
    path = entry()
    damage(path)
    with pytest.warns(UserWarning, match="recomputing: " + str(path).replace("\\", "\\\\")):
        again = cache.cached("k", ("x",), f)
    assert f.calls == 2 and not np.array_equal(again, good)   # recomputed, not loaded
    assert cache.stats()["recomputed_corrupt"] == [str(path)]
    # the entry was rewritten and is good: the next call is a silent hit
    assert np.array_equal(cache.cached("k", ("x",), f), again) and f.calls == 2
    assert cache.stats()["hits"] == {"k": 1}


def test_check_rejects_a_wrong_shape():
    f = Counter()
    cache.cached("k", ("x",), f)
    with pytest.warns(UserWarning, match="fails its check.*recomputing"):
        cache.cached("k", ("x",), f, check=lambda v: v.shape == (4, 3))
    assert f.calls == 2
    cache.cached("k", ("x",), f, check=lambda v: v.shape == (3, 4))
    assert f.calls == 2


def test_load_and_save_keep_their_contract():
    assert cache.load("k", "missing") is None
    cache.save("k", "abc", {"a": np.arange(3)})
    assert np.array_equal(cache.load("k", "abc")["a"], np.arange(3))
    assert not list((cache.cache_dir() / "k").glob("*.tmp"))
    with open(cache.cache_dir() / "k" / "abc.pkl", "rb") as f:   # header, then a plain pickle
        assert f.read(len(cache.MAGIC)) == cache.MAGIC
        f.seek(cache.HEADER.size)
        assert np.array_equal(pickle.load(f)["a"], np.arange(3))


def test_data_fingerprint_tells_copies_apart(tmp_path):
    a, b, a2 = tmp_path / "a", tmp_path / "b", tmp_path / "a2"
    write_cifar10(a / data.CIFAR10_DIR, seed=0)
    write_cifar10(b / data.CIFAR10_DIR, seed=1)     # other pixels: another copy of "CIFAR-10"
    write_cifar10(a2 / data.CIFAR10_DIR, seed=0)    # the same bytes as a, elsewhere

    def fingerprint(root):
        data.reset_files_read()
        data._load_split.cache_clear()
        data.load_task("cifar10-pair", 2, 2, data_dir=root)
        return data.files_fingerprint()

    fa, fb, fa2 = fingerprint(a), fingerprint(b), fingerprint(a2)
    assert sorted(fa["files"]) == sorted(f"{data.CIFAR10_DIR}/{n}" for n in data.CIFAR10_BATCHES + ["test_batch"])
    assert fa["sha256"] != fb["sha256"] and fa["sha256"] == fa2["sha256"] and fa == fa2
    assert fa["official"] is None and "CIFAR-10" in fa["note"] and fa["synthetic"] is False
    info = fa["files"][f"{data.CIFAR10_DIR}/test_batch"]
    assert info["bytes"] == (a / data.CIFAR10_DIR / "test_batch").stat().st_size and len(info["sha256"]) == 16

    # a file changed after it was read is flagged
    data.reset_files_read()
    data._load_split.cache_clear()
    data.load_task("cifar10-pair", 2, 2, data_dir=a)
    (a / data.CIFAR10_DIR / "test_batch").write_bytes(b"edited")
    assert data.files_fingerprint()["files"][f"{data.CIFAR10_DIR}/test_batch"]["changed"] is True


def test_synthetic_task_has_no_files():
    data.load_task("synthetic-bin", 4, 4)
    assert data.files_fingerprint() == {"files": {}, "sha256": None, "official": None, "synthetic": True}


def test_results_json_records_cache_data_and_code(tmp_path):
    f = Counter()
    cache.cached("k", ("x",), f)
    cache.cached("k", ("x",), f)
    data.load_task("synthetic-bin", 4, 4)
    path = results.save(tmp_path / "run", {"n": 4}, {"error": float("nan")})
    with open(path) as fh:
        record = json.load(fh)
    meta = record["meta"]
    assert meta["code_fingerprint"] == cache.code_fingerprint()
    assert meta["cache"]["hits"] == {"k": 1} and meta["cache"]["misses"] == {"k": 1}
    assert meta["data"]["synthetic"] is True and record["results"]["error"] is None
