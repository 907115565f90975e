"""Row-wise kernels (softmax, log_softmax, logsumexp, sums along an axis) on both cores.

Why: outside its gemms a transformer step's biggest kernels are the softmax over attention
scores and the sums of its gradient, and they ran on one core while elementwise loops already
used two (:func:`codegen.lower_elementwise._lower_parallel`).  A row kernel is a loop over
independent *items* (rows; tiles of a reduction over a leading axis; column blocks of a bias
gradient) around code that touches only its own item's output, so its item loop can be cut
into ranges and handed to :mod:`codegen.native.parallel`'s runtime like an elementwise loop:
``@<kernel>_range(buffers..., tab, lo, hi)`` runs items ``[lo, hi)``, ``@<kernel>_part``
unpacks the buffers, and the kernel calls ``sg_parallel_for``.

Same bits as the serial kernel, whatever the number of threads: each item runs the very code
the serial kernel runs for it (the lowering writes it once, for both), and no item's result
depends on another (a sum over a leading axis is split by columns, each column still added
in input order).  The item index is the flat index over the loops the lowering names
(:func:`split_items`), divided back into one index per loop.

Thresholds, relative to the elementwise split (``k.ctx.split_minimum``: 65,536 elements by
default, ``SYMGRAPH_THREADS_MIN``), measured by bench/softmax.py (split / serial, this 2-core
AVX-512 VM): a softmax computes an ``exp`` and three passes per element, more than ``p + x``,
so it pays from ~10-16k elements ((rows, 128) float32: 8,192 elements 1.27, 16,384 0.83;
(rows, 10): 10,240 1.02, 40,960 0.70): :data:`SOFTMAX_FACTOR`; a sum reads one stream and
adds, so it pays later ((n, 512) over axis 0: 131,072 elements 1.06, 262,144 0.96):
:data:`SUM_FACTOR`.  Static shapes decide when compiling, symbolic ones at run time (compiled
to split only if a symbolic dim of ``parallel.LIKELY_DIM`` would make it big enough for an
elementwise loop too: :func:`_worth_compiling`).

Measured (bench/softmax.py, split / serial in one process, float32 | float64, one run each):
softmax (4096, 1000) 0.49 | 0.47, with its gradient 0.49 | 0.50; log_softmax 0.50 | 0.49, with
its gradient 0.48 | 0.47; attention scores (32, 4, 128, 128): softmax 0.73 | 0.89 a call (the
kernel alone, ``f.profile``: 0.77 against 1.55 ms, 0.50; a call also allocates and first
touches its 8 MB output), with its gradient 0.59 | 0.61, log_softmax with its gradient 0.60 |
0.60; (32, 4, 32, 32) softmax 0.53 | 0.28 (float64's serial call: 2.8x float32's, not
understood), with its gradient 0.60 | 0.39.  Sums: (4096, 512) row
sums 0.50, (4096, 256) column sums 0.49, (64, 64, 32, 32) over axis 0 0.53, but (4096, 512)
column sums only 0.90 (each thread reads half of every 2 KB row; row sums of the same array:
0.50); such narrow column sums stay serial now (:data:`COLUMN_SPLIT_BYTES`).  (128, 10) stays
serial.  bench/transformer.py's step (batch 32, T = 128, d = 64):
0.90x with row kernels split (0.92x causal).  Against torch 2.13 on the same 2 cores, softmax
and its backward: (4096, 1000) float32 1.07-1.10x torch's time, (32, 4, 128, 128) 1.34x with
the gradient (0.93x for log_softmax).

The softmax gradient is one kernel (``SoftmaxGrad``, :func:`codegen.lower_softmax.
lower_softmax_grad`): per line the sum ``sum(g * y)``, then ``y * (g - s)`` while the line is
in cache, split line by line.  (32, 4, 128, 128) float32, serial: the gradient's share of
softmax + gradient 1.30 -> 0.69 ms (bench/softmax.py, AVX-512 EPYC); the transformer step's
two kernels (0.41 + 0.32 ms, split) became one of 0.54 ms in a noisier run.  log_softmax's
gradient ``g - exp(y) * sum(g)`` stays a row sum and an elementwise kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from symgraph.graph import Apply, Variable

from .kernel import Kernel, KernelInfo
from .native import parallel
from .registry import register_tunables

__all__ = ["COLUMN_ALIGN", "COLUMN_SPLIT_BYTES", "SOFTMAX_FACTOR", "SUM_FACTOR", "group_index",
           "open_part", "range_loop", "split_column_sums", "split_items", "split_range",
           "split_row_sums", "threshold"]

#: softmax / log_softmax / logsumexp kernels split from ``split_minimum * SOFTMAX_FACTOR``
#: elements of their input (bench/softmax.py; see :func:`threshold`)
SOFTMAX_FACTOR = 0.25
#: sums (and means, maxima) along an axis split from ``split_minimum * SUM_FACTOR`` elements
SUM_FACTOR = 4.0


def threshold(k: Kernel, kind: str) -> int | None:
    """The element count from which a row kernel of ``k`` splits: the elementwise split's
    (``k.ctx.split_minimum``) times :data:`SOFTMAX_FACTOR` (``kind`` "softmax") or
    :data:`SUM_FACTOR` ("sum"), read now (tunables); None when loops stay serial
    (``SYMGRAPH_THREADS=1``, or a BLAS without worker threads)."""
    minimum = k.ctx.split_minimum
    factor = SOFTMAX_FACTOR if kind == "softmax" else SUM_FACTOR
    return None if minimum is None else max(1, int(min(minimum * factor, 2.0 ** 62)))


def _worth_compiling(k: Kernel, var: Variable, minimum: int) -> bool:
    """Could ``var`` hold ``minimum`` elements?  Static: exactly.  Symbolic: if its symbolic
    dims were ``parallel.LIKELY_DIM`` and it then held at least the elementwise split's
    count too, as an elementwise loop must: a (batch, 10) softmax stays serial code (each
    split kernel costs a cold compile ~1-2 ms, and a first split one the runtime's module)."""
    known = math.prod(d for d in var.shape if isinstance(d, int))
    if all(isinstance(d, int) for d in var.shape):
        return known >= minimum
    return known * parallel.LIKELY_DIM >= max(minimum, k.ctx.split_minimum or 0)


def group_index(var: Variable, groups: Sequence[Sequence[int]],
                indices: Sequence[str]) -> dict[int, str]:
    """The index of every axis of ``groups`` (and of every static 1 of ``var``) from one
    index per group, as :meth:`Kernel.open_groups` sets it: the group's last axis carries
    the index, its other axes 0."""
    idx = {a: "0" for a in range(var.ndim) if var.shape[a] == 1}
    for group, i in zip(groups, indices):
        idx.update({a: "0" for a in group})
        idx[group[-1]] = i
    return idx


def _unflatten(k: Kernel, flat: str, counts: list[str]) -> list[str]:
    """One index per loop of ``counts`` (the last varying fastest) from a flat item index."""
    out = []
    for count in reversed(counts[1:]):
        out.append(k.fb.op(f"urem i64 {flat}, {count}"))
        flat = k.fb.op(f"udiv i64 {flat}, {count}")
    out.append(flat)
    return out[::-1]


def split_range(k: Kernel, size_of: Variable, count: Callable[[Kernel], str],
                body: Callable[[Kernel, str, str], None], minimum: int | None,
                align: int = 1) -> bool:
    """Run ``body`` over ranges of ``[0, count)`` on OpenBLAS's threads when ``size_of`` has
    at least ``minimum`` elements (decided now for a static shape, at run time otherwise);
    False (nothing emitted) when it does not apply.

    ``count(kernel)`` is the number of items in that kernel (the split kernel's and the range
    function's); ``body(kernel, lo, hi)`` writes the code for items ``[lo, hi)`` (i64
    operands), the loops around and inside them its own.  Range bounds are multiples of
    ``align`` (a bias gradient split by columns: no cache line of its output written by two
    threads)."""
    if minimum is None or not _worth_compiling(k, size_of, minimum):
        return False
    r = Kernel(k.ctx, f"{k.name}_range")
    r.extra_params = ", i64 %lo, i64 %hi"
    r.static_args = False  # the part function passes buffers only
    body(r, "%lo", "%hi")
    if r.fallible:  # (no row kernel checks values; an early return would skip chunks)
        return False
    roots = list(r.params)
    k.extra_functions += [r.finish(KernelInfo(r.name, size_of, [])),
                          parallel.part_function(f"{k.name}_part", r.name, len(roots))]
    k.ctx.uses_parallel = k.parallel = True
    fb = k.fb
    n = count(k)
    static = all(isinstance(d, int) for d in size_of.shape)
    big = "true" if static else fb.op(f"icmp sge i64 {k.size(size_of)}, {minimum}")
    ctx = k.pointer_array("ctx", [k.ptr(root) for root in roots] + ["%tab"])
    fb.emit(f"call void @{parallel.DISPATCH}(ptr @{k.name}_part, ptr {ctx}, i64 {n}, "
            f"i64 {align}, i1 {big})")
    return True


def range_loop(k: Kernel, lo: str, hi: str, hoist: bool = True) -> tuple[str, tuple]:
    """Open ``for i in range(lo, hi)``: (``i``, the loop's token for ``fb.loop_end``).
    ``hoist``: ``lo`` and ``hi`` are the function's parameters or constants, and the trip
    count goes to the entry block; else it is computed here."""
    text = f"sub i64 {hi}, {lo}"
    count = k.fb.entry_op(f"count {lo} {hi}", text) if hoist else k.fb.op(text)
    j, token = k.fb.loop_begin(count)
    return k.fb.op(f"add nuw nsw i64 {j}, {lo}"), token


def open_part(k: Kernel, var: Variable, groups: list[list[int]], part: list[int], lo: str,
              hi: str, hoist: bool = True) -> tuple[dict[int, str], list]:
    """:meth:`Kernel.open_groups` with the loop of group ``part`` over ``[lo, hi)`` only
    (``hoist``: as :func:`range_loop`)."""
    idx = {a: "0" for a in range(var.ndim) if var.shape[a] == 1}
    tokens = []
    for group in groups:
        if group == part:
            i, tok = range_loop(k, lo, hi, hoist)
        else:
            i, tok = k.fb.loop_begin(k.size(var, group))
        idx.update({a: "0" for a in group})
        idx[group[-1]] = i
        tokens.append(tok)
    return idx, tokens


def split_items(k: Kernel, size_of: Variable, counts: Callable[[Kernel], list[str]],
                body: Callable[[Kernel, list[str]], tuple[str, ...]],
                minimum: int | None) -> bool:
    """:func:`split_range` over the items of the loops ``counts`` (every combination of
    their indices, the last varying fastest): ``counts(kernel)`` gives their trip counts in
    that kernel; ``body(kernel, indices)`` writes the code of one item (its index in each
    loop) and returns the loop hints for the loop over items (those the serial kernel gives
    its loop there)."""
    def count(kk: Kernel) -> str:
        n = "1"
        for c in counts(kk):  # (a tile count is computed in the body: no entry-block mul)
            n = c if n == "1" else kk.fb.op(f"mul nuw nsw i64 {n}, {c}")
        return n

    def ranged(r: Kernel, lo: str, hi: str) -> None:
        loops = counts(r)
        flat, token = range_loop(r, lo, hi)
        r.fb.loop_end(token, body(r, _unflatten(r, flat, loops)))

    return split_range(k, size_of, count, ranged, minimum)


#: a sum over leading axes splits its columns at multiples of this many (no cache line of the
#: output written by both threads, float32 or float64)
COLUMN_ALIGN = 16
#: ... and only when the part of the input after its first reduced axis, which the threads
#: share out between them, holds at least this many bytes.  Below it each thread reads a few
#: cache lines of every row and the prefetchers pull the other thread's lines too
#: (AVX-512 EPYC, split / serial, ``f.profile``: (32768, 64) float32 summed over axis 0 3.2x,
#: (16384, 512) 1.8x, bias gradients of bench/transformer.py's step, (4096, 256) after a
#: split elementwise kernel 1.9x and (4096, 64) 1.5-2.3x: 220 us of its 15 ms; (4096, 512)
#: fused with its producer 0.64x); from channels of (64, 64, 32, 32) over axis 0 (256 KB per
#: row) the split is 0.44x.  Splitting such sums by blocks of rows instead (partial sums per
#: block, added in block order by the serial kernel too) is the fix not made yet.
COLUMN_SPLIT_BYTES = 8192

#: ``row(kernel, idx, blocked)``: one row of a reduction over the innermost axes stored at
#: ``idx`` (in blocks of ``SUM_BLOCK`` or not); returns the hints for the loops around it
RowFn = Callable[[Kernel, dict[int, str], bool], tuple[str, ...]]


def split_row_sums(k: Kernel, node: Apply, outer: list[list[int]], inner: list[list[int]],
                   block: int | None, row: RowFn) -> bool:
    """A reduction over the innermost axes (``inner``) on both cores when big enough, by
    rows (the loops ``outer``; ``row`` writes one as the serial kernel does: its bits).  A row
    of a symbolic length picks the plain or the blocked sum (``block``: ``SUM_BLOCK``, None
    when it does not block) per row, as the serial kernel does per kernel."""
    x = node.inputs[0]
    if not outer:
        return False  # one total: splitting it would change the order of its additions

    def item(kk: Kernel, at: list[str]) -> tuple[str, ...]:
        idx = group_index(x, outer, at)
        n = kk.size(x, inner[-1]) if inner else "1"
        if block is None or n.isdigit():
            return row(kk, idx, block is not None and int(n) > block)
        for cond, blocked in (("ule", False), ("ugt", True)):
            done = kk.fb.if_begin(kk.fb.op(f"icmp {cond} i64 {n}, {block}"))
            rest = row(kk, dict(idx), blocked)
            kk.fb.if_end(done)
        return rest

    return split_items(k, x, lambda kk: [kk.size(x, g) for g in outer], item,
                       threshold(k, "sum"))


def split_column_sums(k: Kernel, node: Apply, nest: list[list[int]],
                      leading: Callable[..., None]) -> bool:
    """A reduction over leading axes (loops ``nest``) on both cores when big enough, its one
    loop over kept axes cut into ranges (bias gradients of (batch, [steps,] features), NCHW
    over (0, 2, 3)): ``leading(kernel, node, nest, (group, lo, hi))`` adds each column of the
    range in the serial kernel's order, so the same bits.  False where it does not apply."""
    x, axes = node.inputs[0], node.op.axes
    kept = [g for g in nest if g[0] not in axes]
    if len(kept) != 1:
        return False
    block = x.shape[kept[0][0]:]  # what the threads share out per step of the rows
    if not all(isinstance(d, int) for d in block) or \
            math.prod(block) * x.dtype.itemsize < COLUMN_SPLIT_BYTES:
        return False
    return split_range(k, x, lambda kk: kk.size(x, kept[0]),
                       lambda kk, lo, hi: leading(kk, node, nest, (kept[0], lo, hi)),
                       threshold(k, "sum"), COLUMN_ALIGN)


register_tunables(__name__, ("SOFTMAX_FACTOR", "SUM_FACTOR", "COLUMN_ALIGN",
                            "COLUMN_SPLIT_BYTES"))
