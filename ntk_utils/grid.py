"""Run the notebooks over a parameter grid with papermill; compare and publish the results.

    python -m ntk_utils.grid run parameters/quick.yaml [--root outputs/runs] [--only 01_data] [--dry-run] [--force]
    python -m ntk_utils.grid run parameters/paper.yaml --executor local --workers 4   # 4 cells at a time, here
    python -m ntk_utils.grid run parameters/paper.yaml --executor slurm               # one Slurm job per cell
    python -m ntk_utils.grid estimate parameters/paper.yaml                           # cost of each cell
    python -m ntk_utils.grid compare outputs/runs/quick outputs/reference/quick
    python -m ntk_utils.grid publish outputs/runs/quick outputs/reference/quick

A grid file (YAML) is data:

    name: quick
    defaults: {task: cifar10-pair, image_size: 8, ...}   # given to every notebook that has the name
    notebooks:
      01_data_scaling: {}                                 # one cell: defaults + these values
      03_hyperparameters:
        params: {seeds: [0, 1]}
        sweep: {variants: [[gd], [no_momentum]]}          # one cell per value (product over keys)
      04_after_kernel:
        sweep:                                            # a list of sweeps: their cells, in order
          - {data_seeds: [[0], [1]], seeds: [[0], [1]]}   #   one cell per run (draw x seed) ...
          - {}                                            #   ... then every run ("default"), from the cache
    resources:                                            # per cell job (--executor); optional
      default: {gpus: 1, cpus: 8, mem_gb: 64, timeout_min: 240, partition: gpu}
      04_after_kernel: {mem_gb: 128, slurm: {account: myproject}}   # slurm: extra sbatch options
    summary: 00_summary                                   # run last, over everything in the grid

Each cell (notebook x parameter set) runs into ``<root>/<grid>/<notebook>/<cell>/`` (root:
``outputs/runs``, git-ignored): the executed ``notebook.ipynb``, ``results.json`` and figures.
Then every cell's figures are copied into ``<root>/<grid>/figures/`` and the summary notebook
runs there (Figure 1, the table of exponents, the claims) over the cells of the grid as it is now.

Safe to interrupt and rerun: a cell runs in a hidden ``.<cell>.running`` folder that is
renamed into place only when it succeeded, so a killed cell leaves nothing that looks finished.
A finished cell whose parameters and code (notebook + ntk_utils sources) are unchanged is
skipped. A failed cell keeps its executed notebook in ``<cell>.failed/`` and the run goes on.
Unknown parameter names and invalid values are refused before anything is computed
(``ntk_utils.params.check``, which each notebook also runs on itself). A run holds an exclusive
lock on ``<root>/<grid>/.lock``: a second run of the same grid into the same folder is refused.

Cells side by side (``--executor``)
-----------------------------------
Without ``--executor`` the cells run one after another in this process, in the grid file's
order. With ``--executor local --workers N`` (N cells at a time on this machine, its GPUs split
among the workers) or ``--executor slurm`` (one Slurm job per cell; cells ready together and of
one notebook go as one job array; ``--workers`` caps the jobs in flight) each cell is a
submitit job with its notebook's ``resources`` (locally only ``timeout_min`` applies); job
files and logs go to ``<root>/<grid>/.submitit/``. The submitting process holds the grid lock,
shows a progress bar until every job has ended, then copies the figures and runs the summary
as above. A job that dies without returning (killed, out of memory, cancelled) leaves its cell
in ``<cell>.failed/`` with the job's error in ``job_error.txt``; a timed-out or preempted job
is requeued (up to 3 times) and starts its cell again, finished networks and kernels coming
from the cache (``$NTK_CACHE_DIR`` must be on a filesystem every node sees).

What cells share (a trained network, an eNTK, an infinite NTK: cache entries) is computed once,
by the first cell that needs it, because a cell waits for (:func:`dependencies`):

* the cells of the earlier entries of its notebook's sweep list that share one of its data
  draws (e.g. notebook 01's seed-0 cell of a draw computes the draw's infinite NTK; the other
  seeds of that draw follow);
* the cells of its notebook whose runs it covers (the same parameters, each list of theirs
  contained in its own: ``data_seeds: [0]`` in ``[0, 1]``): the cell over every run reads them;
* the cells of the first notebook above it in the grid file that shares its data (task,
  classes, image size, validation size and a data draw): notebook 01 trains the default
  networks and computes each draw's eNTK at initialization and infinite NTK, which 02-05 reuse.

Cells of one sweep entry run side by side, so a sweep entry should not split cells that
compute the same thing (split a notebook by seeds only after a first entry has computed what
its draws share).

``compare`` checks that a fresh run reproduces a reference run (the committed
``outputs/reference/<grid>``) within the noise of its own numbers; ``publish`` copies the
finished cells of a fresh run over the reference.
"""
import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import itertools
import json
import math
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import yaml
from tqdm.auto import tqdm

