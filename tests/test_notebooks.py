"""Every notebook executes under papermill through the grid runner with tiny parameters.

Real CIFAR-10 where ../shared/data/cifar10 is present, else the generated `synthetic-bin` task.
"""
import ast
import json
import pathlib
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SHARED_CIFAR


def test_no_cell_failed(ci_run):
    out, failed, cells = ci_run
    failed_logs = {f: sorted(p.name for p in (out / (f + ".failed")).glob("*")) for f in failed if "/" in f}
    assert failed == [], failed_logs


@pytest.mark.parametrize("notebook", ["primer", "01_data_scaling", "02_width", "03_hyperparameters",
                                      "04_after_kernel", "05_kernel_dynamics"])
def test_notebook_wrote_results_and_figures(ci_run, notebook):
    out, _, cells = ci_run
    for cell in [c for c in cells if c.notebook == notebook]:
        folder = out / cell.notebook / cell.name
        record = json.loads((folder / "results.json").read_text())
        assert record["parameters"]["n_test"] == cell.parameters["n_test"]
        assert {"versions", "device", "git_commit", "wall_seconds"} <= set(record["meta"])
        assert record["run"]["fingerprint"] == cell.fingerprint
        if notebook != "primer":   # the primer illustrates; the paper's claims come from ntk_utils.claims
            verdicts = record["results"]["verdicts"]
            assert verdicts and all(v["status"] in ("held", "not held", "inconclusive") for v in verdicts.values())
            assert all("nan" not in v["text"].lower().split() for v in verdicts.values())
        for name, c in record["results"].get("curves", {}).items():   # errors are rates, one per x
            mean = [m for m in c["mean"] if m is not None]
            assert all(0 <= m <= 1 for m in mean), (name, mean)
            assert len(c["mean"]) == len(c["x"]) and c["n_test"] == cell.parameters["n_test"]
        n_curves = [c for c in record["results"].get("curves", {}).values() if c["x_name"] == "n" and len(c["x"]) > 1]
        assert all(c["x"] == record["parameters"]["n_values"] for c in n_curves)
        assert list(folder.glob("*.png")), f"{cell.id} drew no figure"
        assert (folder / "notebook.ipynb").exists()


def test_summary_collects_every_cell(ci_run):
    out, _, cells = ci_run
    summary = json.loads((out / "figures" / "summary.json").read_text())
    assert len(summary["cells"]) == len(cells)
    assert (out / "figures" / "figure1.png").exists()
    assert "| 01_data_scaling/default | network scales better than" in (out / "figures" / "summary.md").read_text()
    copied = {p.name.split("--")[0] for p in (out / "figures").glob("*--*.png")}
    assert copied == {c.notebook for c in cells}      # every notebook's figures gathered in figures/
    assert summary["exponents"] and summary["claims"]


def test_executed_notebooks_hold_no_machine_path(ci_run):
    """Every executed notebook and record of the grid (warnings captured included) names no path of
    this machine: not the grid's folder, not the checkout, not the venv. (This grid's folder and
    file are outside the repository, so where they are is a machine path: the summary's grid_dir
    parameter and grid.json, which names the grid file, are left out.)"""
    import nbformat
    out, _, _ = ci_run
    written = [p for p in sorted(out.rglob("*.ipynb")) + sorted(out.rglob("*.json")) + sorted(out.rglob("*.md"))
               if p != out / "grid.json"]
    assert len(written) > 10
    machine = {str(out.parent.parent), str(ROOT), sys.prefix}
    found = {}
    for path in written:
        text = path.read_text()
        if path == out / "figures" / "notebook.ipynb":
            nb = nbformat.reads(text, as_version=4)
            nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
            nb.metadata.papermill.pop("parameters")
            text = nbformat.writes(nb)
        found[path.relative_to(out).as_posix()] = sorted(m for m in machine if m in text)
    assert {p: m for p, m in found.items() if m} == {}


