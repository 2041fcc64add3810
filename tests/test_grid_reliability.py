"""Issue 20's grid probes, each on a one-cell toy grid: a report, a summary and a reproduction
check that count only current cells (1, 2), a relative --root and relative cache / data paths
from another working directory (3), duplicate notebook keys (7), a grid name that is not a
plain folder name (8), the corrupt-cache-entry warning on the terminal (11, second half); and
the grid's code fingerprint, which a docstring edit leaves unchanged."""
import html.parser
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from ntk_utils import grid, gridfile, parameters_cell, report
from ntk_utils.sections import summary

TOY = textwrap.dedent('''\
    # %%
    from ntk_utils import cache, data, results
    _before_parameters = set(globals())

    # %% tags=["parameters"]
    lr = 0.1
    fail = False
    corrupt = False   # a corrupt cache entry where this run's entry is: recomputed, with a warning
    output_dir = "out"

    # %%
    parameters = results.collect_parameters(globals(), _before_parameters)
    assert not fail, "asked to fail"
    if corrupt:
        cache.cached("toy", lr, lambda: lr)
        for path in (cache.cache_dir() / "toy").glob("*.pkl"):
            path.write_bytes(b"garbage")
        cache.cached("toy", lr, lambda: lr)
    curve = {"x_name": "n", "x": [8, 16], "mean": [0.25, 0.125], "std": [0.0, 0.0], "n_runs": 1, "n_test": 64}
    verdict = {"claim": "toy claim", "status": "held", "text": f"lr {lr}", "numbers": {}}
    results.save(output_dir, parameters, {"curves": {"toy": curve}, "verdicts": {"toy claim": verdict},
                                          "cache_dir": str(cache.cache_dir()), "data_dir": str(data.resolve_data_dir())})
    ''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "toy.py").write_text(TOY)
    monkeypatch.setattr(parameters_cell, "NOTEBOOKS_DIR", notebooks)
    monkeypatch.setenv("NTK_NOTEBOOKS_DIR", str(notebooks))
    monkeypatch.setenv("NTK_CACHE_DIR", str(tmp_path / "cache"))
    # fingerprints that an edit of ntk_utils elsewhere during the test cannot turn stale
    monkeypatch.setattr(gridfile, "code_version", lambda stem: f"{stem} code")
    grid_file = tmp_path / "g.yaml"
    grid_file.write_text("name: g\nnotebooks:\n  toy: {}\n")
    return tmp_path, grid_file


def _text(index):
    parser = html.parser.HTMLParser()
    text, rows = [], []
    parser.handle_data = text.append
    parser.handle_starttag = lambda tag, attrs: rows.append(dict(attrs)) if tag == "tr" else None
    parser.feed(index.read_text("utf-8"))
    return " ".join(text), [r for r in rows if "verdict" in (r.get("class") or "").split()]


def test_probe1_report_names_stale_cells(toy):
    tmp_path, grid_file = toy
    root = tmp_path / "out"
    assert grid.run(grid_file, root=root, summary=False) == []
    summary.write(summary.run(str(grid_file), str(root / "g")), root / "g" / "figures")   # as notebook 00 does
    text, verdicts = _text(report.build(root / "g", tmp_path / "site"))
    assert len(verdicts) == 1 and "1 cells summarized" in text

    grid_file.write_text("name: g\nnotebooks:\n  toy: {lr: 0.2}\n")   # a rerun with other values, killed
    text, verdicts = _text(report.build(root / "g", tmp_path / "site"))
    assert verdicts == [] and "0 cells summarized" in text            # its old verdict is not shown as current
    assert "1 stale" in text and "toy/default" in text and "lr" in text    # named, with its reason


def test_probe2_compare_and_summary_count_only_current_cells(toy, capsys):
    tmp_path, grid_file = toy
    root, reference = tmp_path / "out", tmp_path / "reference" / "g"
    assert grid.run(grid_file, root=root, summary=False) == []
    assert grid.main(["publish", str(root / "g"), str(reference), "--grid-file", str(grid_file)]) == 0
    assert grid.main(["compare", str(root / "g"), str(reference)]) == 0
    assert "reproduced: 2 of 2 numbers within noise" in capsys.readouterr().out

    grid_file.write_text("name: g\nnotebooks:\n  toy: {fail: true}\n")   # the rerun fails: the old result is not current
    assert grid.run(grid_file, root=root, summary=False) == ["toy/default"]
    capsys.readouterr()
    assert grid.main(["compare", str(root / "g"), str(reference)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "reproduced: 0 of 0 numbers within noise (0 of 1 reference cells by a current cell)"
    assert "not reproduced: toy/default (failed: PapermillExecutionError: AssertionError: asked to fail)" in out
    state = summary.run(str(grid_file), str(root / "g"))
    assert state.records == {} and state.not_summarized["failed"] == ["toy/default"]
    assert state.not_summarized["stale"] == []
    assert "toy/default (PapermillExecutionError: AssertionError: asked to fail)" in state.markdown()


def test_probe3_relative_root_cache_and_data_from_another_directory(toy):
    tmp_path, grid_file = toy
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "NTK_CACHE_DIR": "rel-cache", "NTK_DATA_DIR": "rel-data"}
    proc = subprocess.run([sys.executable, "-m", "ntk_utils.grid", "run", "../g.yaml", "--root", "rel-runs",
                           "--no-summary"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((elsewhere / "rel-runs/g/toy/default/results.json").read_text())
    assert record["results"]["cache_dir"] == str(elsewhere / "rel-cache")
    assert record["results"]["data_dir"] == str(elsewhere / "rel-data")


def test_probe7_duplicate_notebook_key_refused(toy, capsys):
    tmp_path, grid_file = toy
    grid_file.write_text("name: g\nnotebooks:\n  toy: {lr: 0.1}\n  toy: {lr: 0.2}\n")
    with pytest.raises(gridfile.GridError, match="duplicate key 'toy' at line 4"):
        gridfile.load_grid(grid_file)
    assert grid.main(["run", str(grid_file), "--root", str(tmp_path / "out"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "duplicate key 'toy'" in err


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "''", "..", ".hidden"])
def test_probe8_grid_name_must_be_a_plain_folder_name(toy, name):
    tmp_path, grid_file = toy
    grid_file.write_text(f"name: {name}\nnotebooks:\n  toy: {{}}\n")
    with pytest.raises(gridfile.GridError, match="must be a plain folder name"):
        grid.run(grid_file, root=tmp_path / "out" / "inner")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escaped").exists()


def test_probe11b_corrupt_cache_entry_printed_on_the_terminal(toy, capsys):
    tmp_path, grid_file = toy
    grid_file.write_text("name: g\nnotebooks:\n  toy: {corrupt: true}\n")
    assert grid.run(grid_file, root=tmp_path / "out", summary=False) == []
    record = json.loads((tmp_path / "out/g/toy/default/results.json").read_text())
    [path] = record["meta"]["cache"]["recomputed_corrupt"]
    assert f"toy/default: corrupt cache entry recomputed: {path}" in capsys.readouterr().out


def test_code_version_ignores_docstrings(tmp_path, monkeypatch):
    package = tmp_path / "ntk_utils"
    shutil.copytree(gridfile.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(gridfile, "PACKAGE", package)
    before = gridfile.code_version("01_data_scaling")
    path = package / "report.py"
    path.write_text(path.read_text().replace('"""A static site', '"""An edited docstring: a static site', 1))
    assert gridfile.code_version("01_data_scaling") == before
    path.write_text(path.read_text() + "\nEDITED = 1\n")
    assert gridfile.code_version("01_data_scaling") != before
