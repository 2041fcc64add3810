"""The package installed alone, as Colab or `pip install` has it: no checkout beside it.

The wheel is built from this checkout and installed (without its dependencies) into a fresh venv in
a temporary folder; the venv reaches the pinned dependencies through a .pth file naming this venv's
site-packages (whose editable ntk_utils it does not load: a .pth line adds a folder, it does not run
that folder's .pth files). The committed executed primer and notebook 01 are then run by papermill
from another temporary folder at tiny sizes on the synthetic task, with none of the NTK_*_DIR
variables and a fresh HOME: each must finish, write its figure beside where it runs, and keep its
cache under the user's cache folder. Skipped where the wheel cannot be built (no package registry
for setuptools).
"""
import json
import os
import subprocess
import sys
import sysconfig

import pytest

from tests.conftest import ROOT

TINY = {"primer": "n_train: 32\nn_test: 64\nwidths: [8, 32]\nsteps: 10\nrich_width: 8\nn_snapshots: 3\n"
                  "scaling_width: 8\nlr_candidates: [0.25]\nn_values: [16, 32]\ntask: synthetic-bin\n",
        "01_data_scaling": "task: synthetic-bin\nn_values: [16, 32]\nn_test: 64\nval_size: 32\nwidth: 4\n"
                           "epochs: 1\nmin_steps: 10\nn_boot: 100\n"}
FIGURES = {"primer": "primer.png", "01_data_scaling": "fig1a_data_scaling.png"}


def reference(notebook):
    """The committed CPU reference's executed notebook (for 01: its cell over every data draw)."""
    cells = sorted((ROOT / "outputs" / "reference" / "cpu" / notebook).glob("*/notebook.ipynb"), key=lambda p: len(str(p)))
    return cells[-1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(ROOT)],
                           capture_output=True, text=True, cwd=tmp)
    if built.returncode != 0:
        pytest.skip(f"the wheel could not be built (a package registry is needed for setuptools): "
                    f"{built.stderr.strip().splitlines()[-1] if built.stderr.strip() else built.returncode}")
    wheel, = (tmp / "dist").glob("ntk_limits-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (tmp / "venv" / purelib.split(str(venv) + "/")[1] / "_pinned_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("NTK_CACHE_DIR", "NTK_DATA_DIR", "NTK_NOTEBOOKS_DIR", "PYTHONPATH", "VIRTUAL_ENV")}
    env["HOME"] = str(tmp / "home")
    (tmp / "home").mkdir()
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return tmp, python, env


def test_the_wheel_is_what_runs(installed):
    tmp, python, env = installed
    where = subprocess.run([str(python), "-c", "import ntk_utils.paths as p; print(p.__file__, p.IN_CHECKOUT, p.NOTEBOOKS)"],
                           capture_output=True, text=True, env=env, cwd=tmp, check=True).stdout.split()
    assert where[0].startswith(str(tmp / "venv")) and where[1] == "False"
    assert sorted(n for n in os.listdir(where[2]) if n.endswith(".py")) == sorted(p.name for p in (ROOT / "notebooks").glob("*.py"))


@pytest.mark.parametrize("notebook", ["primer", "01_data_scaling"])
def test_committed_notebook_runs_outside_the_checkout(installed, notebook):
    tmp, python, env = installed
    work = tmp / f"run-{notebook}"
    work.mkdir()
    done = subprocess.run([str(python), "-m", "papermill", str(reference(notebook)), "run.ipynb", "-y", TINY[notebook],
                           "--kernel", "python3"], capture_output=True, text=True, env=env, cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Passed unknown parameter" not in done.stderr
    out = work / "outputs" / "notebooks" / notebook      # the parameters cell's output_dir, from here
    assert (out / FIGURES[notebook]).exists() and json.loads((out / "results.json").read_text())["parameters"]
    cache = tmp / "home" / ".cache" / "ntk-limits"
    assert (cache / "cache").is_dir() and any((cache / "cache").rglob("*")), "networks and kernels are cached there"
