# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 0. Summary: Figure 1 and every exponent of a grid
#
# This notebook reads the `results.json` files that a grid run (`python -m ntk_utils.grid run
# parameters/quick.yaml`, i.e. `make quick`) left under `outputs/runs/<grid>/`, draws the paper's
# Figure 1 from them, and tabulates every fitted data-scaling exponent and every claim check.
# It works on whatever subset of the grid has finished: missing panels say so.
#
# * **A** (Sec. 3): network vs eNTK at initialization vs infinite NTK, test error vs n.
# * **B** (Sec. 4): the after-kernel K^F_m(n) fitted on a fixed number of fresh samples keeps
#   improving as the network that produced it is trained on more samples m.
# * **C** (Sec. 5): the eNTK K^t taken at training time t, fitted on the full train set, keeps
#   improving through most of training.
#
# The summary has only its own parameters (no shared setup: it reads what the sections saved).
# The computation is `ntk_utils.sections.summary`; each panel of Figure 1 is drawn by the panel
# function of its section, the one its own notebook draws with.

# %%
# Outside a checkout of this repository (e.g. opened from the README's Colab badge) install the
# pinned package first; inside it, or once installed, this does nothing.
try:
    import ntk_utils  # noqa: F401
except ImportError:
    get_ipython().run_line_magic("pip", "install -q 'ntk-limits @ git+https://github.com/ntk-limits/ntk-limits'")  # noqa: F821
    get_ipython().run_line_magic("pip", "install -q --no-deps neural-tangents==0.6.5")  # noqa: F821

# %%
from ntk_utils import params, results
from ntk_utils.sections import summary

_before_parameters = set(globals())

# %% tags=["parameters"]
grid_file = "parameters/quick.yaml"        # the grid file, relative to the repository root
grid_dir = "outputs/runs/quick"            # the grid's folder of cells, relative to the repository root (or absolute)
output_dir = "outputs/runs/quick/figures"  # where the summary, Figure 1 and summary.json are written

# %% [markdown]
# Only the cells of the grid file as it is now, whose `results.json` matches their current
# parameters and code, are summarized. Results of other parameters or code (stale), failed
# cells, cells not run yet and folders of cells no longer in the grid (orphaned) are listed.

# %%
_, options = params.build("00_summary", results.collect_parameters(globals(), _before_parameters))
state = summary.run(**options)
print(state.listing())

# %% [markdown]
# ## Figure 1
# Points: mean test error over data draws and seeds, error bars ±1 std across them; dashed:
# least-squares power law. Each panel comes from the cell of its notebook with the most runs.

# %%
summary.figure1(state.records, f"{output_dir}/figure1.png");

# %% [markdown]
# ## Every exponent comparison (α in test error ≈ C·n^-α; paired-bootstrap 95% intervals)

# %%
print(state.exponent_table())

# %% [markdown]
# ## The paper's claims, as checked by each run
# Written with the exponents into `summary.md` and `summary.json` in `output_dir`.

# %%
print(state.claim_list())
summary.write(state, output_dir)
