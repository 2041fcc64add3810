"""The primer: what the NTK is, and when it describes a network (for courses).

Four parts, each on fully connected ReLU networks (models.mlp, ``depth`` hidden layers) and
the primer's task; Θ(x, x') = Σ_p ∂f(x)/∂θ_p ∂f(x')/∂θ_p is the NTK, Θ_0 at initialization, Θ_t
after t steps, Θ_∞ the infinite-width limit.

1. Width. For each width of ``widths`` (NTK parameterization) the relative distance on the
   n_train training images D(width) = ‖Θ_0 - Θ_∞‖_F / ‖Θ_∞‖_F, which the law of large numbers
   over the hidden units expects to fall like width^(-1/2); the fitted slope of log D against
   log width is reported.
2. Lazy training. Each network is trained by full-batch gradient descent (step ``lr``,
   ``steps`` steps) on L = mean((f - y)²)/2. Its linearization around θ_0 trained the same way
   has a closed form: with A = lr·Θ_0(X, X)/n,

       f_T(x*) = f_0(x*) + Θ_0(x*, X) Θ_0(X, X)^-1 (I - (I - A)^T) (y - f_0(X))          (T,)

   (:func:`linearized_predictions`). ``lazy_gap`` = ‖f_net(X*) - f_T(X*)‖ / ‖f_T(X*) - f_0(X*)‖
   is the share of what training changed on the test set that the kernel misses, and
   ``kernel_movement`` = ‖Θ_T - Θ_0‖_F / ‖Θ_0‖_F. Both fall with width.
3. Rich regime. A narrow network in the standard parameterization (``rich_width``, step
   ``rich_lr``) against the widest NTK-parameterized one, both followed at ``n_snapshots``
   times t: the kernel distance ‖Θ_t - Θ_0‖_F / ‖Θ_0‖_F and the centred kernel-target alignment
   A(Θ_t) = yᵀ Θ^c_t y / (‖Θ^c_t‖_F ‖y‖²), Θ^c = H Θ H with H = I - 11ᵀ/n (Cortes et al., 2012:
   centring removes the constant mode that dominates a ReLU kernel) on the training set, and the
   test errors of the network, of its linearization (2.) and of kernel regression with Θ_T.
4. Data scaling. A network (width ``scaling_width``, NTK parameterization, the package's SGD
   recipe with its step chosen among ``lr_candidates`` on the validation split at the largest
   n) and its infinite NTK on every n of ``n_values``: test error against n, and the fitted
   exponents α of err ≈ C n^-α, the measurement notebook 01 makes with a CNN.

``checks`` are this run's illustrations, held or not (the paper's claims are the sections').
"""
import dataclasses
import os

import numpy as np

from ntk_utils import checks, data, experiments, kernels, models, plotting, regression, scaling, train

LAZY_GAP_BOUND = 0.1   # "the lazy network matches its linearization": lazy_gap below this at the widest width


def check(task, classes, image_size, n_train, n_test, widths, depth, lr, steps, seed, rich_width, rich_lr,
          n_snapshots, n_values, scaling_width, lr_candidates):
    """Problems with the primer's parameters (a list of sentences; empty when fine)."""
    problems = (checks.positive("widths", widths) + checks.positive("n_train", n_train)
                + checks.positive("n_test", n_test) + checks.positive("depth", depth)
                + checks.positive("steps", steps) + checks.positive("seed", seed, low=0)
                + checks.positive("rich_width", rich_width) + checks.positive("n_snapshots", n_snapshots, low=2)
                + checks.sizes("n_values", n_values) + checks.positive("scaling_width", scaling_width))
    for name, value in (("lr", lr), ("rich_lr", rich_lr)):
        if not isinstance(value, (int, float)) or value <= 0:
            problems.append(f"{name}: {value!r} must be > 0")
    if not isinstance(lr_candidates, list) or not lr_candidates or any(
            not isinstance(v, (int, float)) or v <= 0 for v in lr_candidates):
        problems.append(f"lr_candidates: {lr_candidates!r} must be a non-empty list of steps > 0")
    try:
        data.check(task, classes, image_size)
    except ValueError as e:
        problems.append(str(e))
    return problems


# ----------------------------------------------------------------------------- the math

