"""Direct (Cholesky) vs Nyström-preconditioned CG kernel regression (not a test; prints a markdown table).

    python benchmarks/bench_solvers.py [--ns 1000 2000 4000] [--ridges 0 1e-4] [--kernel relu-ntk]
    python benchmarks/bench_solvers.py --from DIR      # DIR/{k,k_test,y,y_test}.npy, e.g. a real NTK

Kernels: "rbf" (RBF of random 64-d inputs, as bench_regression.py) or "relu-ntk" (the NTK of a
one-hidden-layer ReLU network on random 64-d inputs with labels from a noisy linear rule), float32
like our NTK kernels; or a saved kernel (K (N, N), K_test (T, N), y (N,), y_test (T,)), read
memory-mapped: the leading n x n block serves each n. Both solvers go through
regression.kernel_regression with 1000 (or T) test points; "agree" is the fraction of test
points whose predicted sign is the same, Δf = max |f_cg - f_direct| / max |f_direct|.
On a machine shared with other jobs, OPENBLAS_NUM_THREADS=1 keeps the timings stable (with
more BLAS threads than free cores, LAPACK calls slowed down by up to 10x in our runs).
"""
import argparse
import pathlib
import time
import warnings

import numpy as np

from ntk_utils import regression


def synthetic(kind, n, m, rng):
    x = rng.standard_normal((n + m, 64))
    y = np.sign(x @ rng.standard_normal(64) + 0.5 * rng.standard_normal(n + m))
    if kind == "rbf":
        squared = (x ** 2).sum(1)
        k = np.exp(-(squared[:, None] + squared[None, :n] - 2 * x @ x[:n].T) / 128)
    else:
        norms = np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(x[:n], axis=1))
        cos = np.clip(x @ x[:n].T / norms, -1, 1)
        theta = np.arccos(cos)
        k = norms * (np.sin(theta) + (np.pi - theta) * cos) / np.pi + (x @ x[:n].T) * (np.pi - theta) / np.pi
    k = k.astype(np.float32)
    return k[:n], k[n:], y[:n], y[n:]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ns", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--ridges", type=float, nargs="+", default=[0.0, 1e-4])
    parser.add_argument("--kernel", choices=["rbf", "relu-ntk"], default="relu-ntk")
    parser.add_argument("--from", dest="source", type=pathlib.Path, help="folder with k, k_test, y, y_test .npy")
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--maxiter", type=int, default=1000)
    args = parser.parse_args()
    if args.source:
        saved = {name: np.load(args.source / f"{name}.npy", mmap_mode="r") for name in ("k", "k_test", "y", "y_test")}
    print(f"kernel: {args.source or args.kernel}; CG: Nyström rank {regression.NYSTROM_RANK}, tol {args.tol:g}, "
          f"maxiter {args.maxiter}\n")
    print("| n | ridge | direct (s) | CG (s) | CG iterations | CG residual | Δf | agree | test error direct / CG |")
    print("|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in args.ns:
        if args.source:
            k, k_test = saved["k"][:n, :n], saved["k_test"][:, :n]
            y, y_test = np.asarray(saved["y"][:n]), np.asarray(saved["y_test"])
        else:
            k, k_test, y, y_test = synthetic(args.kernel, n, 1000, rng)
        for ridge in args.ridges:
            start = time.perf_counter()
            f_direct = regression.kernel_regression(k, y, k_test, ridge=ridge, solver="direct")
            direct_s = time.perf_counter() - start
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")       # a CG that stops short shows in the residual column
                f_cg, info = regression.kernel_regression(k, y, k_test, ridge=ridge, solver="cg", tol=args.tol,
                                                          maxiter=args.maxiter, return_info=True)
            cg_s = time.perf_counter() - start
            delta = np.abs(f_cg - f_direct).max() / np.abs(f_direct).max()
            agree = np.mean(np.sign(f_cg) == np.sign(f_direct))
            errors = f"{regression.test_error(f_direct, y_test):.4f} / {regression.test_error(f_cg, y_test):.4f}"
            print(f"| {n} | {ridge:g} | {direct_s:.2f} | {cg_s:.2f} | {info.iterations} | {info.residual:.1e} | "
                  f"{delta:.1e} | {agree:.4f} | {errors} |", flush=True)


if __name__ == "__main__":
    main()
