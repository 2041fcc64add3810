# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Kernel dynamics: the eNTK keeps improving during training (Sec. 5, Fig. 1C, Fig. 5)
#
# **Question.** Notebook 4 found that the eNTK at the end of training (the after-kernel) is far
# better than the eNTK at initialization. *When* during training does the kernel improve? A
# common picture (e.g. Fort et al. 2020) is that the kernel moves fast in the first few epochs
# and then settles, after which the network behaves like a fixed (linearized) model. The paper
# finds instead that the kernel keeps improving through most of training.
#
# **Protocol.** Train the network on the full training set (the first `n_train` pool samples,
# notebook 1's recipe) and keep its parameters at times $t$ (steps, log-spaced, plus $t=0$;
# `train.TrainConfig.snapshot_steps`). For each $t$ take the eNTK $K^t$ at those parameters and:
# * **(a)** fit it (ridgeless kernel regression from zero) on that same training set,
#   $K^t_\text{fit}$, and on `n_train` **fresh** samples the network never saw, $K^{F,t}_\text{fit}$
#   (so the kernel's advantage from having seen its own training set is visible); plot both
#   vs $t$ with the network's own test error at time $t$ (Fig. 1C);
# * **(b)** fit it on the first $n$ samples for each $n$: data-scaling curves of $K^t$ for a few
#   $t$, against the network trained on $n$ samples (notebook 1's networks): Fig. 5.
#
# **Claims** (`ntk_utils.claims`, paired bootstrap over data draws, seeds and test examples):
# (a) `keeps_improving` from $t = 0$: the improvement over the second half of the $\log t$ grid
# must be at least `improve_fraction` of the total improvement since initialization (a kernel
# that settles after a few epochs gives ~0); (b) `scales_better`: the network's exponent above
# $K^t$'s.
#
# **Choices we made** (all parameters below): the snapshot grid is `n_snapshots` steps
# log-spaced from `first_snapshot` to the last step, plus $t=0$.

# %%
import dataclasses
import os

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
from IPython.display import Markdown

from ntk_utils import claims, experiments, models, params, plotting, results, scaling, train

_before_parameters = set(globals())

# %% tags=["parameters"]
task = "cifar10-pair"
image_size = 8
n_values = [64, 128, 256, 512, 1024]
n_test = 2000
seeds = [0, 1]
data_seeds = [0]
val_size = 500
arch = "myrtle"
depth = 5
width = 64
parameterization = "standard"
lr = 0.1
momentum = 0.9
batch_size = 128
full_batch = False
epochs = 40
min_steps = 400
schedule = "cosine"
loss = "mse"
early_stopping = False
center = False
ridge = 0.0
n_train = 1024
n_snapshots = 6
first_snapshot = 4
snapshot_steps = []
t_scaling = [0, 2, 4, -1]
n_boot = 1000
alpha_margin = 0.02
improve_fraction = 0.25
underfit_train_error = 0.02
output_dir = "outputs/notebooks/05_kernel_dynamics"

# %% [markdown]
# `t_scaling` holds indices into the grid $[0, t_1, \dots, t_K]$ (0 = init, -1 = the last
# step): the times that get a scaling curve in panel (b). A non-empty `snapshot_steps` (steps
# $t > 0$) replaces the log-spaced grid.

# %%
parameters = params.check("05_kernel_dynamics", results.collect_parameters(globals(), _before_parameters))
globals().update(parameters)
os.makedirs(output_dir, exist_ok=True)
net = models.arch_from_config(arch, width, depth, parameterization)
config = train.TrainConfig.from_parameters(parameters)
n_values = sorted(n_values)
tasks = [experiments.load(task, max(n_values + [n_train]), n_test, image_size, d, val_size) for d in data_seeds]
total_steps = config.num_steps(n_train)
steps = sorted(set(snapshot_steps)) if snapshot_steps else \
    sorted({int(round(t)) for t in np.geomspace(first_snapshot, total_steps, n_snapshots)})
