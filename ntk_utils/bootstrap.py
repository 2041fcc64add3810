"""Error curves from per-example outcomes, and their paired bootstrap.

A *curve* is the per-example outcome of one predictor,

    wrong[d, s, k, t] in {0, 1}        shape (D, S, K, T), 1 = test example t misclassified

with d a data draw, s a seed (S = 1 for a deterministic kernel, which broadcasts against any S),
k a point on the x axis and t a test example (the same test set for every curve). NaN marks a
missing or diverged (d, s, k) slice. Its error is the mean over (d, s, t), NaN ignored
(:func:`mean_errors`). Replicate b of the paired bootstrap (:func:`bootstrap_errors`) draws
multinomial counts u (D,), v (S,), w (T,) shared by every curve under comparison:

    err_b[k] = sum u_d v_s w_t wrong[d, s, k, t] / sum u_d v_s w_t      (non-NaN entries only)

``ntk_utils.claims`` reads its rules' intervals off these replicates.
"""
from typing import NamedTuple

import numpy as np
import scipy.stats


def as_curve(wrong, name):
    wrong = np.asarray(wrong, dtype=float)
    if wrong.ndim != 4:
        raise ValueError(f"curve {name!r} must have shape (D, S, K, T), got {wrong.shape}")
    return wrong


def check_shapes(curves):
    """(D, S, K, T) shared by the curves (S = 1 broadcasts); ValueError naming a curve that disagrees."""
    first, ref = next(iter(curves.items()))
    D, _, K, T = ref.shape
    S = max(c.shape[1] for c in curves.values())
    for name, c in curves.items():
        for axis, got, want in (("D (draws)", c.shape[0], D), ("K (x points)", c.shape[2], K),
                                ("T (test examples)", c.shape[3], T)):
            if got != want:
                raise ValueError(f"curve {name!r} has {axis} = {got}, but curve {first!r} has {want}")
        if c.shape[1] not in (1, S):
            raise ValueError(f"curve {name!r} has S = {c.shape[1]} seeds, another has {S} (only S = 1 broadcasts)")
    return D, S, K, T


def mean_errors(wrong):
    """(D, S, K, T) curve -> (K,) error rates: the mean over D, S, T of the non-NaN entries."""
    wrong = as_curve(wrong, "wrong")
    valid = ~np.isnan(wrong)
    total = np.where(valid, wrong, 0.0).sum(axis=(0, 1, 3))
    count = valid.sum(axis=(0, 1, 3))
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _weighted_sum(x, w_draw, w_seed, w_test):
    """sum_{d,s,t} w_draw[b,d] w_seed[b,s] w_test[b,t] x[d,s,k,t] -> (B, K)."""
    D, S, K, T = x.shape
    per_test = (w_test @ x.reshape(-1, T).T).reshape(-1, D, S, K)   # contract T first: one matmul
    return np.einsum("bd,bs,bdsk->bk", w_draw, w_seed, per_test)


def draw_errors(curves):
    """name -> (D, K): each data draw's error rates, the mean over its seeds and test examples."""
    return {name: np.stack([mean_errors(w[d:d + 1]) for d in range(len(w))])
            for name, w in ((name, as_curve(w, name)) for name, w in curves.items())}


def bootstrap_errors(curves, n_boot=1000, seed=0, resample=("draws", "seeds", "tests")):
    """Paired bootstrap of the error rates of several curves.

    curves: name -> (D, S, K, T); all share D, K, T, and S unless it is 1.
    Returns name -> (n_boot, K). Replicate b applies the same draw, seed and test-example
    counts to every curve; it is NaN at k where all its resampled entries are NaN. ``resample``
    names the sources that are resampled; the others keep a count of 1 each.
    """
    curves = {name: as_curve(w, name) for name, w in curves.items()}
    if not curves:
        return {}
    D, S, K, T = check_shapes(curves)
    rng = np.random.default_rng(seed)
    counts = lambda source, m: (rng.multinomial(m, np.full(m, 1 / m), size=n_boot).astype(float)
                                if source in resample else np.ones((n_boot, m)))
    w_draw, w_seed, w_test = counts("draws", D), counts("seeds", S), counts("tests", T)
    out = {}
    for name, wrong in curves.items():
        ws = w_seed if wrong.shape[1] == S else np.ones((n_boot, 1))
        valid = ~np.isnan(wrong)
        num = _weighted_sum(np.where(valid, wrong, 0.0), w_draw, ws, w_test)
        if valid.all():   # the denominator is then just the total weight
            den = (w_draw.sum(1) * ws.sum(1) * T)[:, None]
        else:
            den = _weighted_sum(valid.astype(float), w_draw, ws, w_test)
        out[name] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out


# --------------------------------------------------------------------------- intervals

class Replicates(dict):
    """name -> (B (+ D), K): a curve's errors on B bootstrap replicates, then, when ``draws`` = D
    >= 2, on each data draw alone (:func:`interval` reads them)."""
    draws = 0


def replicates(curves, n_boot, seed):
    """:class:`Replicates` of the curves: with D >= 2 draws the test-example bootstrap and the
    per-draw errors; with one draw the bootstrap of draws, seeds and tests."""
    D = next(iter(curves.values())).shape[0]
    if D < 2:
        return Replicates(bootstrap_errors(curves, n_boot, seed))
    per_draw = draw_errors(curves)
    reps = Replicates({name: np.concatenate([b, per_draw[name]])
                       for name, b in bootstrap_errors(curves, n_boot, seed, resample=("tests",)).items()})
    reps.draws = D
    return reps


class Interval(NamedTuple):
    """A statistic's point value and its interval (:func:`interval`)."""
    value: float
    low: float
    high: float

    def __str__(self):
        return f"{short_number(self.value)} [{short_number(self.low)}, {short_number(self.high)}]"


def interval(point, values, level, draws=0):
    """Interval of a statistic from its point value and its values on the replicates (non-finite ones
    are dropped). With ``draws`` = D >= 2 the last D values are the statistic on each data draw
    alone and the others its test-example bootstrap (:func:`replicates`): the interval is

        point ± t_{level}(D - 1) · √(a + b),  a = s²_draws / D,  b = var_boot

    a t interval over the draws (their spread holds the draw and seed noise) widened by the
    noise of the test set they share. The D - 1 degrees of freedom are those of a, the one
    estimate that rests on few values (Welch-Satterthwaite's larger ν undercovers when a comes
    out small by chance: 87% at 2 draws in tests/test_claims.py's simulation). With one draw:
    the percentile interval of the crossed bootstrap (draws, seeds, tests)."""
    values = np.asarray(values, dtype=float)
    boot, per_draw = (values[:-draws], values[-draws:]) if draws else (values, values[:0])
    boot, per_draw = boot[np.isfinite(boot)], per_draw[np.isfinite(per_draw)]
    if boot.size == 0:
        return Interval(float(point), float(point), float(point))
    if per_draw.size < 2:
        low, high = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
        return Interval(float(point), float(low), float(high))
    a, b = per_draw.var(ddof=1) / per_draw.size, boot.var(ddof=1)
    half = float(scipy.stats.t.ppf(0.5 + level / 2, per_draw.size - 1)) * np.sqrt(a + b)
    return Interval(float(point), float(point - half), float(point + half))


def short_number(v, digits=3):
    """``v`` with ``digits`` significant digits, or "n/a"."""
    return f"{v:.{digits}g}" if np.isfinite(v) else "n/a"
