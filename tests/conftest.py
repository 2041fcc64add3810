"""Shared fixtures. Real-data tests use ../shared/data/cifar10 (written once into the data
cache in the official layout) and skip cleanly where it is absent.

Markers for the current-JAX stage (``make test-current-jax``: newest jax/flax/optax, no
neural-tangents, ``NTK_UTILS_SKIP_VERSION_CHECK=1``):
    @pytest.mark.needs_neural_tangents   the test calls neural-tangents (the reference kernels)
    @pytest.mark.pinned_stack            the test checks the pinned versions themselves
Both skip, with the reason, only when NTK_UTILS_SKIP_VERSION_CHECK is set (the user opted out
of the pinned stack); on the pinned stack they run, so a broken install still fails them.
"""
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_CIFAR = ROOT.parent / "shared" / "data" / "cifar10"
# The shared parameters of the section tests: the generated task, a tiny network and recipe.
TINY = {"task": "synthetic-bin", "image_size": 8, "width": 4, "epochs": 1, "min_steps": 10, "n_test": 64,
        "val_size": 32, "n_boot": 100}
STATUSES = ("held", "not held", "inconclusive")


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_neural_tangents: calls neural-tangents (skipped where it cannot "
                                       "import and NTK_UTILS_SKIP_VERSION_CHECK is set)")
    config.addinivalue_line("markers", "pinned_stack: checks the pinned versions (skipped where "
                                       "NTK_UTILS_SKIP_VERSION_CHECK is set)")


def _neural_tangents_missing():
    """Why neural-tangents cannot be imported (first line), or None."""
    from ntk_utils._compat import neural_tangents
    try:
        neural_tangents()
    except ImportError as e:
        return str(e).splitlines()[0]
    return None


def pytest_collection_modifyitems(config, items):
    if not os.environ.get("NTK_UTILS_SKIP_VERSION_CHECK"):
        return
    pinned = pytest.mark.skip(reason="NTK_UTILS_SKIP_VERSION_CHECK is set: not the pinned stack")
    for item in items:
        if "pinned_stack" in item.keywords:
            item.add_marker(pinned)
    if any("needs_neural_tangents" in item.keywords for item in items) and (why := _neural_tangents_missing()):
        skip = pytest.mark.skip(reason=f"needs neural-tangents: {why}")
        for item in items:
            if "needs_neural_tangents" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def real_data_dir():
    """A data directory holding the official `cifar-10-batches-py/` folder, or skip."""
    data_dir = pathlib.Path(os.environ.get("NTK_DATA_DIR", ROOT / ".cache" / "data"))
    if not (data_dir / "cifar-10-batches-py" / "test_batch").exists():
        if not (SHARED_CIFAR / "materialize.py").exists():
            pytest.skip("real CIFAR-10 not available (no ../shared/data/cifar10 and none in NTK_DATA_DIR)")
        subprocess.run([sys.executable, str(SHARED_CIFAR / "materialize.py"), str(data_dir)], check=True)
    return data_dir


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    """NTK_CACHE_DIR set to a fresh folder for one test module (module-scoped section runs)."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("cache")
    mp.setenv("NTK_CACHE_DIR", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def ci_run(tmp_path_factory, request):
    """parameters/ci.yaml run here, one cell after another (real CIFAR-10 where ../shared has it, else
    the synthetic task): (its folder, failed cells, cells). Shared by the notebook and Slurm tests."""
    from ntk_utils import grid
    tmp = tmp_path_factory.mktemp("ci_grid")
    spec = yaml.safe_load((ROOT / "parameters" / "ci.yaml").read_text())
    mp = pytest.MonkeyPatch()
    if (SHARED_CIFAR / "materialize.py").exists():
        mp.setenv("NTK_DATA_DIR", str(request.getfixturevalue("real_data_dir")))
    else:
        spec["defaults"]["task"] = "synthetic-bin"
        spec["notebooks"]["primer"]["task"] = "synthetic-bin"
        spec["notebooks"]["02_width"].update(svhn_task="synthetic-bin", svhn_fallback_task="synthetic-bin")
    mp.setenv("NTK_CACHE_DIR", str(tmp / "cache"))
    grid_file = tmp / "ci.yaml"
    grid_file.write_text(yaml.safe_dump(spec))
    cells = grid.load_grid(grid_file)[1]
    failed = grid.run(grid_file, root=tmp / "outputs")
    yield tmp / "outputs" / "ci", failed, cells
    mp.undo()
