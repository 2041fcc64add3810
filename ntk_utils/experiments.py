"""The measurements every section repeats, as per-example outcomes.

Data layout of one *data draw* (``data_seed``): the task's training stream, shuffled by the
seed, is cut into

    [ validation (val_size) | training pool (n_max) | fresh samples ... ]

The size-n training set is the first n of the pool, so training sets are nested, and the
validation set does not depend on n or n_max: the network for (n, seed, data_seed) and one
training recipe is the same in every notebook (and the disk cache really is shared; notebook
5's run with snapshots is its own). Fresh samples (for K^F) come after
the largest pool a notebook uses. The test set is the task's fixed test set: the same for
every draw and seed, which is what makes bootstrap comparisons paired over test examples.

Outcomes: every predictor is summarized by ``wrong``, 1 where a test example is misclassified,
shaped (S, K, T) for S seeds (1 for a deterministic kernel), K points (n, t, m or width) and T
test examples; notebooks stack data draws in front, (D, S, K, T), for :mod:`ntk_utils.claims`.
NaN marks a missing point (e.g. a diverged network).

Kernel curves are computed once on the largest training set: K on the first n samples is the
leading n×n block of K on n_max samples, so one kernel serves every n.
"""
import dataclasses

import numpy as np

from ntk_utils import data, kernels, regression, train


@dataclasses.dataclass
class Task:
    """One data draw: validation set, training pool (its first n = the size-n training set), test set."""
    name: str
    x: np.ndarray          # (n_max, H, W, C) float32: the training pool
    y: np.ndarray          # (n_max,) ±1
    x_val: np.ndarray      # (val_size, H, W, C)
    y_val: np.ndarray
    x_test: np.ndarray     # (n_test, H, W, C)
    y_test: np.ndarray
    image_size: int
    data_seed: int
    classes: object = None  # ((+1 ids), (-1 ids)); None: the task's pair

    @property
    def val(self):
        return (self.x_val, self.y_val) if len(self.x_val) else None

    def fresh(self, n, after=None):
        """n samples disjoint from the validation set and from the first ``after`` pool samples
        (default: the whole pool): for the after-kernel K^F."""
        skip = len(self.x_val) + (len(self.x) if after is None else after)
        x, y, _, _ = data.load_task(self.name, n, 1, seed=self.data_seed, image_size=self.image_size,
                                    classes=self.classes, skip=skip)
        return x, y


@dataclasses.dataclass(kw_only=True)
class Findings:
    """What every section's Result holds beside its own fields (given by keyword)."""
    outcomes: dict   # curve -> wrong (D, S, K, T) per test example, as saved to outcomes.npz
    curves: dict     # curve -> summarize record
    underfit: str    # caveat naming underfit / diverged networks, or ""
    verdicts: list   # claims.Verdict, caveats appended
    plain: list      # the same without caveats (the Result paragraph states them once)
    caveat: str      # the caveats, said once


def load(task, n_max, n_test, image_size=8, data_seed=0, val_size=500, classes=None):
    """A :class:`Task`: ``val_size`` validation images, an ``n_max`` pool and ``n_test`` test images
    of the task's class pair (``classes``, else its default)."""
    x, y, x_test, y_test = data.load_task(task, val_size + n_max, n_test, seed=data_seed, image_size=image_size,
                                          classes=classes)
    return Task(task, x[val_size:], y[val_size:], x[:val_size], y[:val_size], x_test, y_test, image_size, data_seed,
                classes)


def wrong(predictions, y):
    """(T,) float: 1 where the prediction is misclassified (regression.misclassified), else 0;
    NaN where a prediction is not finite."""
    f = np.asarray(predictions, dtype=float).reshape(-1)
    return np.where(np.isfinite(f), regression.misclassified(f, y), np.nan)


