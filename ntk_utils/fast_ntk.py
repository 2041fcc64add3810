"""The infinite-width NTK / NNGP of conv / pool / ReLU networks as batched array products.

``infinite_ntk(arch, x1, x2)`` returns the same matrix as neural-tangents'
``stax_kernel_fn(arch)(x1, x2, "ntk")`` (see :mod:`ntk_utils.models`), several times faster on
CPU, and without importing neural-tangents or flax: it uses only public jax APIs present both
in jax 0.5.3 and in current jax, so it also runs on a GPU image where neural-tangents cannot
be imported.

The recursion
-------------
For one input pair (x, x') of ``H x W`` images the network's infinite-width kernels are kept
as pixel-pair tensors ``Σ[a, c, b, d]`` and ``Θ[a, c, b, d]``: the NNGP and NTK between pixel
(a, b) of x and pixel (c, d) of x' (rows a, c; columns b, d). Read as an ``(H·H) x (W·W)``
matrix with rows (a, c) and columns (b, d), every linear layer acts on the rows and on the
columns separately::

    input        Σ = <x[a, b, :], x'[c, d, :]> / C,                    Θ = 0
    Conv(k)      Σ' = W_std² · S_H Σ S_Wᵀ + b_std²,                    Θ' = W_std² · S_H Θ S_Wᵀ + Σ'
                 S_H[(a, c), (a', c')] = (1/k) Σ_δ [a' = a + δ][c' = c + δ]
                 (joint shift δ of both indices, δ ∈ [-(k-1)//2, k//2], zero padding: SAME)
    AvgPool(w)   Σ' = P_H Σ P_Wᵀ,  P_H[(a', c'), (a, c)] = [a // w = a'][c // w = c'] / w²
    ReLU         ρ = Σ / √(q q'),  θ = arccos ρ,
                 Σ' = √(q q') (sin θ + (π - θ) cos θ) / 2π,            Θ' = Θ (π - θ) / 2π
                 with the per-pixel variances q[a, b] = Σ(x, x)[a, a, b, b], q'[c, d] = Σ(x', x')[c, c, d, d]
    GlobalAvgPool  Σ' = mean over all (a, c, b, d)          (likewise Θ)
    Flatten        Σ' = mean over the diagonal a = c, b = d  (likewise Θ)
    Dense        Σ' = W_std² Σ + b_std²,                               Θ' = W_std² Θ + Σ'

(NTK parameterization; in the standard parameterization the Θ update is
``Θ' = fan_in · Σ_unscaled + W_std² Θ_unscaled (+ 1 with biases)`` where ``Σ_unscaled`` is the
conv/dense image of Σ before the ``W_std²`` factor, and ``fan_in`` = C_in·k² for Conv and
C_in for Dense: the finite widths of the :class:`~ntk_utils.models.Arch` enter, exactly as in
neural-tangents.) These are neural-tangents' conventions term by term (its conv filter is the
diagonal ``1/k`` filter on each axis pair, the ReLU is its ``ABRelu(0, 1)`` with the
``atan2`` form and θ = π/2 where Σ = q q' = 0, Flatten is the mean over diagonal pixel pairs).

The ReLU needs the per-pixel self variances q(x) of every ReLU layer. Because average pooling
mixes neighbouring pixels' covariances, these come from the full pixel-pair *self*
covariance Σ(x, x) — computed once per image (cost O(n)), not once per pair.

Implementation
--------------
Pairs are processed in tiles of ``batch_size x batch_size`` images (leading axes ``(i, j)``
of every tensor, so each layer is one batched array operation over the tile), jit-compiled
once per (architecture, tile shape, dtype); the last, partial tiles are padded by repeating
an image so no shape recompiles. With ``x2=None`` only the tiles on and above the diagonal
are computed and the rest mirrored. The shift matrices ``S`` are banded (k non-zeros per
row), so the convolution is applied as k shifted slices summed per axis pair (O(k·H²W²) per
pair) rather than as a dense ``(H²)x(H²)`` product (O(H⁴W²)); measured on the 2-core CPU at
16x16 the dense product was ~9x slower and at 8x8 about equal (see
``benchmarks/bench_infinite_ntk.py``). Average pooling is a reshape-and-mean (the product
with ``P`` without its zeros). Contractions use ``Precision.HIGHEST`` so that float32 stays
float32 on GPUs (no TF32).

Precision and XLA settings (measured on a 2-core AMD EPYC CPU, Myrtle-5, jax 0.5.3)
--------------------------------------------------------------------------------------
* ``dtype=np.float64`` (default): ~1e-15 agreement with neural-tangents in float64. float32
  runs about as fast on CPU here (the work is elementwise, memory bound) but loses ~1e-6
  relative accuracy near ρ = 1 (θ = arccos ρ is ill-conditioned there), so float64 is the
  default; float32 agrees with neural-tangents' float64 kernel to ~1e-6 relative and halves
  memory (use it on GPUs, where float64 is slow).
* float64 needs jax's x64 mode. It is switched on only for the duration of the call, through
  the public context manager ``jax.enable_x64`` (jax >= 0.8) or ``jax.experimental.enable_x64``
  (older jax, where it is not deprecated); the caller's global setting is left alone.
* ``XLA_FLAGS=--xla_cpu_use_thunk_runtime=false`` (which speeds neural-tangents' float32
  conv kernels up ~2.5x on jax 0.5.3) makes no useful difference for this engine, and the flag
  does not exist in current jax, so nothing is set here.

Only public jax APIs are used (no ``jax._src``), and neither neural-tangents nor flax is
imported; layer specs are recognised by class name, so ``ntk_utils.models`` is not needed
either.
"""
import contextlib
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["supports", "infinite_ntk"]