if steps[0] < 1 or steps[-1] > total_steps:
    raise ValueError(f"snapshot steps must lie in 1..{total_steps}, got {steps}")
t_grid = [0] + steps
epochs_at = [t * config.batch(n_train) / n_train for t in t_grid]
if not all(-len(t_grid) <= i < len(t_grid) for i in t_scaling):
    raise ValueError(f"t_scaling {t_scaling} must hold indices into the {len(t_grid)} times {t_grid}")
t_scaling = sorted({t_grid[i] for i in t_scaling})
ns_kernel = sorted(set(n_values) | {n_train})
print(net.describe())
print(f"task {task}: {len(tasks)} data draws; training on n_train={n_train} for {total_steps} steps; "
      f"snapshots at t = {t_grid} (epochs {[round(e, 2) for e in epochs_at]})")

# %% [markdown]
# ## The training run with snapshots, and the eNTK at every snapshot
# $K^t$ is computed once on the training set (and test vs training set); $K^t_\text{fit}$ and
# the scaling curve of $K^t$ are both read off it, on nested leading blocks.

# %%
def dynamics(data):
    """Outcomes of one data draw: over t (S, len(t_grid), T) and over n (S, len(n_values), T)."""
    x_fresh, y_fresh = data.fresh(n_train)
    shape = (len(seeds), len(t_grid), len(data.y_test))
    out = {"K^t_fit": np.full(shape, np.nan), "K^F,t_fit": np.full(shape, np.nan), "network(t)": np.full(shape, np.nan),
           **{f"K^t, t={t}": np.full((len(seeds), len(n_values), len(data.y_test)), np.nan) for t in t_scaling}}
    for i, seed in enumerate(seeds):
        try:
            run = train.train(net, data.x[:n_train], data.y[:n_train],
                              dataclasses.replace(config, seed=seed, snapshot_steps=tuple(t_grid)), val=data.val)
        except train.TrainingDiverged as e:   # this seed's rows stay NaN (missing) in every curve over t
            print(f"draw {data.data_seed} seed {seed}: {e}")
            continue
        for j, t in enumerate(t_grid):
            p = run.snapshots[t]
            out["network(t)"][i, j] = experiments.wrong(run.outputs(net, data.x_test, p), data.y_test)
            pool = dict(zip(ns_kernel, experiments.entk_outcomes(net, p, data.x, data.y, data.x_test, data.y_test,
                                                                 ns_kernel, ridge)))
            out["K^t_fit"][i, j] = pool[n_train]
            out["K^F,t_fit"][i, j] = experiments.entk_outcomes(net, p, x_fresh, y_fresh, data.x_test, data.y_test,
                                                               [n_train], ridge)[0]
            if t in t_scaling:
                out[f"K^t, t={t}"][i] = [pool[n] for n in n_values]
    wrong, trained = experiments.network_outcomes(net, data, n_values, seeds, config)
    out["network"] = wrong
    out["train_error"] = experiments.training_fit(trained, seeds, n_values)["train_error"]
    return out


outcomes = experiments.over_draws(dynamics, tasks)
train_error = outcomes.pop("train_error")
underfit = claims.underfit(train_error, underfit_train_error, data_seeds, seeds, n_values)
over_t = ("K^t_fit", "K^F,t_fit", "network(t)")
curves = {name: experiments.summarize("t" if name in over_t else "n", t_grid if name in over_t else n_values, o)
          for name, o in outcomes.items()}
print(f"{'t':>5} {'epoch':>6}  K^t_fit  K^F,t_fit  network(t)")
for j, t in enumerate(t_grid):
    print(f"{t:>5} {epochs_at[j]:>6.2f}  " + "  ".join(f"{curves[k]['mean'][j]:.3f}   " for k in over_t))

# %% [markdown]
# ## Figure 5 (two panels) and Figure 1C on its own
# Points: mean over draws and seeds (±1 std across them). $t = 0$ is drawn as dotted lines.

