"""Register-blocked loops for small matrix products, generated instead of calling BLAS.

A BLAS call has a fixed cost (argument checks, dispatch, packing) that a product of a few
tens of rows and columns does not amortise: below a crossover measured per host
(:data:`SMALL_GEMM_WORK`, bench/small_matmul.py) :mod:`codegen.lower_blas` emits one of
these loops instead (:func:`dispatch_small`; for a symbolic batch, behind a branch on the
actual sizes).  :func:`small_gemm` keeps a tile of ``C`` in vector registers and streams
``B``'s rows through it (a transposed ``B`` of a static ``k`` copied untransposed into a
stack array first, :func:`_transposed_copy`); an ``A @ B.T`` with a static ``k`` of at least
``SMALL_GEMM_DOT_MIN_K`` on a host of 16 vector registers takes dot products along ``k``
instead (:func:`_dot_tiles`), both operands' rows being contiguous there.  Tiles and
crossovers depend on the host's vector registers (:func:`codegen.native.jit.vector_registers`).
"""

from __future__ import annotations

import math

from .irgen import FMF, ITEMSIZE, MEM_TYPE, Value
from .kernel import NO_UNROLL, NO_VECTORIZE, Kernel
from .native.jit import vector_registers
from .registry import register_tunables

__all__ = ["SMALL_GEMM_DOT", "SMALL_GEMM_RUNTIME", "SMALL_GEMM_RUNTIME_SIDE",
           "SMALL_GEMM_TILES", "SMALL_GEMM_WORK", "crossover", "dispatch_small", "small_gemm"]

#: a 2-d float product with a static column count and at most this many multiply-adds
#: ``m * n * k`` runs :func:`small_gemm` instead of BLAS, keyed by (dtype, B transposed?);
#: sizes known only at run time are compared with it there.  By the host's vector registers
#: (:func:`codegen.native.jit.vector_registers`: the tiles differ, and so do the crossovers),
#: measured against OpenBLAS 0.3.31 with bench/small_matmul.py (loop / BLAS):
#:
#: * 32 (AVX-512, SkylakeX kernel; net of an empty call): float32 0.74-0.80 at 32x32x32 ..
#:   64x32x32, 0.85 at 64^3, 1.35-1.43 at 128x64x64 (B transposed: 0.76-0.79 up to 10k, 0.93
#:   at 32^3, 1.03-1.05 at 64k, 1.21 at 64^3); float64 0.60-0.81 up to 64^3 in every
#:   layout, 1.18-1.51 at 128x64x64.
#: * 16 (AVX2 EPYC, Haswell kernel; kernel time inside a graph): float32 0.67-0.93 up to
#:   64^3, 1.30-1.51 at 128x64x64; B transposed 0.76 at 32x32x10, 1.04-1.05 at 10-32k,
#:   1.25-1.61 from 64k; float64 0.45-0.84 up to 64^3 (TN 1.06 there), 1.09-2.12 at
#:   128x64x64; B transposed 0.77-1.05 up to 64k, 1.25 at 64^3.
SMALL_GEMM_WORKS = {
    32: {("float32", False): 64 ** 3, ("float32", True): 32 ** 3,
         ("float64", False): 64 ** 3, ("float64", True): 64 ** 3},
    16: {("float32", False): 64 ** 3, ("float32", True): 32 * 32 * 16,
         ("float64", False): 64 ** 3, ("float64", True): 64 * 32 * 32}}
