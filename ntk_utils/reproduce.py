"""Does a fresh grid run reproduce the reference? And publishing a fresh run as the reference.

``compare`` checks every number of the reference cells' results["curves"] (the committed
``outputs/reference/<grid>``) against the fresh grid folder's current cells (``cells.state``:
results of the grid file and code as they are now), each within the noise of the reference's
own numbers (:func:`allowed_difference`). A reference cell that no current fresh cell
reproduces (stale, failed, not run, not in the grid) is named with why, and fails the check.
``publish`` copies the current cells of a fresh run over the reference.
"""
import math
import os
import pathlib
import shutil

from ntk_utils import cells
from ntk_utils.gridfile import GridError, load_grid


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


def compare(fresh, reference, grid_file=None):
    """Every number of results["curves"] of the reference cells vs the fresh grid folder's current
    cells (its grid file: ``cells.grid_file_of``). Returns {"compared": K, "within": k, "outside":
    [(cell, curve, x name, x, fresh, reference, allowed)], "reproduced": [reference cells with a
    current fresh cell], "not_reproduced": [(cell, why)], "only_fresh": [current cells],
    "not_compared": [descriptions]}."""
    state = cells.collect(fresh, grid_file)
    a = {cell: record.get("results", {}).get("curves", {}) or {} for cell, record in state["done"].items()}
    b = {cell: cells.read_results(path).get("results", {}).get("curves", {}) or {}
         for cell, path in cells.finished_cells(reference).items()}
    report = {"compared": 0, "within": 0, "outside": [], "reproduced": sorted(set(a) & set(b)),
              "not_reproduced": [(cell, _why_not(state, cell)) for cell in sorted(set(b) - set(a))],
              "only_fresh": sorted(set(a) - set(b)), "not_compared": []}
    for cell in report["reproduced"]:
        curves_a, curves_b = a[cell], b[cell]
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


def _why_not(state, cell):
    """Why a cell has no current results in ``state`` (cells.collect): "stale: other code", ..."""
    if cell in state["todo"]:
        return "not run yet"
    status = next((key for key in ("stale", "failed") if cell in state[key]), None)
    return f"{status}: {state['why'][cell]}" if status else "not in the grid"


def _fmt(v):
    return "null" if v is None else f"{v:.4f}"


def compare_main(fresh, reference, grid_file=None):
    """Print the comparison; 0 when every reference cell is reproduced by a current fresh cell
    within noise (or there is no reference), else 1."""
    fresh, reference = pathlib.Path(fresh), pathlib.Path(reference)
    if not reference.exists():
        print(f"no reference at {reference}: nothing to compare")
        return 0
    if not fresh.exists():
        raise GridError(f"no fresh run at {fresh}")
    r = compare(fresh, reference, grid_file)
    n_ref = len(r["reproduced"]) + len(r["not_reproduced"])
    print(f"reproduced: {r['within']} of {r['compared']} numbers within noise "
          f"({len(r['reproduced'])} of {n_ref} reference cells by a current cell)")
    for cell, name, x_name, x, got, ref, allowed in r["outside"]:
        print(f"  outside noise: {cell}  {name}  {x_name}={x}: fresh {_fmt(got)}, reference {_fmt(ref)}, "
              f"allowed ±{_fmt(allowed)}")
    for cell, why in r["not_reproduced"]:
        print(f"  not reproduced: {cell} ({why})")
    for cell in r["only_fresh"]:
        print(f"  only in the fresh run: {cell}")
    for line in r["not_compared"]:
        print(f"  not compared: {line}")
    return 0 if not r["outside"] and not r["not_reproduced"] else 1


def publish(fresh_grid_dir, reference_dir, grid_file=None):
    """Copy every current cell of a fresh grid folder, i.e. its results.json, notebook.ipynb (its
    progress bars as text: ``cells.progress_bars_as_text``), figures and per-example outcomes
    (outcomes.npz: every verdict can be recomputed from them), and the grid's figures/ folder
    into reference_dir, replacing the older copies there, and
    record the grid file in its grid.json. grid_file: default ``cells.grid_file_of``. Returns the
    cell ids."""
    import nbformat
    fresh, reference = pathlib.Path(fresh_grid_dir), pathlib.Path(reference_dir)
    grid_file = cells.grid_file_of(fresh, grid_file)
    grid = load_grid(grid_file)[0]
    if grid != fresh.name:
        raise GridError(f"{fresh} is not a folder of grid {grid} ({grid_file}); pass --grid-file")
    with cells.locked(fresh, grid):      # not while a run writes into it
        state = cells.collect(fresh, grid_file)
        for cell in state["done"]:
            _replace_dir(fresh / cell, reference / cell,
                         lambda p: p.name in ("results.json", "notebook.ipynb", "outcomes.npz") or p.suffix == ".png")
        if (fresh / "figures").is_dir():
            _replace_dir(fresh / "figures", reference / "figures", lambda p: not p.name.startswith("."))
        for executed in [reference / c / "notebook.ipynb" for c in state["done"]] + [reference / "figures" / "notebook.ipynb"]:
            if executed.is_file():    # a run of older code may have kept progress bars as widgets
                nbformat.write(cells.progress_bars_as_text(nbformat.read(executed, as_version=4)), executed)
        cells.record_grid_file(reference, grid_file)
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
