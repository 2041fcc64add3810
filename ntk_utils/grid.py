"""Run the notebooks over a parameter grid with papermill; compare and publish the results.

    python -m ntk_utils.grid run parameters/quick.yaml [--root outputs/runs] [--only 01_data] [--dry-run] [--force]
    python -m ntk_utils.grid run parameters/paper.yaml --executor local --workers 4   # 4 cells at a time, here
    python -m ntk_utils.grid run parameters/paper.yaml --executor slurm               # one Slurm job per cell
    python -m ntk_utils.grid estimate parameters/paper.yaml                           # cost of each cell
    python -m ntk_utils.grid compare outputs/runs/quick outputs/reference/quick
    python -m ntk_utils.grid publish outputs/runs/quick outputs/reference/quick

Each cell (notebook x parameter set, from the grid file: ``ntk_utils.gridfile``) runs into
``<root>/<grid>/<notebook>/<cell>/`` (root: ``outputs/runs``, git-ignored): the executed
``notebook.ipynb``, ``results.json`` and figures. Then every cell's figures are copied into
``<root>/<grid>/figures/`` and the summary notebook runs there (Figure 1, the table of
exponents, the claims) over the cells of the grid as it is now. Paths (``--root``,
``$NTK_CACHE_DIR``, ``$NTK_DATA_DIR``) may be relative to the working directory: they are made
absolute before any notebook kernel (which runs in the repository) sees them.

Safe to interrupt and rerun: a cell runs in a hidden ``.<cell>.running`` folder that is renamed
into place only when it succeeded (``ntk_utils.cells``). A finished cell whose parameters and
code (notebook + ntk_utils sources) are unchanged is skipped. A failed cell keeps its executed
notebook in ``<cell>.failed/`` and the run goes on. Unknown parameter names and invalid values
are refused before anything is computed. A run holds an exclusive lock on
``<root>/<grid>/.lock``: a second run of the same grid into the same folder is refused. It
records its grid file in ``<root>/<grid>/grid.json``, so the summary, the report and
``compare`` judge the folder's cells against it.

Cells run one after another here, or side by side as submitit jobs (``--executor local`` or
``slurm``: ``ntk_utils.executors``). ``compare`` checks that a fresh run reproduces a reference
run (the committed ``outputs/reference/<grid>``) within the noise of its own numbers;
``publish`` copies the current cells of a fresh run over the reference
(``ntk_utils.reproduce``). ``estimate`` is ``ntk_utils.estimate``.
"""
import argparse
import json
import os
import pathlib
import shutil
import sys
import time

from ntk_utils import cells, checks, executors, params, reproduce
from ntk_utils.gridfile import GridError, dependencies, load_grid, load_resources
from ntk_utils.paths import REPO_ROOT, for_repository

DEFAULT_ROOT = REPO_ROOT / "outputs" / "runs"
PATH_VARIABLES = ("NTK_CACHE_DIR", "NTK_DATA_DIR")   # read by the notebooks, whose kernels run in REPO_ROOT


def run(grid_file, *, only=None, dry_run=False, force=False, root=DEFAULT_ROOT, summary=True, executor=None,
        workers=None):
    """Run every selected cell that is not done, then the summary. Returns the failed cell ids.
    executor: None (one cell after another, here), "local" or "slurm" (cells as submitit jobs,
    at most ``workers`` at a time; local default: one per GPU, else 1)."""
    grid, grid_cells, summary_nb = load_grid(grid_file)
    for c in grid_cells:   # every value checked by its owner before anything is computed
        try:
            params.check(c.notebook, c.parameters)
        except params.ParameterError as e:
            raise GridError(str(e)) from None
    if executor not in (None, *executors.EXECUTORS):
        raise GridError(f"--executor {executor}: not one of {', '.join(executors.EXECUTORS)}")
    if workers is not None and (executor is None or not checks.is_int(workers) or workers < 1):
        raise GridError(f"--workers {workers}: needs --executor local or slurm and an integer >= 1")
    if executor == "local" and workers is None:
        workers = max(len(executors.local_gpus()), 1)
    if only:
        grid_cells = [c for c in grid_cells if any(pattern in c.id for pattern in only)]
        if not grid_cells:
            raise GridError(f"grid {grid}: --only {' '.join(only)} matches no cell")
    grid_dir = pathlib.Path(root).resolve() / grid
    if dry_run:
        after, resources = (dependencies(grid_cells), load_resources(grid_file)) if executor else ({}, {})
        for c in grid_cells:
            print(f"{cells.state(grid_dir, c)[0]:>6}  {c.id}  {json.dumps(c.parameters, sort_keys=True)}")
            if executor:
                print(f"        resources {json.dumps(resources[c.notebook], sort_keys=True)}; "
                      f"after {', '.join(sorted(after[c.id])) or 'nothing'}")
        return []
    for name in PATH_VARIABLES:
        if os.environ.get(name):
            os.environ[name] = os.path.abspath(os.environ[name])
    with cells.locked(grid_dir, grid):
        cells.record_grid_file(grid_dir, grid_file)
        return _run(grid_file, grid_dir, grid_cells, summary_nb if summary else None, force, executor, workers)


