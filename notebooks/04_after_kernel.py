# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
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
n_values = [64, 128, 256, 512, 1024]              # training-set sizes n of the kernel regressions
m_values = [64, 128, 256, 512, 1024]              # training-set sizes m of the networks whose after-kernels are taken
n_fit = 256                                       # K^F_m(n_fit): fresh samples each after-kernel is fitted on
m_fixed = [256, 512]                              # the m whose after-kernels get a whole data-scaling curve
output_dir = "outputs/notebooks/04_after_kernel"  # where results.json, outcomes.npz and the figures are written
# The shared parameters: the defaults of ntk_utils.setup.Setup, train.TrainConfig and
# claims.Thresholds, written by `python -m ntk_utils.parameters_cell` (do not edit here).
task = "cifar10-pair"          # data.TASKS; CIFAR-10 airplane vs automobile, the CPU stand-in
classes = None                 # ((+1 ids), (-1 ids)), e.g. ((3,), (5,)); None: the task's pair
image_size = 8                 # pixels per side (32: full resolution)
n_test = 2000                  # test images (the pair's whole CIFAR-10 test split)
val_size = 500                 # validation images per data draw (never trained on)
data_seeds = [0]               # data draws: each its own training pool and validation set
seeds = [0, 1]                 # network seeds: initialization and batch order
arch = "myrtle"                # models.arch_from_config: myrtle, cnn5, mlp
depth = 5                      # layers (Myrtle: 5, 7 or 10)
width = 64                     # channels (hidden units of the MLP)
parameterization = "standard"  # as practitioners train; "ntk" for width limits (notebook 02)
ridge = 0.0                    # kernel ridge, times mean(diag K); 0: ridgeless
lr = 0.1                       # standard parameterization (NTK parameterization: O(1) rates)
momentum = 0.9                 # heavy-ball momentum; 0: plain SGD
batch_size = 128               # minibatch size from n of min_batches · batch_size on
min_batches = 2                # below that n: at least this many minibatches per pass
full_batch = False             # full-batch gradient descent instead of minibatches
epochs = 40                    # passes over the training set
min_steps = 400                # at least this many steps (small n)
schedule = "cosine"            # "cosine" or "constant"
loss = "mse"                   # "mse" or "xent"
early_stopping = False         # return the best-validation-loss parameters
center = False                 # train f - f0 (output 0 at initialization)
n_boot = 1000                  # bootstrap resamples of every interval
alpha_margin = 0.02            # held: the interval of Δα lies above this margin
fit_min_n = 0                  # exponents fitted on n from this on (0: every n)
alike_tolerance = 0.05         # two exponents are alike within ±this
track_tolerance = 1.15         # an after-kernel tracks the network within this factor
improve_fraction = 0.25        # keeps improving: the late half's share of the gain
underfit_train_error = 0.02    # networks erring more on their training set are flagged

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
