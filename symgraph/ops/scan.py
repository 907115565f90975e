"""Products, cumulative ops and sorting (api v1.1: ``prod``, ``cumsum``, ``cumprod``, ``sort``,
``argsort``, ``topk``).

Why one family: the gradients of the products are built from the scans.  ``d prod / d x_k``
is the product of every other entry, computed without dividing by ``x_k`` (which is wrong
at a zero) as the exclusive cumulative product from the left times the one from the right;
``d cumprod`` is the exclusive cumulative product times a reverse *linear scan*
(``l_k = g_k + x_{k+1} l_{k+1}``).  A linear scan's own gradient is again linear scans and
shifts, so every rule here is built from ops of this module and differentiable to any order,
with zeros anywhere.

Sorting is an index op plus a gather: ``sort(x) = take_along_axis(x, argsort(x))`` and
``topk`` likewise, so the gradient of the values scatters back to the original positions
(``PutAlongAxis``, whose gradient is the gather again) and the indices are DISCONNECTED.
Orders are total and stable: ascending with NaN last and ties in index order
(``np.argsort(kind="stable")``, ``torch.sort(stable=True)``); ``topk`` is largest first
with NaN counted largest (as ``torch.topk``) and ties in index order (lower index first).

The op classes are internal; the user functions are the module's ``__all__``.
"""

from __future__ import annotations

import numpy as np

from symgraph import shapes as sh
from symgraph.dispatch import ops
from symgraph.graph import Op, TensorType, Variable, as_variable
from symgraph.ops.arguments import argument_error
from symgraph.ops.arguments import axes as _axes
from symgraph.ops.arguments import axis as _axis
from symgraph.ops.reduce import accumulator_dtype, reduced_shape
from symgraph.sentinels import DISCONNECTED
from symgraph.shapes import contiguous

__all__ = ["argsort", "cumprod", "cumsum", "prod", "sort", "topk"]


def _line(array: np.ndarray, axis: int) -> np.ndarray:
    """``array`` with ``axis`` moved first (a view): ``out[k]`` is position ``k`` of every line."""
    return np.moveaxis(array, axis, 0)


def _check_axis(op: Op, x) -> None:
    sh.check_normalized_axis(op.axis, x.ndim)


def _same_shape(a, b) -> None:
    if a.ndim != b.ndim or any(sh.dims_equal(p, q) is False for p, q in zip(a.shape, b.shape)):
        raise sh.ShapeError(f"shapes differ: {sh.format_shape(a.shape)} vs "
                            f"{sh.format_shape(b.shape)}")


# --------------------------------------------------------------------------- products


class Prod(Op):
    """The product over ``axes`` (sorted, normalised), ``np.prod``; 1 over nothing."""

    props = ("axes", "keepdims")

    def __init__(self, axes: tuple[int, ...], keepdims: bool = False):
        self.axes, self.keepdims = tuple(axes), bool(keepdims)

    def infer(self, x):
        for a in self.axes:
            sh.check_normalized_axis(a, x.ndim)
        return [TensorType(accumulator_dtype(x.dtype),
                           reduced_shape(x.shape, self.axes, self.keepdims))]

    def perform(self, inputs, ctx):
        return [np.asarray(np.prod(inputs[0], axis=self.axes, keepdims=self.keepdims,
                                   dtype=ctx.out_dtype), dtype=ctx.out_dtype)]

    def bprop(self, inputs, outputs, index, grads):
        x, g = inputs[0], grads[0]
        g_kept = g if self.keepdims else ops.expand_dims(g, self.axes)
        return _prod_grad(x, self.axes, g_kept)


def _prod_grad(x: Variable, axes: tuple[int, ...], g_kept: Variable) -> Variable:
    """``g * prod(x over axes without x_k)`` at every ``k``: over one axis the exclusive
    products from both sides; over several, the chain rule through the product over the
    first axis (``prod_A = prod_rest(prod_first)``), so no entry is ever divided by."""
    if not axes:
        return ops.fill(x, g_kept)
    if len(axes) > 1:
        first = Prod(axes[:1], keepdims=True)(x)
        return _prod_grad(x, axes[:1], _prod_grad(first, axes[1:], g_kept))
    return g_kept * exclusive_products(x, axes[0])


def exclusive_products(x: Variable, axis: int) -> Variable:
    """``prod(x_j for j != k)`` at every position ``k`` of ``axis``: the exclusive cumulative
    product from the left times the one from the right (exact with zeros)."""
    left = Shift(axis, 1, 1.0)(Cumprod(axis)(x))
    right = Shift(axis, -1, 1.0)(Cumprod(axis, reverse=True)(x))
    return left * right


