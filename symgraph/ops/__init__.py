"""The numpy-named functions users call to build graphs.

Op classes live in the sibling modules (one op, one place); this module only
turns user arguments (Python numbers, arrays, axes) into op applications.
"""

from __future__ import annotations

import builtins
import types

import numpy as np
import sympy

from symgraph import dispatch
from symgraph import shapes as sh
from symgraph.graph import Constant, SharedVariable, Variable, as_variable, is_float
from symgraph.ops import elemwise as ew

# the op families' user functions (each module's ``__all__``); sg and sg.nn re-export them
from symgraph.ops.activations import *  # noqa: F403
from symgraph.ops.arguments import argument_error as _argument_error
from symgraph.ops.arguments import axes as _axes
from symgraph.ops.arguments import axis as _axis
from symgraph.ops.conv import *  # noqa: F403
from symgraph.ops.elemwise import Cast, DropoutMask
from symgraph.ops.elemwise import binary_function as _binary
from symgraph.ops.elemwise import unary_function as _unary
from symgraph.ops.indexing import getitem as getitem  # Variable.__getitem__ uses it
from symgraph.ops.layout import *  # noqa: F403
from symgraph.ops.linalg import *  # noqa: F403
from symgraph.ops.losses import *  # noqa: F403
from symgraph.ops.nn import Arange, LogSoftmax, LogSumExp, OneHot, Softmax
from symgraph.ops.numeric import *  # noqa: F403
from symgraph.ops.reduce import Argmax, Reduce, Size, normalize_axes
from symgraph.ops.scan import *  # noqa: F403
from symgraph.ops.structure import Concatenate, DimShuffle, Flip, Reshape, Stack

exp, log, log1p, expm1 = (_unary(ew.exp), _unary(ew.log), _unary(ew.log1p), _unary(ew.expm1))
sqrt, square, abs, sign = (_unary(ew.sqrt), _unary(ew.square), _unary(ew.abs_), _unary(ew.sign))
sin, cos, tanh, neg = _unary(ew.sin), _unary(ew.cos), _unary(ew.tanh), _unary(ew.neg)
arctan = _unary(ew.arctan)
sigmoid, softplus, relu = _unary(ew.sigmoid), _unary(ew.softplus), _unary(ew.relu)
stop_gradient = _unary(ew.stop_gradient)
identity = _unary(ew.identity)  # (internal: grad names one node twice through it)
logical_not = _unary(ew.logical_not)
add, sub, mul, div = _binary(ew.add), _binary(ew.sub), _binary(ew.mul), _binary(ew.div)
power, maximum, minimum = _binary(ew.power), _binary(ew.maximum), _binary(ew.minimum)
maximum.__doc__ = """Elementwise maximum, numpy broadcasting; NaN propagates (``np.maximum``).

The gradient goes to the larger operand; at a tie each side gets half (as torch, jax
and ``stack([a, b]).max(axis=0)``), so ``maximum(x, 0)`` at ``x == 0`` has gradient 0.5,
while ``sg.nn.relu`` keeps torch's 0 there. A NaN operand passes no gradient.
"""
minimum.__doc__ = """Elementwise minimum, numpy broadcasting; NaN propagates (``np.minimum``).

The gradient goes to the smaller operand; at a tie each side gets half (see ``maximum``).
"""
power.__doc__ = """``x ** y``, numpy broadcasting, computed in floats.

Gradients follow torch and jax where they agree (see ``elemwise._power_grad``): at
``x == 0`` the gradient in ``y`` is 0 for ``y >= 0`` (``0 ** y`` is constant there)
and the gradient in ``x`` is 0 for ``y == 0``.
"""
less, less_equal = _binary(ew.less), _binary(ew.less_equal)
greater, greater_equal = _binary(ew.greater), _binary(ew.greater_equal)
equal, not_equal = _binary(ew.equal), _binary(ew.not_equal)
logical_and, logical_or = _binary(ew.logical_and), _binary(ew.logical_or)
subtract, multiply, divide, true_divide = sub, mul, div, div
negative = neg


