"""LLVM lowerings of the pooling ops (symgraph/ops/conv.py), each registered with
``register_lowering`` at the end.

Direct loops over the outputs and their windows; the max-pool family finds each window's
first maximum (torch's rule: a larger value or a NaN replaces) with branch-free selects over
clamped reads, or, for windows of more than ``UNROLL_TAPS`` taps, with loops over the
window's rows and columns inside the input.  The average pool's gradient spreads each share
tap by tap over the ranges of :class:`codegen.lower_conv._Taps` (no branch in the innermost
loop).
"""

from __future__ import annotations

from symgraph.graph import Apply, Variable
from symgraph.ops.conv import (
    AvgPool2D,
    AvgPool2DGrad,
    MaxPool2D,
    MaxPool2DGather,
    MaxPool2DGrad,
)

from .irgen import MEM_TYPE, Value, literal
from .kernel import Kernel
from .lower_conv import _accumulate, _iadd, _imax, _imin, _imul, _memset0, _op, _select, _Taps
from .registry import Lowering, register_lowering, register_tunables

#: a max pool whose window has more taps than this scans it with loops (the first maximum's
#: value and place carried in stack slots) instead of one unrolled select per tap, whose
#: compile grew faster than the taps: 12x12 0.8 s, 32x32 7.9 s, 56x56 (a global max pool of
#: a 56x56 map) 77 s for the forward and gradient kernels
UNROLL_TAPS = 64


def _window(k: Kernel, node: Apply, x: Variable, out: Variable, visit) -> None:
    """For every output element (n, c, oh, ow) of a pooling: ``visit(idx, taps)`` where
    ``taps`` lists, per window tap, (valid?, clamped input index)."""
    op = node.op
    (kh, kw), (sy, sx), ((pt, _), (pl, _)) = op.kernel, op.stride, op.padding
    idx, tokens = k.open_loops(out, range(4))
    n, c, oh, ow = (idx[a] for a in range(4))
    h, w = k.dim(x, 2), k.dim(x, 3)
    rows, cols = [], []
    for i in range(kh):
        ih = _iadd(k, _imul(k, oh, sy), i - pt)
        rows.append(_clamped(k, ih, h))
    for j in range(kw):
        iw = _iadd(k, _imul(k, ow, sx), j - pl)
        cols.append(_clamped(k, iw, w))
    taps = []
    for ok_h, ih in rows:
        for ok_w, iw in cols:
            taps.append((_op(k, f"and i1 {ok_h}, {ok_w}"), [n, c, ih, iw]))
    visit([n, c, oh, ow], taps)
    k.close_loops(tokens)


def _clamped(k: Kernel, index: str, length: str) -> tuple[str, str]:
    """(0 <= index < length, the index clamped into range: always a safe read)."""
    inside = _op(k, f"icmp ult i64 {index}, {length}")
    return inside, _select(k, inside, index, "0")


def _first_max(k: Kernel, x: Variable, taps) -> tuple[Value, list[str]]:
    """Value and input index of a window's first maximum: the first valid tap, then any
    larger value or a NaN replaces (torch's rule)."""
    dt = x.dtype.name
    best, where, seen = None, None, None
    for ok, index in taps:
        v = k.load(x, index)
        if best is None:
            best, where, seen = v, list(index), ok
            continue
        larger = k.sb.or_(k.sb.gt(v, best), k.sb.isnan(v))
        first = _op(k, f"xor i1 {seen}, true")  # no valid tap yet
        take = _op(k, f"and i1 {ok}, {_op(k, f'or i1 {larger.ref}, {first}')}")
        best = Value(_op(k, f"select i1 {take}, {v.ty} {v.ref}, {v.ty} {best.ref}"), dt)
        where = [_select(k, take, a, b) for a, b in zip(index, where)]
        seen = _op(k, f"or i1 {seen}, {ok}")
    return best, where


def _rolled(node: Apply) -> bool:
    kh, kw = node.op.kernel
    return kh * kw > UNROLL_TAPS


def _each_output(k: Kernel, var: Variable, visit) -> None:
    """``visit([n, c, oh, ow])`` for every element of the pooled-shape ``var``."""
    idx, tokens = k.open_loops(var, range(4))
    visit([idx[a] for a in range(4)])
    k.close_loops(tokens)


def _span(k: Kernel, o: str, stride: int, pad: int, size: int, length: str
          ) -> tuple[str, str]:
    """(first, count) of the input indices of output ``o``'s window that lie in
    ``[0, length)`` (never none: the padding is at most half the window)."""
    start = _iadd(k, _imul(k, o, stride), -pad)
    first = _imax(k, start, "0")
    return first, _op(k, f"sub nsw i64 {_imin(k, _iadd(k, start, size), length)}, {first}")


