"""ntk_utils.sections.width (notebook 02) on the synthetic task, tiny sizes."""
import json
import pathlib

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from ntk_utils import data, downloads, models, params, results, setup as shared  # noqa: E402
from ntk_utils.sections import width  # noqa: E402
from tests.conftest import STATUSES, TINY  # noqa: E402
from tests.section_fixtures import section_fixtures  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = {**TINY, "parameterization": "ntk", "lr": 8.0}   # notebook 02's parameterization
OPTIONS = {"n_values": [16, 32], "widths_scaling": [2, 4], "widths_sweep": [2, 4, 8], "n_fixed": 16,
           "svhn_task": "synthetic-bin", "svhn_fallback_task": "synthetic-bin", "cnn5_widths": [2, 4, 8],
           "lr_by_width": {2: 4.0, 4: 2.0}, "cnn5_lr_by_width": {8: 1.0}}   # myrtle 8, cnn5 2 and 4: the setup's lr
LIMIT = "infinite NTK (NTK param.)"
CURVES = ["network (width 2)", "network (width 4)", LIMIT, "(b) network", "(b) eNTK (init)", "(c) network",
          "(c) eNTK (init)", f"(b) {LIMIT}", f"(c) {LIMIT}"]


@pytest.fixture(scope="module")
def cache_dir(module_cache):
    return module_cache   # shared by both runs: the fallback run reuses the networks


