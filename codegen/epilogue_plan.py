"""Which gemm computes the elementwise kernels that read it, block by block of rows.

Why: Adam's update reads the weight gradient once, at the index it writes, after every gemm
of the step (:func:`codegen.fusion.plan_inplace` orders updates last).  Through BLAS the
gradient went to memory whole and came back: W1's 784x512 float32 gradient is 1.6 MB, more
than a core's L2, and its update took twice its time alone.  Paired here, the gemm and the
group are one kernel (``codegen.lower_epilogue``) in which each block of the product is
updated while it is in L1.
"""

from __future__ import annotations

from symgraph.graph import Variable
from symgraph.ops.linalg import MatMul

from .fusion import (
    ADDRESSABLE,
    Analysis,
    gemm_sources,
    group_kernels,
    inlinable,
    kernel_reads,
    pair_epilogues,
    reads_only_at_own_index,
    same_shape,
    value_uses,
)
from .registry import register_tunables

__all__ = ["EPILOGUE_COLUMNS", "EPILOGUE_LIKELY_K", "EPILOGUE_MIN_WORK", "EPILOGUE_PANEL_BYTES",
           "epilogue_gemm", "plan_epilogues"]

#: a gemm gets its elementwise consumers as an epilogue (:func:`plan_epilogues`) from this
#: many multiply-adds ``m * n * k``, with at most EPILOGUE_COLUMNS columns and a right
#: operand of at most EPILOGUE_PANEL_BYTES (read once per block of rows: it should stay in
#: the core's L2)
EPILOGUE_MIN_WORK = 1 << 18
EPILOGUE_COLUMNS = 512
EPILOGUE_PANEL_BYTES = 1 << 19
#: a run-time ``k`` (a batch) is taken to be at least this for EPILOGUE_MIN_WORK
EPILOGUE_LIKELY_K = 32


def epilogue_gemm(an: Analysis, g: Variable) -> bool:
    """Can the buffered product ``g`` take an epilogue (``codegen.lower_epilogue``, block by
    block of rows)?  Not an output; a 2-d float MatMul with a static result in the bounds
    above, whose operands are in memory (or transposing views of it)."""
    node = g.owner
    if node is None or not isinstance(node.op, MatMul) or g.ndim != 2 or \
            an.mode.get(g) != "buffer" or g in an.outputs:
        return False
    a, b = node.inputs
    if a.ndim != 2 or b.ndim != 2 or g.dtype.name not in ("float32", "float64") or \
            a.dtype != g.dtype or b.dtype != g.dtype:
        return False
    m, n = g.shape
    kk = a.shape[1]
    if not (isinstance(m, int) and isinstance(n, int)) or m < 2 or n < 2 or \
            n > EPILOGUE_COLUMNS:
        return False
    if isinstance(kk, int):  # (a run-time k is checked at run time: lower_epilogue)
        if m * n * kk < EPILOGUE_MIN_WORK or kk * n * g.dtype.itemsize > EPILOGUE_PANEL_BYTES:
            return False
    elif m * n < EPILOGUE_MIN_WORK // EPILOGUE_LIKELY_K:
        return False
    return all(an.mode.get(src) in ADDRESSABLE for src in gemm_sources(an, g))


def plan_epilogues(an: Analysis) -> None:
    """Pair a gemm with the group of elementwise kernels that are its only readers.

    Why: Adam's update reads the weight gradient once, at the index it writes, and runs after
    every gemm (:func:`plan_inplace` orders updates last), so the gradient went to memory
    whole and came back: W1's 784x512 gradient is 1.6 MB, more than a core's L2, and its
    update took twice its time alone.  Computed block by block of rows, each block's update
    runs while the block is in L1 (``codegen.lower_epilogue``).

    The gemm moves to just before the group (its readers: only the group's members, each at
    the index it writes).  Moving it later is safe when no kernel in between writes, in place,
    a variable the gemm reads; nothing in between reads its result."""
    for group in group_kernels(an, epilogues=False):
        first = group[0]
        if not all(inlinable(kv.owner.op) for kv in group) or first.ndim != 2:
            continue
        members = {node for kv in group for node in an.members[kv]}
        for g in _gemm_reads(an, group):
            if not (epilogue_gemm(an, g) and same_shape(g, first)):
                continue
            if not all(node in members for node, _ in an.uses.get(g, [])):
                continue
            if not all(reads_only_at_own_index(an, kv, g) for kv in group
                       if g in kernel_reads(an, kv)):
                continue
            at, to = an.kernels.index(g), an.kernels.index(first)
            if at > to:
                continue
            reads = {an.base_root(src) for src in gemm_sources(an, g)}
            # written in place between its place and the group's, or by the group itself
            # (a later block would read what an earlier one wrote)
            if any(an.inplace.get(kv) in reads for kv in an.kernels[at + 1:to] + group):
                continue
            an.kernels.remove(g)
            an.kernels.insert(to - 1, g)
            an.epilogues[g] = tuple(group)
            break  # one gemm per group
    # the order changed: check the pairs still group as planned
    paired = pair_epilogues(an, group_kernels(an, epilogues=False))[1]
    for g in list(an.epilogues):
        if g not in paired:
            del an.epilogues[g]


def _gemm_reads(an: Analysis, group: list[Variable]) -> list[Variable]:
    """Buffered gemm results the group's kernels read (each once)."""
    out: list[Variable] = []
    for kv in group:
        for node in an.members[kv]:
            for _, x in value_uses(node):
                if an.mode.get(x) == "buffer" and x.owner is not None and x not in out \
                        and isinstance(x.owner.op, MatMul):
                    out.append(x)
    return out


register_tunables(__name__, ("EPILOGUE_MIN_WORK", "EPILOGUE_COLUMNS", "EPILOGUE_PANEL_BYTES",
                             "EPILOGUE_LIKELY_K"))
