"""Lowerings of the non-elementwise ops: one function per op class, in :data:`LOWERINGS`.

Each rule gets a :class:`codegen.lower.Kernel` (the function being built) and the graph node,
and emits loops through ``Kernel.open_loops``/``value_at``/``store`` (so inputs may be
buffers, transposing views or inlined cheap ops) or BLAS calls.  Reductions keep their
accumulator in a register when the innermost axis is reduced and accumulate in input order
otherwise (bias gradients), so both vectorise; max/min/softmax propagate NaN like numpy.
Adding an op means adding one function here and one table row.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from symgraph.graph import Apply, Variable
from symgraph.ops.indexing import (
    AdvancedIncSubtensor,
    AdvancedSubtensor,
    Subtensor,
    SubtensorGrad,
)
from symgraph.ops.linalg import MatMul
from symgraph.ops.nn import LogSoftmax, LogSumExp, Softmax
from symgraph.ops.reduce import Argmax, Reduce
from symgraph.ops.structure import (
    Concatenate,
    ConcatenateGrad,
    Reshape,
    ReshapeLike,
    Stack,
)

from . import blas
from .fusion import ADDRESSABLE, is_transpose2d
from .irgen import ITEMSIZE, MEM_TYPE, Value, is_float, literal
from .lower import Kernel, SlotFn, node_error


def _identity(kind: str, dtype: str):
    if kind in ("sum", "mean"):
        return 0
    if dtype == "bool":
        return kind == "min"
    if is_float(dtype):
        return -np.inf if kind == "max" else np.inf
    info = np.iinfo(dtype)
    return info.min if kind == "max" else info.max


def _combine(k: Kernel, kind: str, acc: Value, v: Value) -> Value:
    if kind in ("sum", "mean"):
        return k.sb.add(acc, v)
    if acc.dtype == "bool":
        return k.sb.or_(acc, v) if kind == "max" else k.sb.and_(acc, v)
    return k.sb.maximum(acc, v) if kind == "max" else k.sb.minimum(acc, v)


def _reduced_index(node_axes, keepdims: bool, ndim: int, idx: dict[int, str]) -> list[str]:
    if keepdims:
        return ["0" if a in node_axes else idx[a] for a in range(ndim)]
    return [idx[a] for a in range(ndim) if a not in node_axes]


def lower_reduce(k: Kernel, node: Apply) -> None:
    op_, x, out = node.op, node.inputs[0], node.outputs[0]
    kind, axes, dt = op_.kind, op_.axes, out.dtype.name
    kept = [a for a in range(x.ndim) if a not in axes]
    ident = k.sb.const(_identity(kind, dt), dt)
    if x.ndim == 0 or (x.ndim - 1) in axes:
        # kept axes outside, reduced axes inside: the accumulator stays in a register
        idx, outer = k.open_loops(x, kept)
        acc = k.fb.alloca(ident.ty, ident.ref)
        idx_in, inner = k.open_loops(x, axes)
        idx.update(idx_in)
        v = k.sb.convert(k.value_at(x, [idx[a] for a in range(x.ndim)]), dt)
        cur = Value(k.fb.op(f"load {ident.ty}, ptr {acc}"), dt)
        k.fb.emit(f"store {ident.ty} {_combine(k, kind, cur, v).ref}, ptr {acc}")
        k.close_loops(inner)
        total = Value(k.fb.op(f"load {ident.ty}, ptr {acc}"), dt)
        if kind == "mean":
            total = k.sb.div(total, k.sb.convert(Value(k.size(x, axes), "int64"), dt))
        k.store(out, _reduced_index(axes, op_.keepdims, x.ndim, idx), total)
        k.close_loops(outer)
        return
    # a leading axis is reduced (bias gradients): initialise, then accumulate in input order
    # so the innermost (kept) axis is contiguous and vectorises
    oidx, toks = k.open_loops(out, range(out.ndim))
    k.store(out, [oidx[a] for a in range(out.ndim)], ident)
    k.close_loops(toks)
    idx, toks = k.open_loops(x, range(x.ndim))
    oi = _reduced_index(axes, op_.keepdims, x.ndim, idx)
    v = k.sb.convert(k.value_at(x, [idx[a] for a in range(x.ndim)]), dt)
    addr = k.address(out, oi)
    cur = Value(k.fb.op(f"load {MEM_TYPE[dt]}, ptr {addr}"), dt)
    if dt == "bool":
        cur = Value(k.fb.op(f"trunc i8 {cur.ref} to i1"), dt)
    new = _combine(k, kind, cur, v)
    ref = new.ref if dt != "bool" else k.fb.op(f"zext i1 {new.ref} to i8")
    k.fb.emit(f"store {MEM_TYPE[dt]} {ref}, ptr {addr}")
    k.close_loops(toks)
    if kind == "mean":
        n = k.sb.convert(Value(k.size(x, axes), "int64"), dt)
        oidx, toks = k.open_loops(out, range(out.ndim))
        o = [oidx[a] for a in range(out.ndim)]
        k.store(out, o, k.sb.div(k.load(out, o), n))
        k.close_loops(toks)


def lower_argmax(k: Kernel, node: Apply) -> None:
    op_, x, out = node.op, node.inputs[0], node.outputs[0]
    axes = tuple(range(x.ndim)) if op_.axis is None else (op_.axis,)
    kept = [a for a in range(x.ndim) if a not in axes]
    dt = x.dtype.name
    cmp_dt = "int8" if dt == "bool" else dt
    ident = k.sb.const(_identity("max", cmp_dt), cmp_dt)
    idx, outer = k.open_loops(x, kept)
    best = k.fb.alloca(ident.ty, ident.ref)
    bidx = k.fb.alloca("i64", "0")
    count = k.fb.alloca("i64", "0")
    idx_in, inner = k.open_loops(x, axes)
    idx.update(idx_in)
    v = k.sb.convert(k.value_at(x, [idx[a] for a in range(x.ndim)]), cmp_dt)
    b = Value(k.fb.op(f"load {ident.ty}, ptr {best}"), cmp_dt)
    better = k.sb.gt(v, b)
    if is_float(dt):
        better = k.sb.or_(better, k.sb.and_(k.sb.isnan(v), k.sb.not_(k.sb.isnan(b))))
    n = k.fb.op(f"load i64, ptr {count}")
    k.fb.emit(f"store {ident.ty} {k.sb.select(better, v, b).ref}, ptr {best}")
    old = k.fb.op(f"load i64, ptr {bidx}")
    chosen = k.fb.op(f"select i1 {better.ref}, i64 {n}, i64 {old}")
    k.fb.emit(f"store i64 {chosen}, ptr {bidx}")
    n1 = k.fb.op(f"add i64 {n}, 1")
    k.fb.emit(f"store i64 {n1}, ptr {count}")
    k.close_loops(inner)
    result = Value(k.fb.op(f"load i64, ptr {bidx}"), "int64")
    if op_.axis is None:
        oi = ["0"] * out.ndim
    else:
        oi = _reduced_index(axes, op_.keepdims, x.ndim, idx)
    k.store(out, oi, result)
    k.close_loops(outer)


def _max_pass(k: Kernel, x: Variable, axes, idx: dict) -> Value:
    dt = x.dtype.name
    ident = k.sb.const(-np.inf, dt)
    acc = k.fb.alloca(ident.ty, ident.ref)
    idx_in, inner = k.open_loops(x, axes)
    idx.update(idx_in)
    v = k.value_at(x, [idx[a] for a in range(x.ndim)])
    cur = Value(k.fb.op(f"load {ident.ty}, ptr {acc}"), dt)
    k.fb.emit(f"store {ident.ty} {k.sb.maximum(cur, v).ref}, ptr {acc}")
    k.close_loops(inner)
    return Value(k.fb.op(f"load {ident.ty}, ptr {acc}"), dt)


def _sum_exp_pass(k: Kernel, x: Variable, axes, idx: dict, m: Value) -> Value:
    dt = x.dtype.name
    acc = k.fb.alloca(m.ty, literal(0, dt))
    idx_in, inner = k.open_loops(x, axes)
    idx.update(idx_in)
    v = k.value_at(x, [idx[a] for a in range(x.ndim)])
    e = k.sb.exp(k.sb.sub(v, m))
    cur = Value(k.fb.op(f"load {m.ty}, ptr {acc}"), dt)
    k.fb.emit(f"store {m.ty} {k.sb.add(cur, e).ref}, ptr {acc}")
    k.close_loops(inner)
    return Value(k.fb.op(f"load {m.ty}, ptr {acc}"), dt)


def _finite_or_zero(k: Kernel, m: Value) -> Value:
    finite = Value(k.fb.op(f"fcmp olt {m.ty} {k.sb.abs(m).ref}, "
                           f"{literal(np.inf, m.dtype)}"), "bool")
    return k.sb.select(finite, m, k.sb.zero(m))


def lower_softmax(k: Kernel, node: Apply) -> None:
    x, out, axis = node.inputs[0], node.outputs[0], node.op.axis
    kept = [a for a in range(x.ndim) if a != axis]
    idx, outer = k.open_loops(x, kept)
    m = _max_pass(k, x, (axis,), idx)
    log = isinstance(node.op, LogSoftmax)
    if log:
        m = _finite_or_zero(k, m)
    s = _sum_exp_pass(k, x, (axis,), idx, m)
    lse = k.sb.add(m, k.sb.log(s)) if log else None
    idx_in, inner = k.open_loops(x, (axis,))
    idx.update(idx_in)
    full = [idx[a] for a in range(x.ndim)]
    v = k.value_at(x, full)
    if log:
        k.store(out, full, k.sb.sub(v, lse))
    else:
        k.store(out, full, k.sb.div(k.sb.exp(k.sb.sub(v, m)), s))
    k.close_loops(inner)
    k.close_loops(outer)


def lower_logsumexp(k: Kernel, node: Apply) -> None:
    op_, x, out = node.op, node.inputs[0], node.outputs[0]
    kept = [a for a in range(x.ndim) if a not in op_.axes]
    idx, outer = k.open_loops(x, kept)
    m = _finite_or_zero(k, _max_pass(k, x, op_.axes, idx))
    s = _sum_exp_pass(k, x, op_.axes, idx, m)
    k.store(out, _reduced_index(op_.axes, op_.keepdims, x.ndim, idx),
            k.sb.add(m, k.sb.log(s)))
    k.close_loops(outer)


def _pointer_operand(k: Kernel, var: Variable) -> tuple[Variable, bool]:
    """(variable whose buffer holds the data, transposed?) for a BLAS operand."""
    if k.an.mode[var] == "view" and is_transpose2d(var.owner.op):
        return var.owner.inputs[0], True
    if k.an.mode[var] not in ADDRESSABLE:
        raise node_error(var.owner, "internal: BLAS operand not in memory")
    return var, False


def lower_matmul(k: Kernel, node: Apply) -> None:
    a, b = node.inputs
    out = node.outputs[0]
    dt = out.dtype.name
    if not is_float(dt) or a.dtype.name != dt or b.dtype.name != dt:
        return _naive_matmul(k, node)
    k.ctx.uses_blas = k.blas = True
    sa, ta = _pointer_operand(k, a)
    sb_, tb = _pointer_operand(k, b)
    m = k.dim(a, 0) if a.ndim == 2 else "1"
    n = k.dim(b, 1) if b.ndim == 2 else "1"
    kk = k.dim(a, a.ndim - 1)
    pa, pb, pc = k.ptr(sa), k.ptr(sb_), k.ptr(out)
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
    if a.ndim == 2 and b.ndim == 2:
        fb.emit(blas.gemm_call(dt, a=pa, b=pb, c=pc, m=m, n=n, k=kk, trans_a=ta, trans_b=tb))
    elif a.ndim == 2:  # (m,k)@(k,) -> gemv on A (stored (k,m) when transposed)
        rows, cols = (kk, m) if ta else (m, kk)
        fb.emit(blas.gemv_call(dt, a=pa, x=pb, y=pc, m=rows, n=cols, trans=ta))
    elif b.ndim == 2:  # (k,)@(k,n) -> y = B^T x
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
    ``W - c * tile`` per element as the unfolded update kernel computes it."""
    expr = node.outputs[0]
    g, c = k.an.folded[expr]
    a, b = g.owner.inputs
    dt = expr.dtype.name
    k.ctx.uses_blas = k.blas = True
    sa, ta = _pointer_operand(k, a)
    sb_, tb = _pointer_operand(k, b)
    m, n, kk = k.dim(a, 0), k.dim(b, 1), k.dim(a, 1)
    pa, pb, pc = k.ptr(sa), k.ptr(sb_), k.ptr(expr)  # pc is W's own buffer
    fb = k.fb
    if k.an.mode[c] == "literal":
        # A @ B is zero (or W empty): W stays as it is
        _return_if(k, fb.op(f"icmp eq i64 {fb.op(f'mul i64 {k.mul_i64(m, n)}, {kk}')}, 0"))
        alpha = -float(np.asarray(c.value, dtype=dt)[()])
        fb.emit(blas.gemm_call(dt, a=pa, b=pb, c=pc, m=_blas_int(k, m), n=_blas_int(k, n),
                               k=_blas_int(k, kk), trans_a=ta, trans_b=tb,
                               alpha=alpha, beta=1.0))
        return
    scale = k.value_at(c, [])
    ty = scale.ty
    _return_if(k, fb.op(f"icmp eq i64 {k.mul_i64(m, n)}, 0"))  # W is empty
    magnitude = fb.op(f"call {ty} @llvm.fabs.{'f32' if dt == 'float32' else 'f64'}"
                      f"({ty} {scale.ref})")
    nonzero = fb.op(f"fcmp ogt {ty} {magnitude}, {literal(0.0, dt)}")
    finite = fb.op(f"fcmp olt {ty} {magnitude}, {literal(float('inf'), dt)}")  # NaN: false
    then = fb.if_begin(fb.op(f"and i1 {nonzero}, {finite}"))
    _return_if(k, fb.op(f"icmp eq i64 {kk}, 0"))  # A @ B is zero: W - c * 0 is W
    alpha = fb.op(f"fneg {ty} {scale.ref}")
    fb.emit(blas.gemm_call(dt, a=pa, b=pb, c=pc, m=_blas_int(k, m), n=_blas_int(k, n),
                           k=_blas_int(k, kk), trans_a=ta, trans_b=tb, alpha=alpha, beta=1.0))
    fb.emit("ret i32 0")
    fb.start_block(fb.label("unreachable"))
    fb.if_end(then)
    _unfolded_sgd_tiles(k, expr, g, scale, (pa, ta), (pb, tb), (m, n, kk))


