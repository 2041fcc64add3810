"""Kernel (ridge) regression and the errors we report.

Given a kernel K, training inputs X (n) with targets y in {±1}^n and test inputs X* (m),
the kernel regression predictor is

    f(X*) = K(X*, X) (K(X, X) + λ·mean(diag K)·I)^{-1} y          shapes (m, n) (n, n) (n,)

λ = 0 is ridgeless interpolation, which is what the infinite-width NTK limit of a network
trained to zero MSE loss computes (from zero initial output). λ is relative to the mean
diagonal so that one value means the same for kernels of any scale. Everything is in float64.
Write μ = λ·mean(diag K) and A = K + μI; the solve is a = A^{-1} y, then f(X*) = K(X*, X) a.

Two solvers (``solver=``; "auto" picks "direct" for a matrix with n <= CG_ABOVE, else "cg"):

* "direct": Cholesky of A. A kernel that is singular in float64 (e.g. a float32 kernel whose
  smallest eigenvalues are below float32 rounding) gets a small diagonal jitter, then, if that
  is not enough, a pseudo-inverse that drops eigenvalues below rounding level, each with a
  warning; a kernel with clearly negative eigenvalues is not a kernel and raises an error.
  Cost: n³/3 flops and one float64 copy of K in memory (8·n² bytes, 20 GB at n = 50k) besides
  the kernel itself.
* "cg": preconditioned conjugate gradients (:func:`cg_solve`). It needs only products K·V, so
  K may be a memory-mapped .npy (``np.load(path, mmap_mode="r")``) read in row blocks, or any
  callable V (n, r) -> K V (:func:`block_matvec` makes one from an array): one pass over K per
  iteration plus one for the preconditioner, and O(n·r) memory. It stops at a relative
  residual ||A a - y|| / ||y|| <= tol (or after maxiter iterations, with a warning).

Every solve describes itself (:class:`SolveInfo`: solver, iterations, the true relative
residual, time): ``kernel_regression(..., return_info=True)``. This process's solves are also
summed up by :func:`solve_stats`, which ``results.metadata`` writes into every results.json
(``meta.solves``): how many solves of each kind, the largest n and residual, any fallback.
"""
import collections
import dataclasses
import time
import warnings

import numpy as np
import scipy.linalg

# "auto" uses CG above this many training points. The direct solve is exact and robust for the
# ridgeless (ill-conditioned) kernels of the paper, so it is kept wherever it fits: at n = 50k
# its float64 copy of K is 20 GB (+ 10 GB for a float32 kernel) and n³/3 = 4e13 flops, minutes
# on a many-core host. Above that, K is read from disk in blocks by CG.
CG_ABOVE = 50_000
# Rank r of the Nyström preconditioner: its sketch costs one product K Ω with Ω (n, r).
NYSTROM_RANK = 256
# Rows of K read at a time by block_matvec: about this many bytes of float64 per block. Small,
# cache-sized blocks convert a float32 K to float64 at memory speed: at n = 8000 one pass took
# 0.04 s with 4 MB blocks and 0.46 s with 256 MB blocks (page faults of the large temporaries).
BLOCK_BYTES = 2 ** 22

_SOLVES = []   # SolveInfo of every kernel_regression of this process (solve_stats)


@dataclasses.dataclass
class SolveInfo:
    """How (K + μI) a = y was solved. ``dataclasses.asdict(info)`` is what to record."""
    solver: str            # "direct" or "cg"
    n: int                 # training points
    residual: float        # ||(K + μI) a - y|| / ||y||, recomputed from a (largest over target columns)
    iterations: int = 0    # CG iterations (0 for the direct solve)
    converged: bool = True  # CG: residual <= tol
    passes: int = 0        # reads of all of K (what a kernel on disk costs): copies + residual for
                           # the direct solve; sketch + iterations + residual checks for CG
    seconds: float = 0.0
    detail: str = ""       # e.g. "cholesky", "cholesky, jitter 1e-08", "nystrom rank 256, tol 1e-06"


