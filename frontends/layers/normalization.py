"""Batch normalisation (Ioffe & Szegedy, 2015; background.md section 4), layer
normalisation (Ba, Kiros & Hinton, 2016) and input standardisation with fixed statistics
(Keras's Normalization)."""

from __future__ import annotations

import numpy as np

import symgraph as sg
from frontends.config import integer, number
from frontends.errors import UserInputError
from frontends.layers.base import Layer, mask_error, weight_dtype


class BatchNorm(Layer):
    """Normalise each unit over the batch, then scale and shift: ``gamma x_hat + beta``.

    Training: batch mean and (biased) variance, and the gradient flows through
    both; the running averages move as ``running = momentum running + (1 -
    momentum) batch`` (Keras's convention and defaults: momentum 0.99, eps 1e-3)
    as part of the compiled step. Inference: the running averages. ``axis`` is
    the unit axis (1: features of (batch, features), channels of NCHW); the
    statistics are over every other axis.
    """

    config_args = ("momentum", "eps", "axis")
    has_mode = True
    # Keras's rule (since 2.1.3): trainable = False also means the running statistics are
    # used and kept, so fine-tuning on top of a frozen base does not shift its features
    freezes_to_inference = True

    def __init__(self, momentum: float = 0.99, eps: float = 1e-3, axis: int = 1,
                 name: str | None = None):
        super().__init__(name)
        self.momentum = number("BatchNorm", "momentum", momentum, hi=1.0, hi_open=True)
        self.eps = number("BatchNorm", "eps", eps, lo_open=True)
        self.axis = integer("BatchNorm", "axis", axis, lo=-(2 ** 31))  # negative: from the end

    def build(self, x):
        if x.ndim < 2:
            raise ValueError(f"layer {self.name}: BatchNorm needs (batch, units, ...), got "
                             f"shape {x.shape}")
        if not -x.ndim <= self.axis < x.ndim:
            raise ValueError(f"layer {self.name}: axis {self.axis} is out of range for input "
                             f"shape {x.shape}")
        self.axis_ = self.axis % x.ndim
        n = x.shape[self.axis_]
        if not isinstance(n, int) or self.axis_ == 0:
            raise ValueError(f"layer {self.name}: the unit axis {self.axis} of {x.shape} must "
                             "be a fixed, non-batch dim")
        dt = weight_dtype(x)
        #: values of one unit that one example holds (1 for (batch, features); None when a
        #: dim is symbolic): with 1, a batch of one example has no variance to normalise
        others = [d for a, d in enumerate(x.shape) if a not in (0, self.axis_)]
        self.values_per_example = (None if not all(isinstance(d, int) for d in others)
                                   else int(np.prod(others, dtype=np.int64)))
        self.gamma = self.add_weight("gamma", (n,), "ones", dt)
        self.beta = self.add_weight("beta", (n,), "zeros", dt)
        self.running_mean = self.add_weight("running_mean", (n,), "zeros", dt, trainable=False)
        self.running_var = self.add_weight("running_var", (n,), "ones", dt, trainable=False)

    def _broadcast(self, v, ndim):
        # (n,) -> shape broadcastable against the input along the unit axis
        for _ in range(ndim - 1 - self.axis_):
            v = sg.expand_dims(v, -1)
        return v

    def call(self, x, training):
        axes = tuple(a for a in range(x.ndim) if a != self.axis_)
        b = lambda v: self._broadcast(v, x.ndim)  # noqa: E731
        if training:
            if self.state_updates:
                # one step cannot apply two running-average updates to one variable; the
                # second call would silently replace the first call's statistics
                raise ValueError(f"layer {self.name}: a BatchNorm layer can be called once in "
                                 "training mode (its running statistics get one update per "
                                 "step); use one BatchNorm layer per call")
            mean = x.mean(axis=axes)
            centred = x - b(mean)
            var = sg.square(centred).mean(axis=axes)
            m = self.momentum
            self.state_updates = {
                self.running_mean: m * self.running_mean + (1.0 - m) * mean,
                self.running_var: m * self.running_var + (1.0 - m) * var,
            }
        else:
            centred = x - b(self.running_mean)
            var = self.running_var
        x_hat = centred / b(sg.sqrt(var + self.eps))
        return b(self.gamma) * x_hat + b(self.beta)


