"""LLVM lowerings of the scan op family (symgraph/ops/scan.py), each registered with
``register_lowering`` next to its function.

Products and scans are one loop along the axis per line, the lines in the outer loops; they
read their inputs through ``Kernel.value_at`` (``fuses="input"``: an elementwise tree of the
input's shape is computed in the same loop).  ``Shift`` is an inline value (a clamped read and
a select), so the exclusive products of the gradients fuse into the multiply that uses them.

Sorting compares indices by a strict total order -- key, then index (NaN after every number
ascending, before every number for ``topk``) -- so any algorithm gives exactly the stable
order of numpy's ``argsort(kind="stable")``.  ``Argsort`` merge-sorts a line
(insertion-sorted runs, then bottom-up merges) in a stack scratch up to :data:`MERGE_CAP`,
in one ``malloc``'d scratch per call beyond.  ``TopkIndices`` (a heap of ``k``:
``O(n log k)``), and a long line when ``malloc`` fails, keep a binary heap of indices in the
output line itself, so they need no scratch: every element is pushed (``topk``: replaces
the heap's worst when it is better), then the heap is taken apart from the worst.
The gather and scatter of the sorted values are plain loops over the indices.
"""

from __future__ import annotations

from symgraph.graph import Apply, Variable
from symgraph.ops.scan import (
    Argsort,
    Cumprod,
    Cumsum,
    LinearScan,
    Prod,
    PutAlongAxis,
    Shift,
    TakeAlongAxis,
    TopkIndices,
)

from .irgen import ITEMSIZE, Value, is_float
from .kernel import Kernel
from .registry import Lowering, register_lowering, register_tunables


def _outer(k: Kernel, var: Variable, axis: int) -> tuple[dict[int, str], list]:
    """Loops over every axis of ``var`` but ``axis`` (the lines)."""
    return k.open_loops(var, [a for a in range(var.ndim) if a != axis])


def _at(idx: dict[int, str], ndim: int, axis: int, position: str) -> list[str]:
    return [position if a == axis else idx[a] for a in range(ndim)]


def _last(k: Kernel, n: str) -> str:
    return str(int(n) - 1) if n.isdigit() else k.fb.op(f"sub i64 {n}, 1")


def _position(k: Kernel, i: str, n: str, reverse: bool) -> str:
    return k.fb.op(f"sub i64 {_last(k, n)}, {i}") if reverse else i


# --------------------------------------------------------------------------- products, scans


def lower_prod(k: Kernel, node: Apply) -> None:
    op_, x, out = node.op, node.inputs[0], node.outputs[0]
    dt = out.dtype.name
    kept = [a for a in range(x.ndim) if a not in op_.axes]
    one = k.sb.const(1, dt)

    def out_index(idx: dict) -> list[str]:
        return ["0" if a in op_.axes else idx[a] for a in range(x.ndim)] if op_.keepdims \
            else [idx[a] for a in kept]
    if x.ndim and (x.ndim - 1) not in op_.axes:
        # a leading axis (as sum's): ones, then multiply in input order, so the innermost
        # (kept) axis is contiguous and vectorises; lines walked down a column with a stride
        # were 8-10x numpy (gathers)
        oidx, toks = k.open_loops(out, range(out.ndim))
        k.store(out, [oidx[a] for a in range(out.ndim)], one)
        k.close_loops(toks)
        idx, toks = k.open_loops(x, range(x.ndim))
        v = k.sb.convert(k.value_at(x, [idx[a] for a in range(x.ndim)]), dt)
        oi = out_index(idx)
        k.store(out, oi, k.sb.mul(k.load(out, oi), v))
        k.close_loops(toks)
        return
    idx, outer = k.open_loops(x, kept)
    acc = k.fb.alloca(one.ty, one.ref)
    inner_idx, inner = k.open_loops(x, op_.axes)
    idx.update(inner_idx)
    v = k.sb.convert(k.value_at(x, [idx[a] for a in range(x.ndim)]), dt)
    cur = Value(k.fb.op(f"load {one.ty}, ptr {acc}"), dt)
    k.fb.emit(f"store {one.ty} {k.sb.mul(cur, v).ref}, ptr {acc}")
    k.close_loops(inner)
    k.store(out, out_index(idx), Value(k.fb.op(f"load {one.ty}, ptr {acc}"), dt))
    k.close_loops(outer)