_HIGHEST = jax.lax.Precision.HIGHEST

# Elements of one pair's pixel-pair tensor (H·H·W·W) summed over a tile when batch_size is
# chosen automatically: 2**20 elements = 8 MiB per tensor in float64.
_TILE_ELEMENTS = 2 ** 20
# Show a progress bar (tqdm) from this many tiles on, when progress=None.
_PROGRESS_MIN_TILES = 50


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
      ``(ops, out_rep)``: ops are tuples ``(name, *static_params)``; the input op comes first.

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
        raise _Unsupported(f"inputs must be (n, H, W, C) images or (n, d) vectors, got per-example shape {in_shape}")
    if min(in_shape) < 1:
        raise _Unsupported(f"empty input shape {in_shape}")
    ops = [("input", spatial)]
    gaussian = False
    for layer in arch.layers:
        kind = type(layer).__name__
        if kind == "Conv":
            k = int(layer.size)
            if not spatial:
                raise _Unsupported(f"{layer} after the spatial dimensions are gone")
            if k < 1:
                raise _Unsupported(f"{layer}: filter size must be >= 1")
            ops.append(("conv", k, w_var, b_var, param, float(c * k * k)))
            c, gaussian = int(layer.width), True
        elif kind == "Dense":
            ops.append(("dense", w_var, b_var, param, float(c)))
            c, gaussian = int(layer.width), True
        elif kind == "Relu":
            if not gaussian:
                raise _Unsupported("Relu needs a Gaussian input (a Conv or Dense layer before it), "
                                   "as in neural-tangents")
            ops.append(("relu",))
            gaussian = False
        elif kind == "AvgPool":
            win = int(layer.window)
            if not spatial:
                raise _Unsupported(f"{layer} after the spatial dimensions are gone")
            if win < 1 or h // win < 1 or w // win < 1:
                raise _Unsupported(f"{layer} does not fit a {h}x{w} feature map")
            ops.append(("pool", win))
            h, w = h // win, w // win
        elif kind == "GlobalAvgPool":
            if not spatial:
                raise _Unsupported(f"{layer} after the spatial dimensions are gone")
            ops.append(("gap",))
            spatial = False
        elif kind == "Flatten":
            if spatial:
                ops.append(("flatten",))
                c = h * w * c
                spatial = False
            gaussian = False
        else:
            raise _Unsupported(f"layer {layer!r} is not supported")
    if spatial:
        raise _Unsupported("the network output still has spatial dimensions (add GlobalAvgPool or Flatten)")
    return tuple(ops)


