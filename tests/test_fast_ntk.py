"""The fast infinite-NTK engine (ntk_utils.fast_ntk) against neural-tangents' kernel_fn."""
import math

import jax
import numpy as np
import pytest

from ntk_utils import fast_ntk, models
from ntk_utils._compat import neural_tangents
from ntk_utils.models import Arch, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Relu

ROOT2 = math.sqrt(2.0)


def _x64():
    """float64 for the reference (public context manager: jax.enable_x64 from jax 0.8 on)."""
    ctx = getattr(jax, "enable_x64", None)
    if ctx is None:
        from jax.experimental import enable_x64 as ctx
    return ctx(True)


def _reference(arch, x1, x2):
    """neural-tangents' (NNGP, NTK) in float64."""
    try:
        neural_tangents()
    except ImportError as e:  # e.g. a GPU image with a newer jax: fast_ntk runs, the reference not
        pytest.skip(f"neural-tangents not importable: {e}")
    with _x64():
        nngp, ntk = models.stax_kernel_fn(arch)(np.asarray(x1, np.float64),
                                                None if x2 is None else np.asarray(x2, np.float64),
                                                ("nngp", "ntk"))
        return np.asarray(nngp), np.asarray(ntk)


def _inputs(shape, n1=5, n2=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n1,) + shape), rng.standard_normal((n2,) + shape)


_REFERENCES = {}


def _case_reference(name, arch, shape):
    """Inputs x1 (5), x2 (3) and neural-tangents' kernels of [x1; x2] with itself (one call,
    shared by the float32 and float64 tests), from which both x1-x1 and x1-x2 blocks are read."""
    if name not in _REFERENCES:
        x1, x2 = _inputs(shape)
        _REFERENCES[name] = (x1, x2, _reference(arch, np.concatenate([x1, x2]), None))
    return _REFERENCES[name]


def _arch(*layers, **kw):
    return Arch(tuple(layers), **kw)


# (id, arch, per-example input shape). Small inputs, so the file runs in well under a minute:
# feature maps of <= 16 pixels compile into one computation (pair_tiles.segments), larger
# ones layer by layer; Myrtle-5 and CNN-5 at 8x8 take the layer-by-layer path.
CASES = [
    ("conv-relu-gap-nonsquare", _arch(Conv(4), Relu(), GlobalAvgPool(), Dense(1)), (3, 5, 2)),
    ("conv-relu-pool-flatten-dense", _arch(Conv(4), Relu(), AvgPool(2), Flatten(), Dense(1)), (4, 4, 3)),
    ("myrtle5", models.myrtle(5, 8), (8, 8, 3)),
    ("myrtle7-bias", models.myrtle(7, 8, b_std=0.3), (4, 4, 3)),
    ("cnn5", models.cnn5(4), (8, 8, 3)),
    ("myrtle5-standard", models.myrtle(5, 8, parameterization="standard"), (4, 4, 3)),
    ("myrtle5-standard-bias", models.myrtle(5, 3, parameterization="standard", b_std=0.5), (4, 4, 2)),
    # the notebooks' network: flax's initialization, zero-initialized biases (each adds 1 to Θ)
    ("myrtle5-standard-notebooks", models.arch_from_config("myrtle", 6, 5, "standard"), (4, 4, 3)),
    ("mlp-images", models.mlp(2, 16), (4, 4, 3)),
    ("mlp-vectors-standard-bias", models.mlp(2, 16, parameterization="standard", b_std=0.4), (7,)),
    ("dense-on-pixels-bias", _arch(Dense(5), Relu(), Conv(4), Relu(), GlobalAvgPool(), Dense(1), b_std=0.1),
     (4, 4, 3)),
    ("conv-sizes-5-1-2", _arch(Conv(3, size=5), Relu(), Conv(3, size=1), Relu(), Conv(3, size=2), Relu(),
                               GlobalAvgPool(), Dense(1)), (4, 3, 2)),
    # Conv -> Conv without a ReLU between, a 3x3 pool cropping 7 -> 6 px, a pool before a ReLU.
    ("conv-conv-pool3-relu", _arch(Conv(4), Conv(4), AvgPool(3), Relu(), Flatten(), Dense(4), Relu(), Dense(1),
                                   W_std=1.3, b_std=0.2), (7, 7, 2)),
]


# float32 also takes the x2=None path (diagonal tiles first) for these:
F32_SYMMETRIC = ("myrtle5", "mlp-vectors-standard-bias", "conv-conv-pool3-relu")


