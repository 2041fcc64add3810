"""Section 3, Figure 1A: the trained network against its NTKs, test error against n.

For nested training sets of size n (the first n of each data draw's pool), per data draw and
seed, four predictors give per-example outcomes ``wrong`` (D, S, K, T) (ntk_utils.experiments):

    network              the Myrtle-CNN trained with the setup's recipe
    eNTK (init)          ridgeless kernel regression with Θ_0, the network's eNTK at initialization:
                         f(x) = Θ_0(x, X) Θ_0(X, X)^-1 y
    linearized network   the same kernel around the initial function f_0:
                         f(x) = f_0(x) + Θ_0(x, X) Θ_0(X, X)^-1 (y - f_0(X))
    infinite NTK (SP)    kernel regression with Θ_∞, the infinite-width limit of the network it
                         trains (Arch.limit; the headline comparison): for a standard-parameterized
                         network the standard limit, with its fan-in weights and bias terms
    infinite NTK (NTK param.)   the same architecture's NTK-parameterization limit, the textbook
                         kernel (also drawn for a standard-parameterized network)

Claims (ntk_utils.claims.scales_better, paired bootstrap over draws, seeds and test examples):
the network's exponent α in err(n) ≈ C n^-α exceeds each kernel's. ``f0_effect`` is the same
comparison between the linearized network and the eNTK from zero: how much f_0 alone explains.
"""
import dataclasses
import os

import numpy as np

from ntk_utils import checks, claims, experiments, plotting


def limits(net):
    """The parameterizations whose infinite-width limit the network is compared with: its own
    (the headline) and, when that is another, the NTK parameterization (the textbook kernel)."""
    return list(dict.fromkeys([net.parameterization, "ntk"]))


def kernel_names(net):
    """The kernels the network is compared with: its eNTK at initialization, the linearized
    network and the infinite-width limits of :func:`limits`."""
    return ("eNTK (init)", "linearized network", *(experiments.limit_name(net, p) for p in limits(net)))


def check(setup, n_values):
    """Problems with this section's parameters (a list of sentences; empty when fine)."""
    return checks.sizes("n_values", n_values) or setup.size_problems(max(n_values))


@dataclasses.dataclass
class Result(experiments.Findings):
    setup: object
    n_values: list
    training_fit: dict    # {"train_loss", "train_error"}: (D, S, K) of the networks
    f0_effect: object     # claims.Verdict: linearized network vs eNTK (init)
    f0_share: object      # the f0 effect's share of the network's advantage over the eNTK, or None
    limit_choice: dict    # limit_choice(): Δα over each limit, the share the choice of limit explains

    def record(self):
        """results.json's "results"."""
        return {"n_values": self.n_values, "curves": self.curves, "training_fit": self.training_fit,
                "underfit": self.underfit, "f0_share_of_entk_gap": self.f0_share,
                "f0_effect": self.f0_effect.as_dict(), "limit_choice": self.limit_choice,
                "verdicts": {v.claim: v.as_dict() for v in self.verdicts}}

    def markdown(self):
        """The Result paragraph, from this run's numbers."""
        at = {name: c["mean"][-1] for name, c in self.curves.items()}
        share = (f" The linearized network's exponent gain over the eNTK from zero is {100 * self.f0_share:.0f}% of "
                 f"the network's exponent advantage over that eNTK ({self.f0_effect.status} that f0 steepens the "
                 "slope)." if self.f0_share is not None else
                 " The network has no exponent advantage over its eNTK here for f0 to explain.")
        fit = f" {self.caveat}." if self.caveat else \
            f" Every network fit its training set (train error at most {self.setup.thresholds.underfit_train_error})."
        lim = self.limit_choice
        limits_at = " and ".join(f"the {name} on {at[name]:.3f}" for name in lim["delta"])
        choice = "" if lim["own"] == lim["textbook"] else (
            f" **Which limit:** the network's exponent advantage is {lim['delta'][lim['own']]:+.3f} over its own "
            f"limit ({lim['own']}) and {lim['delta'][lim['textbook']]:+.3f} over the {lim['textbook']}"
            + (f": the choice of limit accounts for {100 * lim['share']:.0f}% of the latter."
               if lim["share"] is not None
               else "; the latter is not clearly above 0, so no share of it is attributed to the choice."))
        return (f"On {self.setup.describe()}, at n = {self.n_values[-1]} the network errs on {at['network']:.3f} of "
                f"test images, the eNTK at initialization on {at['eNTK (init)']:.3f}, the linearized network on "
                f"{at['linearized network']:.3f}, {limits_at}. "
                + claims.paragraph(self.plain) + f" **What f0 does:** {self.f0_effect.text}" + share + choice + fit)


