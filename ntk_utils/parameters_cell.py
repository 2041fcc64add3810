"""A notebook's parameters cell: where the notebooks are, the names each declares with their
defaults, and values coerced to the types of those defaults.

    defaults = parameters_cell.notebook_defaults("01_data_scaling")   # {name: default}
    values, problems = parameters_cell.coerce("01_data_scaling", {"n_values": "[64, 128]"})

A section notebook's parameters are the shared ones (``ntk_utils.setup.Setup``, defaults there)
and its own: the names of its cell tagged ``parameters`` (a shared name set there is that
notebook's default, e.g. notebook 02's ``lr``). The primer and the summary have only their own.

1. Names: a name the notebook does not have is refused, with the list of those it has.
2. Types: every value must have the type of its default. A string where the default is a list,
   dict, int, float, bool or None (``papermill -p n_values "[64, 128]"`` passes text) is parsed
   as YAML and accepted when that gives the right type; an int where a float is expected is
   converted.

What the values mean is checked by their owners (``ntk_utils.params``). This module knows no
section: the grid-file reader (``gridfile``) uses it to name and fingerprint cells without
importing the sections, whose summary reads grid files.
"""
import copy
import json
import functools
import os
import pathlib

import yaml

from ntk_utils import checks, setup
from ntk_utils.paths import NOTEBOOKS

# Which section module (ntk_utils/sections/<name>.py) computes each notebook, in the paper's order.
SECTIONS = {"primer": "primer", "01_data_scaling": "data_scaling", "02_width": "width",
            "03_hyperparameters": "hyperparameters", "04_after_kernel": "after_kernel",
            "05_kernel_dynamics": "kernel_dynamics", "00_summary": "summary"}
# Sections run on a shared ntk_utils.setup.Setup; the primer and the summary have their own parameters.
WITHOUT_SETUP = ("primer", "summary")


def uses_setup(notebook):
    """Whether the notebook's parameters include the shared Setup (the section notebooks)."""
    return notebook in SECTIONS and SECTIONS[notebook] not in WITHOUT_SETUP


NOTEBOOKS_DIR = pathlib.Path(os.environ.get("NTK_NOTEBOOKS_DIR", NOTEBOOKS))   # a wheel: inside the package


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
    shared = setup.Setup().parameters() if uses_setup(stem) else {}
    return {**shared, **cell_defaults(stem)}


# ------------------------------------------------------------------------ types

def _type_name(value):
    return type(value).__name__


def _a(value):
    name = _type_name(value)
    return ("an " if name[0] in "aeiou" else "a ") + name


def _has_type(default, value):
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return checks.is_number(value)
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


def coerce(notebook, parameters):
    """({name: value coerced to its default's type}, [problems]): unknown names and wrong types."""
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
    return values, problems


# ------------------------------------------------------- the shared block, generated

CELL_MARKER = '# %% tags=["parameters"]\n'
SHARED_MARKER = ("# The shared parameters: the defaults of ntk_utils.setup.Setup, train.TrainConfig and\n"
                 "# claims.Thresholds, written by `python -m ntk_utils.parameters_cell` (do not edit here).\n")


def shared_help():
    """{name: one-line description} of every shared parameter: the comment beside its field in
    Setup, TrainConfig or Thresholds (papermill shows it as the parameter's help)."""
    import inspect
    import re
    from ntk_utils import claims, train
    out = {}
    for cls in (setup.Setup, train.TrainConfig, claims.Thresholds):
        for name, comment in re.findall(r"^    (\w+): [^=\n]+=[^#\n]+#\s*(.+)$", inspect.getsource(cls), re.M):
            out[name] = comment.strip()
    return {name: out.get(name, "") for name in setup.NAMES}


def _literal(value):
    return json.dumps(value) if isinstance(value, str) else repr(value)


def shared_block(stem):
    """The text that follows SHARED_MARKER in a section notebook's parameters cell: one line
    ``name = default  # help`` per shared parameter the notebook does not set itself above it
    (papermill reads one "=" per line: a help text holds none)."""
    own = _own_part(stem)
    namespace = {}
    exec(own, namespace)
    helps = shared_help()
    lines = [f"{name} = {_literal(value)}" for name, value in setup.Setup().parameters().items()
             if name not in namespace]
    width = max(len(line) for line in lines)
    return "".join(f"{line.ljust(width)}  # {helps[line.split(' = ')[0]]}\n" for line in lines)


def _cell_span(text, stem):
    start = text.index(CELL_MARKER) + len(CELL_MARKER) if CELL_MARKER in text else None
    if start is None:
        raise ParameterError(f"{stem} has no line {CELL_MARKER.strip()!r}")
    end = text.find("\n# %%", start)
    return start, (len(text) if end < 0 else end + 1)


def _own_part(stem):
    text = notebook_path(stem).read_text()
    start, end = _cell_span(text, stem)
    return text[start:end].split(SHARED_MARKER)[0].rstrip("\n") + "\n"


def written_cell(stem):
    """The notebook's text with its parameters cell's shared block as :func:`shared_block` writes it."""
    text = notebook_path(stem).read_text()
    start, end = _cell_span(text, stem)
    return text[:start] + _own_part(stem) + SHARED_MARKER + shared_block(stem) + "\n" + text[end:].lstrip("\n")


def main(argv=None):
    """``python -m ntk_utils.parameters_cell [--check]``: write (or check) the shared block of
    every section notebook's parameters cell."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m ntk_utils.parameters_cell", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="only say which notebooks are out of date (exit 1)")
    args = parser.parse_args(argv)
    stale = []
    for stem in (s for s in SECTIONS if uses_setup(s)):
        path, text = notebook_path(stem), written_cell(stem)
        if path.read_text() != text:
            stale.append(stem)
            if not args.check:
                path.write_text(text)
    verb = "out of date" if args.check else "written"
    print(f"{verb}: {', '.join(stale)}" if stale else "every parameters cell is current")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