from ntk_utils import params
from ntk_utils.paths import REPO_ROOT

GRID_KEYS = {"name", "defaults", "notebooks", "resources", "summary", "description"}
DEFAULT_ROOT = REPO_ROOT / "outputs" / "runs"
EXECUTORS = ("local", "slurm")
# A cell job's resources in the grid file: name -> (valid?, what it must be). The Slurm job gets
# them all; a local one only its timeout. `slurm` holds extra sbatch options (account, qos, gres, ...).
RESOURCES = {
    "gpus": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "cpus": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "mem_gb": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, "a number > 0"),
    "timeout_min": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "partition": (lambda v: isinstance(v, str) and v.strip() != "", "a partition name"),
    "slurm": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, (str, int, float, bool))
                                                    for k, x in v.items()), "a mapping of sbatch options to values"),
}
DEFAULT_RESOURCES = {"timeout_min": 24 * 60}   # submitit's own default is 5 min (Slurm), 2 min (local)
# What cells must agree on to share cache entries, besides a data draw (see dependencies()).
SAME_DATA = ("task", "classes", "image_size", "val_size")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


class GridError(ValueError):
    """A grid file, parameter or outputs folder that cannot run; raised before any compute."""


@dataclasses.dataclass
class Cell:
    notebook: str          # notebook stem, e.g. "01_data_scaling"
    name: str              # cell folder name, e.g. "default" or "variants=gd"
    parameters: dict       # values injected by papermill (output_dir added at run time)
    fingerprint: str       # hash of parameters and code: equal => the result is still valid
    step: int = 0          # index of its entry in the notebook's sweep list (later entries wait)

    @property
    def id(self):
        return f"{self.notebook}/{self.name}"


# ----------------------------------------------------------------------- grid

def notebook_path(stem):
    try:
        return params.notebook_path(stem)
    except params.ParameterError as e:
        raise GridError(str(e)) from None


def code_version(stem):
    """Hash of the notebook and of the ntk_utils sources it runs (all but this runner, sections
    included): a change reruns the cell."""
    h = hashlib.sha256(notebook_path(stem).read_bytes())
    package = REPO_ROOT / "ntk_utils"
    for path in sorted(package.rglob("*.py")):
        if path.name != "grid.py":
            h.update(str(path.relative_to(package)).encode() + path.read_bytes())
    return h.hexdigest()


