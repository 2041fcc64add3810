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
