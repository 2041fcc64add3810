"""The caveats a verdict carries: networks that did not fit their training set, and too few runs.

Sections append them to every verdict (:func:`with_caveats`); ``claims.unless_unfit`` makes a
verdict inconclusive when it rests on the networks :func:`unfit_runs` marks.
"""
import numpy as np


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


def unfit_runs(train_error, threshold):
    """(D, S, K) bool: the networks that diverged (NaN) or err on more than ``threshold`` of their
    own training set (train_error (D, S, K), as for :func:`underfit`)."""
    with np.errstate(invalid="ignore"):
        return ~(np.asarray(train_error, dtype=float) <= threshold)


def few_runs(draws, seeds, minimum=4):
    """A caveat when the intervals rest on one data draw (``bootstrap.interval``): they leave the
    draw-to-draw spread out, and resampling fewer than ``minimum`` seeds understates theirs. With
    two draws or more the t interval over the draws holds both, and there is no caveat."""
    if len(draws) >= 2:
        return ""
    seeds_part = f", and resample only {len(seeds)} seed(s), which understates their noise" \
        if len(seeds) < minimum else ""
    return f"Intervals rest on 1 data draw(s): they leave out the draw-to-draw spread{seeds_part}"


def with_caveats(verdicts, *caveats):
    """The verdicts with the non-empty caveat sentences appended to each text, and the joined caveat."""
    caveat = ". ".join(c for c in caveats if c)
    return [v.with_caveat(caveat) if caveat else v for v in verdicts], caveat
