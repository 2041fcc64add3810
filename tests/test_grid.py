"""The grid runner on a toy notebook: expansion, validation, skip-on-rerun, failures, kill-and-resume,
the lock, one-line grid file errors, collect/summary, compare and publish."""
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ntk_utils import cells, grid, gridfile, parameters_cell, reproduce

CODE_VERSION = gridfile.code_version

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
    verdicts = {"old shape": ["held", "a [verdict, why] pair"],
                "new shape": {"claim": "new shape", "status": "inconclusive", "text": "a claims-module dict", "numbers": {}}}
    results.save(output_dir, parameters, {"fits": {}, "verdicts": verdicts, "lr_seen": lr})
    ''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "toy.py").write_text(TOY)
    shipped = parameters_cell.NOTEBOOKS_DIR / "01_data_scaling.py"    # a section notebook: values checked by their owners
    (notebooks / shipped.name).write_text(shipped.read_text())
    monkeypatch.setattr(parameters_cell, "NOTEBOOKS_DIR", notebooks)
    monkeypatch.setenv("NTK_NOTEBOOKS_DIR", str(notebooks))    # for notebooks that check themselves
    # fingerprints that an edit of ntk_utils elsewhere during the test cannot turn stale
    monkeypatch.setattr(gridfile, "code_version", lambda stem: f"{stem} code")
    grid_file = tmp_path / "g.yaml"
    grid_file.write_text("name: g\ndefaults: {seeds: [0, 1]}\nnotebooks:\n  toy:\n    sweep: {lr: [0.1, 0.2]}\n")
    return tmp_path, grid_file


def test_expansion_defaults_and_cell_names(toy):
    _, grid_file = toy
    name, grid_cells, summary = gridfile.load_grid(grid_file)
    assert name == "g" and summary is None
    assert [c.id for c in grid_cells] == ["toy/lr=0.1", "toy/lr=0.2"]
    assert all(c.parameters["seeds"] == [0, 1] for c in grid_cells)
    assert grid_cells[0].fingerprint != grid_cells[1].fingerprint


@pytest.mark.parametrize("text, message", [
    ("notebooks:\n  toy: {learning_rate: 0.1}\n", "learning_rate: not a parameter"),
    ("notebooks:\n  01_data_scaling: {lr: -1.0}\n", r"lr must be > 0"),
    ("notebooks:\n  toy: {lr: fast}\n", "lr: 'fast' is not a float"),
    ("notebooks:\n  01_data_scaling: {seeds: []}\n", r"seeds must be a non-empty list"),
    ("notebooks:\n  01_data_scaling: {seeds: [0, 0]}\n", "seeds must not repeat a value"),
    ("notebooks:\n  01_data_scaling: {task: synthetic-bin, n_values: [64, 99999]}\n", "this needs 100499"),
    ("notebooks:\n  nope: {}\n", "no notebook 'nope'"),
    ("defaults: {width: 3}\nnotebooks:\n  toy: {}\n", "parameters of no notebook"),
    ("notebook:\n  toy: {}\n", "unknown keys"),
])
def test_bad_parameters_refused_before_compute(toy, text, message):
    tmp_path, _ = toy
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(gridfile.GridError, match=message):
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
    assert {cells.state(root / "g", c)[0] for c in gridfile.load_grid(grid_file)[1]} == {"done"}

    grid_file.write_text("name: g\nnotebooks:\n  toy:\n    params: {fail: true}\n")
    assert grid.run(grid_file, root=root) == ["toy/default"]
    assert (root / "g/toy/default.failed/notebook.ipynb").exists()
    assert not (root / "g/toy/default").exists()
    assert cells.state(root / "g", gridfile.load_grid(grid_file)[1][0])[0] == "failed"


