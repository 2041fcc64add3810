"""ntk_utils: the shared code behind the ntk-limits notebooks.

Modules (each reads top to bottom):
    data        datasets of the paper (CIFAR-10, CIFAR-5m, SVHN) as binary ±1 tasks
    models      one architecture description -> flax network and its infinite-width kernel
    kernels     empirical NTK, infinite NTK, on-disk kernel cache
    fast_ntk    the infinite NTK of conv/pool/ReLU nets as batched matrix products
    train       training a flax network with optax (snapshots, divergence checks)
    regression  kernel (ridge) regression and test error
    scaling     power-law fits of test error vs n
    plotting    the figures in the paper's layout
    grid        papermill grid runner (python -m ntk_utils.grid run parameters/quick.yaml)
"""
from ntk_utils._compat import check_versions, installed_versions

check_versions()

__version__ = "0.1.0"


def versions_summary():
    """One line naming the pinned packages' installed versions (for logs and results.json)."""
    return ", ".join(f"{k} {v}" for k, v in installed_versions().items())
