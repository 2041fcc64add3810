"""Power-law fits of test error against training-set size.

Model: err(n) ≈ C · n^(-α), fitted by least squares on (log n, log err):

    log err = log C - α log n

over a chosen range n_min <= n <= n_max. A larger α is a better data-scaling exponent.
The 95% interval on α comes from a bootstrap: over the runs at each n (rows of ``err``)
when several are given, else over the points (n, err). This is a fit's own summary; every
claim comparing two curves uses the paired bootstrap of ``ntk_utils.claims`` instead.
"""
import dataclasses

import numpy as np


@dataclasses.dataclass
class PowerLawFit:
    alpha: float          # exponent α in err ≈ C n^-α
    C: float              # prefactor
    alpha_low: float      # 2.5% bootstrap quantile of α
    alpha_high: float     # 97.5% bootstrap quantile of α
    n_min: int
    n_max: int

    def predict(self, n):
        return self.C * np.asarray(n, dtype=float) ** (-self.alpha)

    def __str__(self):
        if np.isnan(self.alpha_low):
            return f"α = {self.alpha:.3f}"
        return f"α = {self.alpha:.3f} [{self.alpha_low:.3f}, {self.alpha_high:.3f}]"


def _slope_fit(log_n, log_err):
    slope, intercept = np.polyfit(log_n, log_err, 1)
    return -slope, intercept


def fit_power_law(n, err, *, n_min=None, n_max=None, n_boot=2000, seed=0):
    """Fit err ≈ C·n^-α.

    Args:
      n: (k,) training-set sizes.
      err: (k,) errors, or (s, k) errors of s seeds (NaN entries are ignored).
      n_min, n_max: fit only n_min <= n <= n_max.
      n_boot: bootstrap resamples for the interval.
    Returns:
      PowerLawFit, fitted to the mean over seeds.
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
    log_n = np.log(n)
    alpha, intercept = _slope_fit(log_n, np.log(np.nanmean(err, axis=0)))

    if n_boot == 0:   # the fit only (e.g. for a plotted line; ntk_utils.claims owns the intervals)
        return PowerLawFit(float(alpha), float(np.exp(intercept)), np.nan, np.nan, int(n.min()), int(n.max()))
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        if err.shape[0] > 1:   # resample the seeds at each n independently
            rows = rng.integers(0, err.shape[0], err.shape)
            mean = np.nanmean(np.take_along_axis(err, rows, axis=0), axis=0)
            boot.append(_slope_fit(log_n, np.log(mean))[0])
        else:                  # resample points
            idx = rng.integers(0, len(n), len(n))
            if len(np.unique(idx)) < 2:
                continue
            boot.append(_slope_fit(log_n[idx], np.log(err[0, idx]))[0])
    low, high = np.percentile(boot, [2.5, 97.5])
    return PowerLawFit(float(alpha), float(np.exp(intercept)), float(low), float(high), int(n.min()), int(n.max()))