def limit_choice(net, plain):
    """{"delta": {limit: Δα of the network over it}, "own", "textbook", "share"}: the network's
    exponent advantage over each limit of :func:`limits` (from ``plain``, the verdicts in the
    order of :func:`kernel_names`), and the share of its advantage over the NTK-parameterization
    limit that comparing with its own limit takes away, (Δα_ntk - Δα_own) / Δα_ntk (None when the
    network is NTK-parameterized or its advantage over that limit is not clear: the interval of
    Δα_ntk must lie above 0 for a share of it to mean anything)."""
    names = [experiments.limit_name(net, p) for p in limits(net)]
    delta = {name: v.numbers.get("delta") for name, v in zip(names, plain[2:])}
    own, textbook = names[0], names[-1]
    clear = (plain[-1].numbers.get("delta_low") or 0) > 0
    share = None
    if own != textbook and delta[own] is not None and delta[textbook] is not None and clear:
        share = (delta[textbook] - delta[own]) / delta[textbook]
    return {"delta": delta, "own": own, "textbook": textbook, "share": share}


def run(setup, n_values):
    """Train the networks and fit the kernels of every (draw, seed, n); return the claims."""
    net, th = setup.net, setup.thresholds
    tasks = setup.tasks(max(n_values))
    outcomes, fits = {"network": []}, []
    for task in tasks:
        wrong, trained = experiments.network_outcomes(net, task, n_values, setup.seeds, setup.recipe)
        outcomes["network"].append(wrong)
        fits.append(experiments.training_fit(trained, setup.seeds, n_values))
        for name, o in experiments.entk_init_outcomes(net, task, n_values, setup.seeds, setup.ridge,
                                                      setup.recipe.center).items():
            outcomes.setdefault(name, []).append(o)
        for p in limits(net):
            outcomes.setdefault(experiments.limit_name(net, p), []).append(
                experiments.infinite_outcomes(net, task, n_values, setup.ridge, parameterization=p))
    outcomes = {name: np.stack(o) for name, o in outcomes.items()}
    fit = {k: np.stack([f[k] for f in fits]) for k in fits[0]}
    underfit = claims.underfit(fit["train_error"], th.underfit_train_error, setup.data_seeds, setup.seeds, n_values)
    unfit = claims.unfit_runs(fit["train_error"], th.underfit_train_error)
    plain = [claims.network_scales_better(n_values, outcomes["network"], outcomes[k], unfit, names=("network", k),
                                          thresholds=th) for k in kernel_names(net)]
    verdicts, caveat = claims.with_caveats(plain, *setup.caveats(underfit))
    f0_effect = claims.scales_better(n_values, outcomes["linearized network"], outcomes["eNTK (init)"],
                                     names=("linearized network", "eNTK (init)"), **th.exponent_rule())
    advantage, gain = plain[0].numbers.get("delta"), f0_effect.numbers.get("delta")
    share = gain / advantage if advantage and gain is not None and advantage > 0 else None
    curves = {name: experiments.summarize("n", n_values, o) for name, o in outcomes.items()}
    return Result(setup, list(n_values), fit, f0_effect, share, limit_choice(net, plain), outcomes=outcomes,
                  curves=curves, underfit=underfit, verdicts=verdicts, plain=plain, caveat=caveat)


def work(tally, setup, n_values):
    """Declare to ``tally`` (an ntk_utils.estimate.Work) the networks and kernels :func:`run`
    computes, with its measurements per data draw."""
    for d in setup.data_seeds:
        draw = tally.draw(d)
        tally.network_outcomes(setup.net, draw, n_values, setup.seeds, setup.recipe)
        tally.entk_init_outcomes(setup.net, draw, n_values, setup.seeds)
        for p in limits(setup.net):
            tally.infinite_outcomes(setup.net, draw, n_values, parameterization=p)


def panel(ax, curves):
    """Figure 1A from ``curves`` (Result.curves, or results.json's): test error vs n, log-log,
    mean ± std over runs, each with its least-squares power law."""
    for name, c in curves.items():
        plotting.scaling_curve(ax, c, name)


def figure(result, output_dir):
    """Draw Figure 1A into ``output_dir/fig1a_data_scaling.png``; returns the figure."""
    fig, (ax,) = plotting.figure()
    panel(ax, result.curves)
    return plotting.finish(fig, os.path.join(output_dir, "fig1a_data_scaling.png"), result.setup.title())
