"""Pilot that chose the default training recipe, on a validation split only (never the test set).

    python benchmarks/pilot_recipe.py [--out outputs/reference/pilot/recipe.json]

Task cifar10-pair (airplane vs automobile) at 8x8 px, Myrtle-5 width 64, data draw 0. The first
1000 samples of the training stream are a validation set cut in two halves: A (500) selects the
early-stopping checkpoint (lowest validation loss, ties to the later step), B (500) scores every
candidate. Training sets are the next n samples. Candidates: the standard parameterization
(flax default initialization, biases) at three learning rates, and the NTK parameterization
at the learning rates that trained it in earlier runs; each scored at its final parameters and
at its early-stopped ones. Notebook 01 quotes the table this writes.
"""
import argparse
import dataclasses
import json
import os
import time

import numpy as np

from ntk_utils import experiments, models, regression, train

CANDIDATES = [("standard", 0.02), ("standard", 0.05), ("standard", 0.1), ("ntk", 2.0), ("ntk", 8.0)]
NS, SEEDS, WIDTH = (256, 1024), (0, 1), 64


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="outputs/reference/pilot/recipe.json")
    args = parser.parse_args()
    task = experiments.load("cifar10-pair", max(NS), 1, image_size=8, data_seed=0, val_size=1000)
    val_a, val_b = (task.x_val[:500], task.y_val[:500]), (task.x_val[500:], task.y_val[500:])
    rows = []
    for parameterization, lr in CANDIDATES:
        arch = models.arch_from_config("myrtle", WIDTH, 5, parameterization)
        for n in NS:
            for seed in SEEDS:
                cfg = train.TrainConfig(lr=lr, early_stopping=True, seed=seed)
                start = time.time()
                try:
                    r = train.train(arch, task.x[:n], task.y[:n], cfg, val=val_a, progress=False)
                except train.TrainingDiverged:
                    rows.append(dict(parameterization=parameterization, lr=lr, n=n, seed=seed, diverged=True))
                    continue
                score = {name: regression.test_error(r.outputs(arch, val_b[0], p), val_b[1])
                         for name, p in (("final", r.final_params), ("early_stopped", r.params))}
                rows.append(dict(parameterization=parameterization, lr=lr, n=n, seed=seed, diverged=False,
                                 val_b_error_final=score["final"], val_b_error_early_stopped=score["early_stopped"],
                                 best_step=r.best_step, steps=r.steps, train_error_final=float(
                                     regression.test_error(r.outputs(arch, task.x[:n], r.final_params), task.y[:n])),
                                 seconds=round(time.time() - start, 1)))
                print(rows[-1], flush=True)
    table = []
    for parameterization, lr in CANDIDATES:
        for n in NS:
            mine = [r for r in rows if (r["parameterization"], r["lr"], r["n"]) == (parameterization, lr, n)]
            ok = [r for r in mine if not r["diverged"]]
            table.append(dict(parameterization=parameterization, lr=lr, n=n, diverged=len(mine) - len(ok),
                              final=float(np.mean([r["val_b_error_final"] for r in ok])) if ok else None,
                              early_stopped=float(np.mean([r["val_b_error_early_stopped"] for r in ok])) if ok else None))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"task": "cifar10-pair", "image_size": 8, "width": WIDTH, "seeds": SEEDS, "ns": NS,
                   "validation": "A = stream[0:500] selects, B = stream[500:1000] scores", "rows": rows,
                   "table": table}, f, indent=1)
    print(f"{'param.':>9} {'lr':>5} {'n':>5}  final  early-stopped  (validation-B error, mean of {len(SEEDS)} seeds)")
    for t in table:
        print(f"{t['parameterization']:>9} {t['lr']:>5} {t['n']:>5}  "
              + (f"{t['final']:.3f}  {t['early_stopped']:.3f}" if t["final"] is not None else "diverged"))


if __name__ == "__main__":
    main()
