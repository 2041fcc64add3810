"""One architecture description, two views: a finite flax network and its infinite-width kernel.

An :class:`Arch` is a tuple of layer specs plus a parameterization. ``flax_model(arch)``
builds the finite network and ``stax_kernel_fn(arch)`` the neural-tangents kernel of the
*same* network (``ntk_utils.fast_ntk.kernel`` reads the same specs), so the finite and infinite
objects cannot drift apart.

Parameterization (``arch.parameterization``)
--------------------------------------------
``"standard"`` (how practitioners train a CNN; the default of the notebooks): weights drawn
from a truncated normal of variance W_std^2 / f (f = fan-in) and ``z = W x + b`` with biases
drawn N(0, b_std^2). With ``W_std=1, b_std=0`` (:data:`PARAMETERIZATIONS`) this is exactly
flax's default initialization (LeCun normal weights, zero biases that are trained).
``"ntk"`` (as in neural-tangents): every weight is drawn N(0, 1) and a layer computes
``z = (W_std / sqrt(f)) * (W x) + b_std * b``; its empirical NTK converges to the infinite
NTK as width -> inf at a fixed learning rate. Biases exist only when ``b_std`` is not None.

The infinite-width limit of a network is that of *its* parameterization (:meth:`Arch.limit`),
and the two differ. In the NTK parameterization every layer's contribution to Θ carries the
same weight and the limit does not depend on the hidden widths. In the standard one the
gradient of a weight is not scaled by 1/√fan-in, so a layer's term in Θ is weighted by its
fan-in (the first conv's 27 = 3·3² against 9·width for the next ones, the readout's width) and
each bias adds 1: neural-tangents' ``parameterization="standard"`` kernel, which depends on the
widths of the ``Arch`` (:meth:`Arch.kernel_describe` keeps them). It is the expected eNTK of
the standard-parameterized network at initialization, up to the corrections of a finite width
(tests/test_models_kernels.py checks both against neural-tangents and against the flax
network's mean eNTK as the width grows). Ridgeless kernel regression does not depend on the
kernel's scale, so the overall growth of the standard Θ with width does not matter; the
relative weights of the layers do.

Layers: ``Conv(width, size=3)`` (stride 1, SAME padding), ``Relu()``, ``AvgPool(window=2)``
(stride = window, VALID), ``GlobalAvgPool()``, ``Flatten()``, ``Dense(width)``: the layer
registry ``ntk_utils.layers``, where each kind declares its flax operation, neural-tangents
layer, fast_ntk rule and costs. Networks end in ``Dense(1)``: a scalar output f(x) for the ±1
binary tasks.
"""
import dataclasses
import math
from typing import Optional

import flax.linen as nn

# The layer specs, importable from here as well (models.Conv, ...).
from ntk_utils.layers import LAYERS, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Relu


@dataclasses.dataclass(frozen=True)
class Arch:
    """A network: ``layers`` in order, and how its weights are scaled.

    Attributes:
      layers: tuple of layer specs (see module docstring).
      parameterization: ``"ntk"`` or ``"standard"``.
      W_std: weight standard deviation factor (sqrt(2) keeps ReLU activations O(1)).
      b_std: bias standard deviation factor, or None for no biases.
      name: a label for plots and cache keys.
    """
    layers: tuple
    parameterization: str = "ntk"
    W_std: float = math.sqrt(2.0)
    b_std: Optional[float] = None
    name: str = "custom"

    def __post_init__(self):
        if self.parameterization not in ("ntk", "standard"):
            raise ValueError(f"parameterization must be 'ntk' or 'standard', got {self.parameterization!r}")
        bad = [layer for layer in self.layers if LAYERS.get(getattr(layer, "kind", None)) is not type(layer)]
        if bad:
            raise ValueError(f"unknown layer specs {bad}; use {[t.__name__ for t in LAYERS.values()]} "
                             "(a new kind joins the layer registry with ntk_utils.layers.register)")
        if not self.layers or not isinstance(self.layers[-1], Dense):
            raise ValueError("an Arch must end with a Dense readout layer")

    def limit(self, parameterization=None):
        """The Arch whose infinite-width kernel is this network's limit in ``parameterization``
        (None: the network's own). "ntk": the same layers in the NTK parameterization (biases
        only where they start non-zero: zero-initialized ones contribute nothing there);
        "standard": the same layers in the standard one, with its fan-in weights and bias terms."""
        parameterization = parameterization or self.parameterization
        if parameterization == "ntk":
            return dataclasses.replace(self, parameterization="ntk", b_std=self.b_std or None)
        return dataclasses.replace(self, parameterization=parameterization)

    def kernel_describe(self, parameterization=None):
        """:meth:`describe` of :meth:`limit`, the cache key of the infinite-width kernel: without
        hidden widths in the NTK parameterization (that limit does not depend on them), with them
        in the standard one (they weigh the layers)."""
        limit = self.limit(parameterization)
        if limit.parameterization != "ntk":
            return dataclasses.replace(limit, name=self.name).describe()
        hidden = tuple(dataclasses.replace(layer, width=0) if hasattr(layer, "width") else layer
                       for layer in limit.layers[:-1])
        return dataclasses.replace(limit, layers=hidden + limit.layers[-1:], name=self.name).describe()

    def check_image_size(self, image_size):
        """Raise ValueError unless every pooling layer fits image_size x image_size inputs."""
        size = image_size
        for layer in self.layers:
            if isinstance(layer, AvgPool):
                if size // layer.window < 1:
                    raise ValueError(f"{self.name}: {layer} does not fit the {size}x{size} feature map left of "
                                     f"{image_size}x{image_size} px images; use larger images")
                size //= layer.window

    def describe(self):
        """A short stable string, e.g. for cache keys: 'myrtle5[ntk,W=1.414,b=None]:Conv(64,3)...'."""
        return (f"{self.name}[{self.parameterization},W={self.W_std:.6g},b={self.b_std}]:"
                + "-".join(repr(layer) for layer in self.layers))