SMALL_GEMM_WORK = dict(SMALL_GEMM_WORKS[vector_registers()])
#: (rows of C, 256-bit vectors of columns) per register tile of :func:`small_gemm`, by the
#: host's vector registers and whether B is transposed (its vectors then cost a scalar load
#: per element: more rows share each).  The sums must stay in registers: AVX2's 16 hold a
#: 4x2 tile (8 sums, 2 B vectors, the broadcasts), while the AVX-512 host's 4x4 spilled 9
#: of its 16 sums there and ran 3x slower (1.4 against 4.5 us for 32x32x64 on an AVX2 EPYC;
#: 8x1 when B is transposed and built from scalar loads -- B over SMALL_GEMM_TRANSPOSE_BYTES
#: or a run-time k: 2.6 us against 3.0-6.3 for 4x2, 6x2, 3x3, 2x4, 5x2)
SMALL_GEMM_TILES = {32: {False: (4, 4), True: (8, 2)}, 16: {False: (4, 2), True: (8, 1)}}
#: hosts (by vector registers) whose ``A @ B.T`` with a static ``k`` of at least
#: SMALL_GEMM_DOT_MIN_K takes dot products along ``k`` (:func:`_dot_tiles`), and its tile:
#: (rows of A, rows of B).  AVX2 EPYC, us per product (dot / the tiles above / BLAS), float32:
#: 32x32x64 2.2 / 4.1 / 3.2, 32x16x128 1.8 / 2.9 / 2.4, 32x32x128 4.1 / 8.2 / 4.3; with a
#: shorter k the reductions at the end outweigh the sums (32x32x32 1.6 / 1.9 / 1.3, and
#: 32x32x10 2.0 / 0.5 / 0.6).  3x4 against 2x4, 3x3, 4x2, 2x3: best or within 5% on these.
#: float64: 32x32x64 4.4 / 7.0 / 5.0, 32x16x128 4.4 / 6.2 / 7.6.
SMALL_GEMM_DOT = {16: (3, 4)}
SMALL_GEMM_DOT_MIN_K = 64
#: the crossover of the dot-product form (m * n * k): 0.77-0.82x BLAS at 64k (32x32x64,
#: 32x16x128; the tiles 1.27-1.30x), 0.89-0.96 at 32x32x128 but 1.24 at 32x64x64; float64
#: 0.57-0.88x at 64k and 0.92 at 32x32x128 (the tiles 0.89-1.15x) (bench/small_matmul.py,
#: ``--no-dot`` for the tiles)
SMALL_GEMM_DOT_WORK = 64 * 32 * 32
#: a product with B transposed and a static ``k`` (outside the dot form) copies B into a
#: stack array untransposed first (:func:`_transposed_copy`) when B holds at most this many
#: bytes (the array is in the kernel's frame, or in ``sg_step``'s where a small step
#: inlines its kernels; a batched product with a broadcast B copies it per matrix)
SMALL_GEMM_TRANSPOSE_BYTES = 8192
#: ``small_gemm(..., wide=True)`` on an AVX-512 host (32 vector registers): 512-bit vectors,
#: tiles of (rows, vectors) by whether a row of C is one vector, and B transposed copied up
#: to this many bytes.  The split stacks of attention's products (codegen.lower_blas.
#: _split_batch; (128, T, T) @ (128, T, 16) and the like, float32, ms per stack on 2 cores):
#: T=128 256-bit (4, 4) tiles 0.49 / 0.49 / 0.63 (QK^T / PV / P^T dO), 512-bit (8, 2)
#: 0.30 / 0.39 / 0.48, (12, 1) 0.33 / 0.38 / 0.43, (6, 2) 0.29-0.31 / 0.39-0.40 / 0.48-0.50,
#: (4, 3) and (16, 1) no better; T=64, d=32: (8, 2) best or within 5% on all three.  torch.bmm
#: (2 threads, same machine): 0.34 / 0.34 / 0.40.
SMALL_GEMM_WIDE_TILES = {"rows": (8, 2), "row": (12, 1)}
SMALL_GEMM_WIDE_TRANSPOSE_BYTES = 65536
#: do the 2-d products (``wide=None``) take the 512-bit tiles too?  Yes: on the AVX-512 host,
#: one process, interleaved, us per product (net of the call: graphs of 1 and 9 products),
#: wide / 256-bit tiles: float32 0.50 (32x32x64), 0.62 (64x32x32 A^T), 0.61 (64^3), 0.22
#: (32x32x32 B^T), 0.64 (16^3), 0.60 (8x64x32), 0.76 (32x32x10 B^T), 0.99-1.03 where a row
#: of C is 10 columns or fewer (8 + 2 lanes either way); float64 0.41-0.70, 0.79-0.96 for the
#: smallest.  Against OpenBLAS (bench/small_matmul.py, the same day, a loaded machine): the
#: 256-bit tiles 1.65-1.9x its time at 32x32x64 .. 128x64x64 (float32; SMALL_GEMM_WORKS was
#: measured with the older "net of an empty call"), the 512-bit ones 0.92-1.0x up to
#: 64^3 and 128x32x64, 0.6-0.75x with B transposed; rows of 10 columns 1.27-1.4x both.
SMALL_GEMM_WIDE_2D = True


