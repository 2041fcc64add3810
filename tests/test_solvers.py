"""Kernel-regression solvers: preconditioned CG against the direct solve, kernels as matrices,
block callables and memory-mapped files, and how solver="auto" chooses."""
import dataclasses
import warnings

import numpy as np
import pytest

from ntk_utils import regression


def _ntk(a, b):
    """One-hidden-layer ReLU NTK (arc-cosine kernels): the shape of a real NTK's spectrum."""
    norms = np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))
    cos = np.clip(a @ b.T / norms, -1, 1)
    theta = np.arccos(cos)
    return norms * (np.sin(theta) + (np.pi - theta) * cos) / np.pi + (a @ b.T) * (np.pi - theta) / np.pi


def _problem(n=150, m=40, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n + m, d))
    y = np.sign(x @ rng.standard_normal(d) + 0.3 * rng.standard_normal(n + m))
    k = _ntk(x, x[:n])
    return k[:n], y[:n], k[n:]


def _direct(k, y, ks, ridge):
    return ks @ np.linalg.solve(k + ridge * np.mean(np.diag(k)) * np.eye(len(k)), y)


def test_cg_matches_direct_on_well_conditioned_problem():
    rng = np.random.default_rng(1)
    q = np.linalg.qr(rng.standard_normal((80, 80)))[0]
    k = (q * np.linspace(1, 5, 80)) @ q.T                      # condition number 5
    y, ks = rng.standard_normal(80), rng.standard_normal((10, 80))
    pred, info = regression.kernel_regression(k, y, ks, ridge=0.1, solver="cg", tol=1e-12, return_info=True)
    np.testing.assert_allclose(pred, _direct(k, y, ks, 0.1), rtol=1e-9, atol=1e-10)
    assert info.solver == "cg" and info.converged and 0 < info.iterations < 80 and info.residual <= 1e-12


def test_cg_matches_direct_on_ntk_kernel_with_small_ridge():
    k, y, ks = _problem()
    want = _direct(k, y, ks, 1e-4)
    pred, info = regression.kernel_regression(k, y, ks, ridge=1e-4, solver="cg", tol=1e-10, maxiter=2000,
                                              return_info=True)
    np.testing.assert_allclose(pred, want, rtol=1e-6, atol=1e-7 * np.abs(want).max())
    assert info.converged and info.detail == "nystrom rank 150, tol 1e-10"   # rank capped at n
    for rank in (0, 20):                                       # without and with a partial preconditioner
        a, info = regression.cg_solve(k, y, ridge=1e-4, rank=rank, tol=1e-10, maxiter=2000)
        np.testing.assert_allclose(ks @ a, want, rtol=1e-6, atol=1e-7 * np.abs(want).max())
        assert info.converged
    direct_pred, direct_info = regression.kernel_regression(k.astype(np.float32), y, ks, ridge=1e-4, return_info=True)
    assert direct_info.solver == "direct" and direct_info.detail == "cholesky" and direct_info.residual < 1e-10


def test_nystrom_preconditioner_cuts_iterations():
    k, y, _ = _problem(n=200)
    iterations = {rank: regression.cg_solve(k, y, ridge=1e-3, rank=rank, tol=1e-8, maxiter=2000)[1].iterations
                  for rank in (0, 40)}
    assert iterations[40] < 0.6 * iterations[0], iterations


