"""Lowerings of the non-elementwise ops that loop over values: one function per op class.

Each rule gets a :class:`codegen.kernel.Kernel` (the function being built) and the graph node,
and emits loops through ``Kernel.open_loops``/``value_at``/``store`` (so inputs may be
buffers, transposing views or inlined cheap ops).  Reductions keep their accumulator in a
register when the innermost axis is reduced and accumulate in input order otherwise (bias
gradients), so both vectorise; max/min/softmax propagate NaN like numpy.  Matrix products
are in :mod:`codegen.lower_blas`.  Adding an op means adding one function here and one
:func:`codegen.registry.register_lowering` line at the end (its :class:`Lowering` flags say
what fusion may do with it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from symgraph.evaluate import NodeContext
from symgraph.graph import Apply, Variable, dtype_name
from symgraph.ops.indexing import (
    AdvancedIncSubtensor,
    AdvancedSubtensor,
    Subtensor,
    SubtensorGrad,
)
from symgraph.ops.reduce import Argmax, Reduce, reduction_identity
from symgraph.ops.structure import (
    Concatenate,
    ConcatenateGrad,
    Reshape,
    ReshapeLike,
    Stack,
)

from .fusion import ADDRESSABLE
from .irgen import IR_TYPE, ITEMSIZE, MEM_TYPE, Value, is_float
from .kernel import Kernel, SlotFn, node_error
from .lower_rows import group_index, open_part, range_loop, split_column_sums, split_row_sums
from .registry import Lowering, register_lowering, register_tunables

#: A float32 sum along the innermost axis adds blocks of this many elements in float32 (the
#: vectorised loop: each of its 32-64 lanes adds 64-128 terms in a row) and the blocks' sums
#: in float64 (SUM_ACCUMULATOR).  In float32 alone every lane added n/32 terms in a row: at
#: 10M elements that was ~500x less accurate than numpy's pairwise sum (2e-5 against 4e-8);
#: blocked it is as accurate.  Accumulating every element in float64 was as accurate but
#: 1.5-1.9x slower on cache-resident data; the blocks cost nothing measurable on flat sums.
SUM_BLOCK = 4096
SUM_ACCUMULATOR = {"float32": "float64"}


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


def _runs(axes: list[int], reduced) -> list[list[int]]:
    """``axes`` cut into runs of adjacent axes that are all reduced or all kept."""
    runs: list[list[int]] = []
    for a in axes:
        if runs and runs[-1][-1] == a - 1 and (runs[-1][-1] in reduced) == (a in reduced):
            runs[-1].append(a)
        else:
            runs.append([a])
    return runs


def _accumulate(k: Kernel, kind: str, acc: str, x: Variable, idx: dict[int, str],
                dt: str) -> None:
    """``*acc = combine(*acc, x[idx])`` in ``dt``."""
    v = k.sb.convert(k.value_at(x, [idx[a] for a in range(x.ndim)]), dt)
    ty = IR_TYPE[dt]
    cur = Value(k.fb.op(f"load {ty}, ptr {acc}"), dt)
    k.fb.emit(f"store {ty} {_combine(k, kind, cur, v).ref}, ptr {acc}")


def _plain_reduce(k: Kernel, kind: str, x: Variable, idx: dict[int, str],
                  inner_groups: list[list[int]], dt: str) -> tuple[Value, tuple[str, ...]]:
    """``kind`` of ``x`` over ``inner_groups`` at the kept ``idx``, accumulated in ``dt``;
    and the hints for the loops around (:meth:`Kernel.rolled`, asked once the body is
    written: a short row's depend on it)."""
    start = k.sb.const(reduction_identity(kind, dt), dt)
    acc = k.fb.alloca(start.ty, start.ref)
    idx_in, inner = k.open_groups(x, inner_groups)
    idx.update(idx_in)
    _accumulate(k, kind, acc, x, idx, dt)
    hints, rest = k.rolled(x, inner_groups, accumulates=True)
    k.close_loops(inner, hints, rest)
    return Value(k.fb.op(f"load {start.ty}, ptr {acc}"), dt), rest


def _blocked_sum(k: Kernel, x: Variable, idx: dict[int, str], inner_groups: list[list[int]],
                 n: str, dt: str, wide: str, hints: tuple[str, ...], rest: tuple[str, ...]
                 ) -> Value:
    """The sum of ``x`` over ``inner_groups`` (the last one ``n`` long) at the kept ``idx``:
    blocks of :data:`SUM_BLOCK` of the last group summed in ``dt``, added up in ``wide``."""
    fb, sb = k.fb, k.sb
    zero = sb.const(0, wide)
    total = fb.alloca(zero.ty, zero.ref)
    idx_in, inner = k.open_groups(x, inner_groups[:-1])
    idx.update(idx_in)
    last = inner_groups[-1]
    blocks = fb.op(f"udiv i64 {fb.op(f'add nuw i64 {n}, {SUM_BLOCK - 1}')}, {SUM_BLOCK}")
    b, block_loop = fb.loop_begin(blocks)
    block = sb.const(0, dt)
    acc = fb.alloca(block.ty, block.ref)
    lo = fb.op(f"mul nuw nsw i64 {b}, {SUM_BLOCK}")
    left = fb.op(f"sub nuw nsw i64 {n}, {lo}")
    short = fb.op(f"icmp ult i64 {left}, {SUM_BLOCK}")
    count = fb.op(f"select i1 {short}, i64 {left}, i64 {SUM_BLOCK}")
    j, element_loop = fb.loop_begin(count)
    idx.update({a: "0" for a in last})
    idx[last[-1]] = fb.op(f"add nuw nsw i64 {lo}, {j}")
    _accumulate(k, "sum", acc, x, idx, dt)
    fb.loop_end(element_loop, hints)
    part = sb.convert(Value(fb.op(f"load {block.ty}, ptr {acc}"), dt), wide)
    cur = Value(fb.op(f"load {zero.ty}, ptr {total}"), wide)
    fb.emit(f"store {zero.ty} {sb.add(cur, part).ref}, ptr {total}")
    fb.loop_end(block_loop, rest)
    k.close_loops(inner, rest, rest)
    return Value(fb.op(f"load {zero.ty}, ptr {total}"), wide)


def lower_reduce(k: Kernel, node: Apply) -> None:
    op_, x, out = node.op, node.inputs[0], node.outputs[0]
    kind, axes, dt = op_.kind, op_.axes, dtype_name(out.dtype)
    kept = [a for a in range(x.ndim) if a not in axes]

    def groups(var: Variable, run_axes, reads) -> list[list[int]]:
        return [g for run in _runs(list(run_axes), axes)
                for g in k.loop_groups(var, run, reads)]

    if x.ndim == 0 or (x.ndim - 1) in axes:
        # kept axes outside, reduced axes inside: the accumulator stays in a register
        inner_groups = groups(x, axes, [x])
        wide = SUM_ACCUMULATOR.get(dt) if kind in ("sum", "mean") else None
        n = k.size(x, inner_groups[-1]) if inner_groups else "1"

        def row(kk: Kernel, idx: dict[int, str], blocked: bool) -> tuple[str, ...]:
            """One row's total stored at ``idx``; the hints for the loops around it."""
            if blocked:  # (rows longer than a block: never a short row, hints known now)
                hints, rest = kk.rolled(x, inner_groups, accumulates=True)
                total = _blocked_sum(kk, x, idx, inner_groups, kk.size(x, inner_groups[-1]),
                                     dt, wide, hints, rest)
            else:
                total, rest = _plain_reduce(kk, kind, x, idx, inner_groups, dt)
            if kind == "mean":
                size = kk.sb.convert(Value(kk.size(x, axes), "int64"), total.dtype)
                total = kk.sb.div(total, size)
            kk.store(out, _reduced_index(axes, op_.keepdims, x.ndim, idx), total)
            return rest

        def nest(blocked: bool) -> None:
            idx, outer = k.open_groups(x, groups(x, kept, [x]))
            rest = row(k, idx, blocked)
            k.close_loops(outer, rest, rest)

        if split_row_sums(k, node, groups(x, kept, [x]), inner_groups,
                          None if wide is None else SUM_BLOCK, row):
            return
        if wide is None or n.isdigit():
            nest(wide is not None and int(n) > SUM_BLOCK)
            return
        if not groups(x, kept, [x]):  # one total (a loss's mean): one block costs nothing
            nest(True)
            return
        # rows of a symbolic length: two nests, so short rows (the common case) run the plain
        # one (the blocked nest's per-row overhead made (4096, 10) row sums 2x slower)
        for cond, blocked in (("ule", False), ("ugt", True)):
            done = k.fb.if_begin(k.fb.op(f"icmp {cond} i64 {n}, {SUM_BLOCK}"))
            nest(blocked)
            k.fb.if_end(done)
        return
    nest = groups(x, range(x.ndim), [x])
    if not split_column_sums(k, node, nest, _leading):
        _leading(k, node, nest)


def _leading(k: Kernel, node: Apply, nest: list[list[int]],
             part: tuple[list[int], str, str] | None = None) -> None:
    """A reduction over leading axes (bias gradients), loops ``nest``: initialise, then
    accumulate in input order so the innermost (kept) axis is contiguous and vectorises.
    ``part``: positions ``[lo, hi)`` of the nest's one kept loop only (``split_column_sums``)."""
    op_, x, out = node.op, node.inputs[0], node.outputs[0]
    kind, axes, dt = op_.kind, op_.axes, dtype_name(out.dtype)
    ident = k.sb.const(op_.identity(dt), dt)

    def out_loop(body: Callable[[list[str]], None]) -> None:
        """``body(index)`` at every position of ``out`` (of ``part``'s range)."""
        if part is None:
            oidx, toks = k.open_groups(out, k.loop_groups(out, range(out.ndim), [out]))
            body([oidx[a] for a in range(out.ndim)])
            k.close_loops(toks)
            return
        i, tok = range_loop(k, part[1], part[2])
        body(_reduced_index(axes, op_.keepdims, x.ndim, group_index(x, [part[0]], [i])))
        k.fb.loop_end(tok)

    if part is None:  # (the serial kernel's text as before splits existed)
        oidx, toks = k.open_groups(out, k.loop_groups(out, range(out.ndim), []))
        k.store(out, [oidx[a] for a in range(out.ndim)], ident)
        k.close_loops(toks)
        idx, toks = k.open_groups(x, nest)
    else:
        out_loop(lambda o: k.store(out, o, ident))
        idx, toks = open_part(k, x, nest, *part)
    oi = _reduced_index(axes, op_.keepdims, x.ndim, idx)
    v = k.sb.convert(k.value_at(x, [idx[a] for a in range(x.ndim)]), dt)
    addr = k.address(out, oi)
    cur = Value(k.fb.op(f"load {MEM_TYPE[dt]}, ptr {addr}"), dt)
    if dt == "bool":
        cur = Value(k.fb.op(f"trunc i8 {cur.ref} to i1"), dt)
    new = _combine(k, kind, cur, v)
    ref = new.ref if dt != "bool" else k.fb.op(f"zext i1 {new.ref} to i8")
    k.fb.emit(f"store {MEM_TYPE[dt]} {ref}, ptr {addr}")
    k.close_loops(toks, *k.short_rows(x, nest))  # (a bias gradient over 10 classes)
    if kind == "mean":
        n = k.sb.convert(Value(k.size(x, axes), "int64"), dt)
        out_loop(lambda o: k.store(out, o, k.sb.div(k.load(out, o), n)))


def lower_argmax(k: Kernel, node: Apply) -> None:
    """Two passes per line, each a vectorisable reduction: the max (NaN-propagating: numpy's
    argmax takes the first NaN), then the smallest index holding it. One pass of compare
    and select carried the best value and index from element to element: scalar, ~4.6 ns
    per element, 37x numpy on (1000, 1000) float32."""
    op_, x, out = node.op, node.inputs[0], node.outputs[0]
    axes = tuple(range(x.ndim)) if op_.axis is None else (op_.axis,)
    kept = [a for a in range(x.ndim) if a not in axes]
    dt = dtype_name(x.dtype)
    cmp_dt = "int8" if dt == "bool" else dt
    ident = k.sb.const(reduction_identity("max", cmp_dt), cmp_dt)
    idx, outer = k.open_loops(x, kept)
    best = k.fb.alloca(ident.ty, ident.ref)
    idx_in, inner = k.open_loops(x, axes)
    idx.update(idx_in)
    v = k.sb.convert(k.value_at(x, [idx[a] for a in range(x.ndim)]), cmp_dt)
    b = Value(k.fb.op(f"load {ident.ty}, ptr {best}"), cmp_dt)
    k.fb.emit(f"store {ident.ty} {k.sb.maximum(b, v).ref}, ptr {best}")
    k.close_loops(inner)
    top = Value(k.fb.op(f"load {ident.ty}, ptr {best}"), cmp_dt)
    none = str(np.iinfo(np.int64).max)
    first = k.fb.alloca("i64", none)
    count = k.fb.alloca("i64", "0")
    idx_in, inner = k.open_loops(x, axes)
    idx.update(idx_in)
    v = k.sb.convert(k.value_at(x, [idx[a] for a in range(x.ndim)]), cmp_dt)
    hit = k.sb.eq(v, top)
    if is_float(dt):
        hit = k.sb.or_(hit, k.sb.and_(k.sb.isnan(v), k.sb.isnan(top)))
    n = k.fb.op(f"load i64, ptr {count}")
    at = k.fb.op(f"select i1 {hit.ref}, i64 {n}, i64 {none}")
    old = k.fb.op(f"load i64, ptr {first}")
    less = k.fb.op(f"icmp slt i64 {at}, {old}")
    k.fb.emit(f"store i64 {k.fb.op(f'select i1 {less}, i64 {at}, i64 {old}')}, ptr {first}")
    k.fb.emit(f"store i64 {k.fb.op(f'add i64 {n}, 1')}, ptr {count}")
    k.close_loops(inner)
    result = Value(k.fb.op(f"load i64, ptr {first}"), "int64")
    if op_.axis is None:
        oi = ["0"] * out.ndim
    else:
        oi = _reduced_index(axes, op_.keepdims, x.ndim, idx)
    k.store(out, oi, result)
    k.close_loops(outer)


#: a concatenation or stack of at least this many pieces of one shape and dtype, each in
#: memory, is one loop nest over a stack array of their pointers (:func:`_join_table`)
#: instead of one loop nest per piece.  Why: an unrolled LSTM's gradient joins its T steps'
#: pieces, and at T = 100 the 100 nests were one 4,800-line function that LLVM took 0.37 s
#: to optimise, alone in its module (a sixth of the compile).
JOIN_TABLE_PIECES = 8
#: modes whose value is a load from the variable's own (or its root's) memory
_IN_MEMORY = ("arg", "const", "buffer", "alias")


def _join_table(k: Kernel, out: Variable, xs: list[Variable], axis: int, stack: bool) -> bool:
    """``out`` as ``concatenate(xs, axis)`` (``stack``: ``stack(xs, axis)``) through one loop
    over the pieces' pointers, when :data:`JOIN_TABLE_PIECES` or more pieces have one shape,
    one dtype and sit in memory; False (nothing emitted) otherwise.  Every piece is then read
    at the same offsets (a symbolic dim must be one every call binds: an unbound one may
    differ between variables of equal shapes), only its base pointer differs."""
    x0, bound = xs[0], k.ctx.bound_symbols()
    if (len(xs) < JOIN_TABLE_PIECES
            or any(x.shape != x0.shape or x.dtype != x0.dtype or k.an.mode[x] not in _IN_MEMORY
                   for x in xs)
            or any(not isinstance(d, int) and (d is None or not d.free_symbols <= bound)
                   for d in x0.shape)):
        return False
    fb, dtype = k.fb, dtype_name(x0.dtype)
    table = k.pointer_array("pieces", [k.ptr(x) for x in xs])
    j, piece = fb.loop_begin(str(len(xs)))
    base = k.pointer_at(table, j)
    idx, tokens = k.open_loops(x0, range(x0.ndim))
    xi = [idx[a] for a in range(x0.ndim)]
    if stack:
        oi = xi[:axis] + [j] + xi[axis:]
    else:
        oi = list(xi)
        oi[axis] = k.add_i64(xi[axis], fb.op(f"mul nsw i64 {j}, {k.dim(x0, axis)}"))
    address = fb.op(f"getelementptr inbounds {MEM_TYPE[dtype]}, ptr {base}, "
                    f"i64 {k.offset(x0, xi)}")
    v = fb.op(f"load {MEM_TYPE[dtype]}, ptr {address}")
    if dtype == "bool":
        v = fb.op(f"trunc i8 {v} to i1")
    k.store(out, oi, Value(v, dtype))
    k.close_loops([piece, *tokens])
    return True


def lower_concatenate(k: Kernel, node: Apply) -> None:
    out, axis = node.outputs[0], node.op.axis
    if _join_table(k, out, list(node.inputs), axis, stack=False):
        return
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
    whole = out.shape[:axis] + out.shape[axis + 1:]  # (pieces broadcast along others)
    if (all(x.shape == whole for x in node.inputs)
            and _join_table(k, out, list(node.inputs), axis, stack=True)):
        return
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
        static = _static_bounds(entry, x.shape[axis])
        if static is not None:
            # known now: the start comes from the call site (an argument), so the kernels
            # of x[:, 0], x[:, 1], ... are one text (codegen.dedupe); the step is a literal
            start, step = k.static_arg(static[0]), str(static[1])
        else:
            start = k.table(("sub", node.outputs[0].id, axis, "start"),
                            _subtensor_fn(node, op_, axis, 0))
        if isinstance(entry, slice):
            if static is None:
                step = k.table(("sub", node.outputs[0].id, axis, "step"),
                               _subtensor_fn(node, op_, axis, 1))
            scaled = k.fb.op(f"mul nsw i64 {oidx[pos]}, {step}")
            xi.append(k.fb.op(f"add nsw i64 {start}, {scaled}"))
            pos += 1
        else:
            xi.append(start)
    return xi


def _static_bounds(entry, d) -> tuple[int, int] | None:
    """(start, step) of an index entry over a static dim, when every bound is an int (the
    build checked a static int index against the dim), or of a slice from the start with a
    positive int step over any dim (``x[:, t]``'s batch axis); None when only a run can
    tell."""
    if (isinstance(entry, slice) and entry.start in (None, 0)
            and (entry.step is None or isinstance(entry.step, int) and entry.step > 0)):
        return 0, 1 if entry.step is None else entry.step
    if not isinstance(d, int):
        return None
    if isinstance(entry, slice):
        if not all(b is None or isinstance(b, int) for b in (entry.start, entry.stop,
                                                             entry.step)):
            return None
        start, _, step = entry.indices(d)
        return start, step
    if isinstance(entry, int):
        return (entry + d if entry < 0 else entry), 1
    return None


def _subtensor_fn(node: Apply, op_, axis: int, which: int) -> SlotFn:
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
    nbytes = k.mul_i64(k.size(out), str(ITEMSIZE[dtype_name(out.dtype)]))
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
    k.store(out, xi, k.sb.add(cur, k.sb.convert(k.value_at(g, gi), dtype_name(out.dtype))))
    k.close_loops(toks)


def lower_reshape_copy(k: Kernel, node: Apply) -> None:
    """A Reshape whose input is not in memory (a 0-d literal): copy the single element."""
    x, out = node.inputs[0], node.outputs[0]
    if x.ndim != 0 and k.an.mode[x] not in ADDRESSABLE:
        raise node_error(node, "internal: reshape of a value not in memory")
    idx, toks = k.open_loops(out, range(out.ndim))
    k.store(out, [idx[a] for a in range(out.ndim)], k.value_at(x, ["0"] * x.ndim))
    k.close_loops(toks)


# --------------------------------------------------------------------------- registrations
register_lowering(Reduce, Lowering(kernel=lower_reduce, fuses="input", value_consumer=True))
register_lowering(Argmax, Lowering(kernel=lower_argmax, value_consumer=True))
register_lowering(Concatenate, Lowering(kernel=lower_concatenate, value_consumer=True))
register_lowering(ConcatenateGrad, Lowering(kernel=lower_concatenate_grad,
                                            value_consumer=True))
register_lowering(Stack, Lowering(kernel=lower_stack, value_consumer=True))
register_lowering(Subtensor, Lowering(kernel=lower_subtensor, value_consumer=True))
register_lowering(SubtensorGrad, Lowering(kernel=lower_subtensor_grad, value_consumer=True))
register_lowering(AdvancedSubtensor, Lowering(kernel=lower_advanced_subtensor,
                                              value_consumer=True, fallible=True))
register_lowering(AdvancedIncSubtensor, Lowering(kernel=lower_advanced_inc_subtensor,
                                                 value_consumer=True, fallible=True))
# reshapes alias their input's bytes (``Op.aliases_input``); a copy only for a 0-d literal
register_lowering(Reshape, Lowering(kernel=lower_reshape_copy))
register_lowering(ReshapeLike, Lowering(kernel=lower_reshape_copy))


register_tunables(__name__, ("SUM_BLOCK", "SUM_ACCUMULATOR", "JOIN_TABLE_PIECES"))