#: a product with a run-time ``m`` or ``k`` branches on its actual sizes (True) or always
#: calls BLAS (False); None: as the host's entry of SMALL_GEMM_RUNTIMES says.
SMALL_GEMM_RUNTIME: bool | None = None
#: by vector registers.  32 (AVX-512): in W2 (the 64-32-10 MLP, batch 32, every product with
#: a symbolic batch) the branch to the loops made the step 4.9-5.0 us against 4.1-4.3 us
#: through BLAS (bench/train_step.py, interleaved runs), although the same shapes compiled
#: static are 0.76-0.80x BLAS.  16 (AVX2 EPYC): W2's epoch 0.80x with the branch (one
#: process, interleaved), its compile +120 ms (each product's loop costs ~37 ms of LLVM).
SMALL_GEMM_RUNTIMES = {32: False, 16: True}
#: with run-time sizes, only products whose static sizes are all at most this (the largest
#: in the crossover sweep) get the loop behind the branch: its code grows with the columns
#: (with no bound W1's 256- and 512-column products made its compile 8x, 1.37 s against
#: 0.17 s), and a static side of 256 leaves the run-time one a few rows under the crossover
#: (W1's 256x10 weight gradient at batch 128 is over it: 37 ms of compile for nothing)
SMALL_GEMM_RUNTIME_SIDE = 64


def _runtime_dispatch() -> bool:
    if SMALL_GEMM_RUNTIME is not None:
        return SMALL_GEMM_RUNTIME
    return SMALL_GEMM_RUNTIMES[vector_registers()]


def _small_eligible(limit: int, m: str, n: str, kk: str) -> bool:
    """Can (and, for static sizes, should) the product take :func:`small_gemm`?"""
    if not n.isdigit() or limit <= 0:
        return False
    if m.isdigit() and kk.isdigit():
        return int(m) * int(n) * int(kk) <= limit
    # decided at run time by the actual sizes, for products that can be small at all
    static = [int(d) for d in (m, n, kk) if d.isdigit()]
    return (_runtime_dispatch() and max(static) <= SMALL_GEMM_RUNTIME_SIDE
            and math.prod(static) <= limit)


def dispatch_small(k: Kernel, dt: str, transposed: tuple[bool, bool],
                   sizes: tuple[str, str, str], emit_small) -> bool:
    """Emit the small loop (``emit_small()``) for static sizes below the crossover and return
    True (the caller emits nothing more), or, for run-time sizes, a branch taking it when
    ``m * n * k`` is at most :data:`SMALL_GEMM_WORK` (:data:`SMALL_GEMM_DOT_WORK` for the dot
    form) that returns from the kernel, and False (the caller emits the BLAS route after
    it).  ``transposed``: (A transposed?, B transposed?)."""
    m, n, kk = sizes
    limit = crossover(dt, transposed, kk)
    if not _small_eligible(limit, m, n, kk):
        return False
    if m.isdigit() and kk.isdigit():
        emit_small()
        return True
    fb = k.fb
    work = fb.op(f"mul i64 {k.mul_i64(m, n)}, {kk}")
    then = fb.if_begin(fb.op(f"icmp ule i64 {work}, {limit}"))
    emit_small()
    fb.emit("ret i32 0")
    fb.start_block(fb.label("unreachable"))
    fb.if_end(then)
    return False


