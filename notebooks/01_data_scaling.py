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
# **Protocol.** On one binary task, for nested training sets of size $n$, over several data
# draws (`data_seeds`: each a different training pool and validation set) and seeds:
# * **network**: a Myrtle-CNN trained as practitioners train it: standard parameterization with
#   flax's default initialization and biases, SGD with momentum 0.9, MSE on ±1 targets, batch
#   128 at every $n$, cosine learning-rate decay over `max(min_steps, epochs·n/batch)` steps, no
#   early stopping (the final network);
# * **eNTK (init)**: ridgeless kernel regression with the empirical NTK of the same network at
#   its initialization, predicting from zero;
# * **linearized network**: the same kernel around the network's initial function $f_0$:
#   $f_0(x) + K(x, X) K(X, X)^{-1}(y - f_0(X))$, what the network would compute if it stayed
#   linear in its parameters (with `center = True` the network trains $f - f_0$, starts at 0,
#   and this curve equals the eNTK's);
# * **infinite NTK**: kernel regression with the infinite-width NTK of the same architecture
#   (`Arch.ntk_limit`: the NTK-parameterization limit, as neural-tangents computes it).
#
# **Statistics.** Every comparison is a paired bootstrap of $\alpha_\text{network} -
# \alpha_\text{kernel}$ that resamples data draws, seeds and test examples together
# (`ntk_utils.claims`); a claim is *held* when that difference's 95% interval lies above 0,
# *not held* when it lies below `alpha_margin`, else *inconclusive*. The absolute errors at the
# largest $n$ are always shown beside the slopes.
#
# **The pilot that chose the recipe** (`benchmarks/pilot_recipe.py`, on a validation split only,
# never the test set; `outputs/reference/pilot/recipe.json`): Myrtle-5 width 64, n = 256 and
# 1024, two seeds, validation half A selects early stopping, half B scores:
#
# | candidate | n = 256 | n = 1024 | train error at n = 1024 |
# |---|---|---|---|
# | standard, lr 0.02 | 0.184 (early-stopped 0.201) | 0.152 (early-stopped 0.152) | 0.105 |
# | standard, lr 0.05 | 0.180 (early-stopped 0.191) | 0.136 (early-stopped 0.135) | 0.043 |
# | standard, lr 0.1 | 0.190 (early-stopped 0.184) | 0.134 (early-stopped 0.136) | 0.002 |
# | ntk, lr 2.0 | 0.216 (early-stopped 0.219) | 0.155 (early-stopped 0.154) | 0.061 |
# | ntk, lr 8.0 | 0.215 (early-stopped 0.201) | 0.138 (early-stopped 0.136) | 0.001 |
#
# The standard parameterization beats the NTK parameterization at every learning rate we tried.
# Our rule: lowest mean validation error, with candidates within the validation noise of the best
# (about ±0.01 for 2 x 500 examples per n) tied, and the tie going to the one that fits its
# training sets. Standard lr 0.05 (mean 0.158) and 0.1 (0.162) tie; lr 0.1 fits its training
# sets (train error 0.002 at n = 1024 against 0.043), so **lr 0.1** is the default. Early stopping
# changed the validation error by less than the noise (0.184 vs 0.190 and 0.136 vs 0.134 at
# lr 0.1), so the default returns the **final** network (`early_stopping = False`), as a
# practitioner training to the end of a cosine schedule would.
#
# **What to look for.** The paper finds the network's exponent clearly above the eNTK's and the
# infinite NTK's on CIFAR-5m-bin. Our default run uses CIFAR-10 airplane vs automobile at
# 8x8 px (the stand-in the CPU allows; CIFAR-5m is not available offline; our copy of CIFAR-10
# is a JPEG re-encoding, see `results.json` → `meta.data`).

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
n_boot = 1000
alpha_margin = 0.02
underfit_train_error = 0.02
output_dir = "outputs/notebooks/01_data_scaling"

# %%
parameters = params.check("01_data_scaling", results.collect_parameters(globals(), _before_parameters))
globals().update(parameters)
os.makedirs(output_dir, exist_ok=True)
net = models.arch_from_config(arch, width, depth, parameterization)
config = train.TrainConfig.from_parameters(parameters)
tasks = [experiments.load(task, max(n_values), n_test, image_size, d, val_size) for d in data_seeds]
print(net.describe())
print(f"task {task}: {len(tasks)} data draws, pool {tasks[0].x.shape}, validation {tasks[0].x_val.shape}, "
      f"test {tasks[0].x_test.shape}; {config}")

