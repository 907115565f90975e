"""LLVM lowerings of the conv op family (symgraph/ops/conv.py), each registered with
``register_lowering`` next to its function.

Two schemes, chosen per node by shape (:func:`use_gemm`):

* **gemm**: per image and group, a tile of output rows is unfolded (im2col) into a stack
  buffer of at most ``TILE_BYTES`` (or a ``malloc``'d one of ``HEAP_TILE_BYTES`` when a
  single row needs more) and multiplied by the weights in one BLAS gemm whose
  C operand is the output itself (``ldc`` = the output plane): the forward is
  ``W_g @ col``, the weight gradient ``dW_g += g_tile @ col^T``, the input gradient
  ``col = W_g^T @ g_tile`` folded back (col2im) into ``dx``.  Needs static channels (the
  batch may be symbolic; symbolic spatial sizes size a ``malloc``'d tile at run time).
* **direct**: loops over the kernel taps, then over the output positions whose tap lands
  inside the input (the ranges are computed, so the innermost loop has no branch and
  vectorises along the width): for depthwise convolutions (one filter per group), fewer
  than ``GEMM_MIN_REDUCTION`` products per output, symbolic channels.  Measured on
  the LeNet-style convs of bench/conv.py (1 -> 16 and 16 -> 32 channels, 3x3), the gemm
  route was 4-10x faster than these loops even for a single input channel.

Pooling is in :mod:`codegen.lower_pool`.
Pipeline: graph -> grad -> rewrite -> fusion -> **lower** (this module) -> LLVM -> call.
"""

from __future__ import annotations

from collections.abc import Callable

from symgraph.graph import Apply, Variable
from symgraph.ops.conv import (
    Conv2D,
    Conv2DInputGrad,
    Conv2DWeightGrad,
)

from .irgen import ITEMSIZE, MEM_TYPE, Value, is_float, literal
from .kernel import NO_UNROLL, Kernel
from .lower_blas import blas_int
from .native import blas
from .registry import Lowering, register_lowering, register_tunables

__all__ = ["GEMM_MIN_FILTERS", "GEMM_MIN_REDUCTION", "HEAP_TILE_BYTES", "ROW_BYTES",
           "TILE_BYTES", "use_gemm"]

#: the im2col tile lives on the stack: at most this many bytes
TILE_BYTES = 192 * 1024
#: a conv one of whose output rows unfolds to more than TILE_BYTES takes its tile from
#: ``malloc`` (once per kernel call), of at most this many bytes (at least one row); if
#: that fails, the kernel runs the direct loops instead.  (Those loops were 3.7-5.6x torch
#: for such convs: C=64 k=5 at 32x32, C=256 k=3 at 28x28.)
HEAP_TILE_BYTES = 1 << 20
#: the gemm route needs at least this many filters per group (gemm's M) ...
GEMM_MIN_FILTERS = 2
#: ... and this many products per output (channels per group x kernel taps, gemm's K)
GEMM_MIN_REDUCTION = 4
#: the direct weight gradient's row of partial sums (a stack array) holds at most this many
#: bytes: a longer (or symbolic) output row is swept in chunks of that many positions.  Sized
#: by the row instead, a 1-d convolution over 1.2M float64 positions put a 9.6 MB array on
#: the stack and crashed the process (its ``alloca`` is in the entry block: the gemm route's
#: kernels have it too, for their direct fallback)
ROW_BYTES = 32 * 1024


# --------------------------------------------------------------------------- integer helpers


def _op(k: Kernel, text: str) -> str:
    return k.fb.op(text)


def _imul(k: Kernel, a: str, b) -> str:
    b = str(b)
    if a == "0" or b == "0":
        return "0"
    if b == "1":
        return a
    if a == "1":
        return b
    if a.lstrip("-").isdigit() and b.lstrip("-").isdigit():
        return str(int(a) * int(b))
    return _op(k, f"mul nsw i64 {a}, {b}")


def _iadd(k: Kernel, a: str, b) -> str:
    b = str(b)
    if b == "0":
        return a
    if a == "0":
        return b
    if a.lstrip("-").isdigit() and b.lstrip("-").isdigit():
        return str(int(a) + int(b))
    return _op(k, f"add nsw i64 {a}, {b}")


def _select(k: Kernel, cond: str, a: str, b: str) -> str:
    return _op(k, f"select i1 {cond}, i64 {a}, i64 {b}")