# --------------------------------------------------------------------------- scans


class _Scan(Op):
    """A running reduction along ``axis`` (``numpy``: ``np.cumsum`` or ``np.cumprod``);
    ``reverse``: from the end (the gradients use it)."""

    props = ("axis", "reverse")
    numpy = staticmethod(np.cumsum)

    def __init__(self, axis: int, reverse: bool = False):
        self.axis, self.reverse = axis, bool(reverse)

    def infer(self, x):
        _check_axis(self, x)
        return [TensorType(accumulator_dtype(x.dtype), x.shape)]

    def perform(self, inputs, ctx):
        x = inputs[0]
        if self.reverse:
            x = np.flip(x, self.axis)
        out = self.numpy(x, axis=self.axis, dtype=ctx.out_dtype)
        return [contiguous(np.flip(out, self.axis) if self.reverse else out)]


class Cumsum(_Scan):
    """Running sum along ``axis`` (``np.cumsum``)."""

    def bprop(self, inputs, outputs, index, grads):
        return Cumsum(self.axis, not self.reverse)(grads[0])


class Cumprod(_Scan):
    """Running product along ``axis`` (``np.cumprod``)."""

    numpy = staticmethod(np.cumprod)

    def bprop(self, inputs, outputs, index, grads):
        # d y_i / d x_k = (prod_{j<k} x_j) (prod_{k<j<=i} x_j) for i >= k: the exclusive
        # cumulative product times sum_{i>=k} g_i prod_{k<j<=i} x_j, a transposed scan
        # (reverse: the mirror image, a plain scan whose factor is x one position back)
        x, y, g = inputs[0], outputs[0], grads[0]
        if self.reverse:
            scan = LinearScan(self.axis, False)(Shift(self.axis, 1, 0.0)(x), g)
            return Shift(self.axis, -1, 1.0)(y) * scan
        return Shift(self.axis, 1, 1.0)(y) * LinearScan(self.axis, True)(x, g)


class LinearScan(Op):
    """The first-order linear recurrence along ``axis`` (``M(a)`` lower triangular with
    ``M_ki = prod_{i<j<=k} a_j``): ``h = M b``, i.e. ``h_k = a_k h_{k-1} + b_k`` (``h_0 = b_0``);
    ``transposed``: ``l = M^T b``, i.e. ``l_k = a_{k+1} l_{k+1} + b_k`` from the end.

    Each is the other's gradient in ``b``; in ``a`` the gradient is the transposed result
    times the shifted plain one, so the pair is closed under differentiation."""

    props = ("axis", "transposed")

    def __init__(self, axis: int, transposed: bool):
        self.axis, self.transposed = axis, bool(transposed)

    def infer(self, a, b):
        _same_shape(a, b)
        _check_axis(self, a)
        return [TensorType(np.result_type(a.dtype, b.dtype), a.shape)]

    def perform(self, inputs, ctx):
        a, b = (_line(np.asarray(v, dtype=ctx.out_dtype), self.axis) for v in inputs)
        out = np.empty(np.shape(inputs[0]), dtype=ctx.out_dtype)
        h, n = _line(out, self.axis), a.shape[0]
        order = range(n - 1, -1, -1) if self.transposed else range(n)
        with np.errstate(all="ignore"):
            for step, k in enumerate(order):
                if step == 0:
                    h[k] = b[k]
                else:
                    prev = k + 1 if self.transposed else k - 1
                    h[k] = a[prev if self.transposed else k] * h[prev] + b[k]
        return [out]

    def bprop(self, inputs, outputs, index, grads):
        a, g = inputs[0], grads[0]
        other = LinearScan(self.axis, not self.transposed)(a, g)
        if index == 1:
            return other
        plain, trans = (outputs[0], other) if not self.transposed else (other, outputs[0])
        return trans * Shift(self.axis, 1, 0.0)(plain)


