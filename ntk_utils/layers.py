"""The layer registry: each layer kind declared once, with every rule that reads it.

A layer spec is a frozen dataclass with a ``kind`` (its name in :data:`LAYERS`) and, side by
side:

* ``flax(arch, name)``: its operation in the finite flax network (``models.FlaxNet``); a flax
  module with parameters is named ``name``;
* ``stax(arch, stax)``: its neural-tangents layer (``models.stax_layers``);
* ``ntk_plan(plan)`` and ``ntk_op``: its rule in ``ntk_utils.fast_ntk``: the plan step checks
  that the layer fits the feature map, adds its kernel ops (functions of the pixel-pair state
  ``K = [Σ(, Θ)]``, mostly fast_ntk's primitives) and updates the shape (``fast_ntk.Plan``);
* ``forward_cost(net)``: its forward FLOPs and parameters (:func:`network_cost`), and
  ``kernel_cost(pair)``: its FLOPs and bytes per pixel-pair element in fast_ntk's recursion
  (:func:`infinite_ntk_work`), both read by ``ntk_utils.estimate``.

Layers: ``Conv(width, size=3)`` (stride 1, SAME padding), ``Relu()``, ``AvgPool(window=2)``
(stride = window, VALID), ``GlobalAvgPool()``, ``Flatten()``, ``Dense(width)``. A new kind is
a class with these methods under ``@register`` (tests/test_layers.py adds one).
"""
import dataclasses
import math
from typing import ClassVar, Optional

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from ntk_utils import fast_ntk

# Every layer kind, by its ``kind``: models.Arch accepts exactly these.
LAYERS = {}


def register(cls):
    """Class decorator: add the layer spec ``cls`` to :data:`LAYERS` under ``cls.kind``."""
    if LAYERS.get(cls.kind, cls) is not cls:
        raise ValueError(f"layer kind {cls.kind!r} is already {LAYERS[cls.kind].__name__}")
    LAYERS[cls.kind] = cls
    return cls


def _scales(arch):
    return dict(W_std=arch.W_std, b_std=arch.b_std, parameterization=arch.parameterization)


@dataclasses.dataclass
class Forward:
    """What :func:`network_cost` carries through the layers: the feature map ``h x w x c``,
    whether the weighted layers have biases, and the totals so far."""
    h: int
    w: int
    c: int
    bias: bool
    flops: int = 0
    params: int = 0


@dataclasses.dataclass
class PairWork:
    """What :func:`infinite_ntk_work` carries through the layers for one image pair: the
    state's pixel-pair ``elements`` (H²W²), its ``m`` arrays (1: Σ; 2: Σ and Θ), the FLOPs per
    element of the affine part a ReLU takes over (``fast_ntk.Plan``), and the totals so far."""
    elements: int
    flops: int
    moved: int
    m: int = 1
    affine: int = 1

    def add(self, flops, moved):
        """``flops`` and ``moved`` bytes per element of the state."""
        self.flops += flops * self.elements
        self.moved += moved * self.elements

    def reduce_to_one(self):
        """A mean over the pixel pairs (global pooling, flatten): one pass over the state, one
        element per pair left."""
        self.add(self.m, 4 * self.m)
        self.elements = 1


# fast_ntk.relu per element, float32 (degree-9 arccos polynomial: 18, 3 sqrt)
RELU_FLOPS = 38


@register
@dataclasses.dataclass(frozen=True)
class Conv:
    """size x size convolution, stride 1, SAME padding, ``width`` output channels."""
    width: int
    size: int = 3
    kind: ClassVar[str] = "conv"

    def flax(self, arch, name):
        return ConvOrDense(self.width, (self.size, self.size), arch.parameterization, arch.W_std, arch.b_std,
                           name=name)

    def stax(self, arch, stax):
        return stax.Conv(self.width, (self.size, self.size), padding="SAME", **_scales(arch))

    def ntk_plan(self, plan):
        plan.require_spatial(self)
        if self.size < 1:
            raise fast_ntk.Unsupported(f"{self}: filter size must be >= 1")
        plan.flush()                       # the shifted sums do not commute with a bias
        plan.add(self.ntk_op, int(self.size))
        plan.hold_affine(plan.c * int(self.size) ** 2)
        plan.c, plan.gaussian = int(self.width), True

    @staticmethod
    def ntk_op(k_arr, get_ntk, variances, k):
        return fast_ntk.conv(k_arr, k)

    def forward_cost(self, net):
        weights = self.size ** 2 * net.c * self.width
        net.flops += 2 * net.h * net.w * weights
        net.params += weights + net.bias * self.width
        net.c = self.width

    def kernel_cost(self, pair):
        pair.add(pair.m * (2 * self.size - 1), 8 * pair.m)   # k shifted sums per axis
        pair.affine = 1 + 2 * (pair.m == 2)                  # applied inside the next ReLU


