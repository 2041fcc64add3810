"""Section 5, Figures 1C and 5: the eNTK keeps improving during training.

One network per data draw and seed is trained on the first ``n_train`` pool samples with the
setup's recipe, and its parameters θ_t are kept at the steps of the schedule (:func:`snapshot_schedule`):

    t_grid = [0, t_1, ..., t_K]    t_k: ``n_snapshots`` steps log-spaced from ``first_snapshot`` to
                                   the last step (or ``snapshot_steps`` when given); t = 0 is the
                                   initialization; ``epochs`` = t · batch / n_train

At each t the eNTK K^t = Θ(θ_t) gives per-example outcomes ``wrong`` (D, S, len(t_grid), T)
(ntk_utils.experiments), with ridgeless kernel regression from zero:

    K^t_fit        K^t fitted on the network's own n_train training samples
    K^F,t_fit      K^t fitted on n_train fresh samples drawn after the pool (never trained on)
    network(t)     the network f(·; θ_t) itself
    K^t_fit, constant lr   K^t_fit of the same network trained at the recipe's constant
                   learning rate (schedule "constant"): a plateau of K^t_fit that this curve
                   does not share comes from the decaying schedule, not from the kernel

and, at the times ``t_scaling`` (indices into t_grid), the data-scaling curve of K^t fitted on
the first n samples for each n in ``n_values`` ("K^t, t=<step>", (D, S, len(n_values), T)),
against the network trained on n samples ("network", notebook 1's networks).

Claims (ntk_utils.claims, paired bootstrap over draws, seeds and test examples):
``keeps_improving`` of K^t_fit, K^F,t_fit and K^t_fit at a constant learning rate along t (the
second half of the log t grid brings more than ``improve_fraction`` of the improvement since
t = 0, and the last step still improves), and ``scales_better``: the
network's exponent α in err(n) ≈ C n^-α above K^t's at each t in t_scaling.
"""
import dataclasses
import os
from typing import NamedTuple

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from ntk_utils import checks, claims, experiments, plotting, train

CONSTANT = "K^t_fit, constant lr"
OVER_T = ("K^t_fit", "K^F,t_fit", "network(t)", CONSTANT)


class Schedule(NamedTuple):
    total_steps: int    # training steps at n_train
    t_grid: list        # [0, t_1, ..., t_K]: the snapshot steps
    epochs: list        # the same times in epochs
    t_scaling: list     # the steps of t_grid that get a data-scaling curve


def snapshot_schedule(recipe, n_train, n_snapshots, first_snapshot, snapshot_steps, t_scaling=()):
    """The snapshot schedule of a network trained with ``recipe`` on ``n_train`` samples
    (:class:`Schedule`). ``t_scaling``: indices into t_grid (0 = init, -1 = the last step).
    Raises ValueError naming the parameter whose steps or indices do not fit."""
    total_steps = recipe.num_steps(n_train)
    steps = sorted(set(snapshot_steps)) if snapshot_steps else \
        sorted({int(round(t)) for t in np.geomspace(first_snapshot, total_steps, n_snapshots)})
    if steps[0] < 1 or steps[-1] > total_steps:
        name = "snapshot_steps" if snapshot_steps else "first_snapshot"
        raise ValueError(f"{name}: snapshot steps must lie in 1..{total_steps} (the training steps at "
                         f"n_train={n_train}), got {steps}")
    t_grid = [0] + steps
    if not all(-len(t_grid) <= i < len(t_grid) for i in t_scaling):
        raise ValueError(f"t_scaling: {list(t_scaling)} must hold indices into the {len(t_grid)} times {t_grid}")
    epochs = [t * recipe.batch(n_train) / n_train for t in t_grid]
    return Schedule(total_steps, t_grid, epochs, sorted({t_grid[i] for i in t_scaling}))


def snapshot_recipe(recipe, seed, schedule, constant=False):
    """The recipe of the network followed over t: ``recipe`` with ``seed``, keeping θ_t at the
    schedule's steps; with ``constant``, at the recipe's learning rate throughout."""
    return dataclasses.replace(recipe, seed=seed, snapshot_steps=tuple(schedule.t_grid),
                               **({"schedule": "constant"} if constant else {}))


