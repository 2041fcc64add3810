"""Kernel-regression solve time vs n (not a test; prints a markdown table).

    python benchmarks/bench_regression.py [--ns 1000 2000 4000 8000]

Times ntk_utils.regression.kernel_regression (float64 Cholesky, ridgeless) on an RBF kernel
of random 64-dimensional inputs, float32 like our NTK kernels, with 1000 test points.
"""
import argparse
import time

import numpy as np

from ntk_utils import regression


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ns", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print("| n | solve (s) |")
    print("|---|---|")
    for n in args.ns:
        x = rng.standard_normal((n + 1000, 64))
        squared = (x ** 2).sum(1)
        k = np.exp(-(squared[:, None] + squared[None, :n] - 2 * x @ x[:n].T) / 128).astype(np.float32)
        y = np.sign(rng.standard_normal(n))
        start = time.perf_counter()
        regression.kernel_regression(k[:n], y, k[n:])
        print(f"| {n} | {time.perf_counter() - start:.2f} |", flush=True)


if __name__ == "__main__":
    main()
