"""The grid cost estimate (ntk_utils.estimate): counts by hand on a tiny grid, parameter counts
against the flax networks, and each section's declared work against what its tiny real run
computes (networks, training steps, kernel entries)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntk_utils import estimate, kernels, models, params, sections, train
from tests.conftest import TINY as TINY_SETUP

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
    # two infinite NTKs (the standard network's own limit and the NTK-parameterization one), each
    # on N = 32 (32·33/2 = 528 entries) and test x train (10·32 = 320).
    one = rows["01_data_scaling/default"]
    assert (one["networks"], one["train_steps"]) == (4, 2 * (400 + 400))
    assert one["entk_entries"] == 2 * (528 + 320)
    assert one["infinite_entries"] == 2 * (528 + 320)
    # 05: per seed two networks on n_train = 32 (400 steps, snapshots at t = 0, 4, 400: the recipe's
    # and one at a constant learning rate) and one per n of n_values; per snapshot the eNTK on the
    # pool (N = 32) and on 32 fresh samples, and the constant-rate network's on the pool (at t = 0
    # the same initialization: one kernel).
    five = rows["05_kernel_dynamics/default"]
    assert (five["networks"], five["train_steps"]) == (4 + 4, 4 * 400 + 2 * (400 + 400))
    assert five["entk_entries"] == 2 * 3 * 2 * (528 + 320) + 2 * 2 * (528 + 320)
    assert five["infinite_entries"] == 0
    # Together: 05's networks on n_values are 01's, and its K^t at t = 0 on the pool is 01's eNTK at init.
    total = rows["total"]
    assert (total["networks"], total["train_steps"]) == (4 + 4, 4 * 400 + 4 * 400)
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
    assert "| 05_kernel_dynamics/default | 8 | 3,200 |" in out
    assert "| **total** | 8 | 3,200 |" in out
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
    fast_ntk's; more memory means larger eNTK tiles (kernels.entk_tile_size on GPUs)."""
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


# ------------------------------------------------------------------ the estimate against a real run

SMALL = {**TINY_SETUP, "n_test": 16, "val_size": 8}
CELLS = {   # notebook -> a cell's parameters: tiny real runs, every loop of the section taken at least twice
    "01_data_scaling": {**SMALL, "data_seeds": [0, 1], "n_values": [8, 16]},
    "02_width": {**SMALL, "parameterization": "ntk", "lr": 8.0, "n_values": [8, 16], "widths_scaling": [2, 4],
                 "widths_sweep": [2, 4], "n_fixed": 8, "svhn_task": "synthetic-bin",
                 "svhn_fallback_task": "synthetic-bin", "cnn5_widths": [2, 4],
                 "lr_by_width": {2: 4.0}, "cnn5_lr_by_width": {4: 2.0}},
    "03_hyperparameters": {**SMALL, "n_values": [8, 16], "variants": ["lr_high", "gd", "early_stopping"]},
    "04_after_kernel": {**SMALL, "n_values": [8, 16], "m_values": [8, 16, 24], "n_fit": 8, "m_fixed": [24]},
    "05_kernel_dynamics": {**SMALL, "n_values": [8, 16], "n_train": 16, "n_snapshots": 2, "first_snapshot": 2,
                           "t_scaling": [0, -1]},
    "primer": {"task": "synthetic-bin", "image_size": 8, "n_train": 16, "n_test": 64, "widths": [4, 8], "depth": 1,
               "steps": 5, "rich_width": 4, "n_snapshots": 3, "n_values": [4, 8], "scaling_width": 4,
               "lr_candidates": [0.5, 2.0]},
}


def _recording(monkeypatch):
    """What the real computations compute, recorded where they run (behind the disk cache, so each
    network and kernel once): the training steps of each network, the entries of each kernel."""
    seen = {"train_steps": [], "entk_entries": [], "infinite_entries": []}
    real_train, real_entk, real_infinite = train._train, kernels.empirical_ntk, kernels.infinite_ntk

    def entries(x1, x2):
        return estimate.kernel_entries(len(x1), None if x2 is None else len(x2))

    def training(arch, x, y, config, *args):
        seen["train_steps"].append(config.num_steps(len(x)))
        return real_train(arch, x, y, config, *args)

    def entk(apply_fn, p, x1, x2=None, **kwargs):
        seen["entk_entries"].append(entries(x1, x2))
        return real_entk(apply_fn, p, x1, x2, **kwargs)

    def infinite(arch, x1, x2=None, **kwargs):
        seen["infinite_entries"].append(entries(x1, x2))
        return real_infinite(arch, x1, x2, **kwargs)

    monkeypatch.setattr(train, "_train", training)
    monkeypatch.setattr(kernels, "empirical_ntk", entk)
    monkeypatch.setattr(kernels, "infinite_ntk", infinite)
    return seen


@pytest.mark.parametrize("notebook", list(CELLS))
def test_the_estimate_counts_what_the_run_computes(notebook, monkeypatch, tmp_path):
    """Each section's ``work`` declares the networks (and their training steps) and the kernels
    (and their entries) its ``run`` computes: a tiny real run from an empty cache computes as many."""
    monkeypatch.setenv("NTK_CACHE_DIR", str(tmp_path / "cache"))
    row = estimate.cell_work(notebook, CELLS[notebook]).row()
    seen = _recording(monkeypatch)
    setup, options = params.build(notebook, CELLS[notebook])
    section = sections.module(notebook)
    section.run(**options) if setup is None else section.run(setup, **options)
    assert (len(seen["train_steps"]), sum(seen["train_steps"])) == (row["networks"], row["train_steps"])
    assert sum(seen["entk_entries"]) == row["entk_entries"]
    assert sum(seen["infinite_entries"]) == row["infinite_entries"]
