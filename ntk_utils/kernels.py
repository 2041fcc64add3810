"""Neural tangent kernels: empirical (of a finite network) and infinite-width.

Empirical NTK of a scalar-output network f(x; θ):

    Θ(x, x') = Σ_p ∂f(x)/∂θ_p · ∂f(x')/∂θ_p                       (n1, n2)

at any parameters θ: at initialization (the "eNTK"), after training on m samples (the
"after-kernel" K_m), or at training time t (K^t). The linearized network around θ0, trained
to convergence on MSE, predicts f0(x) + Θ(x, X) Θ(X, X)^-1 (y - f0(X)) with f0 = f(·; θ0): kernel
regression with Θ from zero equals it only when f0 = 0 (a centred network, or f0 ≈ 0);
``experiments.entk_outcomes(..., linearized=True)`` computes the f0 version.

Infinite NTK: the limit of Θ at initialization as every hidden width -> ∞, in the NTK
parameterization (deterministic, depends only on the architecture). Computed by
``ntk_utils.fast_ntk`` (batched matrix products) where the architecture allows, else by
neural-tangents' ``kernel_fn`` on tiles (:func:`tiled_kernel`).

Both are computed in square tiles so memory stays bounded for n in the tens of thousands;
a Gram matrix K(X, X) computes only the tiles on and above the diagonal and mirrors them.
Tiles are spread round robin over all local jax devices and accumulated on the host in
float32, with a progress bar per kernel (tiles done, entries/s, time left): ``ntk_utils.tiles``,
which fast_ntk shares. A tile is the same computation on any device, so the kernel does not
depend on the number of devices (on one device: the numbers of a plain loop over the tiles).
Tile sizes come from the devices' free memory where jax reports it (GPUs), else fixed
defaults (:func:`entk_tile_size`).

The ``*_cached`` helpers keep results in the content-addressed cache (``ntk_utils.cache``).
A kernel of at least ``RESUME_ENTRIES`` entries is also written tile by tile into a folder
beside its cache entry, ``<cache dir>/<kind>/<key>.partial/`` (``tiles.TileStore``: a
memory-mapped .npy and a record of the finished tiles): a computation killed midway resumes
from its last recorded tile when called again, and gives the same kernel; once the kernel is
in the cache the folder is removed.
"""
import math
import shutil
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ntk_utils import cache, fast_ntk, models, tiles
from ntk_utils._compat import neural_tangents

# How the eNTK is computed ("auto", the default; the measurements behind it: benchmarks/README.md):
# * when the Jacobians of all inputs fit in JACOBIAN_BYTES and the network has at most
#   FULL_JACOBIAN_MAX_PARAMS parameters, they are computed once (plain jax, per-example
#   gradients in chunks) and contracted in one matrix product: each Jacobian row is computed
#   once instead of once per tile pair (uses_full_jacobian);
# * otherwise (wide networks, large n) neural-tangents implementation 1 (Jacobian contraction)
#   on tiles, the fastest of its three on CPU (benchmarks/bench_empirical_ntk.py).
DEFAULT_IMPLEMENTATION = "auto"
JACOBIAN_BYTES = 4e9
FULL_JACOBIAN_MAX_PARAMS = 2_000_000
# Elements (tile x P) of one tile's Jacobian on CPU (no memory statistics): two of them in
# float32 stay ~< 0.5 GB. On GPUs: a quarter of the least free device memory, over 2 x 4 bytes.
TILE_ELEMENTS_CPU = 6e7
# Cached kernels with at least this many entries (n1·n2; 4096 x 4096) are written tile by tile
# to disk and resume after a crash (empirical_ntk_cached / infinite_ntk_cached, argument resume_entries).
RESUME_ENTRIES = 2 ** 24


def _param_count(params):
    return sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree_util.tree_leaves(params))


def _jacobians_fit(param_count, n_examples):
    return n_examples * param_count * 4 <= JACOBIAN_BYTES


