"""Running a grid's cells: one after another here, or side by side as submitit jobs.

Without ``--executor`` the cells run one after another in this process (:func:`run_serial`),
in the grid file's order. With ``--executor local --workers N`` (N cells at a time on this
machine, its GPUs split among the workers) or ``--executor slurm`` (one Slurm job per cell;
cells ready together and of one notebook go as one job array; ``--workers`` caps the jobs in
flight) each cell is a submitit job with its notebook's ``resources`` (locally only
``timeout_min`` applies), started when the cells it waits for (``gridfile.dependencies``) have
ended (:func:`run_jobs`); job files and logs go to ``<root>/<grid>/.submitit/``. A job that dies
without returning (killed, out of memory, cancelled) leaves its cell in ``<cell>.failed/`` with
the job's error in ``error.txt`` (on a cluster without accounting, where submitit cannot see
such an end, ``squeue`` shows it: :func:`slurm_queue_state`); a timed-out or preempted job is
requeued (up to 3 times) and starts its cell again, finished networks and kernels coming from
the cache (``$NTK_CACHE_DIR`` must be on a filesystem every node sees).

Either way each ended cell prints one line (done / FAILED, its seconds, why it failed) and one
line per corrupt cache entry it found and recomputed (its results.json's
``meta.cache.recomputed_corrupt``).
"""
import itertools
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

from tqdm.auto import tqdm

from ntk_utils import cells, parameters_cell
from ntk_utils.gridfile import GridError, dependencies, load_resources

EXECUTORS = ("local", "slurm")


def tell(grid_dir, cell, ok, seconds, message):
    """Print a cell's line, and a line per corrupt cache entry its run recomputed."""
    tqdm.write(f"{'done' if ok else 'FAILED':>6}  {cell.id}  {seconds:6.1f}s  {'' if ok else message}")
    path = cells.folders(grid_dir, cell.id).finished / "results.json"
    if ok and path.is_file():
        for entry in json.loads(path.read_text()).get("meta", {}).get("cache", {}).get("recomputed_corrupt", []):
            tqdm.write(f"        warning: {cell.id}: corrupt cache entry recomputed: {entry}")


def run_serial(grid_dir, todo):
    """Run the cells ``todo`` one after another, with a progress bar. Returns the failed cell ids."""
    failed = []
    bar = tqdm(todo, desc=f"grid {pathlib.Path(grid_dir).name}", unit="cell")
    for cell in bar:
        bar.set_postfix_str(cell.id)
        ok, seconds, message = cells.run_cell(grid_dir, cell)
        tell(grid_dir, cell, ok, seconds, message)
        if not ok:
            failed.append(cell.id)
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
    """One cell as a submitit job: set the worker's environment, ``cells.run_cell``.
    ``checkpoint`` is submitit's requeue hook: a timed-out or preempted job is resubmitted as it
    was (at most 3 times) and starts its cell again, reading what it finished from the cache."""

    def __call__(self, grid_dir, cell, notebooks_dir, env):
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        os.environ["NTK_NOTEBOOKS_DIR"] = str(notebooks_dir)    # the submitting process's notebooks
        parameters_cell.NOTEBOOKS_DIR = pathlib.Path(notebooks_dir)
        return cells.run_cell(grid_dir, cell)

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


def _job_outcome(job, grid_dir, cell, submitted):
    """(ok, seconds, message) of an ended job, as ``cells.run_cell`` returns them. A job that ended
    without returning (killed, out of memory, cancelled, timed out too often) keeps its cell's
    folder in ``<cell>.failed/`` with the job's error (and log paths) in ``error.txt``."""
    try:
        return job.result()
    except Exception as e:  # noqa: BLE001 - any way a job can end without a result
        cells.keep_failed(grid_dir, cell, f"{type(e).__name__}: {e}")
        return False, time.time() - submitted, f"{type(e).__name__}: job {job.job_id} ended without a result " \
                                               f"(see {cell.id}.failed/error.txt)"


# Slurm states of a job that has ended; squeue lists an ended job for MinJobAge (default 300 s).
SLURM_ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT"}
RESULT_GRACE_SECONDS = 60   # an ended job's result file may take this long to appear on a shared filesystem


