"""The everyday layers: ``Dense``, ``Dropout``, ``Embedding``, ``Flatten``, ``Reshape``, and
the merges ``Add`` / ``Concatenate`` for functional models with skip connections."""

from __future__ import annotations

import numbers
import zlib

import numpy as np

import symgraph as sg
from frontends import initializers
from frontends.config import flag, integer
from frontends.layers.activations import get_activation
from frontends.layers.base import Layer, fixed_features, mask_error, weight_dtype
from symgraph.ops.elemwise import DropoutMask


class Dense(Layer):
    """``activation(x @ W + b)``; ``W`` is (in, units), Glorot-uniform by default, ``b`` zeros
    (``bias_init=0.1`` is the usual choice under ReLU). Only ``W`` is regularised.

    On (batch, ..., in) the same ``W`` applies at every position of the middle dims (as
    Keras's Dense, or torch's Linear): the positions are stacked into one (rows, in) product,
    one gemm rather than a batch of small ones, and the result reshaped to (batch, ..., units).
    """

    config_args = ("units", "activation", "init", "bias_init", "use_bias")
    unit_axis = -1  # (batch, ..., units)
    masking = "keep"  # each position on its own: a padding mask passes on

    def __init__(self, units: int, activation=None, init="glorot_uniform", bias_init="zeros",
                 use_bias: bool = True, name: str | None = None):
        super().__init__(name)
        self.units = integer("Dense", "units", units)
        self.fn = get_activation(activation, type(self).__name__)
        self.activation = activation  # a name, or a function (then the model cannot be saved)
        self.init = initializers.checked("Dense", "init", init)
        self.bias_init = initializers.checked("Dense", "bias_init", bias_init)
        self.use_bias = flag("Dense", "use_bias", use_bias)

    def build(self, x):
        if x.ndim < 2:
            raise ValueError(f"layer {self.name}: Dense takes (batch, ..., features), got "
                             f"shape {x.shape}")
        n, dt = fixed_features(self, x), weight_dtype(x)
        self.W = self.add_weight("W", (n, self.units), self.init, dt, regularizable=True)
        self.b = self.add_weight("b", (self.units,), self.bias_init, dt) if self.use_bias \
            else None

    def call(self, x, training):
        rows = sg.reshape(x, (-1, x.shape[-1])) if x.ndim > 2 else x
        z = rows @ self.W
        if self.b is not None:
            z = z + self.b
        if x.ndim > 2:  # -1 stands for the first dim; any other symbolic dim is kept
            z = sg.reshape(z, (-1, *x.shape[1:-1], self.units))
        return self.fn(z)


class MaskStream:
    """Where a layer's dropout masks come from (``symgraph``'s ``DropoutMask``): a hidden
    int64 counter, bumped by every training step, selects the masks, and the model seed sets
    where the counter starts, so runs are reproducible and the backward pass sees the same
    mask as the forward one (it is one node). Each ``what`` of each call draws its own
    masks: the same (seed, counter) would give them all the identical mask."""

    def __init__(self, owner: Layer):
        self.owner = owner
        self.counter: sg.SharedVariable | None = None
        self._calls: dict[str, int] = {}  # masks drawn so far, by what they are for

    def build(self) -> None:
        self.counter = sg.shared(np.int64(0), name=f"{self.owner.name}/counter")
        self.counter.default_update = self.counter + 1

    @property
    def state(self) -> list[sg.SharedVariable]:
        return [self.counter] if self.counter is not None else []

    def initialize(self, rng: np.random.Generator) -> None:
        # the model seed picks the stream: counters start at a seed-dependent point
        self.counter.set_value(np.int64(rng.integers(0, 2**40) << 20))

    def mask(self, like: sg.Variable, rate: float, what: str = "") -> sg.Variable:
        """A {0, 1 / (1 - rate)} mask the shape of ``like``, new at every training step."""
        calls = self._calls.get(what, 0)
        self._calls[what] = calls + 1
        key = (self.owner.mask_key or self.owner.name) + what + (f"#{calls}" if calls else "")
        return DropoutMask(1.0 - rate, zlib.crc32(key.encode()))(like, self.counter)


def dropout_rate(owner: str, name: str, rate) -> float:
    """``rate`` as a float in [0, 1), else an error naming it (a string or None is a
    TypeError: ``"0.5"`` from a config is a mistake, not a rate)."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number in [0, 1), got {rate!r}")
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1), got {rate}")
    return float(rate)


class Dropout(Layer):
    """Inverted dropout: in training, each unit is zeroed with probability ``rate`` and the
    rest scaled by ``1 / (1 - rate)``; at inference the identity (Keras convention). Masks
    from a :class:`MaskStream`."""

    config_args = ("rate",)
    has_mode = True
    unit_axis = None  # elementwise: its input's units
    masking = "keep"

    def __init__(self, rate: float, name: str | None = None):
        super().__init__(name)
        self.rate = dropout_rate("Dropout", "rate", rate)
        self.masks = MaskStream(self)

    def build(self, x):
        self.masks.build()

    @property
    def counter(self) -> sg.SharedVariable | None:
        return self.masks.counter

    @property
    def state(self):
        return self.masks.state

    def initialize(self, rng):
        self.masks.initialize(rng)

    def call(self, x, training):
        if not training or self.rate == 0.0:
            return x
        if x.dtype.kind != "f":
            raise TypeError(f"layer {self.name}: dropout needs a float input, got {x.dtype}")
        return x * self.masks.mask(x, self.rate)


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)."""

    def call(self, x, training):
        if x.ndim <= 2:
            return x
        rest = x.shape[1:]
        if not all(isinstance(d, int) for d in rest):
            raise ValueError(f"layer {self.name}: Flatten needs fixed non-batch dims, got "
                             f"{x.shape}")
        return sg.reshape(x, (-1, int(np.prod(rest))))


