"""ntk_utils.sections.kernel_dynamics (notebook 05) on the synthetic task, tiny sizes."""
import dataclasses
import json

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from ntk_utils import params, plotting, results, setup as shared, train  # noqa: E402
from ntk_utils.sections import kernel_dynamics  # noqa: E402
from tests.conftest import STATUSES, TINY  # noqa: E402

OPTIONS = {"n_values": [16, 32], "n_train": 32, "n_snapshots": 3, "first_snapshot": 2, "snapshot_steps": [],
           "t_scaling": [0, -1]}
T_GRID = [0, 2, 4, 10]          # 10 steps at n_train = 32 (min_steps); geomspace(2, 10, 3) = 2, 4.5, 10


@pytest.fixture
def setup():
    return shared.Setup.from_parameters(TINY)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(result, the train.train calls of the run: [(n, config)])."""
    calls, original = [], train.train

    def spy(arch, x, y, config, **kw):
        calls.append((len(x), config))
        return original(arch, x, y, config, **kw)

    mp = pytest.MonkeyPatch()
    mp.setenv("NTK_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    mp.setattr(train, "train", spy)
    try:
        yield kernel_dynamics.run(shared.Setup.from_parameters(TINY), **OPTIONS), calls
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def result(trained):
    return trained[0]


# ------------------------------------------------------------------------ schedule and check

def test_snapshot_schedule(setup):
    s = kernel_dynamics.snapshot_schedule(setup.recipe, 32, 3, 2, [], [0, -1])
    assert s.total_steps == 10 and s.t_grid == T_GRID and s.t_scaling == [0, 10]
    assert s.epochs == [t * 16 / 32 for t in T_GRID]   # batch min(128, 32 // 2) = 16
    s = kernel_dynamics.snapshot_schedule(setup.recipe, 32, 3, 2, [7, 3, 7], [1, -2, 1])
    assert s.t_grid == [0, 3, 7] and s.t_scaling == [3]
    full = dataclasses.replace(setup.recipe, full_batch=True)
    assert kernel_dynamics.snapshot_schedule(full, 32, 3, 2, [], [])[2] == [t * 1.0 for t in T_GRID]
    with pytest.raises(ValueError, match=r"first_snapshot: snapshot steps must lie in 1\.\.10"):
        kernel_dynamics.snapshot_schedule(setup.recipe, 32, 3, 11, [], [0])
    with pytest.raises(ValueError, match=r"snapshot_steps: .* 1\.\.10"):
        kernel_dynamics.snapshot_schedule(setup.recipe, 32, 3, 2, [5, 12], [0])
    with pytest.raises(ValueError, match=r"t_scaling: \[4\] must hold indices into the 4 times"):
        kernel_dynamics.snapshot_schedule(setup.recipe, 32, 3, 2, [], [4])


@pytest.mark.parametrize("bad, names", [
    ({"n_values": [32, 16]}, "n_values"), ({"n_values": [16]}, "n_values"), ({"n_train": 0}, "n_train"),
    ({"n_snapshots": 0}, "n_snapshots"), ({"first_snapshot": 0}, "first_snapshot"),
    ({"first_snapshot": 11}, "first_snapshot"), ({"snapshot_steps": [0, 3]}, "snapshot_steps"),
    ({"snapshot_steps": [3, 11]}, "snapshot_steps"), ({"t_scaling": [0, 4]}, "t_scaling"),
    ({"t_scaling": [-5]}, "t_scaling"), ({"t_scaling": [0.5]}, "t_scaling"),
])
def test_check_refuses_bad_values(setup, bad, names):
    problems = kernel_dynamics.check(setup, **{**OPTIONS, **bad})
    assert problems and all(p.startswith(names) for p in problems), problems


def test_check_sizes_count_the_fresh_samples(setup):
    assert kernel_dynamics.check(setup, **OPTIONS) == []
    # synthetic-bin holds 3942 training samples: the n_train fresh samples come after the pool of max(n_values, n_train)
    assert kernel_dynamics.check(setup, **{**OPTIONS, "n_values": [16, 1900], "n_train": 32}) == []
    problems = kernel_dynamics.check(setup, **{**OPTIONS, "n_values": [16, 32], "n_train": 1960, "first_snapshot": 2})
    assert problems == ["synthetic-bin has 3942 training samples of its classes; this needs 3952 "
                        "(val_size 32 + pool 1960 + fresh 1960)"]


def test_params_build_names_the_section_parameters():
    setup, options = params.build("05_kernel_dynamics", {**TINY, **OPTIONS, "t_scaling": "[0, -1]"})
    assert options == OPTIONS and setup.recipe.min_steps == 10
    with pytest.raises(params.ParameterError, match="t_scaling"):
        params.build("05_kernel_dynamics", {**TINY, **OPTIONS, "t_scaling": [9]})


# ------------------------------------------------------------------------ run

def test_training_call_is_the_notebooks(trained, setup):
    result, calls = trained
    with_snapshots = [(n, c) for n, c in calls if c.snapshot_steps]
    followed = lambda s, **change: (32, dataclasses.replace(setup.recipe, seed=s, snapshot_steps=tuple(T_GRID), **change))
    assert with_snapshots == [run for s in setup.seeds for run in (followed(s), followed(s, schedule="constant"))]
    assert sorted((n, c.seed) for n, c in calls if not c.snapshot_steps) == [(16, 0), (16, 1), (32, 0), (32, 1)]


def test_run_shapes_and_statuses(result):
    over_t = ["K^t_fit", "K^F,t_fit", "network(t)", "K^t_fit, constant lr"]
    over_n = ["K^t, t=0", "K^t, t=10", "network"]
    assert list(result.outcomes) == over_t + over_n and list(result.curves) == over_t + over_n
    for name in over_t:
        assert result.outcomes[name].shape == (1, 2, 4, 64)               # draws, seeds, t, test examples
        c = result.curves[name]
        assert c["x_name"] == "t" and c["x"] == T_GRID and len(c["mean"]) == 4
    for name in over_n:
        assert result.outcomes[name].shape == (1, 2, 2, 64)
        assert result.curves[name]["x_name"] == "n" and result.curves[name]["x"] == [16, 32]
    assert result.t_grid == T_GRID and result.epochs == [0.0, 1.0, 2.0, 5.0]
    assert result.train_error.shape == (1, 2, 2)
    assert [v.claim for v in result.verdicts] == [
        "K^t_fit keeps improving along t", "K^F,t_fit keeps improving along t",
        "K^t_fit, constant lr keeps improving along t",
        "network scales better than K^t, t=0", "network scales better than K^t, t=10"]
    assert [v.claim for v in result.plain] == [v.claim for v in result.verdicts]
    assert all(v.status in STATUSES for v in result.verdicts)
    assert all("few" in v.text.lower() or "caution" in v.text.lower() for v in result.verdicts)   # 1 draw x 2 seeds


def test_record_is_json_and_markdown_names_the_numbers(result, tmp_path):
    record = result.record()
    assert set(record) == {"t_grid", "epochs", "n_values", "curves", "train_error", "underfit", "verdicts"}
    results.write_json(tmp_path / "r.json", record)
    back = json.loads((tmp_path / "r.json").read_text())
    assert back["t_grid"] == T_GRID and list(back["curves"]) == list(result.curves) and len(back["verdicts"]) == 5
    text = result.markdown()
    assert "synthetic-bin" in text and "32 training samples" in text and "**K^t_fit keeps improving along t:" in text
    assert f"{result.curves['K^t_fit']['mean'][0]:.3f}" in text
    assert result.timeline().splitlines()[0].split() == ["t", "epoch", "K^t_fit", "K^F,t_fit", "network(t)",
                                                         "K^t_fit(constant", "lr)"]
    assert len(result.timeline().splitlines()) == 1 + len(T_GRID)


def test_figure_and_panels_from_results_json(result, tmp_path):
    fig5, fig1c = kernel_dynamics.figure(result, tmp_path / "out")
    assert (tmp_path / "out/fig5_kernel_dynamics.png").exists() and (tmp_path / "out/fig1c_kernel_dynamics.png").exists()
    assert len(fig5.axes) == 2 and len(fig1c.axes) == 1
    results.write_json(tmp_path / "r.json", result.record())
    back = json.loads((tmp_path / "r.json").read_text())
    back["curves"]["network(t)"]["mean"][2] = None                     # a time where every run diverged
    back["curves"]["K^t, t=10"]["runs"][1] = [None, None]              # a diverged seed
    fig, (ax_a, ax_b) = plotting.figure(2)
    kernel_dynamics.panel_1c(ax_a, back["curves"], back["epochs"], 32)
    kernel_dynamics.panel_5b(ax_b, back["curves"])
    assert len(ax_a.containers) == 4 and ax_a.get_xscale() == "log"
    np.testing.assert_allclose(ax_a.containers[0].lines[0].get_xdata(), [1.0, 2.0, 5.0])
    assert np.isnan(ax_a.containers[2].lines[0].get_ydata()[1])
    labels = ax_b.get_legend_handles_labels()[1]
    assert [l.split(" (")[0] for l in labels] == ["K^t, t=0", "K^t, t=10", "network"]