def slurm_queue_state(job_id):
    """The job's state as squeue shows it ("" once squeue no longer knows it; None where squeue
    cannot be asked). submitit asks sacct, which a cluster without accounting cannot answer: its
    jobs would never end for submitit when they end without a result (scancel, a killed node)."""
    try:
        done = subprocess.run(["squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%T"], capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return "" if "Invalid job id" in done.stderr else None
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""


class _OnceFilter(logging.Filter):
    """Lets the first of submitit's "Bypassing sacct error" warnings through (no accounting on the
    cluster: states come from squeue then), not one per poll."""

    def __init__(self):
        super().__init__()
        self.seen = False

    def filter(self, record):
        if "Bypassing sacct error" not in record.getMessage():
            return True
        if self.seen:
            return False
        self.seen = True
        return True


def _ended_without_result(job, ended_since):
    """Whether a Slurm job that submitit still calls running has ended in squeue's view for
    RESULT_GRACE_SECONDS without writing its result; ``ended_since`` {job id: when first seen ended}."""
    state = slurm_queue_state(job.job_id)
    if state is None or (state and state.split()[0] not in SLURM_ENDED):
        ended_since.pop(job.job_id, None)
        return None
    first = ended_since.setdefault(job.job_id, time.time())
    return (state or "no longer known to squeue") if time.time() - first > RESULT_GRACE_SECONDS else None


def _exit_on_signal(signum, frame):
    sys.exit(128 + signum)      # a SystemExit: run_jobs cancels its jobs on the way out


def run_jobs(grid_file, grid_dir, grid_cells, todo, executor, workers):
    """Run the cells ``todo`` as submitit jobs, each when the cells it waits for
    (``gridfile.dependencies`` over ``grid_cells``) have ended, at most ``workers`` at a time; a
    progress bar until all have ended. Returns the failed cell ids. Interrupted, it cancels its jobs."""
    try:
        import submitit
    except ImportError:
        raise GridError(f"--executor {executor} needs submitit: pip install submitit==1.5.4") from None
    grid = pathlib.Path(grid_dir).name
    resources, after = load_resources(grid_file), dependencies(grid_cells)
    submitter = submitit.AutoExecutor(folder=pathlib.Path(grid_dir) / ".submitit", cluster=executor)
    free = _worker_envs(workers) if executor == "local" else None     # local: one environment per worker
    limit = workers or len(todo)
    waiting, running, failed = list(todo), {}, []                     # running: id -> (cell, job, env, start)
    bar, shown = tqdm(total=len(todo), desc=f"grid {grid}", unit="cell"), (None, 0.0)
    ended_since, once = {}, _OnceFilter()
    logging.getLogger("submitit").addFilter(once)
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
                    new = [submitter.submit(CellJob(), grid_dir, c, parameters_cell.NOTEBOOKS_DIR, e)
                           for c, e in zip(group, envs)]
                else:                         # one job array per notebook
                    new = submitter.map_array(CellJob(), [grid_dir] * len(group), group,
                                              [parameters_cell.NOTEBOOKS_DIR] * len(group), envs)
                for cell, job, env in zip(group, new, envs):
                    running[cell.id] = (cell, job, env, time.time())
                    waiting.remove(cell)
            postfix = f"{len(running)} running, {len(waiting)} waiting"
            if postfix != shown[0] or time.time() - shown[1] > 30:     # a live bar, not a line a second in logs
                bar.set_postfix_str(postfix)
                shown = (postfix, time.time())
            time.sleep(1.0 if executor == "local" else 15.0)
            for cell, job, env, submitted in list(running.values()):
                if job.done():
                    ok, seconds, message = _job_outcome(job, grid_dir, cell, submitted)
                elif executor == "slurm" and (state := _ended_without_result(job, ended_since)):
                    cells.keep_failed(grid_dir, cell, f"Slurm job {job.job_id} ended ({state}) without a result: "
                                                      f"cancelled or killed. Its log: {job.paths.stderr}")
                    ok, seconds, message = False, time.time() - submitted, \
                        f"Slurm job {job.job_id} ended ({state}) without a result (see {cell.id}.failed/error.txt)"
                else:
                    continue
                del running[cell.id]
                if free is not None:
                    free.append(env)
                bar.update(1)
                tell(grid_dir, cell, ok, seconds, message)
                if not ok:
                    failed.append(cell.id)
    except BaseException:
        for cell, job, *_ in running.values():   # nothing of this run goes on once it lets go of the lock
            job.cancel(check=False)
        raise
    finally:
        bar.close()
        logging.getLogger("submitit").removeFilter(once)
        for s, handler in handlers.items():
            signal.signal(s, handler)
    return [c.id for c in todo if c.id in failed]   # in grid order
