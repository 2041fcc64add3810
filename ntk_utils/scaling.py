"""Power-law fits of test error against training-set size (the dashed lines of the figures).

Model: err(n) ≈ C · n^(-α), fitted by least squares on (log n, log err):

    log err = log C - α log n,   α = -Σ_k c_k log err_k / Σ_k c_k²,   c_k = log n_k - mean_k log n_k

over a chosen range n_min <= n <= n_max, to the mean over runs at each n. A larger α is a
better data-scaling exponent. :func:`fit_alpha` is the one fit, vectorized over curves; the
rules of ``ntk_utils.claims`` apply it to every bootstrap replicate for the intervals on α and
every comparison of two exponents: a fit's line carries no interval of its own.
"""
import dataclasses

import numpy as np


@dataclasses.dataclass
class PowerLawFit:
    alpha: float          # exponent α in err ≈ C n^-α
    C: float              # prefactor
    n_min: int
    n_max: int

    def predict(self, n):
        return self.C * np.asarray(n, dtype=float) ** (-self.alpha)

    def __str__(self):
        return f"α = {self.alpha:.3f}"


def fit_alpha(x, errors):
    """Least-squares exponent alpha of log err = log C - alpha log x.

    x: (K,) positive; errors: (..., K). Returns alpha (...), a float for (K,) errors;
    not finite where an error is NaN or not positive.
    """
    log_x = np.log(np.asarray(x, dtype=float))
    errors = np.asarray(errors, dtype=float)
    if errors.shape[-1] != log_x.shape[0] or log_x.shape[0] < 2:
        raise ValueError(f"need errors (..., K) with K = len(x) >= 2, got {errors.shape} for {len(log_x)} x")
    centred = log_x - log_x.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = -(np.log(errors) @ centred) / (centred @ centred)
    return float(alpha) if np.ndim(alpha) == 0 else alpha


def fit_power_law(n, err, *, n_min=None, n_max=None):
    """Fit err ≈ C·n^-α.

    Args:
      n: (k,) training-set sizes.
      err: (k,) errors, or (s, k) errors of s runs (NaN entries are ignored).
      n_min, n_max: fit only n_min <= n <= n_max.
    Returns:
      PowerLawFit, fitted to the mean over runs.
    """
    n = np.asarray(n, dtype=float)
    err = np.atleast_2d(np.asarray(err, dtype=float))
    if err.shape[1] != n.shape[0]:
        raise ValueError(f"err has {err.shape[1]} columns for {n.shape[0]} values of n")
    keep = (n >= (n_min or 0)) & (n <= (n_max or np.inf))
    n, err = n[keep], err[:, keep]
    if len(n) < 2:
        raise ValueError("need at least two values of n in the fit range")
    if np.any(err[np.isfinite(err)] <= 0):
        raise ValueError("errors must be positive to fit a power law (0 error has no log)")
    mean = np.nanmean(err, axis=0)
    alpha = fit_alpha(n, mean)
    log_c = np.mean(np.log(mean)) + alpha * np.mean(np.log(n))   # the line through the centroid
    return PowerLawFit(alpha, float(np.exp(log_c)), int(n.min()), int(n.max()))
