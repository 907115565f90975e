"""Dimensions and shapes of the static graph.

A dimension is an ``int`` (fixed), a sympy expression (symbolic, e.g. the
batch size ``batch`` shared by every input that names it) or ``None``
(unknown). Shape rules run while the graph is built, so ``("batch", 784) @
(784, 10)`` is known to be ``("batch", 10)`` before anything runs, and a clash
of fixed dims is reported at the user's line instead of deep inside a call.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from contextvars import ContextVar

import numpy as np
import sympy
from numpy.exceptions import AxisError

Dim = "int | sympy.Expr | None"


class ShapeError(ValueError):
    """A shape rule failed while building the graph (or a runtime shape check)."""


def dim_symbol(name: str) -> sympy.Symbol:
    """The symbolic dim called ``name``; the same name is the same dim everywhere."""
    return sympy.Symbol(name, integer=True, nonnegative=True)


def as_dim(d) -> int | sympy.Expr | None:
    """Normalise a user's dim: int stays, str becomes a symbol, None stays unknown."""
    if d is None:
        return None
    if isinstance(d, str):
        return dim_symbol(d)
    if isinstance(d, sympy.Basic):
        return int(d) if d.is_Integer else d
    try:
        i = int(d)
    except (TypeError, ValueError):
        raise TypeError(f"a dimension must be an int, a name or None, not {d!r}") from None
    if i != d or i < 0:
        raise ValueError(f"a dimension must be a non-negative integer, not {d!r}")
    return i


def as_shape(shape) -> tuple:
    if shape is None:
        return ()
    if isinstance(shape, (int, str)) or isinstance(shape, sympy.Basic):
        shape = (shape,)
    return tuple(as_dim(d) for d in shape)


def is_fixed(d) -> bool:
    return isinstance(d, int)


def dims_equal(a, b) -> bool | None:
    """True/False when it is known statically, None when only a run can tell."""
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if a == b:  # structurally equal (sympy's == compares structure)
        return True
    if isinstance(a, (int, sympy.Symbol)) and isinstance(b, (int, sympy.Symbol)):
        # a symbol against a number or another symbol: what simplify(a - b) says, without
        # it (milliseconds a call, and its first call imports sympy.tensor: ~50 ms a process)
        return None
    diff = sympy.simplify(sympy.sympify(a) - sympy.sympify(b))
    if diff == 0:
        return True
    if diff.is_number:
        return False
    return None


# Symbolic dims broadcast against each other must be equal at run time (only a
# static 1 broadcasts).  Which ones meet is a fact of the graph, not of the process:
# ``Op.make_node`` records the pairs its shape rule unified on the node (``same_dims``),
# and a function binds its inputs with the equalities of its own graph (``same_dims``
# below).  A process-wide table made a failed or unrelated build (``a + b`` on ("n", 3)
# and ("k", 4)) bind n to k in every later function.

#: the list the shape rule being run appends its pairs to (``Op.make_node`` sets it)
same_dims_recorder: ContextVar[list | None] = ContextVar("symgraph_same_dims", default=None)


def unify(a, b) -> None:
    """Record that symbols ``a`` and ``b`` name the same length (in the shape rule that is
    being recorded; outside one, e.g. a backend re-running a rule on concrete shapes,
    there is nothing to record)."""
    pairs = same_dims_recorder.get()
    if pairs is not None:
        pairs.append((a, b))


def same_dims(pairs: Iterable[tuple]) -> dict:
    """Each symbol of ``pairs`` mapped to one representative of its class of equal
    symbols (a union-find over the pairs a graph's nodes recorded)."""
    parent: dict = {}

    def root(d):
        while parent.get(d, d) != d:
            d = parent[d]
        return d

    for a, b in pairs:
        ra, rb = root(a), root(b)
        parent.setdefault(ra, ra)
        if ra != rb:
            parent[rb] = ra
    return {d: root(d) for d in parent}


def broadcast_dim(a, b):
    """Broadcast two dims, numpy style; raises ShapeError on a known clash.

    A symbolic dim is taken to be != 1 (as Theano's broadcastable pattern
    does): only a static 1 broadcasts, so gradients know which axes to sum.
    """
    if a == 1:
        return b
    if b == 1:
        return a
    eq = dims_equal(a, b)
    if eq is True:
        return a
    if eq is False and isinstance(a, int) and isinstance(b, int):
        raise ShapeError(f"dims {a} and {b} do not broadcast")
    if isinstance(a, int):
        return a
    if isinstance(b, int):
        return b
    if a is None:
        return b
    if b is None:
        return a
    if eq is False:
        raise ShapeError(f"dims {a} and {b} do not broadcast")
    if isinstance(a, sympy.Symbol) and isinstance(b, sympy.Symbol):
        unify(a, b)
    return a