def uses_full_jacobian(param_count, n_examples):
    """Whether the "auto" eNTK of a network of ``param_count`` parameters on ``n_examples``
    inputs (n1 + n2) computes every Jacobian once (:func:`full_jacobian_ntk`), rather than
    neural-tangents' implementation 1 on tiles."""
    return _jacobians_fit(param_count, n_examples) and param_count <= FULL_JACOBIAN_MAX_PARAMS


def entk_tile_size(param_count, tile_elements):
    """Tile size of the tiled eNTK: implementation 1 holds two tiles' Jacobians, tile x P each;
    the largest power of 2 with tile x P <= ``tile_elements``, between 8 and 512."""
    return int(np.clip(2 ** int(math.log2(max(1, tile_elements // max(1, param_count)))), 8, 512))


def _tile_elements(devices):
    """:data:`TILE_ELEMENTS_CPU`, or on GPUs a quarter of the least free device memory (the
    rest: activations of the per-example backward passes) over two float32 Jacobians."""
    free = tiles.free_memory(devices)
    return TILE_ELEMENTS_CPU if free is None else free / 4 / (2 * 4)


def _replicas(tree, devices):
    """{device: ``tree`` on that device}: parameters are sent to each device once, not per tile."""
    return {d: jax.device_put(tree, d) for d in devices}


def _pad(x, size):
    """x padded with zeros along axis 0 to ``size`` rows (fixed tile shapes compile once)."""
    if x.shape[0] == size:
        return x
    return np.concatenate([x, np.zeros((size - x.shape[0],) + x.shape[1:], x.dtype)])


def tiled_kernel(tile_fn, x1, x2=None, *, batch_size, progress=None, desc="kernel", devices=None, resume_dir=None):
    """Assemble K(x1, x2) (n1, n2) float32 from ``tile_fn(a, b) -> (len(a), len(b))`` on tiles.

    Every tile is padded to ``batch_size`` rows so ``tile_fn`` sees one shape; with
    ``x2=None`` only tiles with j >= i are computed and K is mirrored (symmetric).
    Tiles go round robin to ``devices`` (default: all local devices): ``a`` and ``b`` arrive
    on the tile's device (``a.device``), where a jitted ``tile_fn`` runs, several tiles in
    flight per device; the blocks are written on the host in float32 as they come back.
    ``progress``: a bar of tiles done, entries/s and time left (None: from 5 tiles on).
    ``resume_dir``: write K tile by tile into this folder and resume from it
    (``tiles.TileStore``; the tiling must be the same).
    """
    x1 = np.asarray(x1)
    symmetric = x2 is None
    x2 = x1 if symmetric else np.asarray(x2)
    n1, n2 = len(x1), len(x2)
    devices = list(devices or jax.local_devices())
    t1, t2 = -(-n1 // batch_size), -(-n2 // batch_size)
    pairs = [(i, j) for i in range(t1) for j in range(t2) if not symmetric or j >= i]
    matrix = tiles.TiledKernel(("kernel",), (n1, n2), (batch_size, batch_size), pairs, symmetric=symmetric,
                               dtype=np.float32, batch_size=batch_size, desc=desc, show=progress, min_tiles=5,
                               resume_dir=resume_dir)

    def tile(ij, device):
        a, b = (jax.device_put(_pad(x[t * batch_size:(t + 1) * batch_size], batch_size), device)
                for x, t in ((x1, ij[0]), (x2, ij[1])))
        return tile_fn(a, b)

    todo = pairs[matrix.done:]
    matrix.fill(todo, ([block] for block in tiles.on_devices(tile, todo, devices)))
    return matrix.close()[0]


def jacobian_fn(apply_fn):
    """``jacobian(params, x) -> (n, P)``: per-example gradients ∂f(x_i)/∂θ, flattened (plain jax)."""
    def jacobian(params, x):
        grads = jax.vmap(lambda xi: jax.grad(lambda p: apply_fn(p, xi[None])[0, 0])(params))(x)
        return jnp.concatenate([g.reshape(len(x), -1) for g in jax.tree_util.tree_leaves(grads)], axis=1)
    return jacobian


def full_jacobian_ntk(apply_fn, params, x1, x2=None, *, batch_size=256, devices=None):
    """Θ = J(x1) J(x2)^T with the (n, P) Jacobians computed once, in chunks of ``batch_size``
    spread over ``devices`` (default: all local devices), the product on the host.

    Memory (n1 + n2)·P·4 bytes; needs no neural-tangents. Exactly symmetric for x2=None."""
    jacobian = jax.jit(jacobian_fn(apply_fn))
    devices = list(devices or jax.local_devices())
    on = _replicas(params, devices)

    def rows(x):
        x = np.asarray(x)
        chunks = [x[i:i + batch_size] for i in range(0, len(x), batch_size)]
        run = lambda c, d: jacobian(on[d], jax.device_put(_pad(c, batch_size), d))
        return np.concatenate([j[:len(c)] for c, j in zip(chunks, tiles.on_devices(run, chunks, devices))])
    j1 = rows(x1)
    if x2 is None:
        k = j1 @ j1.T
        return np.triu(k) + np.triu(k, 1).T
    return j1 @ rows(x2).T


def empirical_ntk(apply_fn, params, x1, x2=None, *, batch_size=None, implementation=DEFAULT_IMPLEMENTATION,
                  progress=None, devices=None, resume_dir=None):
    """Empirical NTK Θ(x1, x2) of a scalar-output network at ``params``.

    Args:
      apply_fn: ``apply_fn(params, x) -> (n, 1)``, e.g. ``models.flax_model(arch).apply``.
      params: any pytree of parameters (flax variables dict).
      x1: (n1, ...) inputs; x2: (n2, ...) inputs or None for Θ(x1, x1).
      batch_size: tile size (default: chosen from the parameter count and the devices' free
        memory to bound memory, or the one recorded in ``resume_dir``).
      implementation: "auto" (see DEFAULT_IMPLEMENTATION above), 0 for the plain-jax
        :func:`full_jacobian_ntk` (tiled when the Jacobians do not fit; also the fallback where
        neural-tangents cannot be imported), or a neural-tangents ``NtkImplementation`` on tiles
        (1 = Jacobian contraction, 2 = NTK-vector products, 3 = structured derivatives).
      devices: jax devices to spread the tiles (or Jacobian chunks) over; default all local ones.
      resume_dir: a folder the tiled computations write their tiles into and resume from
        (:func:`tiled_kernel`). The full-Jacobian path (bounded by JACOBIAN_BYTES, so never
        long) ignores it.
    Returns:
      (n1, n2) float32 numpy array.
    """
    devices = list(devices or jax.local_devices())
    n_total, param_count = len(x1) + (0 if x2 is None else len(x2)), _param_count(params)
    if implementation == "auto":
        implementation = 0 if uses_full_jacobian(param_count, n_total) else 1
    if implementation == 0 and _jacobians_fit(param_count, n_total):
        return full_jacobian_ntk(apply_fn, params, x1, x2, batch_size=min(256, batch_size or 256), devices=devices)
    if implementation == 0:
        jacobian = jacobian_fn(apply_fn)
        ntk_fn = jax.jit(lambda a, b, p: jacobian(p, a) @ jacobian(p, b).T)
    else:
        try:
            nt = neural_tangents()
        except ImportError:
            return empirical_ntk(apply_fn, params, x1, x2, batch_size=batch_size, implementation=0, progress=progress,
                                 devices=devices, resume_dir=resume_dir)
        ntk_fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=implementation))
    batch_size = (batch_size or tiles.TileStore.batch_size(resume_dir)
                  or entk_tile_size(param_count, _tile_elements(devices)))
    on = _replicas(params, devices)
    return tiled_kernel(lambda a, b: ntk_fn(a, b, on[a.device]), x1, x2, batch_size=batch_size, progress=progress,
                        desc="empirical NTK", devices=devices, resume_dir=resume_dir)


def infinite_ntk(arch, x1, x2=None, *, batch_size=None, get="ntk", progress=None, devices=None, resume_dir=None):
    """Infinite-width NTK (``get="ntk"``) or NNGP (``get="nngp"``) of ``arch``: (n1, n2) array.

    Uses ``ntk_utils.fast_ntk`` when it supports the architecture, else neural-tangents'
    ``kernel_fn`` on tiles (:func:`tiled_kernel`: spread over ``devices``, default all local
    ones). ``resume_dir``: write the kernel tile by tile there and resume from it.
    """
    reason = fast_ntk.unsupported(arch, np.shape(x1)[1:])
    if reason is None:
        return np.asarray(fast_ntk.kernel(arch, x1, x2, get=get, batch_size=batch_size, progress=progress,
                                          devices=devices, resume_dir=resume_dir))
    warnings.warn(f"fast_ntk cannot compute the infinite NTK of {arch.name}: {reason}; "
                  "using neural-tangents (several times slower)", stacklevel=2)
    nt = neural_tangents()
    batch_size = batch_size or tiles.TileStore.batch_size(resume_dir) or 16
    # device_count=0: one device per tile (tiled_kernel spreads the tiles), jitted.
    kernel_fn = nt.batch(models.stax_kernel_fn(arch), batch_size=batch_size, device_count=0, store_on_device=False)
    return tiled_kernel(lambda a, b: kernel_fn(a, b, get), x1, x2, batch_size=batch_size, progress=progress,
                        desc=f"infinite {get.upper()}", devices=devices, resume_dir=resume_dir)


def empirical_ntk_cached(arch, params, x1, x2=None, *, use_cache=True, resume_entries=RESUME_ENTRIES, **kwargs):
    """Empirical NTK of the flax network of ``arch`` at ``params``, cached on disk; from
    ``resume_entries`` entries on written tile by tile and resumed after a crash."""
    apply_fn = models.flax_model(arch).apply
    return _cached("entk", (arch, params, x1, x2, kwargs.get("implementation", DEFAULT_IMPLEMENTATION)),
                   lambda folder: empirical_ntk(apply_fn, params, x1, x2, resume_dir=folder, **kwargs),
                   x1, x2, use_cache, resume_entries)


def infinite_ntk_cached(arch, x1, x2=None, *, parameterization=None, get="ntk", use_cache=True,
                        resume_entries=RESUME_ENTRIES, **kwargs):
    """:func:`infinite_ntk` of ``arch.limit(parameterization)``: the infinite-width limit of the
    network in ``parameterization``, by default its own (``ntk_utils.models``' docstring), cached
    on disk (keyed by the limit's architecture, inputs and ``get``); from ``resume_entries``
    entries on written tile by tile and resumed after a crash."""
    return _cached("infinite-" + get, (arch.kernel_describe(parameterization), x1, x2),
                   lambda folder: infinite_ntk(arch.limit(parameterization), x1, x2, get=get, resume_dir=folder,
                                               **kwargs),
                   x1, x2, use_cache, resume_entries)


def _cached(kind, parts, compute, x1, x2, use_cache, resume_entries):
    """``cache.cached(kind, parts, ...)`` of ``compute(folder)``: ``folder`` is None, or for a
    kernel of at least ``resume_entries`` entries ``<cache dir>/<kind>/<key>.partial``, the
    resumable tiles (derived from the cache key: the same kernel finds them again); it is
    removed once the kernel is in the cache."""
    n1, n2 = len(x1), len(x1 if x2 is None else x2)
    folder = None
    if use_cache and n1 * n2 >= resume_entries:
        folder = cache.cache_dir() / kind / f"{cache.key(kind, parts)}.partial"
    value = cache.cached(kind, parts, lambda: compute(folder), enabled=use_cache, check=_shape_check(x1, x2))
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    return value


def _shape_check(x1, x2):
    """A cached kernel must be (len(x1), len(x2 or x1)) and finite, else it is recomputed."""
    shape = (len(x1), len(x1 if x2 is None else x2))
    return lambda k: np.shape(k) == shape and bool(np.all(np.isfinite(k)))
