"""params.check: types (with papermill's strings), value ranges, sizes against the data, unknown names."""
import textwrap

import pytest

from ntk_utils import data, params

TOY = textwrap.dedent('''\
    # %% tags=["parameters"]
    task = "synthetic-bin"
    image_size = 8
    n_values = [64, 128]
    m_values = [64, 128]
    n_test = 100
    seeds = [0, 1]
    data_seeds = [0]
    width = 16
    widths_sweep = [4, 8]
    lr = 2.0
    lr_high = 8.0
    no_momentum_lr = 10.0
    momentum = 0.9
    batch_size = 128
    early_stopping = True
    val_size = 100
    ridge = 0.0
    parameterization = "standard"
    underfit_train_error = 0.05
    improve_fraction = 0.5
    alpha_margin = 0.05
    alike_tolerance = 0.1
    track_tolerance = 2.0
    n_boot = 1000
    variants = ["gd", "lr_high"]
    options = {"a": 1}
    note = "free text"
    output_dir = "out"

    # %%
    ''')

SIZES = textwrap.dedent('''\
    # %% tags=["parameters"]
    task = "synthetic-bin"
    n_values = [64, 128]
    n_test = 100
    val_size = 100
    early_stopping = True
    {extra}

    # %%
    ''')


@pytest.fixture
def notebooks(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "toy.py").write_text(TOY)
    (folder / "fit.py").write_text(SIZES.format(extra="n_fit = 64"))          # draws fresh samples (04)
    (folder / "side.py").write_text(SIZES.format(extra='n_fixed = 64\nsvhn_task = "svhn-parity"\n'
                                                       'svhn_fallback_task = "synthetic-bin"'))
    monkeypatch.setattr(params, "NOTEBOOKS_DIR", folder)
    return folder


def refused(notebook, parameters):
    with pytest.raises(params.ParameterError) as e:
        params.check(notebook, parameters)
    return str(e.value)


# ---------------------------------------------------------------------------- types

def test_papermill_strings_are_parsed_and_values_coerced(notebooks):
    out = params.check("toy", {"n_values": "[64, 128, 256]", "lr": 2, "lr_high": "1e-3", "early_stopping": "false",
                               "val_size": "0", "options": "{b: 2}", "note": "[not parsed]", "momentum": "0.5"})
    assert out == {"n_values": [64, 128, 256], "lr": 2.0, "lr_high": 0.001, "early_stopping": False, "val_size": 0,
                   "options": {"b": 2}, "note": "[not parsed]", "momentum": 0.5}
    assert isinstance(out["lr"], float)
    assert params.check("toy", {}) == {}


