# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
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
#   vs $t$ with the network's own test error at time $t$ (Fig. 1C); and the same $K^t_\text{fit}$
#   of a network trained at the recipe's learning rate held **constant**: the recipe's cosine
#   decay slows training at the end by itself, so a plateau of $K^t_\text{fit}$ that the
#   constant-rate curve does not share comes from the schedule, not from the kernel;
# * **(b)** fit it on the first $n$ samples for each $n$: data-scaling curves of $K^t$ for a few
#   $t$, against the network trained on $n$ samples (notebook 1's networks): Fig. 5.
#
# **Claims** (`ntk_utils.claims`, paired bootstrap over data draws, seeds and test examples):
# (a) `keeps_improving` from $t = 0$: the improvement over the second half of the $\log t$ grid
# must exceed `improve_fraction` of the total improvement since initialization, across its
# interval (a kernel that settles after a few epochs gives ~0), and the last step between
# snapshots must still improve (its interval above 0); (b) `scales_better`: the network's
# exponent above $K^t$'s. With two data draws or more the intervals are t intervals over the
# draws (`ntk_utils.bootstrap.interval`).
#
# **Choices we made** (all parameters below): the snapshot grid is `n_snapshots` steps
# log-spaced from `first_snapshot` to the last step, plus $t=0$.
#
# **The shared parameters** (task, `classes`, image size, data draws, seeds, network,
# recipe, claim thresholds) have their defaults in `ntk_utils/setup.py` (the recipe in
# `train.TrainConfig`, the thresholds in `claims.Thresholds`); set any of them in the cell
# below or with `papermill -p name value`. The computation is `ntk_utils.sections.kernel_dynamics`.

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
from ntk_utils.sections import kernel_dynamics

_before_parameters = set(globals())

# %% tags=["parameters"]
n_values = [64, 128, 256, 512, 1024]                 # training-set sizes n of the kernel regressions
n_train = 1024                                       # the network's training-set size
n_snapshots = 6                                      # kernel snapshots after t 0, log-spaced
first_snapshot = 4                                   # the first snapshot's step
snapshot_steps = []                                  # explicit snapshot steps (empty: log-spaced)
t_scaling = [0, 2, 4, -1]                            # indices into the snapshots that get a data-scaling curve (-1: last)
output_dir = "outputs/notebooks/05_kernel_dynamics"  # where results.json, outcomes.npz and the figures are written
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

# %% [markdown]
# `t_scaling` holds indices into the grid $[0, t_1, \dots, t_K]$ (0 = init, -1 = the last
# step): the times that get a scaling curve in panel (b). A non-empty `snapshot_steps` (steps
# $t > 0$) replaces the log-spaced grid.

# %%
parameters = results.collect_parameters(globals(), _before_parameters)
setup, options = params.build("05_kernel_dynamics", parameters)
print(setup.describe(), setup.net.describe(), setup.recipe, sep="\n")

# %% [markdown]
# ## The training run with snapshots, and the eNTK at every snapshot
# $K^t$ is computed once on the training set (and test vs training set); $K^t_\text{fit}$ and
# the scaling curve of $K^t$ are both read off it, on nested leading blocks.

# %%
result = kernel_dynamics.run(setup, **options)
experiments.print_curves(result.curves)
print(result.timeline())

# %% [markdown]
# ## Figure 5 (two panels) and Figure 1C on its own
# Points: mean over draws and seeds (±1 std across them). $t = 0$ is drawn as dotted lines.

# %%
kernel_dynamics.figure(result, output_dir);

# %% [markdown]
# ## The claims, from the claims module's rules
# (a) along $t$ from $t = 0$, for $K^t$ fitted on the train set and on fresh samples; (b) at each
# time of `t_scaling`.

# %%
Markdown(claims.table(result.verdicts))

# %% [markdown]
# ## Result
# From this run's numbers (saved with its per-example outcomes in `output_dir`).

# %%
results.save(output_dir, setup.parameters(effective=True) | options, result.record(), result.outcomes)
Markdown(result.markdown())
