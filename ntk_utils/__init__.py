"""ntk_utils: the shared code behind the ntk-limits notebooks.

Modules (each reads top to bottom), from the data up to the notebooks:
    paths        the repository root; atomic file writes
    data         datasets of the paper (CIFAR-10, CIFAR-5m, SVHN) as binary ±1 tasks, class pairs
    models       one architecture description (the layer registry) -> flax network and its kernel
    train        the training recipe (TrainConfig) and training with optax
    kernels      empirical NTK, infinite NTK, disk-cached
    fast_ntk     the infinite NTK of conv/pool/ReLU nets as batched matrix products
    cache        the content-addressed disk cache of networks and kernels
    regression   kernel (ridge) regression and test error
    scaling      power-law fits of test error vs n
    claims       the claim rules, their thresholds, the paired bootstrap, Verdict
    experiments  per-example outcomes of networks and kernels, the measurements sections share
    setup        the parameters every section shares (Setup), defaults defined once
    sections/    one module per notebook: run(setup, ...), check, figure panels, Result paragraph
    params       a notebook's parameter check (names, types, then each owner's values)
    plotting     the figures in the paper's layout
    results      results.json (parameters, results, provenance) and outcomes.npz
    grid         papermill grid runner (python -m ntk_utils.grid run parameters/quick.yaml)
"""
from ntk_utils._compat import check_versions, installed_versions

check_versions()

__version__ = "0.1.0"


def versions_summary():
    """One line naming the pinned packages' installed versions (for logs and results.json)."""
    return ", ".join(f"{k} {v}" for k, v in installed_versions().items())
