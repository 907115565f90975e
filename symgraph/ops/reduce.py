"""Reductions (sum, mean, max, min), argmax, and the shape-only ``Size`` op.

Gradients broadcast the upstream gradient back over the reduced axes with
``fill`` (elementwise, so the codegen fuses it with whatever consumes it).
"""

from __future__ import annotations

import numpy as np

from symgraph import shapes as sh
from symgraph.dispatch import ops
from symgraph.graph import Op, TensorType, Variable
from symgraph.sentinels import DISCONNECTED


def normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    """``axis`` (None for all, an int, or a sequence of ints) as sorted non-negative axes.

    Out-of-range axes raise numpy's ``AxisError`` and repeated ones a ValueError, as numpy.
    """
    if axis is None:
        return tuple(range(ndim))
    if not isinstance(axis, (tuple, list)):
        axis = (axis,)
    out = [sh.normalize_axis(a, ndim) for a in axis]
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {tuple(axis)}")
    return tuple(sorted(out))


def reduced_shape(shape: tuple, axes: tuple, keepdims: bool) -> tuple:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def accumulator_dtype(dtype) -> np.dtype:
    """The dtype a sum, product, cumsum or cumprod accumulates and returns in: numpy's
    (``np.add.reduce``'s default), so integers narrower than 64 bits and booleans widen to
    int64 instead of wrapping (the sum of four uint8 pixels 200, 200, 100, 50 is 550, not 38);
    floats keep theirs.  numpy widens unsigned integers to uint64, which symgraph does not
    have (``graph.SUPPORTED_DTYPES``): they widen to int64 here, exact for every sum and the
    same bits (wrapping modulo 2**64) for products, which read negative from 2**63 on."""
    dtype = np.dtype(dtype)
    return dtype if dtype.kind in "fc" else np.dtype("int64")


def reduction_identity(kind: str, dtype) -> int | float | bool:
    """Start value of a ``kind`` reduction in ``dtype``: 0 for sums, the lowest value for max
    (``-inf``, or the integer minimum; False for booleans), the highest for min."""
    dtype = np.dtype(dtype)
    if kind in ("sum", "mean"):
        return 0
    if dtype.kind == "b":
        return kind == "min"
    if dtype.kind == "f":
        return -np.inf if kind == "max" else np.inf
    info = np.iinfo(dtype)
    return info.min if kind == "max" else info.max


class Reduce(Op):
    """``kind`` in sum / mean / max / min over ``axes`` (sorted, normalised)."""

    props = ("kind", "axes", "keepdims")
    _numpy = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}

    def no_identity_axes(self, node):
        return self.axes if self.kind in ("max", "min") else ()

    def __init__(self, kind: str, axes: tuple[int, ...], keepdims: bool = False):
        if kind not in self._numpy:
            raise ValueError(f"unknown reduction {kind!r}")
        self.kind, self.axes, self.keepdims = kind, tuple(axes), bool(keepdims)

    @property
    def name(self) -> str:
        return self.kind

    def identity(self, dtype) -> int | float | bool:
        """The value of the reduction over nothing: where an accumulator starts."""
        return reduction_identity(self.kind, dtype)

    def infer(self, x):
        for a in self.axes:
            sh.check_normalized_axis(a, x.ndim)
        if self.kind in ("max", "min"):
            for a in self.axes:
                if x.shape[a] == 0:
                    raise ValueError(f"{self.kind} over an empty axis {a}")
        dtype = x.dtype
        if self.kind == "mean" and dtype.kind != "f":
            dtype = np.dtype("float64")
        elif self.kind == "sum":
            dtype = accumulator_dtype(dtype)
        return [TensorType(dtype, reduced_shape(x.shape, self.axes, self.keepdims))]

    def perform(self, inputs, ctx):
        x = inputs[0]
        if self.kind == "mean":
            # np.mean's own arithmetic (sum, then divide by the count), without its warning
            # for an empty batch: the mean of nothing is NaN, as in numpy
            total = np.sum(x, axis=self.axes, keepdims=self.keepdims,
                           dtype=ctx.out_dtype if x.dtype.kind != "f" else None)
            count = int(np.prod([x.shape[a] for a in self.axes]))
            with np.errstate(invalid="ignore", divide="ignore"):
                out = np.true_divide(total, count)
        elif self.kind == "sum":  # every element cast to the wide dtype before it is added
            out = np.sum(x, axis=self.axes, keepdims=self.keepdims, dtype=ctx.out_dtype)
        else:
            out = self._numpy[self.kind](x, axis=self.axes, keepdims=self.keepdims)
        return [np.asarray(out, dtype=ctx.out_dtype)]

    def bprop(self, inputs, outputs, index, grads):
        x, out, g = inputs[0], outputs[0], grads[0]
        g_kept = g if self.keepdims else ops.expand_dims(g, self.axes)
        if self.kind == "sum":
            return ops.fill(x, g_kept)
        if self.kind == "mean":
            return ops.fill(x, g_kept / ops.size(x, self.axes, dtype=x.dtype))
        # max/min: the gradient goes to every entry equal to the extreme (ties share it,
        # split evenly so the total matches a one-sided derivative)
        out_kept = out if self.keepdims else ops.expand_dims(out, self.axes)
        hit = ops.cast(ops.equal(x, out_kept), x.dtype)
        count = ops.sum(hit, self.axes, keepdims=True)
        return g_kept * hit / count


class Argmax(Op):
    props = ("axis", "keepdims")

    def no_identity_axes(self, node):
        return tuple(range(node.inputs[0].ndim)) if self.axis is None else (self.axis,)

    def __init__(self, axis: int | None, keepdims: bool = False):
        self.axis, self.keepdims = axis, keepdims

    def infer(self, x):
        if self.axis is None:
            shape = (1,) * x.ndim if self.keepdims else ()
        else:
            sh.check_normalized_axis(self.axis, x.ndim)
            shape = reduced_shape(x.shape, (self.axis,), self.keepdims)
        return [TensorType(np.dtype("int64"), shape)]

    def perform(self, inputs, ctx):
        return [np.asarray(np.argmax(inputs[0], axis=self.axis, keepdims=self.keepdims),
                           dtype=np.int64)]

    def bprop(self, inputs, outputs, index, grads):
        return DISCONNECTED


class Size(Op):
    """The number of elements along ``axes`` of ``x``, as a scalar of ``dtype``.

    Depends on ``x``'s shape only; constant folding replaces it when the dims
    are fixed, and it keeps ``mean`` right for a symbolic batch size.
    """

    props = ("axes", "dtype")

    def __init__(self, axes: tuple[int, ...], dtype):
        self.axes, self.dtype = tuple(axes), np.dtype(dtype)

    def infer(self, x):
        return [TensorType(self.dtype, ())]

    def shape_only(self, index: int) -> bool:
        return index == 0

    def static_value(self, x: Variable):
        n = sh.shape_product(x.shape[a] for a in self.axes)
        return n if isinstance(n, int) else None

    def perform(self, inputs, ctx):
        shape = np.shape(inputs[0])
        return [np.asarray(np.prod([shape[a] for a in self.axes], dtype=np.int64),
                           dtype=self.dtype)]

    def bprop(self, inputs, outputs, index, grads):
        return DISCONNECTED
