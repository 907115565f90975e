"""LLVM lowerings of the layout op family (symgraph/ops/layout.py), each registered with
``register_lowering`` next to its function.

``Pad`` (and the crops ``split`` makes), ``Roll`` and ``BroadcastTo`` are views: their value at
an output index is the input's value at a mapped index (or the pad constant), so a consumer
reads them inside its own loop and they get no buffer unless a consumer needs memory (then
the elementwise loop stores the mapped reads).  ``PadAdjoint`` (the gradient of an edge or
reflect pad) is a kernel: zeros, then every padded position added back where it was read.

``Triangle`` (tril/triu) reads its input at the index it writes, like an elementwise op.
The views are registered without ``fuses``: their input is read at another index than the one
being written, so the input is never computed inside their loop (nor may a kernel writing it
share their loop, nor may an update of it be written in place through them).
"""

from __future__ import annotations

from symgraph.graph import Apply
from symgraph.ops.layout import BroadcastTo, Pad, PadAdjoint, Roll, Triangle, width_sign

from .irgen import ITEMSIZE, Value
from .kernel import Kernel, broadcast_index
from .registry import Lowering, register_lowering


def _select(k: Kernel, cond: str, a: str, b: str) -> str:
    return k.fb.op(f"select i1 {cond}, i64 {a}, i64 {b}")


def _mapped(k: Kernel, mode: str, j: str, n: str) -> str:
    """Input position of padded position ``j`` (already minus ``lo``; inside ``(-n, 2n)``
    or beyond) of an axis of length ``n`` in mode "edge" or "reflect" (numpy's rule)."""
    if mode == "edge":
        low = _select(k, k.fb.op(f"icmp slt i64 {j}, 0"), "0", j)
        last = str(int(n) - 1) if n.isdigit() else k.fb.entry_op(
            f"last {n}", f"sub i64 {n}, 1")
        return _select(k, k.fb.op(f"icmp sge i64 {low}, {n}"), last, low)
    # reflect: period 2 (n - 1); one reflection per side when the pads are shorter than n
    if n.isdigit():
        period = str(max(1, 2 * (int(n) - 1)))
    else:
        twice = k.fb.entry_op(f"2n-2 {n}", f"shl i64 {n}, 1")
        twice = k.fb.entry_op(f"p {n}", f"add i64 {twice}, -2")
        small = k.fb.entry_op(f"p0 {n}", f"icmp slt i64 {twice}, 1")
        period = k.fb.entry_op(f"pp {n}", f"select i1 {small}, i64 1, i64 {twice}")
    r = k.fb.op(f"srem i64 {j}, {period}")
    r = _select(k, k.fb.op(f"icmp slt i64 {r}, 0"), k.fb.op(f"add i64 {r}, {period}"), r)
    back = k.fb.op(f"sub i64 {period}, {r}")
    return _select(k, k.fb.op(f"icmp sge i64 {r}, {n}"), back, r)


def _reflect_once(k: Kernel, j: str, n: int) -> str:
    """Reflect when ``j`` is within one period (pads shorter than ``n``): no division."""
    neg = k.fb.op(f"sub i64 0, {j}")
    j = _select(k, k.fb.op(f"icmp slt i64 {j}, 0"), neg, j)
    back = k.fb.op(f"sub i64 {2 * (n - 1)}, {j}")
    return _select(k, k.fb.op(f"icmp sge i64 {j}, {n}"), back, j)