def where(condition, x, y) -> Variable:
    """``x`` where ``condition`` else ``y`` (numpy broadcasting).

    A Python ``bool`` condition is refused: it is what ``a == b`` of two Variables gives
    (identity, see ``Variable``), so ``where(a == b, ...)`` would silently pick one
    branch everywhere. Use ``sg.equal(a, b)`` (or ``np.bool_`` for a constant condition).
    """
    if isinstance(condition, bool):
        raise TypeError(f"where: the condition is the Python bool {condition}, so one branch "
                        "would be taken everywhere; `a == b` and `a != b` of two Variables "
                        "compare identity: use sg.equal(a, b) / sg.not_equal(a, b)")
    condition = as_variable(condition)
    if condition.dtype.kind != "b":
        condition = cast(condition, "bool")
    return ew.apply(ew.where, condition, x, y)


def clip(x, lo, hi) -> Variable:
    """``min(max(x, lo), hi)``; the gradient is 1 inside ``[lo, hi]``. A bound of None
    leaves that side open, as ``np.clip``'s."""
    if lo is None or hi is None:
        x = as_variable(x)
        # the open side's limit in the result's dtype (x's with the given bound's), which no
        # value passes; x's own limit capped a bound beyond it (int8 x, lo=1000.5: 127)
        given = [ew._clamped(b, (x,)) for b in (lo, hi) if b is not None]
        dtype = np.result_type(*(v.dtype for v in ew._coerce(x, *given, op=ew.clip)))
        if dtype.kind == "f":
            low, high = Constant(np.asarray(-np.inf, dtype)), Constant(np.asarray(np.inf, dtype))
        else:  # (bool: False and True)
            limits = np.iinfo(dtype) if dtype.kind in "iu" else None
            low = Constant(np.asarray(False if limits is None else limits.min, dtype))
            high = Constant(np.asarray(True if limits is None else limits.max, dtype))
        lo, hi = low if lo is None else lo, high if hi is None else hi
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
        return Reduce(kind, _axes(kind, axis, x), keepdims)(x)
    f.__name__ = kind
    f.__doc__ = f"{kind} over ``axis`` (all axes when None), numpy semantics."
    return f


sum, mean, max, min = _reduce("sum"), _reduce("mean"), _reduce("max"), _reduce("min")


def any(x, axis=None, keepdims: bool = False) -> Variable:
    """Is any element along ``axis`` (all axes when None) true, i.e. nonzero (NaN counts)?
    numpy's ``any``: a bool, False over an empty axis, no gradient."""
    return greater(_count(not_equal, x, axis, keepdims), 0)


def all(x, axis=None, keepdims: bool = False) -> Variable:
    """Is every element along ``axis`` true, i.e. nonzero (NaN counts)? numpy's ``all``: a
    bool, True over an empty axis, no gradient."""
    return equal(_count(equal, x, axis, keepdims), 0)


def _count(compare, x, axis, keepdims: bool) -> Variable:
    """How many elements of ``x`` along ``axis`` ``compare`` (equal, not_equal) finds to
    zero. A sum, not a max: a max has no value over an empty axis."""
    x = as_variable(x)
    hit = x if compare is not_equal and x.dtype == np.bool_ else compare(x, 0)
    return sum(cast(hit, "int64"), axis, keepdims)


def argmax(x, axis: int | None = None, keepdims: bool = False) -> Variable:
    x = as_variable(x)
    if axis is not None:
        axis = _axis("argmax", axis, x.ndim, x)
    elif keepdims:
        raise ValueError("argmax(axis=None, keepdims=True) is not supported")
    return Argmax(axis, keepdims)(x)


def size(x, axes=None, dtype="int64") -> Variable:
    """Number of elements along ``axes`` (a scalar node; folded when dims are fixed)."""
    x = as_variable(x)
    return Size(normalize_axes(axes, x.ndim), dtype)(x)


def logsumexp(x, axis=None, keepdims: bool = False) -> Variable:
    """``log(sum(exp(x)))``, computed with a max-shift so it never overflows.

    Over an empty axis it is an error when called, as ``max`` is (numpy's rule for a
    reduction without identity; ``scipy.special.logsumexp`` and torch return -inf there)."""
    x = as_variable(x)
    return LogSumExp(_axes("logsumexp", axis, x), keepdims)(x)


# --------------------------------------------------------------------------- structure


def transpose(x, axes=None) -> Variable:
    """Permute the axes (reverse them when ``axes`` is None); negative axes count from the end."""
    x = as_variable(x)
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    elif len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    given = tuple(axes)
    axes = tuple(_axis("transpose", a, x.ndim, x) for a in given)
    if sorted(axes) != list(range(x.ndim)):
        raise _argument_error("transpose", ValueError(
            f"axes {given} are not a permutation of {x.ndim} dims"), [x])
    if axes == tuple(range(x.ndim)):
        return x
    return DimShuffle(axes, x.ndim)(x)