def supports(arch, input_shape=None):
    """Whether :func:`infinite_ntk` can compute the kernel of ``arch``.

    Args:
      arch: an ``ntk_utils.models.Arch``.
      input_shape: optional shape of one input, ``(H, W, C)`` or ``(d,)``. When given, the
        shapes are checked too (pools must fit the feature maps); when omitted, only the layer
        types and their order are checked (as for large images).

    Returns:
      True when every layer is supported (Conv, Relu, AvgPool, GlobalAvgPool, Flatten, Dense;
      NTK or standard parameterization) and the layers compose to a scalar-per-pair kernel.
    """
    # Without a shape: whatever works for some input works for large images or for vectors.
    shapes = [input_shape] if input_shape is not None else [(2 ** 10, 2 ** 10, 3), (64,)]
    for shape in shapes:
        try:
            _plan(arch, shape)
            return True
        except (_Unsupported, AttributeError, TypeError, ValueError):
            pass
    return False


# --------------------------------------------------------------------------- layers
# Spatial tensors are laid out pixel axes first, batch axes last: [a, c, b, d, i, j] for a tile
# of pairs, [a, c, b, d, i] for self covariances (batch last keeps the innermost loop long and
# contiguous for the shifts below, which measured ~1.5-3x faster than batch-first). After
# GlobalAvgPool / Flatten only the batch axes remain.

def _conv_unscaled(s, k):
    """Σ ↦ S_H Σ S_Wᵀ for a SAME, stride-1 k x k convolution (without W_std²).

    Args:
      s: ``[H, H, W, W, *batch]`` pixel-pair tensor (axes a, c, b, d).
      k: filter size.

    Returns:
      ``[H, H, W, W, *batch]``: ``(1/k²) Σ_{δ, ε} s[a+δ, c+δ, b+ε, d+ε]`` (zero padding,
      δ, ε ∈ [-(k-1)//2, k//2]); the banded products with S as k² shifted slices.
    """
    lo, hi = (k - 1) // 2, k // 2
    hgt, wid = s.shape[0], s.shape[2]
    s = jnp.pad(s, [(lo, hi)] * 4 + [(0, 0)] * (s.ndim - 4))
    out = sum(s[t:t + hgt, t:t + hgt, u:u + wid, u:u + wid] for t in range(k) for u in range(k))
    return out * (1.0 / (k * k))


def _pool(s, win):
    """Σ ↦ P_H Σ P_Wᵀ for a VALID, stride-``win`` average pool: ``[H, H, W, W, *batch]`` ->
    ``[H//win, H//win, W//win, W//win, *batch]`` (the mean over each window pair)."""
    ho, wo = s.shape[0] // win, s.shape[2] // win
    s = s[:ho * win, :ho * win, :wo * win, :wo * win]
    s = s.reshape((ho, win, ho, win, wo, win, wo, win) + s.shape[4:])
    return s.mean(axis=(1, 3, 5, 7))


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