class Shift(Op):
    """Move every line along ``axis`` by ``step`` (+1 or -1) positions, ``fill`` entering:
    ``out_k = x_{k-step}`` (the exclusive prefix's building block)."""

    props = ("axis", "step", "fill")

    def __init__(self, axis: int, step: int, fill: float):
        if step not in (1, -1):
            raise ValueError(f"shift step must be 1 or -1, not {step}")
        self.axis, self.step, self.fill = axis, step, float(fill)

    def infer(self, x):
        _check_axis(self, x)
        return [TensorType(x.dtype, x.shape)]

    def perform(self, inputs, ctx):
        x = inputs[0]
        out = np.full(np.shape(x), self.fill, dtype=ctx.out_dtype)
        src, dst = _line(x, self.axis), _line(out, self.axis)
        if self.step == 1:
            dst[1:] = src[:-1]
        else:
            dst[:-1] = src[1:]
        return [out]

    def bprop(self, inputs, outputs, index, grads):
        return Shift(self.axis, -self.step, 0.0)(grads[0])


# --------------------------------------------------------------------------- sorting


def topk_order(x: np.ndarray, axis: int) -> np.ndarray:
    """Indices of ``x`` along ``axis`` largest first, NaN counted largest, ties (and NaNs)
    in index order: the stable ascending order of the reversed line, read backwards."""
    n = np.shape(x)[axis]
    ascending = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
    return n - 1 - np.flip(ascending, axis)


class Argsort(Op):
    """Stable ascending order along ``axis`` (NaN last), int64 (``np.argsort(kind="stable")``)."""

    props = ("axis",)

    def __init__(self, axis: int):
        self.axis = axis

    def infer(self, x):
        _check_axis(self, x)
        return [TensorType(np.dtype("int64"), x.shape)]

    def perform(self, inputs, ctx):
        return [np.asarray(np.argsort(inputs[0], axis=self.axis, kind="stable"), np.int64)]

    def bprop(self, inputs, outputs, index, grads):
        return DISCONNECTED


class TopkIndices(Op):
    """Indices of the ``k`` largest entries along ``axis`` (see :func:`topk_order`), int64."""

    props = ("k", "axis")

    def __init__(self, k: int, axis: int):
        self.k, self.axis = int(k), axis

    def infer(self, x):
        _check_axis(self, x)
        self.check_k(x.shape[self.axis])
        shape = list(x.shape)
        shape[self.axis] = self.k
        return [TensorType(np.dtype("int64"), tuple(shape))]

    def check_k(self, n) -> None:
        """``0 <= k <= n`` (a symbolic ``n``: checked on the concrete shape, when called)."""
        if self.k < 0 or (isinstance(n, int) and self.k > n):
            raise ValueError(f"k={self.k} out of range for axis {self.axis} of size "
                             f"{sh.format_dim(n)}")

    def perform(self, inputs, ctx):
        self.check_k(np.shape(inputs[0])[self.axis])
        order = topk_order(inputs[0], self.axis)
        return [contiguous(np.take(order, np.arange(self.k), axis=self.axis)
                           .astype(np.int64))]

    def bprop(self, inputs, outputs, index, grads):
        return DISCONNECTED


def _index_grids(shape: tuple, idx: np.ndarray, axis: int) -> tuple:
    """numpy index tuple addressing ``x[..., idx[...], ...]`` along ``axis`` for every
    position of ``idx`` (the other axes by their own position)."""
    grids = list(np.indices(np.shape(idx), sparse=True))
    grids[axis] = idx
    return tuple(grids)


class TakeAlongAxis(Op):
    """``np.take_along_axis(x, idx, axis)``: ``idx`` (int64, produced by the sorting ops, so
    always in range) has ``x``'s dims except along ``axis``."""

    props = ("axis",)

    def __init__(self, axis: int):
        self.axis = axis

    def infer(self, x, idx):
        _check_axis(self, x)
        if idx.ndim != x.ndim or idx.dtype.kind not in "iu":
            raise TypeError("take_along_axis takes integer indices of the input's rank")
        for a, (p, q) in enumerate(zip(x.shape, idx.shape)):
            if a != self.axis and sh.dims_equal(p, q) is False:
                raise sh.ShapeError(f"index dims differ from the input's: "
                                    f"{sh.format_shape(idx.shape)} vs "
                                    f"{sh.format_shape(x.shape)}")
        return [TensorType(x.dtype, idx.shape)]

    def perform(self, inputs, ctx):
        x, idx = inputs
        return [contiguous(np.take_along_axis(x, idx, axis=self.axis))]

    def bprop(self, inputs, outputs, index, grads):
        if index == 1:
            return DISCONNECTED
        return PutAlongAxis(self.axis)(inputs[0], grads[0], inputs[1])


