"""Pilot that chose notebook 02's learning rate per width, on a validation split only (never the test set).

    python benchmarks/pilot_width.py [--out outputs/reference/pilot/width.json]

Notebook 02 trains every width in the NTK parameterization, where a good learning rate is O(1)
but not the same at every width (at lr 8 the CPU reference's width-16 networks diverged or stayed
at chance). Task cifar10-pair (airplane vs automobile) at 8x8 px, data draw 0, seed 0, the setup's
recipe (SGD + momentum, MSE, cosine decay, final network) but for the rate; each candidate is
scored by its 0-1 error on the draw's validation split (the setup's ``val_size`` = 500 images
before the training pool). Sizes: every width at the sweep's n (``N_SWEEP``, the CPU reference's
``n_fixed``), and the widths of panel (a) also at the smallest and largest n of its range.

Search, per width, on the ladder ``LADDER`` (factors of 2): start at three rungs around
``START``; while the best (lowest mean validation error over the width's n; a diverged run counts
as chance, 0.5) sits at an edge of the rungs tried and a further rung exists, try it. So the rate
chosen is inside the rungs tried unless it is the ladder's end, which the table says.
Notebook 02's ``lr_by_width`` / ``cnn5_lr_by_width`` defaults quote the choice this writes; the
file is written after every width, and a rerun resumes: it keeps the widths already in it.
"""
import argparse
import json
import os
import time

import numpy as np

from ntk_utils import experiments, models, regression, train

LADDER = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
START = 4.0
N_SWEEP, N_SCALING = 256, (64, 256, 1024)
# (architecture, width, n) in running order; Myrtle width 256 last: one rung costs ~3 min on 2 cores
WIDTHS = ([("myrtle", w, N_SCALING if w in (16, 64) else (N_SWEEP,)) for w in (8, 16, 32, 64, 128)]
          + [("cnn5", w, (N_SWEEP,)) for w in (4, 8, 16, 32, 64)] + [("myrtle", 256, (N_SWEEP,))])
CHANCE = 0.5


def score(arch, task, n, lr, seed=0):
    """One row: validation error of the network trained on the first n samples at ``lr``."""
    start = time.time()
    try:
        r = train.train(arch, task.x[:n], task.y[:n], train.TrainConfig(lr=lr, seed=seed), progress=False)
    except train.TrainingDiverged:
        return dict(n=n, lr=lr, diverged=True, val_error=None, train_error=None)
    return dict(n=n, lr=lr, diverged=False,
                val_error=float(regression.test_error(r.outputs(arch, task.x_val, r.final_params), task.y_val)),
                train_error=float(r.train_error), seconds=round(time.time() - start, 1))


def mean_error(rows, lr):
    return float(np.mean([CHANCE if r["diverged"] else r["val_error"] for r in rows if r["lr"] == lr]))


def search(arch, task, ns):
    """(chosen lr, rows): the ladder search of the module docstring for one width."""
    k = LADDER.index(START)
    tried, rows = [], []

    def trial(i):
        tried.append(i)
        for n in ns:
            rows.append(score(arch, task, n, LADDER[i]))
            print(arch.describe(), rows[-1], flush=True)

    for i in (k - 1, k, k + 1):
        trial(i)
    while True:
        best = min(sorted(tried), key=lambda i: mean_error(rows, LADDER[i]))
        edge = min(tried) - 1 if best == min(tried) else max(tried) + 1 if best == max(tried) else None
        if edge is None or not 0 <= edge < len(LADDER):
            return LADDER[best], rows
        trial(edge)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="outputs/reference/pilot/width.json")
    args = parser.parse_args()
    task = experiments.load("cifar10-pair", max(N_SCALING), 1, image_size=8, data_seed=0, val_size=500)
    out = {"task": "cifar10-pair", "image_size": 8, "parameterization": "ntk", "seed": 0, "data_seed": 0,
           "validation": "the draw's 500 validation images", "ladder": LADDER, "start": START, "panels": {}}
    if os.path.exists(args.out):   # resume: keep the widths an interrupted pilot already chose
        with open(args.out) as f:
            out["panels"] = json.load(f)["panels"]
    for name, width, ns in WIDTHS:
        chosen = out["panels"].setdefault(name, {})
        if str(width) in chosen:
            continue
        lr, rows = search(models.arch_from_config(name, width, 5, "ntk"), task, ns)
        chosen[str(width)] = {"ns": list(ns), "lr": lr, "at_ladder_end": lr in (LADDER[0], LADDER[-1]), "rows": rows}
        print(f"{name} width {width}: lr {lr}", flush=True)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:   # after every width: an interrupted pilot keeps what it chose
            json.dump(out, f, indent=1)
    for name, widths in out["panels"].items():
        print(f"{name}: " + ", ".join(f"width {w}: lr {v['lr']}" for w, v in widths.items()))


if __name__ == "__main__":
    main()
