"""The infinite-width NTK / NNGP of conv / pool / ReLU networks as batched array products.

``infinite_ntk(arch, x1, x2)`` returns the matrix that neural-tangents'
``ntk_utils.models.stax_kernel_fn(arch)(x1, x2, "ntk")`` returns, several times faster on CPU
(float32; see "Precision" below), without importing neural-tangents or flax: only public jax
APIs that exist both in jax 0.5.3 and in current jax, so it also runs on a GPU image where
neural-tangents cannot be imported. ``supports(arch)`` says whether an architecture is covered.

The recursion
-------------
For one input pair (x, x') of ``H x W`` images the kernels are pixel-pair tensors
``Σ[a, c, b, d]`` and ``Θ[a, c, b, d]``: NNGP and NTK between pixel (a, b) of x and pixel
(c, d) of x'. Read as an ``(H·H) x (W·W)`` matrix with rows (a, c) and columns (b, d), each
linear layer acts on rows and columns separately::

    input        Σ = <x[a, b, :], x'[c, d, :]> / C,                     Θ = 0
    Conv(k)      Σ' = W_std² · S_H Σ S_Wᵀ + b_std²,                     Θ' = W_std² · S_H Θ S_Wᵀ + Σ'
                 S_H[(a, c), (a', c')] = (1/k) Σ_δ [a' = a + δ][c' = c + δ]
                 (a joint shift δ of both indices, δ ∈ [-(k-1)//2, k//2], zero padding: SAME)
    AvgPool(w)   Σ' = P_H Σ P_Wᵀ,  P_H[(a', c'), (a, c)] = [a // w = a'][c // w = c'] / w²
    ReLU         ρ = Σ / √(q q'),  θ = arccos ρ,
                 Σ' = (√(q q' - Σ²) + (π - θ) Σ) / 2π,                  Θ' = Θ (π - θ) / 2π
                 with the per-pixel variances q[a, b] = Σ(x, x)[a, a, b, b], q'[c, d] = Σ(x', x')[c, c, d, d]
    GlobalAvgPool  Σ' = mean over all (a, c, b, d)           (likewise Θ)
    Flatten        Σ' = mean over the diagonal a = c, b = d   (likewise Θ)
    Dense        Σ' = W_std² Σ + b_std² (per pixel pair),                Θ' = W_std² Θ + Σ'

That is the NTK parameterization; in the standard one ``Θ' = fan_in · Σ_lin + W_std² Θ_lin
(+ 1 with biases)``, with ``Σ_lin`` the layer's linear image of Σ before the ``W_std²`` factor
and ``fan_in`` = C_in·k² (Conv) or C_in (Dense): the finite widths of the ``Arch`` enter, as
in neural-tangents. These are neural-tangents' conventions term by term: its conv filter is
the diagonal ``1/k`` filter on each axis pair, its ReLU is ``ABRelu(0, 1)`` with θ = π/2
where q q' = 0, its Flatten is the mean over diagonal pixel pairs, its input covariance
divides by C, and the readout ``Dense(1)`` is an ordinary Dense layer. The ReLU needs q, which
come from the full pixel-pair *self* covariance Σ(x, x) (average pooling mixes neighbouring
pixels' covariances): computed once per image, O(n), not once per pair.

Implementation
--------------
* Tiles. Pairs are computed in tiles of ``b1 x b2`` images. The state of a tile is one array
  ``K[m, a, c, b, d, i, j]`` (m = 1: Σ; m = 2: Σ and Θ; pixel axes first, pair axes last),
  ``K[m, i, j]`` after GlobalAvgPool / Flatten. ``batch_size=None`` picks ~2**18 pair-pixel
  elements per tile on CPU (8x8 images: 8 x 8 tiles; from 16x16 on: 1 x 1), on GPUs as many
  as their free memory holds (:func:`_auto_batch_size`).
* Devices. Tiles go round robin to all local devices (:func:`on_devices`), each of which
  holds all inputs (O(n)); a few tiles per device are in flight while finished ones are
  copied into the host matrix. A tile is the same computation on any device, so the kernel
  does not depend on the number of devices.
* Disk. With ``resume_dir`` the matrices are memory-mapped .npy files written tile by tile,
  with a record of the finished tiles (:class:`TileStore`): a killed computation resumes.
* Convolution. S is banded (k non-zeros per row), so ``S_H K S_Wᵀ`` is applied as k shifted,
  zero-padded slices on the (a, c) axes and then k on the (b, d) axes: O(k H²W²) per pair
  instead of the O(H⁴W²) of a dense product. Average pooling is a reshape-and-mean (the
  product with P without its zeros). Each Conv's affine part (W_std², b_std², the Θ mixing)
  is moved forward into the next ReLU (:func:`_kernel_ops`): one elementwise pass.
* One compiled computation per layer (on maps > 16 px): XLA's CPU fusion would otherwise
  recompute a ReLU for each of the k shifted reads of the next convolution; :func:`_segments`. Each layer is an asynchronous jit dispatch.
* ReLU. ``arccos`` is a polynomial (:func:`_acos_coefficients`; XLA's CPU ``atan2`` costs
  more than all the rest), and 1 - |ρ| is computed as
  ``(√(q q') - |Σ|) / √(q q')``, exactly 0 where an image meets itself at the same pixel:
  θ ≈ √(2(1 - ρ)) turns any round-off there into large errors on K(x, x) (float32: 1e-4).
* Symmetric case (``x2`` None or equal to ``x1``): the diagonal tiles (i, i) come first and
  read q off their own Σ, so K(x, x) is free of that round-off; only tiles j > i follow,
  mirrored. Otherwise
  q comes from a per-image self recursion (O(n)); the rest is the same.
* Contractions use ``Precision.HIGHEST`` (float32 stays float32 on GPUs, no TF32).

Precision and XLA settings (the measurements behind these choices: ``benchmarks/README.md``)
------------------------------------------------------------------------------------------
* ``dtype=np.float32`` is the default: several times faster than neural-tangents' fastest CPU
  configuration (float64), and it agrees with that kernel to a few 1e-7 of the largest entry
  (exact on K(x, x), unlike neural-tangents' own float32). float32 is also neural-tangents'
  default and what an accelerator prefers; ask for float64 when a downstream solve needs more
  than ~7 digits.
* float64 needs jax's x64 mode. It is switched on only inside the call, through the public
  context manager ``jax.enable_x64`` (jax >= 0.8) or ``jax.experimental.enable_x64`` (older
  jax, where it is not deprecated); the caller's global setting is left alone.
* No XLA flags: a library cannot set them once jax has started, and none we tried helped
  fast_ntk. What matters on CPU: glibc's malloc returning each layer's few-MiB output to the
  kernel (page faults), avoided by :func:`_prime_allocator`; and one compiled computation per
  layer (above).

Layer specs are recognised by their ``kind`` (the layer registry of ``ntk_utils.models``), so
neither flax nor neural-tangents is imported; a kind without a rule here is refused by name.
"""
import collections
import contextlib
import functools
import json
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from ntk_utils.paths import atomic_write

