"""What a grid costs before it runs: kernel entries, training steps and device-hours per cell.

    python -m ntk_utils.grid estimate parameters/paper.yaml [--rates cpu | h200-spec | rates.json]

Each cell of a grid file (``gridfile.load_grid``) is read as its notebook reads it
(``params.build``: the Setup and the notebook's own options, defaults filled in), and its
section (``ntk_utils/sections/*.py``) declares its work: each section's ``work(tally, setup,
**options)``, beside its ``run`` and with the helpers that decide the run's loops, hands every
network and kernel the run computes to a :class:`Work` (tests/test_estimate.py checks the counts
against tiny real runs). D = len(data_seeds) data draws, S = len(seeds) seeds, T = n_test test
images, N = max(n_values)::

    notebook            networks trained                          eNTK                            infinite NTK
    primer              one per width and the rich one (full      Θ_0, Θ_T on n_train, Θ_t at     mlp, n_train and
                        batch, ``steps``); part 4: one per lr     snapshots (widest, rich);       max(n_values)
                        candidate and per n of n_values           Θ_0, Θ_T test
    01_data_scaling     D S per n of n_values                     D S at init, on N               D, on N
    02_width            D S per n per width of widths_scaling;    D S per width of both sweeps,   D on max(N, n_fixed);
                        D S per width of widths_sweep and         at init, on n_fixed             D (cnn5) on n_fixed
                        cnn5_widths, on n_fixed
    03_hyperparameters  D S per n per variant (its recipe)        D S at init, on N               D, on N
    04_after_kernel     D S per m of n_values, m_values, m_fixed  after-kernels (after_kernel_      -
                                                                  sizes); D S at init, on N
    05_kernel_dynamics  D S on n_train (snapshots), D S per n     D S per snapshot: pool, fresh   -

A kernel on n training images with themselves computes n(n+1)/2 entries (the tiles on and above
the diagonal), and T·n more against the test set. Each cell is counted on its own, and the grid
once more with every network and kernel counted once (:class:`Work` keys them as the disk cache
does), as when the cells run one after another and read what others computed from the cache
(01 and 03 share kernels and networks, 04 and 05 networks of 01, a cell over several draws those
of the per-draw cells).

Time model, with the :class:`Rates` of one device (``--rates``: :data:`CPU`, measured on a 2-core
CPU, so its hours are CPU-hours; :data:`H200_SPEC`, derived from a GPU's specification, not
measured; or a file that ``benchmarks/bench_roofline.py --rates FILE`` measured on your device):

    training      F · (3 · batch · steps + val_size · steps / eval_every + n + T) / train_flops
                  + train_call_seconds                                               per network
    eNTK          3 F · examples / jacobian_flops + 2 P · products / matmul_flops + entk_call_seconds
                                                                                     per kernel
    infinite NTK  entries · fast_ntk_seconds[image size] · (its FLOPs per pair / Myrtle-5's)

F is the forward FLOPs of one example and P the parameter count (:func:`network_cost`); a
backward pass costs two forwards. For the eNTK, where ``kernels.empirical_ntk`` keeps every
Jacobian (``kernels.uses_full_jacobian``)
``examples`` = n1 + n2 and one product J1 J2ᵀ makes all n1 · n2 ``products`` (the whole matrix,
even for x1 with itself); otherwise (``kernels.tiled_kernel``) every pair of tiles of t images
recomputes both tiles' Jacobians: 2 t examples and t² products per tile, t =
``kernels.entk_tile_size``. The infinite NTK's FLOPs per pair are counted from fast_ntk's
recursion (:func:`infinite_ntk_work`). Not counted: kernel-regression solves (benchmarks/README.md:
3.9 s at n = 8000 on this CPU, growing as n³), data loading, figures.
"""
import argparse
import dataclasses
import json
import math
import os

from ntk_utils import gridfile, kernels, models, params, sections

CHANNELS = 3   # every task's images are RGB

# ---------------------------------------------------------------- measured rates

