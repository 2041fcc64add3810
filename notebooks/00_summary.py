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
# parameters/quick.yaml`, i.e. `make quick`) left under `outputs/runs/<grid>/`, draws the paper's
# Figure 1 from them, and tabulates every fitted data-scaling exponent and every claim check.
# It works on whatever subset of the grid has finished: missing panels say so.
#
# * **A** (Sec. 3): network vs eNTK at initialization vs infinite NTK, test error vs n.
# * **B** (Sec. 4): the after-kernel K^F_m(n) fitted on a fixed number of fresh samples keeps
#   improving as the network that produced it is trained on more samples m.
# * **C** (Sec. 5): the eNTK K^t taken at training time t, fitted on the full train set, keeps
#   improving through most of training.

# %%
import os

import numpy as np

from ntk_utils import grid, params, plotting, results, scaling
from ntk_utils.paths import REPO_ROOT

_before_parameters = set(globals())

# %% tags=["parameters"]
grid_file = "parameters/quick.yaml"
grid_dir = "outputs/runs/quick"
output_dir = "outputs/runs/quick/figures"

# %% [markdown]
# Only the cells of the grid file as it is now, whose `results.json` matches their current
# parameters and code, are summarized. Results of other parameters or code (stale), failed
# cells, cells not run yet and folders of cells no longer in the grid (orphaned) are listed.

# %%
globals().update(params.check("00_summary", results.collect_parameters(globals(), _before_parameters)))
os.makedirs(output_dir, exist_ok=True)


def shown(path):
    """A path as written into the summary: relative to the repository root (no machine paths)."""
    path = os.path.abspath(os.path.join(REPO_ROOT, path))
    inside = os.path.commonpath([path, str(REPO_ROOT)]) == str(REPO_ROOT)
    return os.path.relpath(path, REPO_ROOT) if inside else os.path.basename(path)


state = grid.collect(os.path.join(REPO_ROOT, grid_file), os.path.dirname(os.path.abspath(os.path.join(REPO_ROOT, grid_dir))))
records = state["done"]
not_summarized = {key: state[key] for key in ("stale", "failed", "todo", "orphaned")}
print(f"{len(records)} finished cells of {shown(grid_file)} in {shown(grid_dir)}:", *records, sep="\n  ")
for key, cells in not_summarized.items():
    if cells:
        print(f"{len(cells)} {key} (not summarized):", *cells, sep="\n  ")


def best(notebook, key):
    """The finished cell of ``notebook`` with ``key`` in its results and the most runs (data draws x seeds)."""
    cells = [r for cell, r in records.items() if cell.startswith(notebook) and key in r["results"]]
    return max(cells, key=lambda r: len(r["parameters"].get("data_seeds", [0])) * len(r["parameters"].get("seeds", [0])),
               default=None)


def runs_of(r):
    p = r["parameters"]
    return f"{len(p.get('data_seeds', [0]))}x{len(p.get('seeds', [0]))} runs"


# %% [markdown]
# ## Figure 1
# Points: mean test error over data draws and seeds, error bars ±1 std across them; dashed:
# least-squares power law. Each panel comes from the cell of its notebook with the most runs.

# %%
fig, (ax_a, ax_b, ax_c) = plotting.figure(3)
a = best("01_data_scaling", "curves")
if a:
    for name, c in a["results"]["curves"].items():
        fit = scaling.fit_power_law(c["x"], [c["mean"]], n_boot=0)
        plotting.scaling_curve(ax_a, c["x"], np.array(c["runs"], dtype=float), name, fit, color=plotting.COLORS.get(name))
    ax_a.set_title(f"A: data scaling ({a['parameters']['task']}, {runs_of(a)})", fontsize=9)
else:
    ax_a.text(0.5, 0.5, "01_data_scaling not run yet", ha="center", transform=ax_a.transAxes)
b = best("04_after_kernel", "curves")
if b:
    n_fit = b["parameters"]["n_fit"]
    c = b["results"]["curves"][f"K^F_m({n_fit})"]
    ax_b.errorbar(c["x"][1:], c["mean"][1:], yerr=c["std"][1:], fmt="o-", color="C4", capsize=3, ms=4,
                  label=f"after-kernel K^F_m({n_fit})")
    ax_b.axhline(c["mean"][0], color="C1", ls=":", label="m = 0: eNTK (init)")
    ax_b.set_xscale("log", base=2)
    ax_b.set_xticks(c["x"][1:], [str(m) for m in c["x"][1:]])
    ax_b.minorticks_off()
    ax_b.set(xlabel="samples m the network was trained on", ylabel="test error")
    ax_b.set_title(f"B: after-kernel vs m ({runs_of(b)})", fontsize=9)
else:
    ax_b.text(0.5, 0.5, "04_after_kernel not run yet", ha="center", transform=ax_b.transAxes)