# %%
def draw_fig1c(ax):
    x = np.array(epochs_at[1:])
    for name, label, fmt, color in (("K^t_fit", f"eNTK K^t fitted on its {n_train} train samples", "o-", "C3"),
                                    ("K^F,t_fit", f"K^t fitted on {n_train} fresh samples", "^-", "C4"),
                                    ("network(t)", "network at time t", "s--", "C0")):
        c = curves[name]
        ax.errorbar(x, c["mean"][1:], yerr=c["std"][1:], fmt=fmt, color=color, capsize=3, ms=4, label=label)
        ax.axhline(c["mean"][0], color=color, ls=":", lw=1)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training time t (epochs); dotted: t = 0")
    ax.set_ylabel("test error")


fig, (ax_a, ax_b) = plotting.figure(2)
draw_fig1c(ax_a)
ax_a.set_title("(a) K^t fitted on the train set / on fresh samples", fontsize=9)
cmap = plt.get_cmap("viridis")
for k, t in enumerate(t_scaling):
    runs = curves[f"K^t, t={t}"]["runs"]
    plotting.scaling_curve(ax_b, n_values, runs, f"K^t, t={t}", scaling.fit_power_law(n_values, runs, n_boot=0),
                           color=cmap(k / max(1, len(t_scaling) - 1) * 0.9))
plotting.scaling_curve(ax_b, n_values, curves["network"]["runs"], "network",
                       scaling.fit_power_law(n_values, curves["network"]["runs"], n_boot=0), color="C0", marker="s")
ax_b.set_title("(b) data scaling of K^t", fontsize=9)
title = f"{task}, {image_size}px, {net.name} width {width}, n_train={n_train}, {len(data_seeds)}x{len(seeds)} runs"
plotting.finish(fig, os.path.join(output_dir, "fig5_kernel_dynamics.png"), title)
fig, (ax,) = plotting.figure()
draw_fig1c(ax)
plotting.finish(fig, os.path.join(output_dir, "fig1c_kernel_dynamics.png"), title)

# %% [markdown]
# ## The claims, from the claims module's rules

# %%
verdicts = [claims.keeps_improving(t_grid, outcomes[k], name=k, x_name="t", fraction=improve_fraction,
                                   n_boot=n_boot) for k in ("K^t_fit", "K^F,t_fit")]
verdicts += [claims.scales_better(n_values, outcomes["network"], outcomes[f"K^t, t={t}"],
                                  names=("network", f"K^t, t={t}"), margin=alpha_margin, n_boot=n_boot)
             for t in t_scaling]
caveat = ". ".join(filter(None, [underfit, claims.few_runs(data_seeds, seeds)]))
plain = verdicts   # the Result paragraph states the caveats once
verdicts = [v.with_caveat(caveat) if caveat else v for v in verdicts]
Markdown(claims.table(verdicts))

# %% [markdown]
# ## Result

# %%
fit_t = curves["K^t_fit"]["mean"]
Markdown(
    f"On {task} at {image_size}px ({len(data_seeds)} data draws x {len(seeds)} seeds, {n_test} test images), "
    f"the eNTK fitted on the {n_train} training samples errs on {fit_t[0]:.3f} of test images at t = 0 and "
    f"{fit_t[-1]:.3f} at t = {t_grid[-1]} (on fresh samples: {curves['K^F,t_fit']['mean'][0]:.3f} -> "
    f"{curves['K^F,t_fit']['mean'][-1]:.3f}); the network itself ends at {curves['network(t)']['mean'][-1]:.3f}. "
    + " ".join(f"**{v.claim}: {v.status}.** {v.text}" for v in plain) + (f" {caveat}." if caveat else ""))

# %%
results.save(output_dir, parameters, {"t_grid": t_grid, "epochs": epochs_at, "n_values": n_values, "curves": curves,
                                      "train_error": train_error, "underfit": underfit,
                                      "verdicts": {v.claim: v.as_dict() for v in verdicts}})
np.savez_compressed(os.path.join(output_dir, "outcomes.npz"), **{k: v.astype(np.float16) for k, v in outcomes.items()})
