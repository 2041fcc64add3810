"""Long kernels survive a crash: tiles on disk (tiles.TileStore) and a resumed computation.

A kernel computation is started in a subprocess with a tiny size threshold (so the kernel is
written tile by tile), killed with SIGKILL once some tiles are recorded done, and run again:
the second run computes fewer tiles and gives the kernel computed in one go.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from ntk_utils import tiles
from tests.conftest import ROOT

N, BATCH = 24, 2
TILES = (N // BATCH) * (N // BATCH + 1) // 2  # symmetric: tiles on and above the diagonal

SCRIPT = textwrap.dedent("""
    import json, sys, time
    import jax, numpy as np
    from ntk_utils import kernels, models, tiles

    kind, out, slow = sys.argv[1], sys.argv[2], float(sys.argv[3])
    tiles.FLUSH_SECONDS = 0               # record after every tile
    if slow:                              # give the parent time to kill us midway
        finished = tiles.TileStore.finished
        tiles.TileStore.finished = lambda self, done: (time.sleep(slow), finished(self, done))
    x = np.random.default_rng(0).standard_normal(({n}, 4, 4, 3)).astype(np.float32)
    arch = models.myrtle(5, 4)
    if kind == "infinite":
        compute = lambda **kw: kernels.infinite_ntk_cached(arch, x, batch_size={b}, **kw)
        one_go = lambda: kernels.infinite_ntk(arch.limit("ntk"), x, batch_size={b})
    else:                                 # the plain-jax eNTK on tiles
        kernels.JACOBIAN_BYTES = 0
        params = models.flax_model(arch).init(jax.random.PRNGKey(0), x)
        compute = lambda **kw: kernels.empirical_ntk_cached(arch, params, x, implementation=0, batch_size={b}, **kw)
        one_go = lambda: kernels.empirical_ntk(models.flax_model(arch).apply, params, x, implementation=0,
                                               batch_size={b})
    k = compute(resume_entries=1)
    n_tiles = sum(tiles.TILES.values())
    np.save(out + "-resumed.npy", k)
    np.save(out + "-one-go.npy", one_go())
    print(json.dumps({{"tiles": n_tiles}}))
""").format(n=N, b=BATCH)


def _start(kind, out, slow, env):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, kind, str(out), str(slow)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("kind", ["infinite", "entk"])
def test_killed_kernel_resumes_from_its_last_tile(kind, tmp_path):
    cache_dir = tmp_path / "cache"
    env = dict(os.environ, NTK_CACHE_DIR=str(cache_dir))
    env.pop("XLA_FLAGS", None)
    folder_kind = "infinite-ntk" if kind == "infinite" else "entk"

    # 1. Start, wait until some tiles are recorded done, kill.
    proc = _start(kind, tmp_path / "first", 0.1, env)
    deadline, done = time.monotonic() + 300, 0
    while done < TILES // 4:
        assert proc.poll() is None, "the computation ended before it could be killed"
        assert time.monotonic() < deadline, "no tiles recorded in time"
        records = list((cache_dir / folder_kind).glob("*.partial/record.json"))
        done = tiles.TileStore.recorded(records[0].parent)["done"] if records else 0
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (partial,) = (cache_dir / folder_kind).glob("*.partial")
    record = tiles.TileStore.recorded(partial)
    assert TILES // 4 <= record["done"] < TILES and record["plan"]["tiles"] == TILES
    assert (partial / f"{'ntk' if kind == 'infinite' else 'kernel'}.npy").exists()
    assert not list(cache_dir.glob(f"{folder_kind}/*.pkl"))

    # 2. Run again: it resumes, and gives the kernel computed in one go.
    proc = _start(kind, tmp_path / "second", 0, env)
    stdout, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0
    computed = json.loads(stdout.strip().splitlines()[-1])["tiles"]
    # fast_ntk recomputes the diagonal tiles (they hand on the ReLU variances), nothing else
    recomputed = N // BATCH if kind == "infinite" else 0
    assert computed == TILES - record["done"] + min(record["done"], recomputed) < TILES
    resumed, one_go = (np.load(tmp_path / f"second-{s}.npy") for s in ("resumed", "one-go"))
    assert resumed.shape == (N, N) and np.abs(one_go).max() > 0
    np.testing.assert_array_equal(resumed, one_go)
    assert not list(cache_dir.glob(f"{folder_kind}/*.partial")), "partial folder left behind"
    assert len(list(cache_dir.glob(f"{folder_kind}/*.pkl"))) == 1


def test_tile_store_resumes_only_the_same_plan(tmp_path):
    plan = {"shape": [3, 4], "batch_size": 2, "tiles": 4}
    store = tiles.TileStore(tmp_path, plan, ("k",), (3, 4), np.float32)
    assert store.done == 0 and not store.arrays[0].any()
    store.arrays[0][:2, :2] = 7.0
    store.finished(1)            # FLUSH_SECONDS not passed yet: recorded on close (or later)
    store.close()
    again = tiles.TileStore(tmp_path, plan, ("k",), (3, 4), np.float32)
    assert again.done == 1 and again.arrays[0][0, 0] == 7.0
    other = tiles.TileStore(tmp_path, dict(plan, batch_size=3), ("k",), (3, 4), np.float32)
    assert other.done == 0 and not other.arrays[0].any()
    assert tiles.TileStore.recorded(tmp_path)["plan"]["batch_size"] == 3
    assert tiles.TileStore.batch_size(tmp_path) == 3 and tiles.TileStore.batch_size(None) is None
    assert tiles.TileStore.batch_size(tmp_path / "nothing-here") is None
