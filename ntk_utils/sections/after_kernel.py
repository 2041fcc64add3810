"""Section 4, Figures 1B and 4: the after-kernel, the eNTK at the end of training.

One network per data draw, seed and m in every m the section needs (n_values ∪ m_values ∪
m_fixed), trained on the first m samples of the draw's pool with the setup's recipe. Its eNTK
at the end of training, K_m, is used for ridgeless kernel regression from zero on n samples:

    K_m(n)     the first n pool samples (for n <= m, samples the network was trained on)
    K^F_m(n)   n fresh samples, disjoint from the pool and the validation set (the same fresh
               samples for every m of a draw: Task.fresh)

Per data draw and seed, per-example outcomes ``wrong`` (D, S, K, T) (ntk_utils.experiments) of
the curves

    network              the network trained on n, at each n of n_values
    eNTK (init)          the eNTK at initialization, fitted on the first n pool samples
    K_n(n), K^F_n(n)     the after-kernel of the network trained on n, on n pool / fresh samples
    K_m(n), K^F_m(n)     for m in m_fixed: a fixed after-kernel at every n of n_values
    K^F_m(n_fit)         against m = [0] + m_values: the after-kernel of the network trained on m
                         on n_fit fresh samples; m = 0 is the eNTK at initialization on them

Each after-kernel is computed once per (network, pool or fresh) on its largest needed set;
smaller n use its leading block. A diverged network's kernels stay NaN.

Claims (ntk_utils.claims, paired bootstrap over draws, seeds and test examples): (a) ``tracks``:
K_n(n) and K^F_n(n) stay within a factor ``track_tolerance`` of the network's error, closer than
the eNTK at init; (b) ``keeps_improving``: K^F_m(n_fit) still improves over the second half of
the log m grid (at least ``improve_fraction`` of the improvement from m = 0); (c)
``scales_better``: the network's exponent exceeds each fixed kernel's.
"""
import dataclasses
import os

import numpy as np

from ntk_utils import checks, claims, experiments, plotting

AFTER_KERNELS = ("K_n(n)", "K^F_n(n)")
PANEL_A = ["network", "K_n(n)", "K^F_n(n)", "eNTK (init)"]
FIXED_COLORS = ["C5", "C6", "C7", "C8", "C9"]


# "The network scales better than K_m" is tested up to n = FAR · m: at n <= 2m it can hardly fail
# (K_m was trained on m of those n samples).
FAR = 8


def fixed_kernels(m_fixed):
    """The kernels of panel (c) and of the scales_better claims: the eNTK at init, then K_m(n)
    and K^F_m(n) for each m of m_fixed."""
    return ["eNTK (init)"] + [f"K{f}_{m}(n)" for m in m_fixed for f in ("", "^F")]


def fig1b_name(n_fit):
    """The curve name of Figure 1B in results.json, e.g. "K^F_m(256)"."""
    return f"K^F_m({n_fit})"


def trained_sizes(n_values, m_values, m_fixed):
    """Every m a network is trained on: n_values ∪ m_values ∪ m_fixed, increasing."""
    return sorted(set(n_values) | set(m_values) | set(m_fixed))


def after_kernel_sizes(m, n_values, m_values, n_fit, m_fixed):
    """(pool ns, fresh ns): the n the after-kernel K_m of the network trained on m is fitted on,
    on the pool (m if m is an n of n_values; every n of n_values if m is in m_fixed) and on the
    fresh samples (the same, and n_fit if m is in m_values). Each list increasing; the kernel is
    computed on its largest n."""
    pool_ns = sorted(({m} if m in n_values else set()) | (set(n_values) if m in m_fixed else set()))
    fresh_ns = sorted(set(pool_ns) | ({n_fit} if m in m_values else set()))
    return pool_ns, fresh_ns


