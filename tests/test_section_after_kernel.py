"""ntk_utils.sections.after_kernel (notebook 04) on the synthetic task, tiny sizes."""
import json

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from ntk_utils import params, plotting, results, setup as shared  # noqa: E402
from ntk_utils.sections import after_kernel  # noqa: E402
from tests.conftest import STATUSES, TINY  # noqa: E402
from tests.section_fixtures import section_fixtures  # noqa: E402

OPTIONS = {"n_values": [16, 32], "m_values": [16, 32, 48], "n_fit": 16, "m_fixed": [48]}


setup, result = section_fixtures(after_kernel.run, TINY, OPTIONS)


def test_run_shapes_and_statuses(result):
    n_curves = ["network", "K_n(n)", "K^F_n(n)", "K_48(n)", "K^F_48(n)", "eNTK (init)"]
    assert list(result.curves) == n_curves + ["K^F_m(16)"]
    assert list(result.outcomes) == n_curves + ["K^F_m(n_fit)"]
    for name in n_curves:
        assert result.outcomes[name].shape == (1, 2, 2, 64)         # draws, seeds, n, test examples
        c = result.curves[name]
        assert c["x_name"] == "n" and c["x"] == [16, 32] and np.isfinite(c["mean"]).all()
    assert result.outcomes["K^F_m(n_fit)"].shape == (1, 2, 4, 64)  # m = 0, 16, 32, 48
    fig1b = result.curves["K^F_m(16)"]
    assert fig1b["x_name"] == "m" and fig1b["x"] == [0, 16, 32, 48] and np.isfinite(fig1b["mean"]).all()
    assert result.all_m == [16, 32, 48] and result.train_error.shape == (1, 2, 3)
    claims = [v.claim for v in result.verdicts]
    assert claims == [v.claim for v in result.plain] and len(claims) == 2 + 1 + 3   # tracks, keeps improving, scales
    assert all(v.status in STATUSES for v in result.verdicts)
    assert "K^F_m(16)" in claims[2] and claims[3:] == [f"network scales better than {k}"
                                                       for k in ("eNTK (init)", "K_48(n)", "K^F_48(n)")]
    assert result.caveat and all(result.caveat in v.text for v in result.verdicts)   # 1 draw x 2 seeds
    # n reaches only 32/48 of m = 48: "the network scales better than K_48" is not tested there
    for v in result.verdicts[4:]:
        assert v.status == "inconclusive" and "n reaches only 0.667 m" in v.text and v.numbers["n_reach"] < 8


def test_the_diagonal_and_fixed_kernels_agree(result):
    """K_n(n) at n = m is the kernel of the network trained on m, as is K_m(n) at that n."""
    o = result.outcomes
    np.testing.assert_array_equal(o["K^F_n(n)"][:, :, 0], o["K^F_m(n_fit)"][:, :, 1])   # n = m = n_fit = 16


def test_record_is_json_and_markdown_names_the_numbers(result, tmp_path):
    record = result.record()
    assert set(record) == {"n_values", "m_values", "curves", "train_error", "underfit", "verdicts"}
    results.write_json(tmp_path / "r.json", record)
    back = json.loads((tmp_path / "r.json").read_text())
    assert back["curves"]["K^F_m(16)"]["x"] == [0, 16, 32, 48] and len(back["verdicts"]) == 6
    assert np.asarray(back["train_error"]).shape == (1, 2, 3)
    text = result.markdown()
    assert "synthetic-bin" in text and "K^F_m(16) goes from" in text and result.caveat in text


def test_figures_and_panels_from_results_json(result, tmp_path):
    fig4, fig1b = after_kernel.figure(result, tmp_path)
    assert (tmp_path / "fig4_after_kernel.png").exists() and (tmp_path / "fig1b_after_kernel.png").exists()
    assert len(fig4.axes) == 3 and len(fig1b.axes) == 1
    results.write_json(tmp_path / "r.json", result.record())
    curves = json.loads((tmp_path / "r.json").read_text())["curves"]
    fig, (ax, ax_c) = plotting.figure(2)
    after_kernel.panel_1b(ax, curves["K^F_m(16)"], 16)
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["16", "32", "48"]
    assert ax.get_legend_handles_labels()[1] == ["m = 0: eNTK (init) on the same 16", "after-kernel K^F_m(16)"]
    dotted = [line for line in ax.lines if line.get_linestyle() == ":"]   # m = 0
    assert len(dotted) == 1 and np.isclose(dotted[0].get_ydata()[0], curves["K^F_m(16)"]["mean"][0])
    curves["K_48(n)"]["runs"][0] = [None, None]   # a diverged network: left out
    after_kernel.panel_curves(ax_c, curves, ["network"] + after_kernel.fixed_kernels([48]), [48])
    assert after_kernel.fixed_kernels([256, 512]) == ["eNTK (init)", "K_256(n)", "K^F_256(n)", "K_512(n)",
                                                      "K^F_512(n)"]
    assert len(ax_c.get_legend_handles_labels()[1]) == 4


def test_check_refuses_bad_parameters(setup):
    assert after_kernel.check(setup, **OPTIONS) == []
    for change, words in [({"m_values": [32, 16]}, ["m_values", "increasing"]), ({"m_values": [16]}, ["m_values"]),
                          ({"n_values": [0, 16]}, ["n_values"]), ({"n_fit": 0}, ["n_fit"]), ({"n_fit": [16]}, ["n_fit"]),
                          ({"m_fixed": []}, ["m_fixed"]), ({"m_fixed": 16}, ["m_fixed"]),
                          ({"m_fixed": [16, 16]}, ["m_fixed", "repeat"]), ({"m_fixed": [-1]}, ["m_fixed"])]:
        problems = after_kernel.check(setup, **{**OPTIONS, **change})
        assert problems and all(w in " ".join(problems) for w in words), (change, problems)


def test_check_counts_the_fresh_samples_after_the_pool(setup, monkeypatch):
    asked = []
    monkeypatch.setattr(shared.Setup, "size_problems", lambda self, n_pool, n_fresh=0, task=None:
                        asked.append((n_pool, n_fresh)) or [])
    after_kernel.check(setup, n_values=[16, 64], m_values=[16, 32], n_fit=100, m_fixed=[128])
    assert asked == [(128, 100)]


def test_params_build_uses_the_notebook_cell():
    s, options = params.build("04_after_kernel", {**TINY, **OPTIONS})
    assert s.task == "synthetic-bin" and options == OPTIONS
    with pytest.raises(params.ParameterError, match="n_fit"):
        params.build("04_after_kernel", {**TINY, "n_fit": 0})
