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
# **Protocol.** Train the network on the full training set (the pool of `n_train` samples) and
# keep its parameters at times $t$ (steps, log-spaced; `train.TrainConfig.snapshot_steps`). For
# each $t$ take the eNTK $K^t$ at those parameters and:
# * **(a)** fit it (ridgeless kernel regression from zero initial output) on that same full
#   training set: $K^t_\text{fit}$. Plot its test error vs $t$ (log $t$), with the network's own
#   test error at time $t$ and the eNTK at init ($t=0$) as references (Fig. 1C).
# * **(b)** fit it on the first $n$ samples for each $n$: data-scaling curves of $K^t$ for a few
#   $t$, with the scaling of the network (trained on $n$ samples, notebook 1): the network has
#   the best exponent at every $t$ (Fig. 5).
#
# **What to look for.** (a) $K^t_\text{fit}$ falling steadily in $\log t$ up to late times, not
# flattening after the first epochs; (b) the kernels' exponents improving with $t$ but staying
# below the network's.
#
# **Choices we made** (all parameters below): the training configuration is notebook 1's (the
# training run here differs only by keeping snapshots, so the scaling networks of panel (b)
# are cache hits from notebook 1). With early stopping the snapshots still follow the whole
# trajectory; early stopping only picks the network's returned parameters, which are not used
# here. The snapshot grid is `n_snapshots` steps log-spaced from `first_snapshot` to the last
# step, plus $t=0$.

# %%
import dataclasses
import os

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from ntk_utils import experiments, models, plotting, regression, results, scaling, train

_before_parameters = set(globals())

# %% tags=["parameters"]
task = "cifar10-pair"
image_size = 8
n_values = [64, 128, 256, 512, 1024]
n_test = 1000
seeds = [0, 1]
data_seed = 0
arch = "myrtle"
depth = 5
width = 32
lr = 2.0
momentum = 0.9
batch_size = 128
epochs = 40
min_steps = 400
schedule = "cosine"
loss = "mse"
early_stopping = True
val_size = 500
ridge = 0.0
n_train = 1024
n_snapshots = 6
first_snapshot = 4
snapshot_steps = []
t_scaling = [0, 2, 4, -1]
output_dir = "outputs/notebooks/05_kernel_dynamics"

# %% [markdown]
# `n_train` is the full training set of the dynamics run. The snapshot grid is `n_snapshots`
# steps log-spaced from `first_snapshot` (4 steps = half an epoch at n_train=1024, batch 128) to
# the last step, plus $t = 0$; a non-empty `snapshot_steps` (steps $t > 0$) replaces it.
# `t_scaling` holds indices into the grid $[0, t_1, \dots, t_K]$ (0 = init, -1 = the last
# step): the times that get a scaling curve in panel (b).

# %%
os.makedirs(output_dir, exist_ok=True)
parameters = results.collect_parameters(globals(), _before_parameters)
net = models.arch_from_config(arch, width, depth)
config = train.TrainConfig.from_parameters(parameters)
n_values = sorted(n_values)
data = experiments.load(task, max(n_values + [n_train]), n_test, image_size, data_seed)
total_steps = config.num_steps(n_train)
steps = sorted(set(snapshot_steps)) if snapshot_steps else \
    sorted({int(round(t)) for t in np.geomspace(first_snapshot, total_steps, n_snapshots)})
if steps[0] < 1 or steps[-1] > total_steps:
    raise ValueError(f"snapshot steps must lie in 1..{total_steps}, got {steps}")
t_grid = [0] + steps
epochs_at = [t * min(batch_size or n_train, n_train) / n_train for t in t_grid]
t_scaling = sorted({t_grid[i] for i in t_scaling})
print(net.describe())
print(f"task {task}: pool {data.x.shape}, test {data.x_test.shape}; training on n_train={n_train} for "
      f"{total_steps} steps; snapshots at t = {t_grid} (epochs {[round(e, 2) for e in epochs_at]})")

# %% [markdown]
# ## The training run with snapshots, and the eNTK at every snapshot
# $K^t$ is computed once on the full training set (and test vs training set); $K^t_\text{fit}$
# and the scaling curve of $K^t$ are both read off it, on nested leading blocks.

# %%
val = data.fresh(val_size) if early_stopping else None   # the same validation set as network_curve
ns_kernel = sorted(set(n_values) | {n_train})
kernel_curves = np.zeros((len(seeds), len(t_grid), len(ns_kernel)))   # K^t fitted on the first n
network_at_t = np.zeros((len(seeds), len(t_grid)))
for i, seed in enumerate(seeds):
    run = train.train(net, data.x[:n_train], data.y[:n_train],
                      dataclasses.replace(config, seed=seed, snapshot_steps=tuple(t_grid)), val=val)
    for j, t in enumerate(t_grid):
        params = run.snapshots[t]
        network_at_t[i, j] = regression.test_error(train.predict(net, params, data.x_test), data.y_test)
        kernel_curves[i, j] = experiments.entk_curve(net, params, data, ns_kernel, ridge)