def _inline_pad(k: Kernel, node: Apply, idx: list[str]) -> Value:
    """The input at ``i - lo`` per axis: clamped (edge), reflected (reflect), or the constant
    outside the input (constant; a crop never is outside)."""
    op_, x, out = node.op, node.inputs[0], node.outputs[0]
    src, outside_axes = list(idx), []
    for a, (lo, hi) in enumerate(op_.widths):
        if lo == 0 and width_sign(hi) <= 0:  # a crop at the end: the same index
            continue
        j = k.fb.op(f"sub nsw i64 {idx[a]}, {lo}") if lo else idx[a]
        n = k.dim(x, a)
        if op_.mode == "constant":
            if lo > 0 or width_sign(hi) > 0:
                outside_axes.append((a, j, n))
            src[a] = j
        elif op_.mode == "reflect" and n.isdigit() and max(lo, hi) < int(n):
            src[a] = "0" if int(n) == 1 else _reflect_once(k, j, int(n))
        else:
            src[a] = _mapped(k, op_.mode, j, n)
    if not outside_axes:
        return k.value_at(x, src)
    dt = out.dtype.name
    const = k.sb.const(op_.value, dt)
    inside = None
    for _, j, n in outside_axes:
        ok = k.fb.op(f"icmp ult i64 {j}, {n}")  # 0 <= j < n (negatives are huge unsigned)
        inside = ok if inside is None else k.fb.op(f"and i1 {inside}, {ok}")
    # read the input only inside it: safe when it is empty at run time, and the vectoriser
    # makes the branch a masked load (faster than a select of a clamped index's gather)
    slot = k.fb.alloca(const.ty, const.ref)
    done = k.fb.if_begin(inside)
    v = k.sb.convert(k.value_at(x, src), dt)
    k.fb.emit(f"store {const.ty} {v.ref}, ptr {slot}")
    k.fb.if_end(done)
    return Value(k.fb.op(f"load {const.ty}, ptr {slot}"), dt)


def _segment(k: Kernel, start: str, stop: str, body) -> None:
    """``for i in range(start, stop): body(i)`` (``start``/``stop`` i64 operands)."""
    count = stop if start == "0" else k.fb.op(f"sub nsw i64 {stop}, {start}")
    if not count.isdigit():
        count = _select(k, k.fb.op(f"icmp slt i64 {count}, 0"), "0", count)
    if count.isdigit() and int(count) <= 0:
        return
    i, token = k.fb.loop_begin(count)
    body(k.add_i64(i, start) if start != "0" else i)
    k.fb.loop_end(token)


def lower_pad(k: Kernel, node: Apply) -> None:
    """A buffered pad (or crop), row by row: the outer axes' input index once per row (or the
    whole row the constant), then the last axis in three runs -- the left border, a
    contiguous copy of the input row (vectorises), the right border."""
    op_, x, out = node.op, node.inputs[0], node.outputs[0]
    if out.ndim == 0:
        k.store(out, [], k.value_at(x, []))
        return
    last = out.ndim - 1
    idx, toks = k.open_loops(out, range(last))
    row = [idx[a] for a in range(last)]
    src, inside = list(row), None
    for a in range(last):
        lo, hi = op_.widths[a]
        if lo == 0 and width_sign(hi) <= 0:
            continue
        j = k.fb.op(f"sub nsw i64 {row[a]}, {lo}") if lo else row[a]
        n = k.dim(x, a)
        if op_.mode == "constant":
            src[a] = j
            if lo > 0 or width_sign(hi) > 0:
                ok = k.fb.op(f"icmp ult i64 {j}, {n}")
                inside = ok if inside is None else k.fb.op(f"and i1 {inside}, {ok}")
        else:
            src[a] = _mapped(k, op_.mode, j, n)
    dt = out.dtype.name
    const = k.sb.const(op_.value, dt)
    width = k.dim(out, last)
    if inside is not None:  # a border row: all constant
        outside = k.fb.if_begin(k.fb.op(f"xor i1 {inside}, true"))
        _segment(k, "0", width, lambda i: k.store(out, [*row, i], const))
        k.fb.if_end(outside)
        done = k.fb.if_begin(inside)
    lo, hi = op_.widths[last]
    n = k.dim(x, last)
    left = str(max(lo, 0))
    right = width if width_sign(hi) <= 0 else k.add_i64(n, str(lo)) if lo else n
    if lo > 0 and right.isdigit() and left.isdigit() and int(right) < int(left):
        right = left

    def border(i):
        if op_.mode == "constant":
            k.store(out, [*row, i], const)
            return
        j = k.fb.op(f"sub nsw i64 {i}, {lo}") if lo else i
        k.store(out, [*row, i], k.value_at(x, [*src, _mapped(k, op_.mode, j, n)]))

    def copy(i):
        j = k.fb.op(f"sub nsw i64 {i}, {lo}") if lo else i
        k.store(out, [*row, i], k.value_at(x, [*src, j]))

    _segment(k, "0", left, border)
    _segment(k, left, right, copy)
    _segment(k, right, width, border)
    if inside is not None:
        k.fb.if_end(done)
    k.close_loops(toks)