def _imax(k: Kernel, a: str, b: str) -> str:
    return _select(k, _op(k, f"icmp sgt i64 {a}, {b}"), a, b)


def _imin(k: Kernel, a: str, b: str) -> str:
    return _select(k, _op(k, f"icmp slt i64 {a}, {b}"), a, b)


def _valid_range(k: Kernel, outputs: str, length: str, offset: str, stride: int
                 ) -> tuple[str, str]:
    """(first, count) of the outputs ``o`` in ``[0, outputs)`` whose input index
    ``o * stride + offset`` lies in ``[0, length)``."""
    neg = _op(k, f"sub nsw i64 0, {offset}")
    up = _op(k, f"sdiv i64 {_iadd(k, neg, stride - 1)}, {stride}")
    first = _select(k, _op(k, f"icmp sgt i64 {offset}, 0"), "0", up)
    top = _op(k, f"sub nsw i64 {_iadd(k, length, -1)}, {offset}")
    last = _op(k, f"add nsw i64 {_op(k, f'sdiv i64 {top}, {stride}')}, 1")
    end = _select(k, _op(k, f"icmp slt i64 {top}, 0"), "0", _imin(k, outputs, last))
    return first, _imax(k, _op(k, f"sub nsw i64 {end}, {first}"), "0")


def _memset0(k: Kernel, var: Variable) -> None:
    nbytes = k.mul_i64(k.size(var), str(ITEMSIZE[var.dtype.name]))
    k.fb.emit(f"call void @llvm.memset.p0.i64(ptr {k.ptr(var)}, i8 0, i64 {nbytes}, i1 0)")


def _at(k: Kernel, base: str, ty: str, offset: str) -> str:
    return base if offset == "0" else _op(k, f"getelementptr inbounds {ty}, ptr {base}, "
                                             f"i64 {offset}")


# --------------------------------------------------------------------------- tap loops


class _Taps:
    """Loops over the kernel taps ``(i, j)`` and then over the output positions whose tap
    lands inside the input: ``open_taps`` then (anything) then ``open_positions``."""

    def __init__(self, k: Kernel, op, x: Variable, out: Variable):
        self.k, self.op = k, op
        self.h, self.w = k.dim(x, 2), k.dim(x, 3)
        self.ho, self.wo = k.dim(out, 2), k.dim(out, 3)
        self.tokens: list = []

    def open_taps(self) -> tuple[str, str]:
        k, op = self.k, self.op
        (kh, kw), ((pt, _), (pl, _)) = op.kernel, op.padding
        dy, dx = getattr(op, "dilation", (1, 1))
        i, t1 = k.fb.loop_begin(str(kh))
        self.off_h = _iadd(k, _imul(k, i, dy), -pt)
        self.rows = _valid_range(k, self.ho, self.h, self.off_h, op.stride[0])
        j, t2 = k.fb.loop_begin(str(kw))
        self.off_w = _iadd(k, _imul(k, j, dx), -pl)
        self.cols = _valid_range(k, self.wo, self.w, self.off_w, op.stride[1])
        self.tokens += [t1, t2]
        return i, j

    def open_positions(self, rows: tuple[str, str] | None = None
                       ) -> tuple[str, str, str, str]:
        """(oh, ow, ih, iw); ``rows`` narrows the output rows to ``(first, count)``."""
        k, (sy, sx) = self.k, self.op.stride
        first, count = rows or self.rows
        a, t3 = k.fb.loop_begin(count)
        oh = _iadd(k, first, a)
        ih = _iadd(k, _imul(k, oh, sy), self.off_h)
        b, t4 = k.fb.loop_begin(self.cols[1])
        ow = _iadd(k, self.cols[0], b)
        iw = _iadd(k, _imul(k, ow, sx), self.off_w)
        self.tokens += [t3, t4]
        return oh, ow, ih, iw

    def padded(self, body: Callable[[str, str], None]) -> None:
        """``body(oh, ow)`` where the tap lands in the padding, which the other loops skip:
        ``0 * w`` or ``0 * g`` there is NaN when ``w`` or ``g`` is not (as numpy, torch)."""
        k = self.k
        a, t3 = k.fb.loop_begin(self.ho)
        b, t4 = k.fb.loop_begin(self.wo)
        inside = [_op(k, f"icmp ult i64 {_op(k, f'sub i64 {o}, {first}')}, {count}")
                  for o, (first, count) in ((a, self.rows), (b, self.cols))]
        done = k.fb.if_begin(_op(k, f"xor i1 {_op(k, 'and i1 ' + ', '.join(inside))}, true"))
        body(a, b)
        k.fb.if_end(done)
        k.fb.loop_end(t4)
        k.fb.loop_end(t3)

    def close(self, n: int) -> None:
        """Close the last ``n`` loops.  They stay rolled: unrolled (3x3 taps, then the rows
        of a position range bounded by 8), LLVM's loop strength reduction took most of a
        conv kernel's 50-80 ms compile, for no faster a step."""
        for _ in range(n):
            self.k.fb.loop_end(self.tokens.pop(), (NO_UNROLL,))