kernel_fit = kernel_curves[:, :, ns_kernel.index(n_train)]      # K^t_fit: (seeds, len(t_grid))
print(f"{'t':>5} {'epoch':>6}  K^t_fit  network(t)")
for j, t in enumerate(t_grid):
    print(f"{t:>5} {epochs_at[j]:>6.2f}  {kernel_fit[:, j].mean():.3f}    {network_at_t[:, j].mean():.3f}")

# %% [markdown]
# ## Data scaling of $K^t$ and of the network

# %%
network = experiments.network_curve(net, data, n_values, seeds, config, val_size=val_size)[0]


def label(t):
    return "K^0 (eNTK init)" if t == 0 else f"K^t, t={t}"


curves = {"network": network}
for t in t_scaling:
    curves[label(t)] = kernel_curves[:, t_grid.index(t), [ns_kernel.index(n) for n in n_values]]
fits = {name: scaling.fit_power_law(n_values, err) for name, err in curves.items()}
for name, err in curves.items():
    print(f"{name:>16}: " + "  ".join(f"{e:.3f}" for e in err.mean(0)) + f"   {fits[name]}")

# %% [markdown]
# ## Figure 5 (two panels) and Figure 1C on its own

# %%
positive = slice(1, None)   # t > 0, for the log-t axis


def draw_fig1c(ax):
    x = np.array(epochs_at[positive])
    for values, name, fmt, color in ((kernel_fit, f"eNTK K^t fitted on the {n_train} train samples", "o-", "C3"),
                                     (network_at_t, "network at time t", "s--", "C0")):
        v = values[:, positive]
        ax.errorbar(x, v.mean(0), yerr=v.std(0) if len(seeds) > 1 else None, fmt=fmt, color=color, capsize=3,
                    ms=4, label=name)
    ax.axhline(kernel_fit[:, 0].mean(), color="C1", ls=":", label="eNTK at init (t=0)")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training time t (epochs)")
    ax.set_ylabel("test error")


fig, (ax_a, ax_b) = plotting.figure(2)
draw_fig1c(ax_a)
ax_a.set_title("(a) K^t fitted on the full train set", fontsize=9)
cmap = plt.get_cmap("viridis")
for k, t in enumerate(t_scaling):
    plotting.scaling_curve(ax_b, n_values, curves[label(t)], label(t), fits[label(t)],
                           color=cmap(k / max(1, len(t_scaling) - 1) * 0.9))
plotting.scaling_curve(ax_b, n_values, network, "network", fits["network"], color="C0", marker="s")
ax_b.set_title("(b) data scaling of K^t", fontsize=9)
plotting.finish(fig, os.path.join(output_dir, "fig5_kernel_dynamics.png"),
                f"{task}, {image_size}px, {net.name} width {width}, n_train={n_train}")

fig, (ax,) = plotting.figure()
draw_fig1c(ax)
plotting.finish(fig, os.path.join(output_dir, "fig1c_kernel_dynamics.png"), f"{task}, {image_size}px, n={n_train}")

# %% [markdown]
# ## The claims, checked from this run's numbers
# * **(a) the kernel keeps improving**: `experiments.keeps_improving` on $K^t_\text{fit}$ over
#   the snapshot steps $t > 0$: with $t_\text{mid} = \sqrt{t_1 t_K}$, the improvement from
#   $t_\text{mid}$ to $t_K$ must be at least a third of the improvement from $t_1$ to
#   $t_\text{mid}$ (a kernel that settles after a few epochs gives ~0), and positive for every
#   seed. *Direction only*: still improving, but less; *not held*: no improvement in the
#   second half.
# * **(b) the network scales best**: `scaling.compare_exponents` of the network against $K^t$
#   at each $t$ of `t_scaling` (held = 95% bootstrap intervals disjoint).

# %%
verdicts = {"K^t_fit keeps improving through training":
            experiments.keeps_improving(np.array(t_grid[positive]), kernel_fit[:, positive], name="t")}
for t in t_scaling:
    verdicts[f"network scales better than {label(t)}"] = scaling.compare_exponents(fits["network"], fits[label(t)])

print(f"{'curve':>16}  alpha  [95% CI]")
for name, fit in fits.items():
    print(f"{name:>16}  {fit.alpha:.3f} [{fit.alpha_low:.3f}, {fit.alpha_high:.3f}]")
for claim, (verdict, why) in verdicts.items():
    print(f"Claim '{claim}': {verdict.upper()} — {why}")
results.save(output_dir, parameters, {
    "t_grid": t_grid, "epochs": epochs_at, "n_kernel": ns_kernel, "kernel_curves": kernel_curves,
    "network_at_t": network_at_t, "n_values": n_values, "curves": curves,
    "fig1c": {"t": t_grid[positive], "epochs": epochs_at[positive], "kernel_error": kernel_fit[:, positive].mean(0),
              "network_error": network_at_t[:, positive].mean(0), "entk_init_error": float(kernel_fit[:, 0].mean()),
              "kernel_error_std": kernel_fit[:, positive].std(0),
              "network_error_std": network_at_t[:, positive].std(0)},
    "fits": fits, "verdicts": verdicts})