def block_matvec(k, block_rows=None):
    """V -> K V in float64, reading ``k`` (rows, n) ``block_rows`` rows at a time.

    ``k`` is any array that slices by rows: in memory, or ``np.load(path, mmap_mode="r")`` for a
    kernel on disk (only one block of rows is in memory at a time; default: BLOCK_BYTES of float64).
    V is (n,) or (n, r); the result (rows,) or (rows, r).
    """
    rows = block_rows or max(1, BLOCK_BYTES // (8 * k.shape[1]))

    def matvec(v):
        v = np.asarray(v, dtype=np.float64)
        return np.concatenate([np.asarray(k[i:i + rows], dtype=np.float64) @ v for i in range(0, k.shape[0], rows)])
    return matvec


def kernel_regression(k_train_train, y_train, k_test_train, *, ridge=0.0, solver="auto", tol=1e-6, maxiter=1000,
                      diag=None, return_info=False):
    """Predictions f(X*) of shape (m,) (or (m, k) for targets of shape (n, k)).

    Args:
      k_train_train: (n, n) kernel on the training inputs (an array, or memory-mapped), or a
        callable V (n, r) -> K V (n, r) (then the solver is CG; see :func:`block_matvec`).
      y_train: (n,) or (n, k) targets.
      k_test_train: (m, n) kernel between test and training inputs (an array, or memory-mapped,
        read in row blocks), or a callable a (n, k) -> K(X*, X) a (m, k).
      ridge: λ >= 0, relative to mean(diag K(X, X)).
      solver: "auto" | "direct" | "cg" (module docstring).
      tol, maxiter, diag: for CG (:func:`cg_solve`); ``diag`` (n,) is needed for a callable
        kernel with ridge > 0.
      return_info: also return the :class:`SolveInfo`.
    """
    y = np.asarray(y_train, dtype=np.float64)
    n = y.shape[0]
    # Arrays (lists, jax arrays) as numpy; a memory map stays a lazy view of its file.
    k_train_train = k_train_train if callable(k_train_train) else np.asarray(k_train_train)
    k_test_train = k_test_train if callable(k_test_train) else np.asarray(k_test_train)
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    if not callable(k_train_train) and k_train_train.shape != (n, n) or (
            not callable(k_test_train) and k_test_train.shape[1] != n):
        raise ValueError(f"shape mismatch: K(X,X) {getattr(k_train_train, 'shape', 'callable')}, y {y.shape}, "
                         f"K(X*,X) {getattr(k_test_train, 'shape', 'callable')}")
    if solver == "auto":
        solver = "cg" if callable(k_train_train) or n > CG_ABOVE else "direct"
    if solver == "direct":
        if callable(k_train_train):
            raise ValueError("the direct solve needs K(X, X) as a matrix; use solver='cg' for a callable")
        a, info = direct_solve(k_train_train, y, ridge=ridge)
    elif solver == "cg":
        a, info = cg_solve(k_train_train, y, ridge=ridge, diag=diag, tol=tol, maxiter=maxiter)
    else:
        raise ValueError(f"solver must be 'auto', 'direct' or 'cg', got {solver!r}")
    predictions = (k_test_train if callable(k_test_train) else block_matvec(k_test_train))(a)
    if not np.all(np.isfinite(predictions)):
        raise ValueError("kernel contains NaN or inf (K(X*, X))")
    _SOLVES.append(info)
    return (predictions, info) if return_info else predictions


def solve_stats():
    """This process's kernel-regression solves, for results.json: {"solves": {solver: count},
    "n_max", "residual_max" (the largest relative residual ||(K + μI) a - y|| / ||y||),
    "cg_iterations_max", "cg_not_converged", "seconds", "details": {detail: count} of the solves
    other than a plain Cholesky (a jitter, a pseudo-inverse, CG's preconditioner)}; {} before any solve."""
    if not _SOLVES:
        return {}
    residuals = [s.residual for s in _SOLVES]
    return {"solves": dict(collections.Counter(s.solver for s in _SOLVES)),
            "n_max": max(s.n for s in _SOLVES),
            "residual_max": float("nan") if np.isnan(residuals).any() else max(residuals),
            "cg_iterations_max": max(s.iterations for s in _SOLVES),
            "cg_not_converged": sum(not s.converged for s in _SOLVES),
            "seconds": round(sum(s.seconds for s in _SOLVES), 2),
            "details": dict(collections.Counter(s.detail for s in _SOLVES if s.detail != "cholesky"))}


def reset_solve_stats():
    _SOLVES.clear()


def _relative_residual(matvec, mu, a, y):
    """max over columns of ||(K + μI) a - y|| / ||y|| (a column y = 0 counts ||(K + μI) a||)."""
    a2, y2 = a.reshape(len(a), -1), y.reshape(len(y), -1)
    r = np.linalg.norm(matvec(a2) + mu * a2 - y2, axis=0) / _norms(y2)
    return float(r.max()) if np.all(np.isfinite(r)) else float("nan")


def _norms(y2):
    norms = np.linalg.norm(y2, axis=0)
    return np.where(norms > 0, norms, 1.0)


def direct_solve(k, y, *, ridge=0.0):
    """(a, SolveInfo): a = (K + μI)^{-1} y by float64 Cholesky (module docstring), μ = ridge·mean(diag K).

    k: (n, n) array (float32 or float64; memory-mapped is read once per attempt); y: (n,) or (n, k).
    """
    start = time.perf_counter()
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    scale = float(np.mean(np.diagonal(k), dtype=np.float64))
    detail, a, passes = None, None, 1        # the residual's pass
    for jitter in (0.0, 1e-10, 1e-8, 1e-6):
        system = np.array(k, dtype=np.float64)      # a fresh copy each try: cho_factor overwrites it
        passes += 1
        if jitter == 0.0 and not np.all(np.isfinite(system)):
            raise ValueError("kernel contains NaN or inf")
        system[np.diag_indices(n)] += (ridge + jitter) * scale
        try:
            factor = scipy.linalg.cho_factor(system, lower=True, overwrite_a=True, check_finite=False)
        except np.linalg.LinAlgError:
            continue
        if jitter:
            warnings.warn(f"kernel matrix is singular in float64; added jitter {jitter:g}·mean(diag K)")
        detail, a = "cholesky" + (f", jitter {jitter:g}" if jitter else ""), scipy.linalg.cho_solve(factor, y)
        break
    del system
    if a is None:
        eigenvalues, vectors = np.linalg.eigh(np.asarray(k, dtype=np.float64) + ridge * scale * np.eye(n))
        passes += 1
        top = max(abs(eigenvalues).max(), 1e-300)
        if eigenvalues.min() < -1e-3 * top:
            raise np.linalg.LinAlgError(
                f"kernel matrix (n={n}) is not positive definite: eigenvalue {eigenvalues.min():.3g} vs largest "
                f"{top:.3g}; it is not a valid kernel (check how it was computed)")
        keep = eigenvalues > n * np.finfo(np.float32).eps * top
        warnings.warn(f"kernel matrix is singular: solved by pseudo-inverse on {keep.sum()} of {n} eigenvalues")
        detail = f"pseudo-inverse on {keep.sum()} of {n} eigenvalues"
        a = vectors[:, keep] @ ((vectors[:, keep].T @ y).T / eigenvalues[keep]).T
    residual = _relative_residual(block_matvec(k), ridge * scale, a, y)
    return a, SolveInfo("direct", n, residual, passes=passes, seconds=time.perf_counter() - start, detail=detail)


def nystrom_preconditioner(matvec, n, rank, mu, seed=0):
    """v (n, k) -> P^{-1} v: the randomized Nyström preconditioner of K + μI.

    Frangella, Tropp & Udell, "Randomized Nyström preconditioning" (SIAM J. Matrix Anal. Appl.
    2023). With Ω (n, r) orthonormal random columns and Y = K Ω (one
    block product), the Nyström approximation K̂ = Y (Ωᵀ Y)^+ Yᵀ = U Λ̂ Uᵀ (U (n, r) orthonormal,
    λ̂_1 >= ... >= λ̂_r; computed with a tiny shift ν so Ωᵀ Y stays positive definite in floating
    point) gives

        P^{-1} = (λ̂_r + μ) U (Λ̂ + μI)^{-1} Uᵀ + (I - U Uᵀ).

    P^{-1} maps the top eigenvalues λ_i + μ (i <= r) of K + μI to about λ̂_r + μ and leaves the
    others (λ_j + μ, j > r) as they are: the condition number CG sees drops from
    (λ_1 + μ)/(λ_n + μ) to about (λ_r + μ)/(λ_n + μ), i.e. to O(1) once μ >~ λ_r. Kernel spectra
    decay fast, so a few hundred columns take out the large eigenvalues that slow plain CG; a
    ridgeless (μ = 0) system stays as ill-conditioned as λ_r/λ_n. rank = 0: no preconditioner.
    """
    if rank == 0:
        return lambda v: v
    omega = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, rank)))[0]
    sketch = np.asarray(matvec(omega), dtype=np.float64)
    nu = np.sqrt(n) * np.finfo(np.float64).eps * np.linalg.norm(sketch)
    sketch += nu * omega
    core = omega.T @ sketch
    w, v = np.linalg.eigh((core + core.T) / 2)
    keep = w > w.max() * rank * np.finfo(np.float64).eps     # also drops a slightly indefinite K's negatives
    u, s, _ = np.linalg.svd(sketch @ (v[:, keep] / np.sqrt(w[keep])), full_matrices=False)
    lam = s ** 2 - nu
    keep = lam > (lam[0] if len(lam) else 0) * n * np.finfo(np.float64).eps
    u, lam = u[:, keep], lam[keep]
    if not len(lam):                                          # K ≈ 0: nothing to precondition
        return lambda v: v
    weights = (lam[-1] + mu) / (lam + mu) - 1.0
    return lambda v: v + u @ (weights[:, None] * (u.T @ v))


