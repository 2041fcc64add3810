"""The parameters every section shares, with their defaults, defined once.

    setup = Setup.from_parameters({"width": 32, "lr": 0.2, "classes": [[3], [5]]})
    setup.net                  # models.Arch: the network (its infinite-width limit: setup.net.limit())
    setup.recipe               # train.TrainConfig: how every network is trained
    setup.thresholds           # claims.Thresholds: the claim rules' thresholds
    setup.tasks(n_pool)        # [experiments.Task], one per data draw

Every name below is a parameter of every section notebook (``papermill -p lr 0.2``) and a key
of the grid files; :func:`Setup.parameters` gives them flat, as results.json records them.

    data       task, classes, image_size, n_test, val_size, data_seeds
    networks   seeds, arch, depth, width, parameterization
    kernels    ridge (0: ridgeless kernel regression)
    recipe     lr, momentum, batch_size, min_batches, full_batch, epochs, min_steps, schedule, loss,
               early_stopping, center                         (defaults: train.TrainConfig)
    claims     n_boot, alpha_margin, fit_min_n, alike_tolerance, track_tolerance, improve_fraction,
               underfit_train_error                           (defaults: claims.Thresholds)

Each owner checks its own values: ``data.check`` the task, classes and image size,
``models.arch_from_config`` and ``Arch.check_image_size`` the network, ``TrainConfig`` the
recipe, ``Thresholds`` the thresholds, and this class the seeds and sizes.
"""
import dataclasses
from typing import Optional

from ntk_utils import checks, claims, data, experiments, models, train

RECIPE = train.TrainConfig.RECIPE
THRESHOLDS = tuple(f.name for f in dataclasses.fields(claims.Thresholds))


