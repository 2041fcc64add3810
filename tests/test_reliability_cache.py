"""Issue 20's probes of the cache, the class ids and the written files: each failed before its fix.

    4   an entry copied over another key is recomputed (the key is stored inside the entry)
    5   the CPUs this process may use and the BLAS thread settings are in the code fingerprint
    6   non-integer class ids (floats, bools, strings) are refused, not coerced
    9   an entry of the wrong type (train, eNTK, infinite NTK) is recomputed with a warning naming it
    10  a temporary file left by a killed write is swept on the next run (a live writer's is kept)
    11a entries, results.json and outcomes.npz get the umask's permissions, not 0600
"""
import os
import re
import shutil
import stat
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from ntk_utils import cache, data, kernels, models, params, results, setup, train
from ntk_utils.paths import atomic_write


@pytest.fixture(autouse=True)
def fresh(tmp_path, monkeypatch):
    """An empty cache in tmp_path and empty stats."""
    monkeypatch.setenv("NTK_CACHE_DIR", str(tmp_path / "cache"))
    cache.reset_stats()
    yield
    cache.reset_stats()


def named(path):
    """pytest.warns(match=...) for a warning naming ``path``."""
    return re.escape(str(path))


class Counter:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return np.full((2, 3), float(self.calls))


def entry_path(kind, parts):
    return cache.cache_dir() / kind / f"{cache.key(kind, parts)}.pkl"


# ----------------------------------------------------------------------------- probe 4

def test_probe4_entry_copied_over_another_key_is_recomputed():
    f = Counter()
    cache.cached("k", ("a",), f)
    b = cache.cached("k", ("b",), f)
    a_path, b_path = entry_path("k", ("a",)), entry_path("k", ("b",))
    shutil.copyfile(a_path, b_path)                     # a valid entry, under another key
    with pytest.warns(UserWarning, match="key.*" + named(b_path)):
        again = cache.cached("k", ("b",), f)
    assert f.calls == 3 and not np.array_equal(again, b) and cache.stats()["recomputed_corrupt"] == [str(b_path)]
    assert np.array_equal(cache.cached("k", ("b",), f), again) and f.calls == 3   # rewritten: a silent hit


# ----------------------------------------------------------------------------- probe 5

def test_probe5_cpus_and_blas_threads_are_in_the_fingerprint(monkeypatch):
    def fingerprint():
        cache.code_fingerprint.cache_clear()
        return cache.code_fingerprint()

    try:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
        base = fingerprint()
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)   # taskset -c 0
        one_cpu = fingerprint()
        assert one_cpu != base
        seen = {base, one_cpu}
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            monkeypatch.setenv(name, "1")
            seen.add(fingerprint())
        assert len(seen) == 5                           # each setting gives its own keys
    finally:
        cache.code_fingerprint.cache_clear()


# ----------------------------------------------------------------------------- probe 6

@pytest.mark.parametrize("classes", [[[3.7], [5]], [[True], [5]], [[3, True], [5]], [["3"], [5]], [[3.0], [5]]])
def test_probe6_non_integer_class_ids_are_refused(classes):
    with pytest.raises(ValueError, match="integer") as e:
        data.check("cifar10-pair", classes)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="integer"):
        setup.Setup(classes=classes)
    with pytest.raises(params.ParameterError, match="integer"):
        params.check("01_data_scaling", {"classes": str(classes).replace("True", "true")})


def test_probe6_integer_class_ids_still_work():
    assert data.check("cifar10-pair", [[3], [5]]) == ((3,), (5,))
    assert data.check("cifar10-pair", (np.int64(3), [np.int32(5)])) == ((3,), (5,))   # a bare id: one class
    assert "cat vs dog" in data.describe("cifar10-pair", [[3], [5]])


# ----------------------------------------------------------------------------- probe 9

def tiny_training():
    rng = np.random.default_rng(0)
    y = np.where(np.arange(8) % 2 == 0, 1.0, -1.0).astype(np.float32)
    x = rng.standard_normal((8, 4, 4, 3)).astype(np.float32)
    return models.myrtle(5, 4), x, y, train.TrainConfig(lr=0.05, batch_size=4, epochs=1, min_steps=3, eval_every=3)


def test_probe9_train_entry_of_the_wrong_type_is_recomputed():
    arch, x, y, config = tiny_training()
    first = train.train(arch, x, y, config, progress=False)
    (path,) = (cache.cache_dir() / "train").glob("*.pkl")
    for wrong in ({"not": "a TrainResult"}, first.params,
                  train.TrainResult(**{**first.__dict__, "steps": first.steps + 1})):
        cache.save("train", path.stem, wrong)       # under the right key, so only its type and shape can tell
        with pytest.warns(UserWarning, match="fails its check.*" + named(path)):
            again = train.train(arch, x, y, config, progress=False)
        assert isinstance(again, train.TrainResult) and again.history == first.history


@pytest.mark.parametrize("kind", ["entk", "infinite"])
def test_probe9_kernel_entry_of_the_wrong_type_is_recomputed(kind):
    arch, x, _, _ = tiny_training()
    if kind == "entk":
        p = models.flax_model(arch).init(jax.random.PRNGKey(0), x[:1])
        compute = lambda: kernels.empirical_ntk_cached(arch, p, x[:3])
    else:
        compute = lambda: kernels.infinite_ntk_cached(arch, x[:3])
    good = compute()
    (path,) = (cache.cache_dir()).glob("*/*.pkl")
    for wrong in ({"not": "a kernel"}, np.zeros((2, 2)), "text"):
        cache.save(path.parent.name, path.stem, wrong)
        with pytest.warns(UserWarning, match="fails its check.*" + named(path)):
            again = compute()
        assert np.array_equal(np.asarray(again), np.asarray(good))


# ----------------------------------------------------------------------------- probe 10

def dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_probe10_temporary_files_of_killed_writes_are_swept():
    folder = cache.cache_dir() / "k"
    folder.mkdir(parents=True)
    killed = folder / f".abc.pkl.{os.uname().nodename}.{dead_pid()}.x1.tmp"         # its writer is dead
    old = folder / ".def.pkl.x2.tmp"                                                  # untouched for hours
    live = folder / f".ghi.pkl.{os.uname().nodename}.{os.getpid()}.x3.tmp"          # a writer still writing
    for p in (killed, old, live):
        p.write_bytes(b"partial")
    os.utime(old, (time.time() - 3 * 3600,) * 2)
    cache.cached("k", ("x",), Counter())                                              # the next run
    assert not killed.exists() and not old.exists() and live.exists()
    assert [p.name for p in folder.glob(".*.tmp")] == [live.name]


def test_probe10_a_write_names_its_writer():
    path = cache.cache_dir() / "named.txt"
    with atomic_write(path) as f:
        (tmp,) = [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
        assert f".{os.getpid()}." in tmp.name
        f.write("x")
    assert path.read_text() == "x"


# ----------------------------------------------------------------------------- probe 11a

@pytest.fixture
def umask_002():
    old = os.umask(0o002)
    yield 0o664
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_probe11a_files_get_the_umask_permissions(tmp_path, umask_002):
    cache.cached("k", ("x",), Counter())
    (entry,) = (cache.cache_dir() / "k").glob("*.pkl")
    path = results.save(tmp_path / "run", {"n": 1}, {"error": 0.5}, outcomes={"network": np.zeros(3)})
    for p in (entry, path, tmp_path / "run" / "outcomes.npz"):
        assert mode(p) == umask_002, p