def check(setup, n_values, m_values, n_fit, m_fixed):
    """Problems with this section's parameters (a list of sentences; empty when fine)."""
    problems = checks.sizes("n_values", n_values) + checks.sizes("m_values", m_values)
    problems += [f"n_fit: {n_fit!r} must be an integer >= 1"] if isinstance(n_fit, list) else \
        checks.positive("n_fit", n_fit)
    if not isinstance(m_fixed, list):
        problems.append(f"m_fixed: {m_fixed!r} must be a non-empty list of positive integers")
    else:
        problems += checks.positive("m_fixed", m_fixed) or \
            ([f"m_fixed: {m_fixed!r} must not repeat a value"] if len(set(m_fixed)) != len(m_fixed) else [])
    if problems:
        return problems
    return setup.size_problems(max(trained_sizes(n_values, m_values, m_fixed)), n_fresh=max(max(n_values), n_fit))


@dataclasses.dataclass
class Result(experiments.Findings):
    """outcomes["K^F_m(n_fit)"] runs over [0] + m_values; curves holds Figure 1B as "K^F_m({n_fit})"."""
    setup: object
    n_values: list
    m_values: list
    n_fit: int
    m_fixed: list
    all_m: list           # every m a network was trained on
    train_error: object   # (D, S, len(all_m)) of the networks on their training sets

    def record(self):
        """results.json's "results"."""
        return {"n_values": self.n_values, "m_values": self.m_values, "curves": self.curves,
                "train_error": self.train_error, "underfit": self.underfit,
                "verdicts": {v.claim: v.as_dict() for v in self.verdicts}}

    def markdown(self):
        """The Result paragraph, from this run's numbers."""
        at = {name: c["mean"][-1] for name, c in self.curves.items()}
        fig1b = fig1b_name(self.n_fit)
        return (f"On {self.setup.describe()}, at n = {self.n_values[-1]}: network {at['network']:.3f}, "
                f"K_n(n) {at['K_n(n)']:.3f}, K^F_n(n) {at['K^F_n(n)']:.3f}, eNTK (init) {at['eNTK (init)']:.3f}. "
                f"{fig1b} goes from {self.curves[fig1b]['mean'][0]:.3f} at m = 0 to {at[fig1b]:.3f} at "
                f"m = {self.m_values[-1]}. " + claims.paragraph(self.plain)
                + (f" {self.caveat}." if self.caveat else ""))


def _draw(setup, task, n_values, m_values, n_fit, m_fixed, all_m, n_fresh):
    """Outcomes (S, K, T) of every curve of one data draw, and "train_error" (S, len(all_m))."""
    net, seeds, ridge = setup.net, setup.seeds, setup.ridge
    x_fresh, y_fresh = task.fresh(n_fresh)
    net_wrong, trained = experiments.network_outcomes(net, task, all_m, seeds, setup.recipe)
    nan = np.full((len(seeds), len(n_values), len(task.y_test)), np.nan)
    out = {"network": net_wrong[:, [all_m.index(n) for n in n_values]], "K_n(n)": nan.copy(),
           "K^F_n(n)": nan.copy(), "K^F_m(n_fit)": np.full((len(seeds), 1 + len(m_values), len(task.y_test)), np.nan),
           **{f"K_{m}(n)": nan.copy() for m in m_fixed}, **{f"K^F_{m}(n)": nan.copy() for m in m_fixed}}
    for i, seed in enumerate(seeds):
        out["K^F_m(n_fit)"][i, 0] = experiments.entk_outcomes(net, experiments.init_params(net, seed, task), x_fresh,
                                                              y_fresh, task.x_test, task.y_test, [n_fit], ridge)[0]
        for m in all_m:
            if (seed, m) not in trained:   # diverged: stays NaN
                continue
            p = trained[seed, m].params
            pool_ns, fresh_ns = after_kernel_sizes(m, n_values, m_values, n_fit, m_fixed)
            pool = dict(zip(pool_ns, experiments.entk_outcomes(net, p, task.x, task.y, task.x_test, task.y_test,
                                                               pool_ns, ridge))) if pool_ns else {}
            fresh = dict(zip(fresh_ns, experiments.entk_outcomes(net, p, x_fresh, y_fresh, task.x_test, task.y_test,
                                                                 fresh_ns, ridge)))
            if m in n_values:
                out["K_n(n)"][i, n_values.index(m)], out["K^F_n(n)"][i, n_values.index(m)] = pool[m], fresh[m]
            if m in m_values:
                out["K^F_m(n_fit)"][i, 1 + m_values.index(m)] = fresh[n_fit]
            if m in m_fixed:
                out[f"K_{m}(n)"][i] = [pool[n] for n in n_values]
                out[f"K^F_{m}(n)"][i] = [fresh[n] for n in n_values]
    out["eNTK (init)"] = experiments.entk_init_outcomes(net, task, n_values, seeds, ridge,
                                                        setup.recipe.center)["eNTK (init)"]
    out["train_error"] = experiments.training_fit(trained, seeds, all_m)["train_error"]
    return out