def _accumulate(k: Kernel, var: Variable, idx: list[str], term: Value) -> None:
    k.store(var, idx, k.sb.add(k.load(var, idx), term))


def _group(k: Kernel, op, f: str, filters: Variable) -> str:
    """The group of filter ``f`` (``filters`` is (F, ...))."""
    if op.groups == 1:
        return "0"
    fg = _op(k, f"sdiv i64 {k.dim(filters, 0)}, {op.groups}")
    return _op(k, f"sdiv i64 {f}, {fg}")


# --------------------------------------------------------------------------- direct scheme


def _direct_forward(k: Kernel, node: Apply) -> None:
    """``out[n, f] += w[f, c, i, j] * x[n, g*Cg + c, shifted]`` tap by tap."""
    x, w = node.inputs
    out, op = node.outputs[0], node.op
    _memset0(k, out)
    n, t_n = k.fb.loop_begin(k.dim(x, 0))
    f, t_f = k.fb.loop_begin(k.dim(w, 0))
    grp = _group(k, op, f, w)
    c, t_c = k.fb.loop_begin(k.dim(w, 1))
    cin = _iadd(k, _imul(k, grp, k.dim(w, 1)), c)
    taps = _Taps(k, op, x, out)
    i, j = taps.open_taps()
    wv = k.load(w, [f, c, i, j])
    inf = literal(float("inf"), wv.dtype)
    done = k.fb.if_begin(_op(k, f"fcmp uge {wv.ty} {k.sb.abs(wv).ref}, {inf}"))  # NaN, inf
    taps.padded(lambda oh, ow: _accumulate(k, out, [n, f, oh, ow], k.sb.mul(wv, k.sb.zero(wv))))
    k.fb.if_end(done)
    oh, ow, ih, iw = taps.open_positions()
    _accumulate(k, out, [n, f, oh, ow], k.sb.mul(wv, k.load(x, [n, cin, ih, iw])))
    taps.close(4)
    for t in (t_c, t_f, t_n):
        k.fb.loop_end(t)


def _direct_input_grad(k: Kernel, node: Apply) -> None:
    """``dx[n, g*Cg + c, shifted] += w[f, c, i, j] * g[n, f]`` tap by tap."""
    g, w, x = node.inputs
    out, op = node.outputs[0], node.op
    _memset0(k, out)
    n, t_n = k.fb.loop_begin(k.dim(g, 0))
    f, t_f = k.fb.loop_begin(k.dim(w, 0))
    grp = _group(k, op, f, w)
    c, t_c = k.fb.loop_begin(k.dim(w, 1))
    cin = _iadd(k, _imul(k, grp, k.dim(w, 1)), c)
    taps = _Taps(k, op, x, g)
    i, j = taps.open_taps()
    wv = k.load(w, [f, c, i, j])
    oh, ow, ih, iw = taps.open_positions()
    _accumulate(k, out, [n, cin, ih, iw], k.sb.mul(wv, k.load(g, [n, f, oh, ow])))
    taps.close(4)
    for t in (t_c, t_f, t_n):
        k.fb.loop_end(t)


