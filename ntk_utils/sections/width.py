"""Section 3, Figure 2: wider networks move toward the infinite NTK, and lose.

All networks are in the setup's parameterization (notebook 02: the NTK parameterization, in
which a network approaches its infinite-NTK model as the width grows) and trained with the
setup's recipe at each width's own learning rate, ``lr_by_width[w]`` (Myrtle-CNN) or
``cnn5_lr_by_width[w]`` (5-layer CNN), chosen on validation by ``benchmarks/pilot_width.py``; a
width the table does not list trains at the setup's ``lr`` (the Result names it). Per data draw
and seed, outcomes ``wrong`` (D, S, K, T) (ntk_utils.experiments) of:

    (a) data scaling     the Myrtle-CNN (``setup.depth``) at each width of ``widths_scaling``,
                         for nested training sets of size n (``n_values``), and kernel regression
                         with the infinite NTK Θ_∞ of the same architecture (width-independent)
    (b) width sweep      at n = ``n_fixed``: the trained Myrtle-CNN and ridgeless regression with
                         its eNTK at initialization Θ_0, f(x) = Θ_0(x, X) Θ_0(X, X)^-1 y, for each
                         width of ``widths_sweep``; Θ_∞ at the same n as the reference line
    (c) width sweep      the same for the 5-layer CNN (models.cnn5, widths w, 2w, 4w, 8w) of
                         ``cnn5_widths`` on ``svhn_task``, or on ``svhn_fallback_task`` when
                         ``svhn_task``'s data cannot be loaded (offline); the Result records it

One infinite-NTK kernel per draw, on the largest pool, serves panel (a) and the line of (b).

Claims (ntk_utils.claims, paired bootstrap over draws, seeds and test examples):
(a) ``scales_better`` for each width against the infinite NTK (α in err(n) ≈ C n^-α), and
``scale_alike`` for the smallest and largest width (exponents within ``alike_tolerance``);
(b, c) ``moves_toward``: |err_eNTK(w) - err_∞| shrinks from the smallest to the largest width;
``improves_then_degrades``: the network's error falls to a best width, then rises toward Θ_∞.
"""
import dataclasses
import os

import numpy as np

from ntk_utils import checks, claims, data, experiments, plotting

SWEEP = ("network", "eNTK (init)")   # the curves of panels (b) and (c), after the limit's line
# The networks' limit: the width-independent NTK-parameterization one (check() asks for that
# parameterization; a standard network's kernel keeps its widths' fan-in weights).
LIMIT = experiments.LIMIT_NAMES["ntk"]


def label(width):
    """The name of panel (a)'s network curve of one width."""
    return f"network (width {width})"


def recipe(setup, width, lrs):
    """The train.TrainConfig of ``width``: the setup's recipe at the learning rate ``lrs`` (a
    {width: lr} table) gives the width, else at the setup's ``lr``."""
    return dataclasses.replace(setup.recipe, lr=float(lrs.get(width, setup.recipe.lr)))


def learning_rates(setup, widths, lrs):
    """{width: lr} each width of ``widths`` trains at (:func:`recipe`)."""
    return {w: recipe(setup, w, lrs).lr for w in widths}


def myrtle(setup, width):
    """Panels (a) and (b)'s network: the setup's Myrtle-CNN (depth, parameterization) at ``width``."""
    return setup.network(width=width)


def cnn5(setup, width):
    """Panel (c)'s network: models.cnn5 at ``width`` in the setup's parameterization."""
    return setup.network(arch="cnn5", width=width)


def side_task(svhn_task, svhn_fallback_task):
    """Panel (c)'s task as known before the run: ``svhn_task`` when its files are in the data
    cache, else ``svhn_fallback_task`` (the run itself may still download svhn_task: _side_tasks)."""
    try:
        data.available(svhn_task)
        return svhn_task
    except (data.DataError, OSError):
        return svhn_fallback_task