def kernel_outcomes(k_train, k_test_train, y, y_test, ns, ridge=0.0, f0=None, f0_test=None):
    """Per-example outcomes (len(ns), T) of kernel regression on the first n samples, each n in ns.

    k_train: (N, N) kernel on the pool; k_test_train: (T, N); ns <= N. With the network's
    initial outputs f0 (N,) and f0_test (T,), the predictor is the linearized network trained
    to convergence: f0(X*) + K(X*, X) K(X, X)^-1 (y - f0(X)); without, kernel regression from 0.
    """
    f0 = np.zeros(len(y)) if f0 is None else np.asarray(f0)
    f0_test = np.zeros(len(y_test)) if f0_test is None else np.asarray(f0_test)
    return np.array([wrong(f0_test + regression.kernel_regression(k_train[:n, :n], y[:n] - f0[:n],
                                                                  k_test_train[:, :n], ridge=ridge), y_test)
                     for n in ns])


def network_outcomes(arch, task, ns, seeds, config, *, progress=True):
    """Trained networks on the first n pool samples, for each seed and n.

    Returns (wrong (S, K, T) with NaN rows for diverged networks, {(seed, n): TrainResult}).
    The validation set (task.val) is always passed: its loss is recorded, and it selects the
    returned parameters when ``config.early_stopping``.
    """
    out, results = np.full((len(seeds), len(ns), len(task.y_test)), np.nan), {}
    for i, seed in enumerate(seeds):
        for j, n in enumerate(ns):
            try:
                result = train.train(arch, task.x[:n], task.y[:n], dataclasses.replace(config, seed=seed),
                                     val=task.val, progress=progress)
            except train.TrainingDiverged:
                continue
            out[i, j] = wrong(result.outputs(arch, task.x_test), task.y_test)
            results[seed, n] = result
    return out, results


def training_fit(results, seeds, ns):
    """{"train_loss", "train_error"}: (S, K) arrays (NaN where missing) of the returned networks on
    their own training sets: how well each network fit what it was trained on."""
    return {k: np.array([[getattr(results[s, n], k) if (s, n) in results else np.nan for n in ns] for s in seeds])
            for k in ("train_loss", "train_error")}


def init_params(arch, seed, task):
    """The network's parameters at initialization for ``seed`` (the same as train() starts from)."""
    import jax
    from ntk_utils import models
    return jax.device_get(models.flax_model(arch).init(jax.random.PRNGKey(seed), task.x[:1]))


def _entk(arch, params, x, x_test, n_max):
    """(K (n_max, n_max), K_test (T, n_max)): the eNTK of ``arch`` at ``params`` on the first n_max
    of x and between x_test and them (cached on disk)."""
    return (kernels.empirical_ntk_cached(arch, params, x[:n_max]),
            kernels.empirical_ntk_cached(arch, params, x_test, x[:n_max]))


def entk_outcomes(arch, params, x, y, x_test, y_test, ns, ridge=0.0, linearized=False):
    """Outcomes (len(ns), T) of kernel regression with the eNTK of ``arch`` at ``params``, fitted on
    the first n of (x (N, H, W, C), y (N,)) for each n in ns and tested on (x_test, y_test).

    One kernel on x[:max(ns)] serves every n (cached on disk). ``linearized``: add the network's
    outputs f0 at ``params`` (the linearized network around ``params``, trained to convergence).
    """
    n_max = max(ns)
    f0 = (train.predict(arch, params, x[:n_max]), train.predict(arch, params, x_test)) if linearized else (None, None)
    return kernel_outcomes(*_entk(arch, params, x, x_test, n_max), y, y_test, ns, ridge, *f0)


def entk_init_outcomes(arch, task, ns, seeds, ridge=0.0, center=False):
    """{"eNTK (init)", "linearized network"}: outcomes (S, K, T) of the eNTK at each seed's
    initialization, from zero and from the network's initial function f0 (one kernel serves both).
    A centred network (``center``) starts at 0: its linearization is the eNTK from zero."""
    out = {"eNTK (init)": [], "linearized network": []}
    n_max = max(ns)
    for seed in seeds:
        params = init_params(arch, seed, task)
        k, k_test = _entk(arch, params, task.x, task.x_test, n_max)
        f0 = (None, None) if center else (train.predict(arch, params, task.x[:n_max]),
                                          train.predict(arch, params, task.x_test))
        out["eNTK (init)"].append(kernel_outcomes(k, k_test, task.y, task.y_test, ns, ridge))
        out["linearized network"].append(kernel_outcomes(k, k_test, task.y, task.y_test, ns, ridge, *f0))
    return {name: np.array(o) for name, o in out.items()}