def run(setup, n_values, m_values, n_fit, m_fixed):
    """Train the networks of every (draw, seed, m), compute their after-kernels; return the claims."""
    th = setup.thresholds
    all_m = trained_sizes(n_values, m_values, m_fixed)
    n_fresh = max(max(n_values), n_fit)
    tasks = setup.tasks(max(all_m))
    outcomes = experiments.over_draws(lambda task: _draw(setup, task, n_values, m_values, n_fit, m_fixed, all_m,
                                                         n_fresh), tasks)
    train_error = outcomes.pop("train_error")
    underfit = claims.underfit(train_error, th.underfit_train_error, setup.data_seeds, setup.seeds, all_m, "m")
    fig1b = outcomes.pop("K^F_m(n_fit)")
    curves = {name: experiments.summarize("n", n_values, o) for name, o in outcomes.items()}
    curves[fig1b_name(n_fit)] = experiments.summarize("m", [0] + m_values, fig1b)
    o, unfit = outcomes, claims.unfit_runs(train_error, th.underfit_train_error)
    unfit_at = lambda ms: unfit[:, :, [all_m.index(m) for m in ms]]        # the networks trained on ms
    tracking = lambda k: lambda c: claims.tracks(n_values, o[k], c, o["eNTK (init)"],
                                                 names=(k, "network", "eNTK (init)"), tolerance=th.track_tolerance,
                                                 n_boot=th.n_boot)
    plain = [claims.unless_unfit(tracking(k), o["network"], unfit_at(n_values)) for k in AFTER_KERNELS]
    improving = lambda c: claims.keeps_improving([0] + m_values, c, name=fig1b_name(n_fit), x_name="m",
                                                 fraction=th.improve_fraction, n_boot=th.n_boot)
    at_init = np.zeros(unfit.shape[:2] + (1,), bool)                     # m = 0: the initialization
    plain.append(claims.unless_unfit(improving, fig1b, np.concatenate([at_init, unfit_at(m_values)], axis=2)))
    for k, m in zip(fixed_kernels(m_fixed), [None] + [m for m in m_fixed for _ in ("", "^F")]):
        better = claims.network_scales_better(n_values, o["network"], o[k], unfit_at(n_values), names=("network", k),
                                              thresholds=th)
        plain.append(better if m is None or max(n_values) >= FAR * m else better.inconclusive(
            f"n reaches only {max(n_values) / m:.3g} m; the claim is tested up to n = {FAR} m = {FAR * m}.",
            n_reach=max(n_values) / m))
    verdicts, caveat = claims.with_caveats(plain, *setup.caveats(underfit))
    return Result(setup, list(n_values), list(m_values), n_fit, list(m_fixed), all_m, train_error,
                  outcomes={**outcomes, "K^F_m(n_fit)": fig1b}, curves=curves, underfit=underfit, verdicts=verdicts,
                  plain=plain, caveat=caveat)


