"""The layer registry (ntk_utils.layers): a layer kind declared in one place is read by every
interpreter: the flax network, fast_ntk's kernel, neural-tangents and the cost estimate."""
import dataclasses
import math
from typing import ClassVar

import jax
import numpy as np
import pytest

from ntk_utils import estimate, fast_ntk, kernels, layers, models
from ntk_utils.models import Arch, AvgPool, Conv, Dense, GlobalAvgPool, Relu


@layers.register
@dataclasses.dataclass(frozen=True)
class Scale:
    """A toy layer kind, declared in this file alone: ``y = factor · x``, no parameters. Its
    NNGP and NTK are factor² times its input's (Σ' = c² Σ, Θ' = c² Θ)."""
    factor: float
    kind: ClassVar[str] = "test_scale"

    def flax(self, arch, name):
        return lambda x: self.factor * x

    def stax(self, arch, stax):
        return stax.ABRelu(self.factor, self.factor)     # c·min(x, 0) + c·max(x, 0) = c·x

    def ntk_plan(self, plan):
        plan.flush()                                     # c² does not commute with a bias
        plan.add(self.ntk_op, float(self.factor) ** 2)   # a scaled Gaussian is Gaussian: plan.gaussian kept

    @staticmethod
    def ntk_op(k_arr, get_ntk, variances, factor2):
        return factor2 * k_arr

    def forward_cost(self, net):
        net.flops += net.h * net.w * net.c               # one multiply per activation

    def kernel_cost(self, pair):
        pair.add(pair.m, 8 * pair.m)                     # one multiply per element; read and write


def _pair(factor=2.0):
    """The same network with and without a Scale between its first Conv and ReLU. Without
    biases every layer after it is positively homogeneous: outputs scale by c, kernels by c²."""
    body = (Conv(4), Relu(), AvgPool(2), Conv(4), Relu(), GlobalAvgPool(), Dense(1))
    return Arch(body), Arch(body[:1] + (Scale(factor),) + body[1:])


def _images(n, size=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, size, size, 3))


def test_a_registered_kind_builds_a_flax_network():
    plain, scaled = _pair()
    x = _images(3).astype(np.float32)
    params = models.flax_model(plain).init(jax.random.PRNGKey(0), x)
    # Scale has no parameters: both networks have the same ones (the same names, so the same values).
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(
        models.flax_model(scaled).init(jax.random.PRNGKey(0), x))
    out = models.flax_model(scaled).apply(params, x)
    np.testing.assert_allclose(out, 2.0 * models.flax_model(plain).apply(params, x), rtol=1e-6)


def test_a_registered_kind_has_an_infinite_kernel():
    plain, scaled = _pair(factor=2.0)
    x1, x2 = _images(5, seed=1), _images(3, seed=2)
    assert fast_ntk.unsupported(scaled, x1.shape[1:]) is None
    for other in (x2, None):   # x1 against x2, and the symmetric path (variances off the diagonal tiles)
        want = fast_ntk.kernel(plain, x1, other, dtype=np.float64, get=("nngp", "ntk"), batch_size=2)
        got = fast_ntk.kernel(scaled, x1, other, dtype=np.float64, get=("nngp", "ntk"), batch_size=2)
        for g, w in zip(got, want):
            assert np.abs(w).max() > 0
            np.testing.assert_allclose(g, 4.0 * w, rtol=1e-12)
    np.testing.assert_allclose(kernels.infinite_ntk(scaled, x1.astype(np.float32)),
                               4.0 * kernels.infinite_ntk(plain, x1.astype(np.float32)), rtol=1e-6)


