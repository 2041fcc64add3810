"""ntk_utils.sections.summary (notebook 00): Figure 1 drawn with the sections' own panels, and
summary.md / summary.json of a small fake grid folder."""
import json
import types

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from ntk_utils import cells, experiments, gridfile, params, paths, plotting, results  # noqa: E402
from ntk_utils.sections import after_kernel, data_scaling, kernel_dynamics, summary  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Mean of empty slice")   # the diverged (NaN) runs
N_VALUES, M_VALUES, T_GRID, EPOCHS = [16, 32, 64], [16, 32], [0, 2, 4, 10], [0.0, 8.0, 16.0, 40.0]


def _outcomes(rng, k, p, diverged=False):
    """(D=1, S=3, K, T=40) 0/1 outcomes; ``diverged``: seed 1 is missing (NaN) at every x."""
    wrong = (rng.random((1, 3, k, 40)) < p).astype(float)
    if diverged:
        wrong[0, 1] = np.nan
    return wrong


def _curves():
    """In-memory curves (numpy arrays, NaN included) as notebooks 01, 04 and 05 hold them."""
    rng = np.random.default_rng(0)
    c01 = {name: experiments.summarize("n", N_VALUES, _outcomes(rng, 3, p, diverged=name == "network"))
           for name, p in (("network", 0.2), ("eNTK (init)", 0.3), ("linearized network", 0.3), ("infinite NTK (SP)", 0.35))}
    c04 = experiments.summarize("m", [0] + M_VALUES, _outcomes(rng, 3, 0.3))
    c04["mean"][1] = c04["std"][1] = np.nan                               # a point with no run left
    c05 = {name: experiments.summarize("t", T_GRID, _outcomes(rng, 4, p)) for name, p in
           (("K^t_fit", 0.3), ("K^F,t_fit", 0.32), ("network(t)", 0.25))}
    c05["network(t)"]["mean"][2] = np.nan
    c05.update({name: experiments.summarize("n", N_VALUES, _outcomes(rng, 3, p, diverged=name == "K^t, t=10"))
                for name, p in (("K^t, t=0", 0.3), ("K^t, t=10", 0.25), ("network", 0.2))})
    return c01, c04, c05


def _record(tmp_path, name, parameters, results_part):
    """A results.json record, through the JSON writer and back (NaN -> None, arrays -> lists)."""
    path = tmp_path / f"{name}.json"
    results.write_json(path, {"parameters": parameters, "results": results_part})
    return json.loads(path.read_text())


def _records(tmp_path, curves=None, with_verdicts=False):
    c01, c04, c05 = curves or _curves()
    base = {"task": "synthetic-bin", "data_seeds": [0], "seeds": [0, 1, 2], "n_values": N_VALUES}
    verdicts = {}
    if with_verdicts:
        verdicts = {"network scales better than eNTK (init)": {
            "claim": "network scales better than eNTK (init)", "status": "held", "text": "the network's α is larger",
            "numbers": {"alpha_better": 0.5, "alpha_worse": 0.25, "delta": 0.25, "delta_low": 0.1, "delta_high": 0.4,
                        "err_better_at_max": 0.12, "err_worse_at_max": 0.2}}}
    return {
        "01_data_scaling/default": _record(tmp_path, "01", base, {"n_values": N_VALUES, "curves": c01,
                                                                  "verdicts": verdicts, "underfit": ""}),
        "04_after_kernel/default": _record(tmp_path, "04", {**base, "n_fit": 16, "m_values": M_VALUES},
                                           {"curves": {"K^F_m(16)": c04}, "verdicts": {}}),
        "05_kernel_dynamics/default": _record(tmp_path, "05", {**base, "n_train": 32},
                                              {"t_grid": T_GRID, "epochs": EPOCHS, "curves": c05,
                                               "verdicts": {"old shape": ["inconclusive", "an older run's pair"]},
                                               "underfit": "CAUTION: 1 of 6 networks underfit"}),
    }


def drawn(ax):
    """What an axes plots: every line's xy data and every errorbar's data and bars, and the labels."""
    bars = [(c.lines[0].get_xydata(), [np.asarray(s) for col in c.lines[2] for s in col.get_segments()])
            for c in ax.containers]
    return [line.get_xydata() for line in ax.lines], bars, ax.get_legend_handles_labels()[1], ax.get_xscale()


def assert_same_drawing(ax, ax_other):
    lines, bars, labels, xscale = drawn(ax)
    lines_o, bars_o, labels_o, xscale_o = drawn(ax_other)
    assert labels == labels_o and xscale == xscale_o and len(lines) == len(lines_o) > 0
    for a, b in zip(lines, lines_o):
        np.testing.assert_allclose(a, b, equal_nan=True)
    assert len(bars) == len(bars_o) > 0
    for (data, segments), (data_o, segments_o) in zip(bars, bars_o):
        np.testing.assert_allclose(data, data_o, equal_nan=True)
        assert len(segments) == len(segments_o)
        for s, s_o in zip(segments, segments_o):
            np.testing.assert_allclose(s, s_o, equal_nan=True)