c5 = best("05_kernel_dynamics", "curves")
if c5:
    epochs = np.array(c5["results"]["epochs"])
    for name, fmt, color in (("K^t_fit", "o-", "C3"), ("K^F,t_fit", "^-", "C4"), ("network(t)", "s--", "C0")):
        c = c5["results"]["curves"][name]
        ax_c.errorbar(epochs[1:], c["mean"][1:], yerr=c["std"][1:], fmt=fmt, color=color, capsize=3, ms=4, label=name)
        ax_c.axhline(c["mean"][0], color=color, ls=":", lw=1)
    ax_c.set(xscale="log", xlabel="training time t (epochs); dotted: t = 0", ylabel="test error")
    ax_c.set_title(f"C: kernel dynamics ({runs_of(c5)})", fontsize=9)
else:
    ax_c.text(0.5, 0.5, "05_kernel_dynamics not run yet", ha="center", transform=ax_c.transAxes)
plotting.finish(fig, os.path.join(output_dir, "figure1.png"))

# %% [markdown]
# ## Every exponent comparison (α in test error ≈ C·n^-α; paired-bootstrap 95% intervals)

# %%
rows = []
for cell, r in records.items():
    for v in r["results"].get("verdicts", {}).values():
        nb = v.get("numbers", {}) if isinstance(v, dict) else {}
        if nb.get("alpha_better") is not None and nb.get("delta_low") is not None:
            rows.append((cell, v["claim"], nb["alpha_better"], nb["alpha_worse"], nb["delta"], nb["delta_low"],
                         nb["delta_high"], nb.get("err_better_at_max"), nb.get("err_worse_at_max"), v["status"]))
print(f"{'cell':<36} {'comparison':<48} {'α_a':>6} {'α_b':>6}  Δα [95% CI]            err at max n   verdict")
for cell, claim, a1, a2, d, lo, hi, e1, e2, status in rows:
    print(f"{cell:<36} {claim:<48} {a1:6.3f} {a2:6.3f}  {d:+.3f} [{lo:+.3f}, {hi:+.3f}]  {e1:.3f} vs {e2:.3f}  {status}")
underfit = {cell: r["results"]["underfit"] for cell, r in records.items() if r["results"].get("underfit")}
for cell, text in underfit.items():
    print(f"UNDERFIT {cell}: {text}")

# %% [markdown]
# ## The paper's claims, as checked by each run

# %%
def verdict_rows(verdicts):
    """[(claim, status, why)] from a run's verdicts: {claim: [status, why]} (older runs), or
    {claim: {"claim", "status", "text", "numbers"}} / a list of such dicts (the claims module)."""
    items = verdicts.items() if isinstance(verdicts, dict) else ((None, v) for v in verdicts)
    rows = []
    for claim, v in items:
        if isinstance(v, dict):
            rows.append((v.get("claim", claim), v.get("status", "?"), v.get("text", "")))
        else:
            status, why = (list(v) + ["", ""])[:2]
            rows.append((claim, status, why))
    return rows


claims = [(cell, claim, status, why) for cell, r in records.items()
          for claim, status, why in verdict_rows(r["results"].get("verdicts", {}))]
for cell, claim, verdict, why in claims:
    print(f"[{verdict.upper():^14}] {cell}: {claim} — {why}")
statuses = ["held", "not held", "inconclusive"] + ["direction only"] * any(v == "direction only" for *_, v, _w in claims)
statuses += sorted({v for *_, v, _w in claims} - set(statuses))
tally = {s: sum(1 for *_, verdict, _w in claims if verdict == s) for s in statuses}
print("\n" + ", ".join(f"{k}: {v}" for k, v in tally.items()))


def cell_text(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


with open(os.path.join(output_dir, "summary.md"), "w") as f:
    f.write(f"# Summary of {shown(grid_dir)} (grid file {shown(grid_file)})\n\n"
            f"{len(records)} cells with current results.\n\n"
            "| cell | comparison | α (a) | α (b) | Δα [95% CI] | error at largest n (a vs b) | verdict |\n"
            "|---|---|---|---|---|---|---|\n")
    f.writelines(f"| {c} | {cell_text(claim)} | {a1:.3f} | {a2:.3f} | {d:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
                 f"{e1:.3f} vs {e2:.3f} | {status} |\n" for c, claim, a1, a2, d, lo, hi, e1, e2, status in rows)
    f.write("\n## Underfit networks\n\n" + ("".join(f"* {c}: {cell_text(t)}\n" for c, t in underfit.items())
                                              or "none: every network fit its training set\n"))
    f.write("\n| cell | claim | verdict | why |\n|---|---|---|---|\n")
    f.writelines(f"| {cell} | {cell_text(claim)} | {verdict} | {cell_text(why)} |\n" for cell, claim, verdict, why in claims)
    f.write("\n" + ", ".join(f"{k}: {v}" for k, v in tally.items()) + "\n")
    f.write("\n## Cells not summarized\n\n")
    for key, what in (("stale", "results of other parameters or code"), ("failed", "see <cell>.failed/"),
                      ("todo", "not run yet"), ("orphaned", "folders of cells not in the grid file")):
        f.write(f"* {key} ({what}): {', '.join(not_summarized[key]) or 'none'}\n")
results.write_json(os.path.join(output_dir, "summary.json"),
                   {"grid_file": shown(grid_file), "grid_dir": shown(grid_dir), "exponents": rows,
                    "claims": claims, "tally": tally, "underfit": underfit, "cells": list(records), **not_summarized})
