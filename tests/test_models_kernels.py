"""Architectures, empirical NTK and the finite <-> infinite consistency of the two views."""
import jax
import numpy as np
import pytest

from ntk_utils import kernels, models


def _images(n, size=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, size, size, 3)).astype(np.float32)


def _jacobian_ntk(arch, params, x1, x2):
    """Θ = J(x1) J(x2)^T from explicit per-example gradients (the definition)."""
    apply = models.flax_model(arch).apply

    def flat_grad(x):
        g = jax.grad(lambda p: apply(p, x[None])[0, 0])(params)
        return np.concatenate([np.ravel(leaf) for leaf in jax.tree_util.tree_leaves(g)])
    j1 = np.stack([flat_grad(x) for x in x1])
    j2 = np.stack([flat_grad(x) for x in x2])
    return j1 @ j2.T


@pytest.mark.parametrize("arch", [models.myrtle(5, 8), models.cnn5(4), models.mlp(2, 16),
                                  models.myrtle(5, 8, parameterization="standard", b_std=0.1)],
                         ids=["myrtle5", "cnn5", "mlp", "myrtle5-standard-bias"])
def test_flax_network_output_shape(arch):
    x = _images(3)
    params = models.flax_model(arch).init(jax.random.PRNGKey(0), x)
    assert models.flax_model(arch).apply(params, x).shape == (3, 1)


def test_arch_validation():
    with pytest.raises(ValueError, match="parameterization"):
        models.myrtle(5, 8, parameterization="mean-field")
    with pytest.raises(ValueError, match="depth"):
        models.myrtle(6, 8)
    with pytest.raises(ValueError, match="readout"):
        models.Arch((models.Conv(4), models.Relu()))
    with pytest.raises(ValueError, match="unknown architecture"):
        models.arch_from_config("resnet", 8)


def test_kernel_describe_ignores_widths_only():
    assert models.myrtle(5, 16).kernel_describe() == models.myrtle(5, 1024).kernel_describe()
    assert models.myrtle(5, 16).describe() != models.myrtle(5, 1024).describe()
    assert models.myrtle(5, 16).kernel_describe() != models.myrtle(7, 16).kernel_describe()


def test_limit_is_the_networks_own_parameterization():
    """A standard network's limit is the standard one, whose fan-in weights keep its widths in
    the cache key; its NTK-parameterization limit is width-free and the one of the NTK network."""
    sp16, sp1024 = (models.arch_from_config("myrtle", w, 5, "standard") for w in (16, 1024))
    assert sp16.limit() == sp16 and sp16.limit("standard") == sp16
    assert sp16.limit("ntk").parameterization == "ntk" and sp16.limit("ntk").b_std is None   # zero biases: none
    assert sp16.kernel_describe() != sp1024.kernel_describe()
    assert sp16.kernel_describe("ntk") == sp1024.kernel_describe("ntk") != sp16.kernel_describe()
    ntk = models.arch_from_config("myrtle", 16, 5, "ntk")
    assert ntk.limit() == ntk and ntk.kernel_describe() == ntk.kernel_describe("ntk")


@pytest.mark.slow
def test_standard_entk_approaches_its_own_limit_with_width():
    """The standard-parameterized flax network (the notebooks' initialization) and its limit
    (fast_ntk at the same widths, fan-in weights and bias terms): the eNTK averaged over
    initializations approaches it as width grows, and not the NTK-parameterization limit,
    which weighs the layers otherwise (compared up to scale: ridgeless regression ignores it)."""
    x = _images(6, 8)
    relative = lambda k, ref: np.linalg.norm(k - ref) / np.linalg.norm(ref)
    scaled = lambda k: k / np.linalg.norm(k)
    errors = {}
    for width, inits in ((4, 6), (128, 4)):
        arch = models.arch_from_config("myrtle", width, 5, "standard")
        apply = models.flax_model(arch).apply
        mean = np.mean([kernels.empirical_ntk(apply, models.flax_model(arch).init(jax.random.PRNGKey(s), x), x)
                        for s in range(inits)], 0)
        own, textbook = (kernels.infinite_ntk(arch.limit(p), x) for p in ("standard", "ntk"))
        errors[width] = (relative(mean, own), relative(scaled(mean), scaled(own)),
                         relative(scaled(mean), scaled(textbook)))
    (narrow, _, _), (wide, wide_shape, wide_vs_ntk) = errors[4], errors[128]
    assert wide < 0.15 and wide < narrow / 2, errors
    assert wide_shape < wide_vs_ntk, errors