def _scan(k: Kernel, node: Apply, start: int, combine, reverse: bool) -> None:
    """``acc = combine(acc, x_k)`` along the axis, storing every ``acc``."""
    x, out, axis = node.inputs[0], node.outputs[0], node.op.axis
    dt = out.dtype.name
    idx, outer = _outer(k, out, axis)
    init = k.sb.const(start, dt)
    acc = k.fb.alloca(init.ty, init.ref)
    n = k.dim(out, axis)
    i, token = k.fb.loop_begin(n)
    full = _at(idx, out.ndim, axis, _position(k, i, n, reverse))
    v = k.sb.convert(k.value_at(x, full), dt)
    new = combine(Value(k.fb.op(f"load {init.ty}, ptr {acc}"), dt), v)
    k.fb.emit(f"store {init.ty} {new.ref}, ptr {acc}")
    k.store(out, full, new)
    k.fb.loop_end(token)
    k.close_loops(outer)


def lower_cumsum(k: Kernel, node: Apply) -> None:
    _scan(k, node, 0, k.sb.add, node.op.reverse)


def lower_cumprod(k: Kernel, node: Apply) -> None:
    _scan(k, node, 1, k.sb.mul, node.op.reverse)


def lower_linear_scan(k: Kernel, node: Apply) -> None:
    """``h_k = a_k h_{k-1} + b_k`` (transposed: ``a_{k+1} h_{k+1} + b_k`` from the end); the
    first step is ``b`` alone (no ``a * 0``, which is NaN for an infinite ``a``), and every
    input element is read at its own step."""
    a, b = node.inputs
    out, axis, transposed = node.outputs[0], node.op.axis, node.op.transposed
    dt = out.dtype.name
    idx, outer = _outer(k, out, axis)
    zero = k.sb.const(0, dt)
    h = k.fb.alloca(zero.ty, zero.ref)
    a_prev = k.fb.alloca(zero.ty, zero.ref)
    n = k.dim(out, axis)
    i, token = k.fb.loop_begin(n)
    full = _at(idx, out.ndim, axis, _position(k, i, n, transposed))
    av = k.sb.convert(k.value_at(a, full), dt)
    bv = k.sb.convert(k.value_at(b, full), dt)
    factor = Value(k.fb.op(f"load {zero.ty}, ptr {a_prev}"), dt) if transposed else av
    old = Value(k.fb.op(f"load {zero.ty}, ptr {h}"), dt)
    step = k.sb.add(k.sb.mul(factor, old), bv)
    first = Value(k.fb.op(f"icmp eq i64 {i}, 0"), "bool")
    new = k.sb.select(first, bv, step)
    k.fb.emit(f"store {zero.ty} {new.ref}, ptr {h}")
    k.fb.emit(f"store {zero.ty} {av.ref}, ptr {a_prev}")
    k.store(out, full, new)
    k.fb.loop_end(token)
    k.close_loops(outer)


def _inline_shift(k: Kernel, node: Apply, idx: list[str]) -> Value:
    """``x`` one position back (``step`` 1) or ahead (-1) along the axis, ``fill`` entering:
    the read index is clamped into the line, so no load leaves the buffer."""
    x, op_ = node.inputs[0], node.op
    j = idx[op_.axis]
    if op_.step == 1:
        inside = k.fb.op(f"icmp sgt i64 {j}, 0")
        moved = k.fb.op(f"sub i64 {j}, 1")
        src = k.fb.op(f"select i1 {inside}, i64 {moved}, i64 0")
    else:
        last = _last(k, k.dim(x, op_.axis))
        inside = k.fb.op(f"icmp slt i64 {j}, {last}")
        moved = k.fb.op(f"add i64 {j}, 1")
        src = k.fb.op(f"select i1 {inside}, i64 {moved}, i64 {last}")
    read = list(idx)
    read[op_.axis] = src
    dt = node.outputs[0].dtype.name
    v = k.sb.convert(k.value_at(x, read), dt)
    return k.sb.select(Value(inside, "bool"), v, k.sb.const(op_.fill, dt))


# --------------------------------------------------------------------------- sorting


