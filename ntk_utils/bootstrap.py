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
import numpy as np


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


def bootstrap_errors(curves, n_boot=1000, seed=0):
    """Paired bootstrap of the error rates of several curves.

    curves: name -> (D, S, K, T); all share D, K, T, and S unless it is 1.
    Returns name -> (n_boot, K). Replicate b applies the same draw, seed and test-example
    counts to every curve; it is NaN at k where all its resampled entries are NaN.
    """
    curves = {name: as_curve(w, name) for name, w in curves.items()}
    if not curves:
        return {}
    D, S, K, T = check_shapes(curves)
    rng = np.random.default_rng(seed)
    w_draw = rng.multinomial(D, np.full(D, 1 / D), size=n_boot).astype(float)
    w_seed = rng.multinomial(S, np.full(S, 1 / S), size=n_boot).astype(float)
    w_test = rng.multinomial(T, np.full(T, 1 / T), size=n_boot).astype(float)
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