@pytest.mark.needs_neural_tangents
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,arch,shape", CASES, ids=[c[0] for c in CASES])
def test_matches_neural_tangents(name, arch, shape, dtype):
    assert fast_ntk.unsupported(arch) is None and fast_ntk.unsupported(arch, shape) is None
    x1, x2, (ref_nngp, ref_ntk) = _case_reference(name, arch, shape)
    n1 = len(x1)
    # float64: neural-tangents itself is off by up to ~5e-9 relative on some K(x, x) (see
    # fast_ntk._relu); float32: the 1e-5 of the specification.
    tol = 1e-7 if dtype == np.float64 else 1e-5
    paths = [(x2, np.s_[:n1, n1:]), (None, np.s_[:n1, :n1])]
    if dtype == np.float32 and name not in F32_SYMMETRIC:
        paths = paths[:1]  # compile time: the symmetric path's code is the same in both dtypes
    for other, block in paths:
        # batch_size=2: tiles that do not divide n1 = 5 or n2 = 3.
        got_nngp, got_ntk = fast_ntk.kernel(arch, x1, other, batch_size=2, dtype=dtype, get=("nngp", "ntk"))
        for got, want in ((got_nngp, ref_nngp[block]), (got_ntk, ref_ntk[block])):
            assert got.shape == want.shape and got.dtype == dtype
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
        if other is None:
            np.testing.assert_array_equal(got_ntk, got_ntk.T)


@pytest.mark.needs_neural_tangents
def test_single_get_and_defaults():
    """Default dtype float32, default batch size, one kernel at a time."""
    arch = models.mlp(1, 8, b_std=0.1)
    x1, x2 = _inputs((4, 4, 3), n1=6, n2=4, seed=1)
    want_nngp, want_ntk = _reference(arch, x1, x2)
    got = fast_ntk.kernel(arch, x1, x2)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want_ntk, rtol=1e-5)
    np.testing.assert_allclose(fast_ntk.kernel(arch, x1, x2, get="nngp"), want_nngp, rtol=1e-5)


def test_same_inputs_take_the_symmetric_path():
    """x2 equal to x1 is computed as x2=None: exactly symmetric, diagonal exact (the MLP's
    K(x, x) = 6 |x|² / d in closed form: every ReLU sees ρ = 1)."""
    arch = models.mlp(2, 8)
    x = _inputs((4, 4, 3), n1=7, seed=2)[0]
    want = 6 * (x.reshape(len(x), -1) ** 2).mean(axis=1)
    for dtype, tol in ((np.float64, 1e-14), (np.float32, 1e-6)):
        got = fast_ntk.kernel(arch, x, x.copy(), batch_size=3, dtype=dtype)
        np.testing.assert_array_equal(got, got.T)
        np.testing.assert_allclose(np.diag(got), want, rtol=tol)


def test_float64_does_not_leak_x64_mode():
    before = jax.config.jax_enable_x64
    fast_ntk.kernel(models.mlp(1, 4), *_inputs((3,)), dtype=np.float64)
    assert jax.config.jax_enable_x64 == before
    assert jax.numpy.zeros(1).dtype == (np.float64 if before else np.float32)


def test_arccos_polynomial():
    z = np.concatenate([np.linspace(-1, 1, 20001), 1 - np.logspace(-15, -1, 200)])
    for dtype, tol in ((np.float64, 1e-14), (np.float32, 1e-6)):
        coef = fast_ntk._ACOS[np.dtype(dtype)]
        u = 1 - np.abs(z)
        approx = np.sqrt(u) * np.polynomial.polynomial.polyval(u, coef)
        np.testing.assert_allclose(approx, np.arccos(np.abs(z)), rtol=tol, atol=0)


def test_unsupported_names_what_it_cannot_compute():
    assert fast_ntk.unsupported(models.myrtle(10, 8)) is None
    assert "spatial dimensions are gone" in fast_ntk.unsupported(
        _arch(Flatten(), Dense(4), Conv(4), Relu(), GlobalAvgPool(), Dense(1)))
    assert "Gaussian input" in fast_ntk.unsupported(_arch(Relu(), Conv(4), GlobalAvgPool(), Dense(1)))  # raw input
    assert "still has spatial" in fast_ntk.unsupported(_arch(Conv(4), Relu(), Dense(1)))
    assert "does not fit a 1x1" in fast_ntk.unsupported(models.myrtle(5, 8), (2, 2, 3))       # pools do not fit
    assert "(n, H, W, C) images or (n, d) vectors" in fast_ntk.unsupported(models.myrtle(5, 8), (8, 3))

    class MaxPool:  # an unknown layer type
        pass
    fake = type("FakeArch", (), {"layers": (Conv(4), MaxPool(), Dense(1)), "parameterization": "ntk",
                                 "W_std": ROOT2, "b_std": None})()
    assert "has no fast_ntk rule" in fast_ntk.unsupported(fake)
    with pytest.raises(ValueError, match="cannot compute"):
        fast_ntk.kernel(_arch(Conv(4), Relu(), Dense(1)), np.zeros((2, 4, 4, 3)))
    with pytest.raises(ValueError, match="get"):
        fast_ntk.kernel(models.mlp(1, 4), np.zeros((2, 3)), get="jacobian")