@pytest.mark.parametrize("name, value, message", [
    ("n_values", "[64, 128", "n_values: '[64, 128' is not a list (could not parse it)"),
    ("n_values", "64", "n_values: '64' is not a list"),
    ("lr", "fast", "lr: 'fast' is not a float"),
    ("lr", True, "lr: True is a bool, expected float"),
    ("batch_size", 12.0, "batch_size: 12.0 is a float, expected int"),
    ("batch_size", None, "batch_size: None, expected int"),
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


def test_every_problem_listed_in_one_message(notebooks):
    text = refused("toy", {"lr": 0.0, "wide": 3, "seeds": "[0, 0]", "n_values": [128, 64]})
    assert text == ("toy: invalid parameters: lr: 0.0: must be a number in (0, inf); "
                    "wide: not a parameter of toy (its parameters: " + str(sorted(params.notebook_defaults("toy")))
                    + "); seeds: [0, 0]: must not repeat a seed; n_values: [128, 64]: must be increasing")
    assert "\n" not in text and isinstance(params.ParameterError(""), ValueError)


# ---------------------------------------------------------------------------- values

@pytest.mark.parametrize("name, value, message", [
    ("batch_size", 0, "must be an integer >= 1"),
    ("val_size", 0, "must be > 0 when early_stopping is true"),
    ("n_values", [64], "at least 2 positive integers"),
    ("n_values", [64, 64], "must be increasing"),
    ("n_values", [0, 64], "at least 2 positive integers"),
    ("m_values", [128, 64], "must be increasing"),
    ("n_test", 0, "must be an integer >= 1"),
    ("seeds", [], "non-empty list of integers >= 0"),
    ("seeds", [-1], "non-empty list of integers >= 0"),
    ("data_seeds", [1, 1], "must not repeat a seed"),
    ("width", 0, "positive integer"),
    ("widths_sweep", [4, 0], "positive integer"),
    ("lr", -1.0, "(0, inf)"),
    ("lr_high", 0.0, "(0, inf)"),
    ("no_momentum_lr", 0.0, "(0, inf)"),
    ("momentum", 1.0, "[0, 1)"),
    ("momentum", -0.1, "[0, 1)"),
    ("ridge", -1e-3, "[0, inf)"),
    ("parameterization", "mup", "must be one of ['standard', 'ntk']"),
    ("underfit_train_error", 0.0, "(0, 1]"),
    ("improve_fraction", 1.5, "(0, 1]"),
    ("alpha_margin", -0.1, "[0, inf)"),
    ("alike_tolerance", 0.0, "(0, inf)"),
    ("track_tolerance", 1.0, "(1, inf)"),
    ("n_boot", 99, "must be an integer >= 100"),
    ("task", "imagenet", "unknown task"),
    ("image_size", 7, "must be one of [4, 8, 16, 32]"),
])
def test_out_of_range_values_refused(notebooks, name, value, message):
    text = refused("toy", {name: value})
    assert text.startswith(f"toy: invalid parameters: {name}: {value!r}: ") and message in text, text


@pytest.mark.parametrize("parameters", [
    {"val_size": 0, "early_stopping": False}, {"momentum": 0.0}, {"improve_fraction": 1.0}, {"alpha_margin": 0.0},
    {"n_boot": 100}, {"seeds": [3, 0]}, {"image_size": 32}, {"parameterization": "ntk"}, {"width": 1},
])
def test_edge_values_accepted(notebooks, parameters):
    assert params.check("toy", parameters) == parameters


def test_val_size_checked_when_only_early_stopping_is_given(notebooks):
    (notebooks / "toy.py").write_text(TOY.replace("val_size = 100", "val_size = 0").replace("early_stopping = True",
                                                                                          "early_stopping = False"))
    assert params.check("toy", {"val_size": 0}) == {"val_size": 0}
    assert "val_size: 0: must be > 0 when early_stopping is true" in refused("toy", {"early_stopping": True})


# ---------------------------------------------------------------------------- sizes

def test_sizes_against_what_the_task_holds(notebooks):
    n_train, n_test = data.available("synthetic-bin")           # generated: no files needed
    assert (n_train, n_test) == (3942, 982)
    assert params.check("toy", {"n_values": [64, n_train - 100], "n_test": n_test})
    assert refused("toy", {"n_values": [64, n_train - 99]}) == (
        f"toy: invalid parameters: task: synthetic-bin has {n_train} training samples, this needs {n_train + 1} "
        f"(val_size 100 + largest of n_values, m_values ({n_train - 99}))")
    assert refused("toy", {"n_test": n_test + 1}).endswith(
        f"n_test: {n_test + 1} but synthetic-bin (task) has only {n_test} test samples")
    # with fresh samples drawn after the pool (n_fit: notebook 04), the largest size counts twice
    half = (n_train - 100) // 2
    assert params.check("fit", {"n_values": [64, half]})
    assert "this needs" in refused("fit", {"n_values": [64, half + 1]})


def test_side_tasks_and_missing_data(notebooks, tmp_path, monkeypatch):
    monkeypatch.setenv("NTK_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(data, "download", lambda *a, **k: pytest.fail("the check must not download"))
    # SVHN is not in the (empty) data cache: unchecked, and its fallback is what will run, so it is checked
    assert "svhn_fallback_task: synthetic-bin has 3942 training samples, this needs 4100 (val_size 100 + largest " \
           "of n_fixed (4000))" in refused("side", {"n_fixed": 4000})
    assert params.check("side", {"n_fixed": 3000})
    # CIFAR-10 absent: the size check is skipped (the loader says what is missing later)
    assert params.check("toy", {"task": "cifar10-pair", "n_values": [64, 10 ** 7], "n_test": 10 ** 7})
    assert not (tmp_path / "empty").exists() or not any((tmp_path / "empty").iterdir())
    # the SVHN task is there (here: a stand-in): the fallback will not run and is not checked
    text = refused("side", {"svhn_task": "synthetic-bin", "n_fixed": 4000})
    assert "task: synthetic-bin" in text and "svhn_task: synthetic-bin" in text and "svhn_fallback_task" not in text


def test_real_cifar10_sizes(notebooks, real_data_dir, monkeypatch):
    monkeypatch.setenv("NTK_DATA_DIR", str(real_data_dir))
    assert data.available("cifar10-pair") == (10000, 2000)
    assert data.available("cifar10-bin") == (50000, 10000)
    assert data.available("cifar10-bin", classes=((3,), (5, 7))) == (10000, 2000)
    if hasattr(data, "files_fingerprint"):        # labels only: not recorded as data a run read
        data.reset_files_read()
        data._split_labels.cache_clear()
        data.available("cifar10-pair")
        assert data.files_fingerprint()["files"] == {}
    assert params.check("toy", {"task": "cifar10-pair", "n_test": 2000, "n_values": [64, 9900]})
    text = refused("toy", {"task": "cifar10-pair", "n_test": 2001, "n_values": [64, 9901]})
    assert "task: cifar10-pair has 10000 training samples, this needs 10001" in text
    assert "n_test: 2001 but cifar10-pair (task) has only 2000 test samples" in text


# ---------------------------------------------------------------------------- the shipped notebooks

@pytest.mark.parametrize("notebook", ["00_summary", "primer", "01_data_scaling", "02_width", "03_hyperparameters",
                                      "04_after_kernel", "05_kernel_dynamics"])
def test_shipped_notebook_defaults_pass(notebook):
    defaults = params.notebook_defaults(notebook)
    assert params.check(notebook, defaults) == defaults | {k: float(v) for k, v in defaults.items()
                                                           if isinstance(v, float)}


def test_rule_table_is_readable():
    assert params.rule_for("lr_low") is params.RULES["lr_*"] and params.rule_for("no_momentum_lr") is params.RULES["*_lr"]
    assert params.rule_for("cnn5_widths") is params.RULES["*_widths"] and params.rule_for("schedule") is None