class PutAlongAxis(Op):
    """Zeros shaped like ``x`` with ``g`` added at ``idx`` along ``axis`` (repeats
    accumulate): the gradient of :class:`TakeAlongAxis`; ``x`` gives only its shape."""

    props = ("axis",)

    def __init__(self, axis: int):
        self.axis = axis

    def infer(self, x, g, idx):
        _same_shape(g, idx)
        TakeAlongAxis(self.axis).infer(x, idx)
        return [TensorType(g.dtype, x.shape)]

    def shape_only(self, index: int) -> bool:
        return index == 0

    def perform(self, inputs, ctx):
        x, g, idx = inputs
        out = np.zeros(np.shape(x), dtype=ctx.out_dtype)
        np.add.at(out, _index_grids(np.shape(x), idx, self.axis), g)
        return [out]

    def bprop(self, inputs, outputs, index, grads):
        if index != 1:
            return DISCONNECTED
        return TakeAlongAxis(self.axis)(grads[0], inputs[2])


# --------------------------------------------------------------------------- user functions


def prod(x, axis=None, keepdims: bool = False) -> Variable:
    """The product over ``axis`` (an int, a tuple, or None: every axis), as ``np.prod``;
    integers and booleans multiply in int64.

    The gradient is the product of the other entries, exact with zeros in ``x`` (no
    division) and differentiable again: ``sg.grad(sg.prod(x), x)`` at ``x = [0, 2, 3]`` is
    ``[6, 0, 0]``.
    """
    x = as_variable(x)
    return Prod(_axes("prod", axis, x), keepdims)(x)


def _scan_axis(function: str, x: Variable, given) -> tuple[Variable, int]:
    """The axis a scan or sort runs along; None flattens ``x`` first, as numpy."""
    if given is None:
        return ops.reshape(x, (-1,)), 0
    return x, _axis(function, given, x.ndim, x)


def cumsum(x, axis=None) -> Variable:
    """Running sum along ``axis`` (None: over the flattened input), as ``np.cumsum``;
    integers and booleans add in int64.  ``sg.cumsum([1, 2, 3])`` is ``[1, 3, 6]``."""
    x, a = _scan_axis("cumsum", as_variable(x), axis)
    return Cumsum(a)(x)


def cumprod(x, axis=None) -> Variable:
    """Running product along ``axis`` (None: over the flattened input), as ``np.cumprod``.

    The gradient needs no division, so it is exact with zeros in ``x``, and it is
    differentiable again.  ``sg.cumprod([1, 2, 3])`` is ``[1, 2, 6]``.
    """
    x, a = _scan_axis("cumprod", as_variable(x), axis)
    return Cumprod(a)(x)


def argsort(x, axis=-1) -> Variable:
    """Indices that sort ``x`` along ``axis`` (None: flattened), int64, stable (equal
    entries keep their order) with NaN last: ``np.argsort(x, axis, kind="stable")``,
    ``torch.sort(x, stable=True).indices``.  No gradient (DISCONNECTED)."""
    x, a = _scan_axis("argsort", as_variable(x), axis)
    return Argsort(a)(x)


def sort(x, axis=-1) -> Variable:
    """``x`` sorted ascending along ``axis`` (None: flattened), NaN last, as ``np.sort``.

    The gradient goes back to where each value came from (equal values: in the stable
    order of :func:`argsort`); differentiable again.
    """
    x, a = _scan_axis("sort", as_variable(x), axis)
    return TakeAlongAxis(a)(x, Argsort(a)(x))


def topk(x, k: int, axis: int = -1) -> tuple[Variable, Variable]:
    """``(values, indices)`` of the ``k`` largest entries along ``axis``, largest first, as
    ``torch.topk(x, k, dim=axis)``; indices are int64.

    Ties are ordered by index (the lower index first; torch leaves their order unspecified)
    and NaN counts as larger than every number, as in torch.  ``k`` outside ``[0, n]`` is a
    ValueError when the graph is built (when ``n`` is a symbolic dim: when it is called).
    The values' gradient goes back to the positions they came from.
    """
    x = as_variable(x)
    a = _axis("topk", axis, x.ndim, x)
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise argument_error("topk", TypeError(f"k must be an int, not {k!r}"), [x])
    n = x.shape[a]
    if k < 0 or (isinstance(n, int) and k > n):
        raise argument_error("topk", ValueError(
            f"k={k} is out of range for axis {a} of size {sh.format_dim(n)}"), [x])
    indices = TopkIndices(int(k), a)(x)
    return TakeAlongAxis(a)(x, indices), indices