def crossover(dt: str, transposed: tuple[bool, bool], kk: str) -> int:
    """The most multiply-adds ``m * n * k`` a product takes the loop for (0: never), with
    operands ``transposed`` (A?, B?) and inner size ``kk`` (digits, or a run-time value)."""
    ta, tb = transposed
    if tb and not ta and _dot_form(dt, kk):
        return SMALL_GEMM_DOT_WORK
    return SMALL_GEMM_WORK.get((dt, tb), 0)


def _dot_form(dt: str, kk: str) -> bool:
    """Does a product with B transposed take :func:`_dot_tiles` on this host?"""
    return (dt in ("float32", "float64") and vector_registers() in SMALL_GEMM_DOT and kk.isdigit()
            and int(kk) >= SMALL_GEMM_DOT_MIN_K)


def _element(fb, ty: str, p: str, row: str, col: str, stride: str) -> str:
    """The address of ``P[row, col]`` in a row-major matrix of ``stride`` columns."""
    flat = fb.op(f"add nsw i64 {fb.op(f'mul nsw i64 {row}, {stride}')}, {col}")
    return fb.op(f"getelementptr inbounds {ty}, ptr {p}, i64 {flat}")


def _pieces(n: int, width: int, step: int) -> list[list[tuple[int, int]]]:
    """Columns ``0..n`` as chunks of at most ``step`` vectors: (first column,
    width) per vector, full ``width`` vectors then halving ones for the rest (10 floats:
    8 + 2)."""
    pieces, j = [], 0
    while j < n:
        w = width
        while w > n - j:
            w //= 2
        pieces.append((j, w))
        j += w
    return [pieces[c:c + step] for c in range(0, len(pieces), step)]


