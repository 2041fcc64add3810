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
# **Choices we made** (the section's parameters below): $m$ ranges over the same grid as $n$ by
# default, $n_\text{fit}$ is 256 on the CPU; the after-kernel is taken at the returned network
# (the final one, as early stopping is off by default).
#
# **The shared parameters** (task, `classes`, image size, data draws, seeds, network,
# recipe, claim thresholds, among them `track_tolerance` and `improve_fraction`) have their
# defaults in `ntk_utils/setup.py` (the recipe in `train.TrainConfig`, the thresholds in
# `claims.Thresholds`); set any of them in the cell below or with `papermill -p name value`.
# The computation is `ntk_utils.sections.after_kernel`.

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

from ntk_utils import claims, experiments, params, results
from ntk_utils.sections import after_kernel

_before_parameters = set(globals())

# %% tags=["parameters"]
n_values = [64, 128, 256, 512, 1024]
m_values = [64, 128, 256, 512, 1024]
n_fit = 256
m_fixed = [256, 512]
output_dir = "outputs/notebooks/04_after_kernel"

# %%
parameters = results.collect_parameters(globals(), _before_parameters)
setup, options = params.build("04_after_kernel", parameters)
print(setup.describe(), setup.net.describe(), setup.recipe, sep="\n")

# %% [markdown]
# ## Networks, and the eNTK of each at the end of training
# One network per (draw, seed, $m$); from each we compute at most two kernels, on the pool and
# on the fresh samples, each on its largest needed set (smaller $n$ are leading blocks). The
# fresh samples come after the largest pool; networks and kernels are cached on disk.

# %%
result = after_kernel.run(setup, **options)
experiments.print_curves(result.curves)

# %% [markdown]
# ## Figure 4: (a) after-kernels track the network, (b) K^F_m(n_fit) vs m, (c) fixed kernels
# Points: mean over draws and seeds (±1 std across them); dashed: least-squares power laws.
# Panel (b) is also saved alone as Figure 1B.

# %%
after_kernel.figure(result, output_dir);

# %% [markdown]
# ## The claims: (a) after-kernels track the network, (b) K^F_m(n_fit) keeps improving, (c)
# the network scales better than fixed kernels
# From the claims module's rules (`tracks`, `keeps_improving`, `scales_better`).

# %%
Markdown(claims.table(result.verdicts))

# %% [markdown]
# ## Result

# %%
Markdown(result.markdown())

# %%
results.save(output_dir, setup.parameters(effective=True) | options, result.record(), result.outcomes)
