"""The grid cost estimate (ntk_utils.estimate): counts by hand on a tiny grid, parameter counts
against the flax networks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntk_utils import estimate, kernels, models

TINY = """
name: tiny
defaults: {image_size: 8, n_test: 10, val_size: 5, seeds: [0, 1], data_seeds: [0], width: 4}
notebooks:
  01_data_scaling: {n_values: [16, 32]}
  05_kernel_dynamics: {n_values: [16, 32], n_train: 32, n_snapshots: 2, first_snapshot: 4, t_scaling: [0, -1]}
summary: 00_summary
"""


@pytest.fixture
def tiny_grid(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_counts_by_hand(tiny_grid):
    rows = {r["cell"]: r for r in estimate.estimate(tiny_grid)}
    assert list(rows) == ["01_data_scaling/default", "05_kernel_dynamics/default", "total"]   # no summary row
    # 01: 2 seeds x n in {16, 32}, each max(400, ceil(40 n / 128)) = 400 steps; one eNTK per seed and
    # one infinite NTK, each on N = 32 (32·33/2 = 528 entries) and test x train (10·32 = 320).
    one = rows["01_data_scaling/default"]
    assert (one["networks"], one["train_steps"]) == (4, 2 * (400 + 400))
    assert one["entk_entries"] == 2 * (528 + 320)
    assert one["infinite_entries"] == 528 + 320
    # 05: per seed one network on n_train = 32 (400 steps, snapshots at t = 0, 4, 400) and one per
    # n of n_values; per snapshot the eNTK on the pool (N = 32) and on 32 fresh samples.
    five = rows["05_kernel_dynamics/default"]
    assert (five["networks"], five["train_steps"]) == (2 + 4, 2 * 400 + 2 * (400 + 400))
    assert five["entk_entries"] == 2 * 3 * 2 * (528 + 320)
    assert five["infinite_entries"] == 0
    # Together: 05's networks on n_values are 01's, and its K^t at t = 0 on the pool is 01's eNTK at init.
    total = rows["total"]
    assert (total["networks"], total["train_steps"]) == (4 + 2, 4 * 400 + 2 * 400)
    assert total["entk_entries"] == five["entk_entries"]
    assert total["infinite_entries"] == one["infinite_entries"]
    for r in rows.values():
        assert r["hours"] == pytest.approx(r["train_hours"] + r["entk_hours"] + r["infinite_hours"])
        assert r["train_hours"] > 0 and r["entk_hours"] > 0
    assert one["infinite_hours"] > 0 and five["infinite_hours"] == 0
    assert total["hours"] < one["hours"] + five["hours"]
    # In grid order: 01 adds all it computes, 05 only what 01 did not compute; per notebook the same.
    assert one["added_hours"] == pytest.approx(one["hours"])
    assert five["added_hours"] == pytest.approx(total["hours"] - one["hours"])
    assert five["added_hours"] < five["hours"]
    assert estimate.notebook_hours(list(rows.values())) == pytest.approx(
        {"01_data_scaling": one["added_hours"], "05_kernel_dynamics": five["added_hours"]})


def test_main_prints_every_cell_and_the_total(tiny_grid, capsys):
    estimate.main(tiny_grid)
    out = capsys.readouterr().out
    assert "| 01_data_scaling/default | 4 | 1,600 |" in out
    assert "| 05_kernel_dynamics/default | 6 | 2,400 |" in out
    assert "| **total** | 6 | 2,400 |" in out
    assert "| 05_kernel_dynamics |" in out and "| **grid** |" in out


@pytest.mark.parametrize("arch", [models.arch_from_config("myrtle", 4, 5, "standard"), models.cnn5(3),
                                  models.mlp(2, 8, b_std=0.1)], ids=["myrtle5-standard", "cnn5", "mlp-bias"])
def test_parameter_count_is_the_flax_networks(arch):
    shapes = jax.eval_shape(lambda: models.flax_model(arch).init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3))))
    count = sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(shapes))
    assert estimate.network_cost(arch, 8)[1] == count


def test_costs_grow_with_size(monkeypatch):
    """More images, pixels or width never cost less; Jacobians that do not fit are recomputed per tile."""
    net = models.myrtle(5, 8)
    assert estimate.infinite_ntk_work(net, 16)[0] == pytest.approx(16 * estimate.infinite_ntk_work(net, 8)[0], rel=1e-5)
    assert estimate.entk_seconds(models.myrtle(5, 64), 8, 100) > estimate.entk_seconds(net, 8, 100)
    full = estimate.entk_seconds(net, 8, 2000)
    monkeypatch.setattr(kernels, "JACOBIAN_BYTES", 0)   # the Jacobians "do not fit": tiles recompute them
    assert estimate.entk_seconds(net, 8, 2000) > full


def test_rates_file_round_trip_and_named_rates(tmp_path):
    """A rates file (what bench_roofline.py --rates writes) reads back equal; the built-in names
    resolve; anything else is refused with a message, also by the grid command (exit 2)."""
    from ntk_utils import grid
    path = tmp_path / "rates.json"
    estimate.CPU.save(path)
    assert estimate.rates_named(str(path)) == estimate.CPU
    assert estimate.rates_named("h200-spec") is estimate.H200_SPEC
    with pytest.raises(ValueError, match="neither one of"):
        estimate.rates_named(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text('{"device": "x"}')
    with pytest.raises(ValueError, match="not what bench_roofline"):
        estimate.rates_named(str(tmp_path / "bad.json"))
    assert grid.main(["estimate", "parameters/quick.yaml", "--rates", str(tmp_path / "missing.json")]) == 2


def test_scaled_rates_follow_the_limits_they_are_scaled_by(tiny_grid):
    """Rates.scaled: twice the FLOP/s halves training and Jacobian time, twice the bandwidth halves
    fast_ntk's; more memory means larger eNTK tiles (kernels._auto_tile on GPUs)."""
    cpu = estimate.CPU
    double = cpu.scaled("x2", 2 * cpu.matmul_flops, 2 * cpu.memory_bandwidth, memory_bytes=2 * 6e7 * 4 * 8)
    assert double.tile_elements == pytest.approx(2 * 6e7)   # a quarter of memory, 8 bytes per element pair
    assert double.train_flops == pytest.approx(2 * cpu.train_flops)
    assert double.jacobian_flops == pytest.approx(2 * cpu.jacobian_flops)
    assert all(double.fast_ntk_seconds[s] == pytest.approx(t / 2) for s, t in cpu.fast_ntk_seconds.items())
    one = {r["cell"]: r for r in estimate.estimate(tiny_grid, cpu)}["01_data_scaling/default"]
    two = {r["cell"]: r for r in estimate.estimate(tiny_grid, double)}["01_data_scaling/default"]
    assert two["infinite_hours"] == pytest.approx(one["infinite_hours"] / 2)
    assert two["entk_entries"] == one["entk_entries"] and two["hours"] < one["hours"]