class _Heap:
    """A binary heap of indices into one line of ``x``, stored in one line of ``out``; its
    root is the *worst* index under the order (so the best ``k`` stay)."""

    def __init__(self, k: Kernel, x: Variable, out: Variable, axis: int, idx: dict,
                 descending: bool):
        self.k, self.x, self.out, self.axis, self.idx = k, x, out, axis, idx
        self.descending = descending

    def addr(self, j: str) -> str:
        return self.k.address(self.out, _at(self.idx, self.out.ndim, self.axis, j))

    def get(self, j: str) -> str:
        return self.k.fb.op(f"load i64, ptr {self.addr(j)}")

    def put(self, j: str, value: str) -> None:
        self.k.fb.emit(f"store i64 {value}, ptr {self.addr(j)}")

    def key(self, i: str) -> Value:
        return self.k.value_at(self.x, _at(self.idx, self.x.ndim, self.axis, i))

    def before(self, a: str, b: str) -> str:
        """i1: index ``a`` comes before index ``b`` (key, then index; NaN largest)."""
        sb, fb = self.k.sb, self.k.fb
        ka, kb = self.key(a), self.key(b)
        strict = sb.gt(ka, kb) if self.descending else sb.lt(ka, kb)
        tie = sb.eq(ka, kb)
        if is_float(ka.dtype):
            na, nb = sb.isnan(ka), sb.isnan(kb)
            first, second = (na, nb) if self.descending else (nb, na)
            strict = sb.or_(strict, sb.and_(first, sb.not_(second)))
            tie = sb.or_(tie, sb.and_(na, nb))
        lower = Value(fb.op(f"icmp slt i64 {a}, {b}"), "bool")
        return sb.or_(strict, sb.and_(tie, lower)).ref

    def worse(self, a: str, b: str) -> str:
        return self.before(b, a)

    def sift_up(self, start: str) -> None:
        fb = self.k.fb
        slot = fb.alloca("i64", start)
        head, body, swap, done = (fb.label("up"), fb.label("upbody"), fb.label("upswap"),
                                  fb.label("updone"))
        fb.br(head)
        fb.start_block(head)
        j = fb.op(f"load i64, ptr {slot}")
        fb.emit(f"br i1 {fb.op(f'icmp sgt i64 {j}, 0')}, label %{body}, label %{done}")
        fb.start_block(body)
        parent = fb.op(f"lshr i64 {fb.op(f'sub i64 {j}, 1')}, 1")
        hj, hp = self.get(j), self.get(parent)
        fb.emit(f"br i1 {self.worse(hj, hp)}, label %{swap}, label %{done}")
        fb.start_block(swap)
        self.put(j, hp)
        self.put(parent, hj)
        fb.emit(f"store i64 {parent}, ptr {slot}")
        fb.br(head)
        fb.start_block(done)

    def sift_down(self, size: str) -> None:
        """Restore the heap below the root over positions ``[0, size)``."""
        fb = self.k.fb
        slot = fb.alloca("i64", "0")
        head, body, swap, done = (fb.label("down"), fb.label("downbody"),
                                  fb.label("downswap"), fb.label("downdone"))
        fb.br(head)
        fb.start_block(head)
        j = fb.op(f"load i64, ptr {slot}")
        left = fb.op(f"add i64 {fb.op(f'shl i64 {j}, 1')}, 1")
        fb.emit(f"br i1 {fb.op(f'icmp slt i64 {left}, {size}')}, label %{body}, "
                f"label %{done}")
        fb.start_block(body)
        right = fb.op(f"add i64 {left}, 1")
        has_right = fb.op(f"icmp slt i64 {right}, {size}")
        hl = self.get(left)
        hr = self.get(fb.op(f"select i1 {has_right}, i64 {right}, i64 {left}"))
        pick = fb.op(f"and i1 {has_right}, {self.worse(hr, hl)}")
        child = fb.op(f"select i1 {pick}, i64 {right}, i64 {left}")
        hc = fb.op(f"select i1 {pick}, i64 {hr}, i64 {hl}")
        hj = self.get(j)
        fb.emit(f"br i1 {self.worse(hc, hj)}, label %{swap}, label %{done}")
        fb.start_block(swap)
        self.put(j, hc)
        self.put(child, hj)
        fb.emit(f"store i64 {child}, ptr {slot}")
        fb.br(head)
        fb.start_block(done)

    def take_apart(self, size: str) -> None:
        """Heapsort's second half: the worst to the end, ``size - 1`` times."""
        fb = self.k.fb
        count = fb.op(f"sub i64 {size}, 1")
        t, token = fb.loop_begin(count)
        end = fb.op(f"sub i64 {count}, {t}")
        root, last = self.get("0"), self.get(end)
        self.put("0", last)
        self.put(end, root)
        self.sift_down(end)
        fb.loop_end(token)