def infinite_sizes(n_values, n_fixed):
    """The n of the one infinite-NTK kernel per draw that serves panel (a) and the line of (b)."""
    return sorted(set(n_values) | {n_fixed})


def check(setup, n_values, widths_scaling, widths_sweep, n_fixed, svhn_task, svhn_fallback_task, cnn5_widths,
          lr_by_width, cnn5_lr_by_width):
    """Problems with this section's parameters (a list of sentences; empty when fine)."""
    problems = (checks.rate_table("lr_by_width", lr_by_width) + checks.rate_table("cnn5_lr_by_width", cnn5_lr_by_width)
                + checks.sizes("n_values", n_values) + checks.positive("widths_scaling", widths_scaling)
                + checks.sizes("widths_sweep", widths_sweep) + checks.positive("n_fixed", n_fixed)
                + checks.sizes("cnn5_widths", cnn5_widths)
                + checks.one_of("svhn_task", svhn_task, data.TASKS)
                + checks.one_of("svhn_fallback_task", svhn_fallback_task, data.TASKS))
    if isinstance(widths_scaling, list) and len(set(widths_scaling)) != len(widths_scaling):
        problems.append(f"widths_scaling: {widths_scaling!r} must not repeat a width")
    if setup.parameterization != "ntk":
        problems.append(f"parameterization: {setup.parameterization!r}, but the widths grow toward the "
                        f"{LIMIT}, the limit of NTK-parameterized networks: set parameterization 'ntk'")
    if setup.arch != "myrtle":
        problems.append(f"arch: {setup.arch!r}, but panels (a) and (b) sweep the Myrtle-CNN and panel (c) cnn5: "
                        "set arch 'myrtle'")
    try:
        cnn5(setup, 1).check_image_size(setup.image_size)
    except ValueError as e:
        problems.append(f"image_size: panel (c)'s {e}")
    if problems:
        return problems
    side = side_task(svhn_task, svhn_fallback_task)
    # panel (c) draws n_fixed of its task: within the main pool's check when it is the setup's task
    return setup.size_problems(max(infinite_sizes(n_values, n_fixed))) + \
        (setup.size_problems(n_fixed, task=side) if side != setup.task else [])


@dataclasses.dataclass
class Result(experiments.Findings):
    setup: object
    n_values: list
    widths_scaling: list
    widths_sweep: list
    n_fixed: int
    cnn5_widths: list
    cnn5_task: str        # the task panel (c) ran on
    requested_task: str   # svhn_task
    fallback_reason: object   # why panel (c) ran on svhn_fallback_task (no machine paths), or None
    learning_rates: dict      # {"myrtle": {width: lr}, "cnn5": {width: lr}}: the rate each width trained at
    unpiloted: dict           # {"myrtle": [widths], "cnn5": [widths]} not in the pilot's tables (the setup's lr)

    @property
    def fallback(self):
        return self.fallback_reason is not None

    @property
    def scaling_names(self):
        """Panel (a)'s curves, in drawing order."""
        return [label(w) for w in self.widths_scaling] + [LIMIT]

    def record(self):
        """results.json's "results"."""
        return {"n_values": self.n_values, "curves": self.curves,
                "verdicts": {v.claim: v.as_dict() for v in self.verdicts}, "underfit": self.underfit,
                "cnn5_task": self.cnn5_task, "requested_task": self.requested_task, "fallback": self.fallback,
                "fallback_reason": self.fallback_reason,
                "learning_rates": {k: {str(w): lr for w, lr in v.items()} for k, v in self.learning_rates.items()},
                "unpiloted": self.unpiloted}

    def markdown(self):
        """The Result paragraph, from this run's numbers."""
        fit = f" {self.caveat}." if self.caveat else \
            f" Every network fit its training set (train error at most {self.setup.thresholds.underfit_train_error})."
        rates = "; ".join(f"{arch} " + ", ".join(f"width {w}: {lr:g}" for w, lr in lrs.items())
                          for arch, lrs in self.learning_rates.items())
        unpiloted = "; ".join(f"{arch} width {', '.join(map(str, ws))}" for arch, ws in self.unpiloted.items() if ws)
        return (f"On {self.setup.describe()}, {self.setup.parameterization} parameterization, learning rate per "
                f"width from the validation pilot ({rates})"
                + (f"; NOT in the pilot, at the setup's lr {self.setup.recipe.lr:g}: {unpiloted}" if unpiloted else "")
                + (f"; panel (c) ran on {self.cnn5_task}, not {self.requested_task}: {self.fallback_reason}"
                   if self.fallback else "")
                + ". " + claims.paragraph(self.plain) + fit)


