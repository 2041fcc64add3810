"""The infinite-width NTK / NNGP of conv / pool / ReLU networks as batched array products.

``kernel(arch, x1, x2)`` returns the matrix that neural-tangents'
``ntk_utils.models.stax_kernel_fn(arch)(x1, x2, "ntk")`` returns, several times faster on CPU
(float32; see "Precision" below), without importing neural-tangents: only public jax APIs that
exist both in jax 0.5.3 and in current jax, so it also runs on a GPU image where
neural-tangents cannot be imported. ``unsupported(arch)`` says why an architecture is not
covered (None when it is).

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

Each layer kind's rule (which ops of this module it runs, how it changes the feature map) is
declared on its spec in the layer registry, ``ntk_utils.layers`` (``ntk_plan``, read by
:class:`Plan`); a kind without one is refused by name. This module holds the recursion's
primitives and the driver; tiles, devices, the progress bar and the resumable disk store are
``ntk_utils.tiles``.

Implementation
--------------
* Tiles. Pairs are computed in tiles of ``b1 x b2`` images (``ntk_utils.pair_tiles``: the
  state of a tile, one compiled computation per layer on maps > 16 px, tile sizes from the
  devices' free memory), spread over the devices and assembled on the host (``ntk_utils.tiles``).
* Convolution. S is banded (k non-zeros per row), so ``S_H K S_Wᵀ`` is applied as k shifted,
  zero-padded slices on the (a, c) axes and then k on the (b, d) axes: O(k H²W²) per pair
  instead of the O(H⁴W²) of a dense product. Average pooling is a reshape-and-mean (the
  product with P without its zeros). Each Conv's affine part (W_std², b_std², the Θ mixing)
  is moved forward into the next ReLU (:class:`Plan`): one elementwise pass.
* ReLU. ``arccos`` is a polynomial (:func:`_acos_coefficients`; XLA's CPU ``atan2`` costs
  more than all the rest), and 1 - |ρ| is computed as
  ``(√(q q') - |Σ|) / √(q q')``, exactly 0 where an image meets itself at the same pixel:
  θ ≈ √(2(1 - ρ)) turns any round-off there into large errors on K(x, x) (float32: 1e-4).
* Symmetric case (``x2`` None or equal to ``x1``): the diagonal tiles (i, i) come first and
  read q off their own Σ, so K(x, x) is free of that round-off; only tiles j > i follow,
  mirrored. Otherwise q comes from a per-image self recursion (O(n)); the rest is the same.
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
  kernel (page faults), avoided by ``pair_tiles.prime_allocator``; and one compiled computation per
  layer (above).
"""
import contextlib

import jax
import jax.numpy as jnp
import numpy as np

from ntk_utils import pair_tiles, tiles

__all__ = ["kernel", "unsupported", "Plan", "Unsupported"]

# Show a progress bar (tqdm) from this many tiles on, when progress=None.
_PROGRESS_MIN_TILES = 50


# --------------------------------------------------------------------------- planning

class Unsupported(ValueError):
    """An architecture or input shape this module has no rule for; the message says why."""


class Plan:
    """The kernel ops of one architecture on inputs of one shape, built layer by layer.

    Each layer spec's ``ntk_plan(plan)`` (``ntk_utils.layers``) checks that the layer fits the
    feature map (raising :class:`Unsupported`), adds its kernel ops and updates the shape
    attributes: ``spatial`` (images, not vectors), ``h``, ``w``, ``c`` (the feature map; the
    width of the vectors once not spatial) and ``gaussian`` (the activations are the output of
    a Conv or Dense layer, as a ReLU needs). A kernel op is a hashable tuple ``(fn, *static)``,
    applied to the state K as ``fn(K, get_ntk, variances, *static)``: ``get_ntk`` says whether
    Θ is wanted, and ``variances(Σ) -> (q q', 1/√(q q'))`` is handed to a function marked
    :func:`reads_variances`. ``ops`` lists ``(pixels of the feature map it reads, op)``.

    The affine part of a Conv / Dense layer (:func:`affine`) is held back
    (:meth:`hold_affine`) and moved forward past averages (pools, GlobalAvgPool and Flatten
    commute with ``K -> W_std² K + b_std²`` and the Θ mixing) into the next ReLU
    (:meth:`take_affine`): one elementwise pass instead of two, and no stacked output between
    the shifted sums and the ReLU, which XLA's CPU backend compiles poorly (up to 50x slower
    in float64). An op that does not commute with it applies it first (:meth:`flush`).
    """

    def __init__(self, arch, in_shape):
        self.parameterization = getattr(arch, "parameterization", None)
        if self.parameterization not in ("ntk", "standard"):
            raise Unsupported(f"parameterization {self.parameterization!r} is not supported")
        self.w_var = float(arch.W_std) ** 2
        self.b_var = None if arch.b_std is None else float(arch.b_std) ** 2
        in_shape = tuple(int(s) for s in in_shape)
        if len(in_shape) not in (1, 3):
            raise Unsupported(f"inputs must be (n, H, W, C) images or (n, d) vectors, "
                              f"got per-example shape {in_shape}")
        if min(in_shape) < 1:
            raise Unsupported(f"empty input shape {in_shape}")
        self.spatial = len(in_shape) == 3
        self.h, self.w, self.c = in_shape if self.spatial else (None, None, in_shape[0])
        self.gaussian, self.pending, self.ops = False, None, []

    def add(self, fn, *static):
        """Append the kernel op ``(fn, *static)``, on the current feature map."""
        self.ops.append((self.h * self.w if self.spatial else 1, (fn,) + static))

    def hold_affine(self, fan_in):
        """Hold back this layer's affine part (W_std², b_std², the parameterization, ``fan_in``)."""
        self.flush()
        self.pending = (self.w_var, self.b_var, self.parameterization, float(fan_in))

    def take_affine(self):
        """The held-back affine part (or None), which the caller's op now applies."""
        pending, self.pending = self.pending, None
        return pending

    def flush(self):
        """Apply the held-back affine part now, as an op of its own."""
        if self.pending is not None:
            self.add(affine_op, self.take_affine())

    def require_spatial(self, layer):
        if not self.spatial:
            raise Unsupported(f"{layer} after the spatial dimensions are gone")


