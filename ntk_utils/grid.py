"""Run the notebooks over a parameter grid with papermill.

    python -m ntk_utils.grid run parameters/quick.yaml [--only 01_data] [--dry-run] [--force]

A grid file (YAML) is data:

    name: quick
    defaults: {task: cifar10-pair, image_size: 8, ...}   # given to every notebook that has the name
    notebooks:
      01_data_scaling: {}                                 # one cell: defaults + these values
      03_hyperparameters:
        params: {seeds: [0, 1]}
        sweep: {variants: [[gd], [no_momentum]]}          # one cell per value (product over keys)
    summary: 00_summary                                   # run last, over everything in the grid

Each cell (notebook x parameter set) runs into ``outputs/<grid>/<notebook>/<cell>/``: the
executed ``notebook.ipynb``, ``results.json`` and figures. Then every cell's figures are
copied into ``outputs/<grid>/figures/`` and the summary notebook runs there (Figure 1, the
table of exponents, the claims).

Safe to interrupt and rerun: a cell runs in a hidden ``.<cell>.running`` folder that is
renamed into place only when it succeeded, so a killed cell leaves nothing that looks finished.
A finished cell whose parameters and code (notebook + ntk_utils sources) are unchanged is
skipped. A failed cell keeps its executed notebook in ``<cell>.failed/`` and the run goes on.
Unknown parameter names and invalid values are refused before anything is computed.
"""
import argparse
import dataclasses
import hashlib
import itertools
import json
import os
import pathlib
import re
import shutil
import sys
import time

import yaml
from tqdm.auto import tqdm

from ntk_utils.cache import REPO_ROOT

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
GRID_KEYS = {"name", "defaults", "notebooks", "summary", "description"}


class GridError(ValueError):
    """A grid file or parameter that cannot run; raised before any compute."""


@dataclasses.dataclass
class Cell:
    notebook: str          # notebook stem, e.g. "01_data_scaling"
    name: str              # cell folder name, e.g. "default" or "variants=gd"
    parameters: dict       # values injected by papermill (output_dir added at run time)
    fingerprint: str       # hash of parameters and code: equal => the result is still valid

    @property
    def id(self):
        return f"{self.notebook}/{self.name}"


# ----------------------------------------------------------------- parameters

def notebook_path(stem):
    path = NOTEBOOKS_DIR / f"{stem}.py"
    if not path.exists():
        known = sorted(p.stem for p in NOTEBOOKS_DIR.glob("*.py"))
        raise GridError(f"no notebook {stem!r}; notebooks: {known}")
    return path


def notebook_defaults(stem):
    """{name: default} from the notebook's cell tagged ``parameters``."""
    import jupytext
    nb = jupytext.read(notebook_path(stem))
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise GridError(f"{stem} must have exactly one cell tagged 'parameters', found {len(cells)}")
    namespace = {}
    exec(cells[0].source, namespace)  # the parameters cell holds plain literal assignments
    return {k: v for k, v in namespace.items() if not k.startswith("_")}


def _positive_int_list(v):
    return isinstance(v, list) and v and all(isinstance(i, int) and i > 0 for i in v)


def _value_errors(name, value):
    """Problems with one value, for the parameter names whose meaning is shared by notebooks."""
    from ntk_utils import data
    if name in ("task", "svhn_task", "svhn_fallback_task") and value not in data.TASKS:
        return f"unknown task {value!r}; tasks: {sorted(data.TASKS)}"
    if name == "image_size" and value not in (4, 8, 16, 32):
        return "image_size must be 4, 8, 16 or 32"
    if name == "n_values" and not (_positive_int_list(value) and value == sorted(set(value))):
        return "n_values must be an increasing list of positive integers"
    if name == "seeds" and not (isinstance(value, list) and value and all(isinstance(s, int) for s in value)):
        return "seeds must be a non-empty list of integers"
    if (name.startswith("width") or name in ("n_test", "epochs", "n_train", "n_fixed", "n_fit")) and not (
            _positive_int_list(value) if isinstance(value, list) else isinstance(value, (int, float)) and value > 0):
        return f"{name} must be positive"
    if name.startswith("lr") and not (isinstance(value, (int, float)) and value > 0):
        return f"{name} must be > 0"
    if name == "momentum" and not (isinstance(value, (int, float)) and 0 <= value < 1):
        return "momentum must be in [0, 1)"
    if name == "ridge" and not (isinstance(value, (int, float)) and value >= 0):
        return "ridge must be >= 0"
    return None