def linearized_predictions(k, k_test, f0, f0_test, y, lr, steps):
    """Outputs (T,) on the test inputs of the network linearized around θ_0 after ``steps`` steps
    of full-batch gradient descent with step ``lr`` on mean((f - y)²)/2 (module docstring, 2.).

    k: (n, n) Θ_0(X, X); k_test: (T, n) Θ_0(X*, X); f0 (n,), f0_test (T,): the outputs at θ_0.
    In the eigenbasis Θ_0(X, X) = V diag(λ) Vᵀ the factor Θ^-1 (I - (I - A)^T) is
    diag((1 - (1 - lr λ / n)^T) / λ), whose limit at λ -> 0 is lr T / n (no inverse needed).
    """
    n = len(y)
    lam, v = np.linalg.eigh(np.asarray(k, dtype=np.float64))
    lam = np.clip(lam, 0.0, None)
    decay = 1.0 - (1.0 - lr * lam / n) ** steps
    factor = np.where(lam > 1e-12 * lam.max(), decay / np.where(lam > 0, lam, 1.0), lr * steps / n)
    residual = np.asarray(y, dtype=np.float64) - np.asarray(f0, dtype=np.float64)
    return np.asarray(f0_test, dtype=np.float64) + np.asarray(k_test, dtype=np.float64) @ (v @ (factor * (v.T @ residual)))


