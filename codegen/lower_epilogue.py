"""A gemm and the elementwise kernels that read its result, block by block of rows.

Why: Adam's update reads the weight gradient once, at the index it writes, after every gemm
of the step.  Through BLAS the gradient goes to memory whole and comes back: W1's 784x512
float32 gradient is 1.6 MB, more than a core's L2.  Here the product is the generated loop
(:func:`codegen.small_gemm.small_gemm`, 512-bit tiles on AVX-512) over blocks of
:data:`BLOCK_ROWS` rows, and right after each block the group's loop runs over those rows
while they are in L1.  The blocks are shared out between the cores (OpenBLAS's threads,
:func:`codegen.lower_rows.split_range`); each is computed by the same code whatever the
split, so a split step gives the serial step's bits.

:func:`codegen.epilogue_plan.plan_epilogues` chooses the pairs (the gemm's only readers are the
group's members, at the index they write; sizes in :func:`codegen.epilogue_plan.epilogue_gemm`'s
bounds, where the loop keeps up with OpenBLAS: 784x512x128 float32 on 2 cores 0.89-0.93x
numpy's matmul time, 512x256x128 0.93x) and moves the gemm to just before the group.
"""

from __future__ import annotations

from symgraph.graph import Variable, dtype_name

from .epilogue_plan import EPILOGUE_PANEL_BYTES
from .irgen import ITEMSIZE, MEM_TYPE
from .kernel import NO_UNROLL, Kernel, node_error
from .lower_blas import pointer_operand
from .lower_elementwise import nest_groups
from .lower_rows import open_part, range_loop, split_range
from .native import blas
from .registry import register_tunables
from .small_gemm import small_gemm

__all__ = ["BLOCK_ROWS", "SPLIT_WORK", "lower_gemm_epilogue"]

#: rows of the product per block: 16 rows of 512 float32 columns are 32 KB, in L1 when the
#: group reads them
BLOCK_ROWS = 16
#: the blocks are shared out between the cores from this many multiply-adds
SPLIT_WORK = 1 << 18


def lower_gemm_epilogue(k: Kernel, group: list[Variable]) -> None:
    """``group[0] = A @ B`` (a 2-d MatMul with a static ``(m, n)`` result) and the elementwise
    kernels ``group[1:]`` (of its shape), one block of rows after another.

    A ``k`` known only at run time (a batch: a weight gradient ``X.T @ dY``) is checked
    there: a right operand over ``epilogue_plan.EPILOGUE_PANEL_BYTES`` (it would be read from L3
    for every block) is multiplied by one BLAS call first, and the blocks run the group
    only."""
    g, rest = group[0], group[1:]
    k.run_prechecks([node for var in group for node in k.an.members.get(var, [var.owner])])
    a, b = g.owner.inputs
    m, n = g.shape
    first = rest[0]
    groups = nest_groups(k, rest, range(first.ndim))
    if not groups or 0 not in groups[0]:  # (epilogue_gemm: m, n >= 2)
        raise node_error(g.owner, "internal: a gemm epilogue over a nest without rows")
    dt = dtype_name(g.dtype)
    ty, size = MEM_TYPE[dt], ITEMSIZE[dt]
    per_row = n if 1 in groups[0] else 1  # the nest's first loop: rows, or rows and columns
    count = -(-m // BLOCK_ROWS)
    static_k = isinstance(a.shape[1], int)

    def fits(r: Kernel) -> str:
        """i1: the right operand is small enough for the blocks to multiply."""
        panel = r.fb.op(f"mul nuw nsw i64 {r.dim(a, 1)}, {n * size}")
        return r.fb.op(f"icmp ule i64 {panel}, {EPILOGUE_PANEL_BYTES}")

    def blocks(r: Kernel, lo: str, hi: str) -> None:
        fb = r.fb
        (sa, ta), (sb, tb) = pointer_operand(r, a), pointer_operand(r, b)
        pa, pb, pc, kk = r.ptr(sa), r.ptr(sb), r.ptr(g), r.dim(a, 1)
        small = None if static_k else fits(r)
        block, token = range_loop(r, lo, hi)
        i0 = fb.op(f"mul nuw nsw i64 {block}, {BLOCK_ROWS}")
        left = fb.op(f"sub nuw nsw i64 {m}, {i0}")
        rows = fb.op(f"select i1 {fb.op(f'icmp ult i64 {left}, {BLOCK_ROWS}')}, "
                     f"i64 {left}, i64 {BLOCK_ROWS}")
        skip = None if small is None else fb.if_begin(small)
        a_at = i0 if ta else fb.op(f"mul nuw nsw i64 {i0}, {kk}")  # A stored (k, m) or (m, k)
        xa = fb.op(f"getelementptr inbounds {ty}, ptr {pa}, i64 {a_at}")
        xc = fb.op(f"getelementptr inbounds {ty}, ptr {pc}, i64 "
                   f"{fb.op(f'mul nuw nsw i64 {i0}, {n}')}")
        small_gemm(r, dt, (xa, ta), (pb, tb), xc, (rows, str(n), kk), wide=True,
                   lds=(str(m) if ta else kk, kk if tb else str(n)))
        if skip is not None:
            fb.if_end(skip)
        end = fb.op(f"add nuw nsw i64 {i0}, {rows}")
        start, stop = ((i0, end) if per_row == 1 else
                       (fb.op(f"mul nuw nsw i64 {i0}, {per_row}"),
                        fb.op(f"mul nuw nsw i64 {end}, {per_row}")))
        idx_map, tokens = open_part(r, first, groups, groups[0], start, stop, hoist=False)
        idx = [idx_map[ax] for ax in range(first.ndim)]
        for var in rest:
            r.store(var, idx, r.inline_value(var.owner, idx))
        r.close_loops(tokens, *r.rolled(first, groups))
        fb.loop_end(token, (NO_UNROLL,))

    if not static_k:  # a big right operand: one BLAS call, the blocks run the group only
        k.ctx.uses_blas = k.blas = True
        fb = k.fb
        done = fb.if_begin(fb.op(f"xor i1 {fits(k)}, true"))
        (sa, ta), (sb, tb) = pointer_operand(k, a), pointer_operand(k, b)
        kk = k.dim(a, 1)
        if blas.library().int_bits == 32:  # an LP64 OpenBLAS takes 32-bit sizes
            kk = fb.op(f"trunc i64 {kk} to i32")
        fb.emit(blas.gemm_call(dt, a=k.ptr(sa), b=k.ptr(sb), c=k.ptr(g), m=m, n=n, k=kk,
                               trans_a=ta, trans_b=tb))
        fb.if_end(done)
    kk = a.shape[1]
    minimum = None if k.ctx.split_minimum is None else \
        -(-SPLIT_WORK // kk) if static_k else 1
    if not split_range(k, g, lambda _: str(count), blocks, minimum):
        blocks(k, "0", str(count))


register_tunables(__name__, ("BLOCK_ROWS", "SPLIT_WORK"))