def _plan(arch, in_shape):
    """The :class:`Plan` ops of ``arch`` (an ``ntk_utils.models.Arch``, duck-typed: ``layers``,
    ``parameterization``, ``W_std``, ``b_std``) on inputs of per-example shape ``in_shape``,
    ``(H, W, C)`` or ``(d,)``: ``[(pixels, op)]``. Raises :class:`Unsupported`."""
    plan = Plan(arch, in_shape)
    for layer in arch.layers:
        rule = getattr(layer, "ntk_plan", None)
        if rule is None:
            raise Unsupported(f"layer {layer!r} (kind {getattr(layer, 'kind', None)!r}) has no fast_ntk rule")
        rule(plan)
    if plan.spatial:
        raise Unsupported("the network output still has spatial dimensions (add GlobalAvgPool or Flatten)")
    plan.flush()
    return plan.ops


def unsupported(arch, input_shape=None):
    """Why :func:`kernel` cannot compute the kernel of ``arch`` (a sentence), or None.

    Args:
      arch: an ``ntk_utils.models.Arch``.
      input_shape: optional shape of one input, ``(H, W, C)`` or ``(d,)``. When given, the
        shapes are checked too (pools must fit the feature maps); when omitted, only the layer
        kinds and their order are checked (as for large images).

    Supported: the layer kinds whose spec has an ``ntk_plan`` rule (all of ``ntk_utils.layers``),
    in the NTK or standard parameterization, composing to a scalar-per-pair kernel.
    """
    # Without a shape: whatever works for some input works for large images or for vectors.
    shapes = [input_shape] if input_shape is not None else [(2 ** 10, 2 ** 10, 3), (64,)]
    reasons = []
    for shape in shapes:
        try:
            _plan(arch, shape)
            return None
        except Unsupported as e:
            reasons.append(str(e))
    return reasons[0]


# --------------------------------------------------------------------------- primitives
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


def conv(k_arr, k):
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


def pool(k_arr, win):
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


def relu(s, t, prod, inv_r):
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
    in binary floating point), which ``pair_tiles.diag_tile`` guarantees for K(x, x).
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


def affine(k_arr, aff, get_ntk):
    """The elementwise part of a Conv / Dense layer: ``K_lin = [Σ_lin(, Θ_lin)] -> (Σ', Θ')``.

    ``K_lin`` is the layer's linear image of ``[Σ(, Θ)]`` before the ``W_std²`` factor (the
    shifted sums of :func:`conv` for Conv, the identity for Dense); ``aff`` =
    ``(W_std², b_std² or None, parameterization, fan_in)``, or None for none (``K`` split into
    Σ and Θ). Θ' is None unless ``get_ntk``::

        Σ' = W_std² Σ_lin + b_std²
        Θ' = W_std² Θ_lin + Σ'                                   (NTK parameterization)
        Θ' = fan_in Σ_lin + W_std² Θ_lin (+ 1 with biases)       (standard parameterization)
    """
    if aff is None:
        return k_arr[0], (k_arr[1] if get_ntk else None)
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


def affine_op(k_arr, get_ntk, variances, aff):
    """The kernel op of an affine part that no ReLU takes over (:meth:`Plan.flush`)."""
    s, t = affine(k_arr, aff, get_ntk)
    return s[None] if t is None else jnp.stack([s, t])


def pixel_diagonal(k_arr):
    """``[m, H, H, W, W, *batch]`` -> ``[m, H, W, *batch]``: the entries with a = c, b = d."""
    ih, iw = np.arange(k_arr.shape[1]), np.arange(k_arr.shape[3])
    return k_arr[:, ih, ih][:, :, iw, iw]


def reads_variances(op):
    """Mark the function of a kernel op that needs its input's per-pixel variances (a ReLU):
    the driver hands it ``variances(Σ) -> (q q', 1/√(q q'))``."""
    op.reads_variances = True
    return op


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