def test_figure1_panels_plot_what_the_notebooks_plot(tmp_path):
    c01, c04, c05 = _curves()
    fig = summary.figure1(_records(tmp_path, (c01, c04, c05)), tmp_path / "figs" / "figure1.png")
    assert (tmp_path / "figs" / "figure1.png").exists()
    ax_a, ax_b, ax_c = fig.axes[:3]
    assert ax_a.get_title() == "A: data scaling (synthetic-bin, 1x3 runs)"
    assert ax_b.get_title() == "B: after-kernel vs m (1x3 runs)" and ax_c.get_title() == "C: kernel dynamics (1x3 runs)"
    # notebook 01: data_scaling.figure on its Result's in-memory curves
    setup = types.SimpleNamespace(title=lambda *more: "title")
    nb01 = data_scaling.figure(types.SimpleNamespace(curves=c01, setup=setup), tmp_path)
    assert_same_drawing(ax_a, nb01.axes[0])
    # notebook 04: panel 1B on the in-memory curve
    _, (ax) = plotting.figure()
    after_kernel.panel_1b(ax[0], c04, 16)
    assert_same_drawing(ax_b, ax[0])
    # notebook 05: Figure 1C of kernel_dynamics.figure, and panel (a) of Figure 5
    nb05 = types.SimpleNamespace(curves=c05, epochs=EPOCHS, n_train=32, setup=setup)
    fig5, fig1c = kernel_dynamics.figure(nb05, tmp_path)
    assert_same_drawing(ax_c, fig1c.axes[0])
    assert_same_drawing(ax_c, fig5.axes[0])
    assert np.isnan(ax_c.containers[2].lines[0].get_ydata()[1])            # the None of results.json: not drawn


def test_figure1_says_which_notebooks_have_not_run(tmp_path):
    fig = summary.figure1({})
    assert [[t.get_text() for t in ax.texts] for ax in fig.axes] == [
        ["01_data_scaling not run yet"], ["04_after_kernel not run yet"], ["05_kernel_dynamics not run yet"]]
    records = _records(tmp_path)
    del records["04_after_kernel/default"]
    fig = summary.figure1(records)
    assert [[t.get_text() for t in ax.texts] for ax in fig.axes] == [[], ["04_after_kernel not run yet"], []]
    assert fig.axes[2].containers and not fig.axes[1].lines


def test_best_takes_the_cell_with_most_runs(tmp_path):
    records = _records(tmp_path)
    bigger = json.loads(json.dumps(records["01_data_scaling/default"]))
    bigger["parameters"]["data_seeds"] = [0, 1]
    records["01_data_scaling/seeds=more"] = bigger
    assert summary.best(records, "01_data_scaling", "curves") is bigger
    assert summary.best(records, "02_width", "curves") is None
    assert summary.runs_of(bigger) == "2x3 runs"


def test_rows_accept_old_and_new_verdicts(tmp_path):
    records = _records(tmp_path, with_verdicts=True)
    assert summary.verdict_rows({"c": ["held", "why"], "d": ["not held"]}) == [("c", "held", "why"), ("d", "not held", "")]
    assert summary.verdict_rows([{"claim": "x", "status": "held", "text": "t"}]) == [("x", "held", "t")]
    claims = summary.claim_rows(records)
    assert claims == [("01_data_scaling/default", "network scales better than eNTK (init)", "held",
                       "the network's α is larger"),
                      ("05_kernel_dynamics/default", "old shape", "inconclusive", "an older run's pair")]
    assert summary.tally(claims) == {"held": 1, "not held": 0, "inconclusive": 1}
    assert summary.tally(claims + [("c", "x", "direction only", "")]) == {
        "held": 1, "not held": 0, "inconclusive": 1, "direction only": 1}
    assert summary.exponent_rows(records) == [("01_data_scaling/default", "network scales better than eNTK (init)",
                                               0.5, 0.25, 0.25, 0.1, 0.4, 0.12, 0.2, "held")]


