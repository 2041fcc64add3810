"""The paper's claims as rules on test-error curves, checked with a paired bootstrap.

A *curve* is the per-example outcome of one predictor,

    wrong[d, s, k, t] in {0, 1}        shape (D, S, K, T), 1 = test example t misclassified

with d a data draw (training pool), s a seed (network initialization; S = 1 for a deterministic
kernel, which broadcasts against any S), k a point on the x axis (n, t, width, ...) and t a test
example: the SAME test set for every draw, seed and curve. NaN marks a missing or diverged
(d, s, k) slice. A curve's error is the mean over (d, s, t), NaN ignored:

    err[k] = mean_{d,s,t} wrong[d, s, k, t]

Uncertainty comes from a paired bootstrap (``ntk_utils.bootstrap``). Replicate b resamples, with replacement, the draws,
the seeds and the test examples as multinomial counts u (D,), v (S,), w (T,), shared by every
curve under comparison, and

    err_b[k] = sum u_d v_s w_t wrong[d, s, k, t] / sum u_d v_s w_t      (non-NaN entries only)

Noise the curves share (a hard test set, a lucky draw) thus cancels in their differences. Each
rule computes one statistic on the point estimates and on every replicate, and reads its
percentile interval [low, high] at `level`:

    exponent         log err = log C - alpha log x            (least squares; larger = better)
    scales_better    delta = alpha(better) - alpha(worse)      held: low > 0;  not held: high < margin
    scale_alike      delta = alpha(a) - alpha(b)               held: inside [-tol, tol]; not held: outside
    tracks           gap(c) = mean_k |log err_c / err_target|  held: gap(cand) < log tol, below gap(ref)
    keeps_improving  total = err(x_0) - err(x_K), late = err(x_mid) - err(x_K), x_mid = sqrt(x_pos0 x_K)
    moves_toward     dist(w) = |err(w) - err_limit|             held: dist(w_1) - dist(w_K) > 0
    improves_then_degrades  fall = err(w_1) - err(w*), rise = err(w_K) - err(w*), w* = argmin err

Every rule returns a Verdict: "held", "not held" or "inconclusive", with the numbers behind it.
Missing values, too few points or a zero error under a log give "inconclusive", never an
exception; curves of mismatched shapes are a mistake in the call and raise ValueError.
"""
import dataclasses
from typing import NamedTuple

import numpy as np

from ntk_utils import scaling
from ntk_utils.bootstrap import as_curve, check_shapes
from ntk_utils.bootstrap import bootstrap_errors, mean_errors  # noqa: F401  (used as claims.*)
from ntk_utils.results import plain

