"""results.json: what a notebook run measured, with everything needed to trust it later.

Layout: {"parameters": {...}, "results": {...}, "meta": {versions, device, git commit,
started, wall_seconds, code_fingerprint, cache, data, ...}}. meta["cache"] says which numbers
came from the disk cache (hits/misses per kind, corrupt entries recomputed), meta["data"] which
data files were read and their hashes, and code_fingerprint the code the cache keys name (see
ntk_utils.cache). numpy arrays and dataclasses (e.g. PowerLawFit) become plain JSON, NaN and
infinities null. Written atomically (temporary file + rename).
"""
import dataclasses
import json
import math
import os
import platform
import subprocess
import time

import numpy as np

from ntk_utils import cache, data, regression
from ntk_utils.paths import REPO_ROOT, atomic_write

STARTED = time.time()   # import time of this module ~ start of the notebook's kernel


def plain(obj):
    """``obj`` as plain JSON values: dataclasses and dicts -> dicts with str keys, lists, tuples and
    arrays -> lists, numpy scalars -> Python ones, NaN and infinities -> None (JSON has neither)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return plain(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, (np.ndarray, np.generic)):
        return plain(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def git_commit():
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "ntk_utils", "notebooks"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def metadata():
    """Package versions, device, git commit, host and timing of this process; its cache use,
    the data files it read, its kernel-regression solves (regression.solve_stats) and the code
    fingerprint of its cache keys."""
    import jax
    import ntk_utils
    device = jax.devices()[0]
    return {"versions": ntk_utils.versions_summary(), "python": platform.python_version(),
            "device": f"{device.platform}:{getattr(device, 'device_kind', '')} x{jax.device_count()}",
            "cpu_count": os.cpu_count(), "host": platform.node(), "git_commit": git_commit(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(STARTED)),
            "wall_seconds": round(time.time() - STARTED, 2),
            "code_fingerprint": cache.code_fingerprint(), "cache": cache.stats(),
            "solves": regression.solve_stats(), "data": data.files_fingerprint()}


def collect_parameters(namespace, before):
    """The notebook's parameters: names defined in ``namespace`` (its globals) that were not in
    ``before`` (taken just above the parameters cell), with papermill's injected values."""
    return {k: v for k, v in namespace.items() if k not in before and not k.startswith("_")}


def write_json(path, obj):
    """Write ``obj`` as JSON atomically."""
    with atomic_write(path) as f:
        json.dump(plain(obj), f, indent=1)


def save(output_dir, parameters, results, outcomes=None):
    """Write ``output_dir/results.json`` with parameters, results and :func:`metadata`, and the
    per-example ``outcomes`` ({name: array}, float16: 0, 1 or NaN) to ``outcomes.npz``, from which
    every verdict can be recomputed."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "results.json")
    if outcomes is not None:
        with atomic_write(os.path.join(output_dir, "outcomes.npz"), "wb") as f:
            np.savez_compressed(f, **{k: np.asarray(v).astype(np.float16) for k, v in outcomes.items()})
    write_json(path, {"parameters": parameters, "results": results, "meta": metadata()})
    return path


def load(path):
    with open(path) as f:
        return json.load(f)
