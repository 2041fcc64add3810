"""One check of a notebook's parameters, used by the grid runner and by each notebook itself.

    values = params.check("01_data_scaling", {"n_values": "[64, 128]", "lr": 2})
    # -> {"n_values": [64, 128], "lr": 2.0}, or ParameterError naming every problem

The notebook's own ``parameters`` cell is the reference: a name it does not define is refused
(with the list of the names it has), and every value must have the type of the default there.
A string where the default is a list, dict, int, float or bool (``papermill -p n_values
"[64, 128]"`` passes the text) is parsed as YAML and accepted when that gives the right type;
an int where a float is expected is converted. Then the names whose meaning is shared by the
notebooks (RULES below) have their values checked, and the sample sizes are compared with what
the task's data holds (``data.available``; skipped when the data files are not there: nothing
is downloaded here). Names no rule knows are only type-checked.

The notebooks call this right after their parameters cell::

    globals().update(params.check("01_data_scaling", parameters))

so a direct ``papermill -p`` run is checked as strictly as a grid cell.
"""
import fnmatch
import functools
import os
import pathlib

import yaml

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


def notebook_defaults(stem):
    """{name: default} from the notebook's cell tagged ``parameters`` (a fresh copy)."""
    import copy
    path = notebook_path(stem)
    return copy.deepcopy(_defaults(str(path), path.stat().st_mtime_ns))


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
    if default is None:                # no default type to hold it to
        return value, None
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


# ------------------------------------------------------------------------ rules
# A rule takes (value, all parameters) and returns what is wrong, or None.

def _one_of(*allowed):
    return lambda v, p: None if v in allowed else f"must be one of {list(allowed)}"


def _task(v, p):
    from ntk_utils import data
    return None if v in data.TASKS else f"unknown task; tasks: {list(data.TASKS)}"


def _int_at_least(low):
    return lambda v, p: None if _is_int(v) and v >= low else f"must be an integer >= {low}"


def _number(low, high=None, low_open=False, high_open=False):
    text = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}{')' if high_open or high is None else ']'}"

    def rule(v, p):
        ok = _is_number(v) and (v > low if low_open else v >= low) and (
            high is None or (v < high if high_open else v <= high))
        return None if ok else f"must be a number in {text}"
    return rule


def _sizes(v, p):
    if not (isinstance(v, list) and len(v) >= 2 and all(_is_int(n) and n > 0 for n in v)):
        return "must be a list of at least 2 positive integers"
    return None if all(a < b for a, b in zip(v, v[1:])) else "must be increasing"


def _positive_ints(v, p):
    ok = _is_int(v) and v > 0 if not isinstance(v, list) else v and all(_is_int(w) and w > 0 for w in v)
    return None if ok else "must be a positive integer or a non-empty list of them"


def _seed_list(v, p):
    if not (isinstance(v, list) and v and all(_is_int(s) and s >= 0 for s in v)):
        return "must be a non-empty list of integers >= 0"
    return None if len(set(v)) == len(v) else "must not repeat a seed"


def _val_size(v, p):
    if not (_is_int(v) and v >= 0):
        return "must be an integer >= 0"
    return "must be > 0 when early_stopping is true" if p.get("early_stopping") is True and v == 0 else None


# name (or fnmatch pattern) -> rule, for the names whose meaning all notebooks share.
RULES = {
    "task": _task, "svhn_task": _task, "svhn_fallback_task": _task,
    "image_size": _one_of(4, 8, 16, 32),
    "parameterization": _one_of("standard", "ntk"),
    "n_values": _sizes, "m_values": _sizes,
    "m_fixed": _positive_ints,
    "n_test": _int_at_least(1), "n_train": _int_at_least(1),
    "n_fixed": _int_at_least(1), "n_fit": _int_at_least(1),
    "val_size": _val_size,
    "batch_size": _int_at_least(1),          # None is refused: no silent full batch (see full_batch)
    "seeds": _seed_list, "data_seeds": _seed_list,
    "seed": _int_at_least(0), "data_seed": _int_at_least(0),
    "width": _positive_ints, "width_*": _positive_ints, "widths": _positive_ints,
    "widths_*": _positive_ints, "*_widths": _positive_ints,
    "depth": _int_at_least(1), "epochs": _int_at_least(1), "min_steps": _int_at_least(0),
    "steps": _int_at_least(1),
    "lr": _number(0, low_open=True), "lr_*": _number(0, low_open=True), "*_lr": _number(0, low_open=True),
    "momentum": _number(0, 1, high_open=True),
    "ridge": _number(0),
    "underfit_train_error": _number(0, 1, low_open=True), "improve_fraction": _number(0, 1, low_open=True),
    "alpha_margin": _number(0),
    "alike_tolerance": _number(0, low_open=True),
    "track_tolerance": _number(1, low_open=True),
    "n_boot": _int_at_least(100),
    "n_snapshots": _int_at_least(1), "first_snapshot": _int_at_least(1),
}


