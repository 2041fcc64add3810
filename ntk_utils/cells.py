"""A grid folder's cells: their folders, their state, running one, and the grid's lock.

A grid's outputs live in ``<root>/<grid>/`` (a grid folder). Each cell (notebook x parameter
set, ``ntk_utils.gridfile``) has, under ``<notebook>/``, the folders :func:`folders` names:

    <cell>/             finished: executed notebook.ipynb, results.json, figures, outcomes.npz
    .<cell>.running/    running (renamed into place only when the notebook succeeded, so a
                        killed cell leaves nothing that looks finished; never trusted)
    <cell>.failed/      its last run failed: the executed notebook and error.txt (why)

and the grid folder holds ``grid.json`` (the grid file its last run or publish read),
``figures/`` (every cell's figures and the summary) and ``.lock``.

Which cells are current: :func:`state` is the one rule, used by the runner (what to run, the
``--dry-run`` listing), the summary, the report and ``grid compare``. A cell is

    done     current: its results.json carries its fingerprint in the grid file as it is now
             (its parameters and the code, ``gridfile.code_version``)
    failed   not current and its last run failed (error.txt says why)
    stale    results.json of other parameters (named) or other code
    todo     not run yet

:func:`collect` applies it to every cell of a grid folder's grid file (:func:`grid_file_of`).
"""
import collections
import contextlib
import fcntl
import html
import json
import os
import pathlib
import re
import shutil
import time

from ntk_utils import parameters_cell
from ntk_utils.gridfile import GridError, load_grid, notebook_path
from ntk_utils.paths import REPO_ROOT, for_repository

Folders = collections.namedtuple("Folders", "finished running failed")


def folders(grid_dir, cell_id):
    """The :class:`Folders` (finished, running, failed) of cell ``<notebook>/<cell>`` of a grid folder."""
    notebook, name = cell_id.split("/")
    parent = pathlib.Path(grid_dir) / notebook
    return Folders(parent / name, parent / f".{name}.running", parent / f"{name}.failed")


def walk(grid_dir):
    """[(cell id, folder, failed?)] of every finished or failed cell folder of a grid folder,
    whatever its fingerprint (running and other hidden folders, and ``figures/``, left out)."""
    grid_dir, out = pathlib.Path(grid_dir), []
    for notebook in sorted(grid_dir.iterdir()) if grid_dir.is_dir() else []:
        if notebook.is_dir() and not notebook.name.startswith(".") and notebook.name != "figures":
            for folder in sorted(notebook.iterdir()):
                if folder.is_dir() and not folder.name.startswith("."):
                    failed = folder.name.endswith(".failed")
                    out.append((f"{notebook.name}/{folder.name.removesuffix('.failed')}", folder, failed))
    return out


def finished_cells(grid_dir):
    """{cell id: results.json path} of every finished cell folder, whatever its fingerprint."""
    return {cell: folder / "results.json" for cell, folder, failed in walk(grid_dir)
            if not failed and (folder / "results.json").is_file()}


# ---------------------------------------------------------------------- state

def read_results(path):
    """A results.json record."""
    with open(path) as f:
        return json.load(f)


def state(grid_dir, cell):
    """(status, why) of a cell in a grid folder: status "done", "stale", "failed" or "todo" (the module docstring)."""
    finished, _, failed = folders(grid_dir, cell.id)
    record = read_results(finished / "results.json") if (finished / "results.json").is_file() else None
    if record is not None and record.get("run", {}).get("fingerprint") == cell.fingerprint:
        return "done", "current"
    if failed.is_dir():
        error = failed / "error.txt"
        return "failed", error.read_text().strip() if error.is_file() else f"see {cell.id}.failed/"
    if record is not None:
        return "stale", _why_stale(cell, record)
    return "todo", "not run yet"