class Reshape(Layer):
    """(batch, ...) -> (batch, *shape); one entry of ``shape`` may be -1 (inferred)."""

    config_args = ("shape",)

    def __init__(self, shape, name: str | None = None):
        super().__init__(name)
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        try:
            dims = [_as_int(d) for d in shape]
        except (TypeError, ValueError):
            raise ValueError(f"Reshape: shape must be a sequence of integers, got {shape!r}") \
                from None
        if any(d == 0 or d < -1 for d in dims) or dims.count(-1) > 1:
            raise ValueError(f"Reshape: shape entries are positive, with at most one -1; got "
                             f"{tuple(dims)}")
        self.shape = dims

    def call(self, x, training):
        # the batch dim passes through as it is (a symbol stays that symbol), so the target
        # is checked per example: (batch, 5, 6) -> (batch, 7) is an error, not a reshape of
        # the whole batch that happens to fit
        batch = x.shape[0] if x.ndim else None
        rest = x.shape[1:]
        target = list(self.shape)
        if all(isinstance(d, int) for d in rest):
            total = int(np.prod(rest, dtype=np.int64))
            known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
            if (-1 in target and total % known) or (-1 not in target and total != known):
                raise ValueError(f"layer {self.name}: cannot reshape {x.shape} to "
                                 f"(batch, {', '.join(map(str, self.shape))})")
            target = [total // known if d == -1 else d for d in target]
        elif -1 in target:
            raise ValueError(f"layer {self.name}: Reshape with -1 needs fixed non-batch input "
                             f"dims, got {x.shape}")
        return sg.reshape(x, (-1 if batch is None else batch, *target))


class Permute(Layer):
    """Reorders the non-batch axes, numbered from 1 as Keras's ``Permute``:
    ``Permute((2, 1))`` turns an Embedding's (batch, length, dim) into the (batch, channels,
    length) that the 1-d convolution and pooling layers take (a view, nothing is copied).

    >>> fe.layers.Permute((2, 1))
    """

    config_args = ("dims",)

    def __init__(self, dims, name: str | None = None):
        super().__init__(name)
        try:
            dims = [_as_int(d) for d in dims]
        except (TypeError, ValueError):
            raise ValueError(f"Permute: dims must be a sequence of integers, got {dims!r}") \
                from None
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Permute: dims must order the axes 1..{len(dims)} (the batch "
                             f"axis 0 stays first), got {tuple(dims)}")
        self.dims = dims

    def call(self, x, training):
        if x.ndim != len(self.dims) + 1:
            raise ValueError(f"layer {self.name}: Permute{tuple(self.dims)} takes inputs of "
                             f"{len(self.dims) + 1} dims (batch first), got shape {x.shape}")
        return sg.transpose(x, (0, *self.dims))


def _as_int(d) -> int:
    if isinstance(d, bool) or int(d) != d:
        raise ValueError(d)
    return int(d)


class Embedding(Layer):
    """Integer ids (batch, ...) -> vectors (batch, ..., dim): rows of a learned (n, dim)
    table; the gradient scatters into the rows used.

    ``padding_idx`` (as ``torch.nn.Embedding``'s): that id is padding, its vector is zeros and
    its row gets no gradient (the row starts at zeros too, as torch's), so a recurrent layer
    with ``mask_value=0`` skips padded tokens.

    ``mask_zero`` (as Keras's): id 0 is padding, and the output carries a padding mask
    (``sequence_mask``, True at the other ids) that the later layers keeping the positions
    pass on and that attention (torch's ``key_padding_mask``), ``GlobalAvgPool1D(
    data_format="channels_last")`` and the recurrent layers read, so the padding changes
    no real position's result. Row 0 is still a learned row (Keras's rule: ids start at 1,
    ``n`` is the vocabulary + 1); the mask, not its value, leaves it out. A layer that
    would mix the positions (Flatten, Conv1D, ...) refuses a masked input."""

    config_args = ("n", "dim", "init", "dtype", "padding_idx", "mask_zero")
    unit_axis = -1  # (batch, ..., dim)

    def __init__(self, n: int, dim: int, init="uniform", dtype: str = "float32",
                 padding_idx: int | None = None, mask_zero: bool = False,
                 name: str | None = None):
        super().__init__(name)
        self.mask_zero = flag("Embedding", "mask_zero", mask_zero)
        self.n = integer("Embedding", "n", n)
        self.dim = integer("Embedding", "dim", dim)
        if np.dtype(dtype).kind != "f":
            raise ValueError(f"Embedding: dtype must be a float type, got {dtype!r}")
        self.init = initializers.checked("Embedding", "init", init)
        self.dtype = str(np.dtype(dtype))
        if padding_idx is not None:
            padding_idx = integer("Embedding", "padding_idx", padding_idx, lo=-self.n)
            if padding_idx >= self.n:
                raise ValueError(f"Embedding: padding_idx must be an id below n={self.n}, got "
                                 f"{padding_idx}")
            padding_idx %= self.n  # -1 is the last row, as in torch
        self.padding_idx = padding_idx

    def build(self, x):
        if x.dtype.kind not in "iu":
            raise TypeError(f"layer {self.name}: Embedding takes integer ids, got {x.dtype}")
        init = initializers.get(self.init)
        if self.padding_idx is not None:
            init = initializers.Overwritten(init, self.padding_idx, 0.0)
        self.table = self.add_weight("table", (self.n, self.dim), init, self.dtype)

    def output_mask(self, x, mask):
        super().output_mask(x, mask)  # (ids carrying a mask: refused)
        if not self.mask_zero or x.dtype.kind not in "iu":  # (float ids: build refuses them)
            return None
        if x.ndim < 2:
            raise ValueError(f"layer {self.name}: mask_zero marks the padding positions of "
                             f"sequences of ids (batch, length), got ids of shape {x.shape}")
        keep = sg.not_equal(x, sg.constant(0, x.dtype))
        keep.origin = f"Embedding {self.name} (mask_zero=True)"
        return keep

    def call(self, x, training):
        rows = self.table[x]
        info = np.iinfo(x.dtype)
        if self.padding_idx is None or not info.min <= self.padding_idx <= info.max:
            return rows  # (no id of x's dtype is the padding: uint8 ids, padding_idx=999)
        padded = sg.equal(x, sg.constant(self.padding_idx, x.dtype))
        alias = self.padding_idx - self.n  # the same row by a negative id (numpy indexing)
        if info.min <= alias:
            padded = sg.logical_or(padded, sg.equal(x, sg.constant(alias, x.dtype)))
        return sg.where(sg.expand_dims(padded, -1), 0.0, rows)


class Add(Layer):
    """Sum of several tensors of one shape (residual connections): ``Add()([a, b])``. The
    inputs' padding masks merge as Keras's: a position is data where every masked input
    says so (an input without a mask does not vote)."""

    unit_axis = None  # its first input's units (Diagnostics)

    def __call__(self, xs, *, training: bool = True):
        xs = list(xs)
        if len(xs) < 2:
            raise ValueError(f"{self.kind}: takes a list of at least two tensors")
        self.ensure_name()
        masks = [m for m in (getattr(x, "sequence_mask", None) for x in xs) if m is not None]
        with sg.name_scope(self.name):
            out = self.merge(xs)
            out_mask = self.merge_masks(xs, masks)
        out.layer, out.layer_input = self, xs
        out.layer_mask, out.sequence_mask = None, out_mask
        out.layer_training = bool(training)
        self.built = True
        self.output_shape = tuple(out.shape)
        self.output = out  # the latest call's output, as Layer's (Model(x, merge.output))
        return out

    def merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out

    def merge_masks(self, xs, masks):
        """The output's padding mask: the positions every masked input holds data at."""
        if not masks:
            return None
        keep = masks[0]
        for m in masks[1:]:
            keep = sg.logical_and(keep, m)
            keep.origin = getattr(masks[0], "origin", None)
        return keep


class Concatenate(Add):
    """Concatenation along ``axis`` (default: the feature axis)."""

    config_args = ("axis",)

    def __init__(self, axis: int = -1, name: str | None = None):
        super().__init__(name)
        self.axis = integer("Concatenate", "axis", axis, lo=-(2 ** 31))

    def merge(self, xs):
        ndim = xs[0].ndim
        if not -ndim <= self.axis < ndim:
            # (axis % ndim wrapped an out-of-range axis: ndim itself onto the batch axis)
            raise ValueError(f"layer {self.name}: axis {self.axis} is out of range for the "
                             f"{ndim}-d inputs (shape {xs[0].shape}); -1 is the last")
        return sg.concatenate(xs, axis=self.axis % ndim)

    def merge_masks(self, xs, masks):
        """Features joined at each position keep the positions (the masks merge as Add's);
        a join along the positions would need the masks joined too, which is refused."""
        if masks and self.axis % xs[0].ndim != xs[0].ndim - 1:
            masked = next(x for x in xs if getattr(x, "sequence_mask", None) is not None)
            raise mask_error(self, masked, masked.sequence_mask,
                             f"axis {self.axis} joins along the positions, not the features")
        return super().merge_masks(xs, masks)