def expand_dims(x, axis) -> Variable:
    """Insert length-1 axes at ``axis`` (an int or tuple of output positions)."""
    x = as_variable(x)
    given = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    ndim_out = x.ndim + len(given)
    axes = sorted(_axis("expand_dims", a, ndim_out, x, of="the result") for a in given)
    if len(set(axes)) != len(axes):
        raise _argument_error("expand_dims", ValueError(f"repeated axis in {given}"), [x])
    order, source = [], iter(range(x.ndim))
    for i in range(ndim_out):
        order.append("x" if i in axes else next(source))
    return DimShuffle(tuple(order), x.ndim)(x)


def flip(x, axis=None) -> Variable:
    """Reverse the order of elements along ``axis`` (an int, a tuple, or None: every axis),
    as ``np.flip``."""
    x = as_variable(x)
    axes = _axes("flip", axis, x)
    return Flip(axes)(x) if axes else x


def squeeze(x, axis=None) -> Variable:
    """``np.squeeze``; ``axis=None`` drops the dims that are 1 in the graph (static): a
    symbolic or unknown dim stays, even if it is 1 at run time, since the output's rank
    is fixed when the graph is built. Name the axis to drop such a dim (checked per call).
    """
    x = as_variable(x)
    axes = (tuple(i for i, d in enumerate(x.shape) if d == 1) if axis is None
            else _axes("squeeze", axis, x))
    kept = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    for a in axes:
        d = x.shape[a]
        if d != 1 and (isinstance(d, int) or None in kept):
            raise _argument_error("squeeze", ValueError(
                f"cannot drop axis {a} of length {sh.format_dim(d)}" + (
                    "" if isinstance(d, int) else " (with another dim of unknown length "
                    "the drop cannot be checked: name that dim)")), [x])
    if builtins.any(x.shape[a] != 1 for a in axes):  # symbolic: 1 is checked per call
        return reshape(x, kept)
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
    """Join along an existing ``axis`` (negative counts from the end), as numpy."""
    xs = [as_variable(x) for x in xs]
    ndim = xs[0].ndim if xs else 0
    if ndim:  # no inputs or scalars: the op says what is wrong
        axis = _axis("concatenate", axis, ndim, *xs)
    return Concatenate(axis)(*xs)


def stack(xs, axis: int = 0) -> Variable:
    """Join along a new ``axis`` of the result (``-1``: last), as numpy."""
    xs = [as_variable(x) for x in xs]
    ndim = (xs[0].ndim if xs else 0) + 1
    return Stack(_axis("stack", axis, ndim, *xs, of="the result"))(*xs)


def arange(n, dtype="int64") -> Variable:
    """``0 .. n-1``; ``n`` an int or a symbolic dim such as ``x.shape[0]``."""
    if n is None:
        raise ValueError("arange of an unknown dim: give the dim a name (a symbolic dim)")
    return Arange(sh.as_dim(n), dtype)()


# --------------------------------------------------------------------------- nn


def softmax(x, axis: int = -1) -> Variable:
    """``exp(x) / sum(exp(x))`` along ``axis``, computed with a max-shift."""
    x = as_variable(x)
    return Softmax(_axis("softmax", axis, x.ndim, x))(x)


def log_softmax(x, axis: int = -1) -> Variable:
    """``x - logsumexp(x)``: stable where ``log(softmax(x))`` is not."""
    x = as_variable(x)
    return LogSoftmax(_axis("log_softmax", axis, x.ndim, x))(x)


def one_hot(labels, depth: int, dtype="float64") -> Variable:
    return OneHot(depth, dtype)(as_variable(labels))


def leaky_relu(x, alpha: float = 0.01) -> Variable:
    x = as_variable(x)
    return where(x > 0, x, x * alpha)


def hard_tanh(x) -> Variable:
    """``clip(x, -1, 1)`` with torch's gradient at the kinks: 0 at exactly +-1 (a clip's
    gradient is 1 on its closed interval)."""
    x = as_variable(x)
    return where(abs(x) < 1, x, sign(x))


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

# the builders the layers below (``Variable``'s operators, every op's ``bprop``) call as
# ``dispatch.ops.<name>`` without importing this package
dispatch.register({name: value for name, value in globals().items()
                   if name in __all__ and isinstance(value, types.FunctionType)})
