"""The quick grid end to end, from an empty cache (not a test; prints a markdown table).

    NTK_DATA_DIR=... python benchmarks/bench_quick_grid.py [--grid parameters/quick.yaml]

Runs the grid into a temporary outputs folder with a temporary kernel/network cache (so
nothing is reused) and prints each cell's wall time and the total. `make quick` does the same
run into outputs/ with the persistent cache.
"""
import argparse
import json
import os
import pathlib
import tempfile
import time

from ntk_utils import cells, grid, gridfile


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--grid", default=str(grid.REPO_ROOT / "parameters" / "quick.yaml"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NTK_CACHE_DIR"] = str(pathlib.Path(tmp) / "cache")
        start = time.time()
        failed = grid.run(args.grid, root=pathlib.Path(tmp) / "outputs")
        total = time.time() - start
        name, grid_cells, _ = gridfile.load_grid(args.grid)
        print(f"\n| cell | wall (s) |\n|---|---|")
        for cell in grid_cells:
            path = cells.folders(pathlib.Path(tmp) / "outputs" / name, cell.id).finished / "results.json"
            seconds = json.loads(path.read_text())["run"]["wall_seconds"] if path.exists() else "failed"
            print(f"| {cell.id} | {seconds} |")
        print(f"| **total, with the summary** | **{total:.0f}** |")
        if failed:
            print(f"failed: {failed}")


if __name__ == "__main__":
    main()
