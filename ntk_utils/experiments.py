"""The measurements every section repeats: test error vs n of a network, of its eNTK at
initialization, and of the infinite NTK, on nested training sets.

Kernel curves are computed once on the largest training set: the sets are nested (the
first n samples of the n_max set are the n set), so K on the n set is the leading n×n block
of K on the n_max set, and one kernel serves every n.
"""
import dataclasses

import numpy as np

from ntk_utils import data, kernels, regression, train


@dataclasses.dataclass
class Task:
    """Training pool (the first n of it is the size-n training set) and a fixed test set."""
    name: str
    x: np.ndarray          # (n_max, H, W, C) float32
    y: np.ndarray          # (n_max,) ±1
    x_test: np.ndarray     # (n_test, H, W, C)
    y_test: np.ndarray     # (n_test,)
    image_size: int
    data_seed: int

    def fresh(self, n, after=None):
        """n samples disjoint from this pool's first ``after`` (default: all of it): for K^F."""
        x, y, _, _ = data.load_task(self.name, n, 1, seed=self.data_seed, image_size=self.image_size,
                                    skip=len(self.x) if after is None else after)
        return x, y


def load(task, n_max, n_test, image_size=8, data_seed=0):
    """A :class:`Task` with an n_max training pool and n_test test images."""
    x, y, x_test, y_test = data.load_task(task, n_max, n_test, seed=data_seed, image_size=image_size)
    return Task(task, x, y, x_test, y_test, image_size, data_seed)


def nested_kernel_errors(k_train, k_test_train, y, y_test, ns, ridge=0.0):
    """Test errors (len(ns),) of kernel regression on the first n samples, for each n in ns.

    k_train: (N, N) kernel on the pool; k_test_train: (n_test, N); ns <= N.
    """
    return np.array([regression.kernel_test_error(k_train[:n, :n], y[:n], k_test_train[:, :n], y_test, ridge=ridge)
                     for n in ns])


def network_curve(arch, task, ns, seeds, config, *, val_size=0, progress=True):
    """Network test errors (len(seeds), len(ns)) and the trained results {(seed, n): TrainResult}.

    With ``config.early_stopping``, ``val_size`` fresh samples (outside the pool) are the
    validation set.
    """
    val = task.fresh(val_size) if config.early_stopping else None
    errors, results = np.zeros((len(seeds), len(ns))), {}
    for i, seed in enumerate(seeds):
        for j, n in enumerate(ns):
            cfg = dataclasses.replace(config, seed=seed)
            result = train.train(arch, task.x[:n], task.y[:n], cfg, val=val, progress=progress)
            errors[i, j] = regression.test_error(train.predict(arch, result.params, task.x_test), task.y_test)
            results[seed, n] = result
    return errors, results


def init_params(arch, seed, task):
    """The network's parameters at initialization for ``seed`` (the same as train() starts from)."""
    import jax
    from ntk_utils import models
    return jax.device_get(models.flax_model(arch).init(jax.random.PRNGKey(seed), task.x[:1]))


def entk_curve(arch, params, task, ns, ridge=0.0):
    """Test errors (len(ns),) of kernel regression with the eNTK of ``arch`` at ``params``."""
    n_max = max(ns)
    k = kernels.network_ntk(arch, params, task.x[:n_max])
    k_test = kernels.network_ntk(arch, params, task.x_test, task.x[:n_max])
    return nested_kernel_errors(k, k_test, task.y, task.y_test, ns, ridge)


def entk_init_curve(arch, task, ns, seeds, ridge=0.0):
    """eNTK-at-initialization test errors (len(seeds), len(ns)), one initialization per seed."""
    return np.array([entk_curve(arch, init_params(arch, seed, task), task, ns, ridge) for seed in seeds])


def infinite_curve(arch, task, ns, ridge=0.0):
    """Infinite-NTK test errors (len(ns),) of ``arch`` (cached: computed once per data set)."""
    n_max = max(ns)
    k = kernels.infinite_ntk_cached(arch, task.x[:n_max])
    k_test = kernels.infinite_ntk_cached(arch, task.x_test, task.x[:n_max])
    return nested_kernel_errors(k, k_test, task.y, task.y_test, ns, ridge)


