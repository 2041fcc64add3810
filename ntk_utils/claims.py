"""The paper's claims as rules on test-error curves, checked with a paired bootstrap.

A *curve* is the per-example outcome of one predictor,

    wrong[d, s, k, t] in {0, 1}        shape (D, S, K, T), 1 = test example t misclassified

with d a data draw (training pool), s a seed (network initialization; S = 1 for a deterministic
kernel, which broadcasts against any S), k a point on the x axis (n, t, width, ...) and t a test
example: the SAME test set for every draw, seed and curve. NaN marks a missing or diverged
(d, s, k) slice. A curve's error is the mean over (d, s, t), NaN ignored:

    err[k] = mean_{d,s,t} wrong[d, s, k, t]

Uncertainty comes from a paired bootstrap (``ntk_utils.bootstrap``): every curve under
comparison is resampled with the same counts, so noise the curves share (a hard test set, a
lucky draw) cancels in their differences. Each rule computes one statistic on the point
estimates and on the replicates, and reads its interval at `level` (``bootstrap.interval``):

* with D >= 2 data draws, a t interval over the draws, point ± t(D-1) · √(s²_draws / D + var_test):
  the statistic on each draw alone carries the draw and seed noise (seeds differ per draw),
  the test-example bootstrap the noise of the test set all draws share. In the simulation of
  tests/test_claims.py (draw and seed effects of the size the CPU reference shows) these
  intervals of Δα cover the truth in 100% (2 draws x 4 seeds; median width 0.57) and 98%
  (4 x 2; width 0.12) of 200 repetitions, the percentile intervals of a bootstrap of draws,
  seeds and tests in 80% (width 0.08) and 88%: with 2 draws only a t interval is honest, and it
  is wide, so claims need 4 draws or more;
* with one draw, the percentile interval of the bootstrap of seeds and test examples, which
  leaves the draw-to-draw spread out (``few_runs`` says so in every verdict).

    exponent         log err = log C - alpha log x            (least squares; larger = better)
    scales_better    delta = alpha(better) - alpha(worse)      held: low > margin, better at the
                     largest x, and (from a worse start) on the upper half too; not held: high < margin
    scale_alike      delta = alpha(a) - alpha(b)               held: inside [-tol, tol]; not held: outside
    tracks           gap(c) = mean_k |log err_c / err_target|  held: gap(cand) < log tol, below gap(ref)
    keeps_improving  total = err(x_0) - err(x_K), late = err(x_mid) - err(x_K), x_mid = sqrt(x_pos0 x_K):
                     held: late - fraction · total > 0 and the last step > 0
    moves_toward     dist(w) = |err(w) - err_limit|             held: dist(w_1) - dist(w_K) > 0
    improves_then_degrades  fall = err(w_1) - err(w*), rise = err(w_K) - err(w*), w* = argmin err

Networks that did not fit their training set (or diverged) make a verdict inconclusive unless
it holds with them counted as errors of 0.5 (:func:`unless_unfit`).

Every rule returns a Verdict: "held", "not held" or "inconclusive", with the numbers behind it.
Missing values, too few points or a zero error under a log give "inconclusive", never an
exception; curves of mismatched shapes are a mistake in the call and raise ValueError.
"""
import dataclasses

import numpy as np

