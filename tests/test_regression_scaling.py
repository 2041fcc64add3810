"""Kernel regression and power-law fits."""
import numpy as np
import pytest

from ntk_utils import regression, scaling


def _rbf(a, b):
    return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / 2)


def test_kernel_regression_matches_direct_solve():
    rng = np.random.default_rng(0)
    x, xs = rng.standard_normal((30, 3)), rng.standard_normal((10, 3))
    y = np.sign(rng.standard_normal(30))
    k, ks = _rbf(x, x), _rbf(xs, x)
    for ridge in (0.0, 0.1):
        want = ks @ np.linalg.solve(k + ridge * np.mean(np.diag(k)) * np.eye(30), y)
        np.testing.assert_allclose(regression.kernel_regression(k, y, ks, ridge=ridge), want, rtol=1e-6, atol=1e-8)


def test_ridgeless_regression_interpolates_training_points():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 5))
    y = np.sign(rng.standard_normal(20))
    k = _rbf(x, x).astype(np.float32)
    pred = regression.kernel_regression(k, y, k)
    np.testing.assert_allclose(pred, y, atol=1e-3)
    assert regression.test_error(pred, y) == 0.0


def test_singular_kernel_gets_jitter_warning_and_bad_kernel_clear_error():
    x = np.repeat(np.random.default_rng(2).standard_normal((5, 2)), 2, axis=0)   # duplicated inputs
    y = np.ones(10)
    k = x @ x.T                                                                  # rank 2
    with pytest.warns(UserWarning, match="jitter"):
        regression.kernel_regression(k, y, k)
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        regression.kernel_regression(-np.eye(4), np.ones(4), np.eye(4))
    with pytest.raises(ValueError, match="shape"):
        regression.kernel_regression(np.eye(3), np.ones(4), np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        regression.kernel_regression(np.full((2, 2), np.nan), np.ones(2), np.eye(2))


def test_rank_deficient_float32_kernel_falls_back_to_pseudo_inverse():
    features = np.random.default_rng(3).standard_normal((300, 4)).astype(np.float32)
    k = features @ features.T                          # rank 4, float32 rounding makes it indefinite
    y = features @ np.array([1.0, -2.0, 0.5, 0.0])     # in the kernel's range: exactly representable
    with pytest.warns(UserWarning, match="singular"):
        pred = regression.kernel_regression(k, y, k[:10])
    np.testing.assert_allclose(pred, y[:10], rtol=1e-3, atol=1e-3)
    vectors = np.linalg.qr(np.random.default_rng(4).standard_normal((50, 50)))[0]
    eigenvalues = np.append(np.linspace(1, 10, 49), -1e-3)      # one rounding-size negative eigenvalue
    k = (vectors * eigenvalues) @ vectors.T                     # that jitter cannot fix
    with pytest.warns(UserWarning, match="pseudo-inverse on 49 of 50"):
        pred = regression.kernel_regression(k, vectors[:, 0], k[:5])
    np.testing.assert_allclose(pred, k[:5] @ vectors[:, 0] / eigenvalues[0], rtol=1e-6)


def test_test_error_counts_a_tie_as_plus_one():
    assert regression.test_error([0.3, -2.0, 0.0, -0.1], [1, -1, -1, 1]) == 0.5
    assert list(regression.misclassified([0.3, -2.0, 0.0, -0.1], [1, -1, -1, 1])) == [False, False, True, True]


def test_fit_power_law_recovers_exponent_with_noise():
    rng = np.random.default_rng(0)
    n = 2.0 ** np.arange(6, 14)
    true_alpha, c = 0.3, 2.0
    err = c * n ** -true_alpha * np.exp(0.05 * rng.standard_normal((4, len(n))))
    fit = scaling.fit_power_law(n, err)
    assert abs(fit.alpha - true_alpha) < 0.03
    assert str(fit) == f"α = {fit.alpha:.3f}"
    assert abs(fit.C - c) / c < 0.3
    np.testing.assert_allclose(fit.predict(n), fit.C * n ** -fit.alpha)


def test_fit_power_law_single_seed_and_range():
    n = np.array([64, 128, 256, 512, 1024, 2048])
    err = 0.5 * n ** -0.5
    err[-1] = 0.5   # an outlier outside the fit range must not matter
    fit = scaling.fit_power_law(n, err, n_max=1024)
    assert fit.n_max == 1024 and abs(fit.alpha - 0.5) < 1e-9
    with pytest.raises(ValueError, match="two values"):
        scaling.fit_power_law(n, err, n_min=2048)
    with pytest.raises(ValueError, match="positive"):
        scaling.fit_power_law([1, 2], [0.1, 0.0])