@pytest.mark.needs_neural_tangents
def test_a_registered_kind_has_a_neural_tangents_layer():
    # neural-tangents' ABRelu wants a Gaussian input and gives a non-Gaussian output: after a
    # Dense, before the readout (fast_ntk applies the Dense's affine part first, plan.flush).
    scaled = Arch((Conv(4), Relu(), GlobalAvgPool(), Dense(4), Scale(1.5), Dense(1)), b_std=0.1)
    x = _images(4, seed=3)
    want = np.asarray(models.stax_kernel_fn(scaled)(x, None, "ntk"))
    got = fast_ntk.kernel(scaled, x, dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


def test_a_registered_kind_has_a_cost():
    plain, scaled = _pair()
    for size in (8, 16):
        (f, p), (f_scaled, p_scaled) = (layers.network_cost(a, size) for a in (plain, scaled))
        assert (f_scaled, p_scaled) == (f + size * size * 4, p)           # after Conv(4) on size x size
        assert p == 3 * 3 * 3 * 4 + 3 * 3 * 4 * 4 + 4                     # two convs and the readout
        (w, b, largest), (w_s, b_s, largest_s) = (layers.infinite_ntk_work(a, size) for a in (plain, scaled))
        elements = size ** 4                                              # H²W², m = 1 before the first ReLU
        assert (w_s, b_s, largest_s) == (w + elements, b + 8 * elements, largest)
        assert estimate.network_cost(scaled, size) == (f_scaled, p_scaled)   # what estimate reads


def test_the_registry_holds_every_kind_and_refuses_clashes():
    assert {"conv", "relu", "avgpool", "global_avgpool", "flatten", "dense", "test_scale"} <= set(layers.LAYERS)
    assert layers.LAYERS is models.LAYERS
    assert layers.register(Scale) is Scale                               # registering again is harmless

    @dataclasses.dataclass(frozen=True)
    class OtherScale(Scale):
        pass
    with pytest.raises(ValueError, match="already Scale"):
        layers.register(OtherScale)

    @dataclasses.dataclass(frozen=True)
    class Unregistered:
        kind: ClassVar[str] = "unregistered"
    with pytest.raises(ValueError, match="layer registry"):
        Arch((Conv(4), Unregistered(), GlobalAvgPool(), Dense(1)))


@pytest.mark.needs_neural_tangents
def test_a_kind_without_a_fast_ntk_rule_falls_back_to_neural_tangents(monkeypatch):
    """A kind with only flax and stax builds in flax; fast_ntk refuses it by name, and
    kernels.infinite_ntk warns that it falls back to neural-tangents."""
    import flax.linen as nn

    @dataclasses.dataclass(frozen=True)
    class MaxPool:
        window: int = 2
        kind: ClassVar[str] = "maxpool"

        def flax(self, arch, name):
            return lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))

        def stax(self, arch, stax):
            raise NotImplementedError("no infinite-width max pooling")

    with pytest.raises(ValueError, match="layer registry"):
        Arch((Conv(4), MaxPool(), GlobalAvgPool(), Dense(1)))
    monkeypatch.setitem(layers.LAYERS, "maxpool", MaxPool)
    arch = Arch((Conv(4), Relu(), MaxPool(), GlobalAvgPool(), Dense(1)))
    x = np.ones((2, 4, 4, 3), np.float32)
    params = models.flax_model(arch).init(jax.random.PRNGKey(0), x)
    assert models.flax_model(arch).apply(params, x).shape == (2, 1)
    assert "(kind 'maxpool') has no fast_ntk rule" in fast_ntk.unsupported(arch)
    with pytest.warns(UserWarning, match="fast_ntk cannot compute.*maxpool.*using neural-tangents"):
        with pytest.raises(NotImplementedError):
            kernels.infinite_ntk(arch, x)


def test_weighted_layers_keep_their_parameter_names():
    """flax draws initial parameters from module names: the k-th layer with weights is
    _ScaledDense_<k>, whatever layers without weights lie between."""
    arch = models.myrtle(5, 2, parameterization="standard", b_std=0.0)
    params = models.flax_model(arch).init(jax.random.PRNGKey(0), _images(1).astype(np.float32))["params"]
    assert sorted(params) == [f"_ScaledDense_{k}" for k in range(5)]
    assert set(params["_ScaledDense_0"]) == {"kernel", "bias"} and params["_ScaledDense_4"]["kernel"].shape == (2, 1)
    assert math.isclose(float(np.abs(params["_ScaledDense_0"]["bias"]).max()), 0.0)
