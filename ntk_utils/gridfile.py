"""Grid files: what cells a grid has, their fingerprints, resources and the order they wait in.

A grid file (YAML) is data:

    name: quick                                           # the folder <root>/<name>/ (a plain folder name)
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

:func:`load_grid` reads it into :class:`Cell` s (notebook x parameter set), names and types
checked by ``ntk_utils.parameters_cell.coerce`` (the runner, ``grid.run``, then has each value
checked by its owner, ``params.check``, as each notebook does on itself), or refuses it with one
:class:`GridError` line (also a duplicated key, which YAML itself would silently drop). A cell's
fingerprint hashes its parameters and :func:`code_version`: equal fingerprints, equal results.

What cells share (a trained network, an eNTK, an infinite NTK: cache entries) is computed once,
by the first cell that needs it, because with ``--executor`` a cell waits for
(:func:`dependencies`):

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
"""
import dataclasses
import hashlib
import itertools
import json
import pathlib
import re

import yaml

from ntk_utils import cache, checks, parameters_cell

PACKAGE = pathlib.Path(__file__).resolve().parent
# The modules that run cells rather than compute their numbers: not in a cell's fingerprint.
RUNNER = ("grid.py", "gridfile.py", "cells.py", "executors.py", "reproduce.py")
GRID_KEYS = {"name", "defaults", "notebooks", "resources", "summary", "description"}
# A cell job's resources in the grid file: name -> (valid?, what it must be). The Slurm job gets
# them all; a local one only its timeout. `slurm` holds extra sbatch options (account, qos, gres, ...).
RESOURCES = {
    "gpus": (lambda v: checks.is_int(v) and v >= 0, "an integer >= 0"),
    "cpus": (lambda v: checks.is_int(v) and v >= 1, "an integer >= 1"),
    "mem_gb": (lambda v: checks.is_number(v) and v > 0, "a number > 0"),
    "timeout_min": (lambda v: checks.is_int(v) and v >= 1, "an integer >= 1"),
    "partition": (lambda v: isinstance(v, str) and v.strip() != "", "a partition name"),
    "slurm": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, (str, int, float, bool))
                                                    for k, x in v.items()), "a mapping of sbatch options to values"),
}
DEFAULT_RESOURCES = {"timeout_min": 24 * 60}   # submitit's own default is 5 min (Slurm), 2 min (local)
# What cells must agree on to share cache entries, besides a data draw (see dependencies()).
SAME_DATA = ("task", "classes", "image_size", "val_size")


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


def notebook_path(stem):
    try:
        return parameters_cell.notebook_path(stem)
    except parameters_cell.ParameterError as e:
        raise GridError(str(e)) from None


def code_version(stem):
    """Hash of the notebook's cells (their kinds and sources, :func:`notebook_cells_text`) and of
    the code of the ntk_utils sources it runs (their syntax trees without docstrings,
    ``cache.code_text``; sections included, the runner's modules RUNNER not): a change to what
    runs reruns the cell, a documentation edit in ntk_utils does not, and neither does the
    metadata header that Jupyter rewrites when it saves a notebook."""
    h = hashlib.sha256(notebook_cells_text(stem).encode())
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name not in RUNNER:
            h.update(str(path.relative_to(PACKAGE)).encode() + cache.code_text(path).encode())
    return h.hexdigest()


def notebook_cells_text(stem):
    """The notebook's cells as text: each cell's kind, tags and source (not the file's header)."""
    import jupytext
    nb = jupytext.read(notebook_path(stem))
    return "\n".join(f"{c.cell_type} {sorted(c.metadata.get('tags', []))}\n{c.source}" for c in nb.cells)


def cell_name(sweep_values):
    """The folder name of the cell of these sweep values, e.g. "variants=gd" ("default": none)."""
    if not sweep_values:
        return "default"
    text = ",".join(f"{k}={'+'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sweep_values.items())
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", text)


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (safe_load keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _UniqueKeyLoader.construct_mapping)


def _read_spec(path):
    """The grid file as a dict; every way it can be unreadable is one GridError line."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise GridError(f"no grid file {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GridError(f"cannot read grid file {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        spec = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or e
        if str(problem).startswith("duplicate key"):
            raise GridError(f"{path}: {problem} at line {mark.line + 1}: each key once") from None
        raise GridError(f"{path}: not valid YAML{where}: {problem}") from None
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


def _grid_name(spec, path):
    """The grid's name: its folder under --root, so a plain folder name (no path, not hidden)."""
    name = spec.get("name", path.stem)
    if not isinstance(name, (str, int)) or isinstance(name, bool) or not str(name) or str(name).startswith(".") \
            or any(c in str(name) for c in "/\\\0"):
        raise GridError(f"{path}: name: {name!r} must be a plain folder name (no '/', not empty, not starting "
                        f"with '.')")
    return str(name)


def load_grid(path):
    """(grid name, [Cell], summary notebook or None) from a grid file, fully validated."""
    path = pathlib.Path(path)
    spec = _read_spec(path)
    name = _grid_name(spec, path)
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
            defaults = parameters_cell.notebook_defaults(stem)
        except parameters_cell.ParameterError as e:
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
                parameters, problems = parameters_cell.coerce(stem, {**base, **values})   # the notebook's types
                if problems:
                    raise GridError(f"{stem}: invalid parameters: " + "; ".join(problems))
                name_of_cell = cell_name(values)
                if name_of_cell in seen:
                    raise GridError(f"{path}: notebooks: {stem}: two sweep values give the same cell "
                                    f"{stem}/{name_of_cell}: {seen[name_of_cell]} and {values}")
                seen[name_of_cell] = values
                fingerprint = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()
                                             + version.encode()).hexdigest()[:16]
                cells.append(Cell(stem, name_of_cell, parameters, fingerprint, step))
    if unused := set(shared) - used:
        raise GridError(f"{path}: defaults {sorted(unused)} are parameters of no notebook in the grid")
    _resources(spec, path)
    summary = spec.get("summary")
    if summary:
        notebook_path(summary)
    return name, cells, summary


# ------------------------------------------------------------------ resources

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


# --------------------------------------------------------------- dependencies

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
    full = {c.id: {**parameters_cell.notebook_defaults(c.notebook), **c.parameters} for c in cells}
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