@register
@dataclasses.dataclass(frozen=True)
class Relu:
    kind: ClassVar[str] = "relu"

    def flax(self, arch, name):
        return nn.relu

    def stax(self, arch, stax):
        return stax.Relu()

    def ntk_plan(self, plan):
        if not plan.gaussian:
            raise fast_ntk.Unsupported("Relu needs a Gaussian input (a Conv or Dense layer before it), "
                                       "as in neural-tangents")
        plan.add(self.ntk_op, plan.take_affine())
        plan.gaussian = False

    @staticmethod
    @fast_ntk.reads_variances
    def ntk_op(k_arr, get_ntk, variances, aff):
        """The held-back affine part ``aff`` of the layer before (None: none), then the ReLU."""
        s, t = fast_ntk.affine(k_arr, aff, get_ntk)
        return fast_ntk.relu(s, t, *variances(s))

    def forward_cost(self, net):
        pass

    def kernel_cost(self, pair):
        pair.add(RELU_FLOPS + pair.affine, 4 * pair.m + 8)   # reads Σ(, Θ), writes Σ', Θ'
        pair.m = 2


@register
@dataclasses.dataclass(frozen=True)
class AvgPool:
    """window x window average pooling, stride = window, VALID."""
    window: int = 2
    kind: ClassVar[str] = "avgpool"

    def flax(self, arch, name):
        w = (self.window, self.window)
        return lambda x: nn.avg_pool(x, w, strides=w, padding="VALID")

    def stax(self, arch, stax):
        w = (self.window, self.window)
        return stax.AvgPool(w, strides=w, padding="VALID")

    def ntk_plan(self, plan):
        win = int(self.window)
        plan.require_spatial(self)
        if win < 1 or plan.h // win < 1 or plan.w // win < 1:
            raise fast_ntk.Unsupported(f"{self} does not fit a {plan.h}x{plan.w} feature map")
        plan.add(self.ntk_op, win)         # an average: a held-back affine part moves past it
        plan.h, plan.w = plan.h // win, plan.w // win

    @staticmethod
    def ntk_op(k_arr, get_ntk, variances, win):
        return fast_ntk.pool(k_arr, win)

    def forward_cost(self, net):
        net.h, net.w = net.h // self.window, net.w // self.window

    def kernel_cost(self, pair):
        out = pair.elements // self.window ** 4
        pair.flops += pair.m * pair.elements
        pair.moved += 4 * pair.m * (pair.elements + out)
        pair.elements = out


@register
@dataclasses.dataclass(frozen=True)
class GlobalAvgPool:
    kind: ClassVar[str] = "global_avgpool"

    def flax(self, arch, name):
        return lambda x: jnp.mean(x, axis=(1, 2))

    def stax(self, arch, stax):
        return stax.GlobalAvgPool()

    def ntk_plan(self, plan):
        plan.require_spatial(self)
        plan.add(self.ntk_op)              # an average: a held-back affine part moves past it
        plan.spatial = False

    @staticmethod
    def ntk_op(k_arr, get_ntk, variances):
        return k_arr.mean(axis=(1, 2, 3, 4))

    def forward_cost(self, net):
        net.h = net.w = 1

    def kernel_cost(self, pair):
        pair.reduce_to_one()


@register
@dataclasses.dataclass(frozen=True)
class Flatten:
    kind: ClassVar[str] = "flatten"

    def flax(self, arch, name):
        return lambda x: x.reshape((x.shape[0], -1))

    def stax(self, arch, stax):
        return stax.Flatten()

    def ntk_plan(self, plan):
        if plan.spatial:
            plan.add(self.ntk_op)          # an average: a held-back affine part moves past it
            plan.c, plan.spatial = plan.h * plan.w * plan.c, False
        plan.gaussian = False

    @staticmethod
    def ntk_op(k_arr, get_ntk, variances):
        return fast_ntk.pixel_diagonal(k_arr).mean(axis=(1, 2))

    def forward_cost(self, net):
        net.h, net.w, net.c = 1, 1, net.h * net.w * net.c

    def kernel_cost(self, pair):
        pair.reduce_to_one()