def cg_solve(k, y, *, ridge=0.0, diag=None, tol=1e-6, maxiter=1000, rank=NYSTROM_RANK, seed=0):
    """(a, SolveInfo): (K + μI) a = y, μ = ridge·mean(diag K), by preconditioned conjugate gradients.

    Preconditioner: randomized Nyström of rank ``rank`` (:func:`nystrom_preconditioner`). The
    columns of y (n, k) are solved together (each with its own CG scalars), so each iteration
    is one pass over K for all of them. Stops when every column's relative residual
    ||(K + μI) a - y|| / ||y|| <= tol, or after ``maxiter`` iterations with a warning; the
    residual in the SolveInfo is recomputed from a (one more pass), not CG's running estimate.

    Args:
      k: (n, n) array (memory-mapped is fine: read in row blocks by :func:`block_matvec`) or a
        callable V (n, r) -> K V (n, r) in float64.
      y: (n,) or (n, k) targets.
      diag: (n,) diagonal of K; needed for a callable with ridge > 0 (μ is relative to its mean).
      seed: of the random sketch (the solution does not depend on it, the iterations may).
    """
    start = time.perf_counter()
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if callable(k):
        matvec = k
        if ridge > 0 and diag is None:
            raise ValueError("a callable kernel with ridge > 0 needs diag= (the ridge is relative to mean(diag K))")
    else:
        if k.shape != (n, n):
            raise ValueError(f"shape mismatch: K(X,X) {k.shape}, y {y.shape}")
        matvec = block_matvec(k)
        diag = np.diagonal(k) if diag is None else diag
    mu = ridge * float(np.mean(diag, dtype=np.float64)) if ridge > 0 else 0.0

    def checked(v):                      # K v, refusing a kernel that is not finite
        out = np.asarray(matvec(v), dtype=np.float64)
        if out.shape != v.shape:
            raise ValueError(f"kernel matvec returned shape {out.shape} for input {v.shape}")
        if not np.all(np.isfinite(out)):
            raise ValueError("kernel contains NaN or inf")
        return out

    def system(v):                       # (K + μI) v
        return checked(v) + mu * v

    rank = min(rank, n)
    precondition = nystrom_preconditioner(checked, n, rank, mu, seed)

    y2 = y.reshape(n, -1)
    norms = _norms(y2)
    x, r = np.zeros_like(y2), y2.copy()
    iterations, checks = 0, 0
    while True:
        # CG from x. Its running residual r drifts from the true one in floating point, so once it
        # reaches tol the true residual is recomputed (one pass) and CG restarts from it if needed.
        z = precondition(r)
        p, rz = z.copy(), np.sum(r * z, axis=0)
        restart_at = iterations
        while iterations < maxiter and np.max(np.linalg.norm(r, axis=0) / norms) > tol:
            q = system(p)
            pq = np.sum(p * q, axis=0)
            alpha = np.divide(rz, pq, out=np.zeros_like(rz), where=pq > 0)   # 0 for a converged column
            if not np.any(alpha):        # no direction left with positive curvature: CG cannot go on
                break
            x += alpha * p
            r -= alpha * q
            z = precondition(r)
            rz, rz_old = np.sum(r * z, axis=0), rz
            p = z + np.divide(rz, rz_old, out=np.zeros_like(rz), where=rz_old > 0) * p
            iterations += 1
        r, checks = y2 - system(x), checks + 1
        residual = float(np.max(np.linalg.norm(r, axis=0) / norms))
        if residual <= tol or iterations >= maxiter or iterations == restart_at:
            break
    a = x.reshape(y.shape)
    converged = residual <= tol
    if not converged:
        warnings.warn(f"CG stopped after {iterations} iterations at relative residual {residual:.3g} > tol {tol:g} "
                      f"(n={n}, ridge={ridge:g}); raise maxiter or the ridge, or use solver='direct'")
    return a, SolveInfo("cg", n, residual, iterations=iterations, converged=converged,
                        passes=int(rank > 0) + iterations + checks, seconds=time.perf_counter() - start,
                        detail=f"nystrom rank {rank}, tol {tol:g}")


def misclassified(predictions, y):
    """(T,) bool: sign(f) != y for predictions f and ±1 labels y, a tie f = 0 counting as +1: the
    one 0-1 rule (test errors, per-example outcomes, a network's training and validation error)."""
    predictions, y = np.asarray(predictions).reshape(-1), np.asarray(y).reshape(-1)
    return np.where(predictions >= 0, 1.0, -1.0) != y


def test_error(predictions, y):
    """0-1 error of sign predictions against ±1 labels: mean(sign(f) != y)."""
    return float(np.mean(misclassified(predictions, y)))


def kernel_test_error(k_train_train, y_train, k_test_train, y_test, *, ridge=0.0, solver="auto"):
    """0-1 test error of kernel regression (the number every scaling curve plots)."""
    return test_error(kernel_regression(k_train_train, y_train, k_test_train, ridge=ridge, solver=solver), y_test)