def small_gemm(k: Kernel, dt: str, a: tuple[str, bool], b: tuple[str, bool], pc: str,
               sizes: tuple[str, str, str], scale: tuple[Value, bool] | None = None,
               wide: bool | None = None, lds: tuple[str, str] | None = None,
               ldc: str | None = None) -> None:
    """``C = op(A) @ op(B)`` for row-major matrices with a static column count ``n`` (``m``
    and ``k`` may be run-time values), or with ``scale = (c, c_first)``
    ``C = C - c * (op(A) @ op(B))`` (the folded SGD update: any ``c``, 0/NaN/inf included,
    gives numpy's result since the whole product is summed first).

    Register tiles of SMALL_GEMM_TILES rows by 256-bit vectors
    (4 doubles, 8 floats; the last columns in narrower vectors): per ``p`` one load of each
    ``B[p, j:j+w]`` serves every row of the tile and one broadcast ``A[i, p]`` every vector,
    the sums live in registers (stack slots that mem2reg promotes) and C is written once.
    Transposes are index orders (A stored ``(k, m)``; B stored ``(n, k)`` with a static
    ``k`` and at most SMALL_GEMM_TRANSPOSE_BYTES is copied untransposed into a stack array
    first, :func:`_transposed_copy`, and larger ones build their vectors from scalar loads).
    The vectors are written out rather than left to the vectorisers: the loop vectoriser
    takes the ``p`` loop with strided gathers of B (1.3 GFMA/s) and a ``j`` loop over sums in
    memory reloads the row per ``p``.

    ``wide``: 512-bit vectors and :data:`SMALL_GEMM_WIDE_TILES` on an AVX-512 host (else
    ignored); None: :data:`SMALL_GEMM_WIDE_2D` (the split stacks pass True).  ``lds``: the
    leading dimensions of A and B as stored (strided blocks of a bigger array), contiguous
    by default."""
    fb = k.fb
    (pa, ta), (pb, tb), (m, n, kk) = a, b, sizes
    lda, ldb = lds or ((m if ta else kk), (kk if tb else n))
    if tb and not ta and _dot_form(dt, kk):
        return _dot_tiles(k, dt, pa, pb, pc, sizes, scale, (lda, ldb), ldc or n)
    ty = MEM_TYPE[dt]
    size = ITEMSIZE[dt]
    wide = (SMALL_GEMM_WIDE_2D if wide is None else wide) and vector_registers() == 32
    limit = SMALL_GEMM_WIDE_TRANSPOSE_BYTES if wide else SMALL_GEMM_TRANSPOSE_BYTES
    if tb and kk.isdigit() and int(n) * int(kk) * size <= limit:
        pb, tb, ldb = _transposed_copy(k, ty, size, pb, int(n), int(kk), ldb), False, n
    if wide:
        width = 64 // size
        mr, vectors = SMALL_GEMM_WIDE_TILES["row" if int(n) <= width else "rows"]
    else:
        width = 32 // size
        mr, vectors = SMALL_GEMM_TILES[vector_registers()][tb]
    chunks = _pieces(int(n), width, vectors)

    def vty(w: int) -> str:
        return f"<{w} x {ty}>"

    def address(p: str, row: str, col: str, stride: str) -> str:
        return _element(fb, ty, p, row, col, stride)

    def splat(x: str, w: int) -> str:
        one = fb.op(f"insertelement {vty(w)} poison, {ty} {x}, i64 0")
        return fb.op(f"shufflevector {vty(w)} {one}, {vty(w)} poison, <{w} x i32> "
                     "zeroinitializer")

    def b_vector(p: str, j: int, w: int) -> str:
        if not tb:
            return fb.op(f"load {vty(w)}, ptr {address(pb, p, str(j), ldb)}, align {size}")
        v = "poison"  # B stored (n, k): column p of the stored rows j..j+w
        for t in range(w):
            x = fb.op(f"load {ty}, ptr {address(pb, str(j + t), p, ldb)}")
            v = fb.op(f"insertelement {vty(w)} {v}, {ty} {x}, i64 {t}")
        return v

    def tile(i0: str, rows: int) -> None:
        rows_at = [i0] + [fb.op(f"add nuw nsw i64 {i0}, {r}") for r in range(1, rows)]
        for chunk in chunks:
            sums = [[fb.alloca(vty(w), "zeroinitializer") for _, w in chunk]
                    for _ in range(rows)]
            p, inner = fb.loop_begin(kk)
            bv = [b_vector(p, j, w) for j, w in chunk]
            for i, row_sums in zip(rows_at, sums):
                at = address(pa, p, i, lda) if ta else address(pa, i, p, lda)  # A: (k, m)
                x = fb.op(f"load {ty}, ptr {at}")
                splats: dict[int, str] = {}
                for (_, w), bvec, acc in zip(chunk, bv, row_sums):
                    if w not in splats:
                        splats[w] = splat(x, w)
                    prod = fb.op(f"fmul {FMF} {vty(w)} {splats[w]}, {bvec}")
                    total = fb.op(f"fadd {FMF} {vty(w)} {fb.op(f'load {vty(w)}, ptr {acc}')}, "
                                  f"{prod}")
                    fb.emit(f"store {vty(w)} {total}, ptr {acc}")
            fb.loop_end(inner)
            for i, row_sums in zip(rows_at, sums):
                for (j, w), acc in zip(chunk, row_sums):
                    at = address(pc, i, str(j), ldc or n)
                    v = fb.op(f"load {vty(w)}, ptr {acc}")
                    if scale is not None:
                        c = splat(scale[0].ref, w)
                        prod = fb.op(f"fmul {FMF} {vty(w)} {c}, {v}" if scale[1] else
                                     f"fmul {FMF} {vty(w)} {v}, {c}")
                        old = fb.op(f"load {vty(w)}, ptr {at}, align {size}")
                        v = fb.op(f"fsub {FMF} {vty(w)} {old}, {prod}")
                    fb.emit(f"store {vty(w)} {v}, ptr {at}, align {size}")

    _row_tiles(fb, m, mr, tile)