@dataclasses.dataclass(frozen=True)
class Rates:
    """What one device does per second, measured by ``python benchmarks/bench_roofline.py --rates
    FILE`` (a JSON file that ``grid estimate --rates FILE`` reads), for the time model of the
    module docstring."""
    device: str                # the machine, and when it was measured
    fast_ntk_seconds: dict     # image size -> seconds per pair, Myrtle-5 infinite NTK (float32)
    matmul_flops: float        # float32 matrix product (jnp.dot, 2048²): the eNTK's Jacobian contraction
    train_flops: float         # training steps, batch 128 (3 F per example and step)
    jacobian_flops: float      # per-example gradients (kernels.jacobian_fn, chunks of 256): 3 F per example
    train_call_seconds: float  # per network: compiling its step
    entk_call_seconds: float   # per eNTK call: compiling the Jacobian (kernels.empirical_ntk jits per call)
    tile_elements: float = kernels.TILE_ELEMENTS_CPU   # tile x P per Jacobian (GPUs: free memory / 8)
    memory_bandwidth: float = 0.0  # bytes/s of c = a + b on arrays beyond any cache (bench_roofline)

    @classmethod
    def load(cls, path):
        """Rates from the JSON file ``bench_roofline.py --rates FILE`` wrote."""
        with open(path) as f:
            fields = json.load(f)
        fields["fast_ntk_seconds"] = {int(k): v for k, v in fields["fast_ntk_seconds"].items()}
        return cls(**fields)

    def save(self, path):
        with open(path, "w") as f:
            json.dump(dataclasses.asdict(self), f, indent=1)

    def scaled(self, device, matmul_flops, memory_bandwidth, memory_bytes):
        """Rates of another device, assumed to reach the fractions of its limits that this one
        reached of its own: compute rates scale with the matrix-product FLOP/s, the (memory-bound,
        bench_roofline) fast_ntk with the memory bandwidth; Jacobian tiles take a quarter of its
        memory, as ``kernels.empirical_ntk`` sizes them on GPUs. Compilation times are kept (host work)."""
        compute, memory = matmul_flops / self.matmul_flops, memory_bandwidth / self.memory_bandwidth
        return Rates(device, {s: t / memory for s, t in self.fast_ntk_seconds.items()}, matmul_flops,
                     self.train_flops * compute, self.jacobian_flops * compute, self.train_call_seconds,
                     self.entk_call_seconds, tile_elements=memory_bytes / 4 / 8, memory_bandwidth=memory_bandwidth)


# `python benchmarks/bench_roofline.py --rates` on the 2-core CPU, nothing else running.
# Its check at width 32, 16x16 px: training step 0.0130 s (model 0.0122), eNTK of 256 images
# 0.43 s (model 0.54). Against the measured grids (benchmarks/README.md, same machine): cpu.yaml
# 0.64 h estimated vs 0.87 h measured, its first 01 cell 580 s vs 718 s, quick.yaml 0.080 h vs
# 0.117 h; the difference is what the model leaves out (solves, notebook start-up, bootstrap,
# figures). The same rates measured with other jobs on the machine (load ~7) were 2-4x lower.
# Memory bandwidth: bench_roofline's DRAM row, 41.8 GB/s (2026-11-30).
CPU = Rates(device="2-core AMD EPYC CPU, jax 0.5.3, 2026-11-30",
            fast_ntk_seconds={8: 1.75e-05, 16: 0.000422, 32: 0.00497},
            matmul_flops=438e9, train_flops=209e9, jacobian_flops=25.3e9, train_call_seconds=0.44,
            entk_call_seconds=0.33, memory_bandwidth=41.8e9)

# NOT MEASURED: one NVIDIA H200 from its specification sheet (4.8 TB/s HBM3e, 141 GB, 67 TFLOP/s
# float32 without tensor cores, of which we assume 50 achieved by a float32 matrix product), with
# the fractions of those limits that this package reached on the CPU (Rates.scaled). A planning
# figure until a GPU run measures its rates (`bench_roofline.py --rates FILE` on that GPU).
# Likely pessimistic: per-example Jacobians reached only 6% of the CPU's matrix-product rate.
H200_SPEC = CPU.scaled("NVIDIA H200 from its specification sheet, with the CPU's efficiencies (not measured)",
                       matmul_flops=50e12, memory_bandwidth=4.8e12, memory_bytes=141e9)

