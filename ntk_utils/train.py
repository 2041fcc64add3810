"""Training a flax network of an :class:`~ntk_utils.models.Arch` on a ±1 binary task.

Loss on the scalar output f(x):  MSE  L = mean((f(x) - y)^2) / 2  (default, as the NTK
theory assumes), or logistic  L = mean(log(1 + exp(-y f(x)))) ("xent").
Optimizer: SGD with momentum (``momentum=0.9``, the default) or plain SGD (``momentum=0``);
learning rate constant or cosine-decayed to 0.

Batches: every step takes ``batch = min(batch_size, n // min_batches)`` samples (at least 1)
from a stream of reshuffled passes over the training set (a batch may straddle two passes):
``batch_size`` at every n from ``min_batches · batch_size`` on, and below it at least
``min_batches`` minibatches per pass, so a small n is not trained by full-batch steps in
disguise (the recipe pilot: at n = 64, batch 32 beat 128 on validation at all five learning
rates, by 0.03 on average). Full-batch gradient descent is the explicit ``full_batch=True``.
Length: ``steps = max(min_steps, ceil(epochs * n / batch))`` (a fixed number of epochs, with a
floor so that small n still get a full optimization).

Centering (``center=True``): the network trained and evaluated is f(x; θ) - f(x; θ0) with θ0 the
initial parameters held fixed, so its output at initialization is exactly 0, as kernel
regression from zero assumes. Its eNTK is that of f (θ0 is a constant).

Validation (``val=(x, y)``): every ``eval_every`` steps the validation loss and 0-1 error are
recorded; with ``early_stopping`` the parameters of the lowest validation loss are returned
(ties go to the later step). The returned network's loss and error on its whole training set
are recorded (``train_loss``, ``train_error``): a large training error flags an underfit network.
Snapshots: ``snapshot_steps`` lists the steps t at which a copy of the parameters is kept
(t = 0 is the initialization), for the kernel-dynamics section.

Deterministic given ``seed`` (initialization and batch order). A NaN or inf loss stops
training with :class:`TrainingDiverged` rather than being trained through. Results are cached
on disk (``ntk_utils.cache``), keyed by architecture, data, configuration and code, so a
network that several notebooks need is trained once.
"""
import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ntk_utils import cache, models, regression


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or inf."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training recipe. Its defaults are the package's recipe, chosen on a validation split
    by ``benchmarks/pilot_recipe.py`` (notebook 01 shows the pilot); they are defined here only.
    Raises ValueError for a value it cannot train with."""
    lr: float = 0.1                       # standard parameterization (NTK parameterization: O(1) rates)
    momentum: float = 0.9                 # heavy-ball momentum; 0: plain SGD
    batch_size: int = 128                 # minibatch size from n of min_batches · batch_size on
    min_batches: int = 2                  # below that n: at least this many minibatches per pass
    full_batch: bool = False              # full-batch gradient descent instead of minibatches
    epochs: float = 40                    # passes over the training set
    min_steps: int = 400                  # at least this many steps (small n)
    schedule: str = "cosine"              # "cosine" or "constant"
    loss: str = "mse"                     # "mse" or "xent"
    early_stopping: bool = False          # return the best-validation-loss parameters
    center: bool = False                  # train f - f0 (output 0 at initialization)
    eval_every: int = 50
    seed: int = 0
    snapshot_steps: tuple = ()

    def __post_init__(self):
        problems = []
        if self.schedule not in ("cosine", "constant"):
            problems.append(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.loss not in ("mse", "xent"):
            problems.append(f"loss must be 'mse' or 'xent', got {self.loss!r}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            problems.append(f"batch_size must be an integer >= 1 (full-batch GD is full_batch=True), "
                            f"got {self.batch_size!r}")
        if isinstance(self.min_batches, bool) or not isinstance(self.min_batches, int) or self.min_batches < 1:
            problems.append(f"min_batches must be an integer >= 1, got {self.min_batches!r}")
        if not self.epochs >= 0 or not self.min_steps >= 0 or not self.epochs + self.min_steps > 0:
            problems.append(f"need epochs >= 0 and min_steps >= 0, not both 0; got {self.epochs!r}, {self.min_steps!r}")
        if problems:
            raise ValueError("; ".join(problems))

    RECIPE = ("lr", "momentum", "batch_size", "min_batches", "full_batch", "epochs", "min_steps", "schedule",
              "loss", "early_stopping", "center")

    def batch(self, n):
        """Samples per step at training-set size n (the module docstring)."""
        return n if self.full_batch else max(1, min(self.batch_size, n // self.min_batches))

    def num_steps(self, n):
        return max(self.min_steps, math.ceil(self.epochs * n / self.batch(n)))


@dataclasses.dataclass
class TrainResult:
    params: dict              # returned parameters (the best-validation ones with early stopping)
    init_params: dict         # parameters at initialization (t = 0)
    final_params: dict        # parameters after the last step
    snapshots: dict           # {step: params}
    history: dict             # {"step": [...], "loss": [...], "val_loss": [...], "val_error": [...]}
    steps: int                # steps taken
    best_step: int            # step of the returned params
    seconds: float
    center: bool = False      # outputs are f(x; params) - f(x; init_params)
    train_loss: float = math.nan    # loss of the returned params on the whole training set
    train_error: float = math.nan   # their 0-1 error on the whole training set

    def outputs(self, arch, x, params=None):
        """The trained (or ``params``') network's outputs (n,) on x, centred if it was trained centred."""
        out = predict(arch, self.params if params is None else params, x)
        return out - predict(arch, self.init_params, x) if self.center else out


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


def _loss_and_error(config, outputs, y):
    """(loss, 0-1 error) of outputs (n,) against y (n,) in ±1."""
    return float(loss_fn(config.loss, jnp.asarray(outputs), jnp.asarray(y))), regression.test_error(outputs, y)


def batches(n, batch, rng):
    """Index batches (batch,) forever: consecutive slices of a stream of reshuffled passes."""
    stream = np.empty(0, int)
    while True:
        while len(stream) < batch:
            stream = np.concatenate([stream, rng.permutation(n)])
        yield stream[:batch]
        stream = stream[batch:]


def train(arch, x, y, config=TrainConfig(), *, val=None, progress=True, use_cache=True):
    """Train the network of ``arch`` on (x (n, H, W, C), y (n,) in ±1). Returns a TrainResult.

    ``val=(x_val, y_val)`` is required for ``config.early_stopping``.
    """
    if config.early_stopping and val is None:
        raise ValueError("early_stopping needs a validation set: train(..., val=(x_val, y_val))")
    parts = (arch, x, y, config, val)
    return cache.cached("train", parts, lambda: _train(arch, np.asarray(x), np.asarray(y), config, val, progress),
                        enabled=use_cache, check=lambda result: _is_training_of(result, arch, x, config))


def _is_training_of(result, arch, x, config):
    """Whether a cached entry can be the training of ``arch`` on x (n, H, W, C) by ``config``: a
    TrainResult with that many steps, those snapshots, and parameters shaped as ``arch``'s on x."""
    if not isinstance(result, TrainResult) or result.steps != config.num_steps(len(x)):
        return False
    if set(result.snapshots) != {t for t in config.snapshot_steps if 0 <= t <= result.steps}:
        return False
    expected = jax.eval_shape(models.flax_model(arch).init, jax.random.PRNGKey(0), x[:1])
    shapes = lambda tree: (jax.tree_util.tree_structure(tree), [np.shape(a) for a in jax.tree_util.tree_leaves(tree)])
    return shapes(result.params) == shapes(result.init_params) == shapes(expected)


def _train(arch, x, y, config, val, progress):
    start = time.time()
    n = len(x)
    batch, steps = config.batch(n), config.num_steps(n)
    model = models.flax_model(arch)
    params = model.init(jax.random.PRNGKey(config.seed), x[:1])
    init_params = jax.device_get(params)
    lr = (optax.cosine_decay_schedule(config.lr, steps) if config.schedule == "cosine" else config.lr)
    optimizer = optax.sgd(lr, momentum=config.momentum or None)
    opt_state = optimizer.init(params)

    def output(p, xb):
        f = model.apply(p, xb)
        return f - model.apply(init_params, xb) if config.center else f

    @jax.jit
    def step_fn(params, opt_state, xb, yb):
        loss, grads = jax.value_and_grad(lambda p: loss_fn(config.loss, output(p, xb), yb))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    eval_output = jax.jit(output)

    def outputs_on(p, xs):
        return np.concatenate([np.asarray(eval_output(p, xs[i:i + 1024])).reshape(-1) for i in range(0, len(xs), 1024)])

    stream = batches(n, batch, np.random.default_rng(config.seed))
    snapshots = {0: init_params} if 0 in config.snapshot_steps else {}
    history = {"step": [], "loss": [], "val_loss": [], "val_error": []}
    best = (np.inf, 0, init_params)
    bar = tqdm(range(1, steps + 1), desc=f"train {arch.name} n={n}", disable=not progress, leave=False)
    for t in bar:
        idx = next(stream)
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
                val_loss, val_error = _loss_and_error(config, outputs_on(params, val[0]), val[1])
                history["val_loss"].append(val_loss)
                history["val_error"].append(val_error)
                if val_loss <= best[0]:   # ties: the later (more trained) checkpoint
                    best = (val_loss, t, jax.device_get(params))
            bar.set_postfix(loss=f"{loss:.4f}")
    final = jax.device_get(params)
    best_step, out = (best[1], best[2]) if config.early_stopping else (steps, final)
    train_loss, train_error = _loss_and_error(config, outputs_on(out, x), y)
    if not math.isfinite(train_loss):   # the logged loss precedes each step's update: check the result too
        raise TrainingDiverged(f"the trained network's training loss is {train_loss} (lr={config.lr}); "
                               "lower the learning rate")
    return TrainResult(out, init_params, final, snapshots, history, steps, best_step, time.time() - start,
                       config.center, train_loss, train_error)