# The curve of a network's infinite-width limit, named by the parameterization it is the limit
# in (ntk_utils.models' docstring): a legend, a Result and results.json say which it is.
LIMIT_NAMES = {"standard": "infinite NTK (SP)", "ntk": "infinite NTK (NTK param.)"}


def limit_name(arch, parameterization=None):
    """The curve name of ``arch``'s infinite-width limit in ``parameterization`` (None: its own)."""
    return LIMIT_NAMES[parameterization or arch.parameterization]


def infinite_outcomes(arch, task, ns, ridge=0.0, parameterization=None):
    """Outcomes (1, K, T) of ``arch``'s infinite-width NTK in ``parameterization`` (None: the
    network's own; cached: computed once per data set)."""
    n_max = max(ns)
    k = kernels.infinite_ntk_cached(arch, task.x[:n_max], parameterization=parameterization)
    k_test = kernels.infinite_ntk_cached(arch, task.x_test, task.x[:n_max], parameterization=parameterization)
    return kernel_outcomes(k, k_test, task.y, task.y_test, ns, ridge)[None]


def over_draws(measure, tasks):
    """np.stack([measure(task) for task in tasks]): (D, ...) outcomes; dicts are stacked per key."""
    parts = [measure(task) for task in tasks]
    if isinstance(parts[0], dict):
        return {k: np.stack([p[k] for p in parts]) for k in parts[0]}
    return np.stack(parts)


def summarize(x_name, x, outcomes):
    """The record of one curve for results.json: per-run test errors (runs = draws × seeds) and
    their mean and std at each x. outcomes: (D, S, K, T)."""
    runs = np.nanmean(outcomes, axis=-1).reshape(-1, outcomes.shape[-2])    # (D*S, K)
    return {"x_name": x_name, "x": list(x), "mean": np.nanmean(runs, 0), "std": np.nanstd(runs, 0),
            "n_runs": int(runs.shape[0]), "n_test": int(outcomes.shape[-1]), "runs": runs}


def print_curves(curves):
    """One line per curve: its mean test error at each x (and how many runs diverged)."""
    for name, c in curves.items():
        lost = int(np.isnan(np.asarray(c["runs"], dtype=float)).any(axis=1).sum())
        print(f"{name:>24}: " + "  ".join(f"{m:.3f}" for m in c["mean"]) + (f"   ({lost} runs diverged)" if lost else ""))


def width_sweep(make_arch, widths, task, n, seeds, recipe_for, *, ridge=0.0, progress=True):
    """Network and eNTK-at-initialization outcomes at one training-set size ``n``, across widths.

    make_arch: width -> Arch, e.g. ``lambda w: models.myrtle(5, w)``; recipe_for: width ->
    train.TrainConfig (notebook 02: each width's learning rate from its validation pilot).
    Returns {"network": (S, len(widths), T), "eNTK (init)": (S, len(widths), T),
    "train_error": (S, len(widths))}; a network whose training diverged has NaN outcomes.
    Networks and kernels are the cached ones of :func:`network_outcomes` / :func:`entk_init_outcomes`.
    """
    net, entk, fit = [], [], []
    for width in widths:
        arch = make_arch(width)
        outcomes, trained = network_outcomes(arch, task, [n], seeds, recipe_for(width), progress=progress)
        net.append(outcomes[:, 0])
        fit.append(training_fit(trained, seeds, [n])["train_error"][:, 0])
        entk.append(np.array([entk_outcomes(arch, init_params(arch, seed, task), task.x, task.y, task.x_test,
                                            task.y_test, [n], ridge)[0] for seed in seeds]))
    return {"network": np.stack(net, 1), "eNTK (init)": np.stack(entk, 1), "train_error": np.stack(fit, 1)}
