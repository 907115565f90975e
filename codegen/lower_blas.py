"""Lowerings of matrix products through BLAS, and the SGD update folded into a gemm.

``MatMul`` calls gemm/gemv of the BLAS numpy loaded (:mod:`codegen.native.blas`), reading a 2-d
transposing view as the transpose flag; integer products take a plain loop.  A 2-d float
product with a static column count below a measured crossover runs a generated
register-blocked loop instead (:mod:`codegen.small_gemm`): chosen at compile time for static
sizes, by the actual sizes at run time for a symbolic batch (the BLAS route stays behind the
branch).
``BatchedMatMul`` (stacks of matrices, broadcast batch dims) is one gemm when the right operand
is a single matrix and the left one is contiguous (the stack is one tall matrix), else a loop
over the batch calling one gemm per matrix, or, for small matrices of static sizes (at most
:data:`SMALL_MATMUL_WORK` multiply-adds each), a generated loop nest per matrix; a swap of the
last two axes of an operand is read as the transpose flag.
:func:`lower_folded_sgd` writes ``W - c * (A @ B)`` as one gemm into ``W`` (or the small loop
with that update as its epilogue) when :func:`codegen.fusion.plan_inplace` chose the fold.
A fused bias/activation epilogue for the forward products is not done here: the fusion
analysis keeps a matmul alone in its kernel.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from symgraph.graph import Apply, Variable, dtype_name
from symgraph.ops.linalg import BatchedMatMul, MatMul

from .fusion import ADDRESSABLE, is_transpose2d, strided_matrices
from .irgen import ITEMSIZE, MEM_TYPE, Value, is_float, literal
from .kernel import NO_UNROLL, Kernel, node_error
from .lower_rows import split_items
from .native import blas
from .registry import Lowering, register_lowering, register_tunables
from .small_gemm import dispatch_small, small_gemm

__all__ = ["SGD_TILE", "SMALL_MATMUL_WORK", "blas_int", "lower_batched_matmul",
           "lower_folded_sgd", "lower_matmul", "pointer_operand"]


def pointer_operand(k: Kernel, var: Variable) -> tuple[Variable, bool]:
    """(variable whose buffer holds the data, transposed?) for a BLAS operand."""
    if k.an.mode[var] == "view" and is_transpose2d(var.owner.op):
        return var.owner.inputs[0], True
    if k.an.mode[var] not in ADDRESSABLE:
        raise node_error(var.owner, "internal: BLAS operand not in memory")
    return var, False


def lower_matmul(k: Kernel, node: Apply) -> None:
    a, b = node.inputs
    out = node.outputs[0]
    dt = dtype_name(out.dtype)
    if not is_float(dt) or dtype_name(a.dtype) != dt or dtype_name(b.dtype) != dt:
        return _naive_matmul(k, node)
    k.ctx.uses_blas = k.blas = True
    sa, ta = pointer_operand(k, a)
    sb_, tb = pointer_operand(k, b)
    m = k.dim(a, 0) if a.ndim == 2 else "1"
    n = k.dim(b, 1) if b.ndim == 2 else "1"
    kk = k.dim(a, a.ndim - 1)
    pa, pb, pc = k.ptr(sa), k.ptr(sb_), k.ptr(out)
    # one column (m, k) @ (k, 1) or one row (1, k) @ (k, n): a vector's product, which BLAS
    # does as gemv (gemm and the small loop were 2-4x slower than numpy's gemv there)
    vector = "right" if n == "1" else "left" if m == "1" else None
    if vector and not _gemv_pays(m, n, kk):
        vector = None
    if a.ndim == 2 and b.ndim == 2 and not vector and dispatch_small(
            k, dt, (ta, tb), (m, n, kk),
            lambda: small_gemm(k, dt, (pa, ta), (pb, tb), pc, (m, n, kk))):
        return
    nbytes = k.mul_i64(k.mul_i64(m, n), str(ITEMSIZE[dt]))
    fb = k.fb
    work = fb.op(f"mul i64 {k.mul_i64(m, n)}, {kk}")
    empty = fb.op(f"icmp eq i64 {work}, 0")
    then = fb.if_begin(empty)
    fb.emit(f"call void @llvm.memset.p0.i64(ptr {pc}, i8 0, i64 {nbytes}, i1 0)")
    fb.emit("ret i32 0")
    fb.start_block(fb.label("unreachable"))
    fb.if_end(then)
    if blas.library().int_bits == 32:  # an LP64 OpenBLAS takes 32-bit sizes
        m, n, kk = (d if d.isdigit() else fb.op(f"trunc i64 {d} to i32") for d in (m, n, kk))
    if a.ndim == 2 and b.ndim == 2 and not vector:
        fb.emit(blas.gemm_call(dt, a=pa, b=pb, c=pc, m=m, n=n, k=kk, trans_a=ta, trans_b=tb))
    elif a.ndim == 2 and (b.ndim == 1 or vector == "right"):
        # (m,k)@(k,) or (m,k)@(k,1) -> gemv on A (stored (k,m) when transposed); b's k
        # values are contiguous whether it is a (k,1) column or a transposed (1,k) row
        rows, cols = (kk, m) if ta else (m, kk)
        fb.emit(blas.gemv_call(dt, a=pa, x=pb, y=pc, m=rows, n=cols, trans=ta))
    elif b.ndim == 2:  # (k,)@(k,n) or (1,k)@(k,n) -> y = B^T x
        rows, cols = (n, kk) if tb else (kk, n)
        fb.emit(blas.gemv_call(dt, a=pb, x=pa, y=pc, m=rows, n=cols, trans=not tb))
    else:
        return _naive_matmul(k, node)


#: rows and columns of the stack tile of a runtime-scaled SGD fold's unfolded route
#: (8 KiB in float64: a stack slot, not an arena buffer; that route is rare, not fast)
SGD_TILE = 32


def lower_folded_sgd(k: Kernel, node: Apply) -> None:
    """``W <- W - c * (A @ B)`` written in place as ``gemm(alpha=-c, beta=1, C=W)``: no
    gradient buffer, no update pass (``codegen.fusion.plan_inplace`` chose it).

    A literal ``c`` is finite and non-zero (``codegen.fusion._sgd_fold``).  A runtime ``c``
    (a shared learning rate) is read once, before anything is written; only when it is finite
    and non-zero is it the gemm's alpha.  For 0, NaN or inf, BLAS would not give numpy's
    ``W - c * (A @ B)`` (``alpha = 0`` returns early, so NaN/inf in ``A @ B`` would not
    propagate; inf times per-block partial sums is not inf times the sum), so the kernel
    takes the unfolded route: ``A @ B`` tile by tile into a stack buffer, then
    ``W - c * tile`` per element as the unfolded update kernel computes it.  Below the
    crossover (:func:`codegen.small_gemm.dispatch_small`) the small loop sums the whole
    product in registers and writes ``W - c * sum`` as its epilogue: numpy's result for
    every ``c``."""
    expr = node.outputs[0]
    g, c = k.an.folded[expr]
    a, b = g.owner.inputs
    dt = dtype_name(expr.dtype)
    k.ctx.uses_blas = k.blas = True
    sa, ta = pointer_operand(k, a)
    sb_, tb = pointer_operand(k, b)
    m, n, kk = k.dim(a, 0), k.dim(b, 1), k.dim(a, 1)
    pa, pb, pc = k.ptr(sa), k.ptr(sb_), k.ptr(expr)  # pc is W's own buffer
    fb = k.fb
    scale = k.value_at(c, [])  # read once, before anything is written
    c_first = expr.owner.inputs[1].owner.inputs[0] is c  # keep the graph's operand order
    if dispatch_small(k, dt, (ta, tb), (m, n, kk), lambda: small_gemm(
            k, dt, (pa, ta), (pb, tb), pc, (m, n, kk), scale=(scale, c_first))):
        return
    if k.an.mode[c] == "literal":
        # A @ B is zero (or W empty): W stays as it is
        _return_if(k, fb.op(f"icmp eq i64 {fb.op(f'mul i64 {k.mul_i64(m, n)}, {kk}')}, 0"))
        alpha = -float(np.asarray(c.value, dtype=dt)[()])
        fb.emit(blas.gemm_call(dt, a=pa, b=pb, c=pc, m=blas_int(k, m), n=blas_int(k, n),
                               k=blas_int(k, kk), trans_a=ta, trans_b=tb,
                               alpha=alpha, beta=1.0))
        return
    ty = scale.ty
    _return_if(k, fb.op(f"icmp eq i64 {k.mul_i64(m, n)}, 0"))  # W is empty
    magnitude = fb.op(f"call {ty} @llvm.fabs.{'f32' if dt == 'float32' else 'f64'}"
                      f"({ty} {scale.ref})")
    nonzero = fb.op(f"fcmp ogt {ty} {magnitude}, {literal(0.0, dt)}")
    finite = fb.op(f"fcmp olt {ty} {magnitude}, {literal(float('inf'), dt)}")  # NaN: false
    then = fb.if_begin(fb.op(f"and i1 {nonzero}, {finite}"))
    _return_if(k, fb.op(f"icmp eq i64 {kk}, 0"))  # A @ B is zero: W - c * 0 is W
    alpha = fb.op(f"fneg {ty} {scale.ref}")
    fb.emit(blas.gemm_call(dt, a=pa, b=pb, c=pc, m=blas_int(k, m), n=blas_int(k, n),
                           k=blas_int(k, kk), trans_a=ta, trans_b=tb, alpha=alpha, beta=1.0))
    fb.emit("ret i32 0")
    fb.start_block(fb.label("unreachable"))
    fb.if_end(then)
    _unfolded_sgd_tiles(k, expr, g, scale, (pa, ta), (pb, tb), (m, n, kk))


def _return_if(k: Kernel, cond: str) -> None:
    then = k.fb.if_begin(cond)
    k.fb.emit("ret i32 0")
    k.fb.start_block(k.fb.label("unreachable"))
    k.fb.if_end(then)


def blas_int(k: Kernel, d: str) -> str:
    """A size or leading dimension as BLAS takes it (an LP64 OpenBLAS takes 32 bits)."""
    if blas.library().int_bits == 32 and not d.isdigit():
        return k.fb.op(f"trunc i64 {d} to i32")
    return d


def _unfolded_sgd_tiles(k: Kernel, expr: Variable, g: Variable, scale: Value,
                        a: tuple[str, bool], b: tuple[str, bool], sizes: tuple) -> None:
    """``W <- W - c * (A @ B)`` through one ``SGD_TILE`` square stack tile of ``A @ B`` at a
    time (see :func:`lower_folded_sgd`)."""
    fb, dt, t = k.fb, dtype_name(expr.dtype), SGD_TILE
    (pa, ta), (pb, tb), (m, n, kk) = a, b, sizes
    ty = scale.ty
    tile = fb.entry_op("sgd_tile", f"alloca [{t * t} x {ty}], align 64")
    # k = 0: A @ B is zero and no gemm runs (OpenBLAS need not write C then)
    fb.emit(f"call void @llvm.memset.p0.i64(ptr {tile}, i8 0, i64 {t * t * ITEMSIZE[dt]}, i1 0)")
    any_k = fb.op(f"icmp ne i64 {kk}, 0")

    def tiles(extent: str) -> tuple[str, str, tuple]:
        """Open the loop over tiles of ``extent``: (first index, tile length, loop token)."""
        count = fb.op(f"udiv i64 {fb.op(f'add nuw nsw i64 {extent}, {t - 1}')}, {t}")
        index, token = fb.loop_begin(count)
        first = fb.op(f"mul nuw nsw i64 {index}, {t}")
        rest = fb.op(f"sub nsw i64 {extent}, {first}")
        short = fb.op(f"icmp slt i64 {rest}, {t}")
        return first, fb.op(f"select i1 {short}, i64 {rest}, i64 {t}"), token

    i0, mt, row_tiles = tiles(m)
    j0, nt, col_tiles = tiles(n)
    # op(A) rows i0.. : A is (m, k), or (k, m) stored when transposed; op(B) likewise
    a_at = fb.op(f"getelementptr inbounds {ty}, ptr {pa}, "
                 f"i64 {i0 if ta else fb.op(f'mul nsw i64 {i0}, {kk}')}")
    b_at = fb.op(f"getelementptr inbounds {ty}, ptr {pb}, "
                 f"i64 {fb.op(f'mul nsw i64 {j0}, {kk}') if tb else j0}")
    then = fb.if_begin(any_k)
    fb.emit(blas.gemm_call(dt, a=a_at, b=b_at, c=tile, m=blas_int(k, mt), n=blas_int(k, nt),
                           k=blas_int(k, kk), trans_a=ta, trans_b=tb, alpha=1.0, beta=0.0,
                           lda=blas_int(k, m if ta else kk), ldb=blas_int(k, kk if tb else n),
                           ldc=t))
    fb.if_end(then)
    i, rows = fb.loop_begin(mt)
    j, cols = fb.loop_begin(nt)
    at = [fb.op(f"add nsw i64 {i0}, {i}"), fb.op(f"add nsw i64 {j0}, {j}")]
    cell = fb.op(f"add nsw i64 {fb.op(f'mul nsw i64 {i}, {t}')}, {j}")
    product = Value(fb.op(f"load {ty}, ptr "
                          f"{fb.op(f'getelementptr inbounds {ty}, ptr {tile}, i64 {cell}')}"), dt)
    mul = expr.owner.inputs[1].owner  # c * g or g * c: keep the graph's operand order
    scaled = k.sb.mul(scale, product) if mul.inputs[1] is g else k.sb.mul(product, scale)
    k.store(expr, at, k.sb.sub(k.load(expr, at), scaled))
    fb.loop_end(cols)
    fb.loop_end(rows)
    fb.loop_end(col_tiles)
    fb.loop_end(row_tiles)


def _naive_matmul(k: Kernel, node: Apply) -> None:
    a, b = node.inputs
    out = node.outputs[0]
    dt = dtype_name(out.dtype)
    oidx, outer = k.open_loops(out, range(out.ndim))
    o = [oidx[i] for i in range(out.ndim)]
    zero = k.sb.const(0, dt)
    acc = k.fb.alloca(zero.ty, zero.ref)
    kdim = k.dim(a, a.ndim - 1)
    j, tok = k.fb.loop_begin(kdim)
    ia = [o[0], j] if a.ndim == 2 else [j]
    ib = [j, o[-1]] if b.ndim == 2 else [j]
    va = k.sb.convert(k.value_at(a, ia), dt)
    vb = k.sb.convert(k.value_at(b, ib), dt)
    cur = Value(k.fb.op(f"load {zero.ty}, ptr {acc}"), dt)
    k.fb.emit(f"store {zero.ty} {k.sb.add(cur, k.sb.mul(va, vb)).ref}, ptr {acc}")
    k.fb.loop_end(tok)
    k.store(out, o, Value(k.fb.op(f"load {zero.ty}, ptr {acc}"), dt))
    k.close_loops(outer)


#: static work (m * n * k) from which a one-row or one-column product calls gemv rather
#: than the small loop (whose register tiles are wasted on one column)
GEMV_WORK = 2048


def _gemv_pays(m: str, n: str, kk: str) -> bool:
    if not all(d.isdigit() for d in (m, n, kk)):
        return True  # a run-time size: BLAS's gemv for any size
    return int(m) * int(n) * int(kk) >= GEMV_WORK


# --------------------------------------------------------------------------- stacks of matrices

#: a batched product of static sizes with at most this many multiply-adds per matrix
#: (m * n * k) and at most SMALL_MATMUL_COLUMNS columns runs a generated loop nest per matrix
#: instead of one BLAS call per matrix (see lower_batched_matmul for the measurements)
SMALL_MATMUL_WORK = 32 * 32 * 32
SMALL_MATMUL_COLUMNS = 32


class _Stack(NamedTuple):
    """A stack-of-matrices operand as its kernel reads it from memory."""

    src: Variable  # the variable whose buffer holds the data
    order: tuple[int, ...]  # for each axis of the operand, the axis of ``src`` it reads
    transposed: bool  # each matrix stored transposed (the BLAS flag)
    ld: str  # its leading dimension: elements between the stored rows


def _matrix_operand(k: Kernel, var: Variable) -> _Stack:
    """How a stack (or a matrix) operand is read: its own buffer, or through a view whose
    matrices are strided blocks of its source (:func:`codegen.fusion.strided_matrices`: a
    swap of the last two axes, attention's heads split off a (batch, length, heads, d)
    array), the transpose as a flag and the stride as a leading dimension."""
    if k.an.mode[var] == "view" and strided_matrices(var.owner.op):
        src, order = var.owner.inputs[0], tuple(var.owner.op.order)
    elif k.an.mode[var] in ADDRESSABLE:
        src, order = var, tuple(range(var.ndim))
    else:
        raise node_error(var.owner, "internal: BLAS operand not in memory")
    strides = k.strides(src)
    row, col = order[-2], order[-1]
    if col == src.ndim - 1:  # rows of the matrix contiguous
        return _Stack(src, order, False, strides[row])
    return _Stack(src, order, True, strides[col])  # columns contiguous: stored transposed


def lower_batched_matmul(k: Kernel, node: Apply) -> None:
    """``(..., m, k) @ (..., k, n)`` with broadcast batch dims (see the module docstring).

    Which route is faster depends on the matrix size: a BLAS call has a fixed cost (argument
    checks, dispatch, packing) that a generated loop nest over an 8x8 matrix does not pay.
    Measured on this machine (AVX-512, 2 shared cores; float64, us per product):
    (64, 8, 8) @ (64, 8, 8): loop 2.7, gemm per matrix 6-13, numpy 6-11;
    (16, 16, 16)^2: loop 3.8, gemm 5.4; (8, 32, 32)^2: loop 10-15, gemm 13 (even);
    (8, 64, 64)^2: gemm 84 (numpy 78), the loop 2x slower on a quiet machine.  So static
    sizes with ``m * n * k <= SMALL_MATMUL_WORK`` and ``n <= SMALL_MATMUL_COLUMNS`` take the
    loop; symbolic sizes (unknown at compile time) take a gemm per matrix.  Operands may be
    strided views (:func:`_matrix_operand`): read in place, not copied first."""
    a, b = node.inputs
    out = node.outputs[0]
    dt = dtype_name(out.dtype)
    if not is_float(dt) or dtype_name(a.dtype) != dt or dtype_name(b.dtype) != dt:
        return _naive_batched_matmul(k, node)
    k.ctx.uses_blas = k.blas = True
    sa, sb = _matrix_operand(k, a), _matrix_operand(k, b)
    m, kk, n = k.dim(a, a.ndim - 2), k.dim(a, a.ndim - 1), k.dim(b, b.ndim - 1)
    pa, pb, pc = k.ptr(sa.src), k.ptr(sb.src), k.ptr(out)
    fb = k.fb
    total = k.size(out)
    # nothing to compute (an empty stack or matrix), or k == 0: the result is zeros
    empty = fb.op(f"icmp eq i64 {fb.op(f'mul i64 {total}, {kk}')}, 0")
    then = fb.if_begin(empty)
    fb.emit(f"call void @llvm.memset.p0.i64(ptr {pc}, i8 0, "
            f"i64 {k.mul_i64(total, str(ITEMSIZE[dt]))}, i1 0)")
    fb.emit("ret i32 0")
    fb.start_block(fb.label("unreachable"))
    fb.if_end(then)
    lds = (blas_int(k, sa.ld), blas_int(k, sb.ld))
    if b.ndim == 2 and sa.src is a:  # the stack of A is one tall matrix: one gemm
        rows = k.size(out, range(out.ndim - 1))
        fb.emit(blas.gemm_call(dt, a=pa, b=pb, c=pc, m=blas_int(k, rows), n=blas_int(k, n),
                               k=blas_int(k, kk), trans_b=sb.transposed, ldb=lds[1]))
        return
    sizes = (m, n, kk)
    if _split_batch(k, node, sizes):
        return
    ta, tb = sa.transposed, sb.transposed
    if all(d.isdigit() for d in sizes) and int(n) <= SMALL_MATMUL_COLUMNS and \
            int(m) * int(n) * int(kk) <= SMALL_MATMUL_WORK:
        _each_matrix(k, node, sa, sb, lambda x, y, z: small_gemm(
            k, dt, (x, ta), (y, tb), z, sizes, lds=(sa.ld, sb.ld)))
        return
    bm, bn, bk = (blas_int(k, d) for d in sizes)
    _each_matrix(k, node, sa, sb, lambda x, y, z: fb.emit(blas.gemm_call(
        dt, a=x, b=y, c=z, m=bm, n=bn, k=bk, trans_a=ta, trans_b=tb, lda=lds[0],
        ldb=lds[1])))


def _each_matrix(k: Kernel, node: Apply, a: _Stack, b: _Stack, body) -> None:
    """Loop over the batch index of the output; ``body(pa, pb, pc)`` gets the pointers of
    the matrices of A, B (broadcast: a static-1 batch dim stays at 0) and the output."""
    out = node.outputs[0]
    index, tokens = k.open_loops(out, range(out.ndim - 2))
    body(*_matrix_pointers(k, node, a, b, [index[i] for i in range(out.ndim - 2)]))
    k.close_loops(tokens)


def _matrix_pointers(k: Kernel, node: Apply, a: _Stack, b: _Stack, idx: list[str]
                     ) -> list[str]:
    """Pointers to the matrices of A, B and the output at the output's batch index
    ``idx`` (a static-1 batch dim of an operand broadcasts: index 0)."""
    out = node.outputs[0]
    nb = out.ndim - 2
    ty = MEM_TYPE[dtype_name(out.dtype)]
    pointers = []
    identity = _Stack(out, tuple(range(out.ndim)), False, "")
    for stack, var in ((a, node.inputs[0]), (b, node.inputs[1]), (identity, out)):
        lead = nb - (var.ndim - 2)
        strides = k.strides(stack.src)
        offset = "0"
        for t, d in enumerate(var.shape[:-2]):
            i = "0" if d == 1 else idx[lead + t]
            s = strides[stack.order[t]]
            if i != "0":
                offset = k.add_i64(offset, i if s == "1" else k.fb.op(f"mul nsw i64 {i}, {s}"))
        p = k.ptr(stack.src)
        pointers.append(p if offset == "0" else
                        k.fb.op(f"getelementptr inbounds {ty}, ptr {p}, i64 {offset}"))
    return pointers


#: a stack of products of static sizes is split across the cores by matrices
#: (:func:`_split_batch`) from this many multiply-adds in all, when each has at most
#: SPLIT_MATMUL_WORK; bigger matrices keep one gemm each, which OpenBLAS threads itself.
#: bench/batched_matmul.py (2-core AVX-512 host, float32, one run; split / serial, and split
#: / torch.bmm on 2 threads, for attention's three layouts QK^T, PV, P^T dO): (128, 128, 16)
#: stacks 0.28 / 0.51 / 0.52, against torch 0.86 / 1.16 / 1.09; (128, 128, 32) 0.26-0.50
#: (OpenBLAS threads each of those gemms: 2.05 ms against 0.53 for QK^T), torch 1.04-1.15;
#: (64, 128, 64) 0.38-0.54; (32, 256, 32) 0.37-0.63; (16, 256, 64) 0.68-0.88 (QK^T 1.72x
#: torch's); (256, 32, 16) (serial small loops before) 0.47-0.50, torch 0.90-1.19.  An
#: earlier sweep: 512x512x64 matrices 0.72-1.78 (QK^T's 16M multiply-adds: our tiles lose to
#: OpenBLAS's threads), hence SPLIT_MATMUL_WORK.
SPLIT_MATMUL_MINIMUM = 1 << 18
SPLIT_MATMUL_WORK = 1 << 22
#: and at most this many columns: the generated loop's code grows with them (a k-loop per
#: two vectors of columns)
SPLIT_MATMUL_COLUMNS = 512


def _split_batch(k: Kernel, node: Apply, sizes: tuple[str, str, str]) -> bool:
    """The loop over the matrices of a stack split across the cores
    (:func:`codegen.lower_rows.split_items`: ``codegen.native.parallel``'s runtime on
    OpenBLAS's own threads), each matrix a :func:`small_gemm` loop; False (nothing emitted)
    when it does not apply.

    Why: the products of attention, (batch x heads) matrices of (T, d) @ (d, T) and
    (T, T) @ (T, d), are each below OpenBLAS's threading threshold (m*n*k <= 4 * 65536), so
    a loop of gemms ran on one core while the other spun.  A worker of OpenBLAS cannot call
    its gemm (it may thread, and wait on itself), hence the generated loop per matrix.
    Each matrix is computed by the same code whatever the split: the same bits."""
    out = node.outputs[0]
    batch = out.shape[:-2]
    if not all(d.isdigit() for d in sizes) or not batch:
        return False
    m, n, kk = (int(d) for d in sizes)
    static = all(isinstance(d, int) for d in batch)
    if m * n * kk > SPLIT_MATMUL_WORK or n > SPLIT_MATMUL_COLUMNS or \
            (static and math.prod(batch) < 2):
        return False
    dt = dtype_name(out.dtype)

    def matrix(r: Kernel, at: list[str]) -> tuple[str, ...]:
        a, b = (_matrix_operand(r, x) for x in node.inputs)  # (strides: values of r's own)
        x, y, z = _matrix_pointers(r, node, a, b, at)
        small_gemm(r, dt, (x, a.transposed), (y, b.transposed), z, sizes, wide=True,
                   lds=(a.ld, b.ld))
        return (NO_UNROLL,)

    # SPLIT_MATMUL_MINIMUM multiply-adds: that many over k elements of the output
    minimum = None if k.ctx.split_minimum is None else -(-SPLIT_MATMUL_MINIMUM // kk)
    return split_items(k, out, lambda r: [r.dim(out, a) for a in range(len(batch))], matrix,
                       minimum)


def _naive_batched_matmul(k: Kernel, node: Apply) -> None:
    """Integer or mixed-dtype stacks: one accumulation per output element."""
    a, b = node.inputs
    out = node.outputs[0]
    dt = dtype_name(out.dtype)
    oidx, outer = k.open_loops(out, range(out.ndim))
    o = [oidx[i] for i in range(out.ndim)]

    def batch(var: Variable) -> list[str]:
        lead = out.ndim - var.ndim
        return ["0" if d == 1 else o[lead + t] for t, d in enumerate(var.shape[:-2])]

    zero = k.sb.const(0, dt)
    acc = k.fb.alloca(zero.ty, zero.ref)
    j, tok = k.fb.loop_begin(k.dim(a, a.ndim - 1))
    va = k.sb.convert(k.value_at(a, batch(a) + [o[-2], j]), dt)
    vb = k.sb.convert(k.value_at(b, batch(b) + [j, o[-1]]), dt)
    cur = Value(k.fb.op(f"load {zero.ty}, ptr {acc}"), dt)
    k.fb.emit(f"store {zero.ty} {k.sb.add(cur, k.sb.mul(va, vb)).ref}, ptr {acc}")
    k.fb.loop_end(tok)
    k.store(out, o, Value(k.fb.op(f"load {zero.ty}, ptr {acc}"), dt))
    k.close_loops(outer)


# operands may be transposed views (the BLAS flag); a matmul reads no inline values
register_lowering(MatMul, Lowering(kernel=lower_matmul, transposed_operands=True))
register_lowering(BatchedMatMul, Lowering(kernel=lower_batched_matmul, transposed_operands=True,
                                          strided_operands=True))


register_tunables(__name__, ("SGD_TILE", "GEMV_WORK", "SMALL_MATMUL_WORK", "SMALL_MATMUL_COLUMNS",
                             "SPLIT_MATMUL_MINIMUM", "SPLIT_MATMUL_WORK", "SPLIT_MATMUL_COLUMNS"))
