"""Shared fixtures. Real-data tests use ../shared/data/cifar10 (written once into the data
cache in the official layout) and skip cleanly where it is absent."""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_CIFAR = ROOT.parent / "shared" / "data" / "cifar10"


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
