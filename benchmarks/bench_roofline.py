"""Roofline of the fast infinite NTK: fast_ntk's FLOP/s and bytes/s against this machine's limits.

    python benchmarks/bench_roofline.py                  # 8, 16 and 32 px (about a minute on 2 CPU cores)
    python benchmarks/bench_roofline.py --sizes 32 --reps 2
    python benchmarks/bench_roofline.py --rates rates.json   # this device's estimate.Rates (~3 min), then
    python -m ntk_utils.grid estimate parameters/paper.yaml --rates rates.json

One run measures the machine and fast_ntk, so the fractions compare numbers taken together:

* peak FLOP/s: a dense float32 matrix product ``jnp.dot(a, b)`` of ``--matmul`` x ``--matmul``
  matrices (2 N³ FLOPs; Precision.HIGHEST, as fast_ntk's contractions), best of ``--reps``.
* memory bandwidth: ``c = a + b`` on float32 arrays (3 x 4 bytes moved per element), best of
  ``--reps``, with jax (a fresh output per call) and, on CPU, numpy (``out=`` preallocated); the
  larger counts. "DRAM": arrays of 2^26 elements (256 MiB each, beyond any cache); "cache":
  arrays of the size of one tile's largest layer state (what fast_ntk's CPU tiles are sized to
  keep in cache).
* fast_ntk: ``fast_ntk.kernel(myrtle(5), x)`` of n random images with themselves (x2=None, as for a
  training-set kernel) in float32, tiles of b x b images (CASES; on an accelerator more images
  and fast_ntk's own tiles, CASES_ACCELERATOR); second call onwards timed.

fast_ntk's work is counted analytically from the recursion in fast_ntk's module docstring, per
pair of images and per layer: ``ntk_utils.layers.infinite_ntk_work`` (its docstring has the
table of FLOPs and bytes per pixel-pair element of each layer; the grid estimate uses it too).
Bytes are the compulsory traffic of evaluating layer by layer, as fast_ntk does on maps above 16
pixels (each layer one compiled computation, its output materialised); a sqrt counts as one FLOP.
Pairs computed: T(T+1)/2 tiles of b² pairs, T = ceil(n / b) (the diagonal tiles whole). XLA's own
``cost_analysis()`` of the compiled layers (jax 0.5.3, checked once) agrees on the FLOPs: 107-108
per element of the first layer's map at 8 and 32 px, this count 106.5; it counts 2.2x the bytes
(147-149 against 67), charging every shifted read of a convolution, which comes from cache.

Roofline: intensity I = FLOPs / bytes; bound = min(peak, I x bandwidth); "binds" says which of the
two is smaller; fraction = achieved FLOP/s / bound (the issue's goal: above 0.5).
"""
import argparse
import dataclasses
import datetime
import math
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from ntk_utils import estimate, fast_ntk, kernels, models, tiles, train

# image size -> (n images, tile side b): b as fast_ntk picks it on CPU (8 at 8 px, 1 from 16 px);
# n so that each timed call takes a few tenths of a second on 2 cores. On an accelerator fast_ntk
# picks the tiles from its free memory, on more images.
CASES = {8: (128, 8), 16: (32, 1), 32: (12, 1)}
CASES_ACCELERATOR = {8: (2048, None), 16: (512, None), 32: (128, None)}
DRAM_ELEMENTS = 2 ** 26


