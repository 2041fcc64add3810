"""Empirical NTK cost per neural-tangents implementation (not a test; prints a markdown table).

    python benchmarks/bench_empirical_ntk.py [--n 64] [--widths 16 64] [--size 32]

Seconds per 1000 kernel entries of K(X, X') (n x n, no symmetry shortcut) for Myrtle-5 at
the given widths and image size, for neural-tangents' implementations 1 (Jacobian contraction),
2 (NTK-vector products) and 3 (structured derivatives), and our plain-jax Jacobian contraction (0). Each configuration runs in its own process so that
an out-of-memory one does not take the others down; the second call is timed (the first
compiles).
"""
import argparse
import json
import subprocess
import sys

CHILD = """
import json, sys, time, numpy as np, jax
from ntk_utils import kernels, models
width, size, n, impl = map(int, sys.argv[1:5])
arch = models.myrtle(5, width)
x = np.random.default_rng(0).standard_normal((n, size, size, 3)).astype(np.float32)
params = models.flax_model(arch).init(jax.random.PRNGKey(0), x[:1])
run = lambda: kernels.empirical_ntk(models.flax_model(arch).apply, params, x, x[::-1].copy(), batch_size=min(n, 32),
                                    implementation=impl, progress=False)
first = time.perf_counter(); k = run(); first = time.perf_counter() - first
t = time.perf_counter(); k = run(); t = time.perf_counter() - t
print(json.dumps({"seconds": t, "compile_and_run": first,
                  "params": sum(v.size for v in jax.tree_util.tree_leaves(params)), "checksum": float(np.trace(k))}))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--implementations", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--timeout", type=int, default=600)
    args = parser.parse_args()
    print(f"Myrtle-5, {args.size}x{args.size} px, K(X, X') with n = {args.n}: seconds per 1000 entries")
    print("| width | params | impl 0 (plain jax) | impl 1 (Jacobian) | impl 2 (NTK-vector) | impl 3 (structured) |")
    print("|---|---|---|---|---|---|")
    for width in args.widths:
        cells, params = [], "?"
        for impl in (0, 1, 2, 3):
            if impl not in args.implementations:
                cells.append("not run")
                continue
            try:
                out = subprocess.run([sys.executable, "-c", CHILD, str(width), str(args.size), str(args.n), str(impl)],
                                     capture_output=True, text=True, timeout=args.timeout)
                if out.returncode:
                    tail = (out.stderr.strip().splitlines() or ["?"])[-1]
                    cells.append("failed: " + ("out of memory" if "memory" in tail.lower() or out.returncode == -9
                                               else tail[:60]))
                    continue
                result = json.loads(out.stdout.strip().splitlines()[-1])
                params = result["params"]
                cells.append(f"{result['seconds'] / (args.n ** 2 / 1000):.3f} s")
            except subprocess.TimeoutExpired:
                cells.append(f"> {args.timeout} s")
        print(f"| {width} | {params} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
