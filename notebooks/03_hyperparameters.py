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
# # 3. Hyperparameters: the network's better scaling is not an artifact of one recipe (Fig. 3)
#
# **Question.** Notebook 01 found the network's data-scaling exponent above its NTKs' under
# one training recipe. Could that gap come from a particular choice of learning rate, batch
# noise, momentum or early stopping, all of which the kernel regressions do not have?
#
# **Protocol.** The measurement of notebook 01 (network vs eNTK at initialization vs infinite
# NTK, test error vs $n$, fitted exponent $\alpha$ in $\text{err}(n) \approx C n^{-\alpha}$ with
# 95% bootstrap intervals over seeds), with the network trained under one change at a time:
# * **(a)** a higher (`lr_high`) and a lower (`lr_low`) learning rate than the default `lr`;
# * **(b)** full-batch gradient descent instead of SGD (`batch_size=None`; momentum kept);
# * **(c)** SGD without momentum (`momentum=0`, same learning rate);
# * **(d)** no early stopping: the parameters at the end of the full schedule.
#
# The eNTK at initialization and the infinite NTK do not depend on the optimizer: they are
# computed once and drawn on every panel.
#
# **What to look for.** The paper (on CIFAR-5m-bin) finds the network's exponent above both
# kernels' under every variant. Our default run is the CPU-sized stand-in of notebook 01
# (CIFAR-10 airplane vs automobile at 8x8 px); the paper-scale grid runs `cifar5m-bin`.
#
# **Choices we made where the paper's protocol is not known to us.** Everything not changed
# by a variant is notebook 01's recipe (cosine learning-rate decay,
# `max(min_steps, epochs·n/batch)` steps, i.e. `max(min_steps, epochs)` full-batch steps for
# GD, early stopping on fresh validation samples). Without momentum the effective step is 10x
# smaller than with momentum 0.9 at the same learning rate, and at lr 2 the network does not
# fit its training set in the step budget (α ≈ 0.04 in our first CPU run): the no-momentum
# variant therefore runs at its own `no_momentum_lr` (default 10, the largest of 10 and 20 that
# did not diverge; lr / (1 - momentum) = 20 would match the effective step). "Training to convergence" is approximated by the full schedule: the
# final training loss is printed so that one can see how close to zero it got. A variant whose
# training diverges (NaN loss) is recorded as diverged and left out of the verdicts.

# %%
import dataclasses
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
lr_high = 8.0
lr_low = 0.5
no_momentum_lr = 10.0
variants = ["lr_high", "lr_low", "gd", "no_momentum", "no_early_stopping"]
output_dir = "outputs/notebooks/03_hyperparameters"