@dataclasses.dataclass(frozen=True)
class Setup:
    task: str = "cifar10-pair"          # data.TASKS; CIFAR-10 airplane vs automobile, the CPU stand-in
    classes: Optional[tuple] = None     # ((+1 ids), (-1 ids)), e.g. ((3,), (5,)); None: the task's pair
    image_size: int = 8                 # pixels per side (32: full resolution)
    n_test: int = 2000                  # test images (the pair's whole CIFAR-10 test split)
    val_size: int = 500                 # validation images per data draw (never trained on)
    data_seeds: tuple = (0,)            # data draws: each its own training pool and validation set
    seeds: tuple = (0, 1)               # network seeds: initialization and batch order
    arch: str = "myrtle"                # models.arch_from_config: myrtle, cnn5, mlp
    depth: int = 5                      # layers (Myrtle: 5, 7 or 10)
    width: int = 64                     # channels (hidden units of the MLP)
    parameterization: str = "standard"  # as practitioners train; "ntk" for width limits (notebook 02)
    ridge: float = 0.0                  # kernel ridge, times mean(diag K); 0: ridgeless
    recipe: train.TrainConfig = train.TrainConfig()
    thresholds: claims.Thresholds = claims.Thresholds()

    def __post_init__(self):
        problems = []
        for name in ("seeds", "data_seeds"):
            v = getattr(self, name)
            if not (isinstance(v, (list, tuple)) and v and all(checks.is_int(s) and s >= 0 for s in v)):
                problems.append(f"{name} must be a non-empty list of integers >= 0, got {v!r}")
            elif len(set(v)) != len(v):
                problems.append(f"{name} must not repeat a value, got {v!r}")
        for name, low in (("n_test", 1), ("val_size", 0), ("width", 1), ("depth", 1)):
            if not (checks.is_int(getattr(self, name)) and getattr(self, name) >= low):
                problems.append(f"{name} must be an integer >= {low}, got {getattr(self, name)!r}")
        if self.recipe.early_stopping and self.val_size == 0:
            problems.append("val_size must be > 0 when early_stopping is true")
        if not (checks.is_number(self.ridge) and self.ridge >= 0):
            problems.append(f"ridge must be >= 0, got {self.ridge!r}")
        try:
            data.check(self.task, self.classes, self.image_size)
        except ValueError as e:
            problems.append(str(e))
        try:
            self.net.check_image_size(self.image_size if checks.is_int(self.image_size) else 32)
        except ValueError as e:
            problems.append(str(e))
        if problems:
            raise ValueError("; ".join(problems))

    # ---------------------------------------------------------------- as parameters

    @classmethod
    def from_parameters(cls, parameters):
        """The Setup of a flat parameter dict (names not in :data:`NAMES` are ignored; missing
        ones take their defaults). Raises ValueError naming every problem."""
        p, problems, parts = dict(parameters), [], {}
        for key, owner, names in (("recipe", train.TrainConfig, RECIPE), ("thresholds", claims.Thresholds, THRESHOLDS)):
            try:
                parts[key] = owner(**{k: p[k] for k in names if k in p})
            except (ValueError, TypeError) as e:
                problems.append(str(e))
        own = {f.name for f in dataclasses.fields(cls)} - {"recipe", "thresholds"}
        values = {k: tuple(v) if isinstance(v, list) and k != "classes" else v for k, v in p.items() if k in own}
        try:
            made = cls(**values, **parts)
        except ValueError as e:
            problems.append(str(e))
        if problems:
            raise ValueError("; ".join(problems))
        return made

    def parameters(self, effective=False):
        """{name: value} of every shared parameter, flat (lists, not tuples): the notebooks' and
        grid files' form. ``effective``: ``classes`` as the pair used, not None (for results.json)."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("recipe", "thresholds")}
        if effective:
            own["classes"] = [list(side) for side in data.check(self.task, self.classes)]
        flat = {**own, **{k: getattr(self.recipe, k) for k in RECIPE},
                **{k: getattr(self.thresholds, k) for k in THRESHOLDS}}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in flat.items()}

    # ---------------------------------------------------------------- what it builds

    @property
    def net(self):
        """The network of the setup (models.Arch)."""
        return self.network()

    def network(self, arch=None, width=None):
        """The setup's network with another architecture name and/or width (width sweeps)."""
        return models.arch_from_config(arch or self.arch, self.width if width is None else width, self.depth,
                                       self.parameterization)

    def tasks(self, n_pool, task=None):
        """[experiments.Task] of ``task`` (default: the setup's), one per data draw, each with a
        training pool of ``n_pool`` samples after its validation set."""
        return [experiments.load(task or self.task, n_pool, self.n_test, self.image_size, d, self.val_size,
                                 self.classes if task in (None, self.task) else None) for d in self.data_seeds]

    # ---------------------------------------------------------------- words

    @property
    def runs(self):
        return f"{len(self.data_seeds)}x{len(self.seeds)} runs"

    def describe(self):
        """e.g. "cifar10-pair (airplane vs automobile) at 8px (1 data draw x 2 seeds, 2000 test images)"."""
        return (f"{data.describe(self.task, self.classes)} at {self.image_size}px ({len(self.data_seeds)} data "
                f"draw{'s' * (len(self.data_seeds) > 1)} x {len(self.seeds)} seeds, {self.n_test} test images)")

    def title(self, *more):
        """A figure title: task, classes, image size, network and runs (and ``more``)."""
        return ", ".join([data.describe(self.task, self.classes), f"{self.image_size}px",
                          f"{self.net.name} width {self.width}", *more, self.runs])

    def caveats(self, *underfit):
        """The caveat sentences every verdict of a run carries: underfit or diverged networks, and
        intervals resting on few data draws or seeds."""
        return [u for u in underfit if u] + [c for c in [claims.few_runs(self.data_seeds, self.seeds)] if c]

    def size_problems(self, n_pool, n_fresh=0, task=None):
        """What the data cannot give: ``val_size + n_pool + n_fresh`` training samples and
        ``n_test`` test samples of ``task`` (default: the setup's). Empty when the data files are
        not in the data cache (nothing is downloaded to check)."""
        task = task or self.task
        try:
            have_train, have_test = data.available(task, self.classes if task == self.task else None)
        except (data.DataError, OSError):
            return []
        need = self.val_size + n_pool + n_fresh
        problems = []
        if need > have_train:
            problems.append(f"{task} has {have_train} training samples of its classes; this needs {need} "
                            f"(val_size {self.val_size} + pool {n_pool}" + (f" + fresh {n_fresh})" if n_fresh else ")"))
        if self.n_test > have_test:
            problems.append(f"n_test: {self.n_test} but {task} has only {have_test} test samples")
        return problems


NAMES = tuple(Setup().parameters())
