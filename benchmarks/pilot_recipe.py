"""Pilot that chose the default training recipe, on a validation split only (never the test set).

    python benchmarks/pilot_recipe.py [--out outputs/reference/pilot/recipe.json]

Task cifar10-pair (airplane vs automobile) at 8x8 px, Myrtle-5 width 64, data draw 0. The first
1000 samples of the training stream are a validation set cut in two halves: A (500) selects the
early-stopping checkpoint (lowest validation loss, ties to the later step), B (500) scores every
candidate. Training sets are the next n samples, at the smallest, a middle and the largest n of
notebook 01's CPU reference (64, 512, 4096). Candidates: the standard parameterization (flax
default initialization, biases) over a learning-rate grid wide enough that its best value is
inside it, and at the smallest n (where the default batch of 128 is the whole training set)
batch 32 as well; each scored at its final parameters and at its early-stopped ones. The
default is the candidate with the lowest validation error averaged over the three n.
Notebook 01 quotes the table this writes.
"""
import argparse
import dataclasses
import json
import os
import time

import numpy as np

from ntk_utils import experiments, models, regression, train

LRS = (0.0125, 0.025, 0.05, 0.1, 0.2)
CANDIDATES = [("standard", lr, 128) for lr in LRS] + [("standard", lr, 32) for lr in LRS]   # (param., lr, batch)
NS, SEEDS, WIDTH = (64, 512, 4096), (0, 1), 64
SMALL_BATCH_NS = (64,)   # batch 32 only where 128 is the whole training set


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="outputs/reference/pilot/recipe.json")
    args = parser.parse_args()
    task = experiments.load("cifar10-pair", max(NS), 1, image_size=8, data_seed=0, val_size=1000)
    val_a, val_b = (task.x_val[:500], task.y_val[:500]), (task.x_val[500:], task.y_val[500:])
    rows = []
    for parameterization, lr, batch in CANDIDATES:
        arch = models.arch_from_config("myrtle", WIDTH, 5, parameterization)
        for n in NS if batch == 128 else SMALL_BATCH_NS:
            for seed in SEEDS:
                cfg = train.TrainConfig(lr=lr, batch_size=batch, early_stopping=True, seed=seed)
                start = time.time()
                try:
                    r = train.train(arch, task.x[:n], task.y[:n], cfg, val=val_a, progress=False)
                except train.TrainingDiverged:
                    rows.append(dict(parameterization=parameterization, lr=lr, batch=batch, n=n, seed=seed,
                                     diverged=True))
                    continue
                score = {name: regression.test_error(r.outputs(arch, val_b[0], p), val_b[1])
                         for name, p in (("final", r.final_params), ("early_stopped", r.params))}
                rows.append(dict(parameterization=parameterization, lr=lr, batch=batch, n=n, seed=seed,
                                 diverged=False,
                                 val_b_error_final=score["final"], val_b_error_early_stopped=score["early_stopped"],
                                 best_step=r.best_step, steps=r.steps, train_error_final=float(
                                     regression.test_error(r.outputs(arch, task.x[:n], r.final_params), task.y[:n])),
                                 seconds=round(time.time() - start, 1)))
                print(rows[-1], flush=True)
    table = []
    for parameterization, lr, batch in CANDIDATES:
        for n in NS if batch == 128 else SMALL_BATCH_NS:
            key = (parameterization, lr, batch, n)
            mine = [r for r in rows if (r["parameterization"], r["lr"], r["batch"], r["n"]) == key]
            ok = [r for r in mine if not r["diverged"]]
            table.append(dict(parameterization=parameterization, lr=lr, batch=batch, n=n, diverged=len(mine) - len(ok),
                              final=float(np.mean([r["val_b_error_final"] for r in ok])) if ok else None,
                              early_stopped=float(np.mean([r["val_b_error_early_stopped"] for r in ok])) if ok else None))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"task": "cifar10-pair", "image_size": 8, "width": WIDTH, "seeds": SEEDS, "ns": NS,
                   "validation": "A = stream[0:500] selects, B = stream[500:1000] scores", "rows": rows,
                   "table": table}, f, indent=1)
    print(f"{'param.':>9} {'lr':>6} {'batch':>5} {'n':>5}  final  early-stopped  (validation-B error, mean of "
          f"{len(SEEDS)} seeds)")
    for t in table:
        print(f"{t['parameterization']:>9} {t['lr']:>6} {t['batch']:>5} {t['n']:>5}  "
              + (f"{t['final']:.3f}  {t['early_stopped']:.3f}" if t["final"] is not None else "diverged"))


if __name__ == "__main__":
    main()