def _type_ok(default, value):
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def validate(stem, parameters, defaults=None):
    """Raise GridError for names the notebook does not have or values it cannot take."""
    defaults = notebook_defaults(stem) if defaults is None else defaults
    problems = []
    for name, value in parameters.items():
        if name not in defaults:
            problems.append(f"{name}: not a parameter of {stem} (its parameters: {sorted(defaults)})")
        elif not _type_ok(defaults[name], value):
            problems.append(f"{name}: {value!r} is a {type(value).__name__}, expected {type(defaults[name]).__name__}")
        elif (why := _value_errors(name, value)):
            problems.append(f"{name}: {why} (got {value!r})")
    if problems:
        raise GridError(f"{stem}: invalid parameters:\n  " + "\n  ".join(problems))


# ----------------------------------------------------------------------- grid

def code_version(stem):
    """Hash of the notebook and of the ntk_utils sources it runs (all but this runner):
    a change reruns the cell."""
    h = hashlib.sha256(notebook_path(stem).read_bytes())
    for path in sorted((REPO_ROOT / "ntk_utils").glob("*.py")):
        if path.name != "grid.py":
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def _cell_name(sweep_values):
    if not sweep_values:
        return "default"
    text = ",".join(f"{k}={'+'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sweep_values.items())
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", text)


def load_grid(path):
    """(grid name, [Cell], summary notebook or None) from a grid file, fully validated."""
    path = pathlib.Path(path)
    spec = yaml.safe_load(path.read_text()) or {}
    if unknown := set(spec) - GRID_KEYS:
        raise GridError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(GRID_KEYS)}")
    name = spec.get("name", path.stem)
    shared = spec.get("defaults") or {}
    used = set()
    cells = []
    for stem, entry in (spec.get("notebooks") or {}).items():
        entry = entry or {}
        if not set(entry) <= {"params", "sweep"}:
            entry = {"params": entry}   # shorthand: just the notebook's values, no sweep
        defaults = notebook_defaults(stem)
        base = {k: v for k, v in shared.items() if k in defaults}
        used |= set(base)
        base.update(entry.get("params") or {})
        sweep = entry.get("sweep") or {}
        for combo in itertools.product(*sweep.values()):
            values = dict(zip(sweep, combo))
            parameters = {**base, **values}
            validate(stem, parameters, defaults)
            fingerprint = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()
                                         + code_version(stem).encode()).hexdigest()[:16]
            cells.append(Cell(stem, _cell_name(values), parameters, fingerprint))
    if unused := set(shared) - used:
        raise GridError(f"{path}: defaults {sorted(unused)} are parameters of no notebook in the grid")
    summary = spec.get("summary")
    if summary:
        notebook_path(summary)
    return name, cells, summary


# ---------------------------------------------------------------------- cells

def cell_dir(root, grid, cell):
    return pathlib.Path(root) / grid / cell.notebook / cell.name


def status(root, grid, cell):
    """'done' (valid result), 'stale' (result of other parameters or code), 'failed' or 'todo'."""
    final = cell_dir(root, grid, cell)
    if (final / "results.json").exists():
        with open(final / "results.json") as f:
            run = json.load(f).get("run", {})
        return "done" if run.get("fingerprint") == cell.fingerprint else "stale"
    if final.with_name(final.name + ".failed").exists():
        return "failed"
    return "todo"


def execute(stem, parameters, out_dir, log_output=False):
    """Execute one notebook with papermill into ``out_dir/notebook.ipynb`` (raises on error)."""
    import jupytext
    import papermill
    papermill.execute_notebook(jupytext.read(notebook_path(stem)), str(out_dir / "notebook.ipynb"),
                               parameters={**parameters, "output_dir": str(out_dir)}, progress_bar=False,
                               log_output=log_output, cwd=str(REPO_ROOT), kernel_name="python3", language="python")