STATUSES = ("held", "not held", "inconclusive")


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The rules' thresholds, fixed before a run. These defaults are the package's; a grid file or
    ``papermill -p`` may set others, and every results.json records the ones used.

    Tied to the noise measured in the committed CPU reference (2 data draws x 4 seeds, 2000 test
    images): the paired 95% intervals of Δα have half-widths 0.03-0.04 (standard error ≈ 0.02);
    the per-run std of the network's test error at n = 1024 is 0.006.

      n_boot                bootstrap resamples of every interval
      alpha_margin          0.02: one standard error of Δα. "scales better" is *not held* when the
                            interval of Δα lies below it
      alike_tolerance       0.05: about 2.5 standard errors; two exponents are "alike" when the
                            interval of their difference lies within ±0.05
      track_tolerance       1.15: an after-kernel "tracks" the network within a factor 1.15 on
                            average (about 3 std of the network's error)
      improve_fraction      0.25: "keeps improving" when the second half of the log grid brings at
                            least a quarter of the improvement since t = 0 (m = 0)
      underfit_train_error  0.02: a network misclassifying more of its own training set is flagged
    """
    n_boot: int = 1000
    alpha_margin: float = 0.02
    alike_tolerance: float = 0.05
    track_tolerance: float = 1.15
    improve_fraction: float = 0.25
    underfit_train_error: float = 0.02

    def __post_init__(self):
        problems = [f"{name} must be {what}, got {getattr(self, name)!r}" for name, ok, what in (
            ("n_boot", isinstance(self.n_boot, int) and self.n_boot >= 100, "an integer >= 100"),
            ("alpha_margin", self.alpha_margin >= 0, ">= 0"),
            ("alike_tolerance", self.alike_tolerance > 0, "> 0"),
            ("track_tolerance", self.track_tolerance > 1, "> 1"),
            ("improve_fraction", 0 < self.improve_fraction <= 1, "in (0, 1]"),
            ("underfit_train_error", 0 < self.underfit_train_error <= 1, "in (0, 1]")) if not ok]
        if problems:
            raise ValueError("; ".join(problems))



@dataclasses.dataclass(frozen=True)
class Verdict:
    claim: str      # the claim in words, e.g. "network scales better than eNTK (init)"
    status: str     # one of STATUSES
    text: str       # one or two sentences with the numbers behind the status
    numbers: dict = dataclasses.field(default_factory=dict)   # plain floats, lists, str (JSON)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def with_caveat(self, caveat):
        """The same verdict, ``caveat`` appended to the text and to numbers["caveats"]."""
        caveat = caveat.strip()
        caveat += "" if caveat.endswith((".", "!", "?")) else "."
        numbers = {**self.numbers, "caveats": [*self.numbers.get("caveats", []), caveat]}
        return dataclasses.replace(self, text=f"{self.text} {caveat}", numbers=numbers)

    def as_dict(self):
        return {"claim": self.claim, "status": self.status, "text": self.text, "numbers": plain(self.numbers)}

    def __str__(self):
        return f"{self.status.upper()}: {self.claim} - {self.text}"


# ----------------------------------------------------------------------------- helpers

class _Est(NamedTuple):
    """A statistic's point value and percentile interval."""
    value: float
    low: float
    high: float

    def __str__(self):
        return f"{_num(self.value)} [{_num(self.low)}, {_num(self.high)}]"


def _estimate(point, boot, level):
    """_Est of a statistic from its point value and its replicates (non-finite ones are dropped)."""
    boot = np.asarray(boot, dtype=float)
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return _Est(float(point), float(point), float(point))
    low, high = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
    return _Est(float(point), float(low), float(high))


def _flat(**estimates):
    """name=_Est(...) -> {name: value, name_low: low, name_high: high}."""
    return {f"{name}{end}": v for name, e in estimates.items() for end, v in zip(("", "_low", "_high"), e)}


def _num(v, digits=3):
    return f"{v:.{digits}g}" if np.isfinite(v) else "n/a"


def _pair(name_a, a, name_b, b):
    """"a 0.078 vs b 0.081", with enough digits (3 to 5) to tell the numbers apart."""
    digits = next((d for d in (3, 4) if _num(a, d) != _num(b, d)), 5)
    return f"{name_a} {_num(a, digits)} vs {name_b} {_num(b, digits)}"


def _inconclusive(claim, why, **numbers):
    return Verdict(claim, "inconclusive", f"inconclusive: {why}.", plain({"reason": why, **numbers}))


def _unusable(x, points, x_name, min_points, log_err):
    """Why these point errors cannot be judged (a sentence), or None."""
    if len(x) < min_points:
        return f"only {len(x)} value(s) of {x_name}, the rule needs at least {min_points}"
    if log_err and np.any(x <= 0):
        return f"a power law needs positive {x_name}, got {x_name}={x.min():g}"
    for name, err in points.items():
        if np.any(np.isnan(err)):
            at = ", ".join(f"{x_name}={v:g}" for v in x[np.isnan(err)])
            return f"the {name} curve has no value at {at} (diverged or missing)"
        if log_err and np.any(err <= 0):
            at = ", ".join(f"{x_name}={v:g}" for v in x[err <= 0])
            return f"the {name} curve has zero error at {at}, which has no logarithm"
    return None


def _prepare(x, curves, x_name, *, min_points, log_err, n_boot, seed):
    """x (K,), point errors and bootstrap replicates of named curves, or why they cannot be judged.

    Returns (x, points, boots, why): why is None, or a sentence (and boots None).
    Shape mismatches are errors in the call and raise ValueError.
    """
    x = np.asarray(x, dtype=float).ravel()
    curves = {name: as_curve(c, name) for name, c in curves.items()}
    _, _, K, _ = check_shapes(curves)
    if K != len(x):
        raise ValueError(f"the curves have K = {K} points, {x_name} has {len(x)}")
    points = {name: mean_errors(c) for name, c in curves.items()}
    why = _unusable(x, points, x_name, min_points, log_err)
    return x, points, None if why else bootstrap_errors(curves, n_boot, seed), why


def _limit_curve(limit, curve):
    """A width-independent limit (D, 1, 1, T) broadcast to the curve's K widths."""
    limit, K = as_curve(limit, "limit"), as_curve(curve, "curve").shape[2]
    return np.broadcast_to(limit, limit.shape[:2] + (K,) + limit.shape[3:]) if limit.shape[2] == 1 else limit


# ----------------------------------------------------------------------------- exponent rules

def _exponents(x, a, b, names, x_name, n_boot, seed, level):
    """(x, points, alpha_a, alpha_b, delta = alpha_a - alpha_b) as _Est, or the reason there are none."""
    x, points, boots, why = _prepare(x, dict(zip(names, (a, b))), x_name, min_points=2, log_err=True,
                                     n_boot=n_boot, seed=seed)
    if why:
        return x, points, None, why
    alpha = [scaling.fit_alpha(x, points[n]) for n in names]
    boot = [scaling.fit_alpha(x, boots[n]) for n in names]
    ests = (_estimate(alpha[0], boot[0], level), _estimate(alpha[1], boot[1], level),
            _estimate(alpha[0] - alpha[1], boot[0] - boot[1], level))
    return x, points, ests, None


def scales_better(x, better, worse, *, names=("network", "kernel"), margin=0.0, x_name="n",
                  n_boot=1000, seed=0, level=0.95):
    """"``better`` has a larger data-scaling exponent than ``worse``" (err ~ C x^-alpha).

    x: (K,) positive; better, worse: (D, S, K, T) curves. held when the interval of
    delta = alpha(better) - alpha(worse) lies above 0; not held when it lies below ``margin``
    (>= 0: the smallest gap that counts as scaling better); inconclusive otherwise.
    """
    nb, nw = names
    claim = f"{nb} scales better than {nw}"
    x, points, ests, why = _exponents(x, better, worse, names, x_name, n_boot, seed, level)
    if why:
        return _inconclusive(claim, why, margin=margin)
    a_b, a_w, delta = ests
    if delta.low > 0:
        status, why = "held", "above 0" + (f", though not clearly above the margin {margin:g}" if delta.low < margin else "")
    elif delta.high < margin:
        status, why = "not held", "below " + ("0" if margin == 0 else f"the margin {margin:g}")
    else:
        status, why = "inconclusive", "contains 0" if margin == 0 else f"neither above 0 nor below the margin {margin:g}"
    eb, ew = points[nb], points[nw]
    text = (f"alpha({nb}) = {a_b}, alpha({nw}) = {a_w}, difference {delta}: {why}. "
            f"At {x_name}={x[-1]:g}: {_pair(nb, eb[-1], nw, ew[-1])}.")
    # Is the steeper curve's slope owed to a worse start, and is it still worse at the end?
    (steep, s), (flat, f) = ((nb, eb), (nw, ew)) if delta.value > 0 else ((nw, ew), (nb, eb))
    worse_start = bool(delta.value != 0 and s[0] > f[0])
    still_worse = bool(delta.value != 0 and s[-1] > f[-1])
    if worse_start:
        text += (f" The steeper slope comes partly from a worse start (at {x_name}={x[0]:g}: "
                 f"{_pair(steep, s[0], flat, f[0])})")
    if still_worse:
        text += (", and" if worse_start else " The steeper") + f" {steep} is still worse at {x_name}={x[-1]:g}"
    text += "." if worse_start or still_worse else ""
    return Verdict(claim, status, text, plain({
        **_flat(alpha_better=a_b, alpha_worse=a_w, delta=delta),
        "err_better_at_max": eb[-1], "err_worse_at_max": ew[-1], "err_better_at_min": eb[0],
        "err_worse_at_min": ew[0], "margin": margin, "worse_start": worse_start, "level": level}))


def scale_alike(x, a, b, *, names, tolerance, x_name="n", n_boot=1000, seed=0, level=0.95):
    """"``a`` and ``b`` have the same data-scaling exponent, within ``tolerance``".

    held when the interval of delta = alpha(a) - alpha(b) lies inside [-tolerance, tolerance];
    not held when it lies entirely outside; inconclusive otherwise (wide intervals are not "alike").
    """
    claim = f"{names[0]} and {names[1]} have the same exponent (within {tolerance:g})"
    x, points, ests, why = _exponents(x, a, b, names, x_name, n_boot, seed, level)
    if why:
        return _inconclusive(claim, why, tolerance=tolerance)
    a_a, a_b, delta = ests
    if -tolerance <= delta.low and delta.high <= tolerance:
        status, why = "held", "inside"
    elif delta.low > tolerance or delta.high < -tolerance:
        status, why = "not held", "outside"
    else:
        status, why = "inconclusive", "neither inside nor outside"
    text = f"alpha({names[0]}) = {a_a}, alpha({names[1]}) = {a_b}, difference {delta}: {why} +-{tolerance:g}."
    return Verdict(claim, status, text, plain({**_flat(alpha_a=a_a, alpha_b=a_b, delta=delta),
                                                "tolerance": tolerance, "level": level}))


# ----------------------------------------------------------------------------- error-level rules

def tracks(x, candidate, target, reference, *, names, tolerance, x_name="n", n_boot=1000, seed=0, level=0.95):
    """"``candidate``'s error tracks ``target``'s (within a factor ``tolerance`` > 1), better than
    ``reference``'s does".

    gap(c) = mean_k |log(err_c(k) / err_target(k))|. held when gap(candidate) < log(tolerance)
    and gap(reference) - gap(candidate) > 0 across their intervals; not held when
    gap(candidate) > log(tolerance) or the difference < 0 across them; inconclusive otherwise.
    """
    if tolerance <= 1:
        raise ValueError(f"tolerance is a factor > 1, got {tolerance}")
    nc, nt, nr = names
    claim = f"{nc} tracks {nt} (within x{tolerance:g}), better than {nr} does"
    x, points, boots, why = _prepare(x, dict(zip(names, (candidate, target, reference))), x_name,
                                     min_points=2, log_err=True, n_boot=n_boot, seed=seed)
    if why:
        return _inconclusive(claim, why, tolerance=tolerance)
    gap = {n: float(np.mean(np.abs(np.log(points[n] / points[nt])))) for n in (nc, nr)}
    with np.errstate(divide="ignore", invalid="ignore"):
        gap_boot = {n: np.mean(np.abs(np.log(boots[n] / boots[nt])), axis=-1) for n in (nc, nr)}
    g_c, g_r = _estimate(gap[nc], gap_boot[nc], level), _estimate(gap[nr], gap_boot[nr], level)
    diff = _estimate(gap[nr] - gap[nc], gap_boot[nr] - gap_boot[nc], level)
    if g_c.high < np.log(tolerance) and diff.low > 0:
        status, why = "held", f"{nc} is within x{tolerance:g} and closer than {nr}"
    elif g_c.low > np.log(tolerance):
        status, why = "not held", f"{nc} is further than x{tolerance:g} from {nt}"
    elif diff.high < 0:
        status, why = "not held", f"{nr} is closer to {nt} than {nc} is"
    else:
        status, why = "inconclusive", "the intervals do not settle it"
    factor = lambda e: f"x{np.exp(e.value):.3g} [x{np.exp(e.low):.3g}, x{np.exp(e.high):.3g}]"
    text = (f"Over {len(x)} values of {x_name}, {nc}'s error is off {nt}'s by {factor(g_c)} on average, "
            f"{nr}'s by {factor(g_r)} (ratio {factor(diff)}): {why}.")
    return Verdict(claim, status, text, plain({
        **_flat(gap_candidate=g_c, gap_reference=g_r, gap_difference=diff), "factor_candidate": np.exp(gap[nc]),
        "factor_reference": np.exp(gap[nr]), "tolerance": tolerance, "level": level}))


def _mid_weights(x):
    """x_mid = sqrt(x_pos[0] x[-1]) and weights (K,) with err(x_mid) = weights @ err, linear in log x."""
    pos = np.flatnonzero(x > 0)
    log_x = np.log(x[pos])
    log_mid = 0.5 * (log_x[0] + log_x[-1])
    j = int(np.clip(np.searchsorted(log_x, log_mid, side="right") - 1, 0, len(pos) - 2))
    lam = (log_mid - log_x[j]) / (log_x[j + 1] - log_x[j])
    weights = np.zeros(len(x))
    weights[pos[j]], weights[pos[j + 1]] = 1 - lam, lam
    return float(np.exp(log_mid)), weights


def keeps_improving(x, curve, *, name, x_name="t", fraction=Thresholds.improve_fraction, n_boot=1000, seed=0,
                    level=0.95):
    """"``name``'s error keeps improving along x": the later half (in log x) brings a real share
    of the improvement.

    x: (K,) increasing, x[0] >= 0 (x[0] = 0, e.g. initialization, counts); curve: (D, S, K, T).
    total = err(x[0]) - err(x[-1]), late = err(x_mid) - err(x[-1]), x_mid = sqrt(x_pos[0] x[-1]).
    held: total > 0 and late > 0 across their intervals and late / total >= fraction;
    not held: late <= 0 or total <= 0 across its interval; inconclusive otherwise.
    """
    claim = f"{name} keeps improving along {x_name}"
    x = np.asarray(x, dtype=float).ravel()
    if np.any(np.diff(x) <= 0) or np.any(x < 0):
        raise ValueError(f"{x_name} must be increasing and >= 0, got {x}")
    x, points, boots, why = _prepare(x, {name: curve}, x_name, min_points=3, log_err=False, n_boot=n_boot, seed=seed)
    if why:
        return _inconclusive(claim, why, fraction=fraction)
    err, boot = points[name], boots[name]
    x_mid, w = _mid_weights(x)
    total = _estimate(err[0] - err[-1], boot[:, 0] - boot[:, -1], level)
    late = _estimate(err @ w - err[-1], boot @ w - boot[:, -1], level)
    share = late.value / total.value if total.value > 0 else float("nan")
    if total.low > 0 and late.low > 0 and share >= fraction:
        status, why = "held", f"the late part is {share:.0%} of the total (>= {fraction:.0%})"
    elif late.high <= 0:
        status, why = "not held", f"no improvement after {x_name}={x_mid:.3g}"
    elif total.high <= 0:
        status, why = "not held", "no improvement overall"
    elif total.low > 0 and late.low > 0:
        status, why = "inconclusive", f"still improving, but the late part is only {share:.0%} of the total " \
                                      f"(< {fraction:.0%})"
    else:
        status, why = "inconclusive", "an interval contains 0"
    text = (f"{name} error {_num(err[0])} at {x_name}={x[0]:g}, {_num(err @ w)} at {x_name}={x_mid:.3g}, "
            f"{_num(err[-1])} at {x_name}={x[-1]:g}; improvement {total} in all, {late} after "
            f"{x_name}={x_mid:.3g}: {why}.")
    return Verdict(claim, status, text, plain({
        "x_mid": x_mid, "err_first": err[0], "err_mid": err @ w, "err_last": err[-1], **_flat(total=total, late=late),
        "late_share": share, "fraction": fraction, "level": level}))


def moves_toward(widths, curve, limit, *, names, x_name="width", n_boot=1000, seed=0, level=0.95):
    """"``curve``'s error moves toward ``limit``'s as width grows".

    curve: (D, S, K, T) over K widths; limit: (D, 1, 1, T) (width-independent, e.g. the infinite
    NTK) or (D, 1, K, T). dist(w) = |err(w) - err_limit(w)|; held when dist(w_1) - dist(w_K) > 0
    across its interval, not held when < 0 across it, inconclusive otherwise.
    """
    nc, nl = names
    claim = f"{nc}'s error moves toward {nl}'s as {x_name} grows"
    x, points, boots, why = _prepare(widths, {nc: curve, nl: _limit_curve(limit, curve)}, x_name,
                                     min_points=2, log_err=False, n_boot=n_boot, seed=seed)
    if why:
        return _inconclusive(claim, why)
    dist, dist_boot = np.abs(points[nc] - points[nl]), np.abs(boots[nc] - boots[nl])
    shrink = _estimate(dist[0] - dist[-1], dist_boot[:, 0] - dist_boot[:, -1], level)
    status, why = (("held", "it shrank") if shrink.low > 0 else ("not held", "it grew") if shrink.high < 0
                   else ("inconclusive", "the interval contains 0"))
    text = (f"|{nc} - {nl}| = {_num(dist[0])} at {x_name}={x[0]:g} and {_num(dist[-1])} at {x_name}={x[-1]:g}, "
            f"a decrease of {shrink}: {why}.")
    return Verdict(claim, status, text, plain({
        "dist_first": dist[0], "dist_last": dist[-1], **_flat(shrink=shrink), "err_first": points[nc][0],
        "err_last": points[nc][-1], "limit_first": points[nl][0], "limit_last": points[nl][-1], "level": level}))


def improves_then_degrades(widths, curve, limit, *, names, x_name="width", n_boot=1000, seed=0, level=0.95):
    """"``curve`` first improves with width, then degrades toward ``limit``".

    w* = argmin of the point errors; fall = err(w_1) - err(w*), rise = err(w_K) - err(w*).
    held: w* interior, fall > 0 and rise > 0 across their intervals, and err(w_K) is closer to
    the limit than err(w*) is. not held: w* is the last width and err(w_1) - err(w_K) > 0 across
    its interval (still improving); w* is the first width and rise > 0 across its interval (it
    only degrades); or w* interior and rise < 0 across its interval. Inconclusive otherwise.
    """
    nc, nl = names
    claim = f"{nc} first improves with {x_name}, then degrades toward {nl}"
    x, points, boots, why = _prepare(widths, {nc: curve, nl: _limit_curve(limit, curve)}, x_name,
                                     min_points=3, log_err=False, n_boot=n_boot, seed=seed)
    if why:
        return _inconclusive(claim, why)
    err, lim, boot = points[nc], points[nl], boots[nc]
    i = int(np.argmin(err))
    drop = lambda a, b: _estimate(err[a] - err[b], boot[:, a] - boot[:, b], level)   # err(a) - err(b)
    fall, rise, overall = drop(0, i), drop(-1, i), drop(0, -1)
    toward = bool(abs(err[-1] - lim[-1]) < abs(err[i] - lim[i]))
    if i == len(x) - 1:
        status, why = (("not held", "still clearly improving at the largest width") if overall.low > 0 else
                       ("inconclusive", "lowest at the largest width, but the overall improvement is not clear"))
    elif i == 0:
        status, why = (("not held", "it only degrades from the smallest width") if rise.low > 0 else
                       ("inconclusive", "lowest at the smallest width, but the rise after it is not clear"))
    elif rise.high < 0:
        status, why = "not held", "no rise after the best width"
    elif fall.low > 0 and rise.low > 0:
        status, why = ("held", f"it falls, then rises toward {nl}") if toward else \
            ("inconclusive", f"it falls, then rises, but not toward {nl}")
    else:
        status, why = "inconclusive", "the fall or the rise is not clear"
    text = (f"{nc} error is lowest at {x_name}={x[i]:g} ({_num(err[i])}); {_num(err[0])} at {x_name}={x[0]:g} "
            f"(fall {fall}), {_num(err[-1])} at {x_name}={x[-1]:g} (rise {rise}); distance to {nl} "
            f"{_num(abs(err[i] - lim[i]))} at the best, {_num(abs(err[-1] - lim[-1]))} at the largest: {why}.")
    return Verdict(claim, status, text, plain({
        "best_x": x[i], "err_best": err[i], "err_first": err[0], "err_last": err[-1],
        **_flat(fall=fall, rise=rise, overall=overall), "toward_limit": toward,
        "limit_best": lim[i], "limit_last": lim[-1], "level": level}))


# ------------------------------------------------------------------------ reporting

def underfit(train_error, threshold, draws, seeds, xs, x_name="n"):
    """A caveat sentence naming every network whose error on its own training set exceeds
    ``threshold`` (it did not fit what it was trained on) and every network that diverged (NaN),
    or "" when there are none. A diverged network is left out of the curves it belongs to, so
    the means at its x rest on fewer runs.

    train_error: (D, S, K) for the data draws ``draws``, seeds ``seeds`` and points ``xs``.
    """
    train_error = np.asarray(train_error, dtype=float)

    def named(mask):
        found = [(draws[d], seeds[s], xs[k], train_error[d, s, k]) for d, s, k in zip(*np.nonzero(mask))]
        listed = ", ".join(f"draw {d} seed {s} {x_name}={x}" + ("" if np.isnan(e) else f": {e:.3f}")
                           for d, s, x, e in found[:4])
        return len(found), listed + (", ..." if len(found) > 4 else "")

    parts = []
    count, listed = named(np.isnan(train_error))
    if count:
        parts.append(f"CAUTION: {count} of {train_error.size} networks diverged and are left out ({listed})")
    with np.errstate(invalid="ignore"):
        count, listed = named(train_error > threshold)
    if count:
        parts.append(f"CAUTION: {count} of {train_error.size} networks underfit (training error above {threshold}; "
                     f"{listed}): their exponents are those of under-trained networks")
    return ". ".join(parts)


def few_runs(draws, seeds, minimum=4):
    """A caveat when a bootstrap resamples fewer than ``minimum`` data draws or seeds: with so few
    the percentile interval understates that source of noise (with one draw, it leaves it out)."""
    short = [f"{len(v)} {what}" for v, what in ((draws, "data draw(s)"), (seeds, "seed(s)")) if len(v) < minimum]
    return (f"Intervals resample only {' and '.join(short)}: they understate the noise of what is resampled "
            f"that few times, and leave out a source with one value") if short else ""


def with_caveats(verdicts, *caveats):
    """The verdicts with the non-empty caveat sentences appended to each text, and the joined caveat."""
    caveat = ". ".join(c for c in caveats if c)
    return [v.with_caveat(caveat) if caveat else v for v in verdicts], caveat


def paragraph(verdicts):
    """The verdicts as one markdown paragraph: "**claim: status.** text" each."""
    return " ".join(f"**{v.claim}: {v.status}.** {v.text}" for v in verdicts)


def table(verdicts):
    """A markdown table of verdicts (one row per claim) for a notebook's rendered output."""
    rows = "".join(f"| {v.claim} | **{v.status}** | {v.text} |\n" for v in verdicts)
    return "| claim | verdict | the numbers behind it |\n|---|---|---|\n" + rows