def test_executed_notebooks_show_progress_bars_as_text(ci_run):
    """A saved notebook's progress bars are their final state as text, not widgets (whose text
    fallback would read 0%)."""
    import nbformat
    out, _, _ = ci_run
    bars = []
    for path in sorted(out.rglob("notebook.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert "widgets" not in nb.metadata, path
        outputs = [o for c in nb.cells for o in c.get("outputs", [])]
        assert not [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})], path
        bars += [o["data"]["text/plain"] for o in outputs if "|" in o.get("data", {}).get("text/plain", "")
                 and "%|" in o["data"]["text/plain"]]
    assert bars and all("100%|##########|" in b for b in bars if b.startswith("train ")), bars[:5]


def test_notebook_verdicts_equal_the_library_on_the_same_outcomes(ci_run):
    """Notebook 01's verdict numbers are the claims module's on the outcomes the notebook saved."""
    import numpy as np
    from ntk_utils import claims
    out, _, cells = ci_run
    folder = out / "01_data_scaling" / "default"
    record = json.loads((folder / "results.json").read_text())
    saved = np.load(folder / "outcomes.npz")
    p = record["parameters"]
    limit = "infinite NTK (SP)"   # the limit of the standard-parameterized network notebook 01 trains
    again = claims.scales_better(p["n_values"], saved["network"].astype(float), saved[limit].astype(float),
                                 names=("network", limit), margin=p["alpha_margin"], n_boot=p["n_boot"])
    stored = record["results"]["verdicts"][again.claim]
    assert stored["status"] == again.status
    for key in ("alpha_better", "alpha_worse", "delta", "delta_low", "delta_high"):
        assert stored["numbers"][key] == pytest.approx(again.numbers[key], abs=1e-9)


NOTEBOOK_FILES = sorted((ROOT / "notebooks").glob("*.py"))
LIBRARY_ONLY = {"ntk_utils", "IPython"}     # what a notebook may import from


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_notebooks_only_call_the_library(path):
    """A notebook defines nothing and holds no bookkeeping: no functions, classes or lambdas, no
    loops beyond printing, and it imports only ntk_utils (and IPython's Markdown)."""
    tree = ast.parse(path.read_text())
    defined = [type(n).__name__ for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))]
    assert not defined, f"{path.name} defines {defined}"
    imports = {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imports |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imports <= LIBRARY_ONLY, f"{path.name} imports {imports - LIBRARY_ONLY}"
    loops = [n for n in ast.walk(tree) if isinstance(n, (ast.For, ast.While))]
    assert all(all(isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and getattr(s.value.func, "id", "") == "print"
                   for s in loop.body) for loop in loops), f"{path.name} loops over more than print()"


def test_one_notebook_runs_directly_with_papermill(tmp_path, request):
    """The README's direct path: jupytext --to ipynb, then papermill -p (a class pair among them)."""
    bin_dir = pathlib.Path(sys.executable).parent
    env_data = {}
    if (SHARED_CIFAR / "materialize.py").exists():
        env_data["NTK_DATA_DIR"] = str(request.getfixturevalue("real_data_dir"))
        task, classes, names = "cifar10-pair", "[[3], [5]]", "cat vs dog"
    else:
        task, classes, names = "synthetic-bin", "[[3], [5]]", "class 3 vs class 5"
    import os
    env = {**os.environ, **env_data, "NTK_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run([str(bin_dir / "jupytext"), "--to", "ipynb", "notebooks/01_data_scaling.py", "-o",
                    str(tmp_path / "01.ipynb")], cwd=ROOT, check=True, env=env, capture_output=True)
    values = {"task": task, "classes": classes, "n_values": "[16, 32]", "n_test": "64", "width": "4",
              "epochs": "1", "min_steps": "10", "val_size": "32", "n_boot": "100", "output_dir": str(tmp_path / "out")}
    command = [str(bin_dir / "papermill"), str(tmp_path / "01.ipynb"), str(tmp_path / "run.ipynb"), "--cwd", str(ROOT)]
    for name, value in values.items():
        command += ["-p", name, value]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "out" / "results.json").read_text())
    assert record["parameters"]["classes"] == [[3], [5]] and record["parameters"]["width"] == 4
    assert (tmp_path / "out" / "fig1a_data_scaling.png").exists()
    assert names in (tmp_path / "run.ipynb").read_text()     # the run says which pair it ran on