def best_time(fn, reps):
    """Best wall time of ``fn()`` over ``reps`` calls after one untimed (compiling) call."""
    fn()
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_flops(n, reps):
    """FLOP/s of a dense float32 n x n matrix product (2 n³ FLOPs), in full float32 as fast_ntk's
    contractions (Precision.HIGHEST: no TF32 on GPUs)."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n), np.float32))
    dot = jax.jit(lambda x, y: jnp.dot(x, y, precision=jax.lax.Precision.HIGHEST))
    return 2 * n ** 3 / best_time(lambda: dot(a, a).block_until_ready(), reps)


def add_bandwidth(elements, reps):
    """Bytes/s of c = a + b on float32 arrays (12 bytes per element): jax (a fresh output, as jax
    programs run) and, on CPU, numpy (output preallocated: no page faults); the better counts."""
    a, b = np.ones(elements, np.float32), np.ones(elements, np.float32)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    add = jax.jit(jnp.add)
    seconds = best_time(lambda: add(ja, jb).block_until_ready(), reps)
    if jax.default_backend() == "cpu":
        out = np.empty_like(a)
        seconds = min(seconds, best_time(lambda: np.add(a, b, out=out), reps))
    return 12 * elements / seconds


def cases():
    return CASES if jax.default_backend() == "cpu" else CASES_ACCELERATOR


def fast_ntk_case(size, n, b, reps):
    """Measured seconds and the pairs computed by fast_ntk for n images of size x size px, in
    tiles of b x b images (b None: fast_ntk's choice; then n(n+1)/2 pairs are counted, not the
    padding of the last tiles)."""
    arch = models.myrtle(5, width=1)
    x = np.random.default_rng(0).standard_normal((n, size, size, 3)).astype(np.float32)
    seconds = best_time(lambda: fast_ntk.kernel(arch, x, batch_size=b, progress=False), reps)
    tiles = -(-n // (b or 1))
    return arch, seconds, tiles * (tiles + 1) // 2 * (b or 1) ** 2


def network_timings(width, size, reps):
    """Timings of Myrtle-5 (standard parameterization) at ``width`` on 1024 random size x size
    images: one training step (the difference of 250- and 50-step fits, batch 128), a 50-step fit,
    the per-example Jacobians of all images (chunks of 256) and the eNTK of 256 images."""
    import jax.random
    arch = models.arch_from_config("myrtle", width, 5, "standard")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1024, size, size, 3)).astype(np.float32)
    y = np.sign(rng.standard_normal(1024)).astype(np.float32)

    def fit(steps):
        start = time.perf_counter()
        train.train(arch, x, y, train.TrainConfig(epochs=0, min_steps=steps), progress=False, use_cache=False)
        return time.perf_counter() - start
    fit(10)   # the first network of a process pays jax's own start-up
    short, long = min(fit(50) for _ in range(reps)), min(fit(250) for _ in range(reps))
    apply = models.flax_model(arch).apply
    params = models.flax_model(arch).init(jax.random.PRNGKey(0), x[:1])
    jacobian = jax.jit(kernels.jacobian_fn(apply))
    chunks = [x[i:i + 256] for i in range(0, len(x), 256)]
    return dict(arch=arch, forward=estimate.network_cost(arch, size)[0], step=(long - short) / 200, fit50=short,
                jacobians=best_time(lambda: [jacobian(params, c).block_until_ready() for c in chunks], reps),
                entk256=best_time(lambda: kernels.empirical_ntk(apply, params, x[:256]), reps))


def measure_rates(reps, path):
    """Write (to the JSON file ``path``) and print the :class:`ntk_utils.estimate.Rates` of this
    device: fast_ntk's seconds per pair at each image size of CASES, the matrix product, the DRAM
    bandwidth, and Myrtle-5's (standard parameterization) rates at width 64, 8x8 px; then check
    the model they make at width 32, 16x16 px."""
    fast = {}
    for size, (n, b) in cases().items():
        _, seconds, pairs = fast_ntk_case(size, n, b, reps)
        fast[size] = float(f"{seconds / pairs:.3g}")
    matmul = matmul_flops(2048, reps)
    t = network_timings(64, 8, reps)
    train_flops = 3 * t["forward"] * 128 / t["step"]
    rates = estimate.Rates(
        device=f"{jax.devices()[0].device_kind} ({os.cpu_count()} CPU cores), jax {jax.__version__}, "
               f"{datetime.date.today()}",
        fast_ntk_seconds=fast, matmul_flops=float(f"{matmul:.3g}"), train_flops=float(f"{train_flops:.3g}"),
        jacobian_flops=float(f"{3 * t['forward'] * 1024 / t['jacobians']:.3g}"),
        # a 50-step fit less its steps and its final pass over the 1024 training images
        train_call_seconds=round(t["fit50"] - 50 * t["step"] - t["forward"] * 1024 / train_flops, 2),
        entk_call_seconds=0.0, memory_bandwidth=float(f"{add_bandwidth(DRAM_ELEMENTS, reps):.3g}"))
    free = tiles.free_memory(jax.local_devices())
    if free is not None:                       # as kernels.entk_tile_size's tiles are sized on GPUs
        rates = dataclasses.replace(rates, tile_elements=float(f"{free / 4 / 8:.3g}"))
    compute = estimate.entk_seconds(t["arch"], 8, 256, rates=rates)
    rates = dataclasses.replace(rates, entk_call_seconds=round(t["entk256"] - compute, 2))
    rates.save(path)
    print(rates)
    print(f"written to {path}: python -m ntk_utils.grid estimate parameters/paper.yaml --rates {path}")
    check = network_timings(32, 16, reps)
    print(f"check, width 32 at 16x16 px: training step {check['step']:.4f} s (model: "
          f"{3 * check['forward'] * 128 / rates.train_flops:.4f}); eNTK of 256 images {check['entk256']:.2f} s "
          f"(model: {estimate.entk_seconds(check['arch'], 16, 256, rates=rates):.2f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(CASES))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--matmul", type=int, default=2048)
    parser.add_argument("--rates", metavar="FILE", help="measure this device's ntk_utils.estimate.Rates into FILE")
    args = parser.parse_args()
    if args.rates:
        return measure_rates(args.reps, args.rates)

    peak = matmul_flops(args.matmul, args.reps)
    dram = add_bandwidth(DRAM_ELEMENTS, args.reps)
    print(f"Machine: {datetime.date.today()}, {platform.processor() or platform.machine()} ({os.cpu_count()} cores), "
          f"{jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}. "
          f"Peak: float32 {args.matmul}² matrix product {peak / 1e9:.1f} GFLOP/s; "
          f"DRAM bandwidth (a + b, 256 MiB arrays) {dram / 1e9:.1f} GB/s.\n")
    print("| image | n (tile) | pairs | s | GFLOP / pair | MB / pair | FLOP/byte | achieved GFLOP/s | achieved GB/s "
          "| roofline bound GFLOP/s | fraction | binds | cache GB/s | bound with cache GB/s | fraction |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        n, b = cases().get(size, (8, 1))
        arch, seconds, pairs = fast_ntk_case(size, n, b, args.reps)
        flops, moved, largest = estimate.infinite_ntk_work(arch, size)
        cache = add_bandwidth(max(2 ** 16, largest * (b or 1) ** 2 // 4), args.reps)   # one tile's largest state
        intensity = flops / moved
        achieved_flops, achieved_bytes = flops * pairs / seconds, moved * pairs / seconds
        bound = min(peak, intensity * dram)
        bound_cache = min(peak, intensity * cache)
        binds = "memory" if intensity * dram < peak else "compute"
        print(f"| {size}x{size} | {n} ({f'{b}x{b}' if b else 'auto'}) | {pairs} | {seconds:.3f} | {flops / 1e9:.4f} | {moved / 1e6:.2f} "
              f"| {intensity:.2f} | {achieved_flops / 1e9:.1f} | {achieved_bytes / 1e9:.1f} | {bound / 1e9:.1f} "
              f"| {achieved_flops / bound:.2f} | {binds} | {cache / 1e9:.1f} | {bound_cache / 1e9:.1f} "
              f"| {achieved_flops / bound_cache:.2f} |", flush=True)


if __name__ == "__main__":
    main()
