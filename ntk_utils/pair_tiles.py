"""One tile of image pairs through a fast_ntk plan: the compiled computations and their sizes.

``ntk_utils.fast_ntk`` plans an architecture as kernel ops (``fast_ntk.Plan``) and drives the
tiles; this module runs the ops on one tile of ``b1 x b2`` pairs, ``K[m, a, c, b, d, i, j]``
(pixel axes first, pair axes last), on whichever device holds its inputs:

* :func:`diag_tile`: tile (i, i) of images with themselves, whose ReLUs read the per-pixel
  variances q off the tile's own Σ and hand them on (the symmetric case);
* :func:`side_roots`: those variances from a per-image self recursion, O(n) (otherwise);
* :func:`pair_tile`: any tile, given the variances of both sides.

The ops are split into :func:`segments`, each compiled once (``jax.jit``, cached by its ops)
and dispatched asynchronously. Tile sizes: :func:`auto_batch_size`.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ntk_utils import tiles

_HIGHEST = jax.lax.Precision.HIGHEST

# Pixel-pair elements (b1·b2·H²W²) of a tile when batch_size is chosen automatically: on CPU
# (and devices that do not report their memory) fixed, on GPUs from their free memory: a
# tile's live arrays take about _TILE_BYTES_PER_ELEMENT bytes per element (input and output
# of a layer and a shifted sum, Σ and Θ, float32), and may use _FREE_MEMORY_SHARE of it, up
# to _TILE_ELEMENTS_MAX (neither measured: no accelerator was available).
_TILE_ELEMENTS = 2 ** 18
_TILE_ELEMENTS_ACCELERATOR = 2 ** 24
_TILE_ELEMENTS_MAX = 2 ** 26
_TILE_BYTES_PER_ELEMENT = 32
_FREE_MEMORY_SHARE = 0.5
# Layers on feature maps of at most this many pixels are compiled together (see segments).
_FUSE_MAX_PIXELS = 16
# Input covariances of images with at most this many channels are summed elementwise.
_INPUT_UNROLL = 8


def _reads_variances(op):
    """Whether the kernel op reads its input's variances (``fast_ntk.reads_variances``: a ReLU)."""
    return getattr(op[0], "reads_variances", False)


def n_variances(ops):
    return sum(_reads_variances(op) for op in ops)


