"""Indexing: basic slicing, integer-array indexing, and their scatter gradients.

Basic indices (ints and slices, whose bounds may be symbolic dims) are static
op parameters. Integer-array indices are graph inputs; the gradient of
``x[i]`` is a scatter-add (``np.add.at``), so repeated indices accumulate.

Mixed indices (``x[i, 1]``, ``x[1:, i]``, ``x[i, :, j]``) follow numpy: partial
slices are applied first (a ``Subtensor``, which keeps every axis), and an int
next to an index array is itself an advanced index (a 0-d constant), so all
advanced indices broadcast together and their dims go where the first one was
when they are adjacent, in front otherwise.

An index outside its axis is an error at call time on both backends, with one
message (:func:`index_error_text`): the index array, the bad value, its position
in the array, the axis and its size.
"""

from __future__ import annotations

import numpy as np
import sympy

from symgraph import shapes as sh
from symgraph.dispatch import ops
from symgraph.graph import Constant, Op, TensorType, Variable
from symgraph.ops.arguments import argument_error
from symgraph.sentinels import DISCONNECTED
from symgraph.shapes import contiguous as _contiguous

_SCALAR = np.empty((), np.int8)


def _norm_bound(b):
    if b is None or isinstance(b, int):
        return b
    if isinstance(b, (np.integer,)):
        return int(b)
    if isinstance(b, str):
        return sh.dim_symbol(b)
    if isinstance(b, sympy.Basic):
        return int(b) if b.is_Integer else b
    raise IndexError(f"slice bounds must be ints or symbolic dims, not {b!r}")


def normalize_basic_index(index: tuple) -> tuple:
    out = []
    for entry in index:
        if isinstance(entry, slice):
            out.append(slice(_norm_bound(entry.start), _norm_bound(entry.stop),
                             _norm_bound(entry.step)))
        else:
            out.append(_norm_bound(entry))
    return tuple(out)


def _slice_length(d, s: slice):
    """The length of ``s`` over a dim ``d``; None when only a run can tell (a step other
    than 1 over a symbolic dim, or a symbolic bound whose sign is not known: ``-k`` counts
    from the end when k > 0 but is 0 when k = 0, as in numpy)."""
    step = 1 if s.step is None else s.step
    if isinstance(d, int) and all(isinstance(b, int) or b is None
                                  for b in (s.start, s.stop, step)):
        return len(range(*slice(s.start, s.stop, step).indices(d)))
    if d is not None and isinstance(step, int) and s.start is None and s.stop is None:
        if abs(step) == 1:
            return d  # x[:], x[::-1]
        return sympy.floor((d + abs(step) - 1) / abs(step))  # x[::2]: ceil(d / 2)
    if d is None or not isinstance(step, int) or step != 1:
        return None

    def absolute(b, default):
        if b is None:
            return default
        if isinstance(b, int):
            return d + b if b < 0 else b
        if b.is_nonnegative:
            return b
        return d + b if b.is_negative else None

    start, stop = absolute(s.start, 0), absolute(s.stop, d)
    if start is None or stop is None:
        return None
    length = sympy.Max(0, sympy.Min(stop, d) - sympy.Max(start, 0))
    return int(length) if length.is_Integer else length


def describe_input(var: Variable) -> str | None:
    """How an error names a graph value: its name, else its expression (shortened); None
    for a 0-d constant (an int index: the message shows its value already)."""
    if isinstance(var, Constant) and var.ndim == 0 and not var.name:
        return None
    if var.name:
        return repr(var.name)
    text = ops.pprint(var)  # registered by symgraph.ops (printing imports the op classes)
    return f"`{text if len(text) <= 60 else text[:57] + '...'}`"


def position_text(position: tuple) -> str:
    return str(position[0]) if len(position) == 1 else str(tuple(position))


