"""Figure 1 and every verdict of a grid run, from the results.json files its cells left.

    state = run(grid_file, grid_dir)      # the current cells of the grid as it is now (cells.collect)
    figure1(state.records, path)          # panels A, B, C drawn by the sections' own panel functions
    write(state, output_dir)              # summary.md and summary.json

Only cells whose results.json matches their current parameters and code ("done", the one rule
of ``cells.state``) are summarized; stale, failed, not-yet-run and orphaned cells are listed,
each with why. Paths written into the summary are relative to the repository root (no machine
paths).

Figure 1, each panel from the finished cell of its notebook with the most runs (data draws x seeds):

    A (Sec. 3)  01_data_scaling     network vs its NTKs, test error vs n   data_scaling.panel
    B (Sec. 4)  04_after_kernel     K^F_m(n_fit) vs m                     after_kernel.panel_1b
    C (Sec. 5)  05_kernel_dynamics  K^t fitted, vs training time t        kernel_dynamics.panel_1c
"""
import dataclasses
import json
import os

from ntk_utils import cells, plotting, results
from ntk_utils.paths import REPO_ROOT, shown
from ntk_utils.sections import after_kernel, data_scaling, kernel_dynamics

NOT_SUMMARIZED = {"stale": "results of other parameters or code", "failed": "see <cell>.failed/",
                  "todo": "not run yet", "orphaned": "folders of cells not in the grid file"}


def check(grid_file, grid_dir):
    """Problems with the summary's parameters (a list of sentences; empty when fine)."""
    return [] if os.path.isfile(os.path.join(REPO_ROOT, grid_file)) else \
        [f"grid_file: {grid_file!r} does not exist (paths are relative to the repository root)"]


# ------------------------------------------------------------------------ the rows

def best(records, notebook, key):
    """The finished cell of ``notebook`` with ``key`` in its results and the most runs (data draws x seeds)."""
    candidates = [r for cell, r in records.items() if cell.startswith(notebook) and key in r["results"]]
    return max(candidates, default=None,
               key=lambda r: len(r["parameters"].get("data_seeds", [0])) * len(r["parameters"].get("seeds", [0])))


def runs_of(record):
    p = record["parameters"]
    return f"{len(p.get('data_seeds', [0]))}x{len(p.get('seeds', [0]))} runs"


def exponent_rows(records):
    """[(cell, claim, α_a, α_b, Δα, low, high, err_a at max n, err_b at max n, status)] of every
    verdict that compares two exponents."""
    rows = []
    for cell, r in records.items():
        for v in r["results"].get("verdicts", {}).values():
            nb = v.get("numbers", {}) if isinstance(v, dict) else {}
            if nb.get("alpha_better") is not None and nb.get("delta_low") is not None:
                rows.append((cell, v["claim"], nb["alpha_better"], nb["alpha_worse"], nb["delta"], nb["delta_low"],
                             nb["delta_high"], nb.get("err_better_at_max"), nb.get("err_worse_at_max"), v["status"]))
    return rows


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


def claim_rows(records):
    """[(cell, claim, status, why)] of every verdict of every cell."""
    return [(cell, claim, status, why) for cell, r in records.items()
            for claim, status, why in verdict_rows(r["results"].get("verdicts", {}))]


def repeated_claims(records):
    """{(cell, claim): (cell, claim) of its first appearance}: verdicts whose numbers (caveats
    aside) equal an earlier verdict's, i.e. the same comparison on the same outcomes made by two
    notebooks (05's K^t at the end of training is 04's K_m when they share their runs)."""
    first, repeated = {}, {}
    for cell, r in records.items():
        verdicts = r["results"].get("verdicts", {})
        for v in verdicts.values() if isinstance(verdicts, dict) else verdicts:
            if isinstance(v, dict) and v.get("numbers"):
                key = json.dumps({k: x for k, x in v["numbers"].items() if k != "caveats"}, sort_keys=True)
                repeated.update({(cell, v["claim"]): first[key]} if key in first else {})
                first.setdefault(key, (cell, v["claim"]))
    return repeated


