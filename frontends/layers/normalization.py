"""Batch normalisation (Ioffe & Szegedy, 2015; background.md section 4) and layer
normalisation (Ba, Kiros & Hinton, 2016)."""

from __future__ import annotations

import numpy as np

import symgraph as sg
from frontends.config import integer, number
from frontends.layers.base import Layer, weight_dtype


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

    def call(self, x, training):
        axes = tuple(range(x.ndim - self.dims, x.ndim))
        centred = x - x.mean(axis=axes, keepdims=True)
        var = sg.square(centred).mean(axis=axes, keepdims=True)
        return self.gamma * (centred / sg.sqrt(var + self.eps)) + self.beta