def lower_pad_adjoint(k: Kernel, node: Apply) -> None:
    """Zeros, then ``out[source(i)] += g[i]`` over the padded positions ``i``."""
    g, out = node.inputs[0], node.outputs[0]
    nbytes = k.mul_i64(k.size(out), str(ITEMSIZE[out.dtype.name]))
    k.fb.emit(f"call void @llvm.memset.p0.i64(ptr {k.ptr(out)}, i8 0, i64 {nbytes}, i1 0)")
    idx, toks = k.open_loops(g, range(g.ndim))
    gi = [idx[a] for a in range(g.ndim)]
    oi = list(gi)
    for a, (lo, hi) in enumerate(node.op.widths):
        if lo == 0 and hi == 0:
            continue
        j = k.fb.op(f"sub nsw i64 {gi[a]}, {lo}") if lo else gi[a]
        n = k.dim(out, a)
        if node.op.mode == "reflect" and n.isdigit() and max(lo, hi) < int(n):
            oi[a] = "0" if int(n) == 1 else _reflect_once(k, j, int(n))
        else:
            oi[a] = _mapped(k, node.op.mode, j, n)
    cur = k.load(out, oi)
    k.store(out, oi, k.sb.add(cur, k.sb.convert(k.value_at(g, gi), out.dtype.name)))
    k.close_loops(toks)


def _inline_roll(k: Kernel, node: Apply, idx: list[str]) -> Value:
    """``np.roll``: input index ``(i - shift) mod n`` along each rolled axis (the shift
    reduced modulo ``n`` once, outside the loops)."""
    x, src = node.inputs[0], list(idx)
    for shift, a in zip(node.op.shifts, node.op.axes):
        n = k.dim(x, a)
        if n.isdigit():
            r = str(shift % int(n)) if int(n) else "0"
        else:  # n may be 0 at run time: never divide by it
            zero = k.fb.entry_op(f"n0 {n}", f"icmp eq i64 {n}, 0")
            safe = k.fb.entry_op(f"n1 {n}", f"select i1 {zero}, i64 1, i64 {n}")
            r = k.fb.entry_op(f"roll {shift} {n}", f"srem i64 {shift}, {safe}")
        j = k.fb.op(f"sub nsw i64 {idx[a]}, {r}")  # in (-n, 2n)
        j = _select(k, k.fb.op(f"icmp slt i64 {j}, 0"), k.fb.op(f"add i64 {j}, {n}"), j)
        src[a] = _select(k, k.fb.op(f"icmp sge i64 {j}, {n}"), k.fb.op(f"sub i64 {j}, {n}"), j)
    return k.value_at(x, src)


def _inline_broadcast_to(k: Kernel, node: Apply, idx: list[str]) -> Value:
    x = node.inputs[0]
    return k.value_at(x, broadcast_index(x, node.outputs[0], idx))


def _inline_triangle(k: Kernel, node: Apply, idx: list[str]) -> Value:
    """``tril``/``triu``: the input at the same index where ``j <= i + k`` (``>=``), else 0."""
    i, j = idx[-2], idx[-1]
    shifted = k.fb.op(f"add nsw i64 {i}, {node.op.k}") if node.op.k else i
    keep = k.fb.op(f"icmp {'sle' if node.op.lower else 'sge'} i64 {j}, {shifted}")
    v = k.value_at(node.inputs[0], idx)
    return k.sb.select(Value(keep, "bool"), v, k.sb.zero(v))


# --------------------------------------------------------------------------- registrations
# views read through mapped indices (a buffered one, for a consumer needing memory, is the
# elementwise loop storing them); no ``fuses``: see the module docstring
register_lowering(Pad, Lowering(kernel=lower_pad, inline=_inline_pad, view=True,
                                value_consumer=True))
register_lowering(Roll, Lowering(inline=_inline_roll, view=True, value_consumer=True))
register_lowering(BroadcastTo, Lowering(inline=_inline_broadcast_to, view=True,
                                        value_consumer=True))
# tril/triu read their input at the index they write: an elementwise-like inline value, so
# the elementwise tree under them is computed in the same loop (``fuses``)
register_lowering(Triangle, Lowering(inline=_inline_triangle, fuses="output",
                                     value_consumer=True))
register_lowering(PadAdjoint, Lowering(kernel=lower_pad_adjoint, value_consumer=True))
