"""The grid runner on a toy notebook: expansion, validation, skip-on-rerun, failures, kill-and-resume."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ntk_utils import grid

TOY = textwrap.dedent('''\
    # %%
    import json, os, time
    from ntk_utils import results
    _before_parameters = set(globals())

    # %% tags=["parameters"]
    lr = 0.1
    seeds = [0]
    sleep = 0.0
    fail = False
    output_dir = "out"

    # %%
    parameters = results.collect_parameters(globals(), _before_parameters)
    time.sleep(sleep)
    assert not fail, "asked to fail"
    results.save(output_dir, parameters, {"fits": {}, "verdicts": {}, "lr_seen": lr})
    ''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "toy.py").write_text(TOY)
    monkeypatch.setattr(grid, "NOTEBOOKS_DIR", notebooks)
    grid_file = tmp_path / "g.yaml"
    grid_file.write_text("name: g\ndefaults: {seeds: [0, 1]}\nnotebooks:\n  toy:\n    sweep: {lr: [0.1, 0.2]}\n")
    return tmp_path, grid_file


def test_expansion_defaults_and_cell_names(toy):
    _, grid_file = toy
    name, cells, summary = grid.load_grid(grid_file)
    assert name == "g" and summary is None
    assert [c.id for c in cells] == ["toy/lr=0.1", "toy/lr=0.2"]
    assert all(c.parameters["seeds"] == [0, 1] for c in cells)
    assert cells[0].fingerprint != cells[1].fingerprint


@pytest.mark.parametrize("text, message", [
    ("notebooks:\n  toy: {learning_rate: 0.1}\n", "learning_rate: not a parameter"),
    ("notebooks:\n  toy: {lr: -1.0}\n", "lr must be > 0"),
    ("notebooks:\n  toy: {lr: fast}\n", "expected float"),
    ("notebooks:\n  toy: {seeds: []}\n", "seeds must be a non-empty list"),
    ("notebooks:\n  nope: {}\n", "no notebook 'nope'"),
    ("defaults: {width: 3}\nnotebooks:\n  toy: {}\n", "parameters of no notebook"),
    ("notebook:\n  toy: {}\n", "unknown keys"),
])
def test_bad_parameters_refused_before_compute(toy, text, message):
    tmp_path, _ = toy
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(grid.GridError, match=message):
        grid.run(bad, root=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_run_skip_on_rerun_and_failure_kept(toy):
    tmp_path, grid_file = toy
    root = tmp_path / "out"
    assert grid.run(grid_file, root=root) == []
    record = json.loads((root / "g/toy/lr=0.2/results.json").read_text())
    assert record["results"]["lr_seen"] == 0.2 and record["parameters"]["seeds"] == [0, 1]
    assert record["run"]["cell"] == "toy/lr=0.2" and "git_commit" in record["meta"]
    assert record["meta"]["wall_seconds"] >= 0 and "jax" in record["meta"]["versions"]
    mtime = os.path.getmtime(root / "g/toy/lr=0.1/results.json")
    assert grid.run(grid_file, root=root) == []                     # everything done: skipped
    assert os.path.getmtime(root / "g/toy/lr=0.1/results.json") == mtime
    _, cells, _ = grid.load_grid(grid_file)
    assert {grid.status(root, "g", c) for c in cells} == {"done"}

    grid_file.write_text("name: g\nnotebooks:\n  toy:\n    params: {fail: true}\n")
    assert grid.run(grid_file, root=root) == ["toy/default"]
    assert (root / "g/toy/default.failed/notebook.ipynb").exists()
    assert not (root / "g/toy/default").exists()
    assert grid.status(root, "g", grid.load_grid(grid_file)[1][0]) == "failed"


def test_killed_cell_leaves_nothing_finished_and_resumes(toy):
    tmp_path, grid_file = toy
    grid_file.write_text("name: g\nnotebooks:\n  toy:\n    params: {sleep: 60.0}\n")
    root = tmp_path / "out"
    code = (f"import sys; from ntk_utils import grid; grid.NOTEBOOKS_DIR = __import__('pathlib').Path({str(tmp_path / 'notebooks')!r}); "
            f"grid.run({str(grid_file)!r}, root={str(root)!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    running = root / "g/toy/.default.running"
    for _ in range(600):
        if (running / "notebook.ipynb").exists():
            break
        time.sleep(0.1)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    cell = grid.load_grid(grid_file)[1][0]
    assert grid.status(root, "g", cell) == "todo"
    assert not (root / "g/toy/default/results.json").exists()

    grid_file.write_text("name: g\nnotebooks:\n  toy:\n    params: {sleep: 0.0}\n")
    assert grid.run(grid_file, root=root) == []
    assert (root / "g/toy/default/results.json").exists() and not running.exists()


def test_only_and_dry_run(toy, capsys):
    tmp_path, grid_file = toy
    assert grid.run(grid_file, root=tmp_path / "out", dry_run=True) == []
    out = capsys.readouterr().out
    assert "todo  toy/lr=0.1" in out and "todo  toy/lr=0.2" in out
    grid.run(grid_file, root=tmp_path / "out", only=["lr=0.2"])
    assert (tmp_path / "out/g/toy/lr=0.2/results.json").exists()
    assert not (tmp_path / "out/g/toy/lr=0.1").exists()


def test_cli_reports_bad_grid(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("notebooks:\n  01_data_scaling: {task: imagenet}\n")
    assert grid.main(["run", str(bad), "--root", str(tmp_path)]) == 2


@pytest.mark.parametrize("grid_file", ["quick.yaml", "paper.yaml", "ci.yaml"])
def test_shipped_grids_are_valid(grid_file):
    name, cells, summary = grid.load_grid(grid.REPO_ROOT / "parameters" / grid_file)
    assert cells and summary == "00_summary"
    notebooks = {c.notebook for c in cells}
    assert {"01_data_scaling", "02_width", "03_hyperparameters", "04_after_kernel", "05_kernel_dynamics"} <= notebooks
