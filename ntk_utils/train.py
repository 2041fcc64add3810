"""Training a flax network of an :class:`~ntk_utils.models.Arch` on a ±1 binary task.

Loss on the scalar output f(x):  MSE  L = mean((f(x) - y)^2) / 2  (default, as the NTK
theory assumes), or logistic  L = mean(log(1 + exp(-y f(x)))) ("xent").
Optimizer: SGD with momentum (``momentum=0.9``, the default), plain SGD (``momentum=0``) or
full-batch gradient descent (``batch_size=None``); learning rate constant or cosine-decayed.

Length: ``steps = max(min_steps, ceil(epochs * n / batch_size))``.
Early stopping (optional): every ``eval_every`` steps the 0-1 error on a held-out validation
set is measured and the parameters with the lowest one are returned.
Snapshots: ``snapshot_steps`` lists the steps t at which a copy of the parameters is kept
(t = 0 is the initialization), for the kernel-dynamics section.

Deterministic given ``seed`` (initialization and batch order). A NaN or inf loss stops
training with :class:`TrainingDiverged` rather than being trained through. Results are cached
on disk (``ntk_utils.cache``), keyed by architecture, data and configuration, so a network
that several notebooks need is trained once.
"""
import dataclasses
import math
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ntk_utils import cache, models


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or inf."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    lr: float = 2.0                       # NTK parameterization: O(1) rates (standard param.: ~0.05)
    momentum: float = 0.9                 # 0 = plain SGD
    batch_size: Optional[int] = 128       # None = full-batch gradient descent
    epochs: float = 40
    min_steps: int = 400
    schedule: str = "cosine"              # "cosine" or "constant"
    loss: str = "mse"                     # "mse" or "xent"
    early_stopping: bool = False          # needs a validation set
    eval_every: int = 50
    seed: int = 0
    snapshot_steps: tuple = ()

    def __post_init__(self):
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.loss not in ("mse", "xent"):
            raise ValueError(f"loss must be 'mse' or 'xent', got {self.loss!r}")
        if self.lr <= 0 or not 0 <= self.momentum < 1:
            raise ValueError(f"need lr > 0 and 0 <= momentum < 1, got lr={self.lr}, momentum={self.momentum}")

    RECIPE = ("lr", "momentum", "batch_size", "epochs", "min_steps", "schedule", "loss", "early_stopping")

    @classmethod
    def from_parameters(cls, parameters, **overrides):
        """The training recipe named in a notebook's parameters (the names in RECIPE)."""
        return cls(**{k: parameters[k] for k in cls.RECIPE if k in parameters}, **overrides)

    def num_steps(self, n):
        batch = min(self.batch_size or n, n)
        return max(self.min_steps, math.ceil(self.epochs * n / batch))


@dataclasses.dataclass
class TrainResult:
    params: dict              # final parameters (best validation ones with early stopping)
    init_params: dict         # parameters at initialization (t = 0)
    snapshots: dict           # {step: params}
    history: dict             # {"step": [...], "loss": [...], "val_error": [...]}
    steps: int                # steps taken
    best_step: int            # step of the returned params
    seconds: float


def loss_fn(loss, outputs, y):
    f = outputs.reshape(-1)
    if loss == "mse":
        return 0.5 * jnp.mean((f - y) ** 2)
    return jnp.mean(jax.nn.softplus(-y * f))


def predict(arch, params, x, batch_size=1024):
    """Network outputs f(x) (n,) in batches."""
    apply = jax.jit(models.flax_model(arch).apply)
    return np.concatenate([np.asarray(apply(params, x[i:i + batch_size])).reshape(-1)
                           for i in range(0, len(x), batch_size)])


def _error(arch, params, x, y):
    return float(np.mean(np.where(predict(arch, params, x) >= 0, 1.0, -1.0) != y))


def train(arch, x, y, config=TrainConfig(), *, val=None, progress=True, use_cache=True):
    """Train the network of ``arch`` on (x (n, H, W, C), y (n,) in ±1). Returns a TrainResult.

    ``val=(x_val, y_val)`` is required for ``config.early_stopping``.
    """
    if config.early_stopping and val is None:
        raise ValueError("early_stopping needs a validation set: train(..., val=(x_val, y_val))")
    parts = (arch, x, y, config, val)
    return cache.cached("train", parts, lambda: _train(arch, np.asarray(x), np.asarray(y), config, val, progress),
                        enabled=use_cache)


def _train(arch, x, y, config, val, progress):
    start = time.time()
    n = len(x)
    batch = min(config.batch_size or n, n)
    steps = config.num_steps(n)
    model = models.flax_model(arch)
    params = model.init(jax.random.PRNGKey(config.seed), x[:1])
    init_params = jax.device_get(params)
    lr = (optax.cosine_decay_schedule(config.lr, steps) if config.schedule == "cosine" else config.lr)
    optimizer = optax.sgd(lr, momentum=config.momentum or None)
    opt_state = optimizer.init(params)

    @jax.jit
    def step_fn(params, opt_state, xb, yb):
        loss, grads = jax.value_and_grad(lambda p: loss_fn(config.loss, model.apply(p, xb), yb))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(config.seed)
    order, cursor = rng.permutation(n), 0
    snapshots = {0: init_params} if 0 in config.snapshot_steps else {}
    history = {"step": [], "loss": [], "val_error": []}
    best = (np.inf, 0, init_params)
    bar = tqdm(range(1, steps + 1), desc=f"train {arch.name} n={n}", disable=not progress, leave=False)
    for t in bar:
        if cursor + batch > n:  # new epoch: reshuffle, drop the incomplete last batch
            order, cursor = rng.permutation(n), 0
        idx = order[cursor:cursor + batch]
        cursor += batch
        params, opt_state, loss = step_fn(params, opt_state, x[idx], y[idx])
        if t in config.snapshot_steps:
            snapshots[t] = jax.device_get(params)
        if t % config.eval_every == 0 or t == steps:
            loss = float(loss)
            if not math.isfinite(loss):
                raise TrainingDiverged(f"loss became {loss} at step {t} of {steps} (lr={config.lr}); "
                                       "lower the learning rate")
            history["step"].append(t)
            history["loss"].append(loss)
            if val is not None:
                val_error = _error(arch, params, *val)
                history["val_error"].append(val_error)
                if val_error < best[0]:
                    best = (val_error, t, jax.device_get(params))
            bar.set_postfix(loss=f"{loss:.4f}")
    final = jax.device_get(params)
    best_step, out = (best[1], best[2]) if config.early_stopping else (steps, final)
    return TrainResult(out, init_params, snapshots, history, steps, best_step, time.time() - start)
