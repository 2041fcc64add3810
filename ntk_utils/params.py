"""One check of a notebook's parameters, used by the grid runner and by each notebook itself.

    setup, options = params.build("01_data_scaling", {"n_values": "[64, 128]", "lr": 2})
    # -> (Setup(..., recipe=TrainConfig(lr=2.0, ...)), {"n_values": [64, 128]}), or ParameterError

A section notebook's parameters are the shared ones (``ntk_utils.setup.Setup``, defaults there)
and its own: the names of its cell tagged ``parameters`` (a shared name set there is that
notebook's default, e.g. notebook 02's ``lr``). The primer and the summary have only their own.

1. Names: a name the notebook does not have is refused, with the list of those it has.
2. Types: every value must have the type of its default. A string where the default is a list,
   dict, int, float, bool or None (``papermill -p n_values "[64, 128]"`` passes text) is parsed
   as YAML and accepted when that gives the right type; an int where a float is expected is
   converted.
3. Values: each owner checks its own: ``Setup.from_parameters`` the shared ones (data, network,
   recipe, thresholds, seeds), the section's ``check(setup, **options)`` its own, including the
   sample sizes against what the task's data holds (skipped when the data files are absent:
   nothing is downloaded here).

The notebooks call ``params.build`` right after their parameters cell, so a direct
``papermill -p`` run is checked as strictly as a grid cell.
"""
import copy
import functools
import os
import pathlib

import yaml

from ntk_utils import sections, setup
from ntk_utils.paths import REPO_ROOT

NOTEBOOKS_DIR = pathlib.Path(os.environ.get("NTK_NOTEBOOKS_DIR", REPO_ROOT / "notebooks"))


class ParameterError(ValueError):
    """Parameters a notebook cannot run with; the message names every problem."""


# -------------------------------------------------------------------- notebooks

def notebook_path(stem):
    path = pathlib.Path(NOTEBOOKS_DIR) / f"{stem}.py"
    if not path.exists():
        known = sorted(p.stem for p in pathlib.Path(NOTEBOOKS_DIR).glob("*.py"))
        raise ParameterError(f"no notebook {stem!r}; notebooks: {known}")
    return path


@functools.lru_cache(maxsize=None)
def _defaults(path, _mtime_ns):
    import jupytext
    nb = jupytext.read(path)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{pathlib.Path(path).stem} must have exactly one cell tagged 'parameters', "
                             f"found {len(cells)}")
    namespace = {}
    exec(cells[0].source, namespace)  # the parameters cell holds plain literal assignments
    return {k: v for k, v in namespace.items() if not k.startswith("_")}


def cell_defaults(stem):
    """{name: default} of the notebook's cell tagged ``parameters`` (a fresh copy)."""
    path = notebook_path(stem)
    return copy.deepcopy(_defaults(str(path), path.stat().st_mtime_ns))


def notebook_defaults(stem):
    """{name: default} of every parameter of the notebook: the shared ones (if it is a section
    notebook) overridden by its own cell's."""
    shared = setup.Setup().parameters() if sections.uses_setup(stem) else {}
    return {**shared, **cell_defaults(stem)}


# ------------------------------------------------------------------------ types

def _type_name(value):
    return type(value).__name__


def _a(value):
    name = _type_name(value)
    return ("an " if name[0] in "aeiou" else "a ") + name


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _has_type(default, value):
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return _is_number(value)
    return isinstance(value, type(default))


def _coerce(default, value):
    """(value of the default's type, None) or (None, why not)."""
    if default is None:                # no default type to hold it to; text may be YAML (classes)
        return (yaml.safe_load(value) if isinstance(value, str) else value), None
    if value is None:
        return None, f"None, expected {_type_name(default)}"
    if isinstance(value, str) and not isinstance(default, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return None, f"{value!r} is not {_a(default)} (could not parse it)"
        if isinstance(default, float) and isinstance(parsed, str):
            try:                        # YAML 1.1 reads "1e-3" as text
                parsed = float(parsed)
            except ValueError:
                pass
        if not _has_type(default, parsed):
            return None, f"{value!r} is not {_a(default)}"
        value = parsed
    elif not _has_type(default, value):
        return None, f"{value!r} is {_a(value)}, expected {_type_name(default)}"
    if isinstance(default, float):
        value = float(value)
    if isinstance(default, list) and default:  # a list of one kind of item: items of that kind
        kinds = {type(d) for d in default}
        if len(kinds) == 1 and (bad := [v for v in value if not _has_type(default[0], v)]):
            return None, f"{value!r} holds {bad[0]!r}, expected items of type {_type_name(default[0])}"
        if kinds == {float}:
            value = [float(v) for v in value]
    return value, None


# ------------------------------------------------------------------------ check

def check(notebook, parameters):
    """``parameters`` with values coerced to the notebook's types; raises ParameterError naming
    every unknown name, wrong type and value its owner refuses (see the module docstring)."""
    defaults = notebook_defaults(notebook)
    problems, values = [], {}
    for name, value in parameters.items():
        if name not in defaults:
            problems.append(f"{name}: not a parameter of {notebook} (its parameters: {sorted(defaults)})")
            continue
        value, why = _coerce(defaults[name], value)
        if why:
            if name == "batch_size" and parameters[name] is None:
                why += " (for full-batch training set full_batch: true)"
            problems.append(f"{name}: {why}")
        else:
            values[name] = value
    if not problems:
        problems = _value_problems(notebook, {**defaults, **values})
    if problems:
        raise ParameterError(f"{notebook}: invalid parameters: " + "; ".join(problems))
    return values


def build(notebook, parameters):
    """(Setup or None, {option: value}) of a notebook run: :func:`check`, then the notebook's
    Setup (None for the primer and the summary) and its own options (every name of its cell but
    the shared ones and ``output_dir``), defaults filled in."""
    merged = {**notebook_defaults(notebook), **check(notebook, parameters)}
    return _split(notebook, merged)


def _split(notebook, merged):
    uses_setup = sections.uses_setup(notebook)
    options = {k: v for k, v in merged.items() if k != "output_dir" and not (uses_setup and k in setup.NAMES)}
    return (setup.Setup.from_parameters(merged) if uses_setup else None), options


def _value_problems(notebook, merged):
    if notebook not in sections.NOTEBOOKS:   # a notebook of no section: names and types only
        return []
    section = sections.module(notebook)
    try:
        shared, options = _split(notebook, merged)
    except ValueError as e:
        return [str(e)]
    try:
        return section.check(shared, **options) if shared is not None else section.check(**options)
    except (TypeError, ValueError) as e:   # a value the section's check could not even read
        return [f"{type(e).__name__}: {e}"]


# --------------------------------------------------------------- value checks
# Small checks the sections share: each returns a list of problems (empty when fine).

def sizes(name, value):
    """An increasing list of at least 2 positive integers (training-set sizes, widths...)."""
    if not (isinstance(value, list) and len(value) >= 2 and all(_is_int(n) and n > 0 for n in value)):
        return [f"{name}: {value!r} must be a list of at least 2 positive integers"]
    return [] if all(a < b for a, b in zip(value, value[1:])) else [f"{name}: {value!r} must be increasing"]


def positive(name, value, low=1):
    """An integer >= low, or a non-empty list of them."""
    ok = (_is_int(value) and value >= low) if not isinstance(value, list) else \
        bool(value) and all(_is_int(v) and v >= low for v in value)
    return [] if ok else [f"{name}: {value!r} must be an integer >= {low} (or a non-empty list of them)"]


def one_of(name, value, allowed):
    return [] if value in allowed else [f"{name}: {value!r} must be one of {list(allowed)}"]