def _side_tasks(setup, n_fixed, svhn_task, svhn_fallback_task):
    """(task name, fallback reason or None, [experiments.Task]) of panel (c)."""
    try:
        return svhn_task, None, setup.tasks(n_fixed, task=svhn_task)
    except (data.DataError, OSError) as e:
        why = str(e).splitlines()[0].replace(str(data.resolve_data_dir()), "$NTK_DATA_DIR")   # no machine paths
        reason = f"{svhn_task} is not available ({why})"
        print(f"NOTE: panel (c) runs on {svhn_fallback_task} INSTEAD OF {svhn_task}: {reason}")
        return svhn_fallback_task, reason, setup.tasks(n_fixed, task=svhn_fallback_task)


def run(setup, n_values, widths_scaling, widths_sweep, n_fixed, svhn_task, svhn_fallback_task, cnn5_widths,
        lr_by_width, cnn5_lr_by_width):
    """Train the networks and fit the kernels of panels (a), (b) and (c); return the claims."""
    th, seeds, draws, ridge = setup.thresholds, setup.seeds, setup.data_seeds, setup.ridge
    tasks = setup.tasks(max(infinite_sizes(n_values, n_fixed)))

    # (a) and (b): the infinite NTK does not depend on the width: one kernel per draw serves both
    ns_inf = infinite_sizes(n_values, n_fixed)
    infinite = experiments.over_draws(lambda d: experiments.infinite_outcomes(myrtle(setup, 1), d, ns_inf, ridge),
                                      tasks)
    train_errors = {}   # (draws, seeds, points) per group of networks, for the underfit caveats

    def networks(task, width):
        wrong, trained = experiments.network_outcomes(myrtle(setup, width), task, n_values, seeds,
                                                      recipe(setup, width, lr_by_width))
        train_errors.setdefault(f"width {width}", []).append(
            experiments.training_fit(trained, seeds, n_values)["train_error"])
        return wrong

    outcomes = {label(w): experiments.over_draws(lambda d, w=w: networks(d, w), tasks) for w in widths_scaling}
    outcomes[LIMIT] = infinite[:, :, [ns_inf.index(n) for n in n_values]]
    sweep = experiments.over_draws(lambda d: experiments.width_sweep(lambda w: myrtle(setup, w), widths_sweep, d,
                                                                     n_fixed, seeds,
                                                                     lambda w: recipe(setup, w, lr_by_width),
                                                                     ridge=ridge), tasks)
    sweep_limit = infinite[:, :, [ns_inf.index(n_fixed)]]
    sweep_fit = sweep.pop("train_error")

    # (c): cnn5 on svhn_task, or on svhn_fallback_task when it cannot be loaded
    cnn5_task, fallback_reason, cnn5_tasks = _side_tasks(setup, n_fixed, svhn_task, svhn_fallback_task)
    cnn5_sweep = experiments.over_draws(lambda d: experiments.width_sweep(lambda w: cnn5(setup, w), cnn5_widths, d,
                                                                          n_fixed, seeds,
                                                                          lambda w: recipe(setup, w, cnn5_lr_by_width),
                                                                          ridge=ridge),
                                        cnn5_tasks)
    cnn5_limit = experiments.over_draws(lambda d: experiments.infinite_outcomes(cnn5(setup, 1), d, [n_fixed], ridge),
                                        cnn5_tasks)
    cnn5_fit = cnn5_sweep.pop("train_error")
    underfit = ". ".join(filter(None, [
        claims.underfit(np.stack(v), th.underfit_train_error, draws, seeds, n_values, f"{group}, n")
        for group, v in train_errors.items()] + [
        claims.underfit(sweep_fit, th.underfit_train_error, draws, seeds, widths_sweep, "myrtle width"),
        claims.underfit(cnn5_fit, th.underfit_train_error, draws, seeds, cnn5_widths, "cnn5 width")]))

    curves = {name: experiments.summarize("n", n_values, o) for name, o in outcomes.items()}
    curves.update({f"(b) {k}": experiments.summarize("width", widths_sweep, v) for k, v in sweep.items()})
    curves.update({f"(c) {k}": experiments.summarize("width", cnn5_widths, v) for k, v in cnn5_sweep.items()})
    curves[f"(b) {LIMIT}"] = experiments.summarize("n", [n_fixed], sweep_limit)
    curves[f"(c) {LIMIT}"] = experiments.summarize("n", [n_fixed], cnn5_limit)

    lo_w, hi_w = widths_scaling[0], widths_scaling[-1]
    unfit = {w: claims.unfit_runs(np.stack(train_errors[f"width {w}"]), th.underfit_train_error)
             for w in widths_scaling}
    plain = [claims.network_scales_better(n_values, outcomes[label(w)], outcomes[LIMIT], unfit[w],
                                          names=(label(w), LIMIT), thresholds=th) for w in widths_scaling]
    if lo_w != hi_w:
        alike = lambda lo: claims.unless_unfit(
            lambda hi: claims.scale_alike(n_values, lo, hi, names=(label(lo_w), label(hi_w)),
                                          tolerance=th.alike_tolerance, n_boot=th.n_boot), outcomes[label(hi_w)],
            unfit[hi_w])
        plain.append(claims.unless_unfit(alike, outcomes[label(lo_w)], unfit[lo_w]))
    panel_c = f"cnn5 on {cnn5_task}" + (f" (stand-in for {svhn_task})" if fallback_reason else "")
    for panel, widths, sw, limit, fit in [(f"(b) myrtle{setup.depth}", widths_sweep, sweep, sweep_limit, sweep_fit),
                                          (f"(c) {panel_c}", cnn5_widths, cnn5_sweep, cnn5_limit, cnn5_fit)]:
        plain.append(claims.moves_toward(widths, sw["eNTK (init)"], limit,
                                         names=(f"{panel} eNTK (init)", LIMIT), n_boot=th.n_boot))
        plain.append(claims.unless_unfit(
            lambda c, widths=widths, limit=limit, panel=panel: claims.improves_then_degrades(
                widths, c, limit, names=(f"{panel} network", LIMIT), n_boot=th.n_boot),
            sw["network"], claims.unfit_runs(fit, th.underfit_train_error)))
    verdicts, caveat = claims.with_caveats(plain, *setup.caveats(underfit))

    saved = {**outcomes, **{f"(b) {k}": v for k, v in sweep.items()}, **{f"(c) {k}": v for k, v in cnn5_sweep.items()},
             f"(b) {LIMIT}": sweep_limit, f"(c) {LIMIT}": cnn5_limit}   # every verdict's inputs
    myrtle_widths = sorted(set(widths_scaling) | set(widths_sweep))
    rates = {"myrtle": learning_rates(setup, myrtle_widths, lr_by_width),
             "cnn5": learning_rates(setup, cnn5_widths, cnn5_lr_by_width)}
    unpiloted = {"myrtle": [w for w in myrtle_widths if w not in lr_by_width],
                 "cnn5": [w for w in cnn5_widths if w not in cnn5_lr_by_width]}
    return Result(setup, list(n_values), list(widths_scaling), list(widths_sweep), n_fixed, list(cnn5_widths),
                  cnn5_task, svhn_task, fallback_reason, rates, unpiloted, outcomes=saved, curves=curves,
                  underfit=underfit, verdicts=verdicts, plain=plain, caveat=caveat)


