"""Softmax-family ops, one_hot and arange.

``softmax``, ``log_softmax`` and ``logsumexp`` are single ops so their numpy
reference (and later their lowering) can be numerically stable (max-shift),
but their ``bprop`` is made of ordinary differentiable ops — including the
op itself — so second derivatives stay correct (a fused softmax-xent
without a second derivative once gave TensorFlow users an all-zero Hessian).
Softmax's gradient along a last axis is one op, ``softmax_grad``, for a one-pass kernel;
its own ``bprop`` is again ordinary ops and itself.
"""

from __future__ import annotations

import numpy as np

from symgraph import shapes as sh
from symgraph.dispatch import ops
from symgraph.graph import Op, TensorType, is_float
from symgraph.ops.indexing import describe_input, first_outside, position_text
from symgraph.ops.reduce import reduced_shape
from symgraph.sentinels import DISCONNECTED


def _shift_and_log_sum(x, axis):
    """``(x - m, log(sum(exp(x - m))))`` with ``m`` the max along ``axis`` (0 where not
    finite): logsumexp is their ``m +``, log_softmax their difference."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    shifted = x - m
    with np.errstate(divide="ignore"):
        return shifted, m, np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _stable_lse(x, axis):
    _, m, log_sum = _shift_and_log_sum(x, axis)
    return m + log_sum


class _AxisOp(Op):
    props = ("axis",)

    def __init__(self, axis: int):
        self.axis = axis

    def infer(self, x):
        if not is_float(x.dtype):
            raise TypeError(f"needs a float input, got {x.dtype.name}")
        if not 0 <= self.axis < x.ndim:
            raise IndexError(f"axis {self.axis} out of range for {x.ndim} dims")
        return [TensorType(x.dtype, x.shape)]

    def no_identity_axes(self, node):  # softmax over an empty axis has no value
        return (self.axis,)


class Softmax(_AxisOp):
    @property
    def name(self) -> str:
        return "softmax"

    def perform(self, inputs, ctx):
        x = inputs[0]
        with np.errstate(invalid="ignore"):  # a line of -inf (or +inf) is NaN, as in torch
            e = np.exp(x - np.max(x, axis=self.axis, keepdims=True))
            return [(e / np.sum(e, axis=self.axis, keepdims=True)).astype(x.dtype, copy=False)]

    def bprop(self, inputs, outputs, index, grads):
        s, g = outputs[0], grads[0]
        if all(d == 1 for d in s.shape[self.axis + 1:]):  # (the lines are contiguous)
            return SoftmaxGrad(self.axis)(s, g)
        return s * (g - ops.sum(g * s, self.axis, keepdims=True))


class SoftmaxGrad(Op):
    """``y * (g - sum(g * y, axis, keepdims=True))``: softmax's gradient from its output ``y``
    and the incoming gradient ``g``, one op so a backend can compute each line in one kernel
    (the row sum, then the line while it is in cache) where the two ops took two passes over
    memory.  Softmax's ``bprop`` makes it along a last axis (the only lines a kernel reads
    contiguously); it differentiates like the expression it stands for."""

    props = ("axis",)

    def __init__(self, axis: int):
        self.axis = axis

    @property
    def name(self) -> str:
        return "softmax_grad"

    def no_identity_axes(self, node):
        return (self.axis,)

    def infer(self, y, g):
        if not is_float(y.dtype) or g.dtype != y.dtype:
            raise TypeError(f"needs two float inputs of one dtype, got {y.dtype.name} and "
                            f"{g.dtype.name}")
        if not 0 <= self.axis < y.ndim:
            raise IndexError(f"axis {self.axis} out of range for {y.ndim} dims")
        if len(y.shape) != len(g.shape) or any(
                sh.dims_equal(a, b) is False for a, b in zip(y.shape, g.shape)):
            raise ValueError(f"softmax output {sh.format_shape(y.shape)} and gradient "
                             f"{sh.format_shape(g.shape)} differ")
        return [TensorType(y.dtype, y.shape)]

    def perform(self, inputs, ctx):
        y, g = inputs
        return [(y * (g - np.sum(g * y, axis=self.axis, keepdims=True))).astype(
            y.dtype, copy=False)]

    def bprop(self, inputs, outputs, index, grads):
        y, g = inputs
        h = grads[0]
        if index == 1:  # the Jacobian in g, diag(y) - y y^T, is symmetric
            return SoftmaxGrad(self.axis)(y, h)
        total = ops.sum(g * y, self.axis, keepdims=True)
        return h * (g - total) - g * ops.sum(h * y, self.axis, keepdims=True)


class LogSoftmax(_AxisOp):
    @property
    def name(self) -> str:
        return "log_softmax"

    def perform(self, inputs, ctx):
        # (x - m) - log(s), as jax: lines that differ by a constant give the same bits (a
        # tie stays a tie for a max over them), and a large m does not round into the result
        # as in x - (m + log(s)); the llvm lowering computes the same
        shifted, _, log_sum = _shift_and_log_sum(inputs[0], self.axis)
        with np.errstate(invalid="ignore"):  # a line of -inf is -inf - -inf: NaN, as in torch
            return [(shifted - log_sum).astype(inputs[0].dtype, copy=False)]

    def bprop(self, inputs, outputs, index, grads):
        # softmax(x) as exp(log_softmax(x)), as PyTorch's log_softmax backward does: one
        # elementwise exp that fuses into the gradient's loop, where a second softmax of x
        # redoes the max and sum passes (a fifth of a digits-sized training step)
        g = grads[0]
        return g - ops.exp(outputs[0]) * ops.sum(g, self.axis, keepdims=True)


class LogSumExp(Op):
    props = ("axes", "keepdims")

    def no_identity_axes(self, node):
        return self.axes

    def __init__(self, axes: tuple, keepdims: bool):
        self.axes, self.keepdims = tuple(axes), keepdims

    @property
    def name(self) -> str:
        return "logsumexp"

    def infer(self, x):
        if not is_float(x.dtype):
            raise TypeError(f"needs a float input, got {x.dtype.name}")
        return [TensorType(x.dtype, reduced_shape(x.shape, self.axes, self.keepdims))]

    def perform(self, inputs, ctx):
        x = inputs[0]
        out = _stable_lse(x, self.axes)
        if not self.keepdims:
            out = np.squeeze(out, axis=self.axes)
        return [np.asarray(out, dtype=x.dtype)]

    def bprop(self, inputs, outputs, index, grads):
        x, out, g = inputs[0], outputs[0], grads[0]
        if not self.keepdims:
            out, g = ops.expand_dims(out, self.axes), ops.expand_dims(g, self.axes)
        return g * ops.exp(x - out)


class OneHot(Op):
    """``labels[..., None] == arange(depth)`` as ``dtype``.

    A label outside ``[0, depth)`` is an error at call time on both backends (not a row of
    zeros, which made ``cross_entropy`` a finite, wrong loss), with one message:
    :func:`label_error_text`.  ``depth`` must be a positive int (checked when building).
    """

    props = ("depth", "dtype")

    def __init__(self, depth: int, dtype):
        if isinstance(depth, (int, np.integer)) and not isinstance(depth, (bool, np.bool_)):
            depth = int(depth)
        self.depth, self.dtype = depth, np.dtype(dtype)

    @property
    def name(self) -> str:
        return "one_hot"

    def infer(self, labels):
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth <= 0:
            raise ValueError(f"depth must be a positive int (the number of classes), "
                             f"got {self.depth!r}")
        if labels.dtype.kind not in "iu":
            raise TypeError(f"labels must be integers, got {labels.dtype.name}")
        return [TensorType(self.dtype, labels.shape + (self.depth,))]

    def runtime_error(self, value: int, axis: int, size: int, source: str | None,
                      position: tuple) -> IndexError:
        """The error of a label outside ``[0, depth)`` (``size``), as both backends word it."""
        return IndexError(label_error_text(value, size, source, position))

    def perform(self, inputs, ctx):
        labels = inputs[0]
        found = first_outside(labels, 0, self.depth)
        if found is not None:
            raise IndexError(label_error_text(found[0], self.depth,
                                              describe_input(ctx.node.inputs[0]), found[1]))
        return [(labels[..., None] == np.arange(self.depth)).astype(self.dtype)]

    def bprop(self, inputs, outputs, index, grads):
        return DISCONNECTED


def label_error_text(value: int, depth: int, source: str | None, position: tuple) -> str:
    """The out-of-range label message of both backends:
    ``label 5 of 'y' at position 1 is out of range [0, 3)``."""
    where = f" of {source}" if source else ""
    if position:
        where += f" at position {position_text(position)}"
    return f"label {value}{where} is out of range [0, {depth})"


class Arange(Op):
    """``arange(n)`` for a fixed or symbolic ``n`` (e.g. the batch size)."""

    props = ("n", "dtype")

    def __init__(self, n, dtype="int64"):
        self.n, self.dtype = n, np.dtype(dtype)

    @property
    def name(self) -> str:
        return "arange"

    def infer(self):
        return [TensorType(self.dtype, (self.n,))]

    def perform(self, inputs, ctx):
        return [np.arange(ctx.resolve(self.n), dtype=self.dtype)]

    def bprop(self, inputs, outputs, index, grads):
        return DISCONNECTED