def tally(claims, repeated=()):
    """{status: count} of claim rows, each claim once (rows in ``repeated`` are not counted): held,
    not held, inconclusive, then any other status seen."""
    claims = [row for row in claims if tuple(row[:2]) not in repeated]
    statuses = ["held", "not held", "inconclusive"] + ["direction only"] * any(v == "direction only"
                                                                               for *_, v, _w in claims)
    statuses += sorted({v for *_, v, _w in claims} - set(statuses))
    return {s: sum(1 for *_, verdict, _w in claims if verdict == s) for s in statuses}


def _cell_text(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


@dataclasses.dataclass
class Summary:
    grid_file: str            # as shown (relative to the repository root)
    grid_dir: str
    records: dict             # cell id -> results.json record, the finished current cells
    not_summarized: dict      # "stale", "failed", "todo", "orphaned" -> [cell ids / folders]
    why: dict                 # cell id -> why it is stale, failed or todo
    exponents: list           # exponent_rows
    claims: list              # claim_rows
    tally: dict               # each claim once (repeated claims are not counted again)
    underfit: dict            # cell id -> its underfit caveat
    repeated: dict            # repeated_claims

    def listing(self):
        """The cells summarized and those not (why), as printed text."""
        lines = [f"{len(self.records)} finished cells of {self.grid_file} in {self.grid_dir}:"]
        lines += [f"  {cell}" for cell in self.records]
        for key, ids in self.not_summarized.items():
            if ids:
                lines += [f"{len(ids)} {key} (not summarized):"] + [f"  {self.named(cell)}" for cell in ids]
        return "\n".join(lines)

    def named(self, cell):
        """A cell not summarized, with why: "toy/lr=0.2 (other parameters: lr 0.1 -> 0.2)"."""
        return f"{cell} ({self.why[cell]})" if cell in self.why else cell

    def exponent_table(self):
        """Every exponent comparison and every underfit caveat, as printed text."""
        lines = [f"{'cell':<36} {'comparison':<48} {'α_a':>6} {'α_b':>6}  Δα [95% CI]            err at max n   verdict"]
        lines += [f"{cell:<36} {claim:<48} {a1:6.3f} {a2:6.3f}  {d:+.3f} [{lo:+.3f}, {hi:+.3f}]  {e1:.3f} vs {e2:.3f}  "
                  f"{status}" for cell, claim, a1, a2, d, lo, hi, e1, e2, status in self.exponents]
        lines += [f"UNDERFIT {cell}: {text}" for cell, text in self.underfit.items()]
        return "\n".join(lines)

    def claim_list(self):
        """Every claim check and the tally, as printed text."""
        lines = [f"[{verdict.upper():^14}] {cell}: {claim} — {why}" for cell, claim, verdict, why in self.claims]
        return "\n".join(lines + ["", ", ".join(f"{k}: {v}" for k, v in self.tally.items())])

    def markdown(self):
        """summary.md."""
        text = (f"# Summary of {self.grid_dir} (grid file {self.grid_file})\n\n"
                f"{len(self.records)} cells with current results.\n\n"
                "| cell | comparison | α (a) | α (b) | Δα [95% CI] | error at largest n (a vs b) | verdict |\n"
                "|---|---|---|---|---|---|---|\n")
        text += "".join(f"| {c} | {_cell_text(claim)} | {a1:.3f} | {a2:.3f} | {d:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
                        f"{e1:.3f} vs {e2:.3f} | {status} |\n"
                        for c, claim, a1, a2, d, lo, hi, e1, e2, status in self.exponents)
        text += "\n## Underfit networks\n\n" + ("".join(f"* {c}: {_cell_text(t)}\n" for c, t in self.underfit.items())
                                               or "none: every network fit its training set\n")
        text += "\n| cell | claim | verdict | why |\n|---|---|---|---|\n"
        text += "".join(f"| {cell} | {_cell_text(claim)} | {verdict} | {_cell_text(why)} |\n"
                        for cell, claim, verdict, why in self.claims)
        text += "\n" + ", ".join(f"{k}: {v}" for k, v in self.tally.items()) + "\n"
        text += "".join(f"\n{c}: {_cell_text(claim)} is {first_c}: {_cell_text(first)} again (counted once)\n"
                        for (c, claim), (first_c, first) in self.repeated.items())
        text += "\n## Cells not summarized\n\n"
        text += "".join(f"* {key} ({what}): {', '.join(map(self.named, self.not_summarized[key])) or 'none'}\n"
                        for key, what in NOT_SUMMARIZED.items())
        return text

    def record(self):
        """summary.json."""
        return {"grid_file": self.grid_file, "grid_dir": self.grid_dir, "exponents": self.exponents,
                "claims": self.claims, "tally": self.tally, "underfit": self.underfit, "cells": list(self.records),
                "repeated": [[*row, *first] for row, first in self.repeated.items()],
                **self.not_summarized, "why": self.why}


def run(grid_file, grid_dir):
    """The :class:`Summary` of the cells of ``grid_file`` (as it is now) under ``grid_dir``
    (paths relative to the repository root, or absolute)."""
    state = cells.collect(os.path.join(REPO_ROOT, grid_dir), os.path.join(REPO_ROOT, grid_file))
    records = state["done"]
    claims, repeated = claim_rows(records), repeated_claims(records)
    return Summary(shown(grid_file), shown(grid_dir), records, {key: state[key] for key in NOT_SUMMARIZED},
                   state["why"], exponent_rows(records), claims, tally(claims, repeated),
                   {cell: r["results"]["underfit"] for cell, r in records.items() if r["results"].get("underfit")},
                   repeated)


def write(summary, output_dir):
    """Write ``output_dir/summary.md`` and ``output_dir/summary.json``."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "summary.md"), "w") as f:
        f.write(summary.markdown())
    results.write_json(os.path.join(output_dir, "summary.json"), summary.record())


# ------------------------------------------------------------------------ Figure 1

def figure1(records, path=None):
    """Figure 1 from the finished cells ``records`` ({cell id: results.json record}), each panel
    drawn by its section's own panel function; a notebook with no finished cell leaves its panel
    saying so. Saved to ``path`` if given; returns the figure."""
    fig, (ax_a, ax_b, ax_c) = plotting.figure(3)
    a = best(records, "01_data_scaling", "curves")
    if a:
        data_scaling.panel(ax_a, a["results"]["curves"])
        ax_a.set_title(f"A: data scaling ({a['parameters']['task']}, {runs_of(a)})", fontsize=9)
    b = best(records, "04_after_kernel", "curves")
    if b:
        n_fit = b["parameters"]["n_fit"]
        after_kernel.panel_1b(ax_b, b["results"]["curves"][f"K^F_m({n_fit})"], n_fit)
        ax_b.set_title(f"B: after-kernel vs m ({runs_of(b)})", fontsize=9)
    c = best(records, "05_kernel_dynamics", "curves")
    if c:
        kernel_dynamics.panel_1c(ax_c, c["results"]["curves"], c["results"]["epochs"], c["parameters"]["n_train"])
        ax_c.set_title(f"C: kernel dynamics ({runs_of(c)})", fontsize=9)
    for ax, record, notebook in ((ax_a, a, "01_data_scaling"), (ax_b, b, "04_after_kernel"),
                                 (ax_c, c, "05_kernel_dynamics")):
        if not record:
            ax.text(0.5, 0.5, f"{notebook} not run yet", ha="center", transform=ax.transAxes)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return plotting.finish(fig, path)