def kernel(arch, x1, x2=None, *, batch_size=None, dtype=np.float32, get="ntk", progress=None, devices=None,
           resume_dir=None):
    """The infinite-width NTK (or NNGP) of ``arch`` between two sets of inputs.

    Equal to ``ntk_utils.models.stax_kernel_fn(arch)(x1, x2, get)`` from neural-tangents,
    for the network's scalar output: within ~1e-15 (float64) or a few 1e-7 (float32) of its
    largest entry.

    Args:
      arch: an ``ntk_utils.models.Arch`` for which :func:`unsupported` is None.
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
        devices; ``tiles.on_devices``). The numbers do not depend on the number of devices.
      resume_dir: a folder to write the kernel into tile by tile (``tiles.TileStore``) and to
        resume from: a computation killed midway and called again with the same arguments
        continues after its last recorded tile and gives the same kernel.

    Returns:
      ``np.ndarray`` of shape ``(n1, n2)`` and dtype ``dtype`` (a tuple of them for a tuple
      ``get``).

    Raises:
      ValueError: for an architecture :func:`unsupported` rejects, or bad ``get`` / ``dtype``.
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
    in_shape = x1.shape[1:]
    try:
        segments = pair_tiles.segments(_plan(arch, in_shape))
    except Unsupported as e:
        raise ValueError(f"fast_ntk cannot compute this kernel: {e}") from None
    n1, n2 = len(x1), len(x2)
    if n1 == 0 or n2 == 0:
        out = tuple(np.zeros((n1, n2), dtype) for _ in gets)
        return out[0] if single else out
    devices = list(devices or jax.local_devices())
    b = int(batch_size or tiles.TileStore.batch_size(resume_dir) or pair_tiles.auto_batch_size(in_shape, devices))
    b1, b2 = min(b, n1), min(b, n2)
    if symmetric:
        b1 = b2 = min(b1, b2)
    get_ntk, spatial = "ntk" in gets, len(in_shape) == 3
    x1_host, x2_host = pair_tiles.tiles_of(x1, b1), pair_tiles.tiles_of(x2, b2)
    t1, t2 = len(x1_host), len(x2_host)
    # The fixed order of the tiles: when symmetric, the diagonal ones (i, i) first (they hand
    # on the ReLU variances), then only j > i, mirrored.
    diagonal = [(i, i) for i in range(t1)] if symmetric else []
    order = diagonal + [(i, j) for i in range(t1) for j in range(t2) if not symmetric or j > i]
    matrices = tiles.TiledKernel(gets, (n1, n2), (b1, b2), order, symmetric=symmetric, dtype=dtype, batch_size=b,
                                 desc="infinite NTK", show=progress, min_tiles=_PROGRESS_MIN_TILES,
                                 resume_dir=resume_dir)
    done = matrices.done

    def blocks(k_arr):
        """A tile's state after the last layer, ``[m, b1, b2]`` -> one block per ``get``."""
        return [k_arr[1 if g == "ntk" else 0] for g in gets]

    pair_tiles.prime_allocator()
    with _x64_scope(dtype):
        # Every device holds all inputs (O(n)) and the tile indices as device scalars, so a
        # tile is dispatched without any transfer.
        index = list(np.arange(max(t1, t2), dtype=np.int32))
        on = {d: {"x1": jax.device_put(x1_host, d), "index": jax.device_put(index, d)} for d in devices}
        for d in devices:
            on[d]["x2"] = on[d]["x1"] if symmetric else jax.device_put(x2_host, d)
        rest = order[max(done, len(diagonal)):]
        if symmetric and (done < len(diagonal) or rest):
            # Diagonal tiles: part of the result, and the ReLU variances for the others (so
            # recomputed on resume while other tiles remain; written only where not done).
            per_tile = []
            diag = lambda i, d: pair_tiles.diag_tile(spatial, segments, get_ntk, on[d]["x1"], on[d]["index"][i])
            results = tiles.on_devices(diag, range(t1), devices)
            for i, (k_arr, roots) in enumerate(results):
                per_tile.append(roots)
                if i >= done:   # symmetrised: K(x, x) exactly symmetric
                    matrices.put(i, i, [(block + block.T) * 0.5 for block in blocks(k_arr)])
            n_relu = sum(pair_tiles.n_variances(s) for s in segments)
            roots1 = roots2 = pair_tiles.stack_roots(per_tile) if n_relu and rest else []
        elif rest:
            roots1, roots2 = (pair_tiles.side_roots(spatial, segments, xt, devices) for xt in (x1_host, x2_host))
        if rest:
            for d in devices:
                on[d]["roots1"] = jax.device_put(roots1, d)
                on[d]["roots2"] = on[d]["roots1"] if symmetric else jax.device_put(roots2, d)

            def pair(ij, d):
                i, j = ij
                return pair_tiles.pair_tile(spatial, segments, get_ntk, on[d]["x1"], on[d]["x2"], on[d]["roots1"],
                                            on[d]["roots2"], on[d]["index"][i], on[d]["index"][j])

            matrices.fill(rest, map(blocks, tiles.on_devices(pair, rest, devices)))
    out = matrices.close()
    return out[0] if single else tuple(out)