def rule_for(name):
    """The rule of a parameter name: its own entry, else the first pattern that matches, else None."""
    if name in RULES:
        return RULES[name]
    return next((rule for pattern, rule in RULES.items() if "*" in pattern and fnmatch.fnmatchcase(name, pattern)),
                None)


# ------------------------------------------------------------------------ sizes

TRAINING_SIZES = ("n_values", "m_values", "m_fixed", "n_train", "n_fixed", "n_fit")
# tasks other than `task` that a notebook loads, and the sizes it draws from them
SIDE_TASKS = {"svhn_task": ("n_fixed",), "svhn_fallback_task": ("n_fixed",)}


def _size(value):
    if _is_int(value) and value > 0:
        return value
    if isinstance(value, list) and value and all(_is_int(v) and v > 0 for v in value):
        return max(value)
    return None


def _available(task, classes):
    """data.available, or None when the data files are not in the data cache."""
    from ntk_utils import data
    try:
        return data.available(task, classes)
    except (data.DataError, OSError, ValueError):
        return None


def _size_problems(p):
    """Training and test sizes against what each task the notebook loads holds."""
    problems = []
    sizes = {name: s for name in TRAINING_SIZES if name in p and (s := _size(p[name])) is not None}
    val = p.get("val_size") if _is_int(p.get("val_size")) else 0
    n_test = p.get("n_test") if _is_int(p.get("n_test")) else None
    tasks = [("task", tuple(sizes))]
    svhn_missing = "svhn_task" in p and _available(p["svhn_task"], None) is None
    for name, names in SIDE_TASKS.items():
        if name in p and (name != "svhn_fallback_task" or svhn_missing):   # the fallback runs only then
            tasks.append((name, tuple(n for n in names if n in sizes)))
    for name, names in tasks:
        task = p.get(name)
        if rule_for(name)(task, p) or not names and n_test is None:
            continue
        have = _available(task, p.get("classes"))
        if have is None:
            continue
        n_train, n_test_have = have
        if names:
            biggest = max(sizes[n] for n in names)
            # notebooks with fresh samples after the pool (04: n_fit; 05: n_train): count the pool twice
            fresh = name == "task" and ("n_fit" in p or "n_snapshots" in p)
            need = val + biggest * (2 if fresh else 1)
            if need > n_train:
                how = f"val_size {val} + " * bool(val) + ("2 x " if need - val > biggest else "") + \
                    f"largest of {', '.join(names)} ({biggest})"
                problems.append(f"{name}: {task} has {n_train} training samples, this needs {need} ({how})")
        if n_test is not None and n_test > n_test_have:
            problems.append(f"n_test: {n_test} but {task} ({name}) has only {n_test_have} test samples")
    return problems


# ------------------------------------------------------------------------ check

def check(notebook, parameters):
    """``parameters`` with values coerced to the notebook's types; raises ParameterError naming
    every unknown name, wrong type, out-of-range value and size the data cannot give."""
    defaults = notebook_defaults(notebook)
    problems, values = {}, {}      # name -> what is wrong, in the order given
    for name, value in parameters.items():
        if name not in defaults:
            problems[name] = f"not a parameter of {notebook} (its parameters: {sorted(defaults)})"
            continue
        value, why = _coerce(defaults[name], value)
        if why:
            if name == "batch_size" and parameters[name] is None and "full_batch" in defaults:
                why += " (for full-batch training set full_batch: true)"
            problems[name] = why
        else:
            values[name] = value
    merged = {**defaults, **values}
    checked = [*values] + ["val_size"] * ("early_stopping" in values and "val_size" in merged and "val_size" not in values)
    for name in checked:
        if (rule := rule_for(name)) and (why := rule(merged[name], merged)):
            problems[name] = f"{merged[name]!r}: {why}"
    problems = [f"{name}: {why}" for name, why in sorted(problems.items(), key=lambda kv: [*parameters, kv[0]].index(kv[0]))]
    if not problems:
        problems = _size_problems(merged)
    if problems:
        raise ParameterError(f"{notebook}: invalid parameters: " + "; ".join(problems))
    return values