#: lines up to this long are merge-sorted in a stack scratch of twice as many int64 (128 KB);
#: longer ones in a scratch from ``malloc`` (one per kernel call), or heap-sorted in place
#: when it returns NULL.  (Heap sort of 100k float32 was 1.7x numpy's sort + stable argsort,
#: of 1M 4.3x: its sift-downs miss the cache on every level.)
MERGE_CAP = 8192
#: runs sorted by insertion before merging
RUN = 16


def _min_i64(fb, a: str, b: str) -> str:
    return fb.op(f"select i1 {fb.op(f'icmp slt i64 {a}, {b}')}, i64 {a}, i64 {b}")


def _stack_scratch(k: Kernel) -> tuple[str, str]:
    """The two halves of the stack scratch of :func:`_merge_sort` for lines up to
    :data:`MERGE_CAP`."""
    base = k.fb.entry_op("sort scratch", f"alloca [{2 * MERGE_CAP} x i64], align 64")
    return base, k.fb.entry_op("sort scratch 2",
                               f"getelementptr inbounds i64, ptr {base}, i64 {MERGE_CAP}")


def _merge_sort(k: Kernel, heap: _Heap, n: str, base: str, other: str) -> None:
    """Stable bottom-up merge sort of one line's indices (insertion-sorted runs of
    :data:`RUN`, then merges ping-ponging between the scratch halves ``base`` and
    ``other``, ``n`` int64 each), copied into the output line at the end."""
    fb = k.fb

    def at(buf: str, j: str) -> str:
        return fb.op(f"getelementptr inbounds i64, ptr {buf}, i64 {j}")

    def get(buf: str, j: str) -> str:
        return fb.op(f"load i64, ptr {at(buf, j)}")

    def put(buf: str, j: str, value: str) -> None:
        fb.emit(f"store i64 {value}, ptr {at(buf, j)}")

    i, token = fb.loop_begin(n)
    put(base, i, i)
    fb.loop_end(token)
    # insertion sort of each run
    runs = fb.op(f"lshr i64 {fb.op(f'add i64 {n}, {RUN - 1}')}, {RUN.bit_length() - 1}")
    r, run_token = fb.loop_begin(runs)
    start = fb.op(f"mul i64 {r}, {RUN}")
    stop = _min_i64(fb, fb.op(f"add i64 {start}, {RUN}"), n)
    t, token = fb.loop_begin(fb.op(f"sub i64 {fb.op(f'sub i64 {stop}, {start}')}, 1"))
    i = fb.op(f"add i64 {fb.op(f'add i64 {start}, 1')}, {t}")
    value = get(base, i)
    slot = fb.alloca("i64", i)
    head, compare, move, done = (fb.label("ins"), fb.label("inscmp"), fb.label("insmove"),
                                 fb.label("insdone"))
    fb.br(head)
    fb.start_block(head)
    j = fb.op(f"load i64, ptr {slot}")
    fb.emit(f"br i1 {fb.op(f'icmp sgt i64 {j}, {start}')}, label %{compare}, label %{done}")
    fb.start_block(compare)
    prev = get(base, fb.op(f"sub i64 {j}, 1"))
    fb.emit(f"br i1 {heap.before(value, prev)}, label %{move}, label %{done}")
    fb.start_block(move)
    put(base, j, prev)
    fb.emit(f"store i64 {fb.op(f'sub i64 {j}, 1')}, ptr {slot}")
    fb.br(head)
    fb.start_block(done)
    put(base, fb.op(f"load i64, ptr {slot}"), value)
    fb.loop_end(token)
    fb.loop_end(run_token)
    # merge passes: runs of ``width`` from src into dst, then swap
    width_slot = fb.alloca("i64", str(RUN))
    src_slot, dst_slot = fb.alloca("ptr", base), fb.alloca("ptr", other)
    head, body, finished = fb.label("pass"), fb.label("passbody"), fb.label("passdone")
    fb.br(head)
    fb.start_block(head)
    width = fb.op(f"load i64, ptr {width_slot}")
    fb.emit(f"br i1 {fb.op(f'icmp slt i64 {width}, {n}')}, label %{body}, "
            f"label %{finished}")
    fb.start_block(body)
    src, dst = fb.op(f"load ptr, ptr {src_slot}"), fb.op(f"load ptr, ptr {dst_slot}")
    span = fb.op(f"shl i64 {width}, 1")
    rounded = fb.op(f"add i64 {n}, {fb.op(f'sub i64 {span}, 1')}")
    pairs = fb.op(f"sdiv i64 {rounded}, {span}")
    p, pair_token = fb.loop_begin(pairs)
    lo = fb.op(f"mul i64 {p}, {span}")
    mid = _min_i64(fb, fb.op(f"add i64 {lo}, {width}"), n)
    hi = _min_i64(fb, fb.op(f"add i64 {lo}, {span}"), n)
    left_slot, right_slot = fb.alloca("i64", lo), fb.alloca("i64", mid)
    t, token = fb.loop_begin(fb.op(f"sub i64 {hi}, {lo}"))
    li, ri = fb.op(f"load i64, ptr {left_slot}"), fb.op(f"load i64, ptr {right_slot}")
    lv = get(src, _min_i64(fb, li, fb.op(f"sub i64 {mid}, 1")))  # clamped: always a line index
    rv = get(src, _min_i64(fb, ri, fb.op(f"sub i64 {hi}, 1")))
    left_ok = fb.op(f"icmp slt i64 {li}, {mid}")
    right_ok = fb.op(f"icmp slt i64 {ri}, {hi}")
    either = fb.op(f"or i1 {fb.op(f'xor i1 {left_ok}, true')}, {heap.before(rv, lv)}")
    take_right = fb.op(f"and i1 {right_ok}, {either}")
    put(dst, fb.op(f"add i64 {lo}, {t}"), fb.op(f"select i1 {take_right}, i64 {rv}, i64 {lv}"))
    step = fb.op(f"zext i1 {take_right} to i64")
    fb.emit(f"store i64 {fb.op(f'add i64 {ri}, {step}')}, ptr {right_slot}")
    left_step = fb.op(f"sub i64 1, {step}")
    fb.emit(f"store i64 {fb.op(f'add i64 {li}, {left_step}')}, ptr {left_slot}")
    fb.loop_end(token)
    fb.loop_end(pair_token)
    fb.emit(f"store i64 {span}, ptr {width_slot}")
    fb.emit(f"store ptr {dst}, ptr {src_slot}")
    fb.emit(f"store ptr {src}, ptr {dst_slot}")
    fb.br(head)
    fb.start_block(finished)
    result = fb.op(f"load ptr, ptr {src_slot}")
    i, token = fb.loop_begin(n)
    heap.put(i, get(result, i))
    fb.loop_end(token)