setup, result = section_fixtures(width.run, TINY, OPTIONS)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty data cache, and no downloads: SVHN cannot be loaded."""
    empty = tmp_path / "no data"
    empty.mkdir()
    monkeypatch.setenv("NTK_DATA_DIR", str(empty))

    def no_download(url, dest, *args, **kwargs):
        raise data.DataError(f"could not download {url} (offline test)")
    monkeypatch.setattr(downloads, "download", no_download)
    return empty


def test_networks_are_the_old_notebooks(setup):
    for w in (1, 2, 16):
        assert width.myrtle(setup, w) == models.arch_from_config("myrtle", w, 5, "ntk")
        assert width.cnn5(setup, w).describe() == models.arch_from_config("cnn5", w, None, "ntk").describe()


def test_each_width_trains_at_its_own_learning_rate(setup, result):
    assert width.recipe(setup, 2, OPTIONS["lr_by_width"]) == width.dataclasses.replace(setup.recipe, lr=4.0)
    assert width.recipe(setup, 8, OPTIONS["lr_by_width"]) == setup.recipe            # not in the table
    assert result.learning_rates == {"myrtle": {2: 4.0, 4: 2.0, 8: 8.0}, "cnn5": {2: 8.0, 4: 8.0, 8: 1.0}}
    assert result.unpiloted == {"myrtle": [8], "cnn5": [2, 4]}
    text = result.markdown()
    assert "myrtle width 2: 4, width 4: 2, width 8: 8" in text
    assert "NOT in the pilot, at the setup's lr 8: myrtle width 8; cnn5 width 2, 4" in text
    # the networks were trained at those rates: the (b) width-2 network is the one trained at lr 4
    same = width.run(setup, **{**OPTIONS, "lr_by_width": {2: 4.0, 4: 2.0, 8: 8.0}})
    np.testing.assert_array_equal(same.outcomes["(b) network"], result.outcomes["(b) network"])
    other = width.run(setup, **{**OPTIONS, "lr_by_width": {2: 1.0, 4: 2.0}})
    assert not np.array_equal(other.outcomes["(b) network"][:, :, 0], result.outcomes["(b) network"][:, :, 0])
    np.testing.assert_array_equal(other.outcomes["(b) network"][:, :, 1:], result.outcomes["(b) network"][:, :, 1:])


def test_run_shapes_and_statuses(result):
    assert list(result.curves) == CURVES
    assert list(result.outcomes) == CURVES[:7] + [f"(b) {LIMIT}", f"(c) {LIMIT}"]   # every verdict's inputs
    for name in CURVES[:3]:                                             # draws, seeds, n, test examples
        assert result.outcomes[name].shape == ((1, 1, 2, 64) if name == LIMIT else (1, 2, 2, 64))
        assert result.curves[name]["x_name"] == "n" and result.curves[name]["x"] == [16, 32]
    for panel, widths in (("(b)", [2, 4, 8]), ("(c)", [2, 4, 8])):
        for name in ("network", "eNTK (init)"):
            assert result.outcomes[f"{panel} {name}"].shape == (1, 2, 3, 64)
            curve = result.curves[f"{panel} {name}"]
            assert curve["x_name"] == "width" and curve["x"] == widths
        limit = result.curves[f"{panel} {LIMIT}"]
        assert limit["x_name"] == "n" and limit["x"] == [16] and len(limit["mean"]) == 1
    assert result.scaling_names == ["network (width 2)", "network (width 4)", LIMIT]
    claims_ = [v.claim for v in result.verdicts]
    assert claims_ == [v.claim for v in result.plain] and len(claims_) == 7
    assert claims_[:3] == ["network (width 2) scales better than infinite NTK (NTK param.)",
                           "network (width 4) scales better than infinite NTK (NTK param.)",
                           "network (width 2) and network (width 4) have the same exponent (within 0.05)"]
    assert any(c.startswith("(b) myrtle5 eNTK (init)'s error moves toward") for c in claims_)
    assert any(c.startswith("(c) cnn5 on synthetic-bin network first improves") for c in claims_)
    assert all(v.status in STATUSES for v in result.verdicts)
    assert all("few" in v.text.lower() or "caution" in v.text.lower() for v in result.verdicts)   # 1 draw x 2 seeds
    assert result.cnn5_task == "synthetic-bin" and not result.fallback and result.fallback_reason is None


def test_one_width_has_no_alike_claim(result, cache_dir, monkeypatch):
    monkeypatch.setenv("NTK_CACHE_DIR", str(cache_dir))
    one = width.run(shared.Setup.from_parameters(TINY), **{**OPTIONS, "widths_scaling": [4]})
    assert [v.claim for v in one.verdicts][:1] == ["network (width 4) scales better than infinite NTK (NTK param.)"]
    assert not any("same exponent" in v.claim for v in one.verdicts) and len(one.verdicts) == 5
    np.testing.assert_array_equal(one.outcomes["(b) network"], result.outcomes["(b) network"])


def test_record_is_json_and_markdown_names_the_numbers(result, tmp_path):
    record = result.record()
    assert set(record) == {"n_values", "curves", "verdicts", "underfit", "cnn5_task", "requested_task", "fallback",
                           "fallback_reason", "learning_rates", "unpiloted"}
    assert record["learning_rates"]["myrtle"] == {"2": 4.0, "4": 2.0, "8": 8.0}
    assert record["cnn5_task"] == record["requested_task"] == "synthetic-bin" and record["fallback"] is False
    results.write_json(tmp_path / "r.json", record)
    back = json.loads((tmp_path / "r.json").read_text())
    assert list(back["curves"]) == CURVES and len(back["verdicts"]) == 7
    text = result.markdown()
    assert "synthetic-bin" in text and "ntk parameterization" in text and "**(b) myrtle5 network first" in text
    assert "panel (c) ran on" not in text


def test_figure_and_panels_from_results_json(result, tmp_path):
    fig = width.figure(result, tmp_path)
    assert (tmp_path / "fig2_width.png").exists() and len(fig.axes) == 3
    results.write_json(tmp_path / "r.json", result.record())
    curves = json.loads((tmp_path / "r.json").read_text())["curves"]
    curves["(b) network"]["mean"][1] = None          # a point every run of which diverged
    curves["(b) network"]["std"][1] = None
    fig, (ax_a, ax_b) = width.plotting.figure(2)
    width.panel_scaling(ax_a, curves, result.scaling_names)
    width.panel_width(ax_b, curves, "(b)", [2, 4, 8], "(b) title")
    assert len(ax_a.get_legend_handles_labels()[1]) == 3
    assert sorted(ax_b.get_legend_handles_labels()[1]) == ["eNTK (init)", LIMIT, "network"]
    assert ax_b.get_title() == "(b) title"


def test_fallback_is_taken_and_recorded_without_machine_paths(result, cache_dir, offline, monkeypatch, tmp_path):
    monkeypatch.setenv("NTK_CACHE_DIR", str(cache_dir))
    fell = width.run(shared.Setup.from_parameters(TINY), **{**OPTIONS, "svhn_task": "svhn-parity"})
    assert fell.fallback and fell.cnn5_task == "synthetic-bin" and fell.requested_task == "svhn-parity"
    assert fell.fallback_reason.startswith("svhn-parity is not available (")
    assert "$NTK_DATA_DIR" in fell.fallback_reason and str(offline) not in fell.fallback_reason
    record = fell.record()
    assert record["fallback"] is True and record["fallback_reason"] == fell.fallback_reason
    assert record["cnn5_task"] == "synthetic-bin" and record["requested_task"] == "svhn-parity"
    panel_c = "(c) cnn5 on synthetic-bin (stand-in for svhn-parity) network"
    assert any(v.claim.startswith(panel_c) for v in fell.verdicts)
    assert "panel (c) ran on synthetic-bin, not svhn-parity" in fell.markdown()
    np.testing.assert_array_equal(fell.outcomes["(c) network"], result.outcomes["(c) network"])   # the same sweep
    fig = width.figure(fell, tmp_path)
    assert "stand-in for svhn-parity" in fig.axes[2].get_title()


def test_check_refuses_bad_section_parameters(setup, offline):
    assert width.check(setup, **OPTIONS) == []
    for name, bad in [("n_values", [32, 16]), ("widths_sweep", [4]), ("cnn5_widths", [2, 2, 4]), ("n_fixed", 0),
                      ("widths_scaling", []), ("widths_scaling", [4, 4]), ("svhn_task", "svhn"),
                      ("svhn_fallback_task", "mnist"), ("lr_by_width", {4: 0.0}), ("lr_by_width", {0: 1.0}),
                      ("cnn5_lr_by_width", {"4": 1.0}), ("cnn5_lr_by_width", [1.0])]:
        problems = width.check(setup, **{**OPTIONS, name: bad})
        assert problems and any(p.startswith(f"{name}:") for p in problems), (name, problems)
    small = shared.Setup.from_parameters({**TINY, "image_size": 4})
    assert any("image_size" in p and "cnn5" in p for p in width.check(small, **OPTIONS))
    mlp = shared.Setup.from_parameters({**TINY, "arch": "mlp"})
    assert any(p.startswith("arch:") for p in width.check(mlp, **OPTIONS))


def test_check_sizes_against_the_task_panel_c_will_use(setup, offline):
    too_big = 5000   # synthetic-bin holds 3942 training samples
    problems = width.check(setup, **{**OPTIONS, "n_fixed": too_big})
    assert len(problems) == 1 and "synthetic-bin" in problems[0]          # the main pool; no repeat for (c)
    other = shared.Setup.from_parameters({**TINY, "task": "cifar10-pair"})   # no files here: not checked
    # svhn-parity has no files here: panel (c) falls back, and the fallback task is the one checked
    problems = width.check(other, **{**OPTIONS, "svhn_task": "svhn-parity", "svhn_fallback_task": "synthetic-bin",
                                     "n_fixed": too_big})
    assert len(problems) == 1 and problems[0].startswith("synthetic-bin has")
    assert width.check(other, **{**OPTIONS, "svhn_task": "svhn-parity", "svhn_fallback_task": "cifar10-pair",
                                 "n_fixed": too_big}) == []


def test_notebook_parameters_are_the_sections(monkeypatch, offline):
    setup_, options = params.build("02_width", {"task": "synthetic-bin", "n_test": 64, "svhn_task": "synthetic-bin",
                                                "svhn_fallback_task": "synthetic-bin"})
    assert setup_.parameterization == "ntk" and setup_.recipe.lr == 2.0
    assert set(options) == {"n_values", "widths_scaling", "widths_sweep", "n_fixed", "svhn_task",
                            "svhn_fallback_task", "cnn5_widths", "lr_by_width", "cnn5_lr_by_width"}
    # the default tables are the committed pilot's choices, width by width
    pilot = json.loads((ROOT / "outputs/reference/pilot/width.json").read_text())["panels"]
    assert options["lr_by_width"] == {int(w): v["lr"] for w, v in pilot["myrtle"].items()}
    assert options["cnn5_lr_by_width"] == {int(w): v["lr"] for w, v in pilot["cnn5"].items()}
    with pytest.raises(params.ParameterError, match="widths_sweep"):
        params.build("02_width", {"task": "synthetic-bin", "widths_sweep": "[8, 4]"})
