"""Hidden-unit nonlinearities (background.md section 2) as functions and as layers.

``ACTIVATIONS`` maps the names ``Dense(activation=...)`` accepts to graph
functions; each also exists as a layer (``ReLU()``, ``Tanh()``, ...). The
layers with parameters or grouping live here too: ``PReLU`` (a learned slope
per unit), ``Maxout`` (max over groups of affine pieces) and ``RBF``
(Gaussian radial-basis units).
"""

from __future__ import annotations

import math

import symgraph as sg
from frontends import initializers
from frontends.config import integer, number, suggest
from frontends.layers.base import Layer, fixed_features, mask_error, weight_dtype


def linear(x: sg.Variable) -> sg.Variable:
    return x


def elu(x: sg.Variable, alpha: float = 1.0) -> sg.Variable:
    """``x`` if positive else ``alpha (e^x - 1)``: ``sg.nn.elu`` (its gradient at 0 is the
    one-sided ``alpha``, as torch's; a ``min(x, 0)`` here split it in half)."""
    return sg.nn.elu(x, alpha)


ACTIVATIONS = {
    "linear": linear,
    "relu": sg.nn.relu,
    "leaky_relu": sg.nn.leaky_relu,
    "elu": elu,
    "tanh": sg.tanh,
    "sigmoid": sg.nn.sigmoid,
    "softplus": sg.nn.softplus,
    "hard_tanh": sg.nn.hard_tanh,
    "abs": sg.abs,
    "cos": sg.cos,
    "softmax": sg.nn.softmax,
    "gelu": sg.nn.gelu,
    "silu": sg.nn.silu,
    "swish": sg.nn.silu,
}


def get_activation(name, owner: str = "activation"):
    """A graph function from a name (``None`` is linear) or a callable; ``owner`` (the
    layer's class) starts the error for an unknown name."""
    if name is None:
        return linear
    if callable(name):
        return name
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        hint = suggest(name.lower(), ACTIVATIONS) if isinstance(name, str) else ""
        raise ValueError(f"{owner}: unknown activation {name!r}{hint}; valid: "
                         f"{', '.join(sorted(ACTIVATIONS))}") from None


class Activation(Layer):
    """``Activation("relu")``: apply a named nonlinearity."""

    config_args = ("activation",)
    unit_axis = None  # elementwise: its input's units
    masking = "keep"  # (a padding mask passes on)

    def __init__(self, activation: str, name: str | None = None):
        super().__init__(name)
        self.fn = get_activation(activation, type(self).__name__)
        self.activation = activation

    def call(self, x, training):
        return self.fn(x)


def _fixed(fn_name: str, doc: str):
    class Fixed(Layer):
        unit_axis = None  # elementwise: its input's units
        masking = "keep"

        def call(self, x, training):
            return ACTIVATIONS[fn_name](x)
    Fixed.__doc__ = doc
    return Fixed


class ReLU(_fixed("relu", "``max(0, x)``.")): pass
class Tanh(_fixed("tanh", "``tanh(x)``.")): pass
class Sigmoid(_fixed("sigmoid", "``1 / (1 + e^-x)``.")): pass
class Softplus(_fixed("softplus", "``log(1 + e^x)``, a smooth ReLU.")): pass
class HardTanh(_fixed("hard_tanh", "``max(-1, min(1, x))``.")): pass
class Abs(_fixed("abs", "``|x|``: absolute-value rectification.")): pass
class Cos(_fixed("cos", "``cos(x)``.")): pass
class GELU(_fixed("gelu", "``x Phi(x)``, exact (erf), as torch's default.")): pass
class SiLU(_fixed("silu", "``x sigmoid(x)`` (swish).")):
    name_prefix = "silu"


class LeakyReLU(Layer):
    """``x`` if positive else ``alpha x`` (a fixed small slope)."""

    config_args = ("alpha",)
    masking = "keep"

    def __init__(self, alpha: float = 0.01, name: str | None = None):
        super().__init__(name)
        self.alpha = number("LeakyReLU", "alpha", alpha, lo=None)

    def call(self, x, training):
        return sg.nn.leaky_relu(x, self.alpha)


class ELU(Layer):
    """``x`` if positive else ``alpha (e^x - 1)`` (Clevert et al., 2015)."""

    config_args = ("alpha",)
    masking = "keep"

    def __init__(self, alpha: float = 1.0, name: str | None = None):
        super().__init__(name)
        self.alpha = number("ELU", "alpha", alpha, lo=None)

    def call(self, x, training):
        return elu(x, self.alpha)