def test_killed_cell_leaves_nothing_finished_and_resumes(toy):
    tmp_path, grid_file = toy
    grid_file.write_text("name: g\nnotebooks:\n  toy:\n    params: {sleep: 60.0}\n")
    root = tmp_path / "out"
    code = (f"import sys; from ntk_utils import grid, parameters_cell; parameters_cell.NOTEBOOKS_DIR = __import__('pathlib').Path({str(tmp_path / 'notebooks')!r}); "
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
    cell = gridfile.load_grid(grid_file)[1][0]
    assert cells.state(root / "g", cell)[0] == "todo"
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


@pytest.mark.parametrize("grid_file", ["quick.yaml", "ci.yaml", "cpu.yaml", "paper.yaml"])
def test_shipped_grids_are_valid(grid_file):
    name, grid_cells, summary = gridfile.load_grid(grid.REPO_ROOT / "parameters" / grid_file)
    assert grid_cells and summary == "00_summary"
    notebooks = {c.notebook for c in grid_cells}
    assert {"01_data_scaling", "02_width", "03_hyperparameters", "04_after_kernel", "05_kernel_dynamics"} <= notebooks


# ----------------------------------------------------------------------- lock

HOLD_LOCK = """
import fcntl, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
f.seek(0); f.truncate(); f.write(f"{os.getpid()}\\n"); f.flush()
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_run_of_the_same_grid_is_refused(toy, capsys):
    tmp_path, grid_file = toy
    root = tmp_path / "out"
    (root / "g").mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(root / "g" / ".lock")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        message = (f"grid g: outputs folder {root / 'g'} is locked: held by pid {holder.pid} "
                   f"(another run is in progress)")
        with pytest.raises(gridfile.GridError) as refused:
            grid.run(grid_file, root=root)
        assert str(refused.value) == message
        capsys.readouterr()
        assert grid.main(["run", str(grid_file), "--root", str(root)]) == 2
        assert capsys.readouterr().err == f"error: {message}\n"
        assert not (root / "g" / "toy").exists()                     # nothing ran
    finally:
        holder.kill()
        holder.wait()
    # the holder died: its lock file stays behind, blocks nothing, and now holds our pid while we run
    assert (root / "g" / ".lock").read_text().strip() == str(holder.pid)
    assert grid.run(grid_file, root=root, only=["lr=0.1"]) == []
    assert (root / "g/toy/lr=0.1/results.json").exists()


def test_lock_held_in_this_process_is_refused_then_released(toy):
    tmp_path, grid_file = toy
    with cells.locked(tmp_path / "out" / "g", "g"):
        with open(tmp_path / "out" / "g" / ".lock", "a+") as other:   # a second open file description
            with pytest.raises(OSError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(gridfile.GridError, match=f"held by pid {os.getpid()} "):
            with cells.locked(tmp_path / "out" / "g", "g"):
                pass
    with cells.locked(tmp_path / "out" / "g", "g"):   # released on exit
        pass


# ----------------------------------------------------------- grid file errors

@pytest.mark.parametrize("text, args, message", [
    ("notebooks: {toy: {lr: 0.1}\n", [], r"bad\.yaml: not valid YAML at line 2, column 1: "),
    ("- toy\n- other\n", [], "the top level must be a mapping"),
    (None, [], "no grid file"),
    ("name: g\n", [], "selects no notebooks"),
    ("notebooks: {}\n", [], "selects no notebooks"),
    ("notebooks: [toy]\n", [], "notebooks: must be a mapping"),
    ("notebooks:\n  toy:\n    sweep: {lr: 0.1}\n", [], "sweep: lr: must be a non-empty list"),
    ("notebooks:\n  toy: {}\n", ["--only", "nothing-like-this"], "--only nothing-like-this matches no cell"),
    ("notebooks:\n  toy:\n    sweep: {lr: [0.1, '0.1']}\n", [], "two sweep values give the same cell toy/lr=0.1"),
    ("notebooks:\n  01_data_scaling: {lr: -1.0, seeds: [x], wide: 1}\n", [],
     "01_data_scaling: invalid parameters: seeds: .*; wide: not a parameter"),
])
def test_grid_file_errors_are_one_line(toy, capsys, text, args, message):
    tmp_path, _ = toy
    bad = tmp_path / "bad.yaml"
    if text is not None:
        bad.write_text(text)
    assert grid.main(["run", str(bad), "--root", str(tmp_path / "out"), *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ") and "Traceback" not in captured.err
    assert __import__("re").search(message, captured.err), captured.err
    assert not (tmp_path / "out").exists()


def test_cli_subprocess_prints_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("notebooks: {01_data_scaling: {n_values: [64, 128\n")
    proc = subprocess.run([sys.executable, "-m", "ntk_utils.grid", "run", str(bad), "--root", str(tmp_path)],
                          capture_output=True, text=True, cwd=grid.REPO_ROOT)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr


# ------------------------------------------------------ collect, summary, publish

def test_collect_summary_and_publish_use_only_current_cells(toy, monkeypatch):
    tmp_path, grid_file = toy
    monkeypatch.setattr(gridfile, "code_version", CODE_VERSION)   # the summary notebook's kernel judges by it
    shutil.copy(grid.REPO_ROOT / "notebooks" / "00_summary.py", tmp_path / "notebooks" / "00_summary.py")
    grid_file.write_text("name: g\nnotebooks:\n  toy:\n    sweep: {lr: [0.1, 0.2, 0.3]}\n")
    root = tmp_path / "out"
    assert grid.run(grid_file, root=root, only=["lr=0.1", "lr=0.2"], summary=False) == []
    # lr=0.2 becomes stale (other parameters), lr=0.4 an old sweep value, lr=0.3 never ran, 0.5 failed
    grid_file.write_text("name: g\ndefaults: {seeds: [3]}\nnotebooks:\n  toy:\n    sweep: {lr: [0.1, 0.2, 0.3, 0.5]}\n"
                         "    params: {}\n")
    shutil.copytree(root / "g/toy/lr=0.1", root / "g/toy/lr=0.4")
    (root / "g/toy/lr=0.5.failed").mkdir()
    (root / "g/toy/.lr=0.6.running").mkdir()
    (root / "g/old_notebook/default").mkdir(parents=True)
    record = json.loads((root / "g/toy/lr=0.1/results.json").read_text())
    fingerprint = {c.name: c.fingerprint for c in gridfile.load_grid(grid_file)[1]}
    record["run"]["fingerprint"] = fingerprint["lr=0.1"]        # lr=0.1 stays current
    (root / "g/toy/lr=0.1/results.json").write_text(json.dumps(record))

    state = cells.collect(root / "g", grid_file)
    assert list(state["done"]) == ["toy/lr=0.1"] and state["done"]["toy/lr=0.1"]["results"]["lr_seen"] == 0.1
    assert state["stale"] == ["toy/lr=0.2"] and state["todo"] == ["toy/lr=0.3"] and state["failed"] == ["toy/lr=0.5"]
    assert state["orphaned"] == ["old_notebook/default", "toy/lr=0.4"]

    # the summary notebook, as the runner runs it, on this folder
    (root / "g/figures").mkdir(parents=True, exist_ok=True)
    cells.execute("00_summary", {"grid_dir": str(root / "g"), "grid_file": str(grid_file)}, root / "g/figures")
    summary = json.loads((root / "g/figures/summary.json").read_text())
    assert summary["cells"] == ["toy/lr=0.1"]
    assert summary["stale"] == ["toy/lr=0.2"] and summary["orphaned"] == ["old_notebook/default", "toy/lr=0.4"]
    assert summary["tally"] == {"held": 1, "not held": 0, "inconclusive": 1}
    text = (root / "g/figures/summary.md").read_text()
    assert "| toy/lr=0.1 | new shape | inconclusive | a claims-module dict |" in text
    assert "| toy/lr=0.1 | old shape | held | a [verdict, why] pair |" in text
    assert "* stale (results of other parameters or code): toy/lr=0.2 (other parameters: seeds [0] -> [3])" in text
    assert "* failed (see <cell>.failed/): toy/lr=0.5" in text and "toy/lr=0.4" in text
    assert str(tmp_path) not in text and "/tmp" not in text and str(grid.REPO_ROOT) not in text

    # publish: the current cell and figures only, replacing an older copy
    reference = tmp_path / "reference" / "g"
    (reference / "toy/lr=0.1").mkdir(parents=True)
    (reference / "toy/lr=0.1/old.png").write_text("old")
    (root / "g/toy/lr=0.1/cache").mkdir()
    (root / "g/toy/lr=0.1/kernel.npy").write_text("not published")
    assert grid.main(["publish", str(root / "g"), str(reference), "--grid-file", str(grid_file)]) == 0
    assert sorted(p.name for p in (reference / "toy/lr=0.1").iterdir()) == ["notebook.ipynb", "results.json"]
    assert sorted(p.name for p in (reference / "toy").iterdir()) == ["lr=0.1"]
    assert (reference / "figures/summary.md").exists() and not (reference / ".lock").exists()
    assert grid.main(["compare", str(root / "g"), str(reference)]) == 0


# -------------------------------------------------------------------- compare

def _results(folder, cell, curves, fingerprint=None):
    """A results.json of ``curves`` (current when ``fingerprint`` is its cell's)."""
    path = folder / cell / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"parameters": {}, "results": {"curves": curves}, "meta": {},
                                "run": {"fingerprint": fingerprint}}))