from ntk_utils import scaling
from ntk_utils.bootstrap import as_curve, check_shapes
from ntk_utils.bootstrap import bootstrap_errors, mean_errors  # noqa: F401  (claims.*)
from ntk_utils.bootstrap import interval as _estimate, replicates as _replicates, short_number as _num
from ntk_utils.caveats import few_runs, underfit, unfit_runs, with_caveats  # noqa: F401  (claims.*)
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
      alpha_margin          0.02: one standard error of Δα. "scales better" is *held* only when the
                            interval of Δα lies above it, *not held* when it lies below it
      fit_min_n             0: exponents are fitted on n >= fit_min_n (0: every n of the run),
                            declared with the run, before it
      alike_tolerance       0.05: about 2.5 standard errors; two exponents are "alike" when the
                            interval of their difference lies within ±0.05
      track_tolerance       1.15: an after-kernel "tracks" the network within a factor 1.15 on
                            average (about 3 std of the network's error)
      improve_fraction      0.25: "keeps improving" when the second half of the log grid brings at
                            least a quarter of the improvement since t = 0 (m = 0)
      underfit_train_error  0.02: a network misclassifying more of its own training set is flagged
    """
    n_boot: int = 1000                    # bootstrap resamples of every interval
    alpha_margin: float = 0.02            # held: the interval of Δα lies above this margin
    fit_min_n: int = 0                    # exponents fitted on n from this on (0: every n)
    alike_tolerance: float = 0.05         # two exponents are alike within ±this
    track_tolerance: float = 1.15         # an after-kernel tracks the network within this factor
    improve_fraction: float = 0.25        # keeps improving: the late half's share of the gain
    underfit_train_error: float = 0.02    # networks erring more on their training set are flagged

    def exponent_rule(self):
        """The options of :func:`scales_better` these thresholds set."""
        return {"margin": self.alpha_margin, "fit_from": self.fit_min_n, "n_boot": self.n_boot}

    def __post_init__(self):
        problems = [f"{name} must be {what}, got {getattr(self, name)!r}" for name, ok, what in (
            ("n_boot", isinstance(self.n_boot, int) and self.n_boot >= 100, "an integer >= 100"),
            ("alpha_margin", self.alpha_margin >= 0, ">= 0"),
            ("fit_min_n", isinstance(self.fit_min_n, int) and self.fit_min_n >= 0, "an integer >= 0"),
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
        object.__setattr__(self, "numbers", plain(self.numbers))   # JSON-ready, whoever built it

    def with_caveat(self, caveat):
        """The same verdict, ``caveat`` appended to the text and to numbers["caveats"]."""
        caveat = caveat.strip()
        caveat += "" if caveat.endswith((".", "!", "?")) else "."
        numbers = {**self.numbers, "caveats": [*self.numbers.get("caveats", []), caveat]}
        return dataclasses.replace(self, text=f"{self.text} {caveat}", numbers=numbers)

    def inconclusive(self, why, **numbers):
        """The same claim, inconclusive: "INCONCLUSIVE (as measured <status>): ``why``" appended
        to the text, the status as measured and ``numbers`` to the numbers."""
        measured = "" if self.status == "inconclusive" else f" as measured {self.status}"
        return Verdict(self.claim, "inconclusive", f"{self.text} INCONCLUSIVE{measured}: {why}",
                       {**self.numbers, **numbers, "status_as_measured": self.status})

    def as_dict(self):
        return {"claim": self.claim, "status": self.status, "text": self.text, "numbers": self.numbers}

    def __str__(self):
        return f"{self.status.upper()}: {self.claim} - {self.text}"


# ----------------------------------------------------------------------------- helpers

def _flat(**estimates):
    """name=Interval(...) -> {name: value, name_low: low, name_high: high}."""
    return {f"{name}{end}": v for name, e in estimates.items() for end, v in zip(("", "_low", "_high"), e)}


def _pair(name_a, a, name_b, b):
    """"a 0.078 vs b 0.081", with enough digits (3 to 5) to tell the numbers apart."""
    digits = next((d for d in (3, 4) if _num(a, d) != _num(b, d)), 5)
    return f"{name_a} {_num(a, digits)} vs {name_b} {_num(b, digits)}"


def _inconclusive(claim, why, **numbers):
    return Verdict(claim, "inconclusive", f"inconclusive: {why}.", {"reason": why, **numbers})


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
    """x (K,), point errors and :class:`Replicates` of named curves, or why they cannot be judged.

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
    return x, points, None if why else _replicates(curves, n_boot, seed), why


def _against_limit(widths, curve, limit, names, x_name, min_points, n_boot, seed):
    """:func:`_prepare` of a curve over widths and its limit, (D, 1, 1, T) (width-independent:
    broadcast to the curve's K widths) or (D, 1, K, T)."""
    limit, K = as_curve(limit, "limit"), as_curve(curve, "curve").shape[2]
    limit = np.broadcast_to(limit, limit.shape[:2] + (K,) + limit.shape[3:]) if limit.shape[2] == 1 else limit
    return _prepare(widths, dict(zip(names, (curve, limit))), x_name, min_points=min_points, log_err=False,
                    n_boot=n_boot, seed=seed)


# ----------------------------------------------------------------------------- exponent rules

def _exponents(x, a, b, names, x_name, n_boot, seed, level, fit_from=0):
    """(x, points, boots, ests, why) on the fit range x >= ``fit_from``: ests holds alpha_a,
    alpha_b, delta = alpha_a - alpha_b and delta_upper (delta on the upper half of the range,
    x >= sqrt(x_1 x_K); None with fewer than 2 points there) as Interval; why: None or the reason
    there are none."""
    x = np.asarray(x, dtype=float).ravel()
    keep = x >= fit_from
    x, points, boots, why = _prepare(x[keep], {n: as_curve(c, n)[:, :, keep] for n, c in zip(names, (a, b))},
                                     x_name, min_points=2, log_err=True, n_boot=n_boot, seed=seed)
    if why:
        return x, points, boots, None, why
    upper = x >= np.sqrt(x[0] * x[-1])
    ests = {}
    for end, part in (("", slice(None)), ("_upper", upper)):
        if x[part].size < 2:
            ests["delta" + end] = None
            continue
        alpha = [scaling.fit_alpha(x[part], points[n][part]) for n in names]
        boot = [scaling.fit_alpha(x[part], boots[n][:, part]) for n in names]
        if not end:
            ests["alpha_a"], ests["alpha_b"] = (_estimate(al, bo, level, boots.draws) for al, bo in zip(alpha, boot))
        ests["delta" + end] = _estimate(alpha[0] - alpha[1], boot[0] - boot[1], level, boots.draws)
    return x, points, boots, ests, None


def scales_better(x, better, worse, *, names=("network", "kernel"), margin=0.0, fit_from=0, x_name="n",
                  n_boot=1000, seed=0, level=0.95):
    """"``better`` has a larger data-scaling exponent than ``worse``" (err ~ C x^-alpha).

    x: (K,) positive; better, worse: (D, S, K, T) curves, fitted on x >= ``fit_from``. With
    delta = alpha(better) - alpha(worse), delta_upper the same on the upper half of the fit
    range (x >= sqrt(x_1 x_K)) and gap = err_better(x_K) - err_worse(x_K):

      held          delta > margin and gap < 0 across their intervals and, when ``better``
                    starts worse (err_better(x_1) > err_worse(x_1): steeper from a worse
                    start), delta_upper > margin across its interval too
      not held      delta < margin across its interval
      inconclusive  otherwise; the text says which condition failed

    ``margin`` >= 0 is the smallest gap in exponent that counts as scaling better.
    """
    nb, nw = names
    claim = f"{nb} scales better than {nw}"
    x, points, boots, ests, why = _exponents(x, better, worse, names, x_name, n_boot, seed, level, fit_from)
    if why:
        return _inconclusive(claim, why, margin=margin, fit_from=fit_from)
    a_b, a_w, delta, upper = ests["alpha_a"], ests["alpha_b"], ests["delta"], ests["delta_upper"]
    eb, ew = points[nb], points[nw]
    gap = _estimate(eb[-1] - ew[-1], boots[nb][:, -1] - boots[nw][:, -1], level, boots.draws)
    worse_start = bool(eb[0] > ew[0])
    above = f"above the margin {margin:g}" if margin else "above 0"
    if delta.high < margin:
        status, why = "not held", "below " + (f"the margin {margin:g}" if margin else "0")
    elif delta.low <= margin:
        status, why = "inconclusive", f"not clearly {above}"
    elif gap.high >= 0:
        status, why = "inconclusive", f"{above}, but {nb} is not clearly better at {x_name}={x[-1]:g}"
    elif worse_start and not (upper is not None and upper.low > margin):
        status, why = "inconclusive", f"{above}, but steeper from a worse start, and not clearly so on the upper half"
    else:
        status, why = "held", above + (", on the upper half alone too (it starts worse)" if worse_start else "")
    half = f"{upper} on {x_name} >= {x[x >= np.sqrt(x[0] * x[-1])][0]:g}" if upper else "n/a on the upper half"
    text = (f"alpha({nb}) = {a_b}, alpha({nw}) = {a_w} on {x_name} = {x[0]:g}..{x[-1]:g}, difference {delta} "
            f"({half}): {why}. At {x_name}={x[0]:g}: {_pair(nb, eb[0], nw, ew[0])}"
            + (f" ({nb} starts worse)" if worse_start else "")
            + f"; at {x_name}={x[-1]:g}: {_pair(nb, eb[-1], nw, ew[-1])}, difference {gap}.")
    return Verdict(claim, status, text, {
        **_flat(alpha_better=a_b, alpha_worse=a_w, delta=delta, gap_at_max=gap),
        **(_flat(delta_upper=upper) if upper else {"delta_upper": None}),
        "err_better_at_max": eb[-1], "err_worse_at_max": ew[-1], "err_better_at_min": eb[0],
        "err_worse_at_min": ew[0], "x_min": x[0], "x_max": x[-1], "margin": margin, "fit_from": fit_from,
        "worse_start": worse_start, "level": level})


def scale_alike(x, a, b, *, names, tolerance, x_name="n", n_boot=1000, seed=0, level=0.95):
    """"``a`` and ``b`` have the same data-scaling exponent, within ``tolerance``".

    held when the interval of delta = alpha(a) - alpha(b) lies inside [-tolerance, tolerance];
    not held when it lies entirely outside; inconclusive otherwise (wide intervals are not "alike").
    """
    claim = f"{names[0]} and {names[1]} have the same exponent (within {tolerance:g})"
    x, points, _, ests, why = _exponents(x, a, b, names, x_name, n_boot, seed, level)
    if why:
        return _inconclusive(claim, why, tolerance=tolerance)
    a_a, a_b, delta = ests["alpha_a"], ests["alpha_b"], ests["delta"]
    if -tolerance <= delta.low and delta.high <= tolerance:
        status, why = "held", "inside"
    elif delta.low > tolerance or delta.high < -tolerance:
        status, why = "not held", "outside"
    else:
        status, why = "inconclusive", "neither inside nor outside"
    text = f"alpha({names[0]}) = {a_a}, alpha({names[1]}) = {a_b}, difference {delta}: {why} +-{tolerance:g}."
    return Verdict(claim, status, text, {**_flat(alpha_a=a_a, alpha_b=a_b, delta=delta),
                                                "tolerance": tolerance, "level": level})


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
    g_c, g_r = (_estimate(gap[n], gap_boot[n], level, boots.draws) for n in (nc, nr))
    diff = _estimate(gap[nr] - gap[nc], gap_boot[nr] - gap_boot[nc], level, boots.draws)
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
    return Verdict(claim, status, text, {
        **_flat(gap_candidate=g_c, gap_reference=g_r, gap_difference=diff), "factor_candidate": np.exp(gap[nc]),
        "factor_reference": np.exp(gap[nr]), "tolerance": tolerance, "level": level})


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
    of the improvement, and the last step still improves.

    x: (K,) increasing, x[0] >= 0 (x[0] = 0, e.g. initialization, counts); curve: (D, S, K, T).
    total = err(x[0]) - err(x[-1]), late = err(x_mid) - err(x[-1]), x_mid = sqrt(x_pos[0] x[-1]),
    excess = late - fraction · total (> 0: the late share late / total exceeds ``fraction``),
    last = err(x[-2]) - err(x[-1]), the last step.
    held: total, excess and last > 0 across their intervals. not held: late, total or excess
    < 0 across its interval (no late improvement, none at all, or a share below ``fraction``),
    or last < 0 across it (worse at the end). inconclusive otherwise (e.g. a last step that may
    be a plateau).
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
    estimate = lambda point, values: _estimate(point, values, level, boots.draws)
    late_boot, total_boot = boot @ w - boot[:, -1], boot[:, 0] - boot[:, -1]
    total = estimate(err[0] - err[-1], total_boot)
    late = estimate(err @ w - err[-1], late_boot)
    excess = estimate(late.value - fraction * total.value, late_boot - fraction * total_boot)
    last = estimate(err[-2] - err[-1], boot[:, -2] - boot[:, -1])
    share = late.value / total.value if total.value > 0 else float("nan")
    facts = (f"{name} error {_num(err[0])} at {x_name}={x[0]:g}, {_num(err @ w)} at {x_name}={x_mid:.3g}, "
             f"{_num(err[-1])} at {x_name}={x[-1]:g}; improvement {total} in all, {late} after {x_name}={x_mid:.3g} "
             f"(late share minus {fraction:g} of the total: {excess}), {last} after {x_name}={x[-2]:g}")
    numbers = {"x_mid": x_mid, "err_first": err[0], "err_mid": err @ w, "err_last": err[-1],
               **_flat(total=total, late=late, excess=excess, last=last), "late_share": share, "fraction": fraction,
               "level": level}
    if total.low > 0 and excess.low > 0 and last.low > 0:
        status, why = "held", f"the late part is {share:.0%} of the total (> {fraction:.0%}) and the last step improves"
    elif late.high < 0 or total.high < 0:
        status, why = "not held", f"no improvement after {x_name}={x_mid:.3g}" if late.high < 0 else "no improvement"
    elif excess.high < 0:
        status, why = "not held", f"the late part is {share:.0%} of the total (< {fraction:.0%})"
    elif last.high < 0:
        status, why = "not held", f"worse after {x_name}={x[-2]:g}"
    elif total.low > 0 and excess.low > 0:
        status, why = "inconclusive", f"the late part is {share:.0%} of the total, but the last step may be a plateau"
    else:
        status, why = "inconclusive", "an interval contains 0"
    return Verdict(claim, status, f"{facts}: {why}.", numbers)


def moves_toward(widths, curve, limit, *, names, x_name="width", n_boot=1000, seed=0, level=0.95):
    """"``curve``'s error moves toward ``limit``'s as width grows".

    curve: (D, S, K, T) over K widths; limit: (D, 1, 1, T) (width-independent, e.g. the infinite
    NTK) or (D, 1, K, T). dist(w) = |err(w) - err_limit(w)|; held when dist(w_1) - dist(w_K) > 0
    across its interval, not held when < 0 across it, inconclusive otherwise.
    """
    nc, nl = names
    claim = f"{nc}'s error moves toward {nl}'s as {x_name} grows"
    x, points, boots, why = _against_limit(widths, curve, limit, names, x_name, 2, n_boot, seed)
    if why:
        return _inconclusive(claim, why)
    dist, dist_boot = np.abs(points[nc] - points[nl]), np.abs(boots[nc] - boots[nl])
    shrink = _estimate(dist[0] - dist[-1], dist_boot[:, 0] - dist_boot[:, -1], level, boots.draws)
    status, why = (("held", "it shrank") if shrink.low > 0 else ("not held", "it grew") if shrink.high < 0
                   else ("inconclusive", "the interval contains 0"))
    text = (f"|{nc} - {nl}| = {_num(dist[0])} at {x_name}={x[0]:g} and {_num(dist[-1])} at {x_name}={x[-1]:g}, "
            f"a decrease of {shrink}: {why}.")
    return Verdict(claim, status, text, {
        "dist_first": dist[0], "dist_last": dist[-1], **_flat(shrink=shrink), "err_first": points[nc][0],
        "err_last": points[nc][-1], "limit_first": points[nl][0], "limit_last": points[nl][-1], "level": level})


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
    x, points, boots, why = _against_limit(widths, curve, limit, names, x_name, 3, n_boot, seed)
    if why:
        return _inconclusive(claim, why)
    err, lim, boot = points[nc], points[nl], boots[nc]
    i = int(np.argmin(err))
    drop = lambda a, b: _estimate(err[a] - err[b], boot[:, a] - boot[:, b], level, boots.draws)   # err(a) - err(b)
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
    return Verdict(claim, status, text, {
        "best_x": x[i], "err_best": err[i], "err_first": err[0], "err_last": err[-1],
        **_flat(fall=fall, rise=rise, overall=overall), "toward_limit": toward,
        "limit_best": lim[i], "limit_last": lim[-1], "level": level})


# ------------------------------------------------------------------------ reporting

def unless_unfit(rule, curve, unfit):
    """``rule(curve)`` (a Verdict), checked against the networks ``unfit`` marks ((D, S, K) bool,
    :func:`unfit_runs`; broadcast over the curve's K): with any, the verdict stands only when it
    is "held" both as measured and with those runs counted as errors of 0.5 (chance); otherwise
    it is inconclusive, and the text says what the recount gave."""
    verdict = rule(curve)
    curve = np.asarray(curve, dtype=float)
    unfit = np.broadcast_to(np.asarray(unfit, dtype=bool), curve.shape[:3])
    if not unfit.any():
        return verdict
    again = rule(np.where(unfit[..., None], 0.5, curve))
    count = f"{int(unfit.sum())} of {unfit.size} networks are underfit or diverged"
    numbers = {**verdict.numbers, "unfit_runs": int(unfit.sum()), "status_unfit_at_chance": again.status}
    if verdict.status == "held" and again.status == "held":
        return dataclasses.replace(verdict, text=f"{verdict.text} It holds with them counted as errors of 0.5 "
                                                 f"({count}).", numbers=numbers)
    return dataclasses.replace(verdict, numbers=numbers).inconclusive(
        f"{count}, and with them counted as errors of 0.5 it is {again.status}.")


def network_scales_better(x, network, kernel, unfit, *, names, thresholds):
    """The sections' exponent claim: :func:`scales_better` of a network's curve against a
    kernel's with ``thresholds``' margin, fit range and resamples, checked against the networks
    ``unfit`` marks (:func:`unless_unfit`)."""
    return unless_unfit(lambda c: scales_better(x, c, kernel, names=names, **thresholds.exponent_rule()), network,
                        unfit)


def paragraph(verdicts):
    """The verdicts as one markdown paragraph: "**claim: status.** text" each."""
    return " ".join(f"**{v.claim}: {v.status}.** {v.text}" for v in verdicts)


def table(verdicts):
    """A markdown table of verdicts (one row per claim) for a notebook's rendered output."""
    rows = "".join(f"| {v.claim} | **{v.status}** | {v.text} |\n" for v in verdicts)
    return "| claim | verdict | the numbers behind it |\n|---|---|---|\n" + rows
