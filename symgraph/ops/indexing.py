"""Indexing: basic slicing, integer-array indexing, and their scatter gradients.

Basic indices (ints and slices, whose bounds may be symbolic dims) are static
op parameters. Integer-array indices are graph inputs; the gradient of
``x[i]`` is a scatter-add (``np.add.at``), so repeated indices accumulate.
"""

from __future__ import annotations

import numpy as np
import sympy

from symgraph import shapes as sh
from symgraph.graph import Op, TensorType, Variable
from symgraph.shapes import contiguous as _contiguous


def _ops():
    import symgraph.ops as ops
    return ops


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
    step = 1 if s.step is None else s.step
    if isinstance(d, int) and all(isinstance(b, int) or b is None for b in (s.start, s.stop)):
        return len(range(*slice(s.start, s.stop, step).indices(d)))
    if d is None or not isinstance(step, int) or step != 1:
        return None
    start, stop = s.start, s.stop

    def absolute(b, default):
        if b is None:
            return default
        if isinstance(b, int) and b < 0:
            return d + b
        return b

    start, stop = absolute(start, 0), absolute(stop, d)
    length = sympy.Max(0, sympy.Min(stop, d) - sympy.Max(start, 0))
    return int(length) if length.is_Integer else length


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
        return [TensorType(g.dtype, x.shape)]

    def perform(self, inputs, ctx):
        x, g = inputs
        out = np.zeros(np.shape(x), dtype=ctx.out_dtype)
        out[Subtensor(self.index).runtime_index(ctx)] = g
        return [out]

    def bprop(self, inputs, outputs, index, grads):
        from symgraph.grad import DISCONNECTED
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

    def perform(self, inputs, ctx):
        x, *indices = inputs
        return [_contiguous(x[self.runtime_index(indices)])]

    def bprop(self, inputs, outputs, index, grads):
        from symgraph.grad import DISCONNECTED
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

    def perform(self, inputs, ctx):
        x, g, *indices = inputs
        out = np.zeros(np.shape(x), dtype=ctx.out_dtype)
        np.add.at(out, AdvancedSubtensor(self.pattern).runtime_index(indices), g)
        return [out]

    def bprop(self, inputs, outputs, index, grads):
        from symgraph.grad import DISCONNECTED
        if index != 1:
            return DISCONNECTED
        return AdvancedSubtensor(self.pattern)(grads[0], *inputs[2:])


def getitem(x: Variable, index) -> Variable:
    """``x[index]``: basic (ints, slices) or integer-array indexing, numpy semantics."""
    from symgraph.graph import Constant
    if not isinstance(index, tuple):
        index = (index,)
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

    def is_array(e):
        return isinstance(e, Variable) or isinstance(e, (list, np.ndarray))

    if not any(is_array(e) for e in index):
        return Subtensor(index)(x)
    pattern, arrays = [], []
    for e in index:
        if is_array(e):
            var = e if isinstance(e, Variable) else Constant(np.asarray(e))
            if var.dtype.kind == "b":
                raise IndexError("boolean mask indexing is not supported; use sg.where")
            pattern.append("a")
            arrays.append(var)
        elif isinstance(e, slice) and e == slice(None):
            pattern.append(":")
        else:
            raise IndexError("mixing integer-array indices with ints or partial slices "
                             "is not supported; slice first, then index")
    return AdvancedSubtensor(tuple(pattern))(x, *arrays)
