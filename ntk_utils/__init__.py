"""ntk_utils: the shared code behind the ntk-limits notebooks.

Modules (each reads top to bottom), from the data up to the command line:
    paths            the repository root; paths as outputs show them; atomic file writes
    checks           small value checks every owner shares (a leaf: imports nothing of ntk_utils)
    downloads        the dataset files: official sources, checksummed, resumable downloads
    data             datasets of the paper (CIFAR-10, CIFAR-5m, SVHN) as binary ±1 tasks, class pairs
    layers           the layer registry: each kind's flax op, neural-tangents layer, fast_ntk rule, costs
    models           one architecture description (Arch) -> flax network and its kernel
    train            the training recipe (TrainConfig) and training with optax
    tiles            kernels in tiles: over devices, a progress bar, resumable on disk
    fast_ntk         the infinite NTK of conv/pool/ReLU nets: the recursion, the plan, the driver
    pair_tiles       one tile of image pairs through a fast_ntk plan (compiled computations, sizes)
    kernels          empirical NTK, infinite NTK, disk-cached
    cache            the content-addressed disk cache of networks and kernels
    regression       kernel (ridge) regression and the 0-1 test error
    scaling          power-law fits of test error vs n
    bootstrap        error curves from per-example outcomes, their paired bootstrap and intervals
    caveats          the caveats a verdict carries: underfit networks, too few runs
    claims           the claim rules, their thresholds, Verdict
    experiments      per-example outcomes of networks and kernels, the measurements sections share
    setup            the parameters every section shares (Setup), defaults defined once
    parameters_cell  a notebook's declared parameters: names, defaults, types
    params           a notebook's parameter check (names and types, then each owner's values)
    sections/        one module per notebook: run(setup, ...), work, check, figure panels, Result
    plotting         the figures in the paper's layout
    results          results.json (parameters, results, provenance) and outcomes.npz
    gridfile         grid files (YAML) -> cells with fingerprints, resources, dependencies
    cells            a grid folder's cells: folders, state (current, stale, failed, not run), lock
    executors        running cells: here, or side by side as submitit jobs (local, Slurm)
    reproduce        compare a fresh grid run with the reference; publish it
    estimate         what a grid costs before it runs (reads each section's work)
    report           a static site of a grid's results
    grid             the command line (python -m ntk_utils.grid run parameters/quick.yaml)
"""
from ntk_utils._compat import check_versions, installed_versions
from ntk_utils.paths import warnings_without_machine_paths

check_versions()
warnings_without_machine_paths()

__version__ = "0.1.0"


def versions_summary():
    """One line naming the pinned packages' installed versions (for logs and results.json)."""
    return ", ".join(f"{k} {v}" for k, v in installed_versions().items())