def _why_stale(cell, record):
    """Which parameters differ between a cell and its results.json, or "other code"."""
    now = {**parameters_cell.notebook_defaults(cell.notebook), **cell.parameters}
    then = record.get("parameters", {})
    changed = [f"{k} {then[k]!r} -> {now[k]!r}" for k in now
               if k in then and then[k] != now[k] and k != "output_dir"]   # output_dir: where it ran
    return f"other parameters: {', '.join(changed)}" if changed else "other code (notebook or ntk_utils sources)"


def grid_file_of(grid_dir, grid_file=None):
    """The grid file of a grid folder: ``grid_file`` if given, else the one recorded in its
    ``grid.json`` (:func:`record_grid_file`), else ``parameters/<folder name>.yaml``."""
    if grid_file:
        return pathlib.Path(grid_file)
    recorded = pathlib.Path(grid_dir) / "grid.json"
    if recorded.is_file():
        return REPO_ROOT / json.loads(recorded.read_text())["grid_file"]     # relative to the repository, or absolute
    return REPO_ROOT / "parameters" / f"{pathlib.Path(grid_dir).name}.yaml"


def record_grid_file(grid_dir, grid_file):
    """Write ``grid_dir/grid.json``: the grid file (relative to the repository when inside it)."""
    pathlib.Path(grid_dir).mkdir(parents=True, exist_ok=True)
    (pathlib.Path(grid_dir) / "grid.json").write_text(json.dumps({"grid_file": for_repository(grid_file)}) + "\n")


def collect(grid_dir, grid_file=None):
    """What a grid folder holds for its grid file (:func:`grid_file_of`) as it is now:
    {"grid_file": path, "done": {cell id: results.json record}, "stale" / "failed" / "todo": [ids],
    "why": {id: why} (of the stale and failed ones), "orphaned": [folders under a notebook's folder that are
    no cell of this grid: an old sweep value, a notebook dropped from the grid]}."""
    grid_file = grid_file_of(grid_dir, grid_file)
    _, cells, _ = load_grid(grid_file)
    out = {"grid_file": grid_file, "done": {}, "stale": [], "failed": [], "todo": [], "why": {}, "orphaned": []}
    for cell in cells:
        status, why = state(grid_dir, cell)
        if status == "done":
            out["done"][cell.id] = read_results(folders(grid_dir, cell.id).finished / "results.json")
        else:
            out[status].append(cell.id)
            out["why"].update({cell.id: why} if status != "todo" else {})
    ids = {c.id for c in cells}
    out["orphaned"] = [f"{folder.parent.name}/{folder.name}" for cell, folder, _ in walk(grid_dir) if cell not in ids]
    return out


# ---------------------------------------------------------------- running one

def execute(stem, parameters, out_dir, log_output=False):
    """Execute one notebook with papermill into ``out_dir/notebook.ipynb`` (raises on error). It
    runs in ``out_dir`` and writes there (``output_dir = "."``), so the executed notebook names
    no machine path and, opened elsewhere, writes beside itself."""
    import jupytext
    import nbformat
    import papermill
    executed = out_dir / "notebook.ipynb"
    try:
        papermill.execute_notebook(jupytext.read(notebook_path(stem)), str(executed),
                                   parameters={**parameters, "output_dir": "."}, progress_bar=False,
                                   log_output=log_output, cwd=str(out_dir), kernel_name="python3", language="python")
    finally:   # papermill records where it read and wrote: the source notebook, and this folder's file
        if executed.exists():
            nb = progress_bars_as_text(nbformat.read(executed, as_version=4))
            nb.metadata.get("papermill", {}).update(input_path=f"notebooks/{stem}.py", output_path=executed.name)
            nbformat.write(nb, executed)


