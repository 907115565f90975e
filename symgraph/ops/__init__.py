"""The numpy-named functions users call to build graphs.

Op classes live in the sibling modules (one op, one place); this module only
turns user arguments (Python numbers, arrays, axes) into op applications.
"""

from __future__ import annotations

import numpy as np
import sympy

from symgraph import shapes as sh
from symgraph.graph import Constant, SharedVariable, Variable, as_variable, is_float
from symgraph.ops import elemwise as ew
from symgraph.ops.elemwise import Cast, DropoutMask, Elemwise
from symgraph.ops.indexing import getitem as getitem  # Variable.__getitem__ uses it
from symgraph.ops.linalg import MatMul
from symgraph.ops.nn import Arange, LogSoftmax, LogSumExp, OneHot, Softmax
from symgraph.ops.reduce import Argmax, Reduce, Size, normalize_axes
from symgraph.ops.structure import Concatenate, DimShuffle, Reshape, Stack

# --------------------------------------------------------------------------- elementwise


def _unary(op: Elemwise):
    def f(x) -> Variable:
        return ew.apply(op, x)
    f.__name__ = op.name
    f.__doc__ = f"Elementwise {op.name}."
    return f


def _binary(op: Elemwise):
    def f(x, y) -> Variable:
        return ew.apply(op, x, y)
    f.__name__ = op.name
    f.__doc__ = f"Elementwise {op.name}, numpy broadcasting."
    return f


exp, log, log1p, expm1 = (_unary(ew.exp), _unary(ew.log), _unary(ew.log1p), _unary(ew.expm1))
sqrt, square, abs, sign = (_unary(ew.sqrt), _unary(ew.square), _unary(ew.abs_), _unary(ew.sign))
sin, cos, tanh, neg = _unary(ew.sin), _unary(ew.cos), _unary(ew.tanh), _unary(ew.neg)
sigmoid, softplus, relu = _unary(ew.sigmoid), _unary(ew.softplus), _unary(ew.relu)
stop_gradient = _unary(ew.stop_gradient)
logical_not = _unary(ew.logical_not)
add, sub, mul, div = _binary(ew.add), _binary(ew.sub), _binary(ew.mul), _binary(ew.div)
power, maximum, minimum = _binary(ew.power), _binary(ew.maximum), _binary(ew.minimum)
less, less_equal = _binary(ew.less), _binary(ew.less_equal)
greater, greater_equal = _binary(ew.greater), _binary(ew.greater_equal)
equal, not_equal = _binary(ew.equal), _binary(ew.not_equal)
logical_and, logical_or = _binary(ew.logical_and), _binary(ew.logical_or)
subtract, multiply, divide, true_divide = sub, mul, div, div
negative = neg


def where(condition, x, y) -> Variable:
    """``x`` where ``condition`` else ``y`` (numpy broadcasting)."""
    condition = as_variable(condition)
    if condition.dtype.kind != "b":
        condition = cast(condition, "bool")
    return ew.apply(ew.where, condition, x, y)


def clip(x, lo, hi) -> Variable:
    """``min(max(x, lo), hi)``; the gradient is 1 inside ``[lo, hi]``."""
    return ew.apply(ew.clip, x, lo, hi)


def fill(like, value) -> Variable:
    """``value`` broadcast to the shape of ``broadcast(like, value)``; ``like`` gives shape only."""
    like = as_variable(like)
    if not isinstance(value, Variable):
        value = Constant(value, dtype=np.result_type(like.dtype, value)
                         if like.dtype.kind != "b" else None)
    return ew.ELEMWISE["fill"].make_node(like, value).outputs[0]


def zeros_like(x, dtype=None) -> Variable:
    x = as_variable(x)
    return fill(x, Constant(0, dtype=dtype or x.dtype))


def ones_like(x, dtype=None) -> Variable:
    x = as_variable(x)
    return fill(x, Constant(1, dtype=dtype or x.dtype))


def cast(x, dtype) -> Variable:
    """Convert to ``dtype`` (no node when it already is)."""
    x = as_variable(x)
    if x.dtype == np.dtype(dtype):
        return x
    return Cast(dtype)(x)


# --------------------------------------------------------------------------- reductions


def _reduce(kind):
    def f(x, axis=None, keepdims: bool = False) -> Variable:
        x = as_variable(x)
        axes = normalize_axes(axis, x.ndim)
        return Reduce(kind, axes, keepdims)(x)
    f.__name__ = kind
    f.__doc__ = f"{kind} over ``axis`` (all axes when None), numpy semantics."
    return f


sum, mean, max, min = _reduce("sum"), _reduce("mean"), _reduce("max"), _reduce("min")


def argmax(x, axis: int | None = None, keepdims: bool = False) -> Variable:
    x = as_variable(x)
    if axis is not None:
        axis = normalize_axes(axis, x.ndim)[0]
    elif keepdims:
        raise ValueError("argmax(axis=None, keepdims=True) is not supported")
    return Argmax(axis, keepdims)(x)


def size(x, axes=None, dtype="int64") -> Variable:
    """Number of elements along ``axes`` (a scalar node; folded when dims are fixed)."""
    x = as_variable(x)
    return Size(normalize_axes(axes, x.ndim), dtype)(x)


def logsumexp(x, axis=None, keepdims: bool = False) -> Variable:
    """``log(sum(exp(x)))``, computed with a max-shift so it never overflows."""
    x = as_variable(x)
    return LogSumExp(normalize_axes(axis, x.ndim), keepdims)(x)


# --------------------------------------------------------------------------- structure


