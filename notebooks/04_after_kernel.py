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
# # 4. The after-kernel: the eNTK at the end of training (Sec. 4, Fig. 1B, Fig. 4)
#
# **Question.** Section 1 found that the eNTK at initialization scales worse with $n$ than the
# network. Training changes the kernel: does the eNTK *after* training explain the network?
# The paper separates two things the after-kernel could carry: what the network learned about
# its $m$ training samples, and what it learned about the task.
#
# **Protocol.** Train the network on $m$ samples (the same networks as notebook 1: same recipe,
# validation set and pools), take its eNTK at the end of training, $K_m$, and use it for
# ridgeless kernel regression (from zero) on $n$ samples:
# * $K_m(n)$: the first $n$ samples of the training pool (for $n \le m$, samples the network
#   was trained on);
# * $K^F_m(n)$: $n$ **fresh** samples, disjoint from the network's training and validation sets
#   (the same fresh samples for every $m$ of a data draw; `Task.fresh`).
#
# Three panels:
# * **(a)** $K_n(n)$ and $K^F_n(n)$ vs $n$, with the network trained on $n$: the paper finds
#   both after-kernels track the network's test error closely.
# * **(b)** $K^F_m(n_\text{fit})$ vs $m$ at a fixed number $n_\text{fit}$ of fresh samples (Fig. 1B;
#   paper: $n_\text{fit}=500$, $m$ = 1K..1024K), from $m = 0$ (the eNTK at initialization): the
#   kernel keeps improving as the network that produced it saw more data.
# * **(c)** data scaling of fixed kernels: the eNTK at init and the after-kernels $K_{m}$ for
#   $m$ in `m_fixed` (paper: 16K, 32K), fitted on the first $n$ pool samples and on $n$ fresh
#   samples, vs the network: the network has the best exponent.
#
# **Claims** (`ntk_utils.claims`, paired bootstrap over data draws, seeds and test examples):
# (a) `tracks`: the mean |log(err_K / err_network)| over $n$ is below log(`track_tolerance`)
# and below the eNTK-at-init's; (b) `keeps_improving`: from $m=0$, with the improvement over
# the second half of the $\log m$ grid at least `improve_fraction` of the total; (c)
# `scales_better` on the exponent difference.
#
# **Choices we made** (all parameters below): $m$ ranges over the same grid as $n$ by default,
# $n_\text{fit}$ is 256 on the CPU; the after-kernel is taken at the returned network (the final
# one, as early stopping is off by default).

# %%
import os

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
m_values = [64, 128, 256, 512, 1024]
n_fit = 256
m_fixed = [256, 512]
n_boot = 1000
alpha_margin = 0.02
track_tolerance = 1.15
improve_fraction = 0.25
underfit_train_error = 0.02
output_dir = "outputs/notebooks/04_after_kernel"

# %%
parameters = params.check("04_after_kernel", results.collect_parameters(globals(), _before_parameters))
globals().update(parameters)
os.makedirs(output_dir, exist_ok=True)
net = models.arch_from_config(arch, width, depth, parameterization)
config = train.TrainConfig.from_parameters(parameters)
all_m = sorted(set(n_values) | set(m_values) | set(m_fixed))   # every network we train
n_fresh = max(max(n_values), n_fit)
tasks = [experiments.load(task, max(all_m), n_test, image_size, d, val_size) for d in data_seeds]
print(net.describe())
print(f"task {task}: {len(tasks)} data draws, pool {tasks[0].x.shape}, {n_fresh} fresh samples, "
      f"test {tasks[0].x_test.shape}")

# %% [markdown]
# ## Networks, and the eNTK of each at the end of training
# One network per (draw, seed, $m$); from each we compute at most two kernels, on the pool and
# on the fresh samples, each on its largest needed set (smaller $n$ are leading blocks).

