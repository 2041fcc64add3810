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
# # 1. Data scaling: the network beats its NTKs (Sec. 3, Fig. 1A)
#
# **Question.** If the Neural Tangent Kernel explained how a trained CNN generalizes, kernel
# regression with the NTK should not only reach similar test error: its error should fall
# with the number of training samples $n$ at the same *rate*. We measure that rate as the
# data-scaling exponent $\alpha$ in $\text{err}(n) \approx C\, n^{-\alpha}$.
#
# **Protocol.** On one binary task, for nested training sets of size $n$:
# * **network**: a Myrtle-CNN (NTK parameterization) trained with SGD + momentum on the MSE
#   loss with ±1 targets, several seeds;
# * **eNTK (init)**: kernel regression (ridgeless) with the empirical NTK of the same network
#   at its initialization, one per seed;
# * **infinite NTK**: kernel regression with the infinite-width NTK of the same architecture.
#
# Then fit $\alpha$ by least squares in log-log space, with a 95% bootstrap interval over seeds.
#
# **What to look for.** The paper finds the network's exponent clearly above the eNTK's and the
# infinite NTK's on CIFAR-5m-bin. Our default run uses CIFAR-10 airplane vs automobile at
# 8x8 px (the stand-in the CPU allows; CIFAR-5m is not available offline); the paper-scale grid
# runs `cifar5m-bin` / `cifar10-bin` at 32x32 px.
#
# **Choices we made where the paper's protocol is not known to us** (all parameters below):
# learning rate 2.0 (in the NTK parameterization gradients are scaled by 1/sqrt(fan-in), so
# rates are far larger than in the standard one: at lr 0.05 this network does not even fit its
# training set in the step budget; 0.5, 2 and 8 all train, 2 is the middle),
# cosine learning-rate decay, `max(min_steps, epochs·n/batch)` steps, early stopping on a
# held-out validation set of fresh samples (the paper's Fig. 3d variant turns it off), and the
# same training pool for every seed (seeds change the initialization and the batch order).

# %%
import os

import numpy as np

from ntk_utils import experiments, models, plotting, results, scaling, train

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
output_dir = "outputs/notebooks/01_data_scaling"

# %%
os.makedirs(output_dir, exist_ok=True)
parameters = results.collect_parameters(globals(), _before_parameters)
net = models.arch_from_config(arch, width, depth)
config = train.TrainConfig.from_parameters(parameters)
data = experiments.load(task, max(n_values), n_test, image_size, data_seed)
print(net.describe())
print(f"task {task}: pool {data.x.shape}, test {data.x_test.shape}, labels +1: {np.mean(data.y > 0):.2f}")

# %% [markdown]
# ## The three curves
# Kernels are computed once on the largest training set; smaller $n$ use its leading block
# (the training sets are nested). Kernels and trained networks are cached on disk, so other
# notebooks of the same grid reuse them.

# %%
curves = {
    "network": experiments.network_curve(net, data, n_values, seeds, config, val_size=val_size)[0],
    "eNTK (init)": experiments.entk_init_curve(net, data, n_values, seeds, ridge),
    "infinite NTK": experiments.infinite_curve(net, data, n_values, ridge)[None],
}
fits = {name: scaling.fit_power_law(n_values, err) for name, err in curves.items()}
for name, err in curves.items():
    print(f"{name:>13}: " + "  ".join(f"{e:.3f}" for e in err.mean(0)) + f"   {fits[name]}")

# %% [markdown]
# ## Figure 1A: test error vs n (log-log), with fitted power laws

# %%
fig, (ax,) = plotting.figure()
for name, err in curves.items():
    plotting.scaling_curve(ax, n_values, err, name, fits[name])
plotting.finish(fig, os.path.join(output_dir, "fig1a_data_scaling.png"),
                f"{task}, {image_size}px, {net.name} width {width}")

# %% [markdown]
# ## Exponents and the claim, checked from this run's numbers

# %%
verdicts = {f"network vs {k}": scaling.compare_exponents(fits["network"], fits[k])
            for k in ("eNTK (init)", "infinite NTK")}
print(f"{'predictor':>13}  alpha  [95% CI]")
for name, fit in fits.items():
    print(f"{name:>13}  {fit.alpha:.3f} [{fit.alpha_low:.3f}, {fit.alpha_high:.3f}]")
for claim, (verdict, why) in verdicts.items():
    print(f"Claim '{claim}: the network scales better': {verdict.upper()} — {why}")
results.save(output_dir, parameters, {"n_values": n_values, "curves": curves, "fits": fits,
                                      "verdicts": verdicts})