@register
@dataclasses.dataclass(frozen=True)
class Dense:
    """Fully connected layer with ``width`` outputs."""
    width: int
    kind: ClassVar[str] = "dense"

    def flax(self, arch, name):
        return ConvOrDense(self.width, None, arch.parameterization, arch.W_std, arch.b_std, name=name)

    def stax(self, arch, stax):
        return stax.Dense(self.width, **_scales(arch))

    def ntk_plan(self, plan):
        plan.hold_affine(plan.c)           # on pixels while the maps are spatial
        plan.c, plan.gaussian = int(self.width), True

    def forward_cost(self, net):
        net.flops += 2 * net.h * net.w * net.c * self.width   # on pixels when before Flatten / GlobalAvgPool
        net.params += net.c * self.width + net.bias * self.width
        net.c = self.width

    def kernel_cost(self, pair):
        pair.affine = 1 + 2 * (pair.m == 2)
        if pair.elements == 1:             # after pooling; before, it is the next ReLU's affine part
            pair.add(pair.affine, 0)


class ConvOrDense(nn.Module):
    """The weights of a Conv (``kernel_size`` (k, k)) or Dense (``kernel_size`` None) layer in
    the NTK or standard parameterization (``ntk_utils.models``' docstring)."""
    features: int
    kernel_size: Optional[tuple]
    parameterization: str
    W_std: float
    b_std: Optional[float]

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1] * (math.prod(self.kernel_size) if self.kernel_size else 1)
        w_scale = self.W_std / math.sqrt(fan_in)
        ntk = self.parameterization == "ntk"
        init = nn.initializers.normal(1.0) if ntk else \
            nn.initializers.variance_scaling(self.W_std ** 2, "fan_in", "truncated_normal")
        shape = (*self.kernel_size, x.shape[-1], self.features) if self.kernel_size else (x.shape[-1], self.features)
        w = self.param("kernel", init, shape)
        if self.kernel_size:
            y = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        else:
            y = x @ w
        if ntk:
            y = y * w_scale
        if self.b_std is not None:
            b = self.param("bias", nn.initializers.normal(1.0 if ntk else self.b_std), (self.features,))
            y = y + (self.b_std * b if ntk else b)
        return y


# ---------------------------------------------------------------- costs (ntk_utils.estimate)

def network_cost(arch, image_size, channels=3):
    """(F, P): forward FLOPs of one example (2 per multiply-add of the Conv / Dense layers) and
    the number of parameters of ``arch`` on image_size x image_size x channels inputs."""
    net = Forward(image_size, image_size, channels, arch.b_std is not None)
    for layer in arch.layers:
        layer.forward_cost(net)
    return net.flops, net.params


def infinite_ntk_work(arch, image_size, channels=3):
    """(FLOPs, bytes, largest state bytes) of one image pair's infinite NTK, counted layer by
    layer from fast_ntk's recursion (float32; E = the layer's pixel-pair elements H²W²; m = 1
    array Σ or 2, Σ and Θ):

        input        2 C FLOPs per element                  writes Σ: 4 bytes
        conv k       m (2k - 1)  (k shifted sums per axis)  reads and writes the state: 8 m
        relu         38 + the conv's affine (1, or 3 with Θ)  reads 4 m, writes Σ', Θ': 8
        avgpool w    m                                      4 m (1 + 1/w⁴)
        global pool  m                                      4 m
        dense        3 per pair after pooling (left out before: on pixels it is an affine)

    Bytes are the compulsory traffic of evaluating layer by layer, each output materialised once
    (benchmarks/bench_roofline.py compares both with what fast_ntk achieves).
    """
    elements = (image_size * image_size) ** 2
    pair = PairWork(elements, flops=2 * channels * elements, moved=4 * elements)
    largest = pair.moved
    for layer in arch.layers:
        layer.kernel_cost(pair)
        largest = max(largest, 4 * pair.m * pair.elements)
    return pair.flops, pair.moved, largest