def entk_errors(arch, params, x, y, x_test, y_test, ns, ridge=0.0):
    """Test errors (len(ns),) of kernel regression with the eNTK of ``arch`` at ``params``,
    fitted on the first n of (x (N, H, W, C), y (N,)) for each n in ns (<= N) and tested on
    (x_test (n_test, H, W, C), y_test (n_test,)).

    :func:`entk_curve` on any sample set, e.g. fresh samples (``Task.fresh``) for the
    after-kernel K^F_m(n). One kernel on x[:max(ns)] serves every n (cached on disk: the same
    inputs and params as an :func:`entk_curve` call give a cache hit).
    """
    n_max = max(ns)
    k = kernels.network_ntk(arch, params, x[:n_max])
    k_test = kernels.network_ntk(arch, params, x_test, x[:n_max])
    return nested_kernel_errors(k, k_test, y, y_test, ns, ridge)


def improvement_halves(x, errors):
    """How much an error curve falls over the first and the second half of its grid in log x.

    x: (k,) positive, increasing (k >= 2); errors: (k,) or (s, k) (e.g. one row per seed).
    Returns (first, second), each (s,): err(x_1) - err(x_mid) and err(x_mid) - err(x_k), with
    x_mid = sqrt(x_1 x_k) and err(x_mid) interpolated linearly in log x. Positive = improving.
    """
    log_x = np.log(np.asarray(x, dtype=float))
    errors = np.atleast_2d(np.asarray(errors, dtype=float))
    mid = np.array([np.interp(0.5 * (log_x[0] + log_x[-1]), log_x, row) for row in errors])
    return errors[:, 0] - mid, mid - errors[:, -1]


def keeps_improving(x, errors, *, fraction=1 / 3, name="x"):
    """Verdict on "the error keeps falling along x, at a steady rate in log x".

    x: (k,) increasing grid; errors: (k,) or (s, k). With (first, second) from
    :func:`improvement_halves` averaged over rows: "not held" when the second half of the log-x
    grid brings no improvement, or the whole grid none (first + second <= 0); "held" when the
    second half brings at least ``fraction`` of the first half's improvement (or any, if the
    first half brought none) and every row improves there; else "direction only".
    Returns (verdict, sentence).
    """
    first, second = improvement_halves(x, errors)
    f, s = float(np.mean(first)), float(np.mean(second))
    x_mid = float(np.sqrt(x[0] * x[-1]))
    text = (f"error fell by {f:+.4f} from {name}={x[0]:g} to {name}≈{x_mid:.3g} and by {s:+.4f} from there to "
            f"{name}={x[-1]:g} (per row: {', '.join(f'{v:+.4f}' for v in second)})")
    if s <= 0:
        return "not held", text + ": no improvement over the second half"
    if f + s <= 0:
        return "not held", text + ": no improvement over the whole grid"
    if np.all(second > 0) and (f <= 0 or s >= fraction * f):
        return "held", text + f": the second half brings >= {fraction:.2g} of the first half's improvement"
    return "direction only", text + f": still improving, but less than {fraction:.2g} of the first half's " \
                                    "improvement or not in every row"


def width_sweep(make_arch, widths, task, n, seeds, config, *, val_size=0, ridge=0.0, progress=True):
    """Network and eNTK-at-initialization test errors at one training-set size ``n``, across widths.

    make_arch: width -> Arch, e.g. ``lambda w: models.myrtle(5, w)``.
    Returns {"network": (len(seeds), len(widths)), "eNTK (init)": (len(seeds), len(widths)),
    "diverged": [(width, seed), ...]}: a network whose training diverged
    (:class:`train.TrainingDiverged`) gets NaN error and is listed in "diverged".
    Trained networks and kernels are the cached ones of :func:`network_curve` / :func:`entk_init_curve`.
    """
    net_err = np.full((len(seeds), len(widths)), np.nan)
    entk_err = np.full((len(seeds), len(widths)), np.nan)
    diverged = []
    for j, width in enumerate(widths):
        arch = make_arch(width)
        for i, seed in enumerate(seeds):
            try:
                net_err[i, j] = network_curve(arch, task, [n], [seed], config, val_size=val_size,
                                              progress=progress)[0][0, 0]
            except train.TrainingDiverged:
                diverged.append((width, seed))
            entk_err[i, j] = entk_init_curve(arch, task, [n], [seed], ridge)[0, 0]
    return {"network": net_err, "eNTK (init)": entk_err, "diverged": diverged}