def _transposed_copy(k: Kernel, ty: str, size: int, pb: str, n: int, kk: int, ldb: str) -> str:
    """B stored ``(n, kk)`` (rows ``ldb`` apart) copied into a stack array as ``(kk, n)``,
    once per product: blocks of 256-bit rows transposed in registers (:func:`_block_transpose`),
    the rows and columns past the last whole block one element at a time.

    Why: with B transposed the tiles build each vector of B from scalar loads, again for
    every tile of rows (W2's ``dZ @ W.T``, 32x32x10: the loads four times over).  The copy
    lets the tiles load B's rows as vectors.  bench/small_matmul.py (AVX2 EPYC, loop / BLAS,
    same process), with an element-by-element copy: float32 32x32x10 0.76 -> 0.56, 128x32x10
    0.91 -> 0.52, 32x32x32 1.10 -> 0.81; float64 0.76-0.98 -> 0.56-0.77.  The block copy
    against that one (AVX-512 EPYC, 512-bit tiles, loop / BLAS): float32 32x32x32 0.83 ->
    0.60, 32x64x64 0.72 -> 0.52, 64^3 0.77 -> 0.63, 128x64x64 1.18 -> 1.08; float64 0.92 ->
    0.80, 1.09 -> 0.79, 0.96 -> 0.79; the split stacks' ``QK^T`` against torch.bmm
    (bench/batched_matmul.py) 128x128x32 1.04 -> 0.79, 16x256x64 1.01 -> 0.87.  (The
    crossovers in SMALL_GEMM_WORKS were measured with the element copy and are left as they
    were: on the AVX-512 EPYC float32 64^3 with B transposed would now take the loop.)"""
    fb = k.fb
    w = 32 // size
    scratch = fb.entry_op(fb.label("bt"), f"alloca [{n * kk} x {ty}], align 64")

    def scalar(rows: tuple[int, int], cols: tuple[int, int]) -> None:
        if rows[1] <= rows[0] or cols[1] <= cols[0]:
            return
        j, outer = fb.loop_begin(str(rows[1] - rows[0]))
        j = fb.op(f"add nuw nsw i64 {j}, {rows[0]}")
        p, inner = fb.loop_begin(str(cols[1] - cols[0]))
        p = fb.op(f"add nuw nsw i64 {p}, {cols[0]}")
        x = fb.op(f"load {ty}, ptr {_element(fb, ty, pb, j, p, ldb)}")
        fb.emit(f"store {ty} {x}, ptr {_element(fb, ty, scratch, p, j, str(n))}")
        fb.loop_end(inner, (NO_VECTORIZE, NO_UNROLL))
        fb.loop_end(outer, (NO_VECTORIZE, NO_UNROLL))

    nb, kb = n // w * w, kk // w * w
    if nb and kb:
        vty = f"<{w} x {ty}>"
        jb, outer = fb.loop_begin(str(nb // w))
        j0 = fb.op(f"mul nuw nsw i64 {jb}, {w}")
        qb, inner = fb.loop_begin(str(kb // w))
        p0 = fb.op(f"mul nuw nsw i64 {qb}, {w}")
        rows = [fb.op(f"load {vty}, ptr "
                      f"{_element(fb, ty, pb, fb.op(f'add nuw nsw i64 {j0}, {t}'), p0, ldb)}, "
                      f"align {size}") for t in range(w)]
        for q, col in enumerate(_block_transpose(fb, vty, rows)):
            at = _element(fb, ty, scratch, fb.op(f"add nuw nsw i64 {p0}, {q}"), j0, str(n))
            fb.emit(f"store {vty} {col}, ptr {at}, align {size}")
        fb.loop_end(inner, (NO_VECTORIZE, NO_UNROLL))
        fb.loop_end(outer, (NO_VECTORIZE, NO_UNROLL))
    scalar((0, n), (kb, kk))
    scalar((nb, n), (0, kb))
    return scratch


def _block_transpose(fb, vty: str, rows: list[str]) -> list[str]:
    """The columns of the square block whose rows are the vectors ``rows`` (a power of two of
    them, each as wide): for each bit ``h`` of the index, rows ``i`` and ``i + h`` swap their
    off-diagonal ``h``-blocks (a two-vector shuffle each); the swaps of different bits
    commute, and all of them together swap the row and column index: the transpose."""
    w = len(rows)
    h = w // 2
    while h:
        out = list(rows)
        for i in range(w):
            if i & h:
                continue
            lo = [c if not c & h else w + c - h for c in range(w)]
            hi = [c + h if not c & h else w + c for c in range(w)]
            for dest, mask in ((i, lo), (i + h, hi)):
                out[dest] = fb.op(f"shufflevector {vty} {rows[i]}, {vty} {rows[i + h]}, "
                                  f"<{w} x i32> <{', '.join(f'i32 {c}' for c in mask)}>")
        rows = out
        h //= 2
    return rows


def _row_tiles(fb, m: str, mr: int, tile) -> None:
    """``tile(first row, rows)`` over ``m`` rows in tiles of ``mr``: the rows left over make
    one smaller tile, or with a run-time ``m`` one row at a time."""
    if m.isdigit():
        count, rest = divmod(int(m), mr)
        if count:
            t, tiles = fb.loop_begin(str(count))
            tile(fb.op(f"mul nuw nsw i64 {t}, {mr}"), mr)
            fb.loop_end(tiles)
        if rest:
            tile(str(count * mr), rest)
        return
    count = fb.op(f"udiv i64 {m}, {mr}")
    t, tiles = fb.loop_begin(count)
    tile(fb.op(f"mul nuw nsw i64 {t}, {mr}"), mr)
    fb.loop_end(tiles)
    start = fb.op(f"mul nuw nsw i64 {count}, {mr}")
    r, rows = fb.loop_begin(fb.op(f"sub nsw i64 {m}, {start}"))
    tile(fb.op(f"add nuw nsw i64 {start}, {r}"), 1)
    fb.loop_end(rows)


def _dot_tiles(k: Kernel, dt: str, pa: str, pb: str, pc: str, sizes: tuple[str, str, str],
               scale: tuple[Value, bool] | None, lds: tuple[str, str], ldc: str) -> None:
    """``C = A @ B.T`` (B stored ``(n, k)``; C's rows ``ldc`` apart), or the folded update,
    as dot products along
    ``k``: both operands' rows are contiguous there, so a tile of SMALL_GEMM_DOT rows of A
    by rows of B keeps one vector of partial sums per pair, fed by one load of each row's
    next 256 bits, and each pair's sum is reduced across the vector once at the end (the
    last ``k % width`` products are scalar).  Building B's column vectors from scalar loads
    instead (:func:`small_gemm`'s tiles) lost to BLAS from 16k multiply-adds on AVX2."""
    fb = k.fb
    m, n, kk = sizes
    lda, ldb = lds
    ty, size = MEM_TYPE[dt], ITEMSIZE[dt]
    width = 32 // size
    vty = f"<{width} x {ty}>"
    mr, nr = SMALL_GEMM_DOT[vector_registers()]
    if kk.isdigit():
        full, tail = str(int(kk) // width), str(int(kk) // width * width)
    else:
        full = fb.op(f"udiv i64 {kk}, {width}")
        tail = fb.op(f"mul nuw nsw i64 {full}, {width}")

    def at(p: str, row: str, col: str, stride: str) -> str:
        return _element(fb, ty, p, row, col, stride)

    def reduce(v: str) -> str:
        w = width
        while w > 1:  # halves added until one element is left
            w //= 2
            lo = fb.op(f"shufflevector <{2 * w} x {ty}> {v}, <{2 * w} x {ty}> poison, "
                       f"<{w} x i32> <{', '.join(f'i32 {i}' for i in range(w))}>")
            hi = fb.op(f"shufflevector <{2 * w} x {ty}> {v}, <{2 * w} x {ty}> poison, "
                       f"<{w} x i32> <{', '.join(f'i32 {i}' for i in range(w, 2 * w))}>")
            v = fb.op(f"fadd {FMF} <{w} x {ty}> {lo}, {hi}")
        return fb.op(f"extractelement <1 x {ty}> {v}, i64 0")

    def accumulate(ii: list[str], jj: list[str], p: str, t: str, align: str,
                   sums: list[list[str]]) -> None:
        """``sums[r][c] += A[ii[r], p:] * B[jj[c], p:]`` for one value of type ``t``."""
        av = [fb.op(f"load {t}, ptr {at(pa, i, p, lda)}{align}") for i in ii]
        for c, j in enumerate(jj):
            bv = fb.op(f"load {t}, ptr {at(pb, j, p, ldb)}{align}")
            for r, a in enumerate(av):
                prod = fb.op(f"fmul {FMF} {t} {a}, {bv}")
                total = fb.op(f"fadd {FMF} {t} {fb.op(f'load {t}, ptr {sums[r][c]}')}, {prod}")
                fb.emit(f"store {t} {total}, ptr {sums[r][c]}")

    def tile(i0: str, rows: int, j0: str, cols: int) -> None:
        ii = [i0] + [fb.op(f"add nuw nsw i64 {i0}, {r}") for r in range(1, rows)]
        jj = [j0] + [fb.op(f"add nuw nsw i64 {j0}, {c}") for c in range(1, cols)]
        acc = [[fb.alloca(vty, "zeroinitializer") for _ in jj] for _ in ii]
        q, chunks = fb.loop_begin(full)
        accumulate(ii, jj, fb.op(f"mul nuw nsw i64 {q}, {width}"), vty, f", align {size}", acc)
        fb.loop_end(chunks)
        sums = [[fb.alloca(ty, reduce(fb.op(f"load {vty}, ptr {slot}"))) for slot in row]
                for row in acc]
        if not (kk.isdigit() and int(kk) % width == 0):
            t, rest = fb.loop_begin(fb.op(f"sub nsw i64 {kk}, {tail}"))
            accumulate(ii, jj, fb.op(f"add nuw nsw i64 {tail}, {t}"), ty, "", sums)
            fb.loop_end(rest)
        for r, i in enumerate(ii):
            for c, j in enumerate(jj):
                out = at(pc, i, j, ldc)
                v = fb.op(f"load {ty}, ptr {sums[r][c]}")
                if scale is not None:
                    x = scale[0].ref
                    prod = fb.op(f"fmul {FMF} {ty} {x}, {v}" if scale[1] else
                                 f"fmul {FMF} {ty} {v}, {x}")
                    v = fb.op(f"fsub {FMF} {ty} {fb.op(f'load {ty}, ptr {out}')}, {prod}")
                fb.emit(f"store {ty} {v}, ptr {out}")

    def row_tile(i0: str, rows: int) -> None:
        count, rest = divmod(int(n), nr)
        if count:
            t, cols = fb.loop_begin(str(count))
            tile(i0, rows, fb.op(f"mul nuw nsw i64 {t}, {nr}"), nr)
            fb.loop_end(cols)
        if rest:
            tile(i0, rows, str(count * nr), rest)

    _row_tiles(fb, m, mr, row_tile)


register_tunables(__name__, ("SMALL_GEMM_WORK", "SMALL_GEMM_TILES", "SMALL_GEMM_DOT",
                            "SMALL_GEMM_DOT_MIN_K", "SMALL_GEMM_DOT_WORK", "SMALL_GEMM_RUNTIME",
                            "SMALL_GEMM_RUNTIMES", "SMALL_GEMM_RUNTIME_SIDE",
                            "SMALL_GEMM_TRANSPOSE_BYTES", "SMALL_GEMM_WIDE_TILES",
                            "SMALL_GEMM_WIDE_TRANSPOSE_BYTES", "SMALL_GEMM_WIDE_2D"))