def _relu(s, t, r, inv_r):
    """The ReLU arc-cosine kernels (neural-tangents' ``ABRelu(0, 1)``).

    Args:
      s: Σ, any shape.
      t: Θ (same shape) or None.
      r: √(q q'), broadcastable to ``s``.
      inv_r: 1 / √(q q') (0 where q q' = 0), broadcastable to ``s``.

    Returns:
      ``(Σ', Θ')``: with ρ = Σ / √(q q') (clipped to [-1, 1]) and θ = arccos ρ,
      ``Σ' = √(q q') sin θ / 2π + (π - θ) Σ / 2π`` and ``Θ' = Θ (π - θ) / 2π``. Where
      q q' = 0, θ = π/2 as in neural-tangents. arccos is a polynomial (see
      :func:`_acos_coefficients`), as XLA's CPU ``atan2`` / ``acos`` cost ~16 ns an element,
      most of the whole kernel's time.
    """
    rho = jnp.clip(s * inv_r, -1.0, 1.0)
    u = 1.0 - jnp.abs(rho)                       # exact for |ρ| >= 1/2, where it matters
    root_u = jnp.sqrt(u)
    coef = _ACOS[np.dtype(s.dtype)]
    poly = coef[-1]
    for c in coef[-2::-1]:
        poly = poly * u + c
    acos_abs = root_u * poly                     # arccos |ρ|
    # π - θ: θ = arccos|ρ| for ρ >= 0, π - arccos|ρ| for ρ < 0.
    pi_minus_theta = jnp.where(rho >= 0, jnp.pi - acos_abs, acos_abs)
    dot = pi_minus_theta * (1.0 / (2 * jnp.pi))
    sin_theta = root_u * jnp.sqrt(2.0 - u)      # √(1 - ρ²) = √((1-|ρ|)(1+|ρ|))
    s_new = (r * sin_theta) * (1.0 / (2 * jnp.pi)) + dot * s
    return s_new, (None if t is None else t * dot)


def _affine(s, t, w_var, b_var, param, fan_in, linear):
    """A Conv / Dense layer: ``linear`` is the layer's action on a covariance before W_std²."""
    s_lin = linear(s)
    s_new = w_var * s_lin if b_var is None else w_var * s_lin + b_var
    if t is None and param == "ntk":
        return s_new, s_new
    t_lin = 0.0 if t is None else w_var * linear(t)
    if param == "ntk":
        return s_new, t_lin + s_new
    t_new = fan_in * s_lin + t_lin
    return s_new, (t_new if b_var is None else t_new + 1.0)


def _flatten(s):
    """``[H, H, W, W, *batch]`` -> ``[*batch]``: mean over diagonal pixel pairs (a = c, b = d)."""
    return _diag(s).mean(axis=(0, 1))


def _diag(s):
    """``[H, H, W, W, *batch]`` -> ``[H, W, *batch]``: the entries with a = c and b = d."""
    ih, iw = np.arange(s.shape[0]), np.arange(s.shape[2])
    return s[ih, ih][:, iw, iw]


def _run(ops, get_ntk, s, roots):
    """Apply ``ops[1:]`` to the input covariance ``s``.

    Args:
      ops: the plan.
      get_ntk: whether to carry Θ.
      s: the input covariance, ``[H, H, W, W, *batch]`` or ``[*batch]``.
      roots: ``roots(relu_index, s) -> (√(q q'), 1/√(q q'))`` broadcastable to ``s``.

    Returns:
      ``(Σ, Θ or None)``.
    """
    t = None
    n_relu = 0
    for op in ops[1:]:
        name = op[0]
        if name in ("conv", "dense"):
            if name == "conv":
                _, k, w_var, b_var, param, fan_in = op
                linear = functools.partial(_conv_unscaled, k=k)
            else:
                _, w_var, b_var, param, fan_in = op
                linear = lambda z: z  # noqa: E731
            s, t = _affine(s, t, w_var, b_var, param, fan_in, linear)
            t = t if get_ntk else None
        elif name == "relu":
            r, inv_r = roots(n_relu, s)
            s, t = _relu(s, t, r, inv_r)
            n_relu += 1
        elif name == "pool":
            s = _pool(s, op[1])
            t = None if t is None else _pool(t, op[1])
        elif name == "gap":
            s = s.mean(axis=(0, 1, 2, 3))
            t = None if t is None else t.mean(axis=(0, 1, 2, 3))
        elif name == "flatten":
            s = _flatten(s)
            t = None if t is None else _flatten(t)
    return s, t


