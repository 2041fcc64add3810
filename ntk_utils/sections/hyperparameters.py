"""Section 3, Figure 3: the network's better scaling is not an artifact of one recipe.

The measurement of notebook 01 (ntk_utils.sections.data_scaling) with the network trained under
one change of the setup's recipe at a time (:func:`variants_table`):

    lr_high         the learning rate ``lr_high`` instead of the recipe's lr
    lr_low          the learning rate ``lr_low``
    gd              full-batch gradient descent (momentum kept)
    no_momentum     plain SGD (momentum 0) at its own rate ``no_momentum_lr``
    early_stopping  the best-validation-loss network instead of the final one

Each variant's recipe is ``dataclasses.replace(setup.recipe, **change)``, so a variant that
changes nothing the recipe already has reuses the cached networks. Per data draw and seed,
per-example outcomes ``wrong`` (D, S, K, T) (ntk_utils.experiments) of

    eNTK (init)          ridgeless kernel regression with Θ_0, the network's eNTK at initialization
    infinite NTK (SP)    kernel regression with Θ_∞, the infinite-width limit of the network in its
                         own parameterization (Arch.limit; "(NTK param.)" for an NTK-parameterized one)
    <variant>: network   the Myrtle-CNN trained with the variant's recipe

(the kernels do not depend on the optimizer: computed once, drawn on every panel).

Claims (ntk_utils.claims.scales_better, paired bootstrap over draws, seeds and test examples):
under every variant, the network's exponent α in err(n) ≈ C n^-α exceeds each kernel's; each
verdict carries its own variant's underfit caveat.
"""
import dataclasses
import os

import numpy as np

from ntk_utils import checks, claims, experiments, plotting

# The kernels a variant's network may be compared with: its eNTK at initialization and the
# infinite-width limit of its parameterization (kernel_names).
KERNELS = ("eNTK (init)", *experiments.LIMIT_NAMES.values())


def kernel_names(net):
    """The kernels the networks are compared with: the eNTK at initialization and the
    infinite-width limit of the network's own parameterization."""
    return "eNTK (init)", experiments.limit_name(net)
# Figure 3's panels: (title, the variants it draws); a panel none of whose variants ran is left out.
PANELS = [("(a) learning rate", ["lr_high", "lr_low"]), ("(b) full-batch GD", ["gd"]),
          ("(c) no momentum", ["no_momentum"]), ("(d) early stopping", ["early_stopping"])]


def variants_table(lr_high, lr_low, no_momentum_lr):
    """{variant: (description, the change of the recipe as TrainConfig fields)}: each variant
    changes one thing of the setup's recipe."""
    return {
        "lr_high": (f"lr {lr_high}", dict(lr=lr_high)),
        "lr_low": (f"lr {lr_low}", dict(lr=lr_low)),
        "gd": ("full-batch GD", dict(full_batch=True)),
        "no_momentum": (f"SGD, no momentum, lr {no_momentum_lr}", dict(momentum=0.0, lr=no_momentum_lr)),
        "early_stopping": ("early stopping on validation loss", dict(early_stopping=True)),
    }


def variant_recipes(recipe, variants, lr_high, lr_low, no_momentum_lr):
    """{variant: ``recipe`` (the setup's) with that variant's change} for each of ``variants``."""
    table = variants_table(lr_high, lr_low, no_momentum_lr)
    return {name: dataclasses.replace(recipe, **table[name][1]) for name in variants}


def network_name(variant):
    """The curve (and outcome) name of a variant's networks, e.g. "gd: network"."""
    return f"{variant}: network"


def check(setup, n_values, lr_high, lr_low, no_momentum_lr, variants):
    """Problems with this section's parameters (a list of sentences; empty when fine)."""
    rates = {"lr_high": lr_high, "lr_low": lr_low, "no_momentum_lr": no_momentum_lr}
    problems = [f"{name}: {v!r} must be a number > 0" for name, v in rates.items()
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0]
    known = list(variants_table(1.0, 1.0, 1.0))
    if not (isinstance(variants, list) and variants and all(isinstance(v, str) for v in variants)):
        problems.append(f"variants: {variants!r} must be a non-empty list of names from {known}")
    else:
        if unknown := [v for v in variants if v not in known]:
            problems.append(f"variants: unknown {unknown}; choose from {known}")
        if len(set(variants)) != len(variants):
            problems.append(f"variants: {variants!r} must not repeat a name")
        if "early_stopping" in variants and setup.val_size == 0:
            problems.append("variants: early_stopping needs a validation set (val_size > 0)")
        if not problems:
            table = variants_table(lr_high, lr_low, no_momentum_lr)
            for name in variants:
                try:
                    dataclasses.replace(setup.recipe, **table[name][1])
                except ValueError as e:
                    problems.append(f"variant {name}: {e}")
    return problems + (checks.sizes("n_values", n_values) or setup.size_problems(max(n_values)))