def kernel_sizes(n_values, n_train):
    """The n the eNTK of each snapshot is fitted on, on the pool: n_values and n_train,
    increasing (the pool holds the largest; the kernel is computed on it)."""
    return sorted(set(n_values) | {n_train})


def check(setup, n_values, n_train, n_snapshots, first_snapshot, snapshot_steps, t_scaling):
    """Problems with this section's parameters (a list of sentences; empty when fine)."""
    problems = checks.sizes("n_values", n_values) + checks.positive("n_train", n_train) \
        + checks.positive("n_snapshots", n_snapshots) + checks.positive("first_snapshot", first_snapshot) \
        + (checks.positive("snapshot_steps", snapshot_steps) if snapshot_steps != [] else [])
    if not (isinstance(t_scaling, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in t_scaling)):
        problems.append(f"t_scaling: {t_scaling!r} must be a list of indices into the snapshot times")
    if problems:
        return problems
    try:
        snapshot_schedule(setup.recipe, n_train, n_snapshots, first_snapshot, snapshot_steps, t_scaling)
    except ValueError as e:
        return [str(e)]
    return setup.size_problems(max(kernel_sizes(n_values, n_train)), n_fresh=n_train)


@dataclasses.dataclass
class Result(experiments.Findings):
    """outcomes over t: (D, S, len(t_grid), T); over n: (D, S, len(n_values), T)."""
    setup: object
    n_values: list
    n_train: int
    schedule: Schedule
    train_error: object   # (D, S, len(n_values)) of the networks trained on n samples

    @property
    def t_grid(self):
        return self.schedule.t_grid

    @property
    def epochs(self):
        return self.schedule.epochs

    def record(self):
        """results.json's "results"."""
        return {"t_grid": self.t_grid, "epochs": self.epochs, "n_values": self.n_values, "curves": self.curves,
                "train_error": self.train_error, "underfit": self.underfit,
                "verdicts": {v.claim: v.as_dict() for v in self.verdicts}}

    def timeline(self):
        """The curves over t as a table: step, epoch and the mean test error of each."""
        lines = [f"{'t':>5} {'epoch':>6}  K^t_fit  K^F,t_fit  network(t)  K^t_fit(constant lr)"]
        lines += [f"{t:>5} {self.epochs[j]:>6.2f}  " + "  ".join(f"{self.curves[k]['mean'][j]:.3f}   " for k in OVER_T)
                  for j, t in enumerate(self.t_grid)]
        return "\n".join(lines)

    def markdown(self):
        """The Result paragraph, from this run's numbers."""
        fit_t, fresh = self.curves["K^t_fit"]["mean"], self.curves["K^F,t_fit"]["mean"]
        return (f"On {self.setup.describe()}, the eNTK fitted on the {self.n_train} training samples errs on "
                f"{fit_t[0]:.3f} of test images at t = 0 and {fit_t[-1]:.3f} at t = {self.t_grid[-1]} (on fresh "
                f"samples: {fresh[0]:.3f} -> {fresh[-1]:.3f}); the network itself ends at "
                f"{self.curves['network(t)']['mean'][-1]:.3f}; trained at a constant learning rate, its eNTK errs "
                f"{self.curves[CONSTANT]['mean'][0]:.3f} -> {self.curves[CONSTANT]['mean'][-1]:.3f}. "
                + claims.paragraph(self.plain)
                + (f" {self.caveat}." if self.caveat else ""))