def _heap_sort(k: Kernel, heap: _Heap, n: str, size: str, top: bool) -> None:
    """Push every index (``top``: only ``size`` of them stay), then take the heap apart."""
    fb = k.fb
    i, token = fb.loop_begin(n)
    if top:
        push, replace, done = fb.label("push"), fb.label("replace"), fb.label("next")
        fb.emit(f"br i1 {fb.op(f'icmp slt i64 {i}, {size}')}, label %{push}, "
                f"label %{replace}")
        fb.start_block(push)
    heap.put(i, i)
    heap.sift_up(i)
    if top:
        fb.br(done)
        fb.start_block(replace)
        better = heap.before(i, heap.get("0"))
        swap = fb.label("better")
        fb.emit(f"br i1 {better}, label %{swap}, label %{done}")
        fb.start_block(swap)
        heap.put("0", i)
        heap.sift_down(size)
        fb.br(done)
        fb.start_block(done)
    fb.loop_end(token)
    heap.take_apart(size)


def lower_sort_indices(k: Kernel, node: Apply) -> None:
    """``Argsort`` (every index, ascending: merge sort for lines up to :data:`MERGE_CAP`, heap
    sort beyond) and ``TopkIndices`` (the best ``k``, descending, through a heap of ``k``)."""
    x, out, axis = node.inputs[0], node.outputs[0], node.op.axis
    fb = k.fb
    top = isinstance(node.op, TopkIndices)
    if top and node.op.k == 0:
        return  # nothing to write; the heap lives in the (empty) output line
    n = k.dim(x, axis)
    # a line longer than MERGE_CAP (maybe, when n is symbolic): one heap scratch of 2n int64
    # for every line of the call, NULL when n fits the stack or malloc failed
    long = not top and (not n.isdigit() or int(n) > MERGE_CAP)
    if long:
        slot = fb.alloca("ptr", "null")
        done = None if n.isdigit() else fb.if_begin(fb.op(f"icmp sgt i64 {n}, {MERGE_CAP}"))
        got = fb.op(f"call ptr @malloc(i64 {fb.op(f'shl i64 {n}, 4')})")
        fb.emit(f"store ptr {got}, ptr {slot}")
        if done is not None:
            fb.if_end(done)
        scratch = fb.op(f"load ptr, ptr {slot}")
    idx, outer = _outer(k, out, axis)
    heap = _Heap(k, x, out, axis, idx, descending=top)
    if top:
        _heap_sort(k, heap, n, str(node.op.k), True)
    elif not long:
        _merge_sort(k, heap, n, *_stack_scratch(k))
    else:
        merge, heap_only, joined = fb.label("merge"), fb.label("heap"), fb.label("sorted")
        if not n.isdigit():
            short, big = fb.label("short"), fb.label("big")
            fb.emit(f"br i1 {fb.op(f'icmp sle i64 {n}, {MERGE_CAP}')}, label %{short}, "
                    f"label %{big}")
            fb.start_block(short)
            _merge_sort(k, heap, n, *_stack_scratch(k))
            fb.br(joined)
            fb.start_block(big)
        fb.emit(f"br i1 {fb.op(f'icmp ne ptr {scratch}, null')}, label %{merge}, "
                f"label %{heap_only}")
        fb.start_block(merge)
        _merge_sort(k, heap, n, scratch,
                    fb.op(f"getelementptr inbounds i64, ptr {scratch}, i64 {n}"))
        fb.br(joined)
        fb.start_block(heap_only)
        _heap_sort(k, heap, n, n, False)
        fb.br(joined)
        fb.start_block(joined)
    k.close_loops(outer)
    if long:
        fb.emit(f"call void @free(ptr {scratch})")