def work(tally, setup, n_values, widths_scaling, widths_sweep, n_fixed, svhn_task, svhn_fallback_task, cnn5_widths,
         lr_by_width, cnn5_lr_by_width):
    """Declare to ``tally`` (an ntk_utils.estimate.Work) the networks and kernels :func:`run`
    computes, with its measurements per data draw (panel (c) on :func:`side_task`)."""
    seeds, side = setup.seeds, side_task(svhn_task, svhn_fallback_task)
    for d in setup.data_seeds:
        draw, side_draw = tally.draw(d), tally.draw(d, side)
        tally.infinite_outcomes(myrtle(setup, 1), draw, infinite_sizes(n_values, n_fixed))
        for w in widths_scaling:
            tally.network_outcomes(myrtle(setup, w), draw, n_values, seeds, recipe(setup, w, lr_by_width))
        tally.width_sweep(lambda w: myrtle(setup, w), widths_sweep, draw, n_fixed, seeds,
                          lambda w: recipe(setup, w, lr_by_width))
        tally.width_sweep(lambda w: cnn5(setup, w), cnn5_widths, side_draw, n_fixed, seeds,
                          lambda w: recipe(setup, w, cnn5_lr_by_width))
        tally.infinite_outcomes(cnn5(setup, 1), side_draw, [n_fixed])