def transpose(x, axes=None) -> Variable:
    x = as_variable(x)
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    elif len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    axes = tuple(a % x.ndim for a in axes) if x.ndim else ()
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of {x.ndim} dims")
    if axes == tuple(range(x.ndim)):
        return x
    return DimShuffle(axes, x.ndim)(x)


def expand_dims(x, axis) -> Variable:
    """Insert length-1 axes at ``axis`` (an int or tuple of output positions)."""
    x = as_variable(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    ndim_out = x.ndim + len(axes)
    axes = sorted(a % ndim_out for a in axes)
    order, source = [], iter(range(x.ndim))
    for i in range(ndim_out):
        order.append("x" if i in axes else next(source))
    return DimShuffle(tuple(order), x.ndim)(x)


def squeeze(x, axis=None) -> Variable:
    x = as_variable(x)
    axes = (tuple(i for i, d in enumerate(x.shape) if d == 1) if axis is None
            else normalize_axes(axis, x.ndim))
    return DimShuffle(tuple(i for i in range(x.ndim) if i not in axes), x.ndim)(x)


def reshape(x, shape) -> Variable:
    """Reshape; ``shape`` may hold ints, symbolic dims (names) and one -1."""
    x = as_variable(x)
    if isinstance(shape, (int, str)) or isinstance(shape, sympy.Basic):
        shape = (shape,)
    target = []
    for d in shape:
        if isinstance(d, (int, np.integer)) and int(d) == -1:
            target.append(-1)
        elif d is None:
            target.append(-1)
        else:
            target.append(sh.as_dim(d))
    if target.count(-1) > 1:
        raise ValueError(f"reshape: at most one unknown dim (-1 or None) in {tuple(shape)}")
    if tuple(target) == tuple(x.shape) and -1 not in target:
        return x
    return Reshape(tuple(target))(x)


def concatenate(xs, axis: int = 0) -> Variable:
    xs = [as_variable(x) for x in xs]
    ndim = xs[0].ndim if xs else 0
    return Concatenate(axis % ndim if ndim else axis)(*xs)


def stack(xs, axis: int = 0) -> Variable:
    xs = [as_variable(x) for x in xs]
    ndim = (xs[0].ndim if xs else 0) + 1
    return Stack(axis % ndim)(*xs)


def matmul(a, b) -> Variable:
    """Matrix product of vectors and matrices (numpy's ``matmul``)."""
    a, b = as_variable(a), as_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: scalar operands are not allowed, use *")
    return MatMul()(a, b)


def dot(a, b) -> Variable:
    """numpy's ``dot`` for vectors and matrices; scalars multiply."""
    a, b = as_variable(a), as_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        return mul(a, b)
    return matmul(a, b)


def arange(n, dtype="int64") -> Variable:
    """``0 .. n-1``; ``n`` an int or a symbolic dim such as ``x.shape[0]``."""
    if n is None:
        raise ValueError("arange of an unknown dim: give the dim a name (a symbolic dim)")
    return Arange(sh.as_dim(n), dtype)()


# --------------------------------------------------------------------------- nn


def softmax(x, axis: int = -1) -> Variable:
    x = as_variable(x)
    return Softmax(axis % x.ndim)(x)


def log_softmax(x, axis: int = -1) -> Variable:
    """``x - logsumexp(x)``: stable where ``log(softmax(x))`` is not."""
    x = as_variable(x)
    return LogSoftmax(axis % x.ndim)(x)


def one_hot(labels, depth: int, dtype="float64") -> Variable:
    return OneHot(depth, dtype)(as_variable(labels))


def leaky_relu(x, alpha: float = 0.01) -> Variable:
    x = as_variable(x)
    return where(x > 0, x, x * alpha)


def hard_tanh(x) -> Variable:
    return clip(x, -1, 1)


def cross_entropy(logits, labels) -> Variable:
    """Mean softmax cross-entropy of ``logits`` (batch, classes) and integer ``labels``."""
    logits, labels = as_variable(logits), as_variable(labels)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (batch, classes), got {logits.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: labels must be integers, got {labels.dtype.name}")
    depth = logits.shape[1]
    if not isinstance(depth, int):
        raise ValueError("cross_entropy: the number of classes must be a fixed dim")
    picked = one_hot(labels, depth, logits.dtype) * log_softmax(logits)
    return -mean(sum(picked, axis=1))


def binary_cross_entropy(logits, targets) -> Variable:
    """Mean binary cross-entropy from logits: ``softplus(z) - y z`` (never saturates wrongly)."""
    logits = as_variable(logits)
    targets = as_variable(targets)
    if targets.dtype != logits.dtype:
        targets = cast(targets, logits.dtype)
    return mean(softplus(logits) - targets * logits)


def mse(predictions, targets) -> Variable:
    """Mean squared error, in the predictions' dtype (like the other losses)."""
    predictions = as_variable(predictions)
    return mean(square(predictions - cast(targets, predictions.dtype)))


def dropout(x, keep_prob: float, seed: int) -> Variable:
    """Inverted dropout: ``x * mask / keep_prob``, a new mask on every call.

    The mask comes from a counter-based hash of (seed, call counter, index);
    the counter is a hidden shared variable that every function using this
    node bumps by one per call (its ``default_update``). Two dropout nodes
    with the same seed draw the same masks: give each layer its own seed.
    """
    x = as_variable(x)
    if not is_float(x.dtype):
        raise TypeError(f"dropout needs a float input, got {x.dtype.name}")
    if keep_prob == 1.0:
        return x
    counter = SharedVariable(np.int64(0), name=f"dropout_counter_{seed}")
    counter.default_update = counter + 1
    mask = DropoutMask(keep_prob, seed)(x, counter)
    return x * mask


__all__ = [name for name in dir() if not name.startswith("_")]