# Per parameterization: the initialization scales used when none are given.
PARAMETERIZATIONS = {
    "standard": dict(W_std=1.0, b_std=0.0),       # flax defaults: LeCun normal, zero (trained) biases
    "ntk": dict(W_std=math.sqrt(2.0), b_std=None),  # neural-tangents' convention, no biases
}


def myrtle(depth=5, width=64, *, parameterization="ntk", W_std=math.sqrt(2.0), b_std=None):
    """Myrtle-CNN (Shankar et al. 2020; the neural-tangents example), with a scalar readout.

    depth 5 / 7 / 10 = conv blocks (2,1,1) / (2,2,2) / (3,3,3) separated by 2x2 average
    pools, then global average pooling and a dense readout. The original ends with three
    more 2x2 pools down to 1x1 at 32x32 px; global average pooling is the same map there and
    also works at the 8x8 / 16x16 px of CPU runs.
    """
    blocks = {5: (2, 1, 1), 7: (2, 2, 2), 10: (3, 3, 3)}
    if depth not in blocks:
        raise ValueError(f"Myrtle depth must be one of {sorted(blocks)}, got {depth}")
    layers = []
    for i, repeats in enumerate(blocks[depth]):
        if i:
            layers.append(AvgPool(2))
        layers += [Conv(width), Relu()] * repeats
    layers += [GlobalAvgPool(), Dense(1)]
    return Arch(tuple(layers), parameterization, W_std, b_std, name=f"myrtle{depth}")


def cnn5(width=64, *, parameterization="ntk", W_std=math.sqrt(2.0), b_std=None):
    """The 5-layer CNN used for SVHN-parity: four 3x3 conv+ReLU layers, width doubling
    (w, 2w, 4w, 8w) with 2x2 average pools between them, global pooling, dense readout.

    The paper's exact 5-layer CNN is not available to us; this follows the common
    "5-layer CNN" of Nakkiran et al. (Deep Double Descent) with average instead of max
    pooling and no batch norm, so that its infinite-width NTK exists in closed form.
    """
    layers = []
    for i in range(4):
        if i:
            layers.append(AvgPool(2))
        layers += [Conv(width * 2 ** i), Relu()]
    layers += [GlobalAvgPool(), Dense(1)]
    return Arch(tuple(layers), parameterization, W_std, b_std, name="cnn5")


def mlp(depth=2, width=512, *, parameterization="ntk", W_std=math.sqrt(2.0), b_std=None):
    """A fully connected ReLU network with ``depth`` hidden layers (for the primer)."""
    layers = [Flatten()] + [Dense(width), Relu()] * depth + [Dense(1)]
    return Arch(tuple(layers), parameterization, W_std, b_std, name=f"mlp{depth}")


def arch_from_config(name, width, depth=None, parameterization="standard"):
    """Build an Arch from plain parameters, as they appear in notebook parameter cells, with the
    parameterization's initialization scales (:data:`PARAMETERIZATIONS`)."""
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization must be one of {sorted(PARAMETERIZATIONS)}, got {parameterization!r}")
    scales = dict(parameterization=parameterization, **PARAMETERIZATIONS[parameterization])
    builders = {"myrtle": lambda: myrtle(depth or 5, width, **scales),
                "cnn5": lambda: cnn5(width, **scales),
                "mlp": lambda: mlp(depth or 2, width, **scales)}
    if name not in builders:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(builders)}")
    return builders[name]()


# --------------------------------------------------------------------------- flax

class FlaxNet(nn.Module):
    """The finite network of an :class:`Arch`: NHWC images (n, H, W, C) -> outputs (n, 1)."""
    arch: Arch

    @nn.compact
    def __call__(self, x):
        weighted = 0
        for layer in self.arch.layers:
            # flax draws a module's initial parameters from its name: the k-th layer with
            # parameters is "_ScaledDense_<k>", as in every network this package has trained.
            op = layer.flax(self.arch, f"_ScaledDense_{weighted}")
            weighted += isinstance(op, nn.Module)
            x = op(x)
        return x


def flax_model(arch):
    """The flax.linen module of ``arch``; ``model.init(key, x)`` / ``model.apply(params, x)``."""
    return FlaxNet(arch)


# ---------------------------------------------------------------- neural-tangents

def stax_layers(arch):
    """The neural-tangents ``stax.serial`` triple ``(init_fn, apply_fn, kernel_fn)`` of ``arch``."""
    from ntk_utils._compat import neural_tangents
    stax = neural_tangents().stax
    return stax.serial(*(layer.stax(arch, stax) for layer in arch.layers))


def stax_kernel_fn(arch):
    """The infinite-width kernel function ``kernel_fn(x1, x2, 'ntk' | 'nngp')`` of ``arch``."""
    return stax_layers(arch)[2]
