"""The grid on a real Slurm: Debian's slurm-wlm and munge started on this machine (one node, no
accounting). ``parameters/ci.yaml`` run through ``--executor slurm`` gives the numbers of the local
run (``ci_run``); a cell's job cancelled mid-run: the runner must end with that cell failed and
say so, not wait forever (submitit asks sacct, which this cluster cannot answer). The daemons are
stopped at the end. Skipped, with the reason, where the packages are absent (`.ci/run` installs them)."""
import math
import textwrap
import threading
import time

import pytest

from ntk_utils import cells, executors, grid, gridfile, parameters_cell
from tests import slurm_cluster

pytest.importorskip("submitit")
pytestmark = pytest.mark.skipif(bool(slurm_cluster.missing()), reason=f"no Slurm here: {slurm_cluster.missing()}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with slurm_cluster.Cluster(tmp_path_factory.mktemp("slurm")) as c:
        yield c


def squeue(cluster_env):
    import subprocess
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, env=cluster_env).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def numbers(tree, prefix=""):
    """{path: number} of every number in a nested results record (lists and dicts)."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in numbers(sub, f"{prefix}/{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in numbers(sub, f"{prefix}[{i}]").items()}
    return {prefix: tree} if isinstance(tree, (int, float)) and not isinstance(tree, bool) else {}


def test_ci_grid_through_slurm_gives_the_local_numbers(cluster, ci_run, tmp_path, monkeypatch):
    local, local_failed, grid_cells = ci_run
    assert not local_failed
    grid_file = local.parent.parent / "ci.yaml"            # the grid file ci_run ran
    monkeypatch.setenv("NTK_CACHE_DIR", str(tmp_path / "cache"))   # computed afresh, not read from the local run
    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
    failed = grid.run(grid_file, root=tmp_path / "outputs", executor="slurm")
    assert failed == []
    on_slurm = tmp_path / "outputs" / "ci"
    state = cells.collect(on_slurm, grid_file)
    assert sorted(state["done"]) == sorted(c.id for c in grid_cells)
    assert (on_slurm / "figures" / "summary.json").is_file()
    compared = 0
    for cell, path in cells.finished_cells(local).items():
        want = numbers(cells.read_results(path)["results"])
        got = numbers(state["done"][cell]["results"])
        assert set(got) == set(want), cell
        for key, value in want.items():
            assert math.isclose(got[key], value, rel_tol=1e-6, abs_tol=1e-9) or (math.isnan(got[key]) and math.isnan(value)), \
                f"{cell} {key}: Slurm {got[key]}, local {value}"
        compared += len(want)
    assert compared > 1000


SLEEPER = textwrap.dedent('''\
    # %%
    import time
    from ntk_utils import results
    _before_parameters = set(globals())

    # %% tags=["parameters"]
    data_seeds = [0]
    sleep = 0.0
    output_dir = "out"

    # %%
    parameters = results.collect_parameters(globals(), _before_parameters)
    time.sleep(sleep)
    results.save(output_dir, parameters, {"fits": {}, "verdicts": {}})
    ''')


def test_cancelled_job_fails_its_cell_instead_of_waiting(cluster, tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "sleeper.py").write_text(SLEEPER)
    monkeypatch.setattr(parameters_cell, "NOTEBOOKS_DIR", notebooks)
    monkeypatch.setenv("NTK_NOTEBOOKS_DIR", str(notebooks))
    monkeypatch.setenv("NTK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
    monkeypatch.setattr(gridfile, "code_version", lambda stem: f"{stem} code")
    monkeypatch.setattr(executors, "RESULT_GRACE_SECONDS", 5)
    grid_file = tmp_path / "g.yaml"
    grid_file.write_text("name: g\nnotebooks:\n  sleeper:\n    sweep: {sleep: [1.0, 600.0]}\n")

    cancelled = {}

    def cancel_the_long_one():
        import subprocess
        end = time.time() + 240
        while time.time() < end and not cancelled:
            jobs = squeue(cluster.env)
            # the cells go in as one job array in the grid file's order: task 1 is the long cell
            # (a job id alone does not say which: the short cell's job may still be running,
            # having written its result, and this cluster may run the tasks one at a time)
            long_ones = [j for j, state in jobs.items() if j.endswith("_1") and state == "RUNNING"]
            if long_ones:
                subprocess.run(["scancel", long_ones[0]], env=cluster.env, check=True)
                cancelled["job"], cancelled["at"] = long_ones[0], time.time()
            time.sleep(1)
        if not cancelled:    # never seen: end every job, so that the test fails now instead of in 10 minutes
            subprocess.run(["scancel", "--full", "-u", "root"], env=cluster.env)

    canceller = threading.Thread(target=cancel_the_long_one, daemon=True)
    canceller.start()
    failed = grid.run(grid_file, root=tmp_path / "outputs", executor="slurm", summary=False)
    ended = time.time()
    canceller.join(timeout=5)
    assert cancelled, "the long cell's job was never seen running"
    assert failed == ["sleeper/sleep=600.0"]
    assert ended - cancelled["at"] < 120, "the runner took too long to see the cancelled job"
    error = (tmp_path / "outputs" / "g" / "sleeper" / "sleep=600.0.failed" / "error.txt").read_text()
    assert "ended (CANCELLED" in error and "without a result" in error