def test_a_claim_two_notebooks_make_on_the_same_outcomes_is_counted_once():
    """05's K^t at the end of training is 04's K_m when they share their runs: the same numbers."""
    numbers = {"alpha_better": 0.3, "delta": 0.1, "delta_low": 0.05, "delta_high": 0.15}
    verdict = lambda claim, caveat: {"claim": claim, "status": "held", "text": "t",
                                     "numbers": {**numbers, "caveats": [caveat]}}
    records = {"04_after_kernel/default": {"results": {"verdicts": {
                   "a": verdict("network scales better than K_512(n)", "one draw.")}}},
               "05_kernel_dynamics/default": {"results": {"verdicts": {
                   "b": verdict("network scales better than K^t, t=400", "two seeds."),
                   "c": {**verdict("K^t_fit keeps improving along t", ""), "numbers": {"late": 0.02}}}}}}
    repeated = summary.repeated_claims(records)
    assert repeated == {("05_kernel_dynamics/default", "network scales better than K^t, t=400"):
                        ("04_after_kernel/default", "network scales better than K_512(n)")}
    claims = summary.claim_rows(records)
    assert len(claims) == 3 and summary.tally(claims, repeated) == {"held": 2, "not held": 0, "inconclusive": 0}


def test_check_and_shown(tmp_path):
    assert summary.check("parameters/quick.yaml", "outputs/runs/quick") == []
    assert summary.check(str(tmp_path / "g.yaml"), "x") == [
        f"grid_file: {str(tmp_path / 'g.yaml')!r} does not exist (paths are relative to the repository root)"]
    with pytest.raises(params.ParameterError, match="grid_file"):
        params.build("00_summary", {"grid_file": "parameters/nope.yaml"})
    assert params.build("00_summary", {})[0] is None
    assert paths.shown("parameters/quick.yaml") == "parameters/quick.yaml"
    assert paths.shown(str(paths.REPO_ROOT / "outputs" / "runs")) == "outputs/runs"
    assert paths.shown("/somewhere/else/g.yaml") == "g.yaml"


def test_summary_of_a_fake_grid_folder(tmp_path):
    grid_file = tmp_path / "g.yaml"
    grid_file.write_text("name: g\ndefaults: {task: synthetic-bin, n_test: 64}\nnotebooks:\n  01_data_scaling: {}\n"
                         "  04_after_kernel: {}\n  05_kernel_dynamics: {n_train: 32}\n")
    root = tmp_path / "out"
    records = _records(tmp_path, with_verdicts=True)
    for cell in gridfile.load_grid(grid_file)[1]:
        if cell.notebook != "04_after_kernel":                          # 04 has not run yet
            folder = cells.folders(root / "g", cell.id).finished
            folder.mkdir(parents=True)
            results.write_json(folder / "results.json", {**records[cell.id], "run": {"fingerprint": cell.fingerprint}})
    (root / "g/02_width/default").mkdir(parents=True)                   # a notebook no longer in the grid
    state = summary.run(str(grid_file), str(root / "g"))
    assert list(state.records) == ["01_data_scaling/default", "05_kernel_dynamics/default"]
    assert state.not_summarized == {"stale": [], "failed": [], "todo": ["04_after_kernel/default"],
                                    "orphaned": ["02_width/default"]}
    assert "2 finished cells of g.yaml in g:" in state.listing() and "1 todo (not summarized):" in state.listing()
    assert "UNDERFIT 05_kernel_dynamics/default: CAUTION" in state.exponent_table()
    assert state.claim_list().endswith("held: 1, not held: 0, inconclusive: 1")

    summary.write(state, root / "g/figures")
    text = (root / "g/figures/summary.md").read_text()
    assert text.startswith("# Summary of g (grid file g.yaml)\n\n2 cells with current results.\n")
    assert ("| 01_data_scaling/default | network scales better than eNTK (init) | 0.500 | 0.250 | "
            "+0.250 [+0.100, +0.400] | 0.120 vs 0.200 | held |") in text
    assert "* 05_kernel_dynamics/default: CAUTION: 1 of 6 networks underfit" in text
    assert "| 05_kernel_dynamics/default | old shape | inconclusive | an older run's pair |" in text
    assert "* todo (not run yet): 04_after_kernel/default" in text and "* stale (results of other parameters " \
        "or code): none" in text and "* orphaned (folders of cells not in the grid file): 02_width/default" in text
    assert str(tmp_path) not in text
    saved = json.loads((root / "g/figures/summary.json").read_text())
    assert set(saved) == {"grid_file", "grid_dir", "exponents", "claims", "tally", "underfit", "cells", "stale",
                          "failed", "todo", "orphaned", "why", "repeated"}
    assert saved["why"] == {}
    assert saved["cells"] == list(state.records) and saved["tally"] == {"held": 1, "not held": 0, "inconclusive": 1}
    assert saved["exponents"][0][:2] == ["01_data_scaling/default", "network scales better than eNTK (init)"]
    assert len(saved["claims"]) == 2

    fig = summary.figure1(state.records, root / "g/figures/figure1.png")
    assert [[t.get_text() for t in ax.texts] for ax in fig.axes[:3]] == [[], ["04_after_kernel not run yet"], []]