def test_matrix_and_block_callable_agree_and_multiple_targets():
    k, y, ks = _problem()
    targets = np.stack([y, -0.5 * y + 1], axis=1)              # (n, 2): solved together
    by_matrix = regression.kernel_regression(k, targets, ks, ridge=1e-3, solver="cg", tol=1e-10)
    by_callable = regression.kernel_regression(regression.block_matvec(k, block_rows=7), targets,
                                               regression.block_matvec(ks, block_rows=7),
                                               ridge=1e-3, diag=np.diag(k), tol=1e-10)   # auto: callable -> cg
    assert by_matrix.shape == (len(ks), 2)
    np.testing.assert_allclose(by_callable, by_matrix, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(by_matrix[:, 1], _direct(k, targets[:, 1], ks, 1e-3), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="diag"):
        regression.kernel_regression(regression.block_matvec(k), y, ks, ridge=1e-3)


class _RowReads:
    """Array stand-in that records how many rows each read takes."""
    def __init__(self, array):
        self.array, self.shape, self.reads = array, array.shape, []

    def __getitem__(self, rows):
        out = self.array[rows]
        self.reads.append(len(out))
        return out


def test_memory_mapped_kernel_through_the_callable(tmp_path):
    k, y, ks = _problem()
    np.save(tmp_path / "k.npy", k.astype(np.float32))
    mapped = np.load(tmp_path / "k.npy", mmap_mode="r")
    rows = _RowReads(mapped)
    pred, info = regression.kernel_regression(regression.block_matvec(rows, block_rows=32), y, ks, ridge=1e-3,
                                              diag=np.diagonal(mapped), tol=1e-10, return_info=True)
    np.testing.assert_allclose(pred, _direct(k.astype(np.float32).astype(float), y, ks, 1e-3), rtol=1e-6, atol=1e-7)
    assert max(rows.reads) == 32 and sum(rows.reads) == len(k) * info.passes
    assert info.passes >= info.iterations + 2                  # + the sketch and the final residual
    # the memory map as a matrix takes the same path
    np.testing.assert_allclose(regression.kernel_regression(mapped, y, ks, ridge=1e-3, solver="cg", tol=1e-10), pred,
                               rtol=1e-8, atol=1e-9)


def test_reported_residual_is_the_true_residual():
    k, y, _ = _problem(n=200)
    with pytest.warns(UserWarning, match="CG stopped after 3 iterations"):
        a, info = regression.cg_solve(k, y, ridge=0.0, rank=0, maxiter=3)
    true = np.linalg.norm(k @ a - y) / np.linalg.norm(y)
    assert info.iterations == 3 and not info.converged
    assert info.residual == pytest.approx(true, rel=1e-10) and info.residual > 1e-3
    a, info = regression.cg_solve(k, y, ridge=1e-2, tol=1e-9)
    mu = 1e-2 * np.mean(np.diag(k))
    assert info.residual == pytest.approx(np.linalg.norm(k @ a + mu * a - y) / np.linalg.norm(y), rel=1e-6)
    assert info.residual <= 1e-9
    record = dataclasses.asdict(info)
    assert record["solver"] == "cg" and record["n"] == 200 and record["detail"].startswith("nystrom rank")


def test_auto_picks_each_solver_on_its_side_of_the_threshold(monkeypatch):
    k, y, ks = _problem(n=30)
    monkeypatch.setattr(regression, "CG_ABOVE", 30)
    assert regression.kernel_regression(k, y, ks, return_info=True)[1].solver == "direct"
    monkeypatch.setattr(regression, "CG_ABOVE", 29)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                        # ridgeless CG may stop short of tol: not the point
        assert regression.kernel_regression(k, y, ks, return_info=True)[1].solver == "cg"
    assert regression.kernel_regression(k, y, ks, solver="direct", return_info=True)[1].solver == "direct"
    with pytest.raises(ValueError, match="callable"):
        regression.kernel_regression(regression.block_matvec(k), y, ks, solver="direct")
    with pytest.raises(ValueError, match="solver must be"):
        regression.kernel_regression(k, y, ks, solver="lu")


def test_cg_refuses_a_kernel_with_nan():
    k, y, ks = _problem(n=20)
    k[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        regression.kernel_regression(k, y, ks, solver="cg")


def test_every_solve_is_recorded_in_results_json(tmp_path):
    """results.save writes this process's solves (meta.solves): one per kernel_regression, by
    solver, with the largest n and the largest true residual."""
    from ntk_utils import results
    regression.reset_solve_stats()
    assert regression.solve_stats() == {}
    k, y, k_test = _problem(40)
    _, direct = regression.kernel_regression(k, y, k_test, ridge=1e-3, solver="direct", return_info=True)
    _, cg = regression.kernel_regression(k[:30, :30], y[:30], k_test[:, :30], ridge=1e-3, solver="cg",
                                         return_info=True)
    recorded = results.load(results.save(tmp_path, {}, {}))["meta"]["solves"]
    assert recorded["solves"] == {"direct": 1, "cg": 1}
    assert recorded["n_max"] == 40
    assert recorded["residual_max"] == pytest.approx(max(direct.residual, cg.residual))
    assert recorded["cg_iterations_max"] == cg.iterations > 0
    assert recorded["cg_not_converged"] == 0
    assert list(recorded["details"]) == [cg.detail]
    regression.reset_solve_stats()