@dataclasses.dataclass
class Result:
    setup: object
    n_values: list
    variants: list        # the variants run, in order
    descriptions: dict    # variant -> description, e.g. {"lr_high": "lr 0.2"}
    recipes: dict         # variant -> its train.TrainConfig
    outcomes: dict        # kernel_names(), "<variant>: network" -> wrong (D, S, K, T)
    curves: dict          # the same names -> experiments.summarize record
    underfit: dict        # variant -> caveat naming its underfit / diverged networks, or ""
    verdicts: list        # claims.Verdict per (variant, kernel), that variant's caveats appended
    plain: list           # the same without caveats (the Result paragraph states them once)

    @property
    def limit(self):
        """The curve name of the networks' infinite-width limit."""
        return experiments.limit_name(self.setup.net)

    def record(self):
        """results.json's "results"."""
        return {"n_values": self.n_values, "curves": self.curves,
                "underfit": " ".join(f"{k}: {v}" for k, v in self.underfit.items() if v),
                "variants": dict(self.descriptions), "verdicts": {v.claim: v.as_dict() for v in self.verdicts}}

    def markdown(self):
        """The Result paragraph, from this run's numbers."""
        n, at = self.n_values[-1], {name: c["mean"][-1] for name, c in self.curves.items()}
        networks = ", ".join(f"{at[network_name(v)]:.3f} ({self.descriptions[v]})" for v in self.variants)
        caveats = [f"{v}: {u}" for v, u in self.underfit.items() if u]
        few = claims.few_runs(self.setup.data_seeds, self.setup.seeds)
        text = (f"On {self.setup.describe()}, at n = {n} the eNTK at initialization errs on {at['eNTK (init)']:.3f} "
                f"of test images and the {self.limit} on {at[self.limit]:.3f}; the network errs on {networks}. "
                + claims.paragraph(self.plain))
        if caveats or few:
            return text + " " + " ".join(f"{c}." for c in caveats + ([few] if few else []))
        return text + (f" Every network fit its training set (train error at most "
                       f"{self.setup.thresholds.underfit_train_error}).")


def run(setup, n_values, lr_high, lr_low, no_momentum_lr, variants):
    """Fit the kernels once and train the networks of every variant, (draw, seed, n); return the claims."""
    net, th = setup.net, setup.thresholds
    table = variants_table(lr_high, lr_low, no_momentum_lr)
    tasks = setup.tasks(max(n_values))
    outcomes = {"eNTK (init)": experiments.over_draws(lambda task: experiments.entk_init_outcomes(
                    net, task, n_values, setup.seeds, setup.ridge, setup.recipe.center)["eNTK (init)"], tasks),
                experiments.limit_name(net): experiments.over_draws(
                    lambda task: experiments.infinite_outcomes(net, task, n_values, setup.ridge), tasks)}
    recipes, underfit, unfit = variant_recipes(setup.recipe, variants, lr_high, lr_low, no_momentum_lr), {}, {}
    for name in variants:
        print(f"{name}: {table[name][0]} -> {recipes[name]}")
        wrong, errors = [], []
        for task in tasks:
            w, trained = experiments.network_outcomes(net, task, n_values, setup.seeds, recipes[name])
            wrong.append(w)
            errors.append(experiments.training_fit(trained, setup.seeds, n_values)["train_error"])
        outcomes[network_name(name)] = np.stack(wrong)
        underfit[name] = claims.underfit(np.stack(errors), th.underfit_train_error, setup.data_seeds, setup.seeds,
                                         n_values)
        unfit[name] = claims.unfit_runs(np.stack(errors), th.underfit_train_error)
    curves = {name: experiments.summarize("n", n_values, o) for name, o in outcomes.items()}
    plain, verdicts = [], []
    for name in variants:
        ours = [claims.network_scales_better(n_values, outcomes[network_name(name)], outcomes[kernel], unfit[name],
                                             names=(network_name(name), kernel), thresholds=th)
                for kernel in kernel_names(net)]
        plain += ours
        verdicts += claims.with_caveats(ours, *setup.caveats(underfit[name]))[0]
    return Result(setup, list(n_values), list(variants), {v: table[v][0] for v in variants}, recipes, outcomes,
                  curves, underfit, verdicts, plain)


def work(tally, setup, n_values, lr_high, lr_low, no_momentum_lr, variants):
    """Declare to ``tally`` (an ntk_utils.estimate.Work) the networks and kernels :func:`run`
    computes, with its measurements per data draw."""
    recipes = variant_recipes(setup.recipe, variants, lr_high, lr_low, no_momentum_lr)
    for d in setup.data_seeds:
        draw = tally.draw(d)
        tally.entk_init_outcomes(setup.net, draw, n_values, setup.seeds)
        tally.infinite_outcomes(setup.net, draw, n_values)
        for name in variants:
            tally.network_outcomes(setup.net, draw, n_values, setup.seeds, recipes[name])


def panels(variants):
    """Figure 3's panels that hold a variant of ``variants``: [(title, [variant, ...])]."""
    chosen = [(title, [v for v in members if v in variants]) for title, members in PANELS]
    return [(title, members) for title, members in chosen if members]


def panel(ax, curves, members, descriptions):
    """One panel of Figure 3 from ``curves`` (Result.curves, or results.json's): the networks of
    the variants ``members`` (descriptions: variant -> words, results.json's "variants") and the
    two kernels, test error vs n, log-log, mean ± std over runs, each with its least-squares
    power law. A variant whose every run diverged at some n is named in the legend, not drawn."""
    for k, name in enumerate(members):
        c = curves[network_name(name)]
        if np.isfinite(np.asarray(c["runs"], dtype=float)).any(axis=0).all():   # diverged runs (NaN) left out
            plotting.scaling_curve(ax, c, f"network, {descriptions[name]}", color=["C0", "C3"][k], marker="os"[k])
        else:
            ax.plot([], [], " ", label=f"network, {descriptions[name]}: diverged")
    for name in KERNELS:
        if name in curves:
            plotting.scaling_curve(ax, curves[name], name)


def figure(result, output_dir):
    """Draw Figure 3 into ``output_dir/fig3_hyperparameters.png``; returns the figure."""
    chosen = panels(result.variants)
    fig, axes = plotting.figure(len(chosen))
    for ax, (title, members) in zip(axes, chosen):
        panel(ax, result.curves, members, result.descriptions)
        ax.set_title(title, fontsize=9)
    return plotting.finish(fig, os.path.join(output_dir, "fig3_hyperparameters.png"), result.setup.title())
