"""The grid runner's cells side by side (``--executor``): submitit's local executor running real
toy cells (order, parallelism, resume, failures, the same results as a sequential run), the
order rules on the paper grid, sweep lists, the ``resources`` block and the ``estimate``
subcommand."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ntk_utils import cells, executors, grid, gridfile, parameters_cell

submitit = pytest.importorskip("submitit")

TOY = textwrap.dedent('''\
    # %%
    import os, pathlib, signal, time
    from ntk_utils import results
    _before_parameters = set(globals())

    # %% tags=["parameters"]
    data_seeds = [0]
    lr = 0.1
    barrier = ""      # a folder: arrive there, then wait until `parties` cells have (they run side by side)
    parties = 0
    fail = ""         # "error": the notebook raises; "die": it kills its job's process (as an OOM kill would)
    sleep = 0.0
    pid_file = ""     # where to write the kernel's pid
    output_dir = "out"

    # %%
    parameters = results.collect_parameters(globals(), _before_parameters)
    started = time.time()
    if pid_file:
        pathlib.Path(pid_file).write_text(str(os.getpid()))
    time.sleep(sleep)
    if barrier:
        pathlib.Path(barrier).mkdir(parents=True, exist_ok=True)
        (pathlib.Path(barrier) / str(data_seeds)).touch()
        while len(list(pathlib.Path(barrier).iterdir())) < parties:
            assert time.time() - started < 120, "the other cells never ran alongside this one"
            time.sleep(0.2)
    assert fail != "error", "asked to fail"
    if fail == "die":
        os.kill(os.getppid(), signal.SIGKILL)
        os._exit(1)
    results.save(output_dir, parameters, {"fits": {}, "verdicts": {}, "draws": data_seeds, "lr_seen": lr * 2,
                                          "started": started, "finished": time.time()})
    ''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for stem in ("toy", "toy_b"):
        (notebooks / f"{stem}.py").write_text(TOY)
    monkeypatch.setattr(parameters_cell, "NOTEBOOKS_DIR", notebooks)
    monkeypatch.setenv("NTK_NOTEBOOKS_DIR", str(notebooks))
    monkeypatch.setenv("NTK_CACHE_DIR", str(tmp_path / "cache"))
    # fingerprints that an edit of ntk_utils elsewhere during the test cannot turn stale
    monkeypatch.setattr(gridfile, "code_version", lambda stem: f"{stem} code")
    return tmp_path


def _record(root, cell):
    return json.loads((root / "g" / cell / "results.json").read_text())


@pytest.mark.slow
def test_local_executor_order_parallelism_resume_and_failures(toy, capsys):
    """Per-draw cells run side by side (a barrier only both together pass), the cell over both
    draws after them, the next notebook after the first; a notebook error and a killed job are
    kept in <cell>.failed/; a rerun skips the finished cells."""
    grid_file = toy / "g.yaml"
    grid_file.write_text(textwrap.dedent(f"""\
        name: g
        notebooks:
          toy:
            params: {{barrier: {str(toy / 'barrier')!r}, parties: 2}}
            sweep:
              - {{data_seeds: [[0], [1]]}}
              - {{data_seeds: [[0, 1]]}}
          toy_b:
            sweep: {{fail: [error, die]}}
        resources:
          default: {{timeout_min: 10}}
        """))
    root = toy / "out"
    failed = grid.run(grid_file, root=root, executor="local", workers=2)
    assert failed == ["toy_b/fail=error", "toy_b/fail=die"]
    out = capsys.readouterr().out
    assert "grid g: 5 cells, 0 already done, 5 to run" in out and "grid g: finished in" in out

    draws = [_record(root, f"toy/data_seeds={d}")["results"] for d in ("0", "1", "0+1")]
    assert [r["draws"] for r in draws] == [[0], [1], [0, 1]]
    assert draws[2]["started"] >= max(draws[0]["finished"], draws[1]["finished"])     # it waited for them
    assert {p.name for p in (toy / "barrier").iterdir()} == {"[0]", "[1]", "[0, 1]"}
    assert _record(root, "toy/data_seeds=0+1")["run"]["cell"] == "toy/data_seeds=0+1"

    error, died = root / "g/toy_b/fail=error.failed", root / "g/toy_b/fail=die.failed"
    assert (error / "notebook.ipynb").exists() and "asked to fail" in (error / "error.txt").read_text()
    assert "has not produced any output" in (died / "error.txt").read_text()
    assert not [p for p in (root / "g/toy_b").iterdir() if p.name.endswith(".running")]
    assert os.path.getmtime(error) >= draws[2]["finished"]       # toy_b waited for the first notebook
    assert [cells.state(root / "g", c)[0] for c in gridfile.load_grid(grid_file)[1]] == ["done"] * 3 + ["failed"] * 2

    mtime = os.path.getmtime(root / "g/toy/data_seeds=0+1/results.json")
    assert grid.run(grid_file, root=root, executor="local", workers=2, only=["toy/"]) == []
    assert "grid g: 3 cells, 3 already done, 0 to run" in capsys.readouterr().out
    assert os.path.getmtime(root / "g/toy/data_seeds=0+1/results.json") == mtime


@pytest.mark.slow
def test_local_workers_give_the_sequential_results(toy):
    grid_file = toy / "g.yaml"
    grid_file.write_text("name: g\nnotebooks:\n  toy:\n    sweep: {lr: [0.1, 0.2]}\n")
    assert grid.run(grid_file, root=toy / "seq") == []
    assert grid.main(["run", str(grid_file), "--root", str(toy / "par"), "--executor", "local", "--workers", "2"]) == 0
    names = sorted(p.name for p in (toy / "seq/g/toy").iterdir())
    assert names == sorted(p.name for p in (toy / "par/g/toy").iterdir()) == ["lr=0.1", "lr=0.2"]
    for cell in names:
        seq, par = (_record(toy / root, f"toy/{cell}") for root in ("seq", "par"))
        for r in (seq, par):
            del r["results"]["started"], r["results"]["finished"], r["parameters"]["output_dir"]
            del r["meta"]["wall_seconds"], r["run"]["wall_seconds"]
        assert seq["results"] == par["results"] and seq["parameters"] == par["parameters"]
        assert seq["run"]["cell"] == par["run"]["cell"] == f"toy/{cell}"
        assert sorted(os.listdir(toy / "seq/g/toy" / cell)) == sorted(os.listdir(toy / "par/g/toy" / cell))


@pytest.mark.slow
def test_a_terminated_run_cancels_its_jobs(toy):
    """The submitting process holds the grid lock; killed (SIGTERM), it cancels its jobs first, so
    no cell of it runs on unlocked. The cell leaves only its .running folder."""
    grid_file = toy / "g.yaml"
    grid_file.write_text(f"name: g\nnotebooks:\n  toy: {{sleep: 300.0, pid_file: {str(toy / 'pid')!r}}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "ntk_utils.grid", "run", str(grid_file), "--root", str(toy / "out"),
                             "--executor", "local"], cwd=grid.REPO_ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for _ in range(1200):
        if (toy / "pid").exists() and (toy / "pid").read_text():
            break
        time.sleep(0.1)
    kernel = int((toy / "pid").read_text())
    proc.terminate()
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    for _ in range(100):                                   # the job's controller kills its task, then the kernel ends
        if not os.path.exists(f"/proc/{kernel}") or "zombie" in open(f"/proc/{kernel}/status").read():
            break
        time.sleep(0.1)
    else:
        os.kill(kernel, signal.SIGKILL)
        pytest.fail("the cell's kernel still runs after its run was terminated")
    assert [p.name for p in (toy / "out/g/toy").iterdir()] == [".default.running"]


# ------------------------------------------------------------ order of cells

def test_paper_grid_is_split_and_ordered():
    name, grid_cells, _ = gridfile.load_grid(grid.REPO_ROOT / "parameters" / "paper.yaml")
    after = gridfile.dependencies(grid_cells)
    ids = [c.id for c in grid_cells]
    per_run = [f"data_seeds={d},seeds={s}" for s in (0, 1, 2) for d in (0, 1)]
    for notebook in ("01_data_scaling", "02_width", "04_after_kernel", "05_kernel_dynamics"):
        runs = {f"{notebook}/{r}" for r in per_run}
        assert runs | {f"{notebook}/default"} == {i for i in ids if i.startswith(notebook)}
        assert after[f"{notebook}/default"] >= runs
    # 01: the seed-0 cell of a draw first (the draw's infinite NTK), then the other seeds of that draw
    assert after["01_data_scaling/data_seeds=0,seeds=0"] == set()
    assert after["01_data_scaling/data_seeds=1,seeds=2"] == {"01_data_scaling/data_seeds=1,seeds=0"}
    first = {i for i in ids if i.startswith("01_data_scaling/")}
    draw1 = {i for i in first if "data_seeds=1" in i} | {"01_data_scaling/default"}
    assert after["04_after_kernel/data_seeds=1,seeds=2"] == draw1                 # 01's networks of draw 1
    assert after["02_width/data_seeds=0,seeds=2"] == (first - draw1) | {"01_data_scaling/default",
                                                                        "02_width/data_seeds=0,seeds=0"}
    assert after["03_hyperparameters/variants=gd"] == first                       # 01's kernels
    assert after["primer/default"] == set() and len(grid_cells) == 34


def test_order_rules_on_small_grids(toy):
    grid_file = toy / "g.yaml"
    grid_file.write_text("name: g\nnotebooks:\n  toy:\n    sweep: {data_seeds: [[0], [1], [0, 1]]}\n"
                         "  toy_b:\n    sweep: {lr: [0.1, 0.2], data_seeds: [[1], [2]]}\n")
    after = gridfile.dependencies(gridfile.load_grid(grid_file)[1])
    assert after == {"toy/data_seeds=0": set(), "toy/data_seeds=1": set(),
                     "toy/data_seeds=0+1": {"toy/data_seeds=0", "toy/data_seeds=1"},       # covers them
                     "toy_b/lr=0.1,data_seeds=1": {"toy/data_seeds=1", "toy/data_seeds=0+1"},  # shares draw 1
                     "toy_b/lr=0.1,data_seeds=2": set(), "toy_b/lr=0.2,data_seeds=1": {"toy/data_seeds=1",
                                                                                         "toy/data_seeds=0+1"},
                     "toy_b/lr=0.2,data_seeds=2": set()}
    # identical parameters in two sweep entries: the later one waits, no cycle
    grid_file.write_text("name: g\nnotebooks:\n  toy:\n    sweep:\n      - {data_seeds: [[0]]}\n      - {}\n")
    assert gridfile.dependencies(gridfile.load_grid(grid_file)[1]) == {"toy/data_seeds=0": set(),
                                                              "toy/default": {"toy/data_seeds=0"}}


def test_dry_run_lists_resources_and_order(toy, capsys):
    grid_file = toy / "g.yaml"
    grid_file.write_text("name: g\nnotebooks:\n  toy:\n    sweep: [{data_seeds: [[0]]}, {lr: [0.5]}]\n"
                         "resources:\n  default: {gpus: 1}\n  toy: {timeout_min: 30}\n")
    assert grid.main(["run", str(grid_file), "--root", str(toy / "out"), "--executor", "slurm", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == '        resources {"gpus": 1, "timeout_min": 30}; after nothing'
    assert out[2].startswith("  todo  toy/lr=0.5  ") and out[3].endswith("; after toy/data_seeds=0")
    assert not (toy / "out").exists()


# ---------------------------------------------------------------- resources

def test_resources_merge_and_reach_the_slurm_job(toy, monkeypatch):
    grid_file = toy / "g.yaml"
    grid_file.write_text("name: g\nnotebooks:\n  toy: {}\n  toy_b: {}\nresources:\n"
                         "  default: {gpus: 1, cpus: 8, mem_gb: 64, timeout_min: 240, partition: gpu}\n"
                         "  toy_b: {mem_gb: 128.5, slurm: {account: proj, qos: high}}\n")
    res = gridfile.load_resources(grid_file)
    assert res["toy"] == {"gpus": 1, "cpus": 8, "mem_gb": 64, "timeout_min": 240, "partition": "gpu"}
    assert res["toy_b"] == {**res["toy"], "mem_gb": 128.5, "slurm": {"account": "proj", "qos": "high"}}
    grid_file.write_text("name: g\nnotebooks:\n  toy: {}\n")
    assert gridfile.load_resources(grid_file) == {"toy": gridfile.DEFAULT_RESOURCES}
    # what submitit's Slurm executor makes of them: the sbatch file it would submit (no cluster here)
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    executor = submitit.AutoExecutor(folder=toy / "jobs", cluster="slurm")
    executor.update_parameters(**executors._job_parameters(res["toy_b"], "slurm", "g-toy_b"))
    sbatch = executor._executor._make_submission_file_text("python job.py", "uid")
    for line in ("--gpus-per-node=1", "--cpus-per-task=8", "--mem=131584MB", "--time=240", "--partition=gpu",
                 "--account=proj", "--qos=high", "--job-name=g-toy_b"):
        assert f"#SBATCH {line}\n" in sbatch, line
    assert executors._job_parameters(res["toy_b"], "local", "g-toy_b") == {"name": "g-toy_b", "timeout_min": 240}


@pytest.mark.parametrize("text, args, message", [
    ("resources: [gpus]\n", [], "resources: must be a mapping of notebook names"),
    ("resources: {toyy: {gpus: 1}}\n", [], "resources: toyy: not a notebook of the grid; allowed: default, toy"),
    ("resources: {default: 4}\n", [], r"resources: default: must be a mapping \(e.g."),
    ("resources: {toy: {gpu: 1}}\n", [], r"resources: toy: unknown keys \['gpu'\]; allowed: \['gpus'"),
    ("resources: {default: {gpus: -1}}\n", [], "resources: default: gpus must be an integer >= 0, got -1"),
    ("resources: {toy: {timeout_min: 2h}}\n", [], "resources: toy: timeout_min must be an integer >= 1, got '2h'"),
    ("resources: {toy: {mem_gb: true}}\n", [], "resources: toy: mem_gb must be a number > 0, got True"),
    ("resources: {toy: {slurm: [account]}}\n", [], "resources: toy: slurm must be a mapping of sbatch options"),
    ("resources: {toy: {partition: ''}}\n", [], "resources: toy: partition must be a partition name"),
    ("", ["--workers", "2"], "--workers 2: needs --executor local or slurm"),
    ("", ["--executor", "local", "--workers", "0"], "--workers 0: needs .* an integer >= 1"),
    ("  toy_b: {sweep: [{lr: [0.1]}, 3]}\n", [], "toy_b: sweep: must be a mapping, or a list of mappings, not 3"),
    ("  toy_b: {sweep: [{lr: 0.1}]}\n", [], "toy_b: sweep: lr: must be a non-empty list"),
    ("  toy_b: {sweep: [{lr: [0.1]}, {lr: [0.1]}]}\n", [], "two sweep values give the same cell toy_b/lr=0.1"),
])
def test_bad_resources_and_sweeps_are_one_line(toy, capsys, text, args, message):
    bad = toy / "bad.yaml"
    bad.write_text("notebooks:\n  toy: {}\n" + text)
    assert grid.main(["run", str(bad), "--root", str(toy / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert __import__("re").search(message, err), err
    assert not (toy / "out").exists()


def test_local_gpus_split_among_workers(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    assert [e["CUDA_VISIBLE_DEVICES"] for e in executors._worker_envs(2)] == ["0,1", "2,3"]
    assert executors._worker_envs(3)[2] == {"CUDA_VISIBLE_DEVICES": "2,3"}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert executors._worker_envs(2) == [{"CUDA_VISIBLE_DEVICES": "5", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}] * 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert executors._worker_envs(2) == [{"CUDA_VISIBLE_DEVICES": ""}] * 2      # none visible: stays so


# ----------------------------------------------------------------- estimate

def test_estimate_subcommand_prints_the_estimate_at_the_rates_asked_for(capsys):
    """grid estimate GRID [--rates NAME]: the estimate module's table at those rates; a missing
    grid file is an error (exit 2)."""
    from ntk_utils import estimate
    assert grid.main(["estimate", "parameters/ci.yaml", "--rates", "h200-spec"]) == 0
    out = capsys.readouterr().out
    assert estimate.H200_SPEC.device in out and "| **grid** |" in out
    assert grid.main(["estimate", "parameters/ci.yaml"]) == 0
    assert estimate.CPU.device in capsys.readouterr().out
    assert grid.main(["estimate", "nope.yaml"]) == 2
