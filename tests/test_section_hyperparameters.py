"""ntk_utils.sections.hyperparameters (notebook 03) on the synthetic task, tiny sizes."""
import dataclasses
import json

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from ntk_utils import parameters_cell, params, results, setup as shared  # noqa: E402
from ntk_utils.sections import hyperparameters  # noqa: E402
from tests.conftest import STATUSES, TINY  # noqa: E402
from tests.section_fixtures import section_fixtures  # noqa: E402

OPTIONS = {"n_values": [16, 32], "lr_high": 0.2, "lr_low": 0.02, "no_momentum_lr": 0.5, "variants": ["lr_high", "gd"]}


setup, result = section_fixtures(hyperparameters.run, TINY, OPTIONS)


def test_variants_change_one_thing_of_the_recipe(setup):
    table = hyperparameters.variants_table(0.3, 0.01, 0.7)
    assert set(table) == {"lr_high", "lr_low", "gd", "no_momentum", "early_stopping"}
    assert table["lr_high"] == ("lr 0.3", {"lr": 0.3}) and table["no_momentum"][1] == {"momentum": 0.0, "lr": 0.7}
    recipe = dataclasses.replace(setup.recipe, **table["gd"][1])
    assert recipe.full_batch and dataclasses.replace(recipe, full_batch=False) == setup.recipe


def test_run_shapes_and_statuses(result):
    names = ["eNTK (init)", "infinite NTK (SP)", "lr_high: network", "gd: network"]
    assert list(result.outcomes) == names and list(result.curves) == names
    for name, o in result.outcomes.items():      # draws, seeds (the infinite NTK has none), n, test examples
        assert o.shape == (1, 1 if name == "infinite NTK (SP)" else 2, 2, 64)
    for c in result.curves.values():
        assert c["x_name"] == "n" and c["x"] == [16, 32] and len(c["mean"]) == 2
    assert result.recipes["lr_high"].lr == 0.2 and result.recipes["gd"].full_batch
    assert [v.claim for v in result.verdicts] == [v.claim for v in result.plain]
    assert len(result.verdicts) == 4 and all(v.status in STATUSES for v in result.verdicts)
    kernels = ("eNTK (init)", "infinite NTK (SP)")
    assert [v.claim for v in result.verdicts] == [f"{name}: network scales better than {k}"
                                                  for name in ("lr_high", "gd") for k in kernels]
    assert all("1 data draw(s)" in v.text and "only 2 seed(s)" in v.text for v in result.verdicts)   # few runs
    assert all(result.underfit[v.claim.split(":")[0]] in v.text for v in result.verdicts)   # its own variant's


def test_record_is_json_and_markdown_names_the_numbers(result, tmp_path):
    record = result.record()
    assert set(record) == {"n_values", "curves", "underfit", "variants", "verdicts"}
    assert record["variants"] == {"lr_high": "lr 0.2", "gd": "full-batch GD"}
    results.write_json(tmp_path / "r.json", record)
    back = json.loads((tmp_path / "r.json").read_text())
    assert set(back["curves"]) == set(result.curves) and len(back["verdicts"]) == 4
    text = result.markdown()
    assert "synthetic-bin" in text and "full-batch GD" in text and "**gd: network scales better" in text


def test_figure_and_panel_from_results_json(result, tmp_path):
    fig = hyperparameters.figure(result, tmp_path)
    assert (tmp_path / "fig3_hyperparameters.png").exists() and len(fig.axes) == 2   # panels (a) and (b)
    assert hyperparameters.panels(["gd", "early_stopping", "lr_low"]) == [
        ("(a) learning rate", ["lr_low"]), ("(b) full-batch GD", ["gd"]), ("(d) early stopping", ["early_stopping"])]
    results.write_json(tmp_path / "r.json", result.record())
    curves = json.loads((tmp_path / "r.json").read_text())["curves"]
    curves["gd: network"]["runs"] = [[None, None], [None, None]]    # every run diverged
    fig, (ax,) = hyperparameters.plotting.figure()
    hyperparameters.panel(ax, curves, ["lr_high", "gd"], result.record()["variants"])
    labels = ax.get_legend_handles_labels()[1]
    assert "network, full-batch GD: diverged" in labels and any(l.startswith("network, lr 0.2") for l in labels)


def test_check_refuses_bad_parameters(setup):
    assert hyperparameters.check(setup, **OPTIONS) == []
    for change, words in [({"variants": ["lr_high", "adam"]}, ["variants", "adam", "no_momentum"]),
                          ({"variants": []}, ["variants"]), ({"variants": ["gd", "gd"]}, ["variants", "repeat"]),
                          ({"lr_high": 0.0}, ["lr_high", "> 0"]), ({"no_momentum_lr": -1.0}, ["no_momentum_lr"]),
                          ({"n_values": [32, 16]}, ["n_values", "increasing"]), ({"n_values": [16]}, ["n_values"])]:
        problems = hyperparameters.check(setup, **{**OPTIONS, **change})
        assert problems and all(w in " ".join(problems) for w in words), (change, problems)
    no_val = shared.Setup.from_parameters({**TINY, "val_size": 0})
    assert "val_size" in " ".join(hyperparameters.check(no_val, **{**OPTIONS, "variants": ["early_stopping"]}))


def test_params_build_uses_the_notebook_cell():
    s, options = params.build("03_hyperparameters", {**TINY, "variants": ["gd"], "n_values": [16, 32]})
    assert s.task == "synthetic-bin" and set(options) == {"n_values", "lr_high", "lr_low", "no_momentum_lr",
                                                          "variants"}
    assert options["n_values"] == [16, 32] and options["variants"] == ["gd"]
    with pytest.raises(params.ParameterError, match="unknown"):
        params.build("03_hyperparameters", {**TINY, "variants": ["sgd"]})
    assert np.isclose(parameters_cell.cell_defaults("03_hyperparameters")["lr_high"], 0.2)