def _cell_name(sweep_values):
    if not sweep_values:
        return "default"
    text = ",".join(f"{k}={'+'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sweep_values.items())
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", text)


def _read_spec(path):
    """The grid file as a dict; every way it can be unreadable is one GridError line."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise GridError(f"no grid file {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GridError(f"cannot read grid file {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise GridError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise GridError(f"{path}: the top level must be a mapping (name:, defaults:, notebooks:, summary:), "
                        f"not a {type(spec).__name__}")
    if unknown := set(spec) - GRID_KEYS:
        raise GridError(f"{path}: unknown keys {sorted(map(str, unknown))}; allowed: {sorted(GRID_KEYS)}")
    for key in ("defaults", "notebooks"):
        if spec.get(key) is not None and not isinstance(spec[key], dict):
            raise GridError(f"{path}: {key}: must be a mapping, not a {type(spec[key]).__name__}")
    if not spec.get("notebooks"):
        raise GridError(f"{path}: selects no notebooks (add a `notebooks:` mapping)")
    return spec


def load_grid(path):
    """(grid name, [Cell], summary notebook or None) from a grid file, fully validated."""
    path = pathlib.Path(path)
    spec = _read_spec(path)
    name = str(spec.get("name", path.stem))
    shared = spec.get("defaults") or {}
    used = set()
    cells = []
    for stem, entry in spec["notebooks"].items():
        entry = {} if entry is None else entry
        if not isinstance(entry, dict):
            raise GridError(f"{path}: notebooks: {stem}: must be a mapping of parameters, not {entry!r}")
        if not set(entry) <= {"params", "sweep"}:
            entry = {"params": entry}   # shorthand: just the notebook's values, no sweep
        if entry.get("params") is not None and not isinstance(entry["params"], dict):
            raise GridError(f"{path}: notebooks: {stem}: params: must be a mapping, not {entry['params']!r}")
        sweeps = entry.get("sweep") or {}
        sweeps = sweeps if isinstance(sweeps, list) else [sweeps]   # a list of sweeps: their cells, in order
        if bad := [s for s in sweeps if not isinstance(s, dict)]:
            raise GridError(f"{path}: notebooks: {stem}: sweep: must be a mapping, or a list of mappings, "
                            f"not {bad[0]!r}")
        try:
            defaults = params.notebook_defaults(stem)
        except params.ParameterError as e:
            raise GridError(str(e)) from None
        base = {k: v for k, v in shared.items() if k in defaults}
        used |= set(base)
        base.update(entry.get("params") or {})
        version = code_version(stem)
        seen = {}
        for step, sweep in enumerate(sweeps):
            if bad := [k for k, v in sweep.items() if not isinstance(v, list) or not v]:
                raise GridError(f"{path}: notebooks: {stem}: sweep: {', '.join(map(str, bad))}: "
                                f"must be a non-empty list of values")
            for combo in itertools.product(*sweep.values()):
                values = dict(zip(sweep, combo))
                try:
                    parameters = params.check(stem, {**base, **values})   # values coerced to the notebook's types
                except params.ParameterError as e:
                    raise GridError(str(e)) from None
                cell_name = _cell_name(values)
                if cell_name in seen:
                    raise GridError(f"{path}: notebooks: {stem}: two sweep values give the same cell "
                                    f"{stem}/{cell_name}: {seen[cell_name]} and {values}")
                seen[cell_name] = values
                fingerprint = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()
                                             + version.encode()).hexdigest()[:16]
                cells.append(Cell(stem, cell_name, parameters, fingerprint, step))
    if unused := set(shared) - used:
        raise GridError(f"{path}: defaults {sorted(unused)} are parameters of no notebook in the grid")
    _resources(spec, path)
    summary = spec.get("summary")
    if summary:
        notebook_path(summary)
    return name, cells, summary


def _resources(spec, path):
    """{notebook: its job resources}: the grid file's ``resources`` entry of the notebook over its
    ``default`` over DEFAULT_RESOURCES, each value checked (one GridError line naming the problem)."""
    given = spec.get("resources")
    given = {} if given is None else given
    where = f"{path}: resources"
    if not isinstance(given, dict):
        raise GridError(f"{where}: must be a mapping of notebook names (or default) to resources, "
                        f"not {type(given).__name__}")
    if unknown := [str(k) for k in given if k != "default" and k not in spec["notebooks"]]:
        raise GridError(f"{where}: {', '.join(unknown)}: not a notebook of the grid; "
                        f"allowed: default, {', '.join(map(str, spec['notebooks']))}")
    for name, entry in given.items():
        if not isinstance(entry, dict):
            raise GridError(f"{where}: {name}: must be a mapping (e.g. {{gpus: 1, timeout_min: 240}}), not {entry!r}")
        if unknown := [str(k) for k in entry if k not in RESOURCES]:
            raise GridError(f"{where}: {name}: unknown keys {unknown}; allowed: {list(RESOURCES)}")
        for key, value in entry.items():
            valid, what = RESOURCES[key]
            if not valid(value):
                raise GridError(f"{where}: {name}: {key} must be {what}, got {value!r}")
    return {stem: {**DEFAULT_RESOURCES, **(given.get("default") or {}), **(given.get(stem) or {})}
            for stem in spec["notebooks"]}


def load_resources(grid_file):
    """{notebook: {resource: value}} of a grid file's ``resources`` (see :data:`RESOURCES`), validated."""
    return _resources(_read_spec(pathlib.Path(grid_file)), pathlib.Path(grid_file))


def _shares_data(pa, pb):
    """Can cells of parameters pa and pb read the same cache entry: the same data (SAME_DATA) and
    a common data draw?"""
    return ("data_seeds" in pa and "data_seeds" in pb and all(pa.get(k) == pb.get(k) for k in SAME_DATA)
            and bool(set(pa["data_seeds"]) & set(pb["data_seeds"])))


def _covers(pb, pa):
    """Do parameters pb hold pa's runs: other values but the same names, each of pa's equal or (a
    list) contained in pb's, e.g. data_seeds [0] in [0, 1]?"""
    if pa == pb or pa.keys() != pb.keys():
        return False
    return all(pa[k] == pb[k] or (isinstance(pa[k], list) and isinstance(pb[k], list)
                                  and all(v in pb[k] for v in pa[k])) for k in pa)


def dependencies(cells):
    """{cell id: {ids of the cells it waits for}} in a run with ``--executor`` (the rules are in
    the module docstring: earlier sweep entries of its notebook sharing a draw, the cells it
    covers, the cells of the first notebook above it sharing its data), judged on each cell's
    parameters with its notebook's defaults filled in. Acyclic: every edge goes to an earlier
    sweep entry, a cell it strictly covers, or an earlier notebook."""
    order = list(dict.fromkeys(c.notebook for c in cells))
    full = {c.id: {**params.notebook_defaults(c.notebook), **c.parameters} for c in cells}
    after = {}
    for b in cells:
        pb = full[b.id]
        mine = [a for a in cells if a.notebook == b.notebook]
        waits = {a.id for a in mine if (a.step < b.step and _shares_data(full[a.id], pb)) or _covers(pb, full[a.id])}
        above = [a for a in cells if order.index(a.notebook) < order.index(b.notebook)
                 and _shares_data(full[a.id], pb)]
        if above:
            waits |= {a.id for a in above if a.notebook == above[0].notebook}
        after[b.id] = waits
    return after


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


def collect(grid_file, root):
    """What ``<root>/<grid>/`` holds for the grid as it is now:
    {"done": {cell id: results.json record} (fingerprint current), "stale": [ids] (results of
    other parameters or code), "failed": [ids] (``<cell>.failed``), "todo": [ids] (nothing yet),
    "orphaned": [folders] (under a notebook's folder but no cell of this grid: an old sweep value,
    a notebook dropped from the grid; ``figures`` and hidden folders are ignored)}."""
    from ntk_utils import results
    grid, cells, _ = load_grid(grid_file)
    out = {"done": {}, "stale": [], "failed": [], "todo": [], "orphaned": []}
    for cell in cells:
        state = status(root, grid, cell)
        if state == "done":
            out["done"][cell.id] = results.load(cell_dir(root, grid, cell) / "results.json")
        else:
            out[state].append(cell.id)
    current = {c.id for c in cells} | {c.id + ".failed" for c in cells}
    grid_dir = pathlib.Path(root) / grid
    for notebook in sorted(grid_dir.iterdir()) if grid_dir.is_dir() else []:
        if not notebook.is_dir() or notebook.name.startswith(".") or notebook.name == "figures":
            continue
        out["orphaned"] += [f"{notebook.name}/{d.name}" for d in sorted(notebook.iterdir())
                            if d.is_dir() and not d.name.startswith(".") and f"{notebook.name}/{d.name}" not in current]
    return out


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


def run(grid_file, *, only=None, dry_run=False, force=False, root=DEFAULT_ROOT, summary=True, executor=None,
        workers=None):
    """Run every selected cell that is not done, then the summary. Returns the failed cell ids.
    executor: None (one cell after another, here), "local" or "slurm" (cells as submitit jobs,
    at most ``workers`` at a time; local default: one per GPU, else 1)."""
    grid, cells, summary_nb = load_grid(grid_file)
    if executor not in (None, *EXECUTORS):
        raise GridError(f"--executor {executor}: not one of {', '.join(EXECUTORS)}")
    if workers is not None and (executor is None or not _is_int(workers) or workers < 1):
        raise GridError(f"--workers {workers}: needs --executor local or slurm and an integer >= 1")
    if executor == "local" and workers is None:
        workers = max(len(local_gpus()), 1)
    if only:
        cells = [c for c in cells if any(pattern in c.id for pattern in only)]
        if not cells:
            raise GridError(f"grid {grid}: --only {' '.join(only)} matches no cell")
    if dry_run:
        after, resources = (dependencies(cells), load_resources(grid_file)) if executor else ({}, {})
        for c in cells:
            print(f"{status(root, grid, c):>6}  {c.id}  {json.dumps(c.parameters, sort_keys=True)}")
            if executor:
                print(f"        resources {json.dumps(resources[c.notebook], sort_keys=True)}; "
                      f"after {', '.join(sorted(after[c.id])) or 'nothing'}")
        return []
    with locked(pathlib.Path(root) / grid, grid):
        return _run(grid_file, grid, cells, summary_nb if summary else None, root, force, executor, workers)


def _run(grid_file, grid, cells, summary_nb, root, force, executor=None, workers=None):
    states = {c.id: status(root, grid, c) for c in cells}
    todo = [c for c in cells if force or states[c.id] != "done"]
    print(f"grid {grid}: {len(cells)} cells, {len(cells) - len(todo)} already done, {len(todo)} to run")
    start = time.time()
    if executor:
        failed = _run_jobs(grid_file, grid, cells, todo, root, executor, workers)
    else:
        failed = []
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
    if summary_nb:
        try:
            execute(summary_nb, {"grid_dir": str(pathlib.Path(root).resolve() / grid),
                                 "grid_file": str(pathlib.Path(grid_file).resolve())}, out)
            print(f"summary: {out}")
        except Exception as e:  # noqa: BLE001
            print(f"summary FAILED: {type(e).__name__}: {e}")
            failed.append(summary_nb)
    print(f"grid {grid}: finished in {time.time() - start:.0f}s; "
          + (f"{len(failed)} failed: {failed} (executed notebooks kept in <cell>.failed/)" if failed else "all ok"))
    return failed


# ------------------------------------------------------------ cells as jobs

def local_gpus():
    """This machine's GPUs as CUDA_VISIBLE_DEVICES names: that variable's list where it is set,
    else the indices ``nvidia-smi -L`` lists (none without it). Asks no JAX: importing it here
    would take GPU memory from the workers."""
    if (visible := os.environ.get("CUDA_VISIBLE_DEVICES")) is not None:
        return [d.strip() for d in visible.split(",") if d.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, _ in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]


def _worker_envs(workers):
    """One environment per local worker: its share of the GPUs (split evenly, each its own). With
    fewer GPUs than workers they share them round-robin, without JAX preallocating 75% of each;
    with none, the submitting process's CUDA_VISIBLE_DEVICES (None: unset)."""
    gpus = local_gpus()
    if not gpus:
        return [{"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")} for _ in range(workers)]
    if len(gpus) >= workers:
        return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus[i * len(gpus) // workers:(i + 1) * len(gpus) // workers])}
                for i in range(workers)]
    return [{"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)], "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
            for i in range(workers)]


class CellJob:
    """One cell as a submitit job: set the worker's environment, :func:`run_cell`.
    ``checkpoint`` is submitit's requeue hook: a timed-out or preempted job is resubmitted as it
    was (at most 3 times) and starts its cell again, reading what it finished from the cache."""

    def __call__(self, root, grid, cell, notebooks_dir, env):
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        os.environ["NTK_NOTEBOOKS_DIR"] = str(notebooks_dir)    # the submitting process's notebooks
        params.NOTEBOOKS_DIR = pathlib.Path(notebooks_dir)
        return run_cell(root, grid, cell)

    def checkpoint(self, *args, **kwargs):
        import submitit
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _job_parameters(resources, executor, name):
    """submitit.AutoExecutor.update_parameters arguments for one notebook's ``resources``."""
    out = {"name": name, "timeout_min": resources["timeout_min"]}
    if executor == "slurm":
        out.update({arg: resources[key] for arg, key in (("gpus_per_node", "gpus"), ("cpus_per_task", "cpus"),
                                                         ("mem_gb", "mem_gb"), ("slurm_partition", "partition"),
                                                         ("slurm_additional_parameters", "slurm"))
                    if key in resources})
    return out


def _job_outcome(job, root, grid, cell, submitted):
    """(ok, seconds, message) of an ended job, as :func:`run_cell` returns them. A job that ended
    without returning (killed, out of memory, cancelled, timed out too often) keeps its cell's
    folder in ``<cell>.failed/`` with the job's error (and log paths) in ``job_error.txt``."""
    try:
        return job.result()
    except Exception as e:  # noqa: BLE001 - any way a job can end without a result
        final = cell_dir(root, grid, cell)
        running, failed = final.with_name(f".{final.name}.running"), final.with_name(final.name + ".failed")
        shutil.rmtree(failed, ignore_errors=True)
        if running.exists():
            os.replace(running, failed)
        failed.mkdir(parents=True, exist_ok=True)
        (failed / "job_error.txt").write_text(f"{type(e).__name__}: {e}\n")
        return False, time.time() - submitted, f"{type(e).__name__}: job {job.job_id} ended without a result " \
                                               f"(see {cell.id}.failed/job_error.txt)"


def _exit_on_signal(signum, frame):
    sys.exit(128 + signum)      # a SystemExit: _run_jobs cancels its jobs on the way out


def _run_jobs(grid_file, grid, cells, todo, root, executor, workers):
    """Run the cells ``todo`` as submitit jobs, each when the cells it waits for
    (:func:`dependencies` over ``cells``) have ended, at most ``workers`` at a time; a progress bar
    until all have ended. Returns the failed cell ids. Interrupted, it cancels its jobs."""
    try:
        import submitit
    except ImportError:
        raise GridError(f"--executor {executor} needs submitit: pip install submitit==1.5.4") from None
    resources, after = load_resources(grid_file), dependencies(cells)
    submitter = submitit.AutoExecutor(folder=pathlib.Path(root).resolve() / grid / ".submitit", cluster=executor)
    free = _worker_envs(workers) if executor == "local" else None     # local: one environment per worker
    limit = workers or len(todo)
    waiting, running, failed = list(todo), {}, []                     # running: id -> (cell, job, env, start)
    bar, shown = tqdm(total=len(todo), desc=f"grid {grid}", unit="cell"), (None, 0.0)
    handlers = {s: signal.signal(s, _exit_on_signal) for s in (signal.SIGTERM, signal.SIGHUP)} \
        if threading.current_thread() is threading.main_thread() else {}     # `kill`, a closed terminal
    try:
        while waiting or running:
            busy = {c.id for c in waiting} | set(running)
            ready = [c for c in waiting if not after[c.id] & busy][:limit - len(running)]
            if not ready and not running:
                raise RuntimeError(f"cells wait for each other: {[c.id for c in waiting]}")  # never: acyclic
            for notebook, group in itertools.groupby(ready, key=lambda c: c.notebook):
                group = list(group)
                submitter.update_parameters(**_job_parameters(resources[notebook], executor, f"{grid}-{notebook}"))
                envs = [free.pop() for _ in group] if free is not None else [{} for _ in group]
                if executor == "local":       # each with its own environment (GPUs)
                    new = [submitter.submit(CellJob(), root, grid, c, params.NOTEBOOKS_DIR, e)
                           for c, e in zip(group, envs)]
                else:                         # one job array per notebook
                    new = submitter.map_array(CellJob(), [root] * len(group), [grid] * len(group), group,
                                              [params.NOTEBOOKS_DIR] * len(group), envs)
                for cell, job, env in zip(group, new, envs):
                    running[cell.id] = (cell, job, env, time.time())
                    waiting.remove(cell)
            postfix = f"{len(running)} running, {len(waiting)} waiting"
            if postfix != shown[0] or time.time() - shown[1] > 30:     # a live bar, not a line a second in logs
                bar.set_postfix_str(postfix)
                shown = (postfix, time.time())
            time.sleep(1.0 if executor == "local" else 15.0)
            for cell, job, env, submitted in [r for r in running.values() if r[1].done()]:
                ok, seconds, message = _job_outcome(job, root, grid, cell, submitted)
                del running[cell.id]
                if free is not None:
                    free.append(env)
                bar.update(1)
                tqdm.write(f"{'done' if ok else 'FAILED':>6}  {cell.id}  {seconds:6.1f}s  {'' if ok else message}")
                if not ok:
                    failed.append(cell.id)
    except BaseException:
        for cell, job, *_ in running.values():   # nothing of this run goes on once it lets go of the lock
            job.cancel(check=False)
        raise
    finally:
        bar.close()
        for s, handler in handlers.items():
            signal.signal(s, handler)
    return [c.id for c in todo if c.id in failed]   # in grid order


# ----------------------------------------------------------- compare, publish

def finished_cells(grid_dir):
    """{cell id: results.json path} of every finished cell folder in a grid folder (whatever its
    fingerprint; hidden, failed and figures folders left out)."""
    grid_dir, out = pathlib.Path(grid_dir), {}
    for notebook in sorted(grid_dir.iterdir()) if grid_dir.is_dir() else []:
        if notebook.is_dir() and not notebook.name.startswith(".") and notebook.name != "figures":
            for cell in sorted(notebook.iterdir()):
                if not cell.name.startswith(".") and not cell.name.endswith(".failed") \
                        and (cell / "results.json").is_file():
                    out[f"{notebook.name}/{cell.name}"] = cell / "results.json"
    return out


def allowed_difference(ref):
    """3·√2·se of one reference point {"mean", "std", "n_runs", "n_test"}: se combines the spread
    across runs and the binomial noise of a test error measured on n_test images."""
    mean, std = ref["mean"], ref.get("std") or 0.0
    n_runs, n_test = max(int(ref.get("n_runs") or 1), 1), max(int(ref.get("n_test") or 1), 1)
    se = math.sqrt(std ** 2 / n_runs + max(mean * (1 - mean), 0.0) / (n_test * n_runs))
    return 3 * math.sqrt(2) * max(se, 1e-6)


def _points(curve):
    """[(x, mean, std)] of a curve in the results["curves"] format, or None for another format."""
    if not isinstance(curve, dict) or not {"x", "mean"} <= set(curve):
        return None
    std = curve.get("std") or [0.0] * len(curve["x"])
    return list(zip(curve["x"], curve["mean"], std))


def compare(fresh, reference):
    """Every number of results["curves"] in the cells both grid folders hold, fresh vs reference.
    Returns {"compared": K, "within": k, "outside": [(cell, curve, x name, x, fresh, reference,
    allowed)], "only_fresh": [cells], "only_reference": [cells], "not_compared": [descriptions]}."""
    from ntk_utils import results
    a, b = finished_cells(fresh), finished_cells(reference)
    report = {"compared": 0, "within": 0, "outside": [], "only_fresh": sorted(set(a) - set(b)),
              "only_reference": sorted(set(b) - set(a)), "not_compared": []}
    for cell in sorted(set(a) & set(b)):
        curves_a = results.load(a[cell]).get("results", {}).get("curves", {}) or {}
        curves_b = results.load(b[cell]).get("results", {}).get("curves", {}) or {}
        for name in sorted(set(curves_a) | set(curves_b)):
            if name not in curves_a or name not in curves_b:
                report["not_compared"].append(f"{cell} {name}: only in {'fresh' if name in curves_a else 'reference'}")
                continue
            pa, pb = _points(curves_a[name]), _points(curves_b[name])
            if pa is None or pb is None:
                report["not_compared"].append(f"{cell} {name}: not a {{x, mean, std, n_runs, n_test}} curve")
                continue
            x_name = curves_b[name].get("x_name", "x")
            fresh_at = {x: m for x, m, _ in pa}
            for x, mean, std in pb:
                if x not in fresh_at:
                    report["not_compared"].append(f"{cell} {name} {x_name}={x}: only in reference")
                    continue
                got = fresh_at[x]
                report["compared"] += 1
                if mean is None or got is None:      # non-finite numbers are stored as null
                    ok, allowed = mean is None and got is None, None
                else:
                    allowed = allowed_difference({**curves_b[name], "mean": mean, "std": std})
                    ok = abs(got - mean) <= allowed
                if ok:
                    report["within"] += 1
                else:
                    report["outside"].append((cell, name, x_name, x, got, mean, allowed))
            report["not_compared"] += [f"{cell} {name} {x_name}={x}: only in fresh"
                                       for x, _, _ in pa if x not in {p[0] for p in pb}]
    return report


def _fmt(v):
    return "null" if v is None else f"{v:.4f}"


def compare_main(fresh, reference):
    """Print the comparison; 0 when every number is within noise (or there is no reference), else 1."""
    fresh, reference = pathlib.Path(fresh), pathlib.Path(reference)
    if not reference.exists():
        print(f"no reference at {reference}: nothing to compare")
        return 0
    if not fresh.exists():
        raise GridError(f"no fresh run at {fresh}")
    r = compare(fresh, reference)
    print(f"reproduced: {r['within']} of {r['compared']} numbers within noise")
    for cell, name, x_name, x, got, ref, allowed in r["outside"]:
        print(f"  outside noise: {cell}  {name}  {x_name}={x}: fresh {_fmt(got)}, reference {_fmt(ref)}, "
              f"allowed ±{_fmt(allowed)}")
    for key, what in (("only_fresh", "only in the fresh run"), ("only_reference", "only in the reference")):
        for cell in r[key]:
            print(f"  {what}: {cell}")
    for line in r["not_compared"]:
        print(f"  not compared: {line}")
    return 0 if not r["outside"] else 1


def publish(fresh_grid_dir, reference_dir, grid_file=None):
    """Copy every done cell (fingerprint current) of a fresh grid folder, i.e. its results.json,
    notebook.ipynb, figures and per-example outcomes (outcomes.npz: every verdict can be recomputed
    from them), and the grid's figures/ folder into reference_dir, replacing the
    older copies there. grid_file: default parameters/<folder name>.yaml. Returns the cell ids."""
    fresh, reference = pathlib.Path(fresh_grid_dir), pathlib.Path(reference_dir)
    grid_file = pathlib.Path(grid_file) if grid_file else REPO_ROOT / "parameters" / f"{fresh.name}.yaml"
    grid = load_grid(grid_file)[0]
    if grid != fresh.name:
        raise GridError(f"{fresh} is not a folder of grid {grid} ({grid_file}); pass --grid-file")
    with locked(fresh, grid):      # not while a run writes into it
        state = collect(grid_file, fresh.parent)
        for cell in state["done"]:
            _replace_dir(fresh / cell, reference / cell,
                         lambda p: p.name in ("results.json", "notebook.ipynb", "outcomes.npz") or p.suffix == ".png")
        if (fresh / "figures").is_dir():
            _replace_dir(fresh / "figures", reference / "figures", lambda p: not p.name.startswith("."))
    print(f"published {len(state['done'])} cells of grid {grid} to {reference}")
    for key in ("stale", "failed", "todo"):
        if state[key]:
            print(f"  not published ({key}): {', '.join(state[key])}")
    return list(state["done"])


def _replace_dir(src, dst, keep):
    """dst becomes a copy of the plain files of src that ``keep`` accepts (swapped in whole)."""
    tmp = dst.with_name(f".{dst.name}.publishing")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for path in sorted(src.iterdir()):
        if path.is_file() and not path.is_symlink() and keep(path):
            shutil.copy2(path, tmp / path.name)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)


