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
neural-tangents (``nt.batch`` over tiles and over all local devices).

Both are computed in square tiles so memory stays bounded for n in the tens of thousands;
a Gram matrix K(X, X) computes only the tiles on and above the diagonal and mirrors them.
The ``*_cached`` helpers keep results in the content-addressed cache (``ntk_utils.cache``).
"""
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ntk_utils import cache, models
from ntk_utils._compat import neural_tangents

# How the eNTK is computed ("auto", the default; the measurements behind it: benchmarks/README.md):
# * when the Jacobians of all inputs fit in JACOBIAN_BYTES and the network has at most
#   FULL_JACOBIAN_MAX_PARAMS parameters, they are computed once (plain jax, per-example
#   gradients in chunks) and contracted in one matrix product: each Jacobian row is computed
#   once instead of once per tile pair;
# * otherwise (wide networks, large n) neural-tangents implementation 1 (Jacobian contraction)
#   on tiles, the fastest of its three on CPU (benchmarks/bench_empirical_ntk.py).
DEFAULT_IMPLEMENTATION = "auto"
JACOBIAN_BYTES = 4e9
FULL_JACOBIAN_MAX_PARAMS = 2_000_000


def _param_count(params):
    return sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree_util.tree_leaves(params))


def _auto_tile(params):
    # Implementation 1 holds two tiles' Jacobians, tile x P float32 each: keep them ~< 0.5 GB.
    return int(np.clip(2 ** int(math.log2(max(1, 6e7 // max(1, _param_count(params))))), 8, 512))


def _pad(x, size):
    """x padded with zeros along axis 0 to ``size`` rows (fixed tile shapes compile once)."""
    if x.shape[0] == size:
        return x
    return np.concatenate([x, np.zeros((size - x.shape[0],) + x.shape[1:], x.dtype)])


def tiled_kernel(tile_fn, x1, x2=None, *, batch_size, progress=None, desc="kernel"):
    """Assemble K(x1, x2) (n1, n2) float32 from ``tile_fn(a, b) -> (len(a), len(b))`` on tiles.

    Every tile is padded to ``batch_size`` rows so ``tile_fn`` sees one shape; with
    ``x2=None`` only tiles with j >= i are computed and K is mirrored (symmetric).
    """
    x1 = np.asarray(x1)
    symmetric = x2 is None
    x2 = x1 if symmetric else np.asarray(x2)
    n1, n2 = len(x1), len(x2)
    starts1, starts2 = range(0, n1, batch_size), range(0, n2, batch_size)
    pairs = [(i, j) for i in starts1 for j in starts2 if not symmetric or j >= i]
    out = np.zeros((n1, n2), np.float32)
    show = progress if progress is not None else len(pairs) > 4
    for i, j in tqdm(pairs, desc=desc, disable=not show, leave=False):
        a, b = x1[i:i + batch_size], x2[j:j + batch_size]
        block = np.asarray(tile_fn(_pad(a, batch_size), _pad(b, batch_size)))[:len(a), :len(b)]
        out[i:i + len(a), j:j + len(b)] = block
        if symmetric and j != i:
            out[j:j + len(b), i:i + len(a)] = block.T
    return out


def jacobian_fn(apply_fn):
    """``jacobian(params, x) -> (n, P)``: per-example gradients ∂f(x_i)/∂θ, flattened (plain jax)."""
    def jacobian(params, x):
        grads = jax.vmap(lambda xi: jax.grad(lambda p: apply_fn(p, xi[None])[0, 0])(params))(x)
        return jnp.concatenate([g.reshape(len(x), -1) for g in jax.tree_util.tree_leaves(grads)], axis=1)
    return jacobian


def full_jacobian_ntk(apply_fn, params, x1, x2=None, *, batch_size=256):
    """Θ = J(x1) J(x2)^T with the (n, P) Jacobians computed once, in chunks of ``batch_size``.

    Memory (n1 + n2)·P·4 bytes; needs no neural-tangents. Exactly symmetric for x2=None."""
    jacobian = jax.jit(jacobian_fn(apply_fn))

    def rows(x):
        x = np.asarray(x)
        return np.concatenate([np.asarray(jacobian(params, _pad(x[i:i + batch_size], batch_size)))[:len(x[i:i + batch_size])]
                               for i in range(0, len(x), batch_size)])
    j1 = rows(x1)
    if x2 is None:
        k = j1 @ j1.T
        return np.triu(k) + np.triu(k, 1).T
    return j1 @ rows(x2).T


def empirical_ntk(apply_fn, params, x1, x2=None, *, batch_size=None, implementation=DEFAULT_IMPLEMENTATION,
                  progress=None):
    """Empirical NTK Θ(x1, x2) of a scalar-output network at ``params``.

    Args:
      apply_fn: ``apply_fn(params, x) -> (n, 1)``, e.g. ``models.flax_model(arch).apply``.
      params: any pytree of parameters (flax variables dict).
      x1: (n1, ...) inputs; x2: (n2, ...) inputs or None for Θ(x1, x1).
      batch_size: tile size (default: chosen from the parameter count to bound memory).
      implementation: "auto" (see DEFAULT_IMPLEMENTATION above), 0 for the plain-jax
        :func:`full_jacobian_ntk` (tiled when the Jacobians do not fit; also the fallback where
        neural-tangents cannot be imported), or a neural-tangents ``NtkImplementation`` on tiles
        (1 = Jacobian contraction, 2 = NTK-vector products, 3 = structured derivatives).
    Returns:
      (n1, n2) float32 numpy array.
    """
    n_total = len(x1) + (0 if x2 is None else len(x2))
    fits = n_total * _param_count(params) * 4 <= JACOBIAN_BYTES
    if implementation == "auto":
        implementation = 0 if fits and _param_count(params) <= FULL_JACOBIAN_MAX_PARAMS else 1
    if implementation == 0 and fits:
        return full_jacobian_ntk(apply_fn, params, x1, x2, batch_size=min(256, batch_size or 256))
    if implementation == 0:
        jacobian = jacobian_fn(apply_fn)
        ntk_fn = jax.jit(lambda a, b, p: jacobian(p, a) @ jacobian(p, b).T)
    else:
        try:
            nt = neural_tangents()
        except ImportError:
            return empirical_ntk(apply_fn, params, x1, x2, batch_size=batch_size, implementation=0, progress=progress)
        ntk_fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=implementation))
    batch_size = batch_size or _auto_tile(params)
    return tiled_kernel(lambda a, b: ntk_fn(a, b, params), x1, x2, batch_size=batch_size, progress=progress,
                        desc="empirical NTK")


def infinite_ntk(arch, x1, x2=None, *, batch_size=None, get="ntk", progress=None):
    """Infinite-width NTK (``get="ntk"``) or NNGP (``get="nngp"``) of ``arch``: (n1, n2) array.

    Uses ``ntk_utils.fast_ntk`` when it supports the architecture, else neural-tangents'
    ``kernel_fn`` through ``nt.batch`` (tiles spread over all local devices).
    """
    from ntk_utils import fast_ntk
    reason = fast_ntk.unsupported(arch, np.shape(x1)[1:])
    if reason is None:
        return np.asarray(fast_ntk.infinite_ntk(arch, x1, x2, get=get, **({"batch_size": batch_size}
                                                                           if batch_size else {})))
    warnings.warn(f"fast_ntk cannot compute the infinite NTK of {arch.name}: {reason}; "
                  "using neural-tangents (several times slower)", stacklevel=2)
    nt = neural_tangents()
    batch_size = batch_size or 16
    kernel_fn = nt.batch(models.stax_kernel_fn(arch), batch_size=batch_size, device_count=-1, store_on_device=False)
    return tiled_kernel(lambda a, b: kernel_fn(a, b, get), x1, x2, batch_size=batch_size * jax.local_device_count(),
                        progress=progress, desc=f"infinite {get.upper()}")


def network_ntk(arch, params, x1, x2=None, *, use_cache=True, **kwargs):
    """Empirical NTK of the flax network of ``arch`` at ``params``, cached on disk."""
    apply_fn = models.flax_model(arch).apply
    return cache.cached("entk", (arch, params, x1, x2, kwargs.get("implementation", DEFAULT_IMPLEMENTATION)),
                        lambda: empirical_ntk(apply_fn, params, x1, x2, **kwargs), enabled=use_cache,
                        check=_shape_check(x1, x2))


def infinite_ntk_cached(arch, x1, x2=None, *, get="ntk", use_cache=True, **kwargs):
    """:func:`infinite_ntk` of ``arch.ntk_limit()`` ("the infinite NTK" of the network, whatever
    its parameterization), cached on disk (keyed by the limit's architecture, inputs and ``get``)."""
    return cache.cached("infinite-" + get, (arch.kernel_describe(), x1, x2),
                        lambda: infinite_ntk(arch.ntk_limit(), x1, x2, get=get, **kwargs), enabled=use_cache,
                        check=_shape_check(x1, x2))


def _shape_check(x1, x2):
    """A cached kernel must be (len(x1), len(x2 or x1)) and finite, else it is recomputed."""
    shape = (len(x1), len(x1 if x2 is None else x2))
    return lambda k: np.shape(k) == shape and bool(np.all(np.isfinite(k)))
