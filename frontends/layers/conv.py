"""Convolution and pooling layers, NCHW like torch: ``Conv2D``, ``MaxPool2D``, ``AvgPool2D``,
``GlobalAvgPool2D``.

Each is ``sg.nn.conv2d`` / ``max_pool2d`` / ``avg_pool2d`` / ``sg.mean`` on a
(batch, channels, height, width) input, so the training step stays one graph that the
backends compile like any other (conv gradients are ops of their own, differentiable again).
A model on flat vectors starts with ``Reshape((C, H, W))``; ``Flatten`` after the last
feature map gives (batch, C * H * W) in torch's order.
"""

from __future__ import annotations

import warnings

import symgraph as sg
from frontends import initializers
from frontends.config import flag, integer
from frontends.layers.activations import get_activation
from frontends.layers.base import Layer, weight_dtype
from symgraph.ops.conv import Conv2D as _Conv2DOp


def _pair(owner: str, name: str, value, *, lo: int = 1) -> tuple[int, int]:
    """An int or a pair of ints (a list from a spec or a model file) as a pair."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{owner}: {name} must be an int or a pair of ints, got {value!r}")
        return (integer(owner, name, value[0], lo=lo), integer(owner, name, value[1], lo=lo))
    v = integer(owner, name, value, lo=lo)
    return (v, v)


def _plain(pair: tuple[int, int]):
    """What ``get_config`` saves: an int when both entries agree, else a list (JSON)."""
    return pair[0] if pair[0] == pair[1] else list(pair)


def checked_groups(owner: str, filters: int, groups) -> int:
    """``groups`` as an int that divides ``filters`` (Conv1D and Conv2D)."""
    groups = integer(owner, "groups", groups)
    if filters % groups:
        raise ValueError(f"{owner}: filters ({filters}) must be divisible by groups "
                         f"({groups})")
    return groups


def checked_padding(owner: str, padding, numeric, choices: str):
    """``"valid"``, ``"same"`` or ``numeric(padding)`` (an int, or a pair for Conv2D);
    ``choices`` words the error."""
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(f"{owner}: padding must be {choices}, got {padding!r}")
        return padding
    return numeric(padding)


def _image_dims(layer: Layer, x: sg.Variable) -> tuple[int, int, int]:
    """(channels, height, width) of an NCHW input with fixed non-batch dims, or an error
    naming the layer; a warning when the model's input or a Reshape gives what looks like
    channels-last images (a square height x width, then 1, 3 or 4 channels: Keras's layout)."""
    if x.ndim != 4 or not all(isinstance(d, int) for d in x.shape[1:]):
        raise ValueError(f"layer {layer.name}: {layer.kind} takes (batch, channels, height, "
                         f"width) with fixed channels and size, got shape {x.shape}; images "
                         "stored flat need a Reshape((channels, height, width)) first")
    source = getattr(getattr(x, "layer", None), "kind", None)  # None: the model's input
    if (source in (None, "Reshape") and x.shape[3] in (1, 3, 4) and x.shape[1] == x.shape[2]
            > 4 and not getattr(layer, "_layout_warned", False)):  # square HxW, C last
        layer._layout_warned = True  # (build and call both look: one warning)
        warnings.warn(f"layer {layer.name}: {layer.kind} takes (batch, channels, height, "
                      f"width), as torch; an input of shape {x.shape} looks like channels-last "
                      f"images ({x.shape[3]} channels of {x.shape[1]}x{x.shape[2]}): put "
                      "fe.layers.Permute((3, 1, 2)) before it (flat data stored channel by "
                      f"channel: Reshape to ({x.shape[3]}, {x.shape[1]}, {x.shape[2]}))",
                      UserWarning, stacklevel=4)
    return x.shape[1], x.shape[2], x.shape[3]


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras/TensorFlow ``"same"``: ``ceil(size / stride)`` outputs, the odd padding row on
    the far side (for stride 1 the same as torch's ``padding="same"``)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return (total // 2, total - total // 2)


class Conv2D(Layer):
    """``activation(conv2d(x, W) + b)``: ``x`` (batch, C, H, W), ``W`` (filters, C / groups,
    kh, kw), ``b`` (filters,). ``padding`` is ``"valid"`` (none), ``"same"`` (output size
    ``ceil(H / stride)``, as Keras), an int or a pair. ``W`` is Glorot-uniform by default
    with Keras's and torch's fans (``fan_in = C / groups * kh * kw``, ``fan_out = filters *
    kh * kw``; ``init="he_normal"`` suits ReLU), ``b`` zeros; only ``W`` is regularised.

    >>> conv = fe.layers.Conv2D(16, 3, padding="same", activation="relu")
    """

    config_args = ("filters", "kernel_size", "stride", "padding", "dilation", "groups",
                   "activation", "init", "bias_init", "use_bias")

    def __init__(self, filters: int, kernel_size, stride=1, padding="valid", activation=None,
                 init="glorot_uniform", bias_init="zeros", use_bias: bool = True,
                 dilation=1, groups: int = 1, name: str | None = None):
        super().__init__(name)
        self.filters = integer("Conv2D", "filters", filters)
        self._kernel = _pair("Conv2D", "kernel_size", kernel_size)
        self._stride = _pair("Conv2D", "stride", stride)
        self._dilation = _pair("Conv2D", "dilation", dilation)
        self.groups = checked_groups("Conv2D", self.filters, groups)
        self.padding = checked_padding(
            "Conv2D", padding, lambda p: _plain(_pair("Conv2D", "padding", p, lo=0)),
            "'valid', 'same', an int or a pair")
        self.fn = get_activation(activation, type(self).__name__)
        self.activation = activation  # a name, or a function (then the model cannot be saved)
        self.init = initializers.checked("Conv2D", "init", init)
        self.bias_init = initializers.checked("Conv2D", "bias_init", bias_init)
        self.use_bias = flag("Conv2D", "use_bias", use_bias)

    kernel_size = property(lambda self: _plain(self._kernel))
    stride = property(lambda self: _plain(self._stride))
    dilation = property(lambda self: _plain(self._dilation))

    def pads(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """((top, bottom), (left, right)) zero padding for an input of this size."""
        if self.padding == "valid":
            return ((0, 0), (0, 0))
        if self.padding == "same":
            return tuple(same_padding(n, k, s, d) for n, k, s, d in zip(
                (height, width), self._kernel, self._stride, self._dilation))
        ph, pw = _pair("Conv2D", "padding", self.padding, lo=0)
        return ((ph, ph), (pw, pw))

    def build(self, x):
        channels, height, width = _image_dims(self, x)
        if channels % self.groups:
            raise ValueError(f"layer {self.name}: {channels} input channels are not divisible "
                             f"by groups={self.groups}")
        dt = weight_dtype(x)
        kh, kw = self._kernel
        per_group = channels // self.groups
        shape = (self.filters, per_group, kh, kw)
        self.W = self.add_weight("W", shape, self.init, dt, regularizable=True,
                                 fan_in=per_group * kh * kw,
                                 fan_out=self.filters * kh * kw)  # Keras and torch alike
        self.b = self.add_weight("b", (self.filters,), self.bias_init, dt) if self.use_bias \
            else None

    def call(self, x, training):
        _, height, width = _image_dims(self, x)
        pads = self.pads(height, width)
        if all(p[0] == p[1] for p in pads):  # the public function and its checks
            z = sg.nn.conv2d(x, self.W, self.b, stride=self._stride,
                             padding=(pads[0][0], pads[1][0]), dilation=self._dilation,
                             groups=self.groups)
        else:  # "same" with a stride: the odd padding row goes on the far side (Keras)
            z = _Conv2DOp(self._kernel, self._stride, pads, self._dilation, self.groups)(
                x, self.W)
            if self.b is not None:
                z = z + sg.expand_dims(self.b, (0, 2, 3))
        return self.fn(z)


class _Pool2D(Layer):
    """What the window poolings share: ``pool_size`` and ``stride`` (default: the pool
    size), each an int or a pair; no padding (Keras's ``"valid"``)."""

    config_args = ("pool_size", "stride")
    function = None  # sg.nn.max_pool2d or sg.nn.avg_pool2d

    def __init__(self, pool_size=2, stride=None, name: str | None = None):
        super().__init__(name)
        self._pool = _pair(self.kind, "pool_size", pool_size)
        self._stride = None if stride is None else _pair(self.kind, "stride", stride)

    pool_size = property(lambda self: _plain(self._pool))
    stride = property(lambda self: None if self._stride is None else _plain(self._stride))

    def call(self, x, training):
        _image_dims(self, x)
        return type(self).function(x, self._pool, stride=self._stride)


class MaxPool2D(_Pool2D):
    """The maximum of each ``pool_size`` window (the gradient goes to the first maximum of
    each window, as torch).

    >>> pool = fe.layers.MaxPool2D(2)   # (batch, C, 8, 8) -> (batch, C, 4, 4)
    """

    function = staticmethod(sg.nn.max_pool2d)


class AvgPool2D(_Pool2D):
    """The mean of each ``pool_size`` window.

    >>> pool = fe.layers.AvgPool2D(2, stride=1)
    """

    function = staticmethod(sg.nn.avg_pool2d)


class GlobalAvgPool2D(Layer):
    """(batch, C, H, W) -> (batch, C): the mean of each feature map.

    >>> head = fe.layers.GlobalAvgPool2D()
    """


    def call(self, x, training):
        _image_dims(self, x)
        return sg.mean(x, axis=(2, 3))


__all__ = ["AvgPool2D", "Conv2D", "GlobalAvgPool2D", "MaxPool2D", "checked_groups",
           "checked_padding", "same_padding"]