def _curve(mean, std=0.02, n_runs=4, n_test=500, x=(64, 128)):
    return {"x_name": "n", "x": list(x), "mean": list(mean), "std": [std] * len(x), "n_runs": n_runs, "n_test": n_test}


def test_allowed_difference():
    # se = sqrt(0.02^2 / 4 + 0.2 * 0.8 / (500 * 4)) = sqrt(1.8e-4)
    assert reproduce.allowed_difference({"mean": 0.2, "std": 0.02, "n_runs": 4, "n_test": 500}) == \
        pytest.approx(3 * 2 ** 0.5 * 1.8e-4 ** 0.5)
    assert reproduce.allowed_difference({"mean": 0.0, "std": 0.0, "n_runs": 1, "n_test": 100}) == \
        pytest.approx(3 * 2 ** 0.5 * 1e-6)


def test_compare_within_and_outside_noise(toy, capsys):
    tmp_path, grid_file = toy
    grid_file.write_text("name: q\nnotebooks:\n  toy:\n    sweep: {lr: [0.1, 0.2, 0.3]}\n")
    current = {c.name: c.fingerprint for c in gridfile.load_grid(grid_file)[1]}
    fresh, ref = tmp_path / "runs/q", tmp_path / "reference/q"
    compare = ["compare", str(fresh), str(ref), "--grid-file", str(grid_file)]
    _results(ref, "toy/lr=0.1", {"network": _curve([0.2, 0.1]), "ntk": _curve([0.0, 0.3], std=0.0)})
    _results(fresh, "toy/lr=0.1", {"network": _curve([0.25, 0.1]), "ntk": _curve([0.0, 0.3], std=0.0)},
             current["lr=0.1"])
    _results(fresh, "toy/lr=0.3", {"network": _curve([0.2, 0.1])}, current["lr=0.3"])
    _results(fresh, "toy/lr=0.1.failed", {"network": _curve([0.9, 0.9])}, current["lr=0.1"])   # never compared
    assert grid.main(compare) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "reproduced: 4 of 4 numbers within noise (1 of 1 reference cells by a current cell)"
    assert "only in the fresh run: toy/lr=0.3" in out

    _results(ref, "toy/lr=0.2", {"network": _curve([0.2, 0.1])})              # not run in the fresh folder
    _results(ref, "toy/lr=0.3", {"network": _curve([0.2, 0.1])})
    _results(fresh, "toy/lr=0.3", {"network": _curve([0.2, 0.1])}, "an older fingerprint")
    assert grid.main(compare) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "reproduced: 4 of 4 numbers within noise (1 of 3 reference cells by a current cell)"
    assert "not reproduced: toy/lr=0.2 (not run yet)" in out
    assert "not reproduced: toy/lr=0.3 (stale: other code (notebook or ntk_utils sources))" in out

    _results(fresh, "toy/lr=0.1", {"network": _curve([0.26, 0.1]), "ntk": _curve([1e-5, 0.34], std=0.0),
                                   "extra": [0.1, 0.2]}, current["lr=0.1"])
    assert grid.main(compare) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "reproduced: 2 of 4 numbers within noise (1 of 3 reference cells by a current cell)"
    assert "outside noise: toy/lr=0.1  network  n=64: fresh 0.2600, reference 0.2000, allowed ±0.0569" in out
    assert "outside noise: toy/lr=0.1  ntk  n=64: fresh 0.0000, reference 0.0000, allowed ±0.0000" in out  # se floor
    assert "ntk  n=128" not in out                   # 0.3 ± 3√2·sqrt(0.3·0.7 / 2000) = ±0.0435 holds 0.34
    assert "not compared: toy/lr=0.1 extra: only in fresh" in out


def test_compare_without_reference(tmp_path, capsys):
    assert grid.main(["compare", str(tmp_path / "runs/q"), str(tmp_path / "nope")]) == 0
    assert capsys.readouterr().out == f"no reference at {tmp_path / 'nope'}: nothing to compare\n"


def test_code_version_reads_the_cells_not_the_header(toy):
    """Jupyter rewrites a notebook's header when it saves it: that must not make a cell stale."""
    path = parameters_cell.NOTEBOOKS_DIR / "toy.py"
    before = CODE_VERSION("toy")
    path.write_text("# ---\n# jupyter:\n#   jupytext:\n#     text_representation:\n#       extension: .py\n"
                    "#       format_name: percent\n#       format_version: '1.3'\n#       jupytext_version: 1.19.6\n"
                    "#   kernelspec:\n#     display_name: Python 3 (ipykernel)\n#     name: python3\n# ---\n\n"
                    + TOY)
    assert CODE_VERSION("toy") == before
    path.write_text(TOY.replace("time.sleep(sleep)", "time.sleep(2 * sleep)"))
    assert CODE_VERSION("toy") != before
    path.write_text(TOY.replace('# %% tags=["parameters"]', "# %%"))   # a tag is part of what runs
    assert CODE_VERSION("toy") != before