def _return_if(k: Kernel, cond: str) -> None:
    then = k.fb.if_begin(cond)
    k.fb.emit("ret i32 0")
    k.fb.start_block(k.fb.label("unreachable"))
    k.fb.if_end(then)


def _blas_int(k: Kernel, d: str) -> str:
    """A size or leading dimension as BLAS takes it (an LP64 OpenBLAS takes 32 bits)."""
    if blas.library().int_bits == 32 and not d.isdigit():
        return k.fb.op(f"trunc i64 {d} to i32")
    return d


def _unfolded_sgd_tiles(k: Kernel, expr: Variable, g: Variable, scale: Value,
                        a: tuple[str, bool], b: tuple[str, bool], sizes: tuple) -> None:
    """``W <- W - c * (A @ B)`` through one ``SGD_TILE`` square stack tile of ``A @ B`` at a
    time (see :func:`lower_folded_sgd`)."""
    fb, dt, t = k.fb, expr.dtype.name, SGD_TILE
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
    fb.emit(blas.gemm_call(dt, a=a_at, b=b_at, c=tile, m=_blas_int(k, mt), n=_blas_int(k, nt),
                           k=_blas_int(k, kk), trans_a=ta, trans_b=tb, alpha=1.0, beta=0.0,
                           lda=_blas_int(k, m if ta else kk), ldb=_blas_int(k, kk if tb else n),
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
    dt = out.dtype.name
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


def lower_concatenate(k: Kernel, node: Apply) -> None:
    out, axis = node.outputs[0], node.op.axis
    start = "0"
    for x in node.inputs:
        idx, toks = k.open_loops(x, range(x.ndim))
        xi = [idx[a] for a in range(x.ndim)]
        oi = list(xi)
        oi[axis] = k.add_i64(xi[axis], start)
        k.store(out, oi, k.value_at(x, xi))
        k.close_loops(toks)
        d = k.dim(x, axis)
        start = d if start == "0" else k.fb.op(f"add nsw i64 {start}, {d}")


def lower_concatenate_grad(k: Kernel, node: Apply) -> None:
    g, *xs = node.inputs
    out, axis, part = node.outputs[0], node.op.axis, node.op.index
    start = "0"
    for x in xs[:part]:
        d = k.dim(x, axis)
        start = d if start == "0" else k.fb.op(f"add nsw i64 {start}, {d}")
    idx, toks = k.open_loops(out, range(out.ndim))
    oi = [idx[a] for a in range(out.ndim)]
    gi = list(oi)
    gi[axis] = k.add_i64(oi[axis], start)
    k.store(out, oi, k.value_at(g, gi))
    k.close_loops(toks)


def lower_stack(k: Kernel, node: Apply) -> None:
    out, axis = node.outputs[0], node.op.axis
    others = [a for a in range(out.ndim) if a != axis]
    for pos, x in enumerate(node.inputs):
        idx, toks = k.open_loops(out, others)
        oi = [str(pos) if a == axis else idx[a] for a in range(out.ndim)]
        element = [idx[a] for a in others]
        lead = len(element) - x.ndim
        xi = ["0" if d == 1 else element[lead + j] for j, d in enumerate(x.shape)]
        k.store(out, oi, k.value_at(x, xi))
        k.close_loops(toks)


def _subtensor_map(k: Kernel, node: Apply, op_, x: Variable, oidx: list[str]) -> list[str]:
    """Index into ``x`` of output element ``oidx`` of ``x[op_.index]``."""
    xi, pos = [], 0
    for axis in range(x.ndim):
        entry = op_.index[axis] if axis < len(op_.index) else slice(None)
        start = k.table(("sub", node.outputs[0].id, axis, "start"),
                        _subtensor_fn(node, op_, axis, 0))
        if isinstance(entry, slice):
            step = k.table(("sub", node.outputs[0].id, axis, "step"),
                           _subtensor_fn(node, op_, axis, 1))
            scaled = k.fb.op(f"mul nsw i64 {oidx[pos]}, {step}")
            xi.append(k.fb.op(f"add nsw i64 {start}, {scaled}"))
            pos += 1
        else:
            xi.append(start)
    return xi


def _subtensor_fn(node: Apply, op_, axis: int, which: int) -> SlotFn:
    from symgraph.evaluate import NodeContext

    def fn(shapes, offsets):
        x = node.inputs[0]
        bindings = offsets["bindings"]
        index = Subtensor(op_.index).runtime_index(NodeContext(node, bindings))
        entry = index[axis] if axis < len(index) else slice(None)
        d = shapes[x][axis]
        if isinstance(entry, slice):
            start, _, step = entry.indices(d)
            return (start, step)[which]
        i = entry + d if entry < 0 else entry
        if not 0 <= i < d:
            raise IndexError(f"index {entry} is out of bounds for axis {axis} with size {d}")
        return i
    return fn


def lower_subtensor(k: Kernel, node: Apply) -> None:
    x, out = node.inputs[0], node.outputs[0]
    idx, toks = k.open_loops(out, range(out.ndim))
    oi = [idx[a] for a in range(out.ndim)]
    k.store(out, oi, k.value_at(x, _subtensor_map(k, node, node.op, x, oi)))
    k.close_loops(toks)


def _zero_fill(k: Kernel, out: Variable) -> None:
    nbytes = k.mul_i64(k.size(out), str(ITEMSIZE[out.dtype.name]))
    k.fb.emit(f"call void @llvm.memset.p0.i64(ptr {k.ptr(out)}, i8 0, i64 {nbytes}, i1 0)")


def lower_subtensor_grad(k: Kernel, node: Apply) -> None:
    x, g = node.inputs
    out = node.outputs[0]
    _zero_fill(k, out)
    idx, toks = k.open_loops(g, range(g.ndim))
    gi = [idx[a] for a in range(g.ndim)]
    k.store(out, _subtensor_map(k, node, node.op, x, gi), k.value_at(g, gi))
    k.close_loops(toks)


def _full_pattern(pattern, x: Variable) -> tuple:
    return tuple(pattern) + (":",) * (x.ndim - len(pattern))


def _check_indices(k: Kernel, node: Apply, pattern, x: Variable, first: int) -> None:
    """Before the main loop: every entry of each index array (inputs ``first``, ... of
    ``node``) is inside its axis of ``x`` (numpy's ``-size <= i < size``); the first bad
    one, in pattern then C order (as the numpy reference checks), fails the call."""
    axes = [axis for axis, p in enumerate(_full_pattern(pattern, x)) if p == "a"]
    for n, axis in enumerate(axes):
        arr = node.inputs[first + n]
        idx, toks = k.open_loops(arr, range(arr.ndim))
        position = [idx[a] for a in range(arr.ndim)]
        v = k.sb.convert(k.value_at(arr, position), "int64").ref
        d = k.dim(x, axis)
        wrapped = k.fb.op(f"select i1 {k.fb.op(f'icmp slt i64 {v}, 0')}, "
                          f"i64 {k.fb.op(f'add i64 {v}, {d}')}, i64 {v}")
        k.fail_if(k.fb.op(f"icmp uge i64 {wrapped}, {d}"), node, first + n, axis, v, d,
                  position)
        k.close_loops(toks)


def _advanced_map(k: Kernel, node: Apply, pattern, x: Variable, indices: list[Variable],
                  space: Variable, oidx: list[str]) -> list[str]:
    """x index for element ``oidx`` of the advanced-indexing result (shape of ``space``);
    the indices were checked by :func:`_check_indices` (negative ones wrap here)."""
    pattern = _full_pattern(pattern, x)
    positions = [i for i, p in enumerate(pattern) if p == "a"]
    nb = space.ndim - (x.ndim - len(positions))
    adjacent = positions == list(range(positions[0], positions[-1] + 1))
    bstart = positions[0] if adjacent else 0
    bidx = oidx[bstart:bstart + nb]
    xi, arrays, rest = [], iter(indices), 0
    for axis, p in enumerate(pattern):
        if p == "a":
            arr = next(arrays)
            lead = nb - arr.ndim
            ai = ["0" if d == 1 else bidx[lead + j] for j, d in enumerate(arr.shape)]
            v = k.sb.convert(k.value_at(arr, ai), "int64").ref
            d = k.dim(x, axis)
            neg = k.fb.op(f"icmp slt i64 {v}, 0")
            wrapped = k.fb.op(f"add i64 {v}, {d}")
            xi.append(k.fb.op(f"select i1 {neg}, i64 {wrapped}, i64 {v}"))
        else:
            if adjacent:
                pos = axis if axis < positions[0] else axis - len(positions) + nb
            else:
                pos = nb + rest
            rest += 1
            xi.append(oidx[pos])
    return xi


def lower_advanced_subtensor(k: Kernel, node: Apply) -> None:
    x, *indices = node.inputs
    out = node.outputs[0]
    _check_indices(k, node, node.op.pattern, x, 1)
    idx, toks = k.open_loops(out, range(out.ndim))
    oi = [idx[a] for a in range(out.ndim)]
    xi = _advanced_map(k, node, node.op.pattern, x, indices, out, oi)
    k.store(out, oi, k.value_at(x, xi))
    k.close_loops(toks)


def lower_advanced_inc_subtensor(k: Kernel, node: Apply) -> None:
    x, g, *indices = node.inputs
    out = node.outputs[0]
    _check_indices(k, node, node.op.pattern, x, 2)
    _zero_fill(k, out)
    idx, toks = k.open_loops(g, range(g.ndim))
    gi = [idx[a] for a in range(g.ndim)]
    xi = _advanced_map(k, node, node.op.pattern, x, indices, g, gi)
    cur = k.load(out, xi)
    k.store(out, xi, k.sb.add(cur, k.sb.convert(k.value_at(g, gi), out.dtype.name)))
    k.close_loops(toks)


LOWERINGS: dict[type, Callable[[Kernel, Apply], None]] = {
    Reduce: lower_reduce,
    Argmax: lower_argmax,
    Softmax: lower_softmax,
    LogSoftmax: lower_softmax,
    LogSumExp: lower_logsumexp,
    MatMul: lower_matmul,
    Concatenate: lower_concatenate,
    ConcatenateGrad: lower_concatenate_grad,
    Stack: lower_stack,
    Subtensor: lower_subtensor,
    SubtensorGrad: lower_subtensor_grad,
    AdvancedSubtensor: lower_advanced_subtensor,
    AdvancedIncSubtensor: lower_advanced_inc_subtensor,
}


def lower_reshape_copy(k: Kernel, node: Apply) -> None:
    """A Reshape whose input is not in memory (a 0-d literal): copy the single element."""
    x, out = node.inputs[0], node.outputs[0]
    if x.ndim != 0 and k.an.mode[x] not in ADDRESSABLE:
        raise node_error(node, "internal: reshape of a value not in memory")
    idx, toks = k.open_loops(out, range(out.ndim))
    k.store(out, [idx[a] for a in range(out.ndim)], k.value_at(x, ["0"] * x.ndim))
    k.close_loops(toks)


LOWERINGS[Reshape] = lower_reshape_copy
LOWERINGS[ReshapeLike] = lower_reshape_copy
