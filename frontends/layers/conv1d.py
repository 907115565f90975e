"""Sequence (1-d) convolution and pooling layers, NCL like torch: ``Conv1D``, ``MaxPool1D``,
``AvgPool1D``, ``GlobalAvgPool1D``.

Each runs its 2-d counterpart on a unit-height view ``(batch, C, 1, L)`` (the reshapes are
views, so nothing is copied), which keeps one implementation of the kernels and their
gradients. The weights are torch's shapes: ``W`` (filters, C / groups, k), ``b``
(filters,), so ``get_weights`` / ``set_weights`` exchange them with ``torch.nn.Conv1d``.
"""

from __future__ import annotations

import warnings

import symgraph as sg
from frontends import initializers
from frontends.config import flag, integer
from frontends.layers.activations import get_activation
from frontends.layers.base import Layer, mask_error, weight_dtype
from frontends.layers.conv import checked_groups, checked_padding, same_padding
from frontends.layers.recurrent import checked_mask_value, holds_value
from symgraph.ops.conv import Conv2D as _Conv2DOp


def _sequence_dims(layer: Layer, x: sg.Variable) -> tuple[int, int]:
    """(channels, length) of an NCL input with fixed non-batch dims, or an error naming
    the layer; a warning when ``x`` is an Embedding's output, whose (batch, length, dim)
    would be read as ``length`` channels of ``dim`` positions (a Keras user's layout)."""
    if x.ndim != 3 or not all(isinstance(d, int) for d in x.shape[1:]):
        raise ValueError(f"layer {layer.name}: {layer.kind} takes (batch, channels, length) "
                         f"with fixed channels and length, got shape {x.shape}")
    source = getattr(x, "layer", None)
    if source is not None and source.kind == "Embedding":
        warnings.warn(f"layer {layer.name}: {layer.kind} takes (batch, channels, length), as "
                      f"torch; its input {x.shape} comes straight from the Embedding "
                      f"{source.name} (batch, length, dim), so it would run along the "
                      f"{x.shape[2]} vector components: put fe.layers.Permute((2, 1)) "
                      "between them" + (", or use GlobalAvgPool1D(data_format="
                                        "'channels_last')" if layer.kind == "GlobalAvgPool1D"
                                        else ""), UserWarning, stacklevel=4)
    return x.shape[1], x.shape[2]


class Conv1D(Layer):
    """``activation(conv1d(x, W) + b)``: ``x`` (batch, C, L), ``W`` (filters, C / groups, k),
    ``b`` (filters,). ``padding``: ``"valid"``, ``"same"`` (``ceil(L / stride)`` outputs, the
    odd padding on the far side, as Keras) or an int. Glorot-uniform ``W`` with torch's and
    Keras's fans (``C / groups * k`` in, ``filters * k`` out), zero ``b``; only ``W`` is
    regularised.

    >>> conv = fe.layers.Conv1D(32, 5, padding="same", activation="relu")
    """

    config_args = ("filters", "kernel_size", "stride", "padding", "dilation", "groups",
                   "activation", "init", "bias_init", "use_bias")

    def __init__(self, filters: int, kernel_size: int, stride: int = 1, padding="valid",
                 activation=None, init="glorot_uniform", bias_init="zeros",
                 use_bias: bool = True, dilation: int = 1, groups: int = 1,
                 name: str | None = None):
        super().__init__(name)
        self.filters = integer("Conv1D", "filters", filters)
        self.kernel_size = integer("Conv1D", "kernel_size", kernel_size)
        self.stride = integer("Conv1D", "stride", stride)
        self.dilation = integer("Conv1D", "dilation", dilation)
        self.groups = checked_groups("Conv1D", self.filters, groups)
        self.padding = checked_padding("Conv1D", padding,
                                       lambda p: integer("Conv1D", "padding", p, lo=0),
                                       "'valid', 'same' or an int")
        self.fn = get_activation(activation, type(self).__name__)
        self.activation = activation
        self.init = initializers.checked("Conv1D", "init", init)
        self.bias_init = initializers.checked("Conv1D", "bias_init", bias_init)
        self.use_bias = flag("Conv1D", "use_bias", use_bias)

    def pads(self, length: int) -> tuple[int, int]:
        """(left, right) zero padding for an input of this length."""
        if self.padding == "valid":
            return (0, 0)
        if self.padding == "same":
            return same_padding(length, self.kernel_size, self.stride, self.dilation)
        return (self.padding, self.padding)

    def build(self, x):
        channels, _ = _sequence_dims(self, x)
        if channels % self.groups:
            raise ValueError(f"layer {self.name}: {channels} input channels are not divisible "
                             f"by groups={self.groups}")
        per_group, k = channels // self.groups, self.kernel_size
        self.W = self.add_weight("W", (self.filters, per_group, k), self.init, weight_dtype(x),
                                 regularizable=True, fan_in=per_group * k,
                                 fan_out=self.filters * k)
        self.b = (self.add_weight("b", (self.filters,), self.bias_init, weight_dtype(x))
                  if self.use_bias else None)

    def call(self, x, training):
        _, length = _sequence_dims(self, x)
        left, right = self.pads(length)
        if left == right:  # the public function and its checks
            z = sg.nn.conv1d(x, self.W, self.b, stride=self.stride, padding=left,
                             dilation=self.dilation, groups=self.groups)
        else:  # "same" with a stride: the odd padding column goes on the far side (Keras)
            op = _Conv2DOp((1, self.kernel_size), (1, self.stride), ((0, 0), (left, right)),
                           (1, self.dilation), self.groups)
            z = sg.squeeze(op(sg.expand_dims(x, 2), sg.expand_dims(self.W, 2)), 2)
            if self.b is not None:
                z = z + sg.expand_dims(self.b, (0, 2))
        return self.fn(z)