def first_outside(values, lo: int, hi: int) -> tuple[int, tuple] | None:
    """``(value, position)`` of the first entry (C order) outside ``[lo, hi)``, else None."""
    values = np.asarray(values)
    bad = (values < lo) | (values >= hi)
    if not bad.any():
        return None
    flat = int(np.argmax(bad.reshape(-1)))
    position = tuple(int(i) for i in np.unravel_index(flat, values.shape))
    return int(values.reshape(-1)[flat]), position


def index_error_text(value: int, axis: int, size: int, source: str | None,
                     position: tuple) -> str:
    """The out-of-bounds message of both backends (numpy's wording, plus where it came from):
    ``index 3 of 'i' at position 1 is out of bounds for axis 0 with size 3``."""
    where = f" of {source}" if source else ""
    if position:
        where += f" at position {position_text(position)}"
    return f"index {value}{where} is out of bounds for axis {axis} with size {size}"


class Subtensor(Op):
    """``x[index]`` with ints and slices only."""

    props = ("index",)

    def __init__(self, index: tuple):
        self.index = normalize_basic_index(index)

    @property
    def name(self) -> str:
        return "getitem"

    def infer(self, x):
        if len(self.index) > x.ndim:
            raise IndexError(f"too many indices ({len(self.index)}) for {x.ndim} dims")
        shape = []
        for axis, d in enumerate(x.shape):
            entry = self.index[axis] if axis < len(self.index) else slice(None)
            if isinstance(entry, slice):
                if entry.step == 0:
                    raise ValueError("slice step cannot be zero")
                shape.append(_slice_length(d, entry))
            elif isinstance(entry, int) and isinstance(d, int) and not -d <= entry < d:
                raise IndexError(f"index {entry} is out of bounds for axis {axis} "
                                 f"with size {d}")
        return [TensorType(x.dtype, tuple(shape))]

    def runtime_index(self, ctx) -> tuple:
        def value(b):
            return b if b is None or isinstance(b, int) else ctx.resolve(b)
        return tuple(slice(value(e.start), value(e.stop), value(e.step))
                     if isinstance(e, slice) else value(e) for e in self.index)

    def concrete_shape(self, shapes: list[tuple], ctx) -> tuple:
        """The output shape for a concrete input shape (bounds may be symbolic dims)."""
        return np.broadcast_to(_SCALAR, shapes[0])[self.runtime_index(ctx)].shape

    def perform(self, inputs, ctx):
        return [_contiguous(inputs[0][self.runtime_index(ctx)])]

    def bprop(self, inputs, outputs, index, grads):
        return SubtensorGrad(self.index)(inputs[0], grads[0])


class SubtensorGrad(Op):
    """Zeros shaped like ``x`` with ``g`` written at ``x[index]`` (the gradient of slicing)."""

    props = ("index",)

    def __init__(self, index: tuple):
        self.index = normalize_basic_index(index)

    @property
    def name(self) -> str:
        return "setitem_zeros"

    def infer(self, x, g):
        # g is x[index]'s gradient, of the window's shape: the llvm lowering writes it
        # element for element (a broadcasting g filled one row of its window there)
        window = Subtensor(self.index).infer(x)[0].shape
        if len(window) != g.ndim or any(sh.dims_equal(w, d) is False
                                        for w, d in zip(window, g.shape)):
            raise sh.ShapeError(f"setitem_zeros: a value of shape {sh.format_shape(g.shape)} "
                                f"for the window {sh.format_shape(window)} of x[index]")
        return [TensorType(g.dtype, x.shape)]

    def shape_only(self, index: int) -> bool:
        return index == 0

    def perform(self, inputs, ctx):
        x, g = inputs
        out = np.zeros(np.shape(x), dtype=ctx.out_dtype)
        out[Subtensor(self.index).runtime_index(ctx)] = g
        return [out]

    def bprop(self, inputs, outputs, index, grads):
        if index == 0:
            return DISCONNECTED
        return Subtensor(self.index)(grads[0])