class LayerNorm(Layer):
    """Normalise each example over its last ``dims`` dims, then scale and shift by
    ``gamma``, ``beta`` of those dims' shape: ``torch.nn.LayerNorm(x.shape[-dims:])``
    (biased variance, ``eps`` inside the root, torch's default 1e-5). No batch statistics,
    so training and inference compute the same thing and any batch size works.
    """

    config_args = ("eps", "dims")
    unit_axis = None  # the shape of its input, and its units

    def __init__(self, eps: float = 1e-5, dims: int = 1, name: str | None = None):
        super().__init__(name)
        self.eps = number("LayerNorm", "eps", eps, lo_open=True)
        self.dims = integer("LayerNorm", "dims", dims)

    def build(self, x):
        if x.ndim <= self.dims:
            raise ValueError(f"layer {self.name}: LayerNorm(dims={self.dims}) needs a batch "
                             f"dim before the {self.dims} normalised dim(s), got shape {x.shape}")
        shape = tuple(x.shape[-self.dims:])
        if not all(isinstance(d, int) for d in shape):
            raise ValueError(f"layer {self.name}: the normalised dims {shape} of {x.shape} "
                             "must be fixed sizes")
        dt = weight_dtype(x)
        self.gamma = self.add_weight("gamma", shape, "ones", dt)
        self.beta = self.add_weight("beta", shape, "zeros", dt)

    def output_mask(self, x, mask):
        if mask is not None and self.dims != 1:
            raise mask_error(self, x, mask, f"dims={self.dims} normalises across the positions")
        return mask  # (each position's features on their own: the mask passes on)

    def call(self, x, training):
        axes = tuple(range(x.ndim - self.dims, x.ndim))
        centred = x - x.mean(axis=axes, keepdims=True)
        var = sg.square(centred).mean(axis=axes, keepdims=True)
        return self.gamma * (centred / sg.sqrt(var + self.eps)) + self.beta