def tiles_of(x, bs):
    """``(n, *rest) -> (T, bs, *rest)``, padding the last tile by repeating the last row."""
    n = len(x)
    t = -(-n // bs)
    if t * bs != n:
        x = np.concatenate([x, np.repeat(x[-1:], t * bs - n, axis=0)])
    return x.reshape((t, bs) + x.shape[1:])


def auto_batch_size(in_shape, devices):
    """Images per tile side: about ``_TILE_ELEMENTS`` pair elements per tile on CPU (so a
    layer's input and output stay in cache), 1 when that would give fewer than 4 (tiny
    innermost (i, j) axes vectorise badly: 2 x 2 tiles measured ~2.5x slower than 1 x 1); on
    GPUs as many as the devices' free memory holds (see ``_TILE_BYTES_PER_ELEMENT``), where
    each dispatch should carry more work; ``_TILE_ELEMENTS_ACCELERATOR`` on an accelerator
    that does not report its memory."""
    if len(in_shape) != 3:
        return 512
    free = tiles.free_memory(devices)
    if free is not None:
        budget = min(_TILE_ELEMENTS_MAX, int(free * _FREE_MEMORY_SHARE) // _TILE_BYTES_PER_ELEMENT)
    else:
        budget = _TILE_ELEMENTS if devices[0].platform == "cpu" else _TILE_ELEMENTS_ACCELERATOR
    b = math.isqrt(max(1, budget // (in_shape[0] * in_shape[1]) ** 2))
    return b if b >= 4 else 1


_ALLOCATOR_PRIMED = []


def prime_allocator():
    """Once per process on CPU: allocate and free a 30 MiB buffer (without touching it).

    glibc's malloc serves blocks above its mmap threshold (initially 128 KiB) with fresh
    ``mmap``s, returned by ``munmap`` on free, and raises the threshold to the size of a freed
    mmapped block (up to 32 MiB; the trim threshold to twice that). Without this, each layer's
    output of a few MiB here is a fresh mapping that the kernel zero-fills page by page and
    unmaps again after the next layer: a third of the CPU time went to page faults, and this
    measured 1.4x faster at 8x8 and 2x at 32x32 (2-core CPU). Elsewhere it is a no-op cost:
    a 30 MiB allocation that is never touched.
    """
    if not _ALLOCATOR_PRIMED and jax.default_backend() == "cpu":
        buffer = np.empty(30 << 20, np.uint8)
        del buffer
        _ALLOCATOR_PRIMED.append(True)


def _outer(v1, v2):
    """``v1 [H, W, b1], v2 [H, W, b2] -> [H, H, W, W, b1, b2]`` (axes a, c, b, d, i, j) products
    ``v1[a, b, i] v2[c, d, j]``; ``[b1], [b2] -> [b1, b2]`` for vectors."""
    if v1.ndim == 1:
        return v1[:, None] * v2[None, :]
    return v1[:, None, :, None, :, None] * v2[None, :, None, :, None, :]


def _with_inverse_root(q):
    """``q -> (q, 1/√q)``, 0 where q = 0 (a pixel without variance)."""
    return q, jnp.where(q > 0, jax.lax.rsqrt(jnp.where(q > 0, q, 1.0)), 0.0)


def _input_pair(spatial, x1, x2, i, j):
    """The input covariance of tile (i, j), ``K[1, a, c, b, d, i, j] = <x1[a, b], x2[c, d]> / C``
    (``K[1, i, j] = <x1, x2> / d`` for vectors), from ``x1 [T1, b1, H, W, C]`` etc."""
    x1, x2 = x1[i], x2[j]
    c = x1.shape[-1]
    if not spatial:
        return jnp.einsum("ik,jk->ij", x1, x2, precision=_HIGHEST)[None] / c
    if c <= _INPUT_UNROLL:  # a few channels: one fused loop beats a matrix product + transpose
        x1, x2 = jnp.moveaxis(x1, 0, 2), jnp.moveaxis(x2, 0, 2)      # [H, W, b, C]
        out = sum(x1[:, None, :, None, :, None, k] * x2[None, :, None, :, None, :, k] for k in range(c))
        return out[None] / c
    return jnp.einsum("iabk,jcdk->acbdij", x1, x2, precision=_HIGHEST)[None] / c


def _input_self(spatial, x):
    """``x (b, H, W, C) -> K[1, a, c, b, d, i]`` (or ``K[1, i]``): each image with itself."""
    if spatial:
        return jnp.einsum("iabk,icdk->acbdi", x, x, precision=_HIGHEST)[None] / x.shape[-1]
    return jnp.sum(x * x, axis=-1)[None] / x.shape[-1]


def _self_diagonal(s):
    """Self state Σ ``[H, H, W, W, b]`` (or ``[b]``) -> the per-pixel variances q
    ``[H, W, b]`` (or ``[b]``)."""
    if s.ndim == 1:
        return s
    ih, iw = np.arange(s.shape[0]), np.arange(s.shape[2])
    return s[ih, ih][:, iw, iw]


def _pair_diagonal(s):
    """Pair state Σ of a tile with itself, ``[H, H, W, W, b, b]`` (or ``[b, b]``) -> the
    variances q ``[H, W, b]`` (or ``[b]``): the entries with a = c, b = d and i = j."""
    ib = np.arange(s.shape[-1])
    if s.ndim == 2:
        return s[ib, ib]
    return _self_diagonal(s[..., ib, ib])


def segments(planned):
    """Split the planned ops ``[(pixels, op)]`` into runs that are each compiled as one XLA
    computation.

    On feature maps larger than ``_FUSE_MAX_PIXELS`` pixels every op is its own computation,
    so that its output is materialised: within one computation XLA's CPU fusion recomputes a
    ReLU (and everything back to the last materialised array) for each of the k² shifted reads
    of the next convolution, or duplicates the shared ReLU angle into both outputs, which
    measured 2-30x slower. From the first op on a small feature map to the end everything is
    one computation: recomputation is cheap there, and the saved dispatches matter more.
    """
    runs = []
    for pos, (pixels, op) in enumerate(planned):
        if pixels <= _FUSE_MAX_PIXELS:
            runs.append(tuple(op for _, op in planned[pos:]))
            break
        runs.append((op,))
    return tuple(runs)


def _run_segment(segment, get_ntk, k_arr, roots, i, j):
    """Apply the ops of ``segment`` to the pair state ``K`` of tile (i, j).

    ``roots``: for each ReLU of the segment, ``(q1, 1/√q1, q2, 1/√q2)`` of all tiles
    (``[T, H, W, b]`` or ``[T, b]``); ``i`` and ``j`` select the tiles of this pair tile.
    """
    roots = list(roots)
    for op in segment:
        variances = None
        if _reads_variances(op):
            q1, i1, q2, i2 = roots.pop(0)
            variances = lambda s: (_outer(q1[i], q2[j]), _outer(i1[i], i2[j]))
        k_arr = op[0](k_arr, get_ntk, variances, *op[1:])
    return k_arr


def _run_diag_segment(segment, get_ntk, k_arr):
    """Like :func:`_run_segment` for a tile of images with themselves (tile (i, i)): each
    ReLU reads q off the diagonal of the tile's own Σ. Also returns, for each ReLU of the
    segment, ``(q, 1/√q)`` (``[H, W, b]`` or ``[b]``) for the other tiles. Because the tile
    uses the very numbers it hands on, K(x, x) has q q' - Σ² = 0 exactly where ρ = 1."""
    recorded = []

    def roots(s):
        q, inv = _with_inverse_root(_pair_diagonal(s))
        recorded.append((q, inv))
        return _outer(q, q), _outer(inv, inv)

    for op in segment:
        k_arr = op[0](k_arr, get_ntk, roots, *op[1:])
    return k_arr, recorded


def _run_self_segment(segment, k_arr):
    """Like :func:`_run_diag_segment` for the self covariances ``K[1, a, c, b, d, i]`` of
    single images (NNGP only): O(n) instead of a tile per b images."""
    recorded = []

    def roots(s):
        q, inv = _with_inverse_root(_self_diagonal(s))
        recorded.append((q, inv))
        if s.ndim == 1:
            return q * q, inv * inv
        return q[:, None, :, None] * q[None, :, None, :], inv[:, None, :, None] * inv[None, :, None, :]

    for op in segment:
        k_arr = op[0](k_arr, False, roots, *op[1:])
    return k_arr, recorded


@functools.lru_cache(maxsize=None)
def _jitted(kind, *static):
    """jit-compiled steps, cached by their static arguments."""
    fns = {"segment": _run_segment, "diag_segment": _run_diag_segment, "self_segment": _run_self_segment,
           "input_pair": _input_pair, "input_self": _input_self}
    return jax.jit(functools.partial(fns[kind], *static))


def _self_variances(spatial, segments, x):
    """ReLU input variances of single images: ``x (b, *in)`` -> one ``(q, 1/√q)`` pair per
    ReLU layer, each ``[H_l, W_l, b]`` (or ``[b]``), from the NNGP recursion on the full
    pixel-pair self covariance ``K[1, a, c, b, d, i] = Σ(x_i, x_i)``."""
    k_arr = _jitted("input_self", spatial)(x)
    out, n_relu = [], sum(n_variances(s) for s in segments)
    for segment in segments:
        if len(out) == n_relu:  # the layers after the last ReLU do not matter here
            break
        k_arr, roots = _jitted("self_segment", segment)(k_arr)
        out += roots
    return out


def diag_tile(spatial, segments, get_ntk, x, i):
    """Tile (i, i) of x with itself: ``(K [m, b, b], [(q, 1/√q) per ReLU])``."""
    k_arr = _jitted("input_pair", spatial)(x, x, i, i)
    out = []
    for segment in segments:
        k_arr, roots = _jitted("diag_segment", segment, get_ntk)(k_arr)
        out += roots
    return k_arr, out


def pair_tile(spatial, segments, get_ntk, x1, x2, roots1, roots2, i, j):
    """The state after the last layer for the pairs of tile (i, j): ``[m, b1, b2]``.

    ``x1 [T1, b1, *in]`` and ``roots1`` (per ReLU, ``(q, 1/√q)`` each ``[T1, H, W, b1]``)
    hold all tiles of x1 on the device; ``i`` selects one (likewise for x2, ``j``). Each
    segment is one asynchronous dispatch of a compiled computation.
    """
    k_arr = _jitted("input_pair", spatial)(x1, x2, i, j)
    n_relu = 0
    for segment in segments:
        k = n_variances(segment)
        step = _jitted("segment", segment, get_ntk)
        if k:
            roots = tuple(roots1[r] + roots2[r] for r in range(n_relu, n_relu + k))
            k_arr = step(k_arr, roots, i, j)
        else:
            k_arr = step(k_arr, (), None, None)
        n_relu += k
    return k_arr


def side_roots(spatial, segments, x_tiles, devices):
    """ReLU variances of one side's images ``x_tiles [T, b, *in]`` from the self recursion,
    ``[relu] (q [T, H, W, b], 1/√q [T, H, W, b])`` (or ``[T, b]``), numpy. Computed in chunks
    of about ``_TILE_ELEMENTS`` pixel-pair elements, i.e. as much work per compiled call as a
    pair tile, spread over ``devices``."""
    if not sum(n_variances(s) for s in segments):
        return []
    n_tiles, b = x_tiles.shape[:2]
    images = x_tiles.reshape((n_tiles * b,) + x_tiles.shape[2:])
    per_image = (images.shape[1] * images.shape[2]) ** 2 if images.ndim == 4 else 1
    chunk = min(len(images), max(1, _TILE_ELEMENTS // per_image))
    per_chunk = list(tiles.on_devices(lambda c, device: _self_variances(spatial, segments, jax.device_put(c, device)),
                                      tiles_of(images, chunk), devices))
    roots = []
    for r in range(len(per_chunk[0])):
        pair = []
        for k in range(2):
            v = np.concatenate([c[r][k] for c in per_chunk], axis=-1)[..., :n_tiles * b]
            v = v.reshape(v.shape[:-1] + (n_tiles, b))              # [..., T, b]
            pair.append(np.moveaxis(v, -2, 0))                      # [T, ..., b]
        roots.append(tuple(pair))
    return roots


def stack_roots(per_tile):
    """``[tile][relu] (q, 1/√q)`` -> ``[relu] (q [T, ...], 1/√q [T, ...])``, numpy (stacked on
    the host: small arrays, and no compilation per shape as for ``jnp.stack``)."""
    return [tuple(np.stack([tile[r][k] for tile in per_tile]) for k in range(2))
            for r in range(len(per_tile[0]))]