def run_cell(root, grid, cell):
    """Run one cell atomically. Returns (ok, seconds, message)."""
    from ntk_utils import results
    final = cell_dir(root, grid, cell)
    running = final.with_name(f".{final.name}.running")
    failed = final.with_name(final.name + ".failed")
    shutil.rmtree(running, ignore_errors=True)   # left by a killed run: never trusted
    running.mkdir(parents=True)
    start = time.time()
    try:
        execute(cell.notebook, cell.parameters, running)
        record = results.load(running / "results.json")
    except Exception as e:  # noqa: BLE001 - any notebook error: keep it for debugging, go on
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(running, failed)
        return False, time.time() - start, f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:300] if str(e).strip() else ''}"
    record["run"] = {"grid": grid, "cell": cell.id, "fingerprint": cell.fingerprint,
                     "wall_seconds": round(time.time() - start, 2)}
    results.write_json(running / "results.json", record)
    shutil.rmtree(final, ignore_errors=True)
    shutil.rmtree(failed, ignore_errors=True)
    os.replace(running, final)
    return True, time.time() - start, "ok"


def run(grid_file, *, only=None, dry_run=False, force=False, root=REPO_ROOT / "outputs", summary=True):
    """Run every selected cell that is not done, then the summary. Returns the failed cell ids."""
    grid, cells, summary_nb = load_grid(grid_file)
    if only:
        cells = [c for c in cells if any(pattern in c.id for pattern in only)]
    states = {c.id: status(root, grid, c) for c in cells}
    if dry_run:
        for c in cells:
            print(f"{states[c.id]:>6}  {c.id}  {json.dumps(c.parameters, sort_keys=True)}")
        return []
    todo = [c for c in cells if force or states[c.id] != "done"]
    print(f"grid {grid}: {len(cells)} cells, {len(cells) - len(todo)} already done, {len(todo)} to run")
    failed, start = [], time.time()
    bar = tqdm(todo, desc=f"grid {grid}", unit="cell")
    for cell in bar:
        bar.set_postfix_str(cell.id)
        ok, seconds, message = run_cell(root, grid, cell)
        tqdm.write(f"{'done' if ok else 'FAILED':>6}  {cell.id}  {seconds:6.1f}s  {'' if ok else message}")
        if not ok:
            failed.append(cell.id)
    out = pathlib.Path(root) / grid / "figures"
    out.mkdir(parents=True, exist_ok=True)
    for cell in cells:   # every finished cell's figures, side by side: <notebook>--<cell>--<figure>.png
        for png in cell_dir(root, grid, cell).glob("*.png"):
            shutil.copyfile(png, out / f"{cell.notebook}--{cell.name}--{png.name}")
    if summary and summary_nb:
        try:
            execute(summary_nb, {"grid_dir": str(pathlib.Path(root) / grid)}, out)
            print(f"summary: {out}")
        except Exception as e:  # noqa: BLE001
            print(f"summary FAILED: {type(e).__name__}: {e}")
            failed.append(summary_nb)
    print(f"grid {grid}: finished in {time.time() - start:.0f}s; "
          + (f"{len(failed)} failed: {failed} (executed notebooks kept in <cell>.failed/)" if failed else "all ok"))
    return failed


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ntk_utils.grid", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a grid file")
    p.add_argument("grid_file")
    p.add_argument("--only", action="append", help="run only cells whose id (notebook/cell) contains this")
    p.add_argument("--dry-run", action="store_true", help="list cells and their status, run nothing")
    p.add_argument("--force", action="store_true", help="rerun cells that are done")
    p.add_argument("--root", default=str(REPO_ROOT / "outputs"), help="outputs folder (default: outputs/)")
    p.add_argument("--no-summary", action="store_true", help="skip the summary notebook")
    args = parser.parse_args(argv)
    try:
        failed = run(args.grid_file, only=args.only, dry_run=args.dry_run, force=args.force, root=args.root,
                     summary=not args.no_summary)
    except GridError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