def _direct_weight_grad(k: Kernel, node: Apply) -> None:
    """``dw[f, c, i, j] = sum_{n, positions} x[n, g*Cg + c, shifted] * g[n, f]``.

    Per tap the products accumulate into a row of ``Wo`` partial sums (the loop over a
    row's positions is a vector multiply-add into it), summed once per tap: a scalar
    accumulator made every row end in a horizontal reduction (bench/direct_conv.py's
    depthwise 3x3 over (64, 32, 8, 8): 952 -> 499 us; 5x5 over (16, 8, 28, 28): 582 ->
    310 us)."""
    x, g = node.inputs
    out, op = node.outputs[0], node.op
    dt = out.dtype.name
    ty = MEM_TYPE[dt]
    wo = k.dim(g, 3)
    most = max(1, ROW_BYTES // ITEMSIZE[dt])
    span = wo if wo.isdigit() and int(wo) <= most else str(most)  # the row's length
    row = k.fb.entry_op("wgrow", f"alloca {ty}, i64 {span}, align 64")
    row_bytes = k.mul_i64(span, str(ITEMSIZE[dt]))
    f, t_f = k.fb.loop_begin(k.dim(out, 0))
    grp = _group(k, op, f, out)
    # the sum of 0 * g[:, f]: 0, or NaN when a g is not finite (0 * g at padded x counts)
    zero = k.sb.const(0, dt)
    probe = k.fb.alloca(zero.ty, zero.ref)
    loops = [k.fb.loop_begin(k.dim(g, a)) for a in (0, 2, 3)]
    gv = k.load(g, [loops[0][0], f, loops[1][0], loops[2][0]])
    cur = Value(k.fb.op(f"load {ty}, ptr {probe}"), dt)
    k.fb.emit(f"store {ty} {k.sb.add(cur, k.sb.mul(zero, gv)).ref}, ptr {probe}")
    for _, t in reversed(loops):
        k.fb.loop_end(t)
    flag = Value(k.fb.op(f"load {ty}, ptr {probe}"), dt)
    non_finite = _op(k, f"fcmp uno {ty} {flag.ref}, {flag.ref}")
    c, t_c = k.fb.loop_begin(k.dim(out, 1))
    cin = _iadd(k, _imul(k, grp, k.dim(out, 1)), c)
    taps = _Taps(k, op, x, g)
    i, j = taps.open_taps()
    k.fb.emit(f"call void @llvm.memset.p0.i64(ptr {row}, i8 0, i64 {row_bytes}, i1 0)")
    n, t_n = k.fb.loop_begin(k.dim(x, 0))
    if span == wo:  # the whole output row fits: its partial sums at their positions
        oh, ow, ih, iw = taps.open_positions()
        slot = _at(k, row, ty, ow)
    else:
        oh, ow, ih, iw, slot_index = _chunked_positions(k, taps, span)
        slot = _at(k, row, ty, slot_index)
    cur = Value(k.fb.op(f"load {ty}, ptr {slot}"), dt)
    term = k.sb.mul(k.load(x, [n, cin, ih, iw]), k.load(g, [n, f, oh, ow]))
    k.fb.emit(f"store {ty} {k.sb.add(cur, term).ref}, ptr {slot}")
    taps.close(2 if span == wo else 3)
    k.fb.loop_end(t_n, (NO_UNROLL,))
    zero = k.sb.const(0, dt)
    acc = k.fb.alloca(zero.ty, zero.ref)
    q, t_q = k.fb.loop_begin(span)
    total = k.sb.add(Value(k.fb.op(f"load {ty}, ptr {acc}"), dt),
                     Value(k.fb.op(f"load {ty}, ptr {_at(k, row, ty, q)}"), dt))
    k.fb.emit(f"store {ty} {total.ref}, ptr {acc}")
    k.fb.loop_end(t_q)
    k.store(out, [f, c, i, j], Value(k.fb.op(f"load {ty}, ptr {acc}"), dt))
    done = k.fb.if_begin(non_finite)
    n, t_n = k.fb.loop_begin(k.dim(x, 0))
    taps.padded(lambda oh, ow: _accumulate(k, out, [f, c, i, j],
                                           k.sb.mul(zero, k.load(g, [n, f, oh, ow]))))
    k.fb.loop_end(t_n)
    k.fb.if_end(done)
    taps.close(2)
    for t in (t_c, t_f):
        k.fb.loop_end(t)


def _chunked_positions(k: Kernel, taps: _Taps, span: str) -> tuple[str, str, str, str, str]:
    """As :meth:`_Taps.open_positions`, the valid columns swept in chunks of ``span``
    (three loops: rows, chunks, columns of a chunk); also the column's place in its chunk,
    the slot of a row of ``span`` partial sums (which slot a product joins does not matter:
    the row is summed at the end)."""
    (sy, sx), (first, count) = taps.op.stride, taps.cols
    a, t_rows = k.fb.loop_begin(taps.rows[1])
    oh = _iadd(k, taps.rows[0], a)
    ih = _iadd(k, _imul(k, oh, sy), taps.off_h)
    chunks = _op(k, f"sdiv i64 {_iadd(k, count, int(span) - 1)}, {span}")
    q, t_chunks = k.fb.loop_begin(chunks)
    start = _imul(k, q, span)
    b, t_cols = k.fb.loop_begin(_imin(k, span, _op(k, f"sub nsw i64 {count}, {start}")))
    ow = _iadd(k, first, _iadd(k, start, b))
    iw = _iadd(k, _imul(k, ow, sx), taps.off_w)
    taps.tokens += [t_rows, t_chunks, t_cols]
    return oh, ow, ih, iw, b


# --------------------------------------------------------------------------- gemm scheme


def _geometry(x: Variable, filters: int, op) -> dict | None:
    """The gemm route's sizes: static ints, or with symbolic spatial sizes only the static
    ones (``symbolic``; :func:`_runtime_geometry` adds the rest in the kernel)."""
    kh, kw = op.kernel
    c, h, w = x.shape[1:]
    cg, fg = c // op.groups, filters // op.groups
    red = cg * kh * kw
    base = {"cg": cg, "fg": fg, "red": red, "F": filters, "C": c}
    if not (isinstance(h, int) and isinstance(w, int)):
        return {**base, "heap": True, "symbolic": True}
    if h <= 0 or w <= 0:
        return None
    ho, wo = op.out_hw(h, w)
    item = ITEMSIZE[x.dtype.name]
    rows = min(ho, TILE_BYTES // (item * red * wo))
    heap = rows < 1
    if heap:
        rows = max(1, min(ho, HEAP_TILE_BYTES // (item * red * wo)))
    return {**base, "ho": ho, "wo": wo, "rows": rows, "heap": heap, "plane": ho * wo,
            "ld": rows * wo, "tiles": -(-ho // rows)}


def _runtime_geometry(k: Kernel, geo: dict, positions: Variable) -> dict:
    """``geo`` of symbolic spatial sizes completed from the run-time dims of ``positions``
    ((N, F, Ho, Wo)): tiles of as many output rows as fit ``HEAP_TILE_BYTES`` (at least one)."""
    ho, wo = k.dim(positions, 2), k.dim(positions, 3)
    row = _imax(k, _imul(k, wo, geo["red"] * ITEMSIZE[positions.dtype.name]), "1")
    fit = _op(k, f"udiv i64 {HEAP_TILE_BYTES}, {row}")
    rows = _imax(k, _imin(k, ho, fit), "1")
    tiles = _op(k, f"udiv i64 {_iadd(k, ho, _op(k, f'sub nsw i64 {rows}, 1'))}, {rows}")
    return {**geo, "ho": ho, "wo": wo, "rows": rows, "plane": _imul(k, ho, wo),
            "ld": _imul(k, rows, wo), "tiles": tiles}


def use_gemm(op, x: Variable, filters: Variable, out: Variable) -> dict | None:
    """The gemm geometry when the gemm route is the faster correct one for this node:
    float, static channels (the batch and the spatial sizes may be symbolic), enough filters
    per group and products per output (else few-channel and depthwise convolutions run as
    direct loops)."""
    if not is_float(out.dtype.name) or not is_float(x.dtype.name):
        return None
    c, f = x.shape[1], filters.shape[0]
    if not (isinstance(c, int) and c > 0 and isinstance(f, int) and f > 0):
        return None
    geo = _geometry(x, f, op)
    if geo is None or geo["fg"] < GEMM_MIN_FILTERS or geo["red"] < GEMM_MIN_REDUCTION:
        return None
    return geo


class _Tiles:
    """Per image, group and tile of output rows: the im2col tile, on the stack or ``col``."""

    def __init__(self, k: Kernel, op, x: Variable, positions: Variable, geo: dict,
                 batch: str, col: str | None = None):
        self.k, self.op, self.x, self.geo = k, op, x, geo
        self.positions = positions  # (N, F, Ho, Wo): the output or its gradient
        self.dt = x.dtype.name
        self.ty = MEM_TYPE[self.dt]
        k.ctx.uses_blas = k.blas = True
        self.col = col or k.fb.entry_op(
            "im2col", f"alloca [{geo['red'] * geo['ld']} x {self.ty}], align 64")
        self.n, t_n = k.fb.loop_begin(batch)
        self.grp, t_g = k.fb.loop_begin(str(op.groups))
        t, t_t = k.fb.loop_begin(str(geo["tiles"]))
        self.row0 = _imul(k, t, geo["rows"])
        self.nrows = _imin(k, str(geo["rows"]), _op(k, f"sub nsw i64 {geo['ho']}, {self.row0}"))
        self.ncols = _imul(k, self.nrows, geo["wo"])
        self.tokens = [t_n, t_g, t_t]

    def close(self) -> None:
        for t in reversed(self.tokens):
            self.k.fb.loop_end(t)

    def image_ptr(self, var: Variable) -> str:
        """Pointer to ``var[n, grp * Fg, row0, 0]`` (``var`` is (N, F, Ho, Wo))."""
        k, geo = self.k, self.geo
        plane_rows = _imul(k, _iadd(k, _imul(k, self.n, geo["F"]),
                                    _imul(k, self.grp, geo["fg"])), geo["plane"])
        return _at(k, k.ptr(var), self.ty, _iadd(k, plane_rows, _imul(k, self.row0, geo["wo"])))

    def _rows_in_tile(self, taps: _Taps) -> tuple[str, str]:
        k = self.k
        first, count = taps.rows
        lo = _imax(k, first, self.row0)
        hi = _imin(k, _iadd(k, first, count), _iadd(k, self.row0, self.nrows))
        return lo, _imax(k, _op(k, f"sub nsw i64 {hi}, {lo}"), "0")

    def _col_index(self, c: str, i: str, j: str, oh: str, ow: str) -> str:
        k, geo = self.k, self.geo
        kh, kw = self.op.kernel
        tap = _iadd(k, _imul(k, _iadd(k, _imul(k, c, kh), i), kw), j)
        local = _iadd(k, _imul(k, _op(k, f"sub nsw i64 {oh}, {self.row0}"), geo["wo"]), ow)
        return _iadd(k, _imul(k, tap, geo["ld"]), local)

    def _tap_loops(self, body) -> None:
        k = self.k
        c, t_c = k.fb.loop_begin(str(self.geo["cg"]))
        cin = _iadd(k, _imul(k, self.grp, self.geo["cg"]), c)
        taps = _Taps(k, self.op, self.x, self.positions)
        i, j = taps.open_taps()
        oh, ow, ih, iw = taps.open_positions(self._rows_in_tile(taps))
        slot = _at(k, self.col, self.ty, self._col_index(c, i, j, oh, ow))
        body(cin, ih, iw, slot)
        taps.close(4)
        k.fb.loop_end(t_c)

    def im2col(self) -> None:
        """The tile: zeros where a tap falls in the padding, else the input value."""
        k, x = self.k, self.x
        nbytes = _imul(k, str(self.geo["ld"]), self.geo["red"] * ITEMSIZE[self.dt])
        k.fb.emit(f"call void @llvm.memset.p0.i64(ptr {self.col}, i8 0, i64 {nbytes}, i1 0)")

        def copy(cin, ih, iw, slot):
            k.fb.emit(f"store {self.ty} {k.load(x, [self.n, cin, ih, iw]).ref}, ptr {slot}")
        self._tap_loops(copy)

    def col2im(self, dx: Variable) -> None:
        """Add the tile back into ``dx`` (the transpose of :meth:`im2col`)."""
        k = self.k

        def add(cin, ih, iw, slot):
            value = Value(k.fb.op(f"load {self.ty}, ptr {slot}"), self.dt)
            _accumulate(k, dx, [self.n, cin, ih, iw], value)
        self._tap_loops(add)

    def gemm(self, **kw) -> None:
        self.k.fb.emit(blas.gemm_call(self.dt, **{
            key: (blas_int(self.k, v) if key in ("m", "n", "k", "lda", "ldb", "ldc")
                  and isinstance(v, str) else v) for key, v in kw.items()}))


def _gemm_forward(k: Kernel, node: Apply, geo: dict, col: str | None) -> None:
    x, w = node.inputs
    out = node.outputs[0]
    tiles = _Tiles(k, node.op, x, out, geo, k.dim(x, 0), col)
    tiles.im2col()
    a = _at(k, k.ptr(w), tiles.ty, _imul(k, tiles.grp, geo["fg"] * geo["red"]))
    tiles.gemm(a=a, b=tiles.col, c=tiles.image_ptr(out), m=geo["fg"],
               n=tiles.ncols, k=geo["red"], lda=geo["red"], ldb=geo["ld"], ldc=geo["plane"])
    tiles.close()


def _gemm_input_grad(k: Kernel, node: Apply, geo: dict, col: str | None) -> None:
    g, w, x = node.inputs
    out = node.outputs[0]
    _memset0(k, out)
    tiles = _Tiles(k, node.op, x, g, geo, k.dim(g, 0), col)
    a = _at(k, k.ptr(w), tiles.ty, _imul(k, tiles.grp, geo["fg"] * geo["red"]))
    tiles.gemm(a=a, b=tiles.image_ptr(g), c=tiles.col, m=geo["red"], n=tiles.ncols,
               k=geo["fg"], trans_a=True, lda=geo["red"], ldb=geo["plane"], ldc=geo["ld"])
    tiles.col2im(out)
    tiles.close()


def _gemm_weight_grad(k: Kernel, node: Apply, geo: dict, col: str | None) -> None:
    x, g = node.inputs
    out = node.outputs[0]
    _memset0(k, out)
    tiles = _Tiles(k, node.op, x, g, geo, k.dim(x, 0), col)
    tiles.im2col()
    c = _at(k, k.ptr(out), tiles.ty, _imul(k, tiles.grp, geo["fg"] * geo["red"]))
    tiles.gemm(a=tiles.image_ptr(g), b=tiles.col, c=c, m=geo["fg"], n=geo["red"],
               k=tiles.ncols, trans_b=True, lda=geo["plane"], ldb=geo["ld"], ldc=geo["red"],
               beta=1.0)
    tiles.close()


def _gemm_or_direct(k: Kernel, node: Apply, geo: dict | None, positions: Variable, gemm,
                    direct) -> None:
    """The gemm route when ``geo`` says so, its tile from ``malloc`` when it is too big
    for the stack or the spatial sizes are symbolic (the direct loops if that returns NULL),
    else the direct loops.  ``positions`` is the node's (N, F, Ho, Wo) operand or result."""
    if geo is None:
        return direct(k, node)
    if not geo["heap"]:
        return gemm(k, node, geo, None)
    if geo.get("symbolic"):
        geo = _runtime_geometry(k, geo, positions)
    nbytes = _imul(k, str(geo["ld"]), geo["red"] * ITEMSIZE[node.outputs[0].dtype.name])
    col = _op(k, f"call ptr @malloc(i64 {nbytes})")
    got = _op(k, f"icmp ne ptr {col}, null")
    done = k.fb.if_begin(got)
    gemm(k, node, geo, col)
    k.fb.emit(f"call void @free(ptr {col})")
    k.fb.if_end(done)
    done = k.fb.if_begin(_op(k, f"xor i1 {got}, true"))
    direct(k, node)
    k.fb.if_end(done)


def lower_conv2d(k: Kernel, node: Apply) -> None:
    x, w = node.inputs
    geo = use_gemm(node.op, x, w, node.outputs[0])
    _gemm_or_direct(k, node, geo, node.outputs[0], _gemm_forward, _direct_forward)


def lower_conv2d_input_grad(k: Kernel, node: Apply) -> None:
    g, w, x = node.inputs
    geo = use_gemm(node.op, x, w, node.outputs[0]) if g.dtype == w.dtype else None
    _gemm_or_direct(k, node, geo, g, _gemm_input_grad, _direct_input_grad)


def lower_conv2d_weight_grad(k: Kernel, node: Apply) -> None:
    x, g = node.inputs
    out = node.outputs[0]
    geo = use_gemm(node.op, x, out, out) if x.dtype == g.dtype == out.dtype else None
    _gemm_or_direct(k, node, geo, g, _gemm_weight_grad, _direct_weight_grad)


register_lowering(Conv2D, Lowering(kernel=lower_conv2d))
register_lowering(Conv2DInputGrad, Lowering(kernel=lower_conv2d_input_grad))
register_lowering(Conv2DWeightGrad, Lowering(kernel=lower_conv2d_weight_grad))


register_tunables(__name__, ("TILE_BYTES", "HEAP_TILE_BYTES", "GEMM_MIN_FILTERS",
                            "GEMM_MIN_REDUCTION", "ROW_BYTES"))