class _Pool1D(Layer):
    """What the 1-d window poolings share: ``pool_size`` and ``stride`` (default: the pool
    size); no padding (Keras's ``"valid"``)."""

    config_args = ("pool_size", "stride")
    function = None  # sg.nn.max_pool2d or sg.nn.avg_pool2d

    def __init__(self, pool_size: int = 2, stride: int | None = None, name: str | None = None):
        super().__init__(name)
        self.pool_size = integer(self.kind, "pool_size", pool_size)
        self.stride = None if stride is None else integer(self.kind, "stride", stride)

    def call(self, x, training):
        _, length = _sequence_dims(self, x)
        if self.pool_size > length:
            raise ValueError(f"layer {self.name}: pool_size {self.pool_size} is bigger than "
                             f"the sequence length {length} of input shape {x.shape}")
        stride = None if self.stride is None else (1, self.stride)
        pooled = type(self).function(sg.expand_dims(x, 2), (1, self.pool_size), stride=stride)
        return sg.squeeze(pooled, 2)


class MaxPool1D(_Pool1D):
    """The maximum of each ``pool_size`` window along the sequence (the gradient goes to the
    first maximum, as torch).

    >>> pool = fe.layers.MaxPool1D(2)   # (batch, C, 100) -> (batch, C, 50)
    """

    function = staticmethod(sg.nn.max_pool2d)


class AvgPool1D(_Pool1D):
    """The mean of each ``pool_size`` window along the sequence."""

    function = staticmethod(sg.nn.avg_pool2d)


class GlobalAvgPool1D(Layer):
    """(batch, C, L) -> (batch, C): the mean over the sequence. ``data_format=
    "channels_last"`` takes (batch, L, C), Keras's default layout and what an Embedding or a
    transformer block gives: the mean over the positions of every feature. ``mask_value``
    (as the recurrent layers'): a position whose features all equal it is padding, left out
    of the mean (Keras's masked pooling after ``Embedding(mask_zero=True)``; here an
    ``Embedding(padding_idx=0)`` gives zero vectors for ``mask_value=0``); an example of
    padding only gives zeros. A padding mask on the input (``Embedding(mask_zero=True)``,
    passed on by the layers since) leaves its padded positions out the same way, with
    ``channels_last`` (the mask is per position of (batch, length, ...)); with
    ``mask_value`` too, a position is left out if either says so. The output has no
    positions, so the mask stops here."""

    config_args = ("data_format", "mask_value")
    uses_mask = True

    def __init__(self, data_format: str = "channels_first", mask_value: float | None = None,
                 name: str | None = None):
        super().__init__(name)
        if data_format not in ("channels_first", "channels_last"):
            raise ValueError(f"GlobalAvgPool1D: data_format must be 'channels_first' "
                             f"(batch, channels, length) or 'channels_last' (batch, length, "
                             f"channels), got {data_format!r}")
        self.data_format = data_format
        self.mask_value = checked_mask_value("GlobalAvgPool1D", mask_value)

    def output_mask(self, x, mask):
        if mask is not None and self.data_format != "channels_last":
            raise mask_error(self, x, mask, "its channels_first input (batch, channels, "
                             "length) has no positions along the mask's; use "
                             "data_format='channels_last' on (batch, length, channels)")
        return None  # (the mask is used up: no positions left)

    def call(self, x, training, mask=None):
        if self.data_format == "channels_last":
            if x.ndim != 3 or not isinstance(x.shape[2], int):
                raise ValueError(f"layer {self.name}: GlobalAvgPool1D(data_format="
                                 f"'channels_last') takes (batch, length, channels) with fixed "
                                 f"channels, got shape {x.shape}")
            positions, features = 1, 2
        else:
            _sequence_dims(self, x)
            positions, features = 2, 1
        if self.mask_value is None and mask is None:
            return sg.mean(x, axis=positions)
        real = None if mask is None else sg.expand_dims(mask, -1)  # (batch, length, 1)
        if self.mask_value is not None:
            # compared in a float dtype that holds the mask value (recurrent.py's rule)
            seen = x if x.dtype.kind == "f" and holds_value(x.dtype, self.mask_value) \
                else sg.cast(x, "float64")
            valued = sg.any(sg.not_equal(seen, sg.constant(self.mask_value, seen.dtype)),
                            axis=features, keepdims=True)
            real = valued if real is None else sg.logical_and(real, valued)
        total = sg.sum(sg.where(real, x, 0.0), axis=positions)  # (an inf pad reads 0)
        count = sg.sum(sg.cast(real, x.dtype), axis=positions)
        return total / sg.maximum(count, 1.0)


__all__ = ["AvgPool1D", "Conv1D", "GlobalAvgPool1D", "MaxPool1D"]
