# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Primer: what the Neural Tangent Kernel is, and when it describes a network
#
# A network $f(x;\theta)$ trained by gradient descent on the squared loss changes its outputs by
#
# $$\frac{d f(x)}{dt} = -\eta \sum_i \Theta_t(x, x_i)\,(f(x_i) - y_i), \qquad
#   \Theta_t(x, x') = \sum_p \frac{\partial f(x)}{\partial \theta_p}\frac{\partial f(x')}{\partial \theta_p}.$$
#
# $\Theta_t$ is the **neural tangent kernel** at time $t$. Jacot et al. (2018) showed that as the
# width grows (in the NTK parameterization) $\Theta_0$ becomes deterministic — the **infinite
# NTK** — and stays fixed during training, so the trained network is exactly **kernel
# regression** with that kernel. At finite width, $\Theta_0$ (the **empirical NTK**, eNTK) is
# random, and it moves during training.
#
# This primer builds the four ideas the paper's sections rest on, with fully connected ReLU
# networks on real images (CIFAR-10 airplane vs automobile, 8x8 px by default):
# 1. the eNTK at initialization approaches the infinite NTK as width grows;
# 2. a wide network trained with small steps is its linearization ("lazy training");
# 3. a narrow, standard-parameterized network moves its kernel and aligns it with the labels (the
#    "rich" regime), and generalizes differently;
# 4. test error falls like a power of the number of samples $n$, and the exponent is what
#    notebook 01 compares between networks and kernels.
#
# Run time: about a minute on a laptop CPU. Each part ends with an **exercise**: change a
# parameter in the parameters cell below, rerun, and look for what the exercise says.

# %%
# Outside a checkout of this repository (e.g. opened from the README's Colab badge) install the
# pinned package first; inside it, or once installed, this does nothing.
try:
    import ntk_utils  # noqa: F401
except ImportError:
    get_ipython().run_line_magic("pip", "install -q 'ntk-limits @ git+https://github.com/ntk-limits/ntk-limits'")  # noqa: F821
    get_ipython().run_line_magic("pip", "install -q --no-deps neural-tangents==0.6.5")  # noqa: F821

# %%
from IPython.display import Markdown

from ntk_utils import params, results
from ntk_utils.sections import primer

_before_parameters = set(globals())

# %% tags=["parameters"]
task = "cifar10-pair"                    # the data (data.TASKS)
classes = None                           # e.g. [[3], [5]]: cat vs dog; None: the task's pair
image_size = 8                           # pixels per side
n_train = 256                            # training images
n_test = 500                             # test images
widths = [16, 64, 256, 1024, 4096]       # parts 1-2: NTK parameterization
depth = 1                                # hidden layers of the MLP
lr = 1.0                                 # parts 1-2: full-batch gradient descent, constant step
steps = 300                              # gradient-descent steps
seed = 0                                 # network seed
rich_width = 64                          # part 3: standard parameterization
rich_lr = 0.05                           # part 3: the standard network's learning rate
n_snapshots = 6                          # part 3: kernels at t 0 and at log-spaced steps up to `steps`
n_values = [64, 128, 256, 512, 1024]     # part 4
scaling_width = 1024                     # part 4: the network's width
lr_candidates = [0.25, 1.0, 4.0]         # part 4: the step is chosen on the validation split
output_dir = "outputs/notebooks/primer"  # where results.json and the figure are written

# %%
parameters = results.collect_parameters(globals(), _before_parameters)
_, options = params.build("primer", parameters)

# %% [markdown]
# ## The run
# `primer.run` trains one network per width (and the rich one, and part 4's), computes their
# kernels and measures everything below (`ntk_utils/sections/primer.py`; its docstring has the
# formulas).

# %%
result = primer.run(**options)
primer.figure(result, output_dir);

# %% [markdown]
# ## 1. The eNTK at initialization approaches the infinite NTK
# Θ₀ is a sum over hidden units of independent random terms, so by the law of large numbers its
# relative distance to its mean, the infinite NTK Θ∞, falls like $1/\sqrt{\text{width}}$: a
# slope of −1/2 on the first panel.

# %%
for row in result.rows:
    print("width {width:5d}: |K0 - Kinf| / |Kinf| = {init_vs_infinite:.3f}".format(**row))
