"""The primer: what the NTK is, and when it describes a network (background for courses).

For a one-hidden-layer ReLU network (models.mlp) of growing width, trained by full-batch
gradient descent with a constant step on n_train images:

    init_vs_infinite  = ‖Θ_0 - Θ_∞‖_F / ‖Θ_∞‖_F     the eNTK at initialization vs the infinite NTK
    kernel_movement   = ‖Θ_T - Θ_0‖_F / ‖Θ_0‖_F     how far training moves the kernel

on the training set (both should fall roughly like 1/√width), and the test errors of the
trained network, of kernel regression with Θ_0 and with Θ_∞. Its checks illustrate; the
paper's claims are the sections'.
"""
import dataclasses
import os

import numpy as np

from ntk_utils import data, experiments, kernels, models, params, plotting, regression, train


def check(task, classes, image_size, n_train, n_test, widths, depth, lr, steps, seed):
    """Problems with the primer's parameters (a list of sentences; empty when fine)."""
    problems = params.positive("widths", widths) + params.positive("n_train", n_train) \
        + params.positive("n_test", n_test) + params.positive("depth", depth) + params.positive("steps", steps) \
        + params.positive("seed", seed, low=0) + ([] if lr > 0 else [f"lr: {lr!r} must be > 0"])
    try:
        data.check(task, classes, image_size)
    except ValueError as e:
        problems.append(str(e))
    return problems


@dataclasses.dataclass
class Result:
    task: str
    n_train: int
    widths: list
    rows: list             # per width: init_vs_infinite, kernel_movement, network_error, entk_error
    infinite_error: float
    checks: dict           # illustration -> bool

    def record(self):
        return {"rows": self.rows, "infinite_error": self.infinite_error, "checks": self.checks}

    def markdown(self):
        first, last = self.rows[0], self.rows[-1]
        return (f"From width {first['width']} to {last['width']}, the eNTK at initialization moves from "
                f"{first['init_vs_infinite']:.3f} to {last['init_vs_infinite']:.3f} (relative distance) from the "
                f"infinite NTK, and training moves the kernel by {first['kernel_movement']:.3f} and then "
                f"{last['kernel_movement']:.3f}. Test errors at the largest width: network "
                f"{last['network_error']:.3f}, eNTK {last['entk_error']:.3f}, infinite NTK {self.infinite_error:.3f}. "
                + " ".join(f"**{claim}: {'held' if ok else 'not held'}.**" for claim, ok in self.checks.items()))


def run(task, classes, image_size, n_train, n_test, widths, depth, lr, steps, seed):
    """Train one network per width and measure its kernels (see the module docstring)."""
    task_data = experiments.load(task, n_train, n_test, image_size, classes=classes)
    x, y, x_test, y_test = task_data.x, task_data.y, task_data.x_test, task_data.y_test
    infinite = kernels.infinite_ntk(models.mlp(depth, 1), x)
    infinite_test = kernels.infinite_ntk(models.mlp(depth, 1), x_test, x)
    config = train.TrainConfig(lr=lr, momentum=0.0, full_batch=True, epochs=0, min_steps=steps, schedule="constant",
                               seed=seed)
    rows = []
    for width in widths:
        arch = models.mlp(depth, width)
        trained = train.train(arch, x, y, config, progress=False)
        k0 = kernels.network_ntk(arch, trained.init_params, x)
        kt = kernels.network_ntk(arch, trained.params, x)
        k0_test = kernels.network_ntk(arch, trained.init_params, x_test, x)
        rows.append(dict(
            width=width,
            init_vs_infinite=float(np.linalg.norm(k0 - infinite) / np.linalg.norm(infinite)),
            kernel_movement=float(np.linalg.norm(kt - k0) / np.linalg.norm(k0)),
            network_error=regression.test_error(train.predict(arch, trained.params, x_test), y_test),
            entk_error=regression.kernel_test_error(k0, y, k0_test, y_test)))
    distance, movement = [r["init_vs_infinite"] for r in rows], [r["kernel_movement"] for r in rows]
    checks = {"eNTK at init approaches the infinite NTK with width": bool(distance[-1] < distance[0]),
              "the kernel moves less in training as width grows (lazy training)": bool(movement[-1] < movement[0])}
    return Result(data.describe(task, classes), n_train, list(widths), rows,
                  regression.kernel_test_error(infinite, y, infinite_test, y_test), checks)


def figure(result, output_dir):
    """Kernel distances vs width (left) and test errors vs width (right): primer.png."""
    widths, rows = result.widths, result.rows
    fig, (ax1, ax2) = plotting.figure(2)
    ax1.loglog(widths, [r["init_vs_infinite"] for r in rows], "o-", label="eNTK at init vs infinite NTK")
    ax1.loglog(widths, [r["kernel_movement"] for r in rows], "s-", label="kernel movement in training")
    ax1.loglog(widths, 2.0 / np.sqrt(widths), "k:", label="1/sqrt(width) (guide)")
    ax1.set(xlabel="width", ylabel="relative Frobenius distance")
    ax2.semilogx(widths, [r["network_error"] for r in rows], "o-", label="network", color=plotting.COLORS["network"])
    ax2.semilogx(widths, [r["entk_error"] for r in rows], "s-", label="eNTK (init)",
                 color=plotting.COLORS["eNTK (init)"])
    ax2.axhline(result.infinite_error, ls="--", label="infinite NTK", color=plotting.COLORS["infinite NTK"])
    ax2.set(xlabel="width", ylabel="test error")
    return plotting.finish(fig, os.path.join(output_dir, "primer.png"),
                           f"one-hidden-layer ReLU net, {result.task}, n={result.n_train}")
