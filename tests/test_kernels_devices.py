"""Kernels on several devices: two forced CPU devices give the one-device kernels, and both work.

jax fixes its device count when it starts, so each configuration runs in its own process
(XLA_FLAGS=--xla_force_host_platform_device_count=N set before jax is imported).
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.conftest import ROOT

SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    import jax, numpy as np
    from ntk_utils import fast_ntk, kernels, models, tiles
    from ntk_utils._compat import neural_tangents

    out, devices = sys.argv[1], int(sys.argv[2])
    assert jax.local_device_count() == devices, jax.local_devices()
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((n, 4, 4, 3)).astype(np.float32) for n in (9, 5))
    arch = models.myrtle(5, 4)
    apply = models.flax_model(arch).apply
    params = models.flax_model(arch).init(jax.random.PRNGKey(0), x)
    limit = models.myrtle(5, 1)
    cases = {
        "entk_jacobian": lambda: kernels.empirical_ntk(apply, params, x, batch_size=2),   # Jacobian chunks of 2
        "entk_jacobian_xy": lambda: kernels.empirical_ntk(apply, params, x, y, batch_size=2),
        "entk_tiles": lambda: kernels.empirical_ntk(apply, params, x, batch_size=2, implementation=1),
        "entk_tiles_xy": lambda: kernels.empirical_ntk(apply, params, x, y, batch_size=2, implementation=1),
        "fast_ntk": lambda: fast_ntk.kernel(limit, x, batch_size=2),
        "fast_ntk_xy": lambda: fast_ntk.kernel(limit, x, y, batch_size=2, get=("nngp", "ntk"))[1],
    }
    try:
        neural_tangents()
        def stax_path():   # kernels.infinite_ntk's neural-tangents path, as for an unsupported architecture
            fast_ntk.unsupported = lambda *a: "forced by the test"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return kernels.infinite_ntk(limit, x, batch_size=2)
        cases["stax_infinite_ntk"] = stax_path
    except ImportError:
        pass
    kernels_, per_device = {}, {}
    for name, compute in cases.items():
        tiles.TILES.clear()
        kernels_[name] = np.asarray(compute())
        per_device[name] = dict(tiles.TILES)
    np.savez(out + ".npz", **kernels_)
    with open(out + ".json", "w") as f:
        json.dump(per_device, f)
""")


def _run(tmp_path, devices):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               NTK_CACHE_DIR=str(tmp_path / "cache"))
    out = tmp_path / f"devices{devices}"
    subprocess.run([sys.executable, "-c", SCRIPT, str(out), str(devices)], cwd=ROOT, env=env, check=True)
    with np.load(str(out) + ".npz") as f:
        kernels = dict(f)
    return kernels, json.loads(out.with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("devices")
    return _run(tmp, 1), _run(tmp, 2)


def test_two_devices_give_the_one_device_kernels(runs):
    (one, _), (two, _) = runs
    assert set(one) == set(two) and {"entk_jacobian", "entk_tiles", "fast_ntk", "fast_ntk_xy"} <= set(one)
    for name in one:
        assert one[name].shape == two[name].shape and one[name].dtype == np.float32, name
        assert np.abs(one[name]).max() > 0, name
        np.testing.assert_allclose(two[name], one[name], rtol=1e-6, atol=1e-6 * np.abs(one[name]).max(),
                                   err_msg=name)
    np.testing.assert_array_equal(two["fast_ntk"], two["fast_ntk"].T)


def test_both_devices_get_tiles(runs):
    (_, tiles_one), (_, tiles_two) = runs
    for name, per_device in tiles_two.items():
        assert len(per_device) == 2 and min(per_device.values()) > 0, (name, per_device)
        assert sum(per_device.values()) == sum(tiles_one[name].values()), name   # the same tiles, shared
        assert len(tiles_one[name]) == 1, name


class _FakeDevice:
    """A device as jax describes it: platform and memory statistics (None on CPU)."""

    def __init__(self, platform, free=None):
        self.platform, self.free = platform, free

    def memory_stats(self):
        return None if self.free is None else {"bytes_limit": self.free + 2 ** 30, "bytes_in_use": 2 ** 30}


def test_tile_sizes_from_free_device_memory():
    from ntk_utils import kernels, pair_tiles, tiles
    cpu = [_FakeDevice("cpu")]
    assert tiles.free_memory(cpu) is None
    assert pair_tiles.auto_batch_size((8, 8, 3), cpu) == 8 and pair_tiles.auto_batch_size((16, 16, 3), cpu) == 1
    gpus = [_FakeDevice("gpu", 80 * 2 ** 30), _FakeDevice("gpu", 2 ** 30)]
    assert tiles.free_memory(gpus) == 2 ** 30                          # the least free device decides
    small, large = pair_tiles.auto_batch_size((32, 32, 3), gpus), pair_tiles.auto_batch_size((32, 32, 3), gpus[:1])
    assert 1 <= small < large
    p = 10 ** 6
    assert kernels.entk_tile_size(p, kernels.TILE_ELEMENTS_CPU) == 32     # 6e7 / P elements, as before
    assert kernels.entk_tile_size(p, kernels._tile_elements(cpu)) == 32
    assert kernels.entk_tile_size(1, 1e12) == 512 and kernels.entk_tile_size(10 ** 9, 6e7) == 8   # clipped
    big, least = (kernels.entk_tile_size(p, kernels._tile_elements(g)) for g in (gpus[:1], gpus))
    assert big > least >= 8


def test_auto_implementation_is_the_full_jacobian_where_it_fits(monkeypatch):
    from ntk_utils import kernels
    assert kernels.uses_full_jacobian(10 ** 5, 1000)
    assert not kernels.uses_full_jacobian(kernels.FULL_JACOBIAN_MAX_PARAMS + 1, 10)   # too many parameters
    assert not kernels.uses_full_jacobian(10 ** 6, 2000)                            # 8 GB of Jacobians
    monkeypatch.setattr(kernels, "JACOBIAN_BYTES", 0)
    assert not kernels.uses_full_jacobian(1, 1)