__all__ = ["supports", "unsupported", "infinite_ntk", "on_devices", "free_memory", "Progress", "TileStore"]

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
# Layers on feature maps of at most this many pixels are compiled together (see _segments).
_FUSE_MAX_PIXELS = 16
# Input covariances of images with at most this many channels are summed elementwise.
_INPUT_UNROLL = 8
# Show a progress bar (tqdm) from this many tiles on, when progress=None.
_PROGRESS_MIN_TILES = 50
# Tiles dispatched ahead, per device, of the one being copied back to the host.
_QUEUE = 2
# Tiles (and other work items, e.g. Jacobian chunks) dispatched in this process, per device
# (str(device)), by on_devices: tests read it to see that every device got work.
TILES = collections.Counter()
# A TileStore records its finished tiles at most this often (seconds): a killed computation
# loses at most this much work (tests set 0: a record after every tile).
FLUSH_SECONDS = 30.0


# --------------------------------------------------------------------------- planning

class _Unsupported(ValueError):
    pass


def _plan(arch, in_shape):
    """Translate ``arch`` into a hashable tuple of kernel ops for inputs of shape ``in_shape``.

    Args:
      arch: an ``ntk_utils.models.Arch`` (duck-typed: ``layers``, ``parameterization``,
        ``W_std``, ``b_std``).
      in_shape: shape of one input, ``(H, W, C)`` for images or ``(d,)`` for vectors.

    Returns:
      A tuple of layer ops ``(name, *static_params)``, starting with ``("input", spatial)``;
      Conv is ``("conv", k, W_std², b_std² or None, parameterization, fan_in)``, Dense
      ``("dense", W_std², b_std² or None, parameterization, fan_in)``.

    Raises:
      _Unsupported: naming the first layer that cannot be handled.
    """
    param = getattr(arch, "parameterization", None)
    if param not in ("ntk", "standard"):
        raise _Unsupported(f"parameterization {param!r} is not supported")
    w_var = float(arch.W_std) ** 2
    b_var = None if arch.b_std is None else float(arch.b_std) ** 2
    in_shape = tuple(int(s) for s in in_shape)
    if len(in_shape) == 3:
        spatial, (h, w, c) = True, in_shape
    elif len(in_shape) == 1:
        spatial, (c,) = False, in_shape
        h = w = None
    else:
        raise _Unsupported(f"inputs must be (n, H, W, C) images or (n, d) vectors, "
                           f"got per-example shape {in_shape}")
    if min(in_shape) < 1:
        raise _Unsupported(f"empty input shape {in_shape}")
    ops = [("input", spatial)]
    gaussian = False
    for layer in arch.layers:
        kind = getattr(layer, "kind", None)
        if kind == "conv":
            k = int(layer.size)
            if not spatial:
                raise _Unsupported(f"{layer} after the spatial dimensions are gone")
            if k < 1:
                raise _Unsupported(f"{layer}: filter size must be >= 1")
            ops.append(("conv", k, w_var, b_var, param, float(c * k * k)))
            c, gaussian = int(layer.width), True
        elif kind == "dense":
            ops.append(("dense", w_var, b_var, param, float(c)))
            c, gaussian = int(layer.width), True
        elif kind == "relu":
            if not gaussian:
                raise _Unsupported("Relu needs a Gaussian input (a Conv or Dense layer before it), "
                                   "as in neural-tangents")
            ops.append(("relu",))
            gaussian = False
        elif kind == "avgpool":
            win = int(layer.window)
            if not spatial:
                raise _Unsupported(f"{layer} after the spatial dimensions are gone")
            if win < 1 or h // win < 1 or w // win < 1:
                raise _Unsupported(f"{layer} does not fit a {h}x{w} feature map")
            ops.append(("pool", win))
            h, w = h // win, w // win
        elif kind == "global_avgpool":
            if not spatial:
                raise _Unsupported(f"{layer} after the spatial dimensions are gone")
            ops.append(("gap",))
            spatial = False
        elif kind == "flatten":
            if spatial:
                ops.append(("flatten",))
                c = h * w * c
                spatial = False
            gaussian = False
        else:
            raise _Unsupported(f"layer {layer!r} (kind {kind!r}) has no fast_ntk rule")
    if spatial:
        raise _Unsupported("the network output still has spatial dimensions (add GlobalAvgPool or Flatten)")
    return tuple(ops)


