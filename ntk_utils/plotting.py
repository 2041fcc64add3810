"""Figures in the paper's layout: log-log scaling curves with fitted power laws."""
import os
import textwrap

import matplotlib.pyplot as plt
import numpy as np

from ntk_utils import scaling

# One color and marker per kind of predictor, the same in every figure (the linearized network
# often lies on the eNTK's points: a hollow marker keeps both visible).
COLORS = {"network": "C0", "eNTK (init)": "C1", "infinite NTK (SP)": "C2", "infinite NTK (NTK param.)": "C3",
          "linearized network": "C5"}
MARKERS = {"linearized network": "^"}


def scaling_curve(ax, curve, label, color=None, marker=None):
    """Plot one curve of test error vs n: the mean over runs with ±1 std error bars, and its
    least-squares power law (dashed; the fit is in the legend).

    curve: a curve record (``experiments.summarize``'s, or results.json's): "x" (K,) and "runs"
    (runs, K); NaN or null entries (diverged runs) are left out.
    """
    ns, errors = curve["x"], np.atleast_2d(np.asarray(curve["runs"], dtype=float))
    mean, std = np.nanmean(errors, 0), np.nanstd(errors, 0)
    fit = scaling.fit_power_law(ns, errors)
    color = color or COLORS.get(label)
    marker = marker or MARKERS.get(label, "o")
    line = ax.errorbar(ns, mean, yerr=std if len(errors) > 1 else None, fmt=marker, color=color,
                       label=f"{label} ({fit})", capsize=3, ms=4 if marker == "o" else 6,
                       mfc="none" if marker == "^" else color)
    grid = np.geomspace(fit.n_min, fit.n_max, 50)
    ax.plot(grid, fit.predict(grid), "--", color=line[0].get_color(), lw=1)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("training samples n")
    ax.set_ylabel("test error")
    return line


def finish(fig, path=None, title=None):
    """Legend, layout, optional title; save to ``path`` (PNG) if given."""
    for ax in fig.axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    if title:   # wrapped to the figure's width (about 11 characters per inch at 10 pt)
        fig.suptitle(textwrap.fill(title, width=int(11 * fig.get_figwidth())), fontsize=10)
    fig.tight_layout()
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


def figure(ncols=1, width=4.5, height=3.6):
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])
