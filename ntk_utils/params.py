"""One check of a notebook's parameters, used by the grid runner and by each notebook itself.

    setup, options = params.build("01_data_scaling", {"n_values": "[64, 128]", "lr": 2})
    # -> (Setup(..., recipe=TrainConfig(lr=2.0, ...)), {"n_values": [64, 128]}), or ParameterError

1. Names and types: ``ntk_utils.parameters_cell`` (the names a notebook declares, its defaults,
   values coerced to their types).
2. Values: each owner checks its own: ``Setup.from_parameters`` the shared ones (data, network,
   recipe, thresholds, seeds), the section's ``check(setup, **options)`` its own, including the
   sample sizes against what the task's data holds (skipped when the data files are absent:
   nothing is downloaded here).

The notebooks call ``params.build`` right after their parameters cell, so a direct
``papermill -p`` run is checked as strictly as a grid cell.
"""
from ntk_utils import parameters_cell, sections, setup
from ntk_utils.parameters_cell import ParameterError, notebook_defaults  # noqa: F401  (the notebooks' names)


def check(notebook, parameters):
    """``parameters`` with values coerced to the notebook's types; raises ParameterError naming
    every unknown name, wrong type and value its owner refuses (see the module docstring)."""
    return _checked(notebook, parameters)[0]


def build(notebook, parameters):
    """(Setup or None, {option: value}) of a notebook run, checked as :func:`check` does: the
    notebook's Setup (None for the primer and the summary) and its own options (every name of its
    cell but the shared ones and ``output_dir``), defaults filled in."""
    return _checked(notebook, parameters)[1:]


def _checked(notebook, parameters):
    """(coerced values, Setup or None, options): names and types, then each owner's values, the
    Setup built once."""
    values, problems = parameters_cell.coerce(notebook, parameters)
    shared = options = None
    if not problems:
        merged, uses_setup = {**notebook_defaults(notebook), **values}, parameters_cell.uses_setup(notebook)
        options = {k: v for k, v in merged.items() if k != "output_dir" and not (uses_setup and k in setup.NAMES)}
        try:
            shared = setup.Setup.from_parameters(merged) if uses_setup else None
        except ValueError as e:
            problems = [str(e)]
        else:
            problems = _section_problems(notebook, shared, options)
    if problems:
        raise ParameterError(f"{notebook}: invalid parameters: " + "; ".join(problems))
    return values, shared, options


def _section_problems(notebook, shared, options):
    """What the section's ``check`` refuses (nothing for a notebook of no section: names and types only)."""
    if notebook not in sections.NOTEBOOKS:
        return []
    section = sections.module(notebook)
    try:
        return section.check(shared, **options) if shared is not None else section.check(**options)
    except (TypeError, ValueError) as e:   # a value the section's check could not even read
        return [f"{type(e).__name__}: {e}"]
