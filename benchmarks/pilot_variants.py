"""Pilot for notebook 03's variant learning rates, on validation half B of benchmarks/pilot_recipe.py
(never the test set): seed 0, n = 256 and 1024, Myrtle-5 width 64, standard parameterization.

    python benchmarks/pilot_variants.py   # its output is committed as outputs/reference/pilot/variants.log
"""
import numpy as np
from ntk_utils import experiments, models, regression, train
task = experiments.load("cifar10-pair", 1024, 1, image_size=8, data_seed=0, val_size=1000)
val_b = (task.x_val[500:], task.y_val[500:])
arch = models.arch_from_config("myrtle", 64, 5, "standard")
for name, kw in [("lr 0.2", dict(lr=0.2)), ("lr 0.3", dict(lr=0.3)), ("no momentum lr 0.5", dict(lr=0.5, momentum=0.0)),
                 ("no momentum lr 1.0", dict(lr=1.0, momentum=0.0)), ("no momentum lr 2.0", dict(lr=2.0, momentum=0.0))]:
    for n in (256, 1024):
        try:
            r = train.train(arch, task.x[:n], task.y[:n], train.TrainConfig(seed=0, **kw), progress=False, use_cache=False)
            print(name, n, "val_b", regression.test_error(r.outputs(arch, val_b[0]), val_b[1]), "train err", round(r.train_error, 4), flush=True)
        except train.TrainingDiverged as e:
            print(name, n, "DIVERGED", flush=True)