def _dynamics(setup, task, n_values, n_train, schedule):
    """Outcomes of one data draw: over t (S, len(t_grid), T) and over n (S, len(n_values), T), and
    the train error of the networks trained on n samples."""
    net, seeds, t_grid, t_scaling = setup.net, setup.seeds, schedule.t_grid, schedule.t_scaling
    ns_kernel = kernel_sizes(n_values, n_train)
    x_fresh, y_fresh = task.fresh(n_train)
    shape = (len(seeds), len(t_grid), len(task.y_test))
    out = {**{name: np.full(shape, np.nan) for name in OVER_T},
           **{f"K^t, t={t}": np.full((len(seeds), len(n_values), len(task.y_test)), np.nan) for t in t_scaling}}
    followed = lambda seed, constant=False: train.train(net, task.x[:n_train], task.y[:n_train],
                                                         snapshot_recipe(setup.recipe, seed, schedule, constant),
                                                         val=task.val)
    for i, seed in enumerate(seeds):
        try:
            run = followed(seed)
            flat = followed(seed, constant=True)
        except train.TrainingDiverged as e:   # this seed's rows stay NaN (missing) in every curve over t
            print(f"draw {task.data_seed} seed {seed}: {e}")
            continue
        out[CONSTANT][i] = [experiments.entk_outcomes(net, flat.snapshots[t], task.x, task.y, task.x_test, task.y_test,
                                                      [n_train], setup.ridge)[0] for t in t_grid]
        for j, t in enumerate(t_grid):
            p = run.snapshots[t]
            out["network(t)"][i, j] = experiments.wrong(run.outputs(net, task.x_test, p), task.y_test)
            pool = dict(zip(ns_kernel, experiments.entk_outcomes(net, p, task.x, task.y, task.x_test, task.y_test,
                                                                 ns_kernel, setup.ridge)))
            out["K^t_fit"][i, j] = pool[n_train]
            out["K^F,t_fit"][i, j] = experiments.entk_outcomes(net, p, x_fresh, y_fresh, task.x_test, task.y_test,
                                                               [n_train], setup.ridge)[0]
            if t in t_scaling:
                out[f"K^t, t={t}"][i] = [pool[n] for n in n_values]
    wrong, trained = experiments.network_outcomes(net, task, n_values, seeds, setup.recipe)
    out["network"] = wrong
    out["train_error"] = experiments.training_fit(trained, seeds, n_values)["train_error"]
    return out


def run(setup, n_values, n_train, n_snapshots, first_snapshot, snapshot_steps, t_scaling):
    """Train the networks with snapshots, fit the eNTK of every snapshot; return the claims."""
    th = setup.thresholds
    schedule = snapshot_schedule(setup.recipe, n_train, n_snapshots, first_snapshot, snapshot_steps, t_scaling)
    print(f"training on n_train={n_train} for {schedule.total_steps} steps; snapshots at t = {schedule.t_grid} "
          f"(epochs {[round(e, 2) for e in schedule.epochs]})")
    tasks = setup.tasks(max(kernel_sizes(n_values, n_train)))
    outcomes = experiments.over_draws(lambda task: _dynamics(setup, task, n_values, n_train, schedule), tasks)
    train_error = outcomes.pop("train_error")
    underfit = claims.underfit(train_error, th.underfit_train_error, setup.data_seeds, setup.seeds, n_values)
    curves = {name: experiments.summarize("t" if name in OVER_T else "n",
                                          schedule.t_grid if name in OVER_T else n_values, o)
              for name, o in outcomes.items()}
    plain = [claims.keeps_improving(schedule.t_grid, outcomes[k], name=k, x_name="t", fraction=th.improve_fraction,
                                    n_boot=th.n_boot) for k in ("K^t_fit", "K^F,t_fit", CONSTANT)]
    unfit = claims.unfit_runs(train_error, th.underfit_train_error)
    plain += [claims.network_scales_better(n_values, outcomes["network"], outcomes[f"K^t, t={t}"], unfit,
                                           names=("network", f"K^t, t={t}"), thresholds=th)
              for t in schedule.t_scaling]
    verdicts, caveat = claims.with_caveats(plain, *setup.caveats(underfit))
    return Result(setup, list(n_values), n_train, schedule, train_error, outcomes=outcomes, curves=curves,
                  underfit=underfit, verdicts=verdicts, plain=plain, caveat=caveat)


