"""ntk_utils.setup: the shared parameters, their one set of defaults, and the places that must agree."""
import dataclasses
import pathlib

import numpy as np
import pytest
import yaml

from ntk_utils import claims, parameters_cell, params, sections, setup, train

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECTION_NOTEBOOKS = [nb for nb in sections.NOTEBOOKS if sections.uses_setup(nb)]
# Where a notebook's default for a shared parameter deliberately differs from Setup's.
DELIBERATE = {"02_width": {"parameterization": "ntk", "lr": 2.0}}   # width limits: NTK parameterization


def test_setup_defaults_are_the_owners_defaults():
    defaults = setup.Setup().parameters()
    assert {k: defaults[k] for k in setup.RECIPE} == {k: getattr(train.TrainConfig(), k) for k in setup.RECIPE}
    assert {k: defaults[k] for k in setup.THRESHOLDS} == dataclasses.asdict(claims.Thresholds())
    assert set(setup.NAMES) == set(defaults) and len(setup.NAMES) == len(defaults)
    assert setup.Setup.from_parameters(defaults) == setup.Setup()      # the flat form round-trips


@pytest.mark.parametrize("notebook", SECTION_NOTEBOOKS)
def test_notebooks_do_not_restate_the_shared_defaults(notebook):
    """A section notebook's parameters cell starts with its own parameters; a shared name appears
    there only where the notebook deliberately differs from Setup (and then with that value). The
    shared block below them is generated from Setup (tests/test_params.py checks it is current)."""
    own = {}
    exec(parameters_cell._own_part(notebook), own)
    shared = {k: v for k, v in own.items() if k in setup.NAMES}
    assert shared == DELIBERATE.get(notebook, {})
    assert all(setup.Setup().parameters()[k] != v for k, v in shared.items())


@pytest.mark.parametrize("grid_file", sorted((ROOT / "parameters").glob("*.yaml")), ids=lambda p: p.stem)
def test_grid_files_state_only_what_they_change(grid_file):
    """A shared value in a grid file differs from what would apply without it (Setup's default,
    the notebook's own default, or the grid's defaults), so a grid cannot silently pin an old default."""
    spec = yaml.safe_load(grid_file.read_text())
    base = setup.Setup().parameters()
    restated = [f"defaults: {k}" for k, v in (spec.get("defaults") or {}).items() if k in base and v == base[k]]
    for notebook, entry in spec["notebooks"].items():
        entry = entry or {}
        given = entry.get("params") or {} if {"params", "sweep"} & set(entry) else entry
        inherited = {**params.notebook_defaults(notebook), **(spec.get("defaults") or {})}
        restated += [f"{notebook}: {k}" for k, v in given.items() if k in base and k in inherited and v == inherited[k]]
    assert not restated, f"{grid_file.name} restates defaults: {restated}"


def test_owners_refuse_their_values():
    for change, message in [({"lr": 0.0}, "lr must be > 0"), ({"alpha_margin": -1.0}, "alpha_margin must be >= 0"),
                            ({"task": "mnist"}, "unknown task"), ({"classes": [[1], [1]]}, "disjoint"),
                            ({"arch": "cnn5", "image_size": 4}, "does not fit"), ({"seeds": [0, 0]}, "repeat")]:
        with pytest.raises(ValueError, match=message):
            setup.Setup.from_parameters(change)


def test_classes_reach_the_data_the_titles_and_the_record(monkeypatch, tmp_path):
    monkeypatch.setenv("NTK_CACHE_DIR", str(tmp_path))
    s = setup.Setup.from_parameters({"task": "synthetic-bin", "classes": [[3], [5]], "n_test": 50, "val_size": 10})
    default = setup.Setup.from_parameters({"task": "synthetic-bin", "n_test": 50, "val_size": 10})
    (task,), (other,) = s.tasks(40), default.tasks(40)
    assert task.x.shape == (40, 8, 8, 3) and task.classes == [[3], [5]]
    assert not np.allclose(task.x, other.x)
    assert "class 3 vs class 5" in s.title() and "class 3 vs class 5" in s.describe()
    assert s.parameters(effective=True)["classes"] == [[3], [5]]
    assert default.parameters(effective=True)["classes"] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    fresh_x, fresh_y = task.fresh(20)
    assert fresh_x.shape == (20, 8, 8, 3) and set(np.unique(fresh_y)) <= {-1.0, 1.0}


def test_network_and_recipe():
    s = setup.Setup.from_parameters({"width": 8, "lr": 0.3, "parameterization": "ntk"})
    assert s.net.name == "myrtle5" and s.net.parameterization == "ntk"
    assert s.network(arch="cnn5", width=2).name == "cnn5" and s.recipe.lr == 0.3 and s.recipe.momentum == 0.9
    assert s.runs == "1x2 runs" and "few" not in s.caveats("")[0] or "Intervals resample only" in s.caveats("")[0]
