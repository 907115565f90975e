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
from .lower_blas import blas_int, pointer_operand
from .lower_elementwise import nest_groups
from .lower_rows import open_part, range_loop, split_range
from .native import blas
from .registry import register_tunables
from .small_gemm import small_gemm

__all__ = ["BLOCK_ROWS", "PANEL_COLUMNS", "SPLIT_WORK", "lower_gemm_epilogue"]

#: rows of the product per block: 16 rows of 512 float32 columns are 32 KB, in L1 when the
#: group reads them
BLOCK_ROWS = 16
#: columns per call of ``small_gemm`` in a block: a loop over panels of this many columns,
#: not one unrolled tile per 32 columns, keeps a 512-column product's code small (W1 SGD with
#: its fold on these blocks, an experiment not kept: cold compile 500-740 ms with the whole
#: row in one call, 215-265 in panels of 32, 175-210 on BLAS).  64 (two float32 tiles) over
#: 32: W1 Adam's step / gemm floor lower in 6 of 7 alternating pairs of processes (1.034 /
#: 1.101, 1.086 / 1.190, 1.089 / 1.148 ...; 1.128 / 1.110 the exception), its cold compile
#: unchanged within noise (150 more lines of optimised IR); 16: 1.48-1.52
PANEL_COLUMNS = 64
#: the blocks are shared out between the cores from this many multiply-adds
SPLIT_WORK = 1 << 18


def lower_gemm_epilogue(k: Kernel, group: list[Variable]) -> None:
    """``group[0] = A @ B`` (a 2-d MatMul with a static ``(m, n)`` result) and the elementwise
    kernels ``group[1:]`` (of its shape), one block of :data:`BLOCK_ROWS` rows after another
    (split across the cores from :data:`SPLIT_WORK` multiply-adds): ``small_gemm`` of the
    block, panel by panel of :data:`PANEL_COLUMNS` columns, then the group over its rows.

    A ``k`` known only at run time (a batch: a weight gradient ``X.T @ dY``) is checked
    there: a right operand over ``epilogue_plan.EPILOGUE_PANEL_BYTES`` (it would be read
    from L3 for every block) is multiplied by one BLAS call first, and the blocks run the
    group only."""
    g, rest = group[0], group[1:]
    k.run_prechecks([node for var in group for node in k.an.members.get(var, [var.owner])])
    first = rest[0]
    groups = nest_groups(k, rest, range(first.ndim))
    if not groups or 0 not in groups[0]:  # (epilogue_gemm: m, n >= 2)
        raise node_error(g.owner, "internal: a gemm epilogue over a nest without rows")
    a, b = g.owner.inputs
    m, n = g.shape
    per_row = n if 1 in groups[0] else 1  # the nest's first loop: rows (and columns)
    dt = dtype_name(g.dtype)
    ty, size = MEM_TYPE[dt], ITEMSIZE[dt]
    static_k = isinstance(a.shape[1], int)

    def fits(r: Kernel) -> str:
        """i1: the right operand is small enough for the blocks to multiply."""
        panel = r.fb.op(f"mul nuw nsw i64 {r.dim(a, 1)}, {n * size}")
        return r.fb.op(f"icmp ule i64 {panel}, {EPILOGUE_PANEL_BYTES}")

    def product(r: Kernel, i0: str, rows: str) -> None:
        """Rows ``i0 .. i0 + rows`` of ``A @ B`` into ``g``'s buffer."""
        fb = r.fb
        (sa, ta), (sb, tb) = pointer_operand(r, a), pointer_operand(r, b)
        kk = r.dim(a, 1)
        a_at = i0 if ta else fb.op(f"mul nuw nsw i64 {i0}, {kk}")  # A: (k, m) or (m, k)
        xa = fb.op(f"getelementptr inbounds {ty}, ptr {r.ptr(sa)}, i64 {a_at}")
        xc = fb.op(f"getelementptr inbounds {ty}, ptr {r.ptr(g)}, i64 "
                   f"{fb.op(f'mul nuw nsw i64 {i0}, {n}')}")
        lds = (str(m) if ta else kk, kk if tb else str(n))

        def panel(j0: str, width: int) -> None:  # columns j0 .. j0 + width
            b_at = fb.op(f"mul nuw nsw i64 {j0}, {kk}") if tb else j0  # B: (n, k) or (k, n)
            small_gemm(r, dt, (xa, ta),
                       (fb.op(f"getelementptr inbounds {ty}, ptr {r.ptr(sb)}, i64 {b_at}"), tb),
                       fb.op(f"getelementptr inbounds {ty}, ptr {xc}, i64 {j0}"),
                       (rows, str(width), kk), wide=True, lds=lds, ldc=str(n))

        full, tail = divmod(n, PANEL_COLUMNS)
        if full:
            j, columns = fb.loop_begin(str(full))
            panel(fb.op(f"mul nuw nsw i64 {j}, {PANEL_COLUMNS}"), PANEL_COLUMNS)
            fb.loop_end(columns, (NO_UNROLL,))
        if tail:
            panel(str(full * PANEL_COLUMNS), tail)

    def update(r: Kernel, i0: str, end: str) -> None:
        """The group over rows ``i0 .. end``."""
        start, stop = ((i0, end) if per_row == 1 else
                       (r.fb.op(f"mul nuw nsw i64 {i0}, {per_row}"),
                        r.fb.op(f"mul nuw nsw i64 {end}, {per_row}")))
        idx_map, tokens = open_part(r, first, groups, groups[0], start, stop, hoist=False)
        idx = [idx_map[ax] for ax in range(first.ndim)]
        for var in rest:
            r.store(var, idx, r.inline_value(var.owner, idx))
        r.close_loops(tokens, *r.rolled(first, groups))

    def blocks(r: Kernel, lo: str, hi: str) -> None:
        fb = r.fb
        small = None if static_k else fits(r)
        block, token = range_loop(r, lo, hi)
        i0 = fb.op(f"mul nuw nsw i64 {block}, {BLOCK_ROWS}")
        left = fb.op(f"sub nuw nsw i64 {m}, {i0}")
        rows = fb.op(f"select i1 {fb.op(f'icmp ult i64 {left}, {BLOCK_ROWS}')}, "
                     f"i64 {left}, i64 {BLOCK_ROWS}")
        skip = None if small is None else fb.if_begin(small)
        product(r, i0, rows)
        if skip is not None:
            fb.if_end(skip)
        update(r, i0, fb.op(f"add nuw nsw i64 {i0}, {rows}"))
        fb.loop_end(token, (NO_UNROLL,))

    if not static_k:  # a right operand over the bound: one BLAS call into g's buffer
        done = k.fb.if_begin(k.fb.op(f"xor i1 {fits(k)}, true"))
        (sa, ta), (sb, tb) = pointer_operand(k, a), pointer_operand(k, b)
        k.ctx.uses_blas = k.blas = True
        k.fb.emit(blas.gemm_call(dt, a=k.ptr(sa), b=k.ptr(sb), c=k.ptr(g), m=m, n=n,
                                 k=blas_int(k, k.dim(a, 1)), trans_a=ta, trans_b=tb))
        k.fb.if_end(done)
    count = str(-(-m // BLOCK_ROWS))
    minimum = None if k.ctx.split_minimum is None else \
        -(-SPLIT_WORK // a.shape[1]) if static_k else 1
    if not split_range(k, g, lambda _: count, blocks, minimum):
        blocks(k, "0", count)


register_tunables(__name__, ("BLOCK_ROWS", "PANEL_COLUMNS", "SPLIT_WORK"))