def lower_take_along_axis(k: Kernel, node: Apply) -> None:
    x, indices = node.inputs
    out, axis = node.outputs[0], node.op.axis
    idx, toks = k.open_loops(out, range(out.ndim))
    oi = [idx[a] for a in range(out.ndim)]
    j = k.sb.convert(k.value_at(indices, oi), "int64").ref
    k.store(out, oi, k.value_at(x, _at(idx, x.ndim, axis, j)))
    k.close_loops(toks)


def lower_put_along_axis(k: Kernel, node: Apply) -> None:
    _, g, indices = node.inputs
    out, axis = node.outputs[0], node.op.axis
    nbytes = k.mul_i64(k.size(out), str(ITEMSIZE[out.dtype.name]))
    k.fb.emit(f"call void @llvm.memset.p0.i64(ptr {k.ptr(out)}, i8 0, i64 {nbytes}, i1 0)")
    idx, toks = k.open_loops(g, range(g.ndim))
    gi = [idx[a] for a in range(g.ndim)]
    j = k.sb.convert(k.value_at(indices, gi), "int64").ref
    target = _at(idx, out.ndim, axis, j)
    value = k.sb.convert(k.value_at(g, gi), out.dtype.name)
    k.store(out, target, k.sb.add(k.load(out, target), value))
    k.close_loops(toks)


# --------------------------------------------------------------------------- registrations
register_lowering(Prod, Lowering(kernel=lower_prod, fuses="input", value_consumer=True))
register_lowering(Cumsum, Lowering(kernel=lower_cumsum, fuses="input", value_consumer=True))
register_lowering(Cumprod, Lowering(kernel=lower_cumprod, fuses="input", value_consumer=True))
register_lowering(LinearScan, Lowering(kernel=lower_linear_scan, fuses="input",
                                       value_consumer=True))
# an inline value read at a shifted index: no ``fuses`` (it does not read at its own index)
register_lowering(Shift, Lowering(inline=_inline_shift, value_consumer=True))
# the sorts read the keys at random positions many times: the input is in memory
register_lowering(Argsort, Lowering(kernel=lower_sort_indices))
register_lowering(TopkIndices, Lowering(kernel=lower_sort_indices))
register_lowering(TakeAlongAxis, Lowering(kernel=lower_take_along_axis, value_consumer=True))
register_lowering(PutAlongAxis, Lowering(kernel=lower_put_along_axis, value_consumer=True))


register_tunables(__name__, ("MERGE_CAP", "RUN"))
