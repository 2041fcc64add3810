"""Power-law fits of test error against training-set size (the dashed lines of the figures).

Model: err(n) ≈ C · n^(-α), fitted by least squares on (log n, log err):

    log err = log C - α log n

over a chosen range n_min <= n <= n_max, to the mean over runs at each n. A larger α is a
better data-scaling exponent. Intervals on α, and every comparison of two exponents, are the
paired bootstrap of ``ntk_utils.claims``: a fit's line carries no interval of its own.
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
    slope, intercept = np.polyfit(np.log(n), np.log(np.nanmean(err, axis=0)), 1)
    return PowerLawFit(float(-slope), float(np.exp(intercept)), int(n.min()), int(n.max()))