def _code_cells(notebook):
    """Sources of the code cells, without papermill's injected-parameters cell."""
    return [c.source.strip() for c in notebook.cells if c.cell_type == "code"
            and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def test_colab_badges_open_executed_notebooks_of_the_current_source():
    """Each notebook has one "Open in Colab" badge in the README; it opens an executed reference
    notebook (committed, with outputs) whose code cells are those of the current .py source."""
    import re
    import tomllib
    import jupytext
    readme = (ROOT / "README.md").read_text()
    repository = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    prefix = "https://colab.research.google.com/github/" + repository.removeprefix("https://github.com/") + "/blob/main/"
    links = re.findall(r"\]\((https://colab\.research\.google\.com/github/[^)\s]+)\)", readme)
    assert links and all(link.startswith(prefix) for link in links), links
    opened = {}
    for link in links:
        path = ROOT / link.removeprefix(prefix)
        assert path.suffix == ".ipynb" and path.exists(), f"badge target missing: {path}"
        parts = path.relative_to(ROOT / "outputs" / "reference").parts
        name = "00_summary" if parts[1] == "figures" else parts[1]
        executed = jupytext.read(path)
        assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code"), f"{path} has no outputs"
        source = jupytext.read(ROOT / "notebooks" / f"{name}.py")
        assert _code_cells(executed) == _code_cells(source), f"{path} was not produced from notebooks/{name}.py"
        opened[name] = path
    assert sorted(opened) == sorted(p.stem for p in (ROOT / "notebooks").glob("*.py")), "one badge per notebook"


def test_jupytext_config_declares_the_percent_format():
    from jupytext.config import load_jupytext_configuration_file
    config = load_jupytext_configuration_file(str(ROOT / "jupytext.toml"))
    assert list(config.formats) == ["py:percent"]


def test_every_image_the_readme_shows_is_committed():
    import re
    readme = (ROOT / "README.md").read_text()
    images = re.findall(r'<img src="([^"]+)"', readme) + re.findall(r"!\[[^\]]*\]\(((?!https?://)[^)\s]+)\)", readme)
    assert images
    missing = [i for i in images if not (ROOT / i).exists()]
    assert not missing, missing


def test_install_cells_pin_what_pyproject_pins():
    """Each notebook's install cell (for Colab / outside the checkout) installs this repository and
    exactly the neural-tangents that pyproject.toml pins: one pin, stated once, followed everywhere."""
    import re
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = project["tool"]["ntk-limits"]["no-deps"]
    repository = project["project"]["urls"]["Repository"]
    for path in sorted((ROOT / "notebooks").glob("*.py")):
        text = path.read_text()
        assert f"ntk-limits @ git+{repository}" in text, f"{path.name}: install cell does not install {repository}"
        installed = re.findall(r'install -q --no-deps ([^"\']+)"', text)
        assert installed == [" ".join(pins)], f"{path.name}: installs {installed} without deps, pyproject pins {pins}"


MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:tmp|work|root|home|Users|mnt|scratch|private|var|opt)/")


def test_committed_outputs_hold_no_machine_path():
    """What we publish (outputs/reference: executed notebooks, records, summaries) names no path of
    the machine that made it."""
    files = [p for p in sorted((ROOT / "outputs" / "reference").rglob("*"))
             if p.suffix in (".ipynb", ".json", ".md", ".html", ".txt")]
    assert files
    found = {p.relative_to(ROOT).as_posix(): sorted(set(MACHINE_PATH.findall(p.read_text()))) for p in files}
    assert {p: m for p, m in found.items() if m or str(ROOT) in (ROOT / p).read_text()} == {}
