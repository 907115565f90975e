"""A long chain of sums of same-shape buffers, one buffer at a time through a pointer table.

Why: a weight used at every step of an unrolled loop gets one gradient term per step, and
backprop adds them up as ``((g0 + g1) + g2) + ...``.  Fused into one loop, that read T
buffers at every index: at T = 100 (a GRU(32)'s recurrent weight, 32 x 96) 100 streams that
no prefetcher follows, and a 100-parameter function LLVM optimised in ~40 ms.  Here the
output is written once as ``g0 + g1`` and then updated in place with each further term,
read through a stack array of the terms' pointers: the same additions in the same order
for every element, so the same result (the loop over the terms is never vectorised: that
would add them in another order).

Only for a chain of at least :data:`codegen.lowerings.JOIN_TABLE_PIECES` float terms, each
in memory with the output's shape and dtype, none of them sharing the output's memory (an
in-place output would be overwritten before the later terms are read), and a static size
below the parallel split (a bigger sum keeps the loop that runs on both cores).
"""

from __future__ import annotations

import math

from symgraph.graph import Variable, dtype_name
from symgraph.ops.elemwise import Elemwise

from . import lowerings
from .irgen import MEM_TYPE, Value, is_float
from .kernel import NO_UNROLL, NO_VECTORIZE, Kernel
from .lowerings import _IN_MEMORY


def _terms(k: Kernel, var: Variable) -> list[Variable] | None:
    """The terms of ``var`` when it is a left-leaning chain of inline float ``add``s of
    same-shape, same-dtype values in memory, first to last; None otherwise."""
    terms, node = [], var.owner
    while True:
        if node is None or not isinstance(node.op, Elemwise) or node.op.name != "add":
            return None
        left, right = node.inputs
        terms.append(right)
        if k.an.mode.get(left) == "inline":
            node = left.owner
            continue
        terms.append(left)
        break
    terms.reverse()
    if any(t.shape != var.shape or t.dtype != var.dtype or k.an.mode.get(t) not in _IN_MEMORY
           for t in terms):
        return None
    return terms


def lower_sum_table(k: Kernel, group: list[Variable]) -> bool:
    """Write the group's one output as its chain of sums, term by term (see the module
    docstring); False (nothing emitted) when it does not apply."""
    if len(group) != 1:
        return False
    var = group[0]
    dtype = dtype_name(var.dtype)
    if not is_float(dtype) or not all(isinstance(d, int) for d in var.shape):
        return False
    size = math.prod(var.shape)
    minimum = k.ctx.split_minimum
    if minimum is not None and size >= minimum:
        return False
    terms = _terms(k, var)
    if terms is None or len(terms) < lowerings.JOIN_TABLE_PIECES:  # (a tunable: read now)
        return False
    out_root = k.an.root(var)
    if any(k.an.root(t) is out_root for t in terms):
        return False
    fb, ty = k.fb, MEM_TYPE[dtype]
    flat = ["0"] * var.ndim
    table = k.pointer_array("terms", [k.ptr(t) for t in terms[2:]])

    def at(i: str) -> list[str]:
        idx = list(flat)
        if idx:
            idx[-1] = i
        return idx

    i, token = fb.loop_begin(str(size))  # out = g0 + g1
    k.store(var, at(i), k.sb.add(k.load(terms[0], at(i)), k.load(terms[1], at(i))))
    fb.loop_end(token)
    j, outer = fb.loop_begin(str(len(terms) - 2))  # out += g2, g3, ...
    base = k.pointer_at(table, j)
    i, token = fb.loop_begin(str(size))
    address = fb.op(f"getelementptr inbounds {ty}, ptr {base}, i64 {i}")
    term = Value(fb.op(f"load {ty}, ptr {address}"), dtype)
    k.store(var, at(i), k.sb.add(k.load(var, at(i)), term))
    fb.loop_end(token)
    # never vectorised or unrolled across terms: with one element the inner loop vanished,
    # and the vectoriser (fadd is ``reassoc``) made the terms' loop a tree reduction, other
    # bits; unrolled, the SLP vectoriser could do the same to the chain
    fb.loop_end(outer, (NO_UNROLL, NO_VECTORIZE))
    return True


__all__ = ["lower_sum_table"]