def _advanced_shape(x_shape, pattern, index_shapes):
    """numpy's rule: broadcast index arrays; in place if adjacent, else in front."""
    positions = [i for i, p in enumerate(pattern) if p == "a"]
    bshape = sh.broadcast_shapes(*index_shapes)
    rest = list(x_shape)
    adjacent = positions == list(range(positions[0], positions[-1] + 1))
    kept_before = [rest[i] for i in range(positions[0]) if i not in positions]
    kept_after = [rest[i] for i in range(positions[0], len(rest)) if i not in positions]
    if adjacent:
        return tuple(kept_before) + tuple(bshape) + tuple(kept_after)
    return tuple(bshape) + tuple(d for i, d in enumerate(rest) if i not in positions)


class AdvancedSubtensor(Op):
    """``x[i, j]`` with integer-array indices; ``pattern`` marks "a" (array) or ":" per axis."""

    props = ("pattern",)

    def __init__(self, pattern: tuple):
        self.pattern = tuple(pattern)

    @property
    def name(self) -> str:
        return "take"

    def infer(self, x, *indices):
        if len(self.pattern) > x.ndim:
            raise IndexError(f"too many indices ({len(self.pattern)}) for {x.ndim} dims")
        for i in indices:
            if i.dtype.kind not in "iu":
                raise IndexError(f"array indices must be integers, got {i.dtype.name}")
        return [TensorType(x.dtype, _advanced_shape(x.shape, self.pattern,
                                                    [i.shape for i in indices]))]

    def runtime_index(self, indices) -> tuple:
        it = iter(indices)
        return tuple(next(it) if p == "a" else slice(None) for p in self.pattern)

    def check_bounds(self, x_shape: tuple, indices: list, index_vars: list) -> None:
        """Raise :class:`IndexError` (:func:`index_error_text`) for the first index, in
        pattern then C order, outside its axis -- what the llvm kernels check too."""
        axes = [axis for axis, p in enumerate(self.pattern) if p == "a"]
        for axis, idx, var in zip(axes, indices, index_vars):
            size = x_shape[axis]
            found = first_outside(idx, -size, size)
            if found is not None:
                value, position = found
                raise IndexError(index_error_text(value, axis, size, describe_input(var),
                                                  position))

    def runtime_error(self, value: int, axis: int, size: int, source: str | None,
                      position: tuple) -> IndexError:
        """The error of an index outside its axis, as both backends word it."""
        return IndexError(index_error_text(value, axis, size, source, position))

    def perform(self, inputs, ctx):
        x, *indices = inputs
        self.check_bounds(np.shape(x), indices, ctx.node.inputs[1:])
        return [_contiguous(x[self.runtime_index(indices)])]

    def bprop(self, inputs, outputs, index, grads):
        if index > 0:
            return DISCONNECTED
        return AdvancedIncSubtensor(self.pattern)(inputs[0], grads[0], *inputs[1:])


class AdvancedIncSubtensor(Op):
    """Zeros like ``x`` with ``g`` scatter-added at ``x[indices]`` (repeats accumulate)."""

    props = ("pattern",)

    def __init__(self, pattern: tuple):
        self.pattern = tuple(pattern)

    @property
    def name(self) -> str:
        return "scatter_add"

    def infer(self, x, g, *indices):
        return [TensorType(g.dtype, x.shape)]

    def shape_only(self, index: int) -> bool:
        return index == 0

    def runtime_error(self, value: int, axis: int, size: int, source: str | None,
                      position: tuple) -> IndexError:
        return AdvancedSubtensor.runtime_error(self, value, axis, size, source, position)

    def perform(self, inputs, ctx):
        x, g, *indices = inputs
        AdvancedSubtensor(self.pattern).check_bounds(np.shape(x), indices, ctx.node.inputs[2:])
        out = np.zeros(np.shape(x), dtype=ctx.out_dtype)
        np.add.at(out, AdvancedSubtensor(self.pattern).runtime_index(indices), g)
        return [out]

    def bprop(self, inputs, outputs, index, grads):
        if index != 1:
            return DISCONNECTED
        return AdvancedSubtensor(self.pattern)(grads[0], *inputs[2:])