def _sqrt_and_inverse(q):
    root = jnp.sqrt(q)
    return root, jnp.where(q > 0, 1.0 / jnp.where(q > 0, root, 1.0), 0.0)


def _self_variances(ops, x):
    """Per-image ReLU input variances: ``x (n, *in) -> tuple over ReLUs of (n, H_l, W_l) or (n,)``.

    Runs the NNGP recursion on the full pixel-pair self covariance Σ(x, x) ``[a, c, b, d, i]``
    and records q[a, b, i] = Σ(x, x)[a, a, b, b, i] at every ReLU input.
    """
    spatial = ops[0][1]
    c = x.shape[-1]
    if spatial:
        s = jnp.einsum("iabk,icdk->acbdi", x, x, precision=_HIGHEST) / c
    else:
        s = jnp.sum(x * x, axis=-1) / c
    recorded = []

    def roots(_, s):
        q = _diag(s) if s.ndim > 1 else s        # [H, W, i] or [i]
        recorded.append(jnp.moveaxis(q, -1, 0))
        if s.ndim == 1:
            return _sqrt_and_inverse(q * q)
        r, inv = _sqrt_and_inverse(q)
        return r[:, None, :, None] * r[None, :, None, :], inv[:, None, :, None] * inv[None, :, None, :]

    _run(ops, False, s, roots)
    return tuple(recorded)


def _pair_tile(ops, get, x1, x2, qs1, qs2):
    """The kernels of all pairs of a tile: ``x1 (b1, *in), x2 (b2, *in)`` and their ReLU
    variances ``qs (b, H_l, W_l)`` -> a tuple over ``get`` of ``(b1, b2)`` matrices."""
    spatial = ops[0][1]
    c = x1.shape[-1]
    if spatial:
        s = jnp.einsum("iabk,jcdk->acbdij", x1, x2, precision=_HIGHEST) / c
    else:
        s = jnp.einsum("ik,jk->ij", x1, x2, precision=_HIGHEST) / c

    def roots(idx, s):
        (r1, i1), (r2, i2) = _sqrt_and_inverse(qs1[idx]), _sqrt_and_inverse(qs2[idx])
        if s.ndim == 2:
            return r1[:, None] * r2[None, :], i1[:, None] * i2[None, :]
        # (b, H, W) -> [a, c, b, d, i, j] products
        def outer(v1, v2):
            v1 = jnp.transpose(v1, (1, 2, 0))[:, None, :, None, :, None]
            v2 = jnp.transpose(v2, (1, 2, 0))[None, :, None, :, None, :]
            return v1 * v2
        return outer(r1, r2), outer(i1, i2)

    s, t = _run(ops, "ntk" in get, s, roots)
    return tuple(s if g == "nngp" else t for g in get)


_self_variances_jit = jax.jit(_self_variances, static_argnums=(0,))
_pair_tile_jit = jax.jit(_pair_tile, static_argnums=(0, 1))


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


def _pad_to(x, size):
    """Pad the leading axis of ``x`` to ``size`` rows by repeating the last row."""
    if x.shape[0] == size:
        return x
    return np.concatenate([x, np.repeat(x[-1:], size - x.shape[0], axis=0)])