# ------------------------------------------------------------------------ CLI

def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ntk_utils.grid", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a grid file")
    p.add_argument("grid_file")
    p.add_argument("--only", action="append", help="run only cells whose id (notebook/cell) contains this")
    p.add_argument("--dry-run", action="store_true", help="list cells and their status, run nothing")
    p.add_argument("--force", action="store_true", help="rerun cells that are done")
    p.add_argument("--root", default=str(DEFAULT_ROOT), help="outputs folder (default: outputs/runs/)")
    p.add_argument("--no-summary", action="store_true", help="skip the summary notebook")
    p.add_argument("--executor", choices=EXECUTORS, help="run cells side by side as submitit jobs: here (local) "
                                                         "or on Slurm, with the grid file's resources")
    p.add_argument("--workers", type=int, help="cells at a time (local default: one per GPU, else 1; slurm: no cap)")
    p = sub.add_parser("estimate", help="each cell's kernel entries, training steps and estimated device-hours")
    p.add_argument("grid_file")
    p.add_argument("--rates", default="cpu", help="the device: cpu (measured), h200-spec (from its specification "
                                                  "sheet), or a JSON file of benchmarks/bench_roofline.py --rates")
    p = sub.add_parser("compare", help="is a fresh grid folder within noise of a reference one? (exit 0/1)")
    p.add_argument("fresh", help="e.g. outputs/runs/quick")
    p.add_argument("reference", help="e.g. outputs/reference/quick")
    p = sub.add_parser("publish", help="copy the finished cells of a fresh grid folder into a reference folder")
    p.add_argument("fresh", help="e.g. outputs/runs/quick")
    p.add_argument("reference", help="e.g. outputs/reference/quick")
    p.add_argument("--grid-file", help="the grid file (default: parameters/<name of the fresh folder>.yaml)")
    args = parser.parse_args(argv)
    try:
        if args.command == "compare":
            return compare_main(args.fresh, args.reference)
        if args.command == "publish":
            publish(args.fresh, args.reference, args.grid_file)
            return 0
        if args.command == "estimate":
            import importlib   # its own module (measured rates); imported only when asked for
            estimate = importlib.import_module("ntk_utils.estimate")
            try:
                rates = estimate.rates_named(args.rates)
            except ValueError as e:
                raise GridError(str(e)) from None
            return estimate.main(args.grid_file, rates) or 0
        failed = run(args.grid_file, only=args.only, dry_run=args.dry_run, force=args.force, root=args.root,
                     summary=not args.no_summary, executor=args.executor, workers=args.workers)
    except GridError as e:
        print("error: " + " ".join(str(e).split("\n")), file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