# %% [markdown]
# ## The four curves
# Per-example outcomes (1 = misclassified) of every predictor, shaped (draws, seeds, n, test
# examples). Kernels are computed once per draw on the largest training set; smaller $n$ use
# its leading block. Networks and kernels are cached on disk (keyed by inputs and code).

# %%
trained = {}


def networks(data):
    outcomes, trained[data.data_seed] = experiments.network_outcomes(net, data, n_values, seeds, config)
    return outcomes


outcomes = {"network": experiments.over_draws(networks, tasks),
            **experiments.over_draws(lambda d: experiments.entk_init_outcomes(net, d, n_values, seeds, ridge, center),
                                     tasks),
            "infinite NTK": experiments.over_draws(lambda d: experiments.infinite_outcomes(net, d, n_values, ridge),
                                                   tasks)}
curves = {name: experiments.summarize("n", n_values, o) for name, o in outcomes.items()}
fit = experiments.over_draws(lambda d: experiments.training_fit(trained[d.data_seed], seeds, n_values), tasks)
underfit = claims.underfit(fit["train_error"], underfit_train_error, data_seeds, seeds, n_values)
for name, c in curves.items():
    print(f"{name:>18}: " + "  ".join(f"{m:.3f}" for m in c["mean"]))
print("network train error (max over runs): " + "  ".join(f"{e:.3f}" for e in np.nanmax(fit["train_error"], (0, 1))))

# %% [markdown]
# ## Figure 1A: test error vs n (log-log), with fitted power laws
# Points: mean over draws and seeds (error bars: ±1 std across them); dashed: least-squares
# power law.

# %%
fig, (ax,) = plotting.figure()
for name, c in curves.items():
    plotting.scaling_curve(ax, n_values, c["runs"], name, scaling.fit_power_law(n_values, c["runs"], n_boot=0))
plotting.finish(fig, os.path.join(output_dir, "fig1a_data_scaling.png"),
                f"{task}, {image_size}px, {net.name} width {width}, {len(data_seeds)}x{len(seeds)} runs")

# %% [markdown]
# ## The claims, from the claims module's rules

# %%
verdicts = [claims.scales_better(n_values, outcomes["network"], outcomes[k], names=("network", k),
                                 margin=alpha_margin, n_boot=n_boot) for k in ("eNTK (init)", "linearized network",
                                                                                "infinite NTK")]
caveat = ". ".join(filter(None, [underfit, claims.few_runs(data_seeds, seeds)]))
plain = verdicts   # the Result paragraph states the caveats once
verdicts = [v.with_caveat(caveat) if caveat else v for v in verdicts]
# What f0 does: the paired exponent difference between the linearized network and the eNTK from 0.
f0_effect = claims.scales_better(n_values, outcomes["linearized network"], outcomes["eNTK (init)"],
                                 names=("linearized network", "eNTK (init)"), margin=alpha_margin, n_boot=n_boot)
advantage, f0_gain = verdicts[0].numbers.get("delta"), f0_effect.numbers.get("delta")
f0_share = f0_gain / advantage if advantage and f0_gain is not None and advantage > 0 else None
Markdown(claims.table(verdicts + [f0_effect]))

# %% [markdown]
# ## Result

# %%
at = {name: c["mean"][-1] for name, c in curves.items()}
Markdown(
    f"On {task} at {image_size}px ({len(data_seeds)} data draws x {len(seeds)} seeds, {n_test} test images), "
    f"at n = {n_values[-1]} the network errs on {at['network']:.3f} of test images, the eNTK at initialization on "
    f"{at['eNTK (init)']:.3f}, the linearized network on {at['linearized network']:.3f} and the infinite NTK on "
    f"{at['infinite NTK']:.3f}. " + " ".join(f"**{v.claim}: {v.status}.** {v.text}" for v in plain)
    + f" **What f0 does:** {f0_effect.text}"
    + (f" The linearized network's exponent gain over the eNTK from zero is {100 * f0_share:.0f}% of the "
       f"network's exponent advantage over that eNTK ({f0_effect.status} that f0 steepens the slope)."
       if f0_share is not None else " The network has no exponent advantage over its eNTK here for f0 to explain.")
    + (f" {caveat}." if caveat else f" Every network fit its training set (train error at most {underfit_train_error})."))

# %%
results.save(output_dir, parameters, {"n_values": n_values, "curves": curves, "training_fit": fit,
                                      "underfit": underfit, "f0_share_of_entk_gap": f0_share,
                                      "f0_effect": f0_effect.as_dict(),
                                      "verdicts": {v.claim: v.as_dict() for v in verdicts}})
np.savez_compressed(os.path.join(output_dir, "outcomes.npz"), **{k: v.astype(np.float16) for k, v in outcomes.items()})