RATES = {"cpu": CPU, "h200-spec": H200_SPEC}


def rates_named(name):
    """:data:`RATES`[name], or the Rates in the JSON file ``name``; ValueError otherwise."""
    if name in RATES:
        return RATES[name]
    if not os.path.exists(name):
        raise ValueError(f"rates {name!r}: neither one of {sorted(RATES)} nor a file "
                         "(python benchmarks/bench_roofline.py --rates FILE writes one)")
    try:
        return Rates.load(name)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ValueError(f"rates file {name}: not what bench_roofline.py --rates writes ({e!r})") from None


# ---------------------------------------------------------------- per network / kernel

# network_cost (F, P) and infinite_ntk_work (FLOPs, bytes per pair) live in the layer registry,
# where each layer kind declares its costs.
from ntk_utils.layers import infinite_ntk_work, network_cost  # noqa: E402


def entk_seconds(arch, image_size, n1, n2=None, rates=CPU):
    """Seconds of ``kernels.empirical_ntk`` ("auto") for K(x1, x2), len(x1) = n1, x2 of n2 images
    or None (x1 with itself), by the time model of the module docstring."""
    forward, count = network_cost(arch, image_size)
    n_total = n1 + (n2 or 0)
    if kernels.uses_full_jacobian(count, n_total):
        examples, products = n_total, n1 * (n2 or n1)      # one product J1 J2ᵀ, the whole matrix
    else:   # kernels.tiled_kernel: tiles padded to t images, each pair of tiles computes both Jacobians
        t = kernels.entk_tile_size(count, rates.tile_elements)
        tiles = kernel_entries(-(-n1 // t), None if n2 is None else -(-n2 // t))
        examples, products = 2 * t * tiles, t * t * tiles
    return (3 * forward * examples / rates.jacobian_flops + 2 * count * products / rates.matmul_flops
            + rates.entk_call_seconds)


def infinite_seconds(arch, image_size, n1, n2=None, rates=CPU):
    """Seconds of the fast infinite NTK of ``arch`` for K(x1, x2): the measured Myrtle-5 rate at the
    nearest measured image size, scaled by the FLOPs per pair."""
    near = min(rates.fast_ntk_seconds, key=lambda s: abs(math.log(s / image_size)))
    ratio = infinite_ntk_work(arch, image_size)[0] / infinite_ntk_work(models.myrtle(5, 1), near)[0]
    return kernel_entries(n1, n2) * rates.fast_ntk_seconds[near] * ratio


def kernel_entries(n1, n2=None):
    """Entries computed for K(x1, x2): n1 (n1 + 1) / 2 for x1 with itself (n2 None), else n1 n2."""
    return n1 * (n1 + 1) // 2 if n2 is None else n1 * n2


# ---------------------------------------------------------------- what a cell computes

@dataclasses.dataclass
class Work:
    """What a cell computes: each network and kernel once, under a key that names it as the disk
    cache does (architecture, data draw, sizes, recipe with seed, parameters), so that the union
    of several cells' Work is what they compute together when shared results come from the cache.

    ``data`` (task, classes) with the image size, validation size and a data seed names the
    images of one data draw (experiments.load); n_test, val_size enter the training cost."""
    image_size: int
    val_size: int = 0
    n_test: int = 0
    data: tuple = ()
    networks: dict = dataclasses.field(default_factory=dict)   # key -> (arch, image size, n, recipe, val, T)
    entk: dict = dataclasses.field(default_factory=dict)       # key -> (arch, image size, n1, n2 or None)
    infinite: dict = dataclasses.field(default_factory=dict)   # key -> (arch, image size, n1, n2 or None)

    def draw(self, seed, task=None):
        """The key of data draw ``seed`` (of another ``task``: panel (c) of notebook 02)."""
        data = self.data if task in (None, self.data[0]) else (task, None)
        return data + (self.image_size, self.val_size, seed)

    def train(self, arch, draw, n, recipe):
        """A network trained on the first n pool samples of ``draw``; returns its key."""
        key = ("network", arch, draw, n, recipe)
        self.networks[key] = (arch, self.image_size, n, recipe, self.val_size, self.n_test)
        return key

    def kernel(self, kind, arch, draw, n, params=None, samples="pool", test=True, parameterization=None):
        """K(X, X) on the first n images of ``samples`` ("pool", or ("fresh", pool size)) of
        ``draw`` and, with ``test``, K(X_test, X): the eNTK ("entk") of ``arch`` at ``params``
        (("init", seed) or a network's key), or its infinite NTK ("infinite") in
        ``parameterization`` (None: its own)."""
        calls = self.entk if kind == "entk" else self.infinite
        key = (kind, arch.kernel_describe(parameterization) if kind == "infinite" else arch, params, draw, samples, n)
        calls[key] = (arch, self.image_size, n, None)
        if test:
            calls[key + ("test", self.n_test)] = (arch, self.image_size, self.n_test, n)

    def params_at(self, network, seed, t):
        """The key of a network's parameters θ_t after t steps (``network``: its key); θ_0 is
        the initialization of its ``seed``."""
        return ("init", seed) if t == 0 else (network, t)

    # What each measurement of ntk_utils.experiments computes, one method per function of the
    # same name, with a draw key in place of its Task: the sections' ``work`` call these.

    def network_outcomes(self, arch, draw, ns, seeds, config):
        """A network per seed and n; returns {(seed, n): its key}."""
        return {(seed, n): self.train(arch, draw, n, dataclasses.replace(config, seed=seed))
                for seed in seeds for n in ns}

    def entk_outcomes(self, arch, params, draw, ns, samples="pool"):
        """The eNTK at ``params`` on the first max(ns) of ``samples``, and against the test set."""
        self.kernel("entk", arch, draw, max(ns), params=params, samples=samples)

    def entk_init_outcomes(self, arch, draw, ns, seeds):
        for seed in seeds:
            self.entk_outcomes(arch, ("init", seed), draw, ns)

    def infinite_outcomes(self, arch, draw, ns, parameterization=None):
        self.kernel("infinite", arch, draw, max(ns), parameterization=parameterization)

    def width_sweep(self, make_arch, widths, draw, n, seeds, recipe_for):
        for width in widths:
            self.network_outcomes(make_arch(width), draw, [n], seeds, recipe_for(width))
            self.entk_init_outcomes(make_arch(width), draw, [n], seeds)

    def update(self, other):
        for name in ("networks", "entk", "infinite"):
            getattr(self, name).update(getattr(other, name))

    def row(self, rates=CPU):
        """{counts and hours at ``rates``}: one row of :func:`estimate`."""
        train_s = 0.0
        for arch, size, n, recipe, val_size, n_test in self.networks.values():
            forward, _ = network_cost(arch, size)
            k = recipe.num_steps(n)
            passes = 3 * recipe.batch(n) * k + val_size * k / recipe.eval_every + n + n_test
            train_s += forward * passes / rates.train_flops + rates.train_call_seconds
        entk_s = sum(entk_seconds(*call, rates) for call in self.entk.values())
        inf_s = sum(infinite_seconds(*call, rates) for call in self.infinite.values())
        return {"networks": len(self.networks),
                "train_steps": sum(recipe.num_steps(n) for _, _, n, recipe, *_ in self.networks.values()),
                "entk_entries": sum(kernel_entries(n1, n2) for *_, n1, n2 in self.entk.values()),
                "infinite_entries": sum(kernel_entries(n1, n2) for *_, n1, n2 in self.infinite.values()),
                "train_hours": train_s / 3600, "entk_hours": entk_s / 3600, "infinite_hours": inf_s / 3600,
                "hours": (train_s + entk_s + inf_s) / 3600}


def cell_work(notebook, parameters):
    """The :class:`Work` of one cell (its notebook and checked parameters), as its section's
    ``work`` declares it, or None for a notebook that computes nothing to speak of (the summary)."""
    if sections.NOTEBOOKS.get(notebook) in (None, "summary"):
        return None
    section = sections.module(notebook)
    setup, options = params.build(notebook, parameters)
    if setup is None:   # the primer: one draw of its task; val_size 0 (parts 1-3 train without one;
        # part 4's validation passes, ~3% of its training, are not counted)
        work = Work(options["image_size"], n_test=options["n_test"], data=(options["task"], options["classes"]))
        section.work(work, **options)
    else:
        work = Work(setup.image_size, setup.val_size, setup.n_test, (setup.task, setup.classes))
        section.work(work, setup, **options)
    return work


def estimate(grid_file, rates=CPU):
    """One row per cell of ``grid_file``, each cell on its own, then a row "total" for the grid:
    each network and kernel once (later cells read what earlier ones computed from the cache).
    A row: {"cell", "networks", "train_steps", "entk_entries", "infinite_entries", "train_hours",
    "entk_hours", "infinite_hours", "hours", "added_hours"} in hours of the device ``rates`` were
    measured on; "added_hours": what the cell adds when the cells run in the grid file's order
    (what earlier cells computed comes from the cache). Cells of the summary notebook (which
    computes nothing to speak of) are left out."""
    _, cells, _ = gridfile.load_grid(grid_file)
    rows, everything, so_far = [], None, 0.0
    for cell in cells:
        work = cell_work(cell.notebook, cell.parameters)
        if work is None:
            continue
        row = {"cell": cell.id, **work.row(rates)}
        if everything is None:
            everything = dataclasses.replace(work, networks={}, entk={}, infinite={})
        everything.update(work)
        total = everything.row(rates)["hours"]
        rows.append({**row, "added_hours": total - so_far})
        so_far = total
    if not rows:
        return []
    return rows + [{"cell": "total", **everything.row(rates), "added_hours": so_far}]


def notebook_hours(rows):
    """{notebook: hours} from :func:`estimate`'s rows: each notebook's cells' added hours, i.e.
    its time on one device when the grid runs in order (what it shares with earlier notebooks
    computed by them)."""
    out = {}
    for r in rows[:-1]:
        notebook = r["cell"].split("/")[0]
        out[notebook] = out.get(notebook, 0.0) + r["added_hours"]
    return out


def _count(x):
    return f"{x / 1e9:.2f}G" if x >= 1e9 else f"{x / 1e6:.1f}M" if x >= 1e6 else f"{x:,}"


def main(grid_file, rates=CPU):
    """Print :func:`estimate` of ``grid_file`` as a markdown table."""
    rows = estimate(grid_file, rates)
    alone = sum(r["hours"] for r in rows[:-1])
    print(f"Estimated cost of {grid_file} in hours of: {rates.device} (ntk_utils/estimate.py). A cell's row counts "
          f"it on its own; the total counts each network and kernel once, as the cache shares them "
          f"(the cells on their own: {alone:.3g} h).\n")
    print("| cell | networks | training steps | eNTK entries | infinite-NTK entries | training h | eNTK h "
          "| infinite NTK h | total h | added h (in order) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        hours = " | ".join(f"{r[k]:.3g}" for k in ("train_hours", "entk_hours", "infinite_hours", "hours"))
        name = "**total**" if r is rows[-1] else r["cell"]
        print(f"| {name} | {r['networks']} | {r['train_steps']:,} | {_count(r['entk_entries'])} "
              f"| {_count(r['infinite_entries'])} | {hours} | {r['added_hours']:.3g} |")
    print("\nPer notebook, its cells run in the grid file's order on one device (what earlier notebooks "
          "computed comes from the cache):\n")
    print("| notebook | hours |")
    print("|---|---|")
    for notebook, hours in notebook_hours(rows).items():
        print(f"| {notebook} | {hours:.3g} |")
    print(f"| **grid** | {rows[-1]['hours']:.3g} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid_file")
    parser.add_argument("--rates", default="cpu", help=f"one of {sorted(RATES)} or a JSON file of bench_roofline.py")
    args = parser.parse_args()
    main(args.grid_file, rates_named(args.rates))
