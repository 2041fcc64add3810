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
# # 0. Summary: Figure 1 and every exponent of a grid
#
# This notebook reads the `results.json` files that a grid run (`python -m ntk_utils.grid run
# parameters/quick.yaml`, i.e. `make quick`) left under `outputs/<grid>/`, draws the paper's
# Figure 1 from them, and tabulates every fitted data-scaling exponent and every claim check.
# It works on whatever subset of the grid has finished: missing panels say so.
#
# * **A** (Sec. 3): network vs eNTK at initialization vs infinite NTK, test error vs n.
# * **B** (Sec. 4): the after-kernel K^F_m(n) fitted on a fixed number of fresh samples keeps
#   improving as the network that produced it is trained on more samples m.
# * **C** (Sec. 5): the eNTK K^t taken at training time t, fitted on the full train set, keeps
#   improving through most of training.

# %%
import glob
import os

import numpy as np

from ntk_utils import plotting, results, scaling

_before_parameters = set(globals())

# %% tags=["parameters"]
grid_dir = "outputs/quick"
output_dir = "outputs/quick/figures"

# %%
os.makedirs(output_dir, exist_ok=True)
records = {}
for path in sorted(glob.glob(os.path.join(grid_dir, "*", "*", "results.json"))):
    cell = os.path.relpath(os.path.dirname(path), grid_dir)
    if not cell.startswith("figures"):
        records[cell] = results.load(path)
print(f"{len(records)} finished cells in {grid_dir}:", *records, sep="\n  ")


def first(notebook, key):
    """The first finished cell of ``notebook`` whose results have ``key``."""
    return next((r for cell, r in records.items() if cell.startswith(notebook) and key in r["results"]), None)


# %% [markdown]
# ## Figure 1

# %%
fig, (ax_a, ax_b, ax_c) = plotting.figure(3)
a = first("01_data_scaling", "curves")
if a:
    n_values = a["results"]["n_values"]
    for name, err in a["results"]["curves"].items():
        fit = scaling.PowerLawFit(**a["results"]["fits"][name])
        plotting.scaling_curve(ax_a, n_values, np.array(err), name, fit, color=plotting.COLORS.get(name))
    ax_a.set_title(f"A: data scaling ({a['parameters']['task']})")
else:
    ax_a.text(0.5, 0.5, "01_data_scaling not run yet", ha="center", transform=ax_a.transAxes)
b = first("04_after_kernel", "fig1b")
if b:
    f1b = b["results"]["fig1b"]
    ax_b.errorbar(f1b["m"], f1b["error"], yerr=f1b.get("error_std"), fmt="o-", capsize=3,
                  label=f"after-kernel K^F_m({f1b['n_fit']})")
    ax_b.set(xscale="log", xlabel="samples m the network was trained on", ylabel="test error",
             title="B: after-kernel vs m")
else:
    ax_b.text(0.5, 0.5, "04_after_kernel not run yet", ha="center", transform=ax_b.transAxes)
c = first("05_kernel_dynamics", "fig1c")
if c:
    f1c = c["results"]["fig1c"]
    ax_c.plot(f1c["t"], f1c["kernel_error"], "o-", label="eNTK K^t fitted on train set")
    ax_c.plot(f1c["t"], f1c["network_error"], "s--", label="network at time t")
    ax_c.axhline(f1c["entk_init_error"], color="gray", ls=":", label="eNTK at init")
    ax_c.set(xscale="log", xlabel="training step t", ylabel="test error", title="C: kernel dynamics")
else:
    ax_c.text(0.5, 0.5, "05_kernel_dynamics not run yet", ha="center", transform=ax_c.transAxes)
plotting.finish(fig, os.path.join(output_dir, "figure1.png"))

# %% [markdown]
# ## Every fitted exponent (α in test error ≈ C·n^-α, 95% bootstrap interval)

# %%
rows = [(cell, name, fit["alpha"], fit["alpha_low"], fit["alpha_high"], fit["n_min"], fit["n_max"])
        for cell, r in records.items() for name, fit in r["results"].get("fits", {}).items()]
print(f"{'cell':<40} {'curve':<34} {'alpha':>6}  95% CI           n range")
for cell, name, alpha, low, high, n_min, n_max in rows:
    print(f"{cell:<40} {name:<34} {alpha:6.3f}  [{low:.3f}, {high:.3f}]  {n_min}-{n_max}")

# %% [markdown]
# ## The paper's claims, as checked by each run

# %%
claims = [(cell, claim, verdict, why) for cell, r in records.items()
          for claim, (verdict, why) in r["results"].get("verdicts", {}).items()]
for cell, claim, verdict, why in claims:
    print(f"[{verdict.upper():^14}] {cell}: {claim} — {why}")
tally = {v: sum(1 for *_, verdict, _w in claims if verdict == v) for v in ("held", "direction only", "not held")}
print("\n" + ", ".join(f"{k}: {v}" for k, v in tally.items()))
with open(os.path.join(output_dir, "summary.md"), "w") as f:
    f.write(f"# Summary of {grid_dir}\n\n| cell | curve | α | 95% CI | n range |\n|---|---|---|---|---|\n")
    f.writelines(f"| {c} | {name} | {a:.3f} | [{lo:.3f}, {hi:.3f}] | {n0}-{n1} |\n" for c, name, a, lo, hi, n0, n1 in rows)
    f.write("\n| cell | claim | verdict | why |\n|---|---|---|---|\n")
    f.writelines(f"| {cell} | {claim} | {verdict} | {why} |\n" for cell, claim, verdict, why in claims)
results.write_json(os.path.join(output_dir, "summary.json"),
                   {"exponents": rows, "claims": claims, "tally": tally, "cells": list(records)})