# %%
os.makedirs(output_dir, exist_ok=True)
parameters = results.collect_parameters(globals(), _before_parameters)
net = models.arch_from_config(arch, width, depth)
config = train.TrainConfig.from_parameters(parameters)
# Each variant changes one field of the default recipe.
VARIANTS = {
    "lr_high": (f"lr {lr_high}", dict(lr=lr_high)),
    "lr_low": (f"lr {lr_low}", dict(lr=lr_low)),
    "gd": ("full-batch GD", dict(batch_size=None)),
    "no_momentum": (f"SGD, no momentum, lr {no_momentum_lr}", dict(momentum=0.0, lr=no_momentum_lr)),
    "no_early_stopping": ("no early stopping", dict(early_stopping=False)),
}
unknown = sorted(set(variants) - set(VARIANTS))
if unknown:
    raise ValueError(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
data = experiments.load(task, max(n_values), n_test, image_size, data_seed)
print(net.describe())
print(f"task {task}: pool {data.x.shape}, test {data.x_test.shape}, labels +1: {np.mean(data.y > 0):.2f}")
print(f"default recipe: {config}")

# %% [markdown]
# ## The kernels (once; they do not depend on the optimizer)

# %%
curves = {
    "eNTK (init)": experiments.entk_init_curve(net, data, n_values, seeds, ridge),
    "infinite NTK": experiments.infinite_curve(net, data, n_values, ridge)[None],
}
for name, err in curves.items():
    print(f"{name:>13}: " + "  ".join(f"{e:.3f}" for e in err.mean(0)))

# %% [markdown]
# ## The networks, one training recipe per variant

# %%
diverged = {}
final_loss = {}
for name in variants:
    description, change = VARIANTS[name]
    cfg = dataclasses.replace(config, **change)
    print(f"{name}: {description} -> lr={cfg.lr}, momentum={cfg.momentum}, batch_size={cfg.batch_size}, "
          f"early_stopping={cfg.early_stopping}")
    try:
        err, trained = experiments.network_curve(net, data, n_values, seeds, cfg, val_size=val_size)
    except train.TrainingDiverged as e:
        diverged[name] = str(e)
        print(f"  DIVERGED: {e}")
        continue
    curves[f"{name}: network"] = err
    # mean over seeds of the last recorded training loss, per n
    final_loss[name] = [float(np.mean([trained[s, n].history["loss"][-1] for s in seeds])) for n in n_values]
    print("  test error: " + "  ".join(f"{e:.3f}" for e in err.mean(0)))
    print("  final train loss: " + "  ".join(f"{v:.2g}" for v in final_loss[name]))

fits = {name: scaling.fit_power_law(n_values, err) for name, err in curves.items()}

# %% [markdown]
# ## Figure 3: test error vs n under each variant (log-log, fitted power laws)
# Every panel shows the same eNTK (init) and infinite-NTK curves; panel (a) holds both
# learning rates.

# %%
PANELS = [("(a) learning rate", ["lr_high", "lr_low"]), ("(b) full-batch GD", ["gd"]),
          ("(c) no momentum", ["no_momentum"]), ("(d) no early stopping", ["no_early_stopping"])]
panels = [(title, [v for v in members if v in variants]) for title, members in PANELS]
panels = [(title, members) for title, members in panels if members]
fig, axes = plotting.figure(len(panels))
for ax, (title, members) in zip(axes, panels):
    for k, name in enumerate(members):
        label = f"{name}: network"
        if label in curves:
            plotting.scaling_curve(ax, n_values, curves[label], f"network, {VARIANTS[name][0]}", fits[label],
                                   color=["C0", "C3"][k], marker="os"[k])
        else:
            ax.plot([], [], " ", label=f"network, {VARIANTS[name][0]}: diverged")
    for name in ("eNTK (init)", "infinite NTK"):
        plotting.scaling_curve(ax, n_values, curves[name], name, fits[name])
    ax.set_title(title, fontsize=9)
plotting.finish(fig, os.path.join(output_dir, "fig3_hyperparameters.png"),
                f"{task}, {image_size}px, {net.name} width {width}")

# %% [markdown]
# ## Exponents and the claim, checked from this run's numbers
# For every variant that trained: `scaling.compare_exponents(network, eNTK (init))` and
# `scaling.compare_exponents(network, infinite NTK)` ("held" when the 95% intervals are
# disjoint with the network above, "direction only" when only the point estimates agree).
# A caution is printed (and `underfit` recorded) for a variant whose final training loss
# exceeds 0.1 at some n: such a network has not fit its training set.

# %%
UNDERFIT_LOSS = 0.1
verdicts = {}
for name in variants:
    if name in diverged:
        continue
    for kernel in ("eNTK (init)", "infinite NTK"):
        verdicts[f"{name}: network vs {kernel}"] = scaling.compare_exponents(fits[f"{name}: network"], fits[kernel])
print(f"{'curve':>28}  alpha  [95% CI]")
for name, fit in fits.items():
    print(f"{name:>28}  {fit.alpha:.3f} [{fit.alpha_low:.3f}, {fit.alpha_high:.3f}]")
for name, why in diverged.items():
    print(f"{name:>28}  diverged: {why}")
for claim, (verdict, why) in verdicts.items():
    print(f"Claim '{claim}: the network scales better': {verdict.upper()} — {why}")
# A network that predicts f = 0 has loss 0.5 (MSE/2, ±1 targets): a final loss far from 0 means
# the network did not fit its training set, and its exponent is that of an under-trained network.
underfit = {name: max(losses) > UNDERFIT_LOSS for name, losses in final_loss.items()}
for name, losses in final_loss.items():
    if underfit[name]:
        print(f"CAUTION {name}: final training loss up to {max(losses):.2g} (> {UNDERFIT_LOSS}; 0.5 = predicting 0): "
              "the network under-fits its training set; more steps (min_steps, epochs) are needed before its "
              "exponent says anything about trained networks")
results.save(output_dir, parameters, {"n_values": n_values, "curves": curves, "fits": fits, "verdicts": verdicts,
                                      "diverged": diverged, "final_train_loss": final_loss, "underfit": underfit,
                                      "variants": {v: VARIANTS[v][0] for v in variants}})