def progress_bars_as_text(nb):
    """The notebook with each progress-bar widget (tqdm in a kernel) replaced by its final state
    as text, e.g. ``infinite NTK: 100%|##########| 256k/256k [00:08<00:00, 29.9k entries/s]``,
    and the widget state dropped: a saved notebook read without a widget manager shows text
    (which would read "0%"), not a widget. Returns the notebook."""
    from tqdm.std import tqdm as tqdm_std
    state = nb.metadata.pop("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})

    def model(ref):
        return state.get(str(ref).removeprefix("IPY_MODEL_"), {}).get("state", {})

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if not view:
                continue
            parts = [model(ref) for ref in model(view["model_id"]).get("children", [])]
            texts = [html.unescape(str(p.get("value", ""))).replace("\u2007", " ") for p in parts if "max" not in p]
            bars = [p for p in parts if "max" in p]
            if bars and len(texts) == 2:
                done = bars[0].get("value") or 0
                filled = int(10 * done / bars[0]["max"]) if bars[0].get("max") else 0
                texts[0] = re.sub(r"\s*\d+%$", f" {100 * done / bars[0]['max']:3.0f}%" if bars[0].get("max") else "", texts[0])
                # the count as the bar ended (the text widgets hold their last refresh)
                count = tqdm_std.format_sizeof(done) if re.match(r"\s*[\d.]+[kMGT]?/[\d.]+[kMGT]", texts[1]) \
                    else f"{done:.0f}"
                texts[1] = re.sub(r"^(\s*)[\d.]+[kMGT]?/", lambda m: f"{m.group(1)}{count}/", texts[1], count=1)
                output["data"] = {"text/plain": f"{texts[0]}|{'#' * filled}{' ' * (10 - filled)}|{texts[1]}"}
            else:   # not a bar we know: keep what its text fallback says
                output["data"] = {"text/plain": output["data"].get("text/plain", "")}
    return nb


def keep_failed(grid_dir, cell, message):
    """The cell's running folder (if any) becomes its failed folder, with ``message`` in error.txt."""
    _, running, failed = folders(grid_dir, cell.id)
    shutil.rmtree(failed, ignore_errors=True)
    if running.exists():
        os.replace(running, failed)
    failed.mkdir(parents=True, exist_ok=True)
    (failed / "error.txt").write_text(message + "\n")


def run_cell(grid_dir, cell):
    """Run one cell atomically (``grid_dir`` absolute). Returns (ok, seconds, message)."""
    from ntk_utils import results
    finished, running, failed = folders(grid_dir, cell.id)
    shutil.rmtree(running, ignore_errors=True)   # left by a killed run: never trusted
    running.mkdir(parents=True)
    start = time.time()
    try:
        execute(cell.notebook, cell.parameters, running)
        record = results.load(running / "results.json")
    except Exception as e:  # noqa: BLE001 - any notebook error: keep it for debugging, go on
        message = f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:300] if str(e).strip() else ''}"
        keep_failed(grid_dir, cell, message)
        return False, time.time() - start, message
    record["run"] = {"grid": pathlib.Path(grid_dir).name, "cell": cell.id, "fingerprint": cell.fingerprint,
                     "wall_seconds": round(time.time() - start, 2)}
    results.write_json(running / "results.json", record)
    shutil.rmtree(finished, ignore_errors=True)
    shutil.rmtree(failed, ignore_errors=True)
    os.replace(running, finished)
    return True, time.time() - start, "ok"


@contextlib.contextmanager
def locked(grid_dir, grid):
    """Hold an exclusive lock on ``grid_dir/.lock`` (flock + our pid in the file) or raise GridError.
    The OS drops the lock when the process dies, so a lock file left behind blocks nothing."""
    grid_dir = pathlib.Path(grid_dir)
    grid_dir.mkdir(parents=True, exist_ok=True)
    f = open(grid_dir / ".lock", "a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            pid = f.read().strip() or "unknown"
            raise GridError(f"grid {grid}: outputs folder {grid_dir} is locked: held by pid {pid} "
                            f"(another run is in progress)") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield
    finally:
        f.close()   # releases the flock