def work(tally, setup, n_values, n_train, n_snapshots, first_snapshot, snapshot_steps, t_scaling):
    """Declare to ``tally`` (an ntk_utils.estimate.Work) the networks and kernels :func:`run`
    computes, with the loops of its ``_dynamics``."""
    net, schedule = setup.net, snapshot_schedule(setup.recipe, n_train, n_snapshots, first_snapshot, snapshot_steps,
                                                 t_scaling)
    ns_kernel = kernel_sizes(n_values, n_train)
    fresh = ("fresh", max(ns_kernel))   # Task.fresh: the samples after the pool of setup.tasks(max(ns_kernel))
    for d in setup.data_seeds:
        draw = tally.draw(d)
        for seed in setup.seeds:
            followed = tally.train(net, draw, n_train, snapshot_recipe(setup.recipe, seed, schedule))
            flat = tally.train(net, draw, n_train, snapshot_recipe(setup.recipe, seed, schedule, constant=True))
            for t in schedule.t_grid:
                tally.entk_outcomes(net, tally.params_at(followed, seed, t), draw, ns_kernel)
                tally.entk_outcomes(net, tally.params_at(followed, seed, t), draw, [n_train], fresh)
                tally.entk_outcomes(net, tally.params_at(flat, seed, t), draw, [n_train])
        tally.network_outcomes(net, draw, n_values, setup.seeds, setup.recipe)


def panel_1c(ax, curves, epochs, n_train):
    """Figure 1C (Figure 5a) from ``curves`` (Result.curves, or results.json's) and ``epochs`` (the
    snapshot times in epochs, results.json's "epochs"): K^t_fit, K^F,t_fit and network(t) vs t
    (log), mean ± std over runs; t = 0 as dotted lines."""
    x = np.asarray(epochs, dtype=float)[1:]
    for name, label, fmt, color in (("K^t_fit", f"eNTK K^t fitted on its {n_train} train samples", "o-", "C3"),
                                    ("K^F,t_fit", f"K^t fitted on {n_train} fresh samples", "^-", "C4"),
                                    ("network(t)", "network at time t", "s--", "C0"),
                                    (CONSTANT, "K^t fitted on its train samples, constant lr", "o:", "C7")):
        if name not in curves:   # runs before the constant-lr curve
            continue
        mean, std = (np.asarray(curves[name][k], dtype=float) for k in ("mean", "std"))
        ax.errorbar(x, mean[1:], yerr=std[1:], fmt=fmt, color=color, capsize=3, ms=4, label=label)
        ax.axhline(mean[0], color=color, ls=":", lw=1)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training time t (epochs); dotted: t = 0")
    ax.set_ylabel("test error")


def panel_5b(ax, curves):
    """Figure 5b from ``curves``: the data-scaling curves "K^t, t=<step>" (viridis, in their order)
    and the network's, log-log, each with its least-squares power law."""
    over_n = [name for name in curves if name.startswith("K^t, t=")]
    cmap = plt.get_cmap("viridis")
    for k, name in enumerate(over_n):
        plotting.scaling_curve(ax, curves[name], name, color=cmap(k / max(1, len(over_n) - 1) * 0.9))
    plotting.scaling_curve(ax, curves["network"], "network", color="C0", marker="s")


def figure(result, output_dir):
    """Draw Figure 5 (two panels) into ``output_dir/fig5_kernel_dynamics.png`` and Figure 1C into
    ``output_dir/fig1c_kernel_dynamics.png``; returns both figures."""
    title = result.setup.title(f"n_train={result.n_train}")
    fig5, (ax_a, ax_b) = plotting.figure(2)
    panel_1c(ax_a, result.curves, result.epochs, result.n_train)
    ax_a.set_title("(a) K^t fitted on the train set / on fresh samples", fontsize=9)
    panel_5b(ax_b, result.curves)
    ax_b.set_title("(b) data scaling of K^t", fontsize=9)
    plotting.finish(fig5, os.path.join(output_dir, "fig5_kernel_dynamics.png"), title)
    fig1c, (ax,) = plotting.figure()
    panel_1c(ax, result.curves, result.epochs, result.n_train)
    plotting.finish(fig1c, os.path.join(output_dir, "fig1c_kernel_dynamics.png"), title)
    return fig5, fig1c
