"""LLVM lowerings of softmax, log_softmax and logsumexp (``symgraph/ops/nn.py``), each
registered with ``register_lowering`` at the end.

Three loop shapes, by where the reduced axis lies:

* a short static axis (2 to :data:`SHORT_AXIS` - 1): innermost, on a host without
  AVX-512, blocks of rows transposed into a stack array and computed one row per vector
  lane (:func:`_blocked_rows`); otherwise the line unrolled, the loop over lines vectorised
  (:func:`_short_rows`);
* the innermost axis (every axis after it a static 1): one line at a time, in passes along
  it -- the max, then ``exp(v - m)`` summed (softmax stores it), then the line written
  (softmax scales the stored exps by ``1 / s``: one ``exp`` per element, as torch has it;
  computing it again in the last pass made a (1000, 1000) softmax 1.9x torch);
* any other axis: tiles of :data:`TILE` positions of the innermost axis, each pass running
  over the reduced axis for the whole tile, with the tile's maxima and sums in stack arrays
  (:func:`_tiled`).  Every pass then reads contiguous memory; a line at a time read one
  element per cache line (softmax over axis 0 of (1000, 1000) float32 was 4x torch).

Big kernels run on both cores (:mod:`codegen.lower_rows`): rows, or tiles, are the items of a
split kernel, each computed by the code the serial kernel runs for it (:func:`_short`,
:func:`_lines`, :func:`_split_tiles`), so the bits do not depend on the split.  Softmax of
(4096, 1000) float32 0.49x the serial time, with its gradient 0.49x (its row sums split too).

Softmax's gradient ``SoftmaxGrad`` (along a last axis) is computed line by line as well
(:func:`lower_softmax_grad`): the line's ``sum(g * y)``, then ``y * (g - s)`` reading the
line again from cache.

Every form propagates NaN like numpy; the log forms treat a line whose max is infinite as if
its max were 0 (``_finite_or_zero``), as the numpy reference's stable formula does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from symgraph.graph import Apply, Variable
from symgraph.ops.nn import LogSoftmax, LogSumExp, Softmax, SoftmaxGrad

from .irgen import ITEMSIZE, Value, literal
from .kernel import NO_UNROLL, NO_VECTORIZE, Kernel
from .lower_rows import group_index, split_items, threshold
from .lowerings import _reduced_index
from .native.jit import vector_registers
from .registry import Lowering, register_lowering, register_tunables

#: LLVM hints for the loop over rows of :func:`_short_rows`: one masked vector loop (no
#: scalar remainder, no vectorised epilogue).  W1's log_softmax kernel compiled in ~45 ms,
#: most of a module; with the hint its code is half and W1's cold compile ~20% shorter, the
#: same speed at 32 to 2,048 rows (cross-entropy + gradient, n = 4, 10, 15).  On AMD Zen the
#: masked loads and stores are microcoded: cross-entropy + gradient of (32, 10) took 1,066
#: ns against 510 without the hint, but LLVM 79 against 203 ms (135-140 with one interleave
#: or a width of 8; a width of 4 was masked-slow again), so the hint stays: a cold compile
#: is paid by every model, these 0.5 us per step only by small ones
ROW_LOOP_HINTS = ('!{!"llvm.loop.vectorize.predicate.enable", i1 true}',)
#: a softmax/log_softmax/logsumexp over one axis of a static length in [2, SHORT_AXIS) is
#: unrolled along it (:func:`_short_rows`)
SHORT_AXIS = 16
#: rows per block of :func:`_blocked_rows` by dtype (the lanes of one 256-bit vector)
BLOCK_ROWS = {"float32": 8, "float64": 4}
#: positions of the innermost axis per tile of :func:`_tiled`: four AVX-512 vectors of
#: float32; a tile's pass over a reduced axis of 1,000 reads 256 KB, within L2.  (32, 64 and
#: 128 measured within 5% of each other on (1000, 1000) and (64, 128, 128).)
TILE = 64
#: the tiles only pay off when the axes after the reduced one hold this many positions (or a
#: symbolic number): with 2-4 a line's elements share cache lines and a tile is mostly loop
#: overhead (softmax over axis 1 of (8, 1000, n) float32: n = 2 0.089 ms tiled against 0.035
#: line by line, 3: 0.186 / 0.060, 8: 0.053 / 0.177, 16: 0.093 / 0.432)
TILED_MINIMUM = 8


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


def _sum_exp_pass(k: Kernel, x: Variable, axes, idx: dict, m: Value,
                  out: Variable | None = None) -> Value:
    """The sum of ``exp(x - m)`` over ``axes`` at ``idx``; each term is also stored in
    ``out`` at ``x``'s index when given (softmax's last pass then only scales)."""
    dt = x.dtype.name
    acc = k.fb.alloca(m.ty, literal(0, dt))
    idx_in, inner = k.open_loops(x, axes)
    idx.update(idx_in)
    full = [idx[a] for a in range(x.ndim)]
    e = k.sb.math("exp", k.sb.sub(k.value_at(x, full), m))
    if out is not None:
        k.store(out, full, e)
    cur = Value(k.fb.op(f"load {m.ty}, ptr {acc}"), dt)
    k.fb.emit(f"store {m.ty} {k.sb.add(cur, e).ref}, ptr {acc}")
    k.close_loops(inner)
    return Value(k.fb.op(f"load {m.ty}, ptr {acc}"), dt)


def _log_softmax_value(k: Kernel, v: Value, m: Value, log_s: Value) -> Value:
    """``(v - m) - log_s`` in that order (the reference's, ``symgraph.ops.nn.LogSoftmax``):
    lines that differ by a constant give the same bits.  The outer ``fsub`` has no
    fast-math flags: with ``reassoc`` LLVM made it ``v - (m + log_s)`` to hoist the sum
    out of the loop (a float32 line of 20 then differed from its shifted copy by an ulp)."""
    inner = k.sb.sub(v, m)
    return Value(k.fb.op(f"fsub {v.ty} {inner.ref}, {log_s.ref}"), v.dtype)


def _finite_or_zero(k: Kernel, m: Value) -> Value:
    finite = Value(k.fb.op(f"fcmp olt {m.ty} {k.sb.abs(m).ref}, "
                           f"{literal(np.inf, m.dtype)}"), "bool")
    return k.sb.select(finite, m, k.sb.zero(m))


def _short_axis(x: Variable, axes) -> int | None:
    """The static length of the single reduced axis when it is short enough to unroll."""
    if len(axes) != 1:
        return None
    n = x.shape[axes[0]]
    return n if isinstance(n, int) and 2 <= n < SHORT_AXIS else None


def _tile_axis(x: Variable, axes) -> int | None:
    """For a single reduced axis with a longer axis after it: the innermost axis that is not
    a static 1 (the one :func:`_tiled` tiles); None when the reduced axis is innermost."""
    if len(axes) != 1:
        return None
    after = x.shape[axes[0] + 1:]
    if all(isinstance(d, int) for d in after) and int(np.prod(after)) < TILED_MINIMUM:
        return None
    for a in range(x.ndim - 1, axes[0], -1):
        if x.shape[a] != 1:
            return a
    return None


class _Rows(NamedTuple):
    """One unrolled row of :func:`_short_rows` inside the open loops over the other axes."""

    idx: dict[int, str]  # the index of every other axis
    at: Callable[[int], list[str]]  # the full index of element j of the row
    values: list[Value]
    exps: list[Value]  # exp(v - m)
    m: Value  # the row's max (finite or zero for the log forms)
    s: Value  # the sum of exps
    loops: list


def _short_rows(k: Kernel, x: Variable, axis: int, n: int, log: bool,
                opened: tuple[dict[int, str], list] | None = None) -> _Rows:
    """Open the loops over every axis but ``axis`` (or take ``opened``: the index of every
    other axis and the loops a split kernel opened) and compute one row of ``n`` (static)
    values unrolled: its values, max, ``exp(v - m)`` and their sum.  The caller stores and
    closes ``loops``.

    Why: a row of 10 classes as an inner loop is one masked vector per row, and its max, sum
    and exp each pay a full reduction or libmvec call for 10 lanes.  Unrolled, the loop over
    rows is the innermost one and LLVM vectorises across rows (a vector of rows per exp call;
    strided rows are gathered), and ``x`` (maybe an inlined expression) is read once, not three
    times.  bench (float32, 2,048 rows, us per call): log_softmax n=2 38.7 -> 7.3, n=4 30.4 ->
    10.6, n=8 30.1 -> 19.2, n=10 47.5 -> 34.9, n=15 52.6 -> 48.4; at 16 the two are even."""
    kept = [a for a in range(x.ndim) if a != axis]
    idx, loops = k.open_loops(x, kept) if opened is None else opened

    def at(j: int) -> list[str]:
        return [str(j) if a == axis else idx[a] for a in range(x.ndim)]

    values = [k.value_at(x, at(j)) for j in range(n)]
    return _Rows(idx, at, values, *_row_stats(k, values, log), loops)


def _chunks(fb, n: str, size: int) -> tuple[str, str, tuple]:
    """Open a loop over ``0..n`` in chunks of ``size``: (the chunk's first index, its width:
    ``size``, or what is left for the last one, the loop's token)."""
    count = fb.op(f"udiv i64 {fb.op(f'add nuw i64 {n}, {size - 1}')}, {size}")
    chunk, tok = fb.loop_begin(count)
    first = fb.op(f"mul nuw nsw i64 {chunk}, {size}")
    left = fb.op(f"sub nuw nsw i64 {n}, {first}")
    width = fb.op(f"select i1 {fb.op(f'icmp ult i64 {left}, {size}')}, i64 {left}, i64 {size}")
    return first, width, tok


def _row_stats(k: Kernel, values: list[Value], log: bool) -> tuple[list[Value], Value, Value]:
    """One unrolled row's ``exp(v - m)``, its max ``m`` (finite or zero for the log forms)
    and the sum of the exps."""
    sb = k.sb
    m = values[0]
    for v in values[1:]:
        m = sb.maximum(m, v)
    if log:
        m = _finite_or_zero(k, m)
    exps = [sb.math("exp", sb.sub(v, m)) for v in values]
    s = exps[0]
    for e in exps[1:]:
        s = sb.add(s, e)
    return exps, m, s


def _row_results(k: Kernel, values: list[Value], exps: list[Value], m: Value, s: Value,
                 log: bool) -> list[Value]:
    """log_softmax (``(v - m) - log s``, the reference's order: ``symgraph.ops.nn``) or
    softmax (``e / s``) of one row from its stats."""
    sb = k.sb
    if log:
        log_s = sb.math("log", s)
        return [_log_softmax_value(k, v, m, log_s) for v in values]
    return [sb.div(e, s) for e in exps]


def _blocked_rows(k: Kernel, node: Apply, n: int) -> bool:
    """softmax or log_softmax over a short innermost axis of ``n`` (static) on a host
    without AVX-512 (AVX2 here), :data:`BLOCK_ROWS` rows at a time: a block is copied into a
    stack array transposed (one row per vector lane), computed as a loop over its lanes that
    LLVM vectorises (one vector ``exp`` per column, and one ``log`` for log_softmax), and
    copied out; a last partial block computes its lanes past the rows on what the array
    holds and drops them.  False (nothing written) where the form does not apply.

    Why: row by row, the SLP vectoriser gave each row of 10 a vector ``exp`` of 8 lanes,
    two scalar ``exp`` calls and a scalar ``log`` (32 calls per 8 rows); LLVM would not
    vectorise the loop over rows itself (stride-``n`` gathers), and its masked form is
    microcoded on AMD Zen.  W2's (32, 10) log_softmax (``f.profile``, AVX2 EPYC): 0.9 ->
    0.6 us, W4's epoch 0.96x; W1's cold compile +4 ms (a partial block rather than a row
    loop for the rest: +26 ms).  Hosts with AVX-512 keep the row loop, whose masked vector
    loop is cheap there: on an AVX-512 Xeon, cross-entropy + gradient of (B, n) float32, n = 4,
    10, 15 and B = 32, 256, 2,048, took 1.3-3x the row loop's time in blocks of 8 rows and
    0.98-1.07x in blocks of 16 (one 512-bit vector).  Always serial (not measured on an AVX2
    host: this VM has AVX-512, where the row loop is taken and split)."""
    x, out = node.inputs[0], node.outputs[0]
    dt = x.dtype.name
    lanes = BLOCK_ROWS.get(dt)
    if lanes is None or x.ndim < 2 or node.op.axis != x.ndim - 1 or vector_registers() == 32:
        return False
    fb = k.fb
    ty = k.sb.const(0, dt).ty
    size = n * lanes
    cols_in = fb.entry_op(fb.label("bin"), f"alloca [{size} x {ty}], align 64")
    fb.entry.append(f"  call void @llvm.memset.p0.i64(ptr {cols_in}, i8 0, "
                    f"i64 {size * ITEMSIZE[dt]}, i1 0)")
    cols_out = fb.entry_op(fb.label("bout"), f"alloca [{size} x {ty}], align 64")

    def cell(arr: str, j: int, lane: str) -> str:
        at = fb.op(f"add nuw nsw i64 {lane}, {j * lanes}")
        return fb.op(f"getelementptr inbounds {ty}, ptr {arr}, i64 {at}")

    row_axis = x.ndim - 2
    idx, loops = k.open_loops(x, range(x.ndim - 2))
    first, valid, btok = _chunks(fb, k.dim(x, row_axis), lanes)

    def at(row: str, j: int) -> list[str]:
        return [idx[a] if a < row_axis else row if a == row_axis else str(j)
                for a in range(x.ndim)]

    lane, tok = fb.loop_begin(valid)  # the block's rows into columns
    row = fb.op(f"add nuw nsw i64 {first}, {lane}")
    for j in range(n):
        fb.emit(f"store {ty} {k.value_at(x, at(row, j)).ref}, ptr {cell(cols_in, j, lane)}")
    fb.loop_end(tok, (NO_VECTORIZE, NO_UNROLL))
    # one row per lane, vectorised; the lanes of a last, partial block past its rows compute
    # on what the scratch held (zeros at first) and are never copied out
    lane, tok = fb.loop_begin(str(lanes))
    values = [Value(fb.op(f"load {ty}, ptr {cell(cols_in, j, lane)}"), dt) for j in range(n)]
    log = isinstance(node.op, LogSoftmax)
    for j, r in enumerate(_row_results(k, values, *_row_stats(k, values, log), log)):
        fb.emit(f"store {ty} {r.ref}, ptr {cell(cols_out, j, lane)}")
    fb.loop_end(tok, ('!{!"llvm.loop.vectorize.enable", i1 true}',
                      f'!{{!"llvm.loop.vectorize.width", i32 {lanes}}}'))
    lane, tok = fb.loop_begin(valid)  # the columns back into rows
    row = fb.op(f"add nuw nsw i64 {first}, {lane}")
    for j in range(n):
        v = Value(fb.op(f"load {ty}, ptr {cell(cols_out, j, lane)}"), dt)
        k.store(out, at(row, j), v)
    fb.loop_end(tok, (NO_VECTORIZE, NO_UNROLL))
    fb.loop_end(btok, (NO_UNROLL,))
    k.close_loops(loops, (NO_UNROLL,), (NO_UNROLL,))
    return True


def _tiled(k: Kernel, node: Apply, axis: int, tile_axis: int) -> None:
    """``node`` (any of the three ops) over ``axis`` with the loops over every other axis
    and ``tile_axis`` cut into tiles of :data:`TILE` positions (:func:`_tile` each); on both
    cores, tile by tile, when big enough (:func:`_split_tiles`)."""
    if _split_tiles(k, node, axis, tile_axis):
        return
    x = node.inputs[0]
    outer = [a for a in range(x.ndim) if a not in (axis, tile_axis)]
    arrays = _tile_arrays(k, x)
    idx, loops = k.open_loops(x, outer)
    lo, width, tile_loop = _chunks(k.fb, k.dim(x, tile_axis), TILE)
    _tile(k, node, axis, tile_axis, arrays, idx, lo, width)
    k.fb.loop_end(tile_loop, (NO_UNROLL,))
    k.close_loops(loops, (NO_UNROLL,), (NO_UNROLL,))


def _split_tiles(k: Kernel, node: Apply, axis: int, tile_axis: int) -> bool:
    """:func:`_tiled`'s tiles as the items of a split kernel (:func:`split_items`: every
    position of the other axes times every tile); False when it stays serial."""
    x = node.inputs[0]
    groups = k.loop_groups(x, [a for a in range(x.ndim) if a not in (axis, tile_axis)], [x])

    def tiles(kk: Kernel) -> str:
        n = kk.dim(x, tile_axis)
        return kk.fb.op(f"udiv i64 {kk.fb.op(f'add nuw i64 {n}, {TILE - 1}')}, {TILE}")

    def tile(kk: Kernel, at: list[str]) -> tuple[str, ...]:
        fb = kk.fb
        lo = fb.op(f"mul nuw nsw i64 {at[-1]}, {TILE}")
        left = fb.op(f"sub nuw nsw i64 {kk.dim(x, tile_axis)}, {lo}")
        width = fb.op(f"select i1 {fb.op(f'icmp ult i64 {left}, {TILE}')}, i64 {left}, "
                      f"i64 {TILE}")
        _tile(kk, node, axis, tile_axis, _tile_arrays(kk, x), group_index(x, groups, at[:-1]),
              lo, width)
        return (NO_UNROLL,)

    return split_items(k, x, lambda kk: [kk.size(x, g) for g in groups] + [tiles(kk)], tile,
                       threshold(k, "softmax"))


def _tile_arrays(k: Kernel, x: Variable) -> tuple[str, str]:
    """A tile's two stack arrays (maxima, sums), made once per kernel function."""
    fb, ty = k.fb, k.sb.const(0, x.dtype.name).ty
    return (fb.entry_op(fb.label("tmax"), f"alloca [{TILE} x {ty}], align 64"),
            fb.entry_op(fb.label("tsum"), f"alloca [{TILE} x {ty}], align 64"))


def _tile(k: Kernel, node: Apply, axis: int, tile_axis: int, arrays: tuple[str, str],
          idx: dict[int, str], lo: str, width: str) -> None:
    """One tile of :func:`_tiled`: ``width`` positions of ``tile_axis`` from ``lo``, at
    ``idx`` on the other axes.  In passes over ``axis`` for all its positions at once: the
    maxima, the sums of ``exp(x - max)`` (softmax stores each term in ``out``), per position
    the scale (``1 / s``) or the log-sum-exp (logsumexp's result), then the lines of the
    result (softmax: ``out *= scale``; log_softmax: ``(x - max) - log(sum)``).  Maxima and
    sums live in the two stack ``arrays`` of :func:`_tile_arrays`."""
    fb, sb = k.fb, k.sb
    x, out = node.inputs[0], node.outputs[0]
    dt, kind = x.dtype.name, type(node.op)
    ident = sb.const(-np.inf, dt)
    ty = ident.ty
    maxima, sums = arrays

    def slot(arr: str, t: str) -> str:
        return fb.op(f"getelementptr inbounds {ty}, ptr {arr}, i64 {t}")

    def get(arr: str, t: str) -> Value:
        return Value(fb.op(f"load {ty}, ptr {slot(arr, t)}"), dt)

    def put(arr: str, t: str, v: Value) -> None:
        fb.emit(f"store {ty} {v.ref}, ptr {slot(arr, t)}")

    def positions(body: Callable[[str], None]) -> None:
        """``body(t)`` for every position ``t`` of the tile (``idx`` set to it)."""
        t, tok = fb.loop_begin(width)
        idx[tile_axis] = fb.op(f"add nuw nsw i64 {lo}, {t}")
        body(t)
        fb.loop_end(tok)

    def lines(body: Callable[[str], None]) -> None:
        """``body(t)`` for every index along ``axis``, for every position of the tile."""
        j, j_loop = fb.loop_begin(k.dim(x, axis))
        idx[axis] = j
        positions(body)
        fb.loop_end(j_loop, (NO_UNROLL,))

    def at() -> list[str]:
        return [idx[a] for a in range(x.ndim)]

    def start(t: str) -> None:
        put(maxima, t, ident)
        put(sums, t, sb.const(0, dt))

    positions(start)
    lines(lambda t: put(maxima, t, sb.maximum(get(maxima, t), k.value_at(x, at()))))
    if kind is not Softmax:
        positions(lambda t: put(maxima, t, _finite_or_zero(k, get(maxima, t))))

    def add_exp(t: str) -> None:
        e = sb.math("exp", sb.sub(k.value_at(x, at()), get(maxima, t)))
        if kind is Softmax:
            k.store(out, at(), e)
        put(sums, t, sb.add(get(sums, t), e))

    lines(add_exp)
    if kind is LogSumExp:
        op_ = node.op
        positions(lambda t: k.store(out, _reduced_index(op_.axes, op_.keepdims, x.ndim, idx),
                                    sb.add(get(maxima, t), sb.math("log", get(sums, t)))))
    elif kind is LogSoftmax:
        positions(lambda t: put(sums, t, sb.math("log", get(sums, t))))
        lines(lambda t: k.store(out, at(), _log_softmax_value(
            k, k.value_at(x, at()), get(maxima, t), get(sums, t))))
    else:
        positions(lambda t: put(sums, t, sb.div(sb.one(get(sums, t)), get(sums, t))))
        lines(lambda t: k.store(out, at(), sb.mul(k.load(out, at()), get(sums, t))))


def _store_short(k: Kernel, node: Apply, row: _Rows) -> None:
    """Write one unrolled row's result: softmax or log_softmax along it, or its logsumexp."""
    op_, out = node.op, node.outputs[0]
    if isinstance(op_, LogSumExp):
        k.store(out, _reduced_index(op_.axes, op_.keepdims, node.inputs[0].ndim, row.idx),
                k.sb.add(row.m, k.sb.math("log", row.s)))
        return
    log = isinstance(op_, LogSoftmax)
    for j, r in enumerate(_row_results(k, row.values, row.exps, row.m, row.s, log)):
        k.store(out, row.at(j), r)


def _short(k: Kernel, node: Apply, axis: int, n: int) -> None:
    """``node`` over a short static axis of ``n``, one unrolled row per iteration of the loop
    over rows (:func:`_short_rows`); on both cores when big enough: the first loop over rows
    split (the row loop stays the innermost, vectorised one)."""
    x = node.inputs[0]
    log = not isinstance(node.op, Softmax)
    groups = k.loop_groups(x, [a for a in range(x.ndim) if a != axis], [x])

    def rows(kk: Kernel, at: list[str]) -> tuple[str, ...]:
        idx = group_index(x, groups[:1], at)
        inner, loops = kk.open_groups(x, groups[1:])
        idx.update(inner)
        _store_short(kk, node, _short_rows(kk, x, axis, n, log, (idx, loops)))
        kk.close_loops(loops, ROW_LOOP_HINTS)
        return () if loops else ROW_LOOP_HINTS

    if groups and split_items(k, x, lambda kk: [kk.size(x, groups[0])], rows,
                              threshold(k, "softmax")):
        return
    row = _short_rows(k, x, axis, n, log)
    _store_short(k, node, row)
    k.close_loops(row.loops, ROW_LOOP_HINTS)


def _line(k: Kernel, node: Apply, axis: int, idx: dict[int, str]) -> None:
    """One line of ``node`` along ``axis`` (the innermost, or one with fewer than
    :data:`TILED_MINIMUM` positions after it) at ``idx`` (every other axis), in passes along
    it: the max, ``exp(v - m)`` summed (softmax stores it), then the line (softmax scales the
    stored exps by ``1 / s``) or logsumexp's value."""
    op_, x, out = node.op, node.inputs[0], node.outputs[0]
    softmax = isinstance(op_, Softmax)
    m = _max_pass(k, x, (axis,), idx)
    if not softmax:
        m = _finite_or_zero(k, m)
    s = _sum_exp_pass(k, x, (axis,), idx, m, out=out if softmax else None)
    if isinstance(op_, LogSumExp):
        k.store(out, _reduced_index(op_.axes, op_.keepdims, x.ndim, idx),
                k.sb.add(m, k.sb.math("log", s)))
        return
    idx_in, inner = k.open_loops(x, (axis,))
    idx.update(idx_in)
    full = [idx[a] for a in range(x.ndim)]
    if not softmax:
        log_s = k.sb.math("log", s)
        k.store(out, full, _log_softmax_value(k, k.value_at(x, full), m, log_s))
    else:
        k.store(out, full, k.sb.mul(k.load(out, full), k.sb.div(k.sb.one(s), s)))
    k.close_loops(inner)


def _lines(k: Kernel, node: Apply, axis: int,
           one_line: Callable[[Kernel, Apply, int, dict[int, str]], None] | None = None) -> None:
    """``node`` along ``axis``, line by line (``one_line``, by default :func:`_line`); on
    both cores, line by line, when big enough."""
    one_line = one_line or _line
    x = node.inputs[0]
    kept = [a for a in range(x.ndim) if a != axis]
    groups = k.loop_groups(x, kept, list(node.inputs))

    def line(kk: Kernel, at: list[str]) -> tuple[str, ...]:
        one_line(kk, node, axis, group_index(x, groups, at))
        return ()

    if groups and split_items(k, x, lambda kk: [kk.size(x, g) for g in groups], line,
                              threshold(k, "softmax")):
        return
    idx, outer = k.open_loops(x, kept)
    one_line(k, node, axis, idx)
    k.close_loops(outer)


def lower_softmax(k: Kernel, node: Apply) -> None:
    x, axis = node.inputs[0], node.op.axis
    n = _short_axis(x, (axis,))
    if n is not None and _blocked_rows(k, node, n):
        return
    if n is not None:
        _short(k, node, axis, n)
        return
    ta = _tile_axis(x, (axis,))
    if ta is not None:
        _tiled(k, node, axis, ta)
        return
    _lines(k, node, axis)


def lower_logsumexp(k: Kernel, node: Apply) -> None:
    op_, x = node.op, node.inputs[0]
    n = _short_axis(x, op_.axes)
    if n is not None:
        _short(k, node, op_.axes[0], n)
        return
    ta = _tile_axis(x, op_.axes)
    if ta is not None:
        _tiled(k, node, op_.axes[0], ta)
        return
    if len(op_.axes) == 1:
        _lines(k, node, op_.axes[0])
        return
    kept = [a for a in range(x.ndim) if a not in op_.axes]
    idx, outer = k.open_loops(x, kept)
    m = _finite_or_zero(k, _max_pass(k, x, op_.axes, idx))
    s = _sum_exp_pass(k, x, op_.axes, idx, m)
    k.store(node.outputs[0], _reduced_index(op_.axes, op_.keepdims, x.ndim, idx),
            k.sb.add(m, k.sb.math("log", s)))
    k.close_loops(outer)


def _grad_line(k: Kernel, node: Apply, axis: int, idx: dict[int, str]) -> None:
    """One line of softmax's gradient ``y * (g - sum(g * y))`` along ``axis`` at ``idx``:
    the sum, then the line (its ``y`` and ``g`` read again while in cache)."""
    (y, g), out = node.inputs, node.outputs[0]
    zero = k.sb.const(0, y.dtype.name)
    acc = k.fb.alloca(zero.ty, zero.ref)

    def along() -> tuple[list[str], Value, Value, list]:
        idx_in, inner = k.open_loops(y, (axis,))
        idx.update(idx_in)
        full = [idx[a] for a in range(y.ndim)]
        return full, k.value_at(y, full), k.value_at(g, full), inner

    _, yv, gv, inner = along()
    cur = Value(k.fb.op(f"load {zero.ty}, ptr {acc}"), zero.dtype)
    k.fb.emit(f"store {zero.ty} {k.sb.add(cur, k.sb.mul(gv, yv)).ref}, ptr {acc}")
    k.close_loops(inner)
    total = Value(k.fb.op(f"load {zero.ty}, ptr {acc}"), zero.dtype)
    full, yv, gv, inner = along()
    k.store(out, full, k.sb.mul(yv, k.sb.sub(gv, total)))
    k.close_loops(inner)


def lower_softmax_grad(k: Kernel, node: Apply) -> None:
    """``SoftmaxGrad`` line by line (:func:`_grad_line`), on both cores when big enough (the
    row kernels' threshold).  Why one kernel: the row sums and the elementwise pass after
    them each read ``y`` and ``g`` from memory; here the second reads them from cache."""
    _lines(k, node, node.op.axis, _grad_line)


register_lowering(Softmax, Lowering(kernel=lower_softmax, value_consumer=True))
register_lowering(SoftmaxGrad, Lowering(kernel=lower_softmax_grad, value_consumer=True))
register_lowering(LogSoftmax, Lowering(kernel=lower_softmax, value_consumer=True))
register_lowering(LogSumExp, Lowering(kernel=lower_logsumexp, value_consumer=True))


register_tunables(__name__, ("ROW_LOOP_HINTS", "SHORT_AXIS", "TILE", "TILED_MINIMUM",
                             "BLOCK_ROWS"))