def _auto_batch_size(in_shape):
    if len(in_shape) == 3:
        per_pair = (in_shape[0] * in_shape[1]) ** 2
        return max(1, int(math.isqrt(max(1, _TILE_ELEMENTS // per_pair))))
    return 256


def infinite_ntk(arch, x1, x2=None, *, batch_size=None, dtype=np.float64, get="ntk", progress=None):
    """The infinite-width NTK (or NNGP) of ``arch`` between two sets of inputs.

    Equal to ``ntk_utils.models.stax_kernel_fn(arch)(x1, x2, get)`` from neural-tangents
    (within ~1e-12 relative in float64, ~1e-6 in float32), for the network's scalar output.

    Args:
      arch: an ``ntk_utils.models.Arch`` for which :func:`supports` is True.
      x1: ``(n1, H, W, C)`` images (NHWC) or ``(n1, d)`` vectors (only for networks without
        Conv / pooling layers).
      x2: ``(n2, ...)`` like ``x1``, or None for ``x1`` against itself (then only the tiles on
        and above the diagonal are computed, and the result is exactly symmetric).
      batch_size: images per tile side (a tile is ``batch_size x batch_size`` pairs); None
        picks one from the image size (~2**20 pixel-pair elements per tile).
      dtype: ``np.float64`` (default; x64 is enabled only inside this call) or
        ``np.float32``.
      get: ``"ntk"``, ``"nngp"``, or a tuple of them (then a tuple of matrices is returned).
      progress: show a tqdm progress bar over tiles; None = only when there are many tiles.

    Returns:
      ``np.ndarray`` of shape ``(n1, n2)`` and dtype ``dtype`` (a tuple of them for a tuple
      ``get``).
    """
    single = isinstance(get, str)
    gets = (get,) if single else tuple(get)
    if not gets or any(g not in ("ntk", "nngp") for g in gets):
        raise ValueError(f"get must be 'ntk', 'nngp' or a tuple of them, got {get!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    x1 = np.asarray(x1, dtype)
    symmetric = x2 is None
    x2 = x1 if symmetric else np.asarray(x2, dtype)
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(f"x1 and x2 differ in per-example shape: {x1.shape[1:]} vs {x2.shape[1:]}")
    try:
        ops = _plan(arch, x1.shape[1:])
    except _Unsupported as e:
        raise ValueError(f"fast_ntk cannot compute this kernel: {e}") from None
    n1, n2 = len(x1), len(x2)
    out = tuple(np.zeros((n1, n2), dtype) for _ in gets)
    if n1 == 0 or n2 == 0:
        return out[0] if single else out
    b = int(batch_size) if batch_size else _auto_batch_size(x1.shape[1:])
    b1, b2 = min(b, n1), min(b, n2)
    if symmetric:
        b1 = b2 = min(b1, b2)

    with _x64_scope(dtype):
        def variances(x, bs):
            chunks = [_self_variances_jit(ops, jnp.asarray(_pad_to(x[i:i + bs], bs)))
                      for i in range(0, len(x), bs)]
            return [np.concatenate([np.asarray(c[r]) for c in chunks])
                    for r in range(len(chunks[0]))] if chunks[0] else []

        qs1 = variances(x1, b1)
        qs2 = qs1 if symmetric else variances(x2, b2)
        starts1, starts2 = range(0, n1, b1), range(0, n2, b2)
        tiles = [(i, j) for i in starts1 for j in starts2 if not symmetric or j >= i]
        if progress is None:
            progress = len(tiles) >= _PROGRESS_MIN_TILES
        if progress:
            from tqdm.auto import tqdm
            tiles = tqdm(tiles, desc="infinite NTK tiles", unit="tile")

        def args(x, qs, start, bs):
            sl = slice(start, start + bs)
            return (jnp.asarray(_pad_to(x[sl], bs)), tuple(jnp.asarray(_pad_to(q[sl], bs)) for q in qs))

        pending = None  # dispatch one tile ahead of the host copy, so the CPU never idles

        def collect(item):
            (i, j), res = item
            m1, m2 = min(b1, n1 - i), min(b2, n2 - j)
            for o, r in zip(out, res):
                block = np.asarray(r)[:m1, :m2]
                o[i:i + m1, j:j + m2] = block
                if symmetric and j != i:
                    o[j:j + m2, i:i + m1] = block.T

        for i, j in tiles:
            xa, qa = args(x1, qs1, i, b1)
            xb, qb = args(x2, qs2, j, b2)
            res = _pair_tile_jit(ops, gets, xa, xb, qa, qb)
            if pending is not None:
                collect(pending)
            pending = ((i, j), res)
        collect(pending)
    if symmetric:  # diagonal tiles: make them exactly symmetric as well
        out = tuple((o + o.T) * 0.5 for o in out)
    return out[0] if single else out