def work(tally, setup, n_values, m_values, n_fit, m_fixed):
    """Declare to ``tally`` (an ntk_utils.estimate.Work) the networks and kernels :func:`run`
    computes, with the loops of its ``_draw``."""
    net, seeds, all_m = setup.net, setup.seeds, trained_sizes(n_values, m_values, m_fixed)
    fresh = ("fresh", max(all_m))   # Task.fresh: the samples after the pool of setup.tasks(max(all_m))
    for d in setup.data_seeds:
        draw = tally.draw(d)
        trained = tally.network_outcomes(net, draw, all_m, seeds, setup.recipe)
        for seed in seeds:
            tally.entk_outcomes(net, ("init", seed), draw, [n_fit], fresh)
            for m in all_m:
                pool_ns, fresh_ns = after_kernel_sizes(m, n_values, m_values, n_fit, m_fixed)
                if pool_ns:
                    tally.entk_outcomes(net, trained[seed, m], draw, pool_ns)
                tally.entk_outcomes(net, trained[seed, m], draw, fresh_ns, fresh)
        tally.entk_init_outcomes(net, draw, n_values, seeds)


def _color(name, m_fixed):
    colors = {"network": "C0", "eNTK (init)": "C1", "K_n(n)": "C3", "K^F_n(n)": "C4"}
    colors.update({f"K{f}_{m}(n)": c for m, c in zip(m_fixed, FIXED_COLORS) for f in ("", "^F")})
    return colors.get(name)


def panel_curves(ax, curves, names, m_fixed=()):
    """Panels (a) and (c) of Figure 4 from ``curves`` (Result.curves, or results.json's): the
    curves ``names`` (e.g. PANEL_A, or fixed_kernels(m_fixed) with "network"), test error vs n,
    log-log, mean ± std over runs, each with its least-squares power law; fresh-sample kernels
    (K^F) square. ``m_fixed`` gives the K_m colors."""
    for name in names:
        plotting.scaling_curve(ax, curves[name], name, color=_color(name, list(m_fixed)),
                               marker="s" if "^F" in name else "o")


def panel_1b(ax, curve, n_fit):
    """Figure 1B from the single curve record ``curves[f"K^F_m({n_fit})"]`` (Result.curves' or
    results.json's: "x" = [0] + m_values, "mean", "std"): the test error of the after-kernel
    K^F_m(n_fit) vs m (log m), and at m = 0 the eNTK at initialization on the same n_fit samples
    (dotted line)."""
    m_values = list(curve["x"][1:])
    mean, std = np.asarray(curve["mean"], dtype=float), np.asarray(curve["std"], dtype=float)
    ax.errorbar(m_values, mean[1:], yerr=std[1:], fmt="o-", color="C4", capsize=3, ms=4,
                label=f"after-kernel K^F_m({n_fit})")
    ax.axhline(mean[0], color="C1", ls=":", label=f"m = 0: eNTK (init) on the same {n_fit}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(m_values, [str(m) for m in m_values])
    ax.minorticks_off()
    ax.set_xlabel("samples m the network was trained on")
    ax.set_ylabel(f"test error of K^F_m({n_fit})")


def figure(result, output_dir):
    """Draw Figure 4 into ``output_dir/fig4_after_kernel.png`` ((a) after-kernels track the
    network, (b) K^F_m(n_fit) vs m, (c) fixed kernels) and Figure 1B alone into
    ``output_dir/fig1b_after_kernel.png``; returns both figures."""
    n_fit, m_fixed, title = result.n_fit, result.m_fixed, result.setup.title()
    fig1b = result.curves[fig1b_name(n_fit)]
    fig4, (ax_a, ax_b, ax_c) = plotting.figure(3)
    panel_curves(ax_a, result.curves, PANEL_A, m_fixed)
    ax_a.set_title("(a) after-kernels K_n(n), K^F_n(n)", fontsize=9)
    panel_1b(ax_b, fig1b, n_fit)
    ax_b.set_title(f"(b) K^F_m({n_fit}) vs m", fontsize=9)
    panel_curves(ax_c, result.curves, ["network"] + fixed_kernels(m_fixed), m_fixed)
    ax_c.set_title("(c) fixed kernels vs the network", fontsize=9)
    plotting.finish(fig4, os.path.join(output_dir, "fig4_after_kernel.png"), title)
    fig, (ax,) = plotting.figure()
    panel_1b(ax, fig1b, n_fit)
    plotting.finish(fig, os.path.join(output_dir, "fig1b_after_kernel.png"), title)
    return fig4, fig