# %%
def after_kernels(data):
    """Outcomes (S, K, T) of every curve of one data draw."""
    x_fresh, y_fresh = data.fresh(n_fresh)
    net_wrong, trained = experiments.network_outcomes(net, data, all_m, seeds, config)
    nan = np.full((len(seeds), len(n_values), len(data.y_test)), np.nan)
    out = {"network": net_wrong[:, [all_m.index(n) for n in n_values]], "K_n(n)": nan.copy(),
           "K^F_n(n)": nan.copy(), "K^F_m(n_fit)": np.full((len(seeds), 1 + len(m_values), len(data.y_test)), np.nan),
           **{f"K_{m}(n)": nan.copy() for m in m_fixed}, **{f"K^F_{m}(n)": nan.copy() for m in m_fixed}}
    for i, seed in enumerate(seeds):
        out["K^F_m(n_fit)"][i, 0] = experiments.entk_outcomes(net, experiments.init_params(net, seed, data), x_fresh,
                                                              y_fresh, data.x_test, data.y_test, [n_fit], ridge)[0]
        for m in all_m:
            if (seed, m) not in trained:   # diverged: stays NaN
                continue
            p = trained[seed, m].params
            pool_ns = sorted(({m} if m in n_values else set()) | (set(n_values) if m in m_fixed else set()))
            fresh_ns = sorted(set(pool_ns) | ({n_fit} if m in m_values else set()))
            pool = dict(zip(pool_ns, experiments.entk_outcomes(net, p, data.x, data.y, data.x_test, data.y_test,
                                                               pool_ns, ridge))) if pool_ns else {}
            fresh = dict(zip(fresh_ns, experiments.entk_outcomes(net, p, x_fresh, y_fresh, data.x_test, data.y_test,
                                                                 fresh_ns, ridge)))
            if m in n_values:
                out["K_n(n)"][i, n_values.index(m)], out["K^F_n(n)"][i, n_values.index(m)] = pool[m], fresh[m]
            if m in m_values:
                out["K^F_m(n_fit)"][i, 1 + m_values.index(m)] = fresh[n_fit]
            if m in m_fixed:
                out[f"K_{m}(n)"][i] = [pool[n] for n in n_values]
                out[f"K^F_{m}(n)"][i] = [fresh[n] for n in n_values]
    out["eNTK (init)"] = experiments.entk_init_outcomes(net, data, n_values, seeds, ridge)["eNTK (init)"]
    out["train_error"] = experiments.training_fit(trained, seeds, all_m)["train_error"]
    return out


outcomes = experiments.over_draws(after_kernels, tasks)
train_error = outcomes.pop("train_error")
underfit = claims.underfit(train_error, underfit_train_error, data_seeds, seeds, all_m, "m")
fig1b = outcomes.pop("K^F_m(n_fit)")
curves = {name: experiments.summarize("n", n_values, o) for name, o in outcomes.items()}
curves[f"K^F_m({n_fit})"] = experiments.summarize("m", [0] + m_values, fig1b)
for name, c in curves.items():
    print(f"{name:>14}: " + "  ".join(f"{m:.3f}" for m in c["mean"]))

# %% [markdown]
# ## Figure 4: (a) after-kernels track the network, (b) K^F_m(n_fit) vs m, (c) fixed kernels
# Points: mean over draws and seeds (±1 std across them); dashed: least-squares power laws.

# %%
colors = {"network": "C0", "eNTK (init)": "C1", "K_n(n)": "C3", "K^F_n(n)": "C4"}
colors.update({f"K_{m}(n)": c for m, c in zip(m_fixed, ["C5", "C6", "C7", "C8", "C9"])})
colors.update({f"K^F_{m}(n)": c for m, c in zip(m_fixed, ["C5", "C6", "C7", "C8", "C9"])})


def draw(ax, names):
    for name in names:
        runs = curves[name]["runs"]
        plotting.scaling_curve(ax, n_values, runs, name, scaling.fit_power_law(n_values, runs, n_boot=0),
                               color=colors[name], marker="s" if "^F" in name else "o")