class Softmax(Layer):
    """Softmax over ``axis`` (computed as ``softmax(z - max z)``)."""

    config_args = ("axis",)

    def __init__(self, axis: int = -1, name: str | None = None):
        super().__init__(name)
        self.axis = integer("Softmax", "axis", axis, lo=-(2 ** 31))  # negative: from the end

    def output_mask(self, x, mask):
        if mask is not None and self.axis % x.ndim != x.ndim - 1:
            raise mask_error(self, x, mask, f"axis {self.axis} runs along the positions")
        return mask  # (over each position's features: the mask passes on)

    def call(self, x, training):
        return sg.nn.softmax(x, self.axis)


class PReLU(Layer):
    """Leaky ReLU whose slope is learned, one per unit (He et al., 2015): per feature of
    (batch, features) and of (batch, steps, features) sequences, per channel of
    (batch, C, H, W) images, as torch's ``PReLU(num_parameters=C)`` (He et al. share a
    slope over a channel's positions)."""

    config_args = ("alpha_init",)
    masking = "keep"

    def __init__(self, alpha_init: float = 0.25, name: str | None = None):
        super().__init__(name)
        self.alpha_init = number("PReLU", "alpha_init", alpha_init, lo=None)

    def build(self, x):
        if x.ndim == 4:
            n = x.shape[1]
            if not isinstance(n, int):
                raise ValueError(f"layer {self.name}: the channels (axis 1) of the input "
                                 f"{x.shape} must be a fixed number")
        else:
            n = fixed_features(self, x, "units")
        self.alpha = self.add_weight("alpha", (n,), self.alpha_init, weight_dtype(x))

    def call(self, x, training):
        alpha = self.alpha
        if x.ndim == 4:  # (C,) against (batch, C, H, W)
            alpha = sg.reshape(alpha, alpha.shape + (1, 1))
        # x or alpha x: at 0 the gradient is alpha (one-sided, as torch's), where
        # relu(x) + alpha min(x, 0) split it; the slope's gradient is x where x <= 0
        return sg.where(x > 0, x, alpha * x)


class Maxout(Layer):
    """``units`` outputs, each the max of ``pieces`` affine functions of the input
    (Goodfellow et al., 2013)."""

    config_args = ("units", "pieces", "init")

    def __init__(self, units: int, pieces: int = 2, init="glorot_uniform",
                 name: str | None = None):
        super().__init__(name)
        self.units = integer("Maxout", "units", units)
        self.pieces = integer("Maxout", "pieces", pieces)
        self.init = initializers.checked("Maxout", "init", init)

    def build(self, x):
        _require_matrix(self, x)
        n, dt = fixed_features(self, x), weight_dtype(x)
        self.W = self.add_weight("W", (n, self.units * self.pieces), self.init, dt,
                                 fan_out=self.units, regularizable=True)
        self.b = self.add_weight("b", (self.units * self.pieces,), "zeros", dt)

    def call(self, x, training):
        z = x @ self.W + self.b
        return sg.reshape(z, (-1, self.units, self.pieces)).max(axis=2)


class RBF(Layer):
    """Gaussian radial-basis units: ``exp(-||x - c_i||^2 / s_i^2)`` with learned centres
    ``c_i`` and widths ``s_i``."""

    config_args = ("units", "init", "width")

    def __init__(self, units: int, init="uniform", width: float | None = None,
                 name: str | None = None):
        super().__init__(name)
        self.units = integer("RBF", "units", units)
        if width is not None:
            width = number("RBF", "width", width, lo_open=True)
        self.init, self.width = initializers.checked("RBF", "init", init), width

    def build(self, x):
        _require_matrix(self, x)
        n, dt = fixed_features(self, x), weight_dtype(x)
        # default width sqrt(n): a unit-variance input is at squared distance ~n from a centre
        width = math.sqrt(n) if self.width is None else float(self.width)
        self.centers = self.add_weight("centers", (self.units, n), self.init, dt,
                                       fan_in=n, fan_out=self.units)
        self.s = self.add_weight("s", (self.units,), width, dt)

    def call(self, x, training):
        # ||x - c||^2 = |x|^2 - 2 x.c + |c|^2, as one gemm rather than a (batch, units, n) tensor
        d2 = ((x * x).sum(axis=1, keepdims=True) - 2.0 * (x @ self.centers.T)
              + (self.centers * self.centers).sum(axis=1))
        # rounding can make d2 slightly negative (or 0) near a centre: clamp the value
        # only, since maximum's gradient there would be 0 (or 1/2) instead of d2's own
        # (subtracting min(d2, 0) rather than adding max(d2, 0) - d2 keeps an inf d2 inf)
        d2 = d2 - sg.stop_gradient(sg.minimum(d2, 0.0))
        return sg.exp(-d2 / (self.s * self.s))


def _require_matrix(layer: Layer, x: sg.Variable) -> None:
    if x.ndim != 2:
        raise ValueError(f"layer {layer.name}: {layer.kind} takes (batch, features), got shape "
                         f"{x.shape}; add a Flatten() first")