def unsupported(arch, input_shape=None):
    """Why :func:`infinite_ntk` cannot compute the kernel of ``arch`` (a sentence), or None.

    Args:
      arch: an ``ntk_utils.models.Arch``.
      input_shape: optional shape of one input, ``(H, W, C)`` or ``(d,)``. When given, the
        shapes are checked too (pools must fit the feature maps); when omitted, only the layer
        kinds and their order are checked (as for large images).

    Supported: layers of kind conv, relu, avgpool, global_avgpool, flatten, dense, in the NTK
    or standard parameterization, composing to a scalar-per-pair kernel.
    """
    # Without a shape: whatever works for some input works for large images or for vectors.
    shapes = [input_shape] if input_shape is not None else [(2 ** 10, 2 ** 10, 3), (64,)]
    reasons = []
    for shape in shapes:
        try:
            _plan(arch, shape)
            return None
        except _Unsupported as e:
            reasons.append(str(e))
    return reasons[0]


def supports(arch, input_shape=None):
    """Whether :func:`infinite_ntk` can compute the kernel of ``arch`` (see :func:`unsupported`)."""
    return unsupported(arch, input_shape) is None


# --------------------------------------------------------------------------- layers
# The state of the recursion is one array K = [Σ] or [Σ, Θ] stacked on a leading axis (one
# array rather than two: XLA's CPU backend computes the shared ReLU angle once for a single
# output, but ~3x slower for two). Spatial states are laid out pixel axes first, batch axes
# last: K[m, a, c, b, d, i, j] for a tile of pairs, K[m, a, c, b, d, i] for self covariances
# (batch last measured 1.5x faster than first for the shifts below; merging (i, j) into one
# axis 3x slower). After GlobalAvgPool / Flatten only K[m, *batch] remains. Θ = 0 is m = 1.

def _shift(k_arr, delta, axis):
    """``out[.., a, c, ..] = K[.., a + δ, c + δ, ..]`` on axes (axis, axis + 1), 0 outside."""
    if delta == 0:
        return k_arr
    take, pad = [slice(None)] * k_arr.ndim, [(0, 0)] * k_arr.ndim
    if delta > 0:
        take[axis] = take[axis + 1] = slice(delta, None)
        pad[axis] = pad[axis + 1] = (0, delta)
    else:
        take[axis] = take[axis + 1] = slice(None, delta)
        pad[axis] = pad[axis + 1] = (-delta, 0)
    return jnp.pad(k_arr[tuple(take)], pad)