def draw_fig1b(ax):
    c = curves[f"K^F_m({n_fit})"]
    ax.errorbar(m_values, c["mean"][1:], yerr=c["std"][1:], fmt="o-", color="C4", capsize=3, ms=4,
                label=f"after-kernel K^F_m({n_fit})")
    ax.axhline(c["mean"][0], color="C1", ls=":", label=f"m = 0: eNTK (init) on the same {n_fit}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(m_values, [str(m) for m in m_values])
    ax.minorticks_off()
    ax.set_xlabel("samples m the network was trained on")
    ax.set_ylabel(f"test error of K^F_m({n_fit})")


fig, (ax_a, ax_b, ax_c) = plotting.figure(3)
draw(ax_a, ["network", "K_n(n)", "K^F_n(n)", "eNTK (init)"])
ax_a.set_title("(a) after-kernels K_n(n), K^F_n(n)", fontsize=9)
draw_fig1b(ax_b)
ax_b.set_title(f"(b) K^F_m({n_fit}) vs m", fontsize=9)
draw(ax_c, ["network", "eNTK (init)"] + [f"K{f}_{m}(n)" for m in m_fixed for f in ("", "^F")])  # noqa: E501
ax_c.set_title("(c) fixed kernels vs the network", fontsize=9)
title = f"{task}, {image_size}px, {net.name} width {width}, {len(data_seeds)}x{len(seeds)} runs"
plotting.finish(fig, os.path.join(output_dir, "fig4_after_kernel.png"), title)
fig, (ax,) = plotting.figure()
draw_fig1b(ax)
plotting.finish(fig, os.path.join(output_dir, "fig1b_after_kernel.png"), title)

# %% [markdown]
# ## The claims, from the claims module's rules

# %%
o = outcomes
verdicts = [claims.tracks(n_values, o[k], o["network"], o["eNTK (init)"], names=(k, "network", "eNTK (init)"),
                          tolerance=track_tolerance, n_boot=n_boot) for k in ("K_n(n)", "K^F_n(n)")]
verdicts.append(claims.keeps_improving([0] + m_values, fig1b, name=f"K^F_m({n_fit})", x_name="m",
                                       fraction=improve_fraction, n_boot=n_boot))
fixed_kernels = ["eNTK (init)"] + [f"K{f}_{m}(n)" for m in m_fixed for f in ("", "^F")]
verdicts += [claims.scales_better(n_values, o["network"], o[k], names=("network", k), margin=alpha_margin,
                                  n_boot=n_boot) for k in fixed_kernels]
caveat = ". ".join(filter(None, [underfit, claims.few_runs(data_seeds, seeds)]))
plain = verdicts   # the Result paragraph states the caveats once
verdicts = [v.with_caveat(caveat) if caveat else v for v in verdicts]
Markdown(claims.table(verdicts))

# %% [markdown]
# ## Result

# %%
at = {name: c["mean"][-1] for name, c in curves.items()}
Markdown(
    f"On {task} at {image_size}px ({len(data_seeds)} data draws x {len(seeds)} seeds, {n_test} test images), at "
    f"n = {n_values[-1]}: network {at['network']:.3f}, K_n(n) {at['K_n(n)']:.3f}, K^F_n(n) {at['K^F_n(n)']:.3f}, "
    f"eNTK (init) {at['eNTK (init)']:.3f}. K^F_m({n_fit}) goes from {curves[f'K^F_m({n_fit})']['mean'][0]:.3f} at "
    f"m = 0 to {at[f'K^F_m({n_fit})']:.3f} at m = {m_values[-1]}. "
    + " ".join(f"**{v.claim}: {v.status}.** {v.text}" for v in plain) + (f" {caveat}." if caveat else ""))

# %%
results.save(output_dir, parameters, {"n_values": n_values, "m_values": m_values, "curves": curves,
                                      "train_error": train_error, "underfit": underfit,
                                      "verdicts": {v.claim: v.as_dict() for v in verdicts}})
np.savez_compressed(os.path.join(output_dir, "outcomes.npz"),
                    **{k: v.astype(np.float16) for k, v in {**outcomes, "K^F_m(n_fit)": fig1b}.items()})