print(f"fitted slope: {result.width_slope:.2f} (theory: -0.5)")

# %% [markdown]
# **Exercise 1.** Set `depth = 2`. *Question:* does a deeper network approach its limit faster
# or slower with width? *Look for* the slope in panel 1 and the distance at the smallest width.
#
# ## 2. Lazy training: the wide network is its linearization
# Linearize the network around its initialization, $f_{lin}(x;\theta) = f(x;\theta_0) +
# \nabla_\theta f(x;\theta_0)\cdot(\theta - \theta_0)$. Gradient descent on it has a closed form
# (`primer.linearized_predictions`): kernel regression with Θ₀, run for the same number of steps
# and starting from the network's initial function $f_0$. The second panel shows how much the
# kernel moved in training, $\|\Theta_T - \Theta_0\|/\|\Theta_0\|$, and the gap between the
# network's and its linearization's test outputs, as a share of what training changed.

# %%
for row in result.rows:
    print("width {width:5d}: kernel moved {kernel_movement:.3f}, gap to linearization {lazy_gap:.3f}; "
          "test error: network {network_error:.3f}, linearized {linearized_error:.3f}".format(**row))
print(f"infinite NTK (kernel regression from 0): {result.infinite_error:.3f}")

# %% [markdown]
# Note the $f_0$: a network starts from a random function and carries it along, so kernel
# regression *from zero* (the infinite NTK line) is not the same predictor as the network, even
# at great width. The paper's kernels predict from zero; notebook 01 shows both.
#
# **Exercise 2.** Set `lr = 4.0` and then `lr = 0.25`. *Question:* does the size of the step
# change whether the wide network stays lazy? *Look for* the gap at width 4096 (the primer's
# check says whether it stays below the stated bound of 0.1).
#
# ## 3. The rich regime: the kernel moves and aligns with the labels
# A narrow network in the standard parameterization, trained on the same data, is followed
# through training beside the widest lazy one: its kernel's distance from Θ₀, and the kernel's
# **alignment with the labels** $y^\top \Theta^c y / (\|\Theta^c\|_F \|y\|^2)$, where $\Theta^c$ is
# the kernel less its constant mode (centred), which grows when the kernel learns which images
# belong together. Its test error is compared with its linearization
# and with kernel regression with its kernel at the end of training (its *after-kernel*, the
# object of notebook 04).

# %%
for name, regime in result.regimes.items():
    print(f"{regime['label']}: kernel moved {regime['distance'][-1]:.3f}, alignment "
          f"{regime['alignment'][0]:.3f} -> {regime['alignment'][-1]:.3f}; test error "
          + ", ".join(f"{k} {v:.3f}" for k, v in regime["errors"].items()))

# %% [markdown]
# **Exercise 3.** Set `rich_lr = 0.1`. *Question:* what happens to the linearized model, and
# to the network? *Look for* the linearized test error (gradient descent on a quadratic diverges
# once the step exceeds 2n/λ_max of its kernel) against the network's, and the kernel's movement:
# the network escapes the instability by changing its kernel (the "catapult" of Lewkowycz et
# al., 2020).
#
# ## 4. Data scaling: test error against n
# Test error of a trained network and of its infinite NTK against the number of training
# samples, on log-log axes, with fitted power laws $\text{err} \approx C n^{-\alpha}$. The paper's
# first claim is about these exponents: for its CNN, the network's α is larger than its kernels'.
# Here one seed and one data draw of a fully connected network: notebook 01 does it with the
# Myrtle CNN, several seeds and data draws, and intervals on the difference of exponents.

# %%
print("validation error by step (the pilot that chose it):", result.scaling["pilot"], "->", result.scaling["lr"])
for name, alpha in result.scaling["alphas"].items():
    print(f"alpha({name}) = {alpha:.3f}")

# %% [markdown]
# **Exercise 4.** Set `n_values = [64, 128, 256, 512, 1024, 2048, 4096]`. *Question:* is the
# fitted α stable when n grows, and does the ordering of the two curves change? *Look for* the
# exponents in panel 4's legend, then open notebook 01.
#
# ## What this run shows

# %%
Markdown(result.markdown())

# %%
results.save(output_dir, options, result.record())   # illustrations, not the paper's claims
