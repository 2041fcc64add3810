"""Kernel (ridge) regression and the errors we report.

Given a kernel K, training inputs X (n) with targets y in {±1}^n and test inputs X* (m),
the kernel regression predictor is

    f(X*) = K(X*, X) (K(X, X) + λ·mean(diag K)·I)^{-1} y          shapes (m, n) (n, n) (n,)

λ = 0 is ridgeless interpolation, which is what the infinite-width NTK limit of a network
trained to zero MSE loss computes (from zero initial output). λ is relative to the mean
diagonal so that one value means the same for kernels of any scale. Solved in float64 by
Cholesky. A kernel that is singular in float64 (e.g. a float32 kernel whose smallest
eigenvalues are below float32 rounding) gets a small diagonal jitter, then, if that is not
enough, a pseudo-inverse that drops eigenvalues below rounding level, each with a warning;
a kernel with clearly negative eigenvalues is not a kernel and raises an error.
"""
import warnings

import numpy as np
import scipy.linalg


def kernel_regression(k_train_train, y_train, k_test_train, *, ridge=0.0):
    """Predictions f(X*) of shape (m,) (or (m, k) for targets of shape (n, k)).

    Args:
      k_train_train: (n, n) kernel on the training inputs.
      y_train: (n,) or (n, k) targets.
      k_test_train: (m, n) kernel between test and training inputs.
      ridge: λ >= 0, relative to mean(diag K(X, X)).
    """
    k = np.asarray(k_train_train, dtype=np.float64)
    y = np.asarray(y_train, dtype=np.float64)
    k_star = np.asarray(k_test_train, dtype=np.float64)
    n = k.shape[0]
    if k.shape != (n, n) or k_star.shape[1] != n or y.shape[0] != n:
        raise ValueError(f"shape mismatch: K(X,X) {k.shape}, y {y.shape}, K(X*,X) {k_star.shape}")
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(k_star))):
        raise ValueError("kernel contains NaN or inf")
    scale = float(np.mean(np.diag(k)))
    for jitter in (0.0, 1e-10, 1e-8, 1e-6):
        reg = (ridge + jitter) * scale
        try:
            factor = scipy.linalg.cho_factor(k + reg * np.eye(n), lower=True)
        except np.linalg.LinAlgError:
            continue
        if jitter:
            warnings.warn(f"kernel matrix is singular in float64; added jitter {jitter:g}·mean(diag K)")
        return k_star @ scipy.linalg.cho_solve(factor, y)
    eigenvalues, vectors = np.linalg.eigh(k + ridge * scale * np.eye(n))
    top = max(abs(eigenvalues).max(), 1e-300)
    if eigenvalues.min() < -1e-3 * top:
        raise np.linalg.LinAlgError(
            f"kernel matrix (n={n}) is not positive definite: eigenvalue {eigenvalues.min():.3g} vs largest "
            f"{top:.3g}; it is not a valid kernel (check how it was computed)")
    keep = eigenvalues > n * np.finfo(np.float32).eps * top
    warnings.warn(f"kernel matrix is singular: solved by pseudo-inverse on {keep.sum()} of {n} eigenvalues")
    return k_star @ (vectors[:, keep] @ ((vectors[:, keep].T @ y).T / eigenvalues[keep]).T)


def test_error(predictions, y):
    """0-1 error of sign predictions against ±1 labels: mean(sign(f) != y)."""
    predictions, y = np.asarray(predictions).reshape(-1), np.asarray(y).reshape(-1)
    return float(np.mean(np.where(predictions >= 0, 1.0, -1.0) != y))


def mse(predictions, y):
    """Mean squared error mean((f - y)^2)."""
    predictions, y = np.asarray(predictions).reshape(-1), np.asarray(y).reshape(-1)
    return float(np.mean((predictions - y) ** 2))


def kernel_test_error(k_train_train, y_train, k_test_train, y_test, *, ridge=0.0):
    """0-1 test error of kernel regression (the number every scaling curve plots)."""
    return test_error(kernel_regression(k_train_train, y_train, k_test_train, ridge=ridge), y_test)