def getitem(x: Variable, index) -> Variable:
    """``x[index]``: basic (ints, slices) or integer-array indexing, numpy semantics.

    Example: ``logp[sg.arange(n), y]`` picks one entry per row; ``x[:, [0, 2]]`` two
    columns; ``x[i, 1]`` entry ``(i[k], 1)`` for every ``k``.  An index it cannot take is an
    ``IndexError`` naming ``x``'s type and the user's line, as a shape error is.
    """
    try:
        index = _expanded(x, index if isinstance(index, tuple) else (index,))
        mixed = _mixed_parts(x, index) if any(_is_array(e) for e in index) else None
    except IndexError as err:
        raise argument_error("indexing", err, [x]) from None
    if mixed is None:
        return Subtensor(index)(x)
    slices, pattern, arrays = mixed
    if any(s != slice(None) for s in slices):
        x = Subtensor(tuple(slices))(x)  # slices keep every axis: the pattern still applies
    while pattern and pattern[-1] == ":":
        pattern.pop()
    return AdvancedSubtensor(tuple(pattern))(x, *arrays)


def _is_array(e) -> bool:
    return isinstance(e, Variable) or isinstance(e, (list, np.ndarray))


def _expanded(x: Variable, index: tuple) -> tuple:
    """``index`` with its ellipsis spelled out as full slices (np.newaxis is refused)."""
    if any(e is None or e is Ellipsis for e in index):
        # count by identity: ``tuple.count`` would compare index arrays elementwise
        ellipses = sum(1 for e in index if e is Ellipsis)
        if ellipses > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if ellipses == 1:
            pos = next(i for i, e in enumerate(index) if e is Ellipsis)
            fill = x.ndim - (len(index) - 1 - sum(1 for e in index if e is None))
            index = index[:pos] + (slice(None),) * fill + index[pos + 1:]
        if any(e is None for e in index):
            raise IndexError("np.newaxis in an index is not supported; use sg.expand_dims")
    if any(isinstance(e, (bool, np.bool_)) for e in index):
        # numpy reads x[True] as a 0-d mask (a new axis), not as x[1]
        raise IndexError("a boolean in an index (numpy's 0-d mask) is not supported; use an "
                         "int, or sg.where for a mask")
    return index


def _index_array(e) -> Variable:
    if isinstance(e, Variable):
        var = e
    else:
        array = np.asarray(e)
        if array.size == 0 and array.dtype.kind == "f":  # ``[]``: numpy indexes with intp
            array = array.astype(np.int64)
        var = Constant(array)
    if var.dtype.kind == "b":
        raise IndexError("boolean mask indexing is not supported; use sg.where")
    if var.dtype.kind not in "iu":
        raise IndexError(f"array indices must be integers, got {var.dtype.name}")
    return var


def _mixed_parts(x: Variable, index: tuple) -> tuple[list, list, list]:
    """Integer arrays with ints and slices, numpy's rules (see the module docstring): the
    slices (one per axis), the pattern (``":"`` or ``"a"`` per axis) and the index arrays."""
    if len(index) > x.ndim:
        raise IndexError(f"too many indices ({len(index)}) for {x.ndim} dims")
    pattern, arrays, slices = [], [], []
    for axis, e in enumerate(index):
        if isinstance(e, slice):
            pattern.append(":")
            slices.append(e)
            continue
        slices.append(slice(None))
        pattern.append("a")
        if isinstance(e, (bool, np.bool_)):
            raise IndexError("boolean indices are not supported; use sg.where")
        if isinstance(e, (int, np.integer)):
            # an int among index arrays is an advanced index (numpy): a 0-d constant
            e, d = int(e), x.shape[axis]
            if isinstance(d, int) and not -d <= e < d:
                raise IndexError(f"index {e} is out of bounds for axis {axis} with size {d}")
            arrays.append(Constant(np.int64(e)))
        elif isinstance(e, (str, sympy.Basic)):
            raise IndexError(f"a symbolic index ({e}) cannot be mixed with index arrays; "
                             "index with it first, then with the arrays")
        else:
            arrays.append(_index_array(e))
    return slices, pattern, arrays
