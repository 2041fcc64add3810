"""params.check / params.build: names and types (with papermill's strings), then each owner's
value checks (Setup: data, network, recipe, thresholds; the section: its own), sizes against the data."""
import textwrap

import pytest

from ntk_utils import data, downloads, parameters_cell, params, setup

TOY = textwrap.dedent('''\
    # %% tags=["parameters"]
    n_values = [64, 128]
    lr = 2.0
    batch_size = 128
    early_stopping = True
    task = "synthetic-bin"
    seeds = [0, 1]
    variants = ["gd", "lr_high"]
    options = {"a": 1}
    note = "free text"
    classes = None
    output_dir = "out"

    # %%
    ''')


@pytest.fixture
def notebooks(tmp_path, monkeypatch):
    """A folder with a toy notebook (no section module: names and types only) beside the shipped ones."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "toy.py").write_text(TOY)
    for shipped in parameters_cell.NOTEBOOKS_DIR.glob("*.py"):
        (folder / shipped.name).write_text(shipped.read_text())
    monkeypatch.setattr(parameters_cell, "NOTEBOOKS_DIR", folder)
    return folder


SYNTHETIC = {"task": "synthetic-bin", "n_test": 100, "val_size": 100, "n_values": [64, 256]}   # generated: 3942 training, 982 test samples (184 for one pair)


def refused(notebook, parameters):
    with pytest.raises(params.ParameterError) as e:
        params.check(notebook, parameters)
    return str(e.value)


# ---------------------------------------------------------------------------- names and types

def test_papermill_strings_are_parsed_and_values_coerced(notebooks):
    out = params.check("toy", {"n_values": "[64, 128, 256]", "lr": 2, "early_stopping": "false",
                               "options": "{b: 2}", "note": "[not parsed]", "classes": "[[3], [5]]"})
    assert out == {"n_values": [64, 128, 256], "lr": 2.0, "early_stopping": False, "options": {"b": 2},
                   "note": "[not parsed]", "classes": [[3], [5]]}
    assert isinstance(out["lr"], float)
    assert params.check("toy", {}) == {}


@pytest.mark.parametrize("name, value, message", [
    ("n_values", "[64, 128", "n_values: '[64, 128' is not a list (could not parse it)"),
    ("n_values", "64", "n_values: '64' is not a list"),
    ("lr", "fast", "lr: 'fast' is not a float"),
    ("lr", True, "lr: True is a bool, expected float"),
    ("batch_size", 12.0, "batch_size: 12.0 is a float, expected int"),
    ("batch_size", None, "batch_size: None, expected int (for full-batch training set full_batch: true)"),
    ("early_stopping", 1, "early_stopping: 1 is an int, expected bool"),
    ("task", 3, "task: 3 is an int, expected str"),
    ("variants", ["gd", 3], "variants: ['gd', 3] holds 3, expected items of type str"),
    ("seeds", "[0, x]", "seeds: [0, 'x'] holds 'x', expected items of type int"),
])
def test_wrong_types_refused_by_name(notebooks, name, value, message):
    assert refused("toy", {name: value}) == f"toy: invalid parameters: {message}"


def test_unknown_names_refused_with_the_notebooks_parameters(notebooks):
    text = refused("toy", {"learning_rate": 0.1})
    assert text.startswith("toy: invalid parameters: learning_rate: not a parameter of toy (its parameters: [")
    assert "'lr'" in text and "'n_values'" in text
    assert "no notebook 'nope'" in refused("nope", {})
    # a section notebook has the shared names too, and its own
    text = refused("01_data_scaling", {"m_values": [1, 2]})
    assert "'classes'" in text and "'lr'" in text and "'n_values'" in text and "'alpha_margin'" in text


def test_every_problem_listed_in_one_message(notebooks):
    text = refused("01_data_scaling", {"task": "synthetic-bin", "lr": 0.0, "seeds": "[0, 0]", "n_test": 0})
    assert text.count(";") == 2
    assert text.startswith("01_data_scaling: invalid parameters: ")
    for part in ("lr must be > 0", "seeds must not repeat a value", "n_test must be an integer >= 1"):
        assert part in text, text
    assert "\n" not in text and isinstance(params.ParameterError(""), ValueError)


# ---------------------------------------------------------------------------- values, by their owners

@pytest.mark.parametrize("name, value, message", [
    ("batch_size", 0, "batch_size must be an integer >= 1"),                   # train.TrainConfig
    ("lr", -1.0, "lr must be > 0"),
    ("momentum", 1.0, "momentum must be in [0, 1)"),
    ("schedule", "step", "schedule must be 'cosine' or 'constant'"),
    ("n_boot", 99, "n_boot must be an integer >= 100"),                       # claims.Thresholds
    ("underfit_train_error", 0.0, "underfit_train_error must be in (0, 1]"),
    ("improve_fraction", 1.5, "improve_fraction must be in (0, 1]"),
    ("alpha_margin", -0.1, "alpha_margin must be >= 0"),
    ("alike_tolerance", 0.0, "alike_tolerance must be > 0"),
    ("track_tolerance", 1.0, "track_tolerance must be > 1"),
    ("task", "imagenet", "unknown task 'imagenet'"),                            # data
    ("image_size", 7, "image_size must divide 32"),
    ("classes", [[1], [1]], "classes must be two non-empty, disjoint lists"),
    ("parameterization", "mup", "parameterization must be one of"),           # models
    ("arch", "resnet", "unknown architecture 'resnet'"),
    ("depth", 6, "Myrtle depth must be one of"),
    ("image_size", 2, "does not fit the 1x1 feature map"),                    # Arch.check_image_size
    ("n_test", 0, "n_test must be an integer >= 1"),                          # Setup
    ("seeds", [], "seeds must be a non-empty list of integers >= 0"),
    ("seeds", [-1], "seeds must be a non-empty list of integers >= 0"),
    ("data_seeds", [1, 1], "data_seeds must not repeat a value"),
    ("width", 0, "width must be an integer >= 1"),
    ("ridge", -1e-3, "ridge must be >= 0"),
    ("n_values", [64], "n_values: [64] must be a list of at least 2 positive integers"),   # the section
    ("n_values", [64, 64], "must be increasing"),
    ("n_values", [0, 64], "at least 2 positive integers"),
])
def test_out_of_range_values_refused_by_their_owner(notebooks, name, value, message):
    text = refused("01_data_scaling", {"task": "synthetic-bin", name: value})
    assert message in text, text


def test_early_stopping_needs_a_validation_set(notebooks):
    assert "val_size must be > 0 when early_stopping is true" in \
        refused("01_data_scaling", {**SYNTHETIC, "val_size": 0, "early_stopping": True})
    assert params.check("01_data_scaling", {**SYNTHETIC, "val_size": 0}) == {**SYNTHETIC, "val_size": 0}


@pytest.mark.parametrize("parameters", [
    {"momentum": 0.0}, {"improve_fraction": 1.0}, {"alpha_margin": 0.0}, {"n_boot": 100}, {"seeds": [3, 0]},
    {"image_size": 32}, {"parameterization": "ntk"}, {"width": 1}, {"classes": [[3], [5, 7]]},
])
def test_edge_values_accepted(notebooks, parameters):
    assert params.check("01_data_scaling", {**SYNTHETIC, **parameters}) == {**SYNTHETIC, **parameters}


def test_build_gives_the_setup_and_the_sections_options(notebooks):
    built, options = params.build("01_data_scaling", {**SYNTHETIC, "lr": "0.2", "classes": "[[3], [5]]",
                                                      "n_values": "[16, 32]", "output_dir": "x"})
    assert options == {"n_values": [16, 32]}
    assert built.recipe.lr == 0.2 and built.classes == [[3], [5]] and built.seeds == (0, 1)
    assert built.parameters(effective=True)["classes"] == [[3], [5]]
    assert setup.Setup().parameters(effective=True)["classes"] == [[0], [1]]   # cifar10-pair: airplane vs automobile
    none, options = params.build("primer", {"n_train": 32})
    assert none is None and options["n_train"] == 32 and "output_dir" not in options


# ---------------------------------------------------------------------------- sizes

def test_sizes_against_what_the_task_holds(notebooks):
    n_train, n_test = data.available("synthetic-bin")           # generated: no files needed
    assert (n_train, n_test) == (3942, 982)
    ok = {"task": "synthetic-bin", "val_size": 100}
    assert params.check("01_data_scaling", {**ok, "n_values": [64, n_train - 100], "n_test": n_test})
    text = refused("01_data_scaling", {**ok, "n_values": [64, n_train - 99]})
    assert f"synthetic-bin has {n_train} training samples of its classes; this needs {n_train + 1} " \
           f"(val_size 100 + pool {n_train - 99})" in text
    assert f"n_test: {n_test + 1} but synthetic-bin has only {n_test} test samples" in \
        refused("01_data_scaling", {**ok, "n_test": n_test + 1})


def test_missing_data_is_not_downloaded_to_check(notebooks, tmp_path, monkeypatch):
    monkeypatch.setenv("NTK_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(downloads, "download", lambda *a, **k: pytest.fail("the check must not download"))
    assert params.check("01_data_scaling", {"task": "cifar10-pair", "n_values": [64, 10 ** 7], "n_test": 10 ** 7})
    assert not (tmp_path / "empty").exists() or not any((tmp_path / "empty").iterdir())


def test_real_cifar10_sizes(notebooks, real_data_dir, monkeypatch):
    monkeypatch.setenv("NTK_DATA_DIR", str(real_data_dir))
    assert data.available("cifar10-pair") == (10000, 2000)
    assert data.available("cifar10-bin") == (50000, 10000)
    assert data.available("cifar10-bin", classes=((3,), (5, 7))) == (10000, 2000)
    data.reset_files_read()                          # labels only: not recorded as data a run read
    data._split_labels.cache_clear()
    data.available("cifar10-pair")
    assert data.files_fingerprint()["files"] == {}
    assert params.check("01_data_scaling", {"n_test": 2000, "n_values": [64, 9500]})
    text = refused("01_data_scaling", {"n_test": 2001, "n_values": [64, 9501]})
    assert "cifar10-pair has 10000 training samples of its classes; this needs 10001" in text
    assert "n_test: 2001 but cifar10-pair has only 2000 test samples" in text
    assert "this needs" in refused("01_data_scaling", {"classes": [[3], [5]], "n_values": [64, 9501]})


# ---------------------------------------------------------------------------- the shipped notebooks

@pytest.mark.parametrize("notebook", ["00_summary", "primer", "01_data_scaling", "02_width", "03_hyperparameters",
                                      "04_after_kernel", "05_kernel_dynamics"])
def test_shipped_notebook_defaults_pass(notebook):
    defaults = params.notebook_defaults(notebook)
    assert params.check(notebook, defaults) == defaults | {k: float(v) for k, v in defaults.items()
                                                           if isinstance(v, float)}


# ----------------------------------------------- the parameters cells, as papermill reads them

@pytest.mark.parametrize("stem", list(parameters_cell.SECTIONS))
def test_papermill_lists_every_parameter_with_its_help(stem, caplog):
    """`papermill --help-notebook` shows every parameter (the shared ones included), each with
    its default and a description, and none of the cell's lines fails to parse."""
    import jupytext
    from papermill.translators import PythonTranslator
    nb = jupytext.read(parameters_cell.notebook_path(stem))
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    with caplog.at_level("WARNING", logger="papermill"):
        listed = PythonTranslator.inspect(cell)
    assert not [r.message for r in caplog.records if "Unable to parse" in r.message]
    assert [p.name for p in listed] == list(dict.fromkeys(p.name for p in listed))   # each once
    assert {p.name for p in listed} == set(parameters_cell.notebook_defaults(stem))
    assert [p.name for p in listed if not p.help] == []
    defaults = parameters_cell.notebook_defaults(stem)
    assert all(eval(p.default) == defaults[p.name] for p in listed)   # the help shows the default in use


def test_shared_blocks_are_written_from_the_defaults(notebooks, capsys):
    """The shared parameters' lines are generated (one source of truth: Setup, TrainConfig,
    Thresholds): an edited line is found by --check and rewritten by the command."""
    assert parameters_cell.main(["--check"]) == 0
    path = notebooks / "01_data_scaling.py"
    shipped = path.read_text()
    path.write_text(shipped.replace("\nmomentum = 0.9 ", "\nmomentum = 0.5 ", 1))
    assert path.read_text() != shipped
    assert parameters_cell.main(["--check"]) == 1 and "out of date: 01_data_scaling" in capsys.readouterr().out
    assert parameters_cell.main([]) == 0 and path.read_text() == shipped
    help_of = parameters_cell.shared_help()
    assert set(help_of) == set(setup.NAMES) and all(help_of.values())
