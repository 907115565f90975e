"""LLVM lowerings of the pooling ops (symgraph/ops/conv.py), each registered with
``register_lowering`` at the end.

Direct loops over the outputs and their windows; the max-pool family finds each window's
first maximum (torch's rule: a larger value or a NaN replaces) with branch-free selects over
clamped reads.  The average pool's gradient spreads each share tap by tap over the ranges
of :class:`codegen.lower_conv._Taps` (no branch in the innermost loop).
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

from .irgen import Value, literal
from .kernel import Kernel
from .lower_conv import _accumulate, _iadd, _imul, _memset0, _op, _select, _Taps
from .registry import Lowering, register_lowering


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


def lower_max_pool2d(k: Kernel, node: Apply) -> None:
    x, out = node.inputs[0], node.outputs[0]
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
