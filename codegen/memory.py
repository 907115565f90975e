"""Concrete shapes and the memory arena of one shape signature.

Why: the compiled code takes every size from a table, so the Python side must know, per
signature of input shapes (e.g. per batch size), the shape of every variable and where each
buffer lives.  Shapes come from each op's own ``infer`` run on concrete shapes (one shape
rule per op, no second copy here); buffers are packed into one arena with greedy first-fit
reuse once a buffer's last reader has run.  Both are computed once per signature and cached.
"""

from __future__ import annotations

import numpy as np
import sympy

from symgraph import shapes as sh
from symgraph.evaluate import NodeContext
from symgraph.graph import Apply, Variable
from symgraph.ops.elemwise import Elemwise, check_runtime_broadcast
from symgraph.ops.indexing import AdvancedIncSubtensor, Subtensor, SubtensorGrad
from symgraph.ops.structure import ConcatenateGrad, Reshape, ReshapeLike

ALIGN = 64
_SCALAR = np.empty((), np.int8)


class _Shaped:
    """What ``Op.infer`` reads from a variable, with a concrete shape."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: tuple, dtype):
        self.shape, self.dtype = shape, dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


def _describe(node: Apply, err: Exception) -> str:
    where = f"\n  created at {node.site}" if node.site else ""
    return f"{node.op.name}: {err}{where}"


def concrete_shape(node: Apply, shapes: dict, bindings: dict) -> tuple:
    """The output shape of ``node`` for concrete input shapes."""
    op = node.op
    ins = [shapes[x] for x in node.inputs]
    if isinstance(op, Reshape):
        total = int(np.prod(ins[0], dtype=np.int64))
        target, new_names = [], []
        for d in op.shape:
            try:
                target.append(d if isinstance(d, int) else sh.resolve_dim(d, bindings))
            except sh.ShapeError:  # a name no input binds: inferred, then bound
                target.append(-1)
                new_names.append((len(target) - 1, d))
        if target.count(-1) > 1:
            raise ValueError(f"reshape to {sh.format_shape(op.shape)}: more than one dim is "
                             "unknown at run time")
        if -1 in target:
            known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
            if known == 0 or total % known:
                raise ValueError(f"cannot reshape {ins[0]} to {op.shape}")
            target[target.index(-1)] = total // known
        if int(np.prod(target, dtype=np.int64)) != total:
            raise ValueError(f"cannot reshape {ins[0]} to {tuple(target)}")
        for axis, name in new_names:
            if isinstance(name, sympy.Symbol):
                bindings[name] = target[axis]
        return tuple(target)
    if isinstance(op, ReshapeLike):
        if int(np.prod(ins[0], dtype=np.int64)) != int(np.prod(ins[1], dtype=np.int64)):
            raise ValueError(f"cannot reshape {ins[0]} to {ins[1]}")
        return tuple(ins[1])
    if isinstance(op, ConcatenateGrad):
        return tuple(ins[1 + op.index])
    if isinstance(op, Subtensor):
        index = op.runtime_index(NodeContext(node, bindings))
        return np.broadcast_to(np.empty((), np.int8), ins[0])[index].shape
    if isinstance(op, (SubtensorGrad, AdvancedIncSubtensor)):
        return tuple(ins[0])
    fakes = [_Shaped(tuple(s), x.dtype) for s, x in zip(ins, node.inputs)]
    (out_type,) = op.infer(*fakes)
    shape = tuple(d if isinstance(d, int) else sh.resolve_dim(d, bindings)
                  for d in out_type.shape)
    if isinstance(op, Elemwise):  # the code broadcasts only static length-1 dims, like numpy's
        check_runtime_broadcast(node.inputs, [np.broadcast_to(_SCALAR, s) for s in ins])
    return shape


def infer_shapes(nodes: list[Apply], shapes: dict, bindings: dict) -> dict:
    """Concrete shapes of all variables (``shapes`` holds the leaves'); raises ValueError."""
    for node in nodes:
        try:
            shape = concrete_shape(node, shapes, bindings)
        except (ValueError, TypeError, IndexError) as err:
            raise type(err)(_describe(node, err)) from None
        for out in node.outputs:
            shapes[out] = shape
    return shapes


def plan_arena(sizes: dict[Variable, int], birth: dict[Variable, int],
               death: dict[Variable, int]) -> tuple[dict[Variable, int], int]:
    """Byte offsets for buffers alive over ``[birth, death]`` steps; greedy first fit.

    A buffer born at step ``s`` never shares bytes with one that dies at ``s`` (a kernel's
    output must not overlap its inputs).
    """
    offsets: dict[Variable, int] = {}
    live: list[tuple[int, int, Variable]] = []  # (offset, end, var)
    total = 0
    for var in sorted(sizes, key=lambda v: birth[v]):
        step = birth[var]
        live = [item for item in live if death[item[2]] >= step]
        size = max(ALIGN, -(-sizes[var] // ALIGN) * ALIGN)
        cursor = 0
        for start, end, _ in sorted(live):
            if start - cursor >= size:
                break
            cursor = max(cursor, end)
        offsets[var] = cursor
        live.append((cursor, cursor + size, var))
        total = max(total, cursor + size)
    return offsets, total


def aligned_empty(nbytes: int) -> np.ndarray:
    """A uint8 array of ``nbytes`` whose data is 64-byte aligned."""
    raw = np.zeros(nbytes + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes]