def broadcast_shapes(*shapes: tuple) -> tuple:
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for s in shapes:
        padded = (1,) * (ndim - len(s)) + tuple(s)
        out = [broadcast_dim(o, d) for o, d in zip(out, padded)]
    return tuple(out)


def shape_product(dims: Iterable):
    p = sympy.Integer(1)
    for d in dims:
        if d is None:
            return None
        p = p * d
    return int(p) if p.is_Integer else p


def shape_sum(dims: Iterable):
    total = sympy.Integer(0)
    for d in dims:
        if d is None:
            return None
        total = total + d
    return int(total) if total.is_Integer else total


def resolve_dim(d, bindings: Mapping) -> int:
    """The value of a (possibly symbolic) dim, given the symbols bound at run time."""
    if isinstance(d, int):
        return d
    if d in bindings:
        return bindings[d]
    value = sympy.sympify(d).xreplace(
        {s: sympy.Integer(bindings[s]) for s in d.free_symbols if s in bindings})
    if not getattr(value, "is_Integer", False):
        raise ShapeError(f"dim {d} is not bound by any input")
    return int(value)


def bind_shape(static: tuple, actual: tuple, bindings: dict,
               same: Mapping | None = None) -> str | None:
    """Check an actual shape against a static one, binding new symbols.

    ``same`` maps symbols to their class's representative (:func:`same_dims`): a symbol
    is bound together with its class, so an input whose dim was broadcast against
    another input's must have that length.  Returns None when it fits, else a sentence
    saying which dim does not.
    """
    if len(static) != len(actual):
        return f"expected {len(static)} dims {format_shape(static)}, got shape {tuple(actual)}"
    for axis, (d, n) in enumerate(zip(static, actual)):
        if d is None:
            continue
        if isinstance(d, int):
            if d != n:
                return f"dim {axis} must be {d}, got {n} (shape {tuple(actual)})"
            continue
        if isinstance(d, sympy.Symbol) and d not in bindings:
            root = same.get(d, d) if same else d
            if root in bindings and bindings[root] != n:
                return (f"dim {axis} is {d}, which is broadcast against a dim bound to "
                        f"{bindings[root]}, got {n} (shape {tuple(actual)})")
            bindings[d] = bindings[root] = int(n)
            continue
        try:
            want = resolve_dim(d, bindings)
        except ShapeError:
            continue
        if want != n:
            return (f"dim {axis} is {d} = {want}, got {n} (shape {tuple(actual)})")
    return None


def bind_classes(bindings: dict, same: Mapping) -> None:
    """Bind every symbol of ``same`` whose class is bound (a dim only an intermediate
    value has, equal to an input's by broadcasting)."""
    for d, root in same.items():
        if d not in bindings and root in bindings:
            bindings[d] = bindings[root]


def normalize_axis(axis, ndim: int, of: str = "an input") -> int:
    """``axis`` as an index in ``[0, ndim)``, negative counting from the end (numpy's rule).

    An axis outside ``[-ndim, ndim)`` raises numpy's ``AxisError`` (both a ValueError
    and an IndexError) naming the axis and the rank, instead of wrapping silently
    (``axis % ndim`` turned ``stack(axis=77)`` into a valid but wrong axis); ``of``
    says whose rank it is ("the result" for stack and expand_dims). A non-integer
    axis (a float, a bool) is a TypeError, as in numpy.

    >>> normalize_axis(-1, 3)
    2
    """
    if isinstance(axis, bool):
        raise TypeError(f"an axis must be an integer, not the bool {axis}")
    try:
        index = operator.index(axis)
    except TypeError:
        raise TypeError(f"an axis must be an integer, not {axis!r}") from None
    if not -ndim <= index < ndim:
        valid = f"valid axes are {-ndim}..{ndim - 1}" if ndim else "it has no axes"
        raise AxisError(f"axis {index} is out of bounds for {of} of rank {ndim} ({valid})")
    return index % ndim


def check_normalized_axis(axis, ndim: int, of: str = "an input") -> None:
    """What an op's shape rule checks of the axis its user function normalised: in
    ``[0, ndim)`` (``AxisError`` naming axis and rank otherwise, as ``normalize_axis``)."""
    if normalize_axis(axis, ndim, of) != axis:
        raise ValueError(f"the op takes axis {axis} as a non-negative index; the user "
                         "functions (sg.stack, sg.sum, ...) normalise it")


def contiguous(array):
    """C-contiguous, without numpy's promotion of 0-d arrays to 1-d."""
    array = np.asarray(array)
    return array if array.flags.c_contiguous else array.copy(order="C")


def format_dim(d) -> str:
    return "?" if d is None else str(d)


def format_shape(shape: tuple) -> str:
    inner = ", ".join(format_dim(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"