def _scanned_max(k: Kernel, node: Apply, x: Variable, idx: list[str]
                 ) -> tuple[Value, list[str]]:
    """As :func:`_first_max` for output ``idx``, by loops over the window's taps inside the
    input: from -inf at the first of them, a larger value or a NaN replaces (torch's loop)."""
    op, dt = node.op, x.dtype.name
    ty = MEM_TYPE[dt]
    n, c, oh, ow = idx
    (rows, cols) = (_span(k, o, op.stride[a], op.padding[a][0], op.kernel[a], k.dim(x, 2 + a))
                    for a, o in enumerate((oh, ow)))
    best = k.fb.alloca(ty, literal(float("-inf"), dt))
    at = [k.fb.alloca("i64", first) for first in (rows[0], cols[0])]
    a, t_a = k.fb.loop_begin(rows[1])
    b, t_b = k.fb.loop_begin(cols[1])
    place = [_iadd(k, rows[0], a), _iadd(k, cols[0], b)]
    v = k.load(x, [n, c, *place])
    cur = Value(_op(k, f"load {ty}, ptr {best}"), dt)
    take = k.sb.or_(k.sb.gt(v, cur), k.sb.isnan(v)).ref
    k.fb.emit(f"store {ty} {_op(k, f'select i1 {take}, {ty} {v.ref}, {ty} {cur.ref}')}, "
              f"ptr {best}")
    for slot, i in zip(at, place):
        k.fb.emit(f"store i64 {_select(k, take, i, _op(k, f'load i64, ptr {slot}'))}, "
                  f"ptr {slot}")
    k.fb.loop_end(t_b)
    k.fb.loop_end(t_a)
    where = [n, c, *(_op(k, f"load i64, ptr {slot}") for slot in at)]
    return Value(_op(k, f"load {ty}, ptr {best}"), dt), where


def lower_max_pool2d(k: Kernel, node: Apply) -> None:
    x, out = node.inputs[0], node.outputs[0]
    if _rolled(node):
        return _each_output(k, out, lambda idx: k.store(out, idx,
                                                        _scanned_max(k, node, x, idx)[0]))
    _window(k, node, x, out, lambda idx, taps: k.store(out, idx, _first_max(k, x, taps)[0]))


def lower_max_pool2d_grad(k: Kernel, node: Apply) -> None:
    """Windows that cannot overlap (stride >= kernel, no padding: every tap is inside the
    input and belongs to one window) write each tap -- ``g`` at the first maximum, else 0 --
    with no read-modify-write; otherwise ``g`` is added at each window's maximum."""
    x, g = node.inputs
    out, op = node.outputs[0], node.op
    dt = out.dtype.name
    _memset0(k, out)
    disjoint = (all(s >= n for s, n in zip(op.stride, op.kernel))
                and not any(any(p) for p in op.padding))
    if _rolled(node):
        return _each_output(k, g, lambda idx: _accumulate(
            k, out, _scanned_max(k, node, x, idx)[1], k.sb.convert(k.load(g, idx), dt)))

    def visit(idx, taps):
        _, where = _first_max(k, x, taps)
        value = k.sb.convert(k.load(g, idx), dt)
        if not disjoint:
            _accumulate(k, out, where, value)
            return
        for _, index in taps:
            same = [_op(k, f"icmp eq i64 {a}, {b}") for a, b in zip(index[2:], where[2:])]
            hit = _op(k, f"and i1 {same[0]}, {same[1]}")
            k.store(out, index, Value(_op(k, f"select i1 {hit}, {value.ty} {value.ref}, "
                                             f"{value.ty} {literal(0, dt)}"), dt))
    _window(k, node, x, g, visit)


def lower_max_pool2d_gather(k: Kernel, node: Apply) -> None:
    x, v = node.inputs
    out = node.outputs[0]
    if _rolled(node):
        return _each_output(k, out, lambda idx: k.store(
            out, idx, k.load(v, _scanned_max(k, node, x, idx)[1])))
    _window(k, node, x, out,
            lambda idx, taps: k.store(out, idx, k.load(v, _first_max(k, x, taps)[1])))


def lower_avg_pool2d(k: Kernel, node: Apply) -> None:
    x, out = node.inputs[0], node.outputs[0]
    dt = out.dtype.name
    kh, kw = node.op.kernel

    def visit(idx, taps):
        total = k.sb.const(0, dt)
        for ok, index in taps:
            v = k.load(x, index)
            total = k.sb.add(total, Value(_op(k, f"select i1 {ok}, {v.ty} {v.ref}, "
                                                 f"{v.ty} {literal(0, dt)}"), dt))
        k.store(out, idx, k.sb.div(total, k.sb.const(kh * kw, dt)))
    _window(k, node, x, out, visit)


def lower_avg_pool2d_grad(k: Kernel, node: Apply) -> None:
    """Each ``g / (kh * kw)`` added over its window, tap by tap (branch-free ranges)."""
    g, x = node.inputs
    out = node.outputs[0]
    dt = out.dtype.name
    kh, kw = node.op.kernel
    _memset0(k, out)
    n, t_n = k.fb.loop_begin(k.dim(g, 0))
    c, t_c = k.fb.loop_begin(k.dim(g, 1))
    taps = _Taps(k, node.op, x, g)
    taps.open_taps()
    oh, ow, ih, iw = taps.open_positions()
    share = k.sb.div(k.sb.convert(k.load(g, [n, c, oh, ow]), dt), k.sb.const(kh * kw, dt))
    _accumulate(k, out, [n, c, ih, iw], share)
    taps.close(4)
    k.fb.loop_end(t_c)
    k.fb.loop_end(t_n)



register_lowering(MaxPool2D, Lowering(kernel=lower_max_pool2d))
register_lowering(MaxPool2DGrad, Lowering(kernel=lower_max_pool2d_grad))
register_lowering(MaxPool2DGather, Lowering(kernel=lower_max_pool2d_gather))
register_lowering(AvgPool2D, Lowering(kernel=lower_avg_pool2d))
register_lowering(AvgPool2DGrad, Lowering(kernel=lower_avg_pool2d_grad))
register_tunables(__name__, ("UNROLL_TAPS",))