def panel_scaling(ax, curves, names):
    """Figure 2(a) from ``curves`` (Result.curves, or results.json's): test error vs n, log-log,
    mean ± std over runs, each with its least-squares power law; ``names``: the curves to draw
    (Result.scaling_names: one network per width, then the infinite NTK)."""
    for k, name in enumerate(names):
        color = None if name == LIMIT else f"C{[0, 4, 5, 6][k % 4]}"
        plotting.scaling_curve(ax, curves[name], name, color=color, marker="os^v"[k % 4])


def panel_width(ax, curves, panel, widths, title):
    """Figure 2(b) or (c) (``panel``: "(b)" or "(c)") from ``curves``: test error vs width at fixed
    n of the network and its eNTK at initialization (mean ± std over runs), and the infinite NTK
    at the same n as a dotted line."""
    for name in SWEEP:
        c = curves[f"{panel} {name}"]
        ax.errorbar(widths, np.asarray(c["mean"], dtype=float), yerr=np.asarray(c["std"], dtype=float), fmt="o-",
                    color=plotting.COLORS[name], label=name, capsize=3, ms=4)
    ax.axhline(np.asarray(curves[f"{panel} {LIMIT}"]["mean"], dtype=float)[0], ls=":",
               color=plotting.COLORS[LIMIT], label=LIMIT)
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.minorticks_off()
    ax.set_xlabel("width")
    ax.set_ylabel("test error")
    ax.set_title(title, fontsize=9)


def figure(result, output_dir):
    """Draw Figure 2 into ``output_dir/fig2_width.png``; returns the figure."""
    s = result.setup
    fig, (ax_a, ax_b, ax_c) = plotting.figure(3)
    panel_scaling(ax_a, result.curves, result.scaling_names)
    ax_a.set_title(f"(a) myrtle{s.depth}, {s.task}", fontsize=9)
    panel_width(ax_b, result.curves, "(b)", result.widths_sweep, f"(b) myrtle{s.depth}, {s.task}, n={result.n_fixed}")
    panel_width(ax_c, result.curves, "(c)", result.cnn5_widths,
                f"(c) cnn5, {result.cnn5_task}, n={result.n_fixed}"
                + (f"\n(stand-in for {result.requested_task})" if result.fallback else ""))
    return plotting.finish(fig, os.path.join(output_dir, "fig2_width.png"),
                           f"{s.image_size}px, {s.parameterization} parameterization, {s.runs}")