def _conv_unscaled(k_arr, k):
    """K ↦ S_H K S_Wᵀ for a SAME, stride-1 k x k convolution (without W_std²).

    Args:
      k_arr: ``[m, H, H, W, W, *batch]`` pixel-pair tensors (axes a, c, b, d).
      k: filter size.

    Returns:
      ``[m, H, H, W, W, *batch]``: ``(1/k²) Σ_{δ, ε} K[a+δ, c+δ, b+ε, d+ε]`` (zero outside,
      δ, ε ∈ [-(k-1)//2, k//2]): the banded products with S as shifted slices, k for the
      rows and k for the columns (a zero-padded slice per shift; measured on the 2-core CPU
      this was 1.2x faster than the k² two-axis shifts and 1.4-2.7x faster than padding K
      once and slicing it).
    """
    deltas = range(-((k - 1) // 2), k // 2 + 1)
    out = sum(_shift(k_arr, d, 1) for d in deltas)       # S_H K: rows (a, c)
    out = sum(_shift(out, e, 3) for e in deltas)         # (S_H K) S_Wᵀ: columns (b, d)
    return out * (1.0 / (k * k))


def _pool(k_arr, win):
    """K ↦ P_H K P_Wᵀ for a VALID, stride-``win`` average pool: ``[m, H, H, W, W, *batch]`` ->
    ``[m, H//win, H//win, W//win, W//win, *batch]`` (the mean over each window pair)."""
    ho, wo = k_arr.shape[1] // win, k_arr.shape[3] // win
    k_arr = k_arr[:, :ho * win, :ho * win, :wo * win, :wo * win]
    k_arr = k_arr.reshape((k_arr.shape[0], ho, win, ho, win, wo, win, wo, win) + k_arr.shape[5:])
    return k_arr.mean(axis=(2, 4, 6, 8))


def _acos_coefficients(degree):
    """Monomial coefficients c of ``arccos(1 - u) ≈ √u · Σ_k c_k u^k`` on u ∈ [0, 1].

    ``arccos(1 - u) / √u = √2 · arcsin(√(u/2)) / √(u/2)`` is analytic on [0, 1] (its nearest
    singularity is at u = 2), so its Chebyshev interpolant converges geometrically: relative
    error of arccos 2.5e-15 at degree 18, 4e-10 at degree 9 (below float32's epsilon).
    """
    def g(u):
        x = np.sqrt(u / 2)
        safe = np.where(x > 0, x, 1.0)
        return np.sqrt(2.0) * np.where(x > 0, np.arcsin(safe) / safe, 1.0)
    cheb = np.polynomial.Chebyshev.interpolate(g, degree, domain=[0, 1])
    return tuple(float(c) for c in cheb.convert(kind=np.polynomial.Polynomial).coef)


_ACOS = {np.dtype(np.float64): _acos_coefficients(18), np.dtype(np.float32): _acos_coefficients(9)}


def _relu(s, t, prod, inv_r):
    """The ReLU arc-cosine kernels (neural-tangents' ``ABRelu(0, 1)``, term by term).

    Args:
      s: Σ, any shape.
      t: Θ (same shape), or None for the NNGP alone.
      prod: q q', the product of the two pixels' variances, broadcastable to ``s``.
      inv_r: 1 / √(q q') (0 where q q' = 0), likewise.

    Returns:
      ``K' = [Σ'(, Θ')]``: with ρ = Σ / √(q q') and θ = arccos ρ,
      ``Σ' = (√(q q' - Σ²) + (π - θ) Σ) / 2π`` and ``Θ' = Θ (π - θ) / 2π``; θ = π/2 where
      q q' = 0.

    Near ρ = 1, θ ≈ √(2(1 - ρ)) turns round-off in 1 - ρ into much larger errors (1e-16 ->
    1e-8, 1e-7 -> 5e-4 in float32), and ρ = 1 exactly for an image with itself at the same
    pixel, i.e. on the diagonal K(x, x). So 1 - |ρ| is computed as ``(√(q q') - |Σ|) / √(q q')``:
    a plain difference, exactly 0 when Σ and q = q' are the same number (``√(fl(q²)) = q``
    in binary floating point), which :func:`_run_diag_segment` guarantees for K(x, x).
    (neural-tangents' ``q q' - Σ²`` is not exactly 0 there: XLA contracts it to an FMA.)
    arccos is a polynomial (see :func:`_acos_coefficients`): XLA's CPU ``atan2`` / ``acos``
    cost ~16 ns an element, more than this whole function.
    """
    r = jnp.sqrt(prod)
    a = jnp.abs(s)
    d = jnp.maximum(r - a, 0.0)                                  # √(q q') (1 - |ρ|)
    u = jnp.minimum(d * inv_r, 1.0)                              # 1 - |ρ|
    root_w = jnp.sqrt(d * (r + a))                               # √(q q' - Σ²)
    coef = _ACOS[np.dtype(s.dtype)]
    poly = coef[-1]
    for c in coef[-2::-1]:
        poly = poly * u + c
    acos_abs = jnp.sqrt(u) * poly                                # arccos |ρ|
    # (π - θ) / 2π, with θ = arccos|ρ| for ρ >= 0, π - arccos|ρ| for ρ < 0, π/2 where q q' = 0
    dot = jnp.where(s >= 0, jnp.pi - acos_abs, acos_abs) * (1.0 / (2 * jnp.pi))
    dot = jnp.where(prod > 0, dot, 0.25)
    s_new = root_w * (1.0 / (2 * jnp.pi)) + dot * s
    if t is None:
        return s_new[None]
    return jnp.stack([s_new, t * dot])


def _affine(k_arr, aff, get_ntk):
    """The elementwise part of a Conv / Dense layer: ``K_lin = [Σ_lin(, Θ_lin)] -> (Σ', Θ')``.

    ``K_lin`` is the layer's linear image of ``[Σ(, Θ)]`` before the ``W_std²`` factor (the
    shifted sums of :func:`_conv_unscaled` for Conv, the identity for Dense); ``aff`` =
    ``(W_std², b_std² or None, parameterization, fan_in)``. Θ' is None unless ``get_ntk``::

        Σ' = W_std² Σ_lin + b_std²
        Θ' = W_std² Θ_lin + Σ'                                   (NTK parameterization)
        Θ' = fan_in Σ_lin + W_std² Θ_lin (+ 1 with biases)       (standard parameterization)
    """
    w_var, b_var, param, fan_in = aff
    s_lin = k_arr[0]
    s_new = w_var * s_lin if b_var is None else w_var * s_lin + b_var
    if not get_ntk:
        return s_new, None
    t_lin = w_var * k_arr[1] if k_arr.shape[0] == 2 else 0.0
    if param == "ntk":
        return s_new, t_lin + s_new
    t_new = fan_in * s_lin + t_lin
    return s_new, (t_new if b_var is None else t_new + 1.0)


def _kernel_ops(ops):
    """Rewrite the plan's layers into the ops the engine runs.

    Conv becomes a linear ``("conv", k)`` (the shifted sums) followed by ``("affine", aff)``;
    Dense is just the affine. Each affine is moved forward past pools / global pooling /
    Flatten (averages commute with ``K -> W_std² K + b_std²`` and the Θ mixing) and merged
    into the next ReLU as ``("affine_relu", aff)``: one elementwise pass instead of two, and
    no stacked output between the shifted sums and the ReLU, which XLA's CPU backend
    compiles poorly (up to 50x slower in float64).
    """
    flat = [("input", ops[0][1])]
    for op in ops[1:]:
        if op[0] == "conv":
            flat += [("conv", op[1]), ("affine", op[2:])]
        elif op[0] == "dense":
            flat.append(("affine", op[1:]))
        else:
            flat.append(op)
    out, pending = [flat[0]], None
    for op in flat[1:]:
        if op[0] == "affine":
            if pending is not None:
                out.append(("affine", pending))
            pending = op[1]
        elif op[0] == "relu":
            out.append(("affine_relu", pending))
            pending = None
        elif op[0] == "conv" and pending is not None:
            out += [("affine", pending), op]
            pending = None
        else:
            out.append(op)
    if pending is not None:
        out.append(("affine", pending))
    return tuple(out)


def _diag(k_arr):
    """``[m, H, H, W, W, *batch]`` -> ``[m, H, W, *batch]``: the entries with a = c, b = d."""
    ih, iw = np.arange(k_arr.shape[1]), np.arange(k_arr.shape[3])
    return k_arr[:, ih, ih][:, :, iw, iw]


def _outer(v1, v2):
    """``v1 [H, W, b1], v2 [H, W, b2] -> [H, H, W, W, b1, b2]`` (axes a, c, b, d, i, j) products
    ``v1[a, b, i] v2[c, d, j]``; ``[b1], [b2] -> [b1, b2]`` for vectors."""
    if v1.ndim == 1:
        return v1[:, None] * v2[None, :]
    return v1[:, None, :, None, :, None] * v2[None, :, None, :, None, :]


def _with_inverse_root(q):
    """``q -> (q, 1/√q)``, 0 where q = 0 (a pixel without variance)."""
    return q, jnp.where(q > 0, jax.lax.rsqrt(jnp.where(q > 0, q, 1.0)), 0.0)


def _apply(op, get_ntk, k_arr, roots=None):
    """One kernel op (see :func:`_kernel_ops`) on the state ``K``.

    ``roots(Σ) -> (q q', 1/√(q q'))``, broadcastable to Σ, supplies the ReLU's variances.
    """
    name = op[0]
    if name == "conv":
        return _conv_unscaled(k_arr, op[1])
    if name == "affine":
        s, t = _affine(k_arr, op[1], get_ntk)
        return s[None] if t is None else jnp.stack([s, t])
    if name == "affine_relu":
        if op[1] is None:
            s, t = k_arr[0], (k_arr[1] if get_ntk else None)
        else:
            s, t = _affine(k_arr, op[1], get_ntk)
        return _relu(s, t, *roots(s))
    if name == "pool":
        return _pool(k_arr, op[1])
    if name == "gap":
        return k_arr.mean(axis=(1, 2, 3, 4))
    if name == "flatten":
        return _diag(k_arr).mean(axis=(1, 2))
    raise AssertionError(name)


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


def _segments(ops, in_shape):
    """Split ``ops[1:]`` into runs that are each compiled as one XLA computation.

    On feature maps larger than ``_FUSE_MAX_PIXELS`` pixels every layer is its own
    computation, so that its output is materialised: within one computation XLA's CPU
    fusion recomputes a ReLU (and everything back to the last materialised array) for each
    of the k² shifted reads of the next convolution, or duplicates the shared ReLU angle
    into both outputs, which measured 2-30x slower. From the first layer on a small feature
    map to the end everything is one computation: recomputation is cheap there, and the
    saved dispatches matter more.
    """
    runs = []
    h, w = (in_shape[0], in_shape[1]) if len(in_shape) == 3 else (1, 1)
    for pos, op in enumerate(ops[1:]):
        if h * w <= _FUSE_MAX_PIXELS:
            runs.append(tuple(ops[1 + pos:]))
            break
        runs.append((op,))
        if op[0] == "pool":
            h, w = h // op[1], w // op[1]
        elif op[0] in ("gap", "flatten"):
            h = w = 1
    return tuple(runs)


def _run_segment(segment, get_ntk, k_arr, roots, i, j):
    """Apply the ops of ``segment`` to the pair state ``K`` of tile (i, j).

    ``roots``: for each ReLU of the segment, ``(q1, 1/√q1, q2, 1/√q2)`` of all tiles
    (``[T, H, W, b]`` or ``[T, b]``); ``i`` and ``j`` select the tiles of this pair tile.
    """
    roots = list(roots)
    for op in segment:
        if op[0] == "affine_relu":
            q1, i1, q2, i2 = roots.pop(0)
            k_arr = _apply(op, get_ntk, k_arr, lambda s: (_outer(q1[i], q2[j]), _outer(i1[i], i2[j])))
        else:
            k_arr = _apply(op, get_ntk, k_arr)
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
        k_arr = _apply(op, get_ntk, k_arr, roots)
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
        k_arr = _apply(op, False, k_arr, roots)
    return k_arr, recorded


@functools.lru_cache(maxsize=None)
def _jitted(kind, *static):
    """jit-compiled steps, cached by their static arguments."""
    fns = {"segment": _run_segment, "diag_segment": _run_diag_segment, "self_segment": _run_self_segment,
           "input_pair": _input_pair, "input_self": _input_self}
    return jax.jit(functools.partial(fns[kind], *static))


def _n_relu(ops):
    return sum(op[0] == "affine_relu" for op in ops)


def _self_variances(ops, x):
    """ReLU input variances of single images: ``x (b, *in)`` -> one ``(q, 1/√q)`` pair per
    ReLU layer, each ``[H_l, W_l, b]`` (or ``[b]``), from the NNGP recursion on the full
    pixel-pair self covariance ``K[1, a, c, b, d, i] = Σ(x_i, x_i)``."""
    k_arr = _jitted("input_self", *ops[0][1:])(x)
    out = []
    for segment in _segments(ops, x.shape[1:]):
        if len(out) == _n_relu(ops):  # the layers after the last ReLU do not matter here
            break
        k_arr, roots = _jitted("self_segment", segment)(k_arr)
        out += roots
    return out


def _diag_tile(ops, in_shape, get_ntk, x, i):
    """Tile (i, i) of x with itself: ``(K [m, b, b], [(q, 1/√q) per ReLU])``."""
    k_arr = _jitted("input_pair", *ops[0][1:])(x, x, i, i)
    out = []
    for segment in _segments(ops, in_shape):
        k_arr, roots = _jitted("diag_segment", segment, get_ntk)(k_arr)
        out += roots
    return k_arr, out


def _pair_tile(ops, in_shape, get_ntk, x1, x2, roots1, roots2, i, j):
    """The state after the last layer for the pairs of tile (i, j): ``[m, b1, b2]``.

    ``x1 [T1, b1, *in]`` and ``roots1`` (per ReLU, ``(q, 1/√q)`` each ``[T1, H, W, b1]``)
    hold all tiles of x1 on the device; ``i`` selects one (likewise for x2, ``j``). Each
    segment is one asynchronous dispatch of a compiled computation.
    """
    k_arr = _jitted("input_pair", *ops[0][1:])(x1, x2, i, j)
    n_relu = 0
    for segment in _segments(ops, in_shape):
        k = _n_relu(segment)
        step = _jitted("segment", segment, get_ntk)
        if k:
            roots = tuple(roots1[r] + roots2[r] for r in range(n_relu, n_relu + k))
            k_arr = step(k_arr, roots, i, j)
        else:
            k_arr = step(k_arr, (), None, None)
        n_relu += k
    return k_arr


def _side_roots(ops, tiles, devices):
    """ReLU variances of one side's images ``tiles [T, b, *in]`` from the self recursion,
    ``[relu] (q [T, H, W, b], 1/√q [T, H, W, b])`` (or ``[T, b]``), numpy. Computed in chunks
    of about ``_TILE_ELEMENTS`` pixel-pair elements, i.e. as much work per compiled call as a
    pair tile, spread over ``devices``."""
    if not _n_relu(ops):
        return []
    n_tiles, b = tiles.shape[:2]
    images = tiles.reshape((n_tiles * b,) + tiles.shape[2:])
    per_image = (images.shape[1] * images.shape[2]) ** 2 if images.ndim == 4 else 1
    chunk = min(len(images), max(1, _TILE_ELEMENTS // per_image))
    per_chunk = list(on_devices(lambda c, device: _self_variances(ops, jax.device_put(c, device)),
                                _tiles_of(images, chunk), devices))
    roots = []
    for r in range(len(per_chunk[0])):
        pair = []
        for k in range(2):
            v = np.concatenate([c[r][k] for c in per_chunk], axis=-1)[..., :n_tiles * b]
            v = v.reshape(v.shape[:-1] + (n_tiles, b))              # [..., T, b]
            pair.append(np.moveaxis(v, -2, 0))                      # [T, ..., b]
        roots.append(tuple(pair))
    return roots


def _stack_roots(per_tile):
    """``[tile][relu] (q, 1/√q)`` -> ``[relu] (q [T, ...], 1/√q [T, ...])``, numpy (stacked on
    the host: small arrays, and no compilation per shape as for ``jnp.stack``)."""
    return [tuple(np.stack([tile[r][k] for tile in per_tile]) for k in range(2))
            for r in range(len(per_tile[0]))]


# --------------------------------------------------------------------------- devices, progress, tiles on disk
# Shared with ntk_utils.kernels, whose tiled_kernel drives the empirical NTK and neural-tangents.

def free_memory(devices):
    """The least free memory among ``devices`` in bytes (``bytes_limit - bytes_in_use`` of
    ``device.memory_stats()``, which GPUs report), or None where jax does not tell it (CPU)."""
    free = []
    for device in devices:
        try:
            stats = device.memory_stats()
        except Exception:  # a backend without memory statistics
            stats = None
        if not stats or "bytes_limit" not in stats:
            return None
        free.append(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return min(free)


def on_devices(fn, items, devices, ahead=_QUEUE):
    """``fn(item, device)`` for each item, item k on ``devices[k % len(devices)]``; yields the
    results copied to the host (numpy pytrees), in order.

    ``fn`` puts its inputs on ``device`` (``jax.device_put``): a jitted function runs where its
    committed inputs are. jax dispatches asynchronously, so ``ahead`` items per device are
    dispatched before the oldest result is waited for: every device always has work queued,
    and the devices run concurrently. Each item is counted in :data:`TILES`.
    """
    pending = collections.deque()
    for k, item in enumerate(items):
        device = devices[k % len(devices)]
        pending.append(fn(item, device))
        TILES[str(device)] += 1
        if len(pending) > ahead * len(devices):
            yield jax.device_get(pending.popleft())
    while pending:
        yield jax.device_get(pending.popleft())


class Progress:
    """Progress of one kernel: a tqdm bar over its entries (so the rate is entries/s and the
    time left follows) that also shows the tiles done; silent when ``show`` is false."""

    def __init__(self, desc, n_tiles, n_entries, show, done_tiles=0, done_entries=0):
        self.n_tiles, self.done, self.bar = n_tiles, done_tiles, None
        if show:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=n_entries, initial=done_entries, desc=desc, unit=" entries", unit_scale=True,
                            leave=False, postfix=f"{done_tiles}/{n_tiles} tiles")

    def tile(self, entries):
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.done}/{self.n_tiles} tiles", refresh=False)
            self.bar.update(entries)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class TileStore:
    """A kernel written tile by tile into ``folder``, so that a killed computation resumes.

    ``folder/<name>.npy``: the ``shape`` matrices (one per name), memory-mapped
    (``np.lib.format.open_memmap``); ``folder/record.json``: ``{"plan": plan, "done": k}``: the
    first k tiles, in the computation's fixed order, are on disk. Tiles are collected in that
    order (:func:`on_devices`), so what is finished is always such a prefix. After a tile is
    written the caller calls :meth:`finished`; the arrays are flushed and then the record
    rewritten (atomically), at most every :data:`FLUSH_SECONDS` and on :meth:`close`.

    ``plan`` (a JSON-able dict: shape, tiling, dtype) must equal the recorded one for the
    arrays to be reused (``.done`` tiles skipped); otherwise the computation starts over.
    """

    def __init__(self, folder, plan, names, shape, dtype):
        self.folder, self.plan = pathlib.Path(folder), plan
        self.folder.mkdir(parents=True, exist_ok=True)
        paths = [self.folder / f"{name}.npy" for name in names]
        self.done, self.arrays = 0, None
        record = self.recorded(folder) or {}
        if record.get("plan") == plan:
            try:
                arrays = [np.lib.format.open_memmap(p, mode="r+") for p in paths]
                if all(a.shape == tuple(shape) and a.dtype == dtype for a in arrays):
                    self.arrays, self.done = arrays, int(record["done"])
            except (OSError, ValueError):  # missing or truncated arrays: start over
                pass
        if self.arrays is None:
            self.arrays = [np.lib.format.open_memmap(p, mode="w+", dtype=dtype, shape=tuple(shape)) for p in paths]
            self.flush()
        self._last = time.monotonic()

    @staticmethod
    def recorded(folder):
        """The record in ``folder`` (``{"plan": ..., "done": k}``), or None."""
        try:
            return json.loads((pathlib.Path(folder) / "record.json").read_text())
        except (OSError, ValueError):
            return None

    def finished(self, done):
        """The first ``done`` tiles are written into the arrays."""
        self.done = done
        if time.monotonic() - self._last >= FLUSH_SECONDS:
            self.flush()

    def flush(self):
        for a in self.arrays:
            a.flush()
        with atomic_write(self.folder / "record.json") as f:
            json.dump({"plan": self.plan, "done": self.done}, f)
        self._last = time.monotonic()

    def close(self):
        """Record what is done; return in-memory copies of the arrays."""
        self.flush()
        return [np.array(a) for a in self.arrays]


# --------------------------------------------------------------------------- driver

def _x64_scope(dtype):
    """A context in which jax may create float64 arrays (a no-op for other dtypes).

    ``jax.enable_x64`` is the public context manager from jax 0.8 on; before that it was
    ``jax.experimental.enable_x64`` (deprecated in 0.8, removed in 0.9).
    """
    if np.dtype(dtype) != np.float64:
        return contextlib.nullcontext()
    ctx = getattr(jax, "enable_x64", None)
    if ctx is None:
        from jax.experimental import enable_x64 as ctx
    return ctx(True)


def _tiles_of(x, bs):
    """``(n, *rest) -> (T, bs, *rest)``, padding the last tile by repeating the last row."""
    n = len(x)
    t = -(-n // bs)
    if t * bs != n:
        x = np.concatenate([x, np.repeat(x[-1:], t * bs - n, axis=0)])
    return x.reshape((t, bs) + x.shape[1:])


_ALLOCATOR_PRIMED = []


def _prime_allocator():
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


def _auto_batch_size(in_shape, devices):
    """Images per tile side: about ``_TILE_ELEMENTS`` pair elements per tile on CPU (so a
    layer's input and output stay in cache), 1 when that would give fewer than 4 (tiny
    innermost (i, j) axes vectorise badly: 2 x 2 tiles measured ~2.5x slower than 1 x 1); on
    GPUs as many as the devices' free memory holds (see ``_TILE_BYTES_PER_ELEMENT``), where
    each dispatch should carry more work; ``_TILE_ELEMENTS_ACCELERATOR`` on an accelerator
    that does not report its memory."""
    if len(in_shape) != 3:
        return 512
    free = free_memory(devices)
    if free is not None:
        budget = min(_TILE_ELEMENTS_MAX, int(free * _FREE_MEMORY_SHARE) // _TILE_BYTES_PER_ELEMENT)
    else:
        budget = _TILE_ELEMENTS if devices[0].platform == "cpu" else _TILE_ELEMENTS_ACCELERATOR
    b = math.isqrt(max(1, budget // (in_shape[0] * in_shape[1]) ** 2))
    return b if b >= 4 else 1


def infinite_ntk(arch, x1, x2=None, *, batch_size=None, dtype=np.float32, get="ntk", progress=None,
                 devices=None, resume_dir=None):
    """The infinite-width NTK (or NNGP) of ``arch`` between two sets of inputs.

    Equal to ``ntk_utils.models.stax_kernel_fn(arch)(x1, x2, get)`` from neural-tangents,
    for the network's scalar output: within ~1e-15 (float64) or a few 1e-7 (float32) of its
    largest entry.

    Args:
      arch: an ``ntk_utils.models.Arch`` for which :func:`supports` is True.
      x1: ``(n1, H, W, C)`` images (NHWC), or ``(n1, d)`` vectors for networks without
        Conv / pooling layers.
      x2: ``(n2, ...)`` like ``x1``, or None for ``x1`` against itself. Then (and when ``x2``
        equals ``x1``) only the tiles on and above the diagonal are computed, the result is
        exactly symmetric and K(x, x) is free of the round-off that arccos amplifies at ρ = 1.
      batch_size: images per tile side (a tile is ``batch_size x batch_size`` pairs); None
        picks one from the image size and the devices' free memory (CPU: 8 at 8x8, 1 from
        16x16 on), or the one recorded in ``resume_dir``.
      dtype: ``np.float32`` (default, see the module doc) or ``np.float64`` (x64 mode is
        switched on only inside this call).
      get: ``"ntk"``, ``"nngp"``, or a tuple of them (then a tuple of matrices is returned;
        the NNGP alone skips Θ and costs about half).
      progress: show a tqdm progress bar (tiles done, entries/s, time left); None = only
        from 50 tiles on.
      devices: the jax devices the tiles are spread over, round robin (default: all local
        devices). Each holds all inputs (O(n)); tiles come back to the host as they finish.
        The numbers do not depend on the number of devices.
      resume_dir: a folder to write the kernel into tile by tile (:class:`TileStore`) and to
        resume from: a computation killed midway and called again with the same arguments
        continues after its last recorded tile and gives the same kernel.

    Returns:
      ``np.ndarray`` of shape ``(n1, n2)`` and dtype ``dtype`` (a tuple of them for a tuple
      ``get``).

    Raises:
      ValueError: for an architecture :func:`supports` rejects, or bad ``get`` / ``dtype``.
    """
    single = isinstance(get, str)
    gets = (get,) if single else tuple(get)
    if not gets or any(g not in ("ntk", "nngp") for g in gets):
        raise ValueError(f"get must be 'ntk', 'nngp' or a tuple of them, got {get!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    x1 = np.asarray(x1, dtype)
    x2 = x1 if x2 is None else np.asarray(x2, dtype)
    symmetric = x2 is x1 or (x2.shape == x1.shape and np.array_equal(x1, x2))
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(f"x1 and x2 differ in per-example shape: {x1.shape[1:]} vs {x2.shape[1:]}")
    try:
        ops = _kernel_ops(_plan(arch, x1.shape[1:]))
    except _Unsupported as e:
        raise ValueError(f"fast_ntk cannot compute this kernel: {e}") from None
    n1, n2 = len(x1), len(x2)
    if n1 == 0 or n2 == 0:
        out = tuple(np.zeros((n1, n2), dtype) for _ in gets)
        return out[0] if single else out
    devices = list(devices or jax.local_devices())
    if not batch_size and resume_dir is not None:
        batch_size = (TileStore.recorded(resume_dir) or {}).get("plan", {}).get("batch_size")
    b = int(batch_size) if batch_size else _auto_batch_size(x1.shape[1:], devices)
    b1, b2 = min(b, n1), min(b, n2)
    if symmetric:
        b1 = b2 = min(b1, b2)
    get_ntk = "ntk" in gets
    in_shape = x1.shape[1:]
    x1_host, x2_host = _tiles_of(x1, b1), _tiles_of(x2, b2)
    t1, t2 = len(x1_host), len(x2_host)
    # The fixed order of the tiles: when symmetric, the diagonal ones (i, i) first (they hand
    # on the ReLU variances), then only j > i, mirrored.
    diagonal = [(i, i) for i in range(t1)] if symmetric else []
    tiles = diagonal + [(i, j) for i in range(t1) for j in range(t2) if not symmetric or j > i]

    if resume_dir is None:
        store, out, done = None, [np.zeros((n1, n2), dtype) for _ in gets], 0
    else:
        plan = {"shape": [n1, n2], "dtype": dtype.name, "batch_size": b, "symmetric": bool(symmetric),
                "tiles": len(tiles), "get": list(gets)}
        store = TileStore(resume_dir, plan, gets, (n1, n2), dtype)
        out, done = store.arrays, store.done

    def entries(i, j):
        m = min(b1, n1 - i * b1) * min(b2, n2 - j * b2)
        return 2 * m if symmetric and i != j else m

    bar = Progress("infinite NTK", len(tiles), n1 * n2,
                   progress or (progress is None and len(tiles) >= _PROGRESS_MIN_TILES),
                   done, sum(entries(i, j) for i, j in tiles[:done]))

    def collect(k, i, j, k_arr):
        """Write tile k = (i, j) (its state after the last layer, ``[m, b1, b2]``) into ``out``."""
        r1, r2 = i * b1, j * b2
        m1, m2 = min(b1, n1 - r1), min(b2, n2 - r2)
        for o, g in zip(out, gets):
            block = k_arr[1 if g == "ntk" else 0, :m1, :m2]
            if symmetric and i == j:
                block = (block + block.T) * 0.5
            o[r1:r1 + m1, r2:r2 + m2] = block
            if symmetric and j != i:
                o[r2:r2 + m2, r1:r1 + m1] = block.T
        bar.tile(entries(i, j))
        if store is not None:
            store.finished(k + 1)

    _prime_allocator()
    with _x64_scope(dtype):
        # Every device holds all inputs (O(n)) and the tile indices as device scalars, so a
        # tile is dispatched without any transfer.
        index = list(np.arange(max(t1, t2), dtype=np.int32))
        on = {d: {"x1": jax.device_put(x1_host, d), "index": jax.device_put(index, d)} for d in devices}
        for d in devices:
            on[d]["x2"] = on[d]["x1"] if symmetric else jax.device_put(x2_host, d)
        rest = tiles[max(done, len(diagonal)):]
        if symmetric and (done < len(diagonal) or rest):
            # Diagonal tiles: part of the result, and the ReLU variances for the others (so
            # recomputed on resume while other tiles remain; written only where not done).
            per_tile = []
            results = on_devices(lambda i, d: _diag_tile(ops, in_shape, get_ntk, on[d]["x1"], on[d]["index"][i]),
                                 range(t1), devices)
            for i, (k_arr, roots) in enumerate(results):
                per_tile.append(roots)
                if i >= done:
                    collect(i, i, i, k_arr)
            roots1 = roots2 = _stack_roots(per_tile) if _n_relu(ops) and rest else []
        elif rest:
            roots1, roots2 = (_side_roots(ops, xt, devices) for xt in (x1_host, x2_host))
        if rest:
            for d in devices:
                on[d]["roots1"] = jax.device_put(roots1, d)
                on[d]["roots2"] = on[d]["roots1"] if symmetric else jax.device_put(roots2, d)

            def pair(ij, d):
                i, j = ij
                return _pair_tile(ops, in_shape, get_ntk, on[d]["x1"], on[d]["x2"], on[d]["roots1"], on[d]["roots2"],
                                  on[d]["index"][i], on[d]["index"][j])

            start = len(tiles) - len(rest)
            for k, ((i, j), k_arr) in enumerate(zip(rest, on_devices(pair, rest, devices)), start):
                collect(k, i, j, k_arr)
    bar.close()
    if store is not None:
        out = store.close()
    return out[0] if single else tuple(out)