class Normalization(Layer):
    """Standardise inputs with fixed statistics, ``(x - mean) / sqrt(variance)``, as
    ``keras.layers.Normalization``: preprocessing inside the model, so a saved model takes
    raw data. ``axis`` (int, tuple or None) lists the axes with their own statistics (-1:
    one per last-axis index; None: one for all). The statistics are weights training does
    not change: give ``mean`` and ``variance``, or call :meth:`adapt` on training inputs
    before ``fit`` (``symgraph train`` adapts a spec's first-layer Normalization on the
    training set). A (near-)constant feature, ``variance <= 1e-16``, is divided by 1, as
    ``datasets.standardize`` does, not blown up by a tiny root.

    >>> norm = fe.layers.Normalization(); norm.adapt(X)   # before model.fit(X, y)
    """

    config_args = ("axis",)
    #: variances at or below this (a std of 1e-8) leave the feature unscaled
    CONSTANT_VARIANCE = 1e-16

    def __init__(self, axis=-1, mean=None, variance=None, name: str | None = None):
        super().__init__(name)
        if axis is not None:
            many = isinstance(axis, (list, tuple))
            axis = tuple(integer("Normalization", "axis", a, lo=-(2 ** 31))
                         for a in (axis if many else (axis,)))
            if not axis:
                raise ValueError("Normalization: axis is an int, a non-empty list or None")
        self.axis = axis if axis is None or len(axis) > 1 else axis[0]
        if (mean is None) != (variance is None):
            raise ValueError("Normalization: give both mean and variance, or neither (and "
                             "call adapt)")
        self._given = None
        if mean is not None:
            self._given = tuple(self._statistic(name, value)
                                for name, value in (("mean", mean), ("variance", variance)))
            if (self._given[1] < 0).any():
                raise ValueError("Normalization: variance must be >= 0")

    @staticmethod
    def _statistic(name: str, value) -> np.ndarray:
        array = np.asarray(value, dtype=np.float64) if not isinstance(value, str) else None
        if array is None or not np.isfinite(array).all():
            raise ValueError(f"Normalization: {name} must be finite numbers, got {value!r}")
        return array

    def _kept(self, ndim: int) -> tuple[int, ...]:
        """The non-batch axes with their own statistics, as positive indices."""
        if self.axis is None:
            return ()
        kept = []
        for a in (self.axis if isinstance(self.axis, tuple) else (self.axis,)):
            if not -ndim <= a < ndim or a % ndim == 0:
                raise ValueError(f"layer {self.name}: axis {a} is not a non-batch axis of a "
                                 f"{ndim}-d input")
            kept.append(a % ndim)
        return tuple(sorted(set(kept)))

    def build(self, x):
        kept = self._kept(x.ndim)
        shape = tuple(x.shape[a] if a in kept else 1 for a in range(1, x.ndim))
        if not all(isinstance(d, int) for d in shape):
            raise ValueError(f"layer {self.name}: the axes {self.axis} of {x.shape} with their "
                             "own statistics must be fixed sizes")
        self.stats_shape = shape
        dt = weight_dtype(x)
        self.mean = self.add_weight("mean", shape, "zeros", dt, trainable=False)
        self.variance = self.add_weight("variance", shape, "ones", dt, trainable=False)
        self._set_statistics()

    def _set_statistics(self) -> None:
        """The given statistics, broadcast to the weights' shape; else NaN: not adapted."""
        for var, value in zip((self.mean, self.variance), self._given or (np.nan, np.nan)):
            try:
                var.set_value(np.broadcast_to(value, var.shape).astype(var.dtype))
            except ValueError:
                raise ValueError(f"layer {self.name}: {var.name.split('/')[-1]} of shape "
                                 f"{np.shape(value)} does not broadcast to the statistics' "
                                 f"shape {tuple(var.shape)}") from None

    def initialize(self, rng: np.random.Generator) -> None:
        """Statistics are not drawn: a model's (re)seeding keeps what adapt computed."""

    def adapt(self, data) -> None:
        """Set the statistics to ``data``'s (the training inputs, batch first): the mean and
        (biased) variance over the batch and every axis without its own statistics."""
        if not self.built:
            raise ValueError(f"layer {self.name or 'Normalization'}: adapt needs the layer in "
                             "a model first (its input shape fixes the statistics' shape)")
        array = np.asarray(data)
        expected = self.input_shape[1:]
        if array.ndim != len(expected) + 1 or array.dtype.kind not in "biuf" or \
                not all(not isinstance(d, int) or d == n for d, n in zip(expected,
                                                                      array.shape[1:])):
            raise ValueError(f"layer {self.name}: adapt takes the layer's inputs, shape "
                             f"(batch, {', '.join(map(str, expected))}), got "
                             f"{array.shape} {array.dtype}")
        if len(array) == 0 or not np.isfinite(array).all():
            raise ValueError(f"layer {self.name}: adapt needs at least one example and only "
                             "finite values")
        kept = self._kept(array.ndim)
        axes = tuple(a for a in range(array.ndim) if a not in kept)
        ref = array.astype(np.float64)
        self._given = (ref.mean(axis=axes, keepdims=True)[0], ref.var(axis=axes, keepdims=True)[0])
        self._set_statistics()

    @property
    def adapted(self) -> bool:
        """The statistics are set (given, adapted or loaded from a model file)."""
        return self.built and bool(np.isfinite(self.mean.get_value()).all())

    def check_ready(self, what: str) -> None:
        if self.built and not self.adapted:
            raise UserInputError(f"{what}: layer {self.name} has no statistics yet: call "
                                 f"its adapt(training inputs) first, or give it mean and "
                                 "variance")

    def call(self, x, training):
        constant = self.variance <= self.CONSTANT_VARIANCE
        return (x - self.mean) / sg.sqrt(sg.where(constant, 1.0, self.variance))