def alignment(k, y):
    """Centred kernel-target alignment yᵀ K^c y / (‖K^c‖_F ‖y‖²) in [-1, 1], K^c = H K H, H = I - 11ᵀ/n:
    how much of K, less its constant mode, lies along y yᵀ. k: (n, n); y: (n,) ±1."""
    y = np.asarray(y, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    centred = k - k.mean(0) - k.mean(1)[:, None] + k.mean()
    return float(y @ centred @ y / (np.linalg.norm(centred) * (y @ y)))


def _relative(a, b):
    """‖a - b‖_F / ‖b‖_F."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def snapshot_times(steps, count):
    """``count`` steps from 0 to ``steps``: 0, then log-spaced (the kernel moves most early)."""
    later = np.unique(np.geomspace(1, steps, count - 1).round().astype(int))
    return [0] + [int(t) for t in later]


# ----------------------------------------------------------------------------- the run

@dataclasses.dataclass
class Result:
    task: str
    n_train: int
    widths: list
    rows: list             # per width (NTK param.): init_vs_infinite, kernel_movement, lazy_gap, test errors
    width_slope: float     # fitted slope of log init_vs_infinite against log width (expected: -1/2)
    infinite_error: float
    regimes: dict          # "lazy" / "rich" -> {label, times, distance, alignment, errors}
    scaling: dict          # {"n_values", "curves": {name: summarize record}, "alphas", "pilot", "lr"}
    checks: dict           # illustration -> bool

    def record(self):
        return {"rows": self.rows, "width_slope": self.width_slope, "infinite_error": self.infinite_error,
                "regimes": self.regimes, "scaling": self.scaling, "checks": self.checks}

    def markdown(self):
        first, last = self.rows[0], self.rows[-1]
        lazy, rich = self.regimes["lazy"], self.regimes["rich"]
        alphas = self.scaling["alphas"]
        return (f"**1. Width.** From width {first['width']} to {last['width']} the eNTK at initialization moves "
                f"from {first['init_vs_infinite']:.3f} to {last['init_vs_infinite']:.3f} (relative distance) from "
                f"the infinite NTK: slope {self.width_slope:.2f} against width on a log-log plot (theory: -0.5).\n\n"
                f"**2. Lazy training.** At width {last['width']} training moves the kernel by "
                f"{last['kernel_movement']:.3f} and the network's test outputs differ from its linearization's by "
                f"{last['lazy_gap']:.3f} of what training changed (width {first['width']}: "
                f"{first['kernel_movement']:.3f} and {first['lazy_gap']:.3f}). Test errors at width {last['width']}: "
                f"network {last['network_error']:.3f}, linearized network {last['linearized_error']:.3f}, "
                f"infinite NTK {self.infinite_error:.3f}.\n\n"
                f"**3. Rich regime.** {rich['label']}: its kernel moves by {rich['distance'][-1]:.3f} and its "
                f"alignment with the labels goes from {rich['alignment'][0]:.3f} to {rich['alignment'][-1]:.3f}; "
                f"{lazy['label']}: {lazy['distance'][-1]:.3f} and {lazy['alignment'][0]:.3f} to "
                f"{lazy['alignment'][-1]:.3f}. Test errors (network / linearized / after-kernel): rich "
                + " / ".join(f"{rich['errors'][k]:.3f}" for k in ("network", "linearized", "after-kernel"))
                + ", lazy " + " / ".join(f"{lazy['errors'][k]:.3f}" for k in ("network", "linearized", "after-kernel"))
                + f".\n\n**4. Data scaling.** From n = {self.scaling['n_values'][0]} to {self.scaling['n_values'][-1]}: "
                + ", ".join(f"α({name}) = {a:.2f}" for name, a in alphas.items())
                + f" (step {self.scaling['lr']} chosen on the validation split). Notebook 01 measures this with a "
                "CNN, several seeds and data draws, and intervals.\n\n"
                + " ".join(f"**{claim}: {'held' if ok else 'not held'}.**" for claim, ok in self.checks.items()))


def _gradient_descent(lr, steps, seed, snapshots=()):
    return train.TrainConfig(lr=lr, momentum=0.0, full_batch=True, epochs=0, min_steps=steps, schedule="constant",
                             seed=seed, snapshot_steps=tuple(snapshots))


def _regime(label, arch, trained, times, task, config):
    """Kernel distance and alignment of Θ_t at ``times`` on the training set, and test errors of the
    network, of its linearization at θ_0 and of kernel regression with its after-kernel Θ_T."""
    x, y, x_test, y_test = task.x, task.y, task.x_test, task.y_test
    thetas = [kernels.empirical_ntk_cached(arch, trained.snapshots[t], x) for t in times]
    k0_test = kernels.empirical_ntk_cached(arch, trained.init_params, x_test, x)
    f0, f0_test = train.predict(arch, trained.init_params, x), train.predict(arch, trained.init_params, x_test)
    linear = linearized_predictions(thetas[0], k0_test, f0, f0_test, y, config.lr, config.num_steps(len(y)))
    after = kernels.empirical_ntk_cached(arch, trained.final_params, x_test, x)
    return {"label": label, "times": list(times),
            "distance": [_relative(k, thetas[0]) for k in thetas],
            "alignment": [alignment(k, y) for k in thetas],
            "errors": {"network": regression.test_error(trained.outputs(arch, x_test), y_test),
                       "linearized": regression.test_error(linear, y_test),
                       "after-kernel": regression.kernel_test_error(thetas[-1], y, after, y_test)}}


def _scaling(task, depth, width, n_values, lr_candidates, seed):
    """Part 4: the step chosen on the validation split at max(n_values), then network and
    infinite NTK outcomes at every n."""
    arch = models.mlp(depth, width)
    pilot = {}
    for lr in lr_candidates:
        try:
            result = train.train(arch, task.x[:max(n_values)], task.y[:max(n_values)],
                                 train.TrainConfig(lr=lr, seed=seed), val=task.val, progress=False)
            pilot[lr] = float(result.history["val_error"][-1])
        except train.TrainingDiverged:
            pilot[lr] = float("nan")
    if not any(np.isfinite(e) for e in pilot.values()):
        raise train.TrainingDiverged(f"part 4: every step of lr_candidates {lr_candidates} diverged at "
                                     f"n = {max(n_values)}; give smaller ones")
    chosen = min((e, lr) for lr, e in pilot.items() if np.isfinite(e))[1]
    network, _ = experiments.network_outcomes(arch, task, n_values, [seed], train.TrainConfig(lr=chosen),
                                              progress=False)
    outcomes = {"network": network[None],
                experiments.limit_name(arch): experiments.infinite_outcomes(arch, task, n_values)[None]}
    curves = {name: experiments.summarize("n", n_values, o) for name, o in outcomes.items()}
    alphas = {name: scaling.fit_power_law(n_values, c["runs"]).alpha for name, c in curves.items()}
    return {"n_values": list(n_values), "curves": curves, "alphas": alphas,
            "pilot": {str(k): v for k, v in pilot.items()}, "lr": chosen}


def run(task, classes, image_size, n_train, n_test, widths, depth, lr, steps, seed, rich_width, rich_lr,
        n_snapshots, n_values, scaling_width, lr_candidates):
    """The four parts of the module docstring."""
    pool = max(n_train, max(n_values))
    task_data = experiments.load(task, pool, n_test, image_size, classes=classes)
    train_part = dataclasses.replace(task_data, x=task_data.x[:n_train], y=task_data.y[:n_train])
    x, y, x_test, y_test = train_part.x, train_part.y, train_part.x_test, train_part.y_test
    infinite = kernels.infinite_ntk(models.mlp(depth, 1), x)
    infinite_test = kernels.infinite_ntk(models.mlp(depth, 1), x_test, x)
    times = snapshot_times(steps, n_snapshots)
    config = _gradient_descent(lr, steps, seed, times)
    rows, regimes = [], {}
    for width in widths:
        arch = models.mlp(depth, width)
        trained = train.train(arch, x, y, config, progress=False)
        k0 = kernels.empirical_ntk_cached(arch, trained.init_params, x)
        kt = kernels.empirical_ntk_cached(arch, trained.params, x)
        k0_test = kernels.empirical_ntk_cached(arch, trained.init_params, x_test, x)
        f0, f0_test = train.predict(arch, trained.init_params, x), train.predict(arch, trained.init_params, x_test)
        linear = linearized_predictions(k0, k0_test, f0, f0_test, y, lr, steps)
        f_net = trained.outputs(arch, x_test)
        rows.append(dict(
            width=width,
            init_vs_infinite=_relative(k0, infinite),
            kernel_movement=_relative(kt, k0),
            lazy_gap=float(np.linalg.norm(f_net - linear) / np.linalg.norm(linear - f0_test)),
            network_error=regression.test_error(f_net, y_test),
            linearized_error=regression.test_error(linear, y_test),
            entk_error=regression.kernel_test_error(k0, y, k0_test, y_test)))
        if width == max(widths):
            regimes["lazy"] = _regime(f"lazy: width {width}, NTK parameterization", arch, trained, times, train_part,
                                      config)
    rich_arch = models.arch_from_config("mlp", rich_width, depth, "standard")
    rich_config = _gradient_descent(rich_lr, steps, seed, times)
    rich = train.train(rich_arch, x, y, rich_config, progress=False)
    regimes["rich"] = _regime(f"rich: width {rich_width}, standard parameterization", rich_arch, rich, times,
                              train_part, rich_config)
    distance, gap = [r["init_vs_infinite"] for r in rows], [r["lazy_gap"] for r in rows]
    slope = float(np.polyfit(np.log(widths), np.log(distance), 1)[0]) if len(widths) > 1 else float("nan")
    scaled = _scaling(task_data, depth, scaling_width, n_values, lr_candidates, seed)
    checks = {
        "eNTK at init approaches the infinite NTK as width grows (slope < 0)": bool(slope < 0),
        "the wider network follows its linearization more closely": bool(gap[-1] < gap[0]),
        f"the widest network matches its linearization (gap < {LAZY_GAP_BOUND})": bool(gap[-1] < LAZY_GAP_BOUND),
        "the rich network's kernel moves more than the lazy one's":
            bool(regimes["rich"]["distance"][-1] > regimes["lazy"]["distance"][-1]),
        "training aligns the rich network's kernel with the labels":
            bool(regimes["rich"]["alignment"][-1] > regimes["rich"]["alignment"][0])}
    return Result(data.describe(task, classes), n_train, list(widths), rows, slope,
                  regression.kernel_test_error(infinite, y, infinite_test, y_test), regimes, scaled, checks)


def _regime_work(tally, arch, draw, network, seed, times, n_train):
    """The kernels of :func:`_regime`: Θ_t at ``times`` on the training set, Θ_0 and the
    after-kernel Θ_T against the test set."""
    for t in times:
        tally.kernel("entk", arch, draw, n_train, params=tally.params_at(network, seed, t), test=False)
    tally.kernel("entk", arch, draw, n_train, params=("init", seed))
    tally.kernel("entk", arch, draw, n_train, params=tally.params_at(network, seed, times[-1]))


def work(tally, task, classes, image_size, n_train, n_test, widths, depth, lr, steps, seed, rich_width, rich_lr,
         n_snapshots, n_values, scaling_width, lr_candidates):
    """Declare to ``tally`` (an ntk_utils.estimate.Work) the networks and kernels :func:`run`
    computes, part by part, on its one data draw."""
    draw, times = tally.draw(0), snapshot_times(steps, n_snapshots)
    tally.kernel("infinite", models.mlp(depth, 1), draw, n_train)
    config = _gradient_descent(lr, steps, seed, times)
    for width in widths:                                   # parts 1 and 2: Θ_0, Θ_T and Θ_0 against the test set
        arch = models.mlp(depth, width)
        trained = tally.train(arch, draw, n_train, config)
        tally.kernel("entk", arch, draw, n_train, params=("init", seed))
        tally.kernel("entk", arch, draw, n_train, params=tally.params_at(trained, seed, times[-1]), test=False)
        if width == max(widths):                           # part 3: the lazy regime
            _regime_work(tally, arch, draw, trained, seed, times, n_train)
    rich_arch = models.arch_from_config("mlp", rich_width, depth, "standard")
    rich = tally.train(rich_arch, draw, n_train, _gradient_descent(rich_lr, steps, seed, times))
    _regime_work(tally, rich_arch, draw, rich, seed, times, n_train)
    arch = models.mlp(depth, scaling_width)                # part 4, as _scaling: the pilots, then every n
    for step in lr_candidates:
        tally.train(arch, draw, max(n_values), train.TrainConfig(lr=step, seed=seed))
    # the step _scaling chooses is known only after the pilots: counted as the first candidate
    tally.network_outcomes(arch, draw, n_values, [seed], train.TrainConfig(lr=lr_candidates[0]))
    tally.infinite_outcomes(arch, draw, n_values)


# ----------------------------------------------------------------------------- figures

def figure(result, output_dir):
    """One panel per part (two for the rich regime: kernel distance, alignment): primer.png."""
    widths, rows = result.widths, result.rows
    fig, (ax1, ax2, ax3, ax3b, ax4) = plotting.figure(5)
    distance = [r["init_vs_infinite"] for r in rows]
    ax1.loglog(widths, distance, "o-", label="‖Θ₀ − Θ∞‖ / ‖Θ∞‖")
    guide = distance[0] * (np.asarray(widths) / widths[0]) ** -0.5
    ax1.loglog(widths, guide, "k:", label="slope −1/2 (theory)")
    ax1.set(xlabel="width", ylabel="relative distance", title=f"1. width (slope {result.width_slope:.2f})")
    ax2.loglog(widths, [r["kernel_movement"] for r in rows], "s-", label="‖Θ_T − Θ₀‖ / ‖Θ₀‖")
    ax2.loglog(widths, [r["lazy_gap"] for r in rows], "o-", label="network vs linearized")
    ax2.axhline(LAZY_GAP_BOUND, color="grey", ls="--", lw=0.8)
    ax2.set(xlabel="width", ylabel="relative change / gap", title="2. lazy training")
    for name, marker in (("lazy", "o"), ("rich", "s")):
        regime = result.regimes[name]
        t = np.maximum(regime["times"], 0.5)      # t = 0 drawn at 0.5 on the log axis
        ax3.semilogx(t, regime["distance"], marker + "-", label=regime["label"])
        ax3b.semilogx(t, regime["alignment"], marker + "-", label=regime["label"])
    ax3.set(xlabel="step t (0 at 0.5)", ylabel="‖Θ_t − Θ₀‖ / ‖Θ₀‖", title="3. rich vs lazy: kernel movement")
    ax3b.set(xlabel="step t (0 at 0.5)", ylabel="centred alignment with y yᵀ", title="3. rich vs lazy: alignment")
    for name, c in result.scaling["curves"].items():
        plotting.scaling_curve(ax4, c, name, plotting.COLORS.get(name))
    ax4.set(title="4. data scaling")
    for ax in (ax1, ax2, ax3, ax3b, ax4):
        ax.legend(fontsize=7)
    return plotting.finish(fig, os.path.join(output_dir, "primer.png"),
                           f"fully connected ReLU nets, {result.task}, n={result.n_train}")
