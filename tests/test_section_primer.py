"""ntk_utils.sections.primer on the synthetic task: its formulas against direct computation,
and its teaching claims (the width-convergence distance falls like width^-1/2; the wide network
is its linearization within the stated bound; the rich network moves and aligns its kernel)."""
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from ntk_utils import params  # noqa: E402
from ntk_utils.sections import primer  # noqa: E402

OPTIONS = {"task": "synthetic-bin", "classes": None, "image_size": 8, "n_train": 64, "n_test": 64,
           "widths": [16, 128, 2048], "depth": 1, "lr": 1.0, "steps": 100, "seed": 0, "rich_width": 32,
           "rich_lr": 0.05, "n_snapshots": 4, "n_values": [32, 64, 128], "scaling_width": 64,
           "lr_candidates": [0.5, 2.0]}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("NTK_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    try:
        yield primer.run(**OPTIONS)
    finally:
        mp.undo()


def test_linearized_predictions_are_gradient_descent_on_the_linear_model():
    """The closed form equals iterating f <- f - (lr/n) K (f - y) on the training set and the
    same update on the test set, for a kernel with a null direction (λ = 0)."""
    rng = np.random.default_rng(0)
    n, m, steps, lr = 12, 5, 40, 0.7
    features = rng.standard_normal((n + m, 8))
    features[:, -1] = 0.0
    k_all = features @ features.T                  # rank 7 < n: zero eigenvalues
    k, k_test = k_all[:n, :n], k_all[n:, :n]
    y, f0, f0_test = np.sign(rng.standard_normal(n)), rng.standard_normal(n), rng.standard_normal(m)
    f, f_test = f0.copy(), f0_test.copy()
    for _ in range(steps):
        residual = f - y
        f, f_test = f - lr / n * k @ residual, f_test - lr / n * k_test @ residual
    np.testing.assert_allclose(primer.linearized_predictions(k, k_test, f0, f0_test, y, lr, steps), f_test,
                               rtol=1e-9, atol=1e-9)


def test_alignment_is_one_for_the_label_kernel_and_ignores_constants_and_scale():
    y = np.array([1.0, -1, 1, -1, 1, -1])
    assert primer.alignment(np.outer(y, y), y) == pytest.approx(1.0)
    assert primer.alignment(np.outer(y, y) + 50.0, y) == pytest.approx(1.0)     # constant mode removed
    k = np.random.default_rng(1).standard_normal((6, 6))
    k = k @ k.T
    assert primer.alignment(3 * k, y) == pytest.approx(primer.alignment(k, y))
    assert primer.snapshot_times(300, 6) == [0, 1, 4, 17, 72, 300]


def test_eNTK_approaches_the_infinite_NTK_like_one_over_root_width(result):
    distance = [r["init_vs_infinite"] for r in result.rows]
    assert distance == sorted(distance, reverse=True)
    assert -0.8 < result.width_slope < -0.3      # theory: -1/2


def test_the_wide_network_is_its_linearization(result):
    gaps = [r["lazy_gap"] for r in result.rows]
    assert gaps[-1] < primer.LAZY_GAP_BOUND < gaps[0]
    movement = [r["kernel_movement"] for r in result.rows]
    assert movement == sorted(movement, reverse=True)
    widest = result.rows[-1]
    assert abs(widest["network_error"] - widest["linearized_error"]) <= 2 / OPTIONS["n_test"]


def test_rich_network_moves_its_kernel_and_the_lazy_one_does_not(result):
    """(Whether training aligns the rich kernel with the labels is shown, not asserted: on this
    easy synthetic task its alignment starts high and barely moves.)"""
    rich, lazy = result.regimes["rich"], result.regimes["lazy"]
    assert rich["times"] == lazy["times"] == primer.snapshot_times(OPTIONS["steps"], OPTIONS["n_snapshots"])
    assert rich["distance"][0] == lazy["distance"][0] == 0.0
    assert rich["distance"][-1] > 10 * lazy["distance"][-1]
    assert np.ptp(lazy["alignment"]) < 0.01
    assert -1 <= min(rich["alignment"]) <= max(rich["alignment"]) <= 1


def test_data_scaling_part_chooses_its_step_on_validation(result):
    scaled = result.scaling
    assert scaled["lr"] in OPTIONS["lr_candidates"]
    assert scaled["pilot"][str(scaled["lr"])] == min(scaled["pilot"].values())
    assert set(scaled["curves"]) == {"network", "infinite NTK (NTK param.)"}   # its NTK-parameterized net's limit
    assert all(len(c["mean"]) == len(OPTIONS["n_values"]) for c in scaled["curves"].values())


def test_figure_record_and_markdown(result, tmp_path):
    primer.figure(result, tmp_path)
    assert (tmp_path / "primer.png").stat().st_size > 10_000
    record = result.record()
    assert set(record) == {"rows", "width_slope", "infinite_error", "regimes", "scaling", "checks"}
    text = result.markdown()
    assert f"{result.width_slope:.2f}" in text and "Rich regime" in text and "held" in text


def test_parameters_are_checked():
    with pytest.raises(params.ParameterError, match="rich_lr"):
        params.build("primer", {"rich_lr": -1.0})
    with pytest.raises(params.ParameterError, match="lr_candidates"):
        params.build("primer", {"lr_candidates": []})