@pytest.mark.parametrize("arch", [models.myrtle(5, 6), models.mlp(1, 12, b_std=0.5)], ids=["myrtle5", "mlp-bias"])
def test_empirical_ntk_matches_jacobian_contraction(arch):
    x1, x2 = _images(5, 4, seed=1), _images(3, 4, seed=2)
    params = models.flax_model(arch).init(jax.random.PRNGKey(3), x1)
    want = _jacobian_ntk(arch, params, x1, x2)
    got = kernels.empirical_ntk(models.flax_model(arch).apply, params, x1, x2, batch_size=2)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-5 * np.abs(want).max())


def test_empirical_ntk_symmetric_psd_and_tiling_invariant():
    arch = models.myrtle(5, 8)
    x = _images(7, 4)
    params = models.flax_model(arch).init(jax.random.PRNGKey(0), x)
    k = kernels.empirical_ntk(models.flax_model(arch).apply, params, x, batch_size=3)
    assert k.shape == (7, 7) and k.dtype == np.float32
    np.testing.assert_array_equal(k, k.T)
    assert np.linalg.eigvalsh(k.astype(np.float64)).min() > -1e-4 * np.trace(k)
    k_one_tile = kernels.empirical_ntk(models.flax_model(arch).apply, params, x, batch_size=8)
    np.testing.assert_allclose(k, k_one_tile, rtol=1e-4, atol=1e-6)


@pytest.mark.needs_neural_tangents
def test_implementations_agree(monkeypatch):
    arch = models.myrtle(5, 8)
    x = _images(4, 4)
    params = models.flax_model(arch).init(jax.random.PRNGKey(0), x)
    apply = models.flax_model(arch).apply
    k1 = kernels.empirical_ntk(apply, params, x, implementation=1)
    k3 = kernels.empirical_ntk(apply, params, x, implementation=3)
    k0 = kernels.empirical_ntk(apply, params, x, implementation=0)   # plain jax, no neural-tangents
    np.testing.assert_allclose(k1, k3, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(k1, k0, rtol=1e-4, atol=1e-6)
    monkeypatch.setattr(kernels, "JACOBIAN_BYTES", 0)                  # Jacobians "do not fit": tiles
    k0_tiled = kernels.empirical_ntk(apply, params, x, implementation=0, batch_size=3)
    np.testing.assert_allclose(k1, k0_tiled, rtol=1e-4, atol=1e-6)


def _mean_entk_error(depth_width, x, kinf, inits):
    arch = models.myrtle(5, depth_width)
    apply = models.flax_model(arch).apply
    ks = [kernels.empirical_ntk(apply, models.flax_model(arch).init(jax.random.PRNGKey(s), x), x) for s in range(inits)]
    return np.linalg.norm(np.mean(ks, 0) - kinf) / np.linalg.norm(kinf)


@pytest.mark.needs_neural_tangents
@pytest.mark.slow
def test_finite_entk_approaches_infinite_ntk_with_width():
    """The flax network and the stax kernel are the same architecture in the same parameterization:
    the eNTK averaged over initializations approaches the infinite NTK as width grows."""
    x = _images(6, 8)
    kinf = np.asarray(models.stax_kernel_fn(models.myrtle(5, 1))(x, None, "ntk"))
    narrow = _mean_entk_error(4, x, kinf, inits=6)
    wide = _mean_entk_error(256, x, kinf, inits=4)
    assert wide < 0.15, wide
    assert wide < narrow / 2, (narrow, wide)


@pytest.mark.needs_neural_tangents
def test_standard_parameterization_differs_from_ntk_kernel():
    """A check that the parameterization reaches both views: same function class, other kernel."""
    x = _images(4, 4)
    k_ntk = np.asarray(models.stax_kernel_fn(models.myrtle(5, 1))(x, None, "ntk"))
    k_std = np.asarray(models.stax_kernel_fn(models.myrtle(5, 1, parameterization="standard"))(x, None, "ntk"))
    assert not np.allclose(k_ntk, k_std)