def _run(grid_file, grid_dir, grid_cells, summary_nb, force, executor=None, workers=None):
    todo = [c for c in grid_cells if force or cells.state(grid_dir, c)[0] != "done"]
    print(f"grid {grid_dir.name}: {len(grid_cells)} cells, {len(grid_cells) - len(todo)} already done, "
          f"{len(todo)} to run")
    start = time.time()
    if executor:
        failed = executors.run_jobs(grid_file, grid_dir, grid_cells, todo, executor, workers)
    else:
        failed = executors.run_serial(grid_dir, todo)
    out = grid_dir / "figures"
    out.mkdir(parents=True, exist_ok=True)
    for cell in grid_cells:   # every finished cell's figures, side by side: <notebook>--<cell>--<figure>.png
        for png in cells.folders(grid_dir, cell.id).finished.glob("*.png"):
            shutil.copyfile(png, out / f"{cell.notebook}--{cell.name}--{png.name}")
    if summary_nb:
        try:
            cells.execute(summary_nb, {"grid_dir": for_repository(grid_dir), "grid_file": for_repository(grid_file)}, out)
            print(f"summary: {out}")
        except Exception as e:  # noqa: BLE001
            print(f"summary FAILED: {type(e).__name__}: {e}")
            failed.append(summary_nb)
    print(f"grid {grid_dir.name}: finished in {time.time() - start:.0f}s; "
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
    p.add_argument("--root", default=str(DEFAULT_ROOT), help="outputs folder (default: outputs/runs/)")
    p.add_argument("--no-summary", action="store_true", help="skip the summary notebook")
    p.add_argument("--executor", choices=executors.EXECUTORS, help="run cells side by side as submitit jobs: here "
                                                                   "(local) or on Slurm, with the grid file's resources")
    p.add_argument("--workers", type=int, help="cells at a time (local default: one per GPU, else 1; slurm: no cap)")
    p = sub.add_parser("estimate", help="each cell's kernel entries, training steps and estimated device-hours")
    p.add_argument("grid_file")
    p.add_argument("--rates", default="cpu", help="the device: cpu (measured), h200-spec (from its specification "
                                                  "sheet), or a JSON file of benchmarks/bench_roofline.py --rates")
    for command, help in (("compare", "do a fresh grid folder's current cells reproduce a reference one? (exit 0/1)"),
                          ("publish", "copy the current cells of a fresh grid folder into a reference folder")):
        p = sub.add_parser(command, help=help)
        p.add_argument("fresh", help="e.g. outputs/runs/quick")
        p.add_argument("reference", help="e.g. outputs/reference/quick")
        p.add_argument("--grid-file", help="the fresh folder's grid file (default: the one its grid.json records, "
                                           "else parameters/<folder name>.yaml)")
    args = parser.parse_args(argv)
    try:
        if args.command == "compare":
            return reproduce.compare_main(args.fresh, args.reference, args.grid_file)
        if args.command == "publish":
            reproduce.publish(args.fresh, args.reference, args.grid_file)
            return 0
        if args.command == "estimate":
            from ntk_utils import estimate   # its own module (measured rates); imported only when asked for
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
