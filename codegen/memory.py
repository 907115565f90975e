"""Concrete shapes and the memory arena of one shape signature.

Why: the compiled code takes every size from a table, so the Python side must know, per
signature of input shapes (e.g. per batch size), the shape of every variable and where each
buffer lives.  Shapes come from each op's own ``infer`` run on concrete shapes (one shape
rule per op, no second copy here; ops whose output shape depends on run-time values define
``concrete_shape``); buffers are packed into one arena with greedy first-fit
reuse once a buffer's last reader has run.  Both are computed once per signature and cached.
"""

from __future__ import annotations

import bisect
import heapq

import numpy as np

from symgraph import shapes as sh
from symgraph import storage
from symgraph.evaluate import NodeContext, _node_error
from symgraph.graph import Apply, Variable

ALIGN = storage.ALIGN


class _Shaped:
    """What ``Op.infer`` reads from a variable, with a concrete shape."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: tuple, dtype):
        self.shape, self.dtype = shape, dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


def node_error(node: Apply, shapes: dict, err: Exception) -> Exception:
    """``err`` (a shape rule's, on concrete shapes) reported as the numpy backend reports a
    node's failure: op, name scope, the inputs' concrete shapes, the user's line and, for a
    gradient node, the forward node whose bprop made it."""
    return _node_error(node, [_Shaped(tuple(shapes[x]), x.dtype) for x in node.inputs],
                       str(err), err)


def concrete_shape(node: Apply, shapes: dict, bindings: dict) -> tuple:
    """The output shape of ``node`` for concrete input shapes: the op's own
    ``concrete_shape`` when its output depends on run-time values (reshape targets, slice
    bounds, broadcasting), else its ``infer`` run on the concrete shapes."""
    op = node.op
    ins = [tuple(shapes[x]) for x in node.inputs]
    if op.concrete_shape is not None:
        return tuple(op.concrete_shape(ins, NodeContext(node, bindings)))
    fakes = [_Shaped(s, x.dtype) for s, x in zip(ins, node.inputs)]
    (out_type,) = op.infer(*fakes)
    return tuple(d if isinstance(d, int) else sh.resolve_dim(d, bindings)
                 for d in out_type.shape)


def infer_shapes(nodes: list[Apply], shapes: dict, bindings: dict) -> dict:
    """Concrete shapes of all variables (``shapes`` holds the leaves'); raises ValueError."""
    for node in nodes:
        try:
            shape = concrete_shape(node, shapes, bindings)
        except (ValueError, TypeError, IndexError) as err:
            raise node_error(node, shapes, err) from None
        for out in node.outputs:
            # kernels loop over a static dim's own value: one that disagrees with the
            # run-time shape would read or write the wrong elements (the evaluator's check)
            for axis, (d, n) in enumerate(zip(out.shape, shape)):
                if isinstance(d, int) and d != n or d in bindings and bindings[d] != n:
                    static = d if isinstance(d, int) else f"{d} = {bindings[d]}"
                    raise node_error(node, shapes, ValueError(
                        f"dim {axis} must be {static}, got {n}"))
            shapes[out] = shape
    return shapes


def plan_arena(sizes: dict[Variable, int], birth: dict[Variable, int],
               death: dict[Variable, int]) -> tuple[dict[Variable, int], int]:
    """Byte offsets for buffers alive over ``[birth, death]`` steps; greedy first fit.

    A buffer born at step ``s`` never shares bytes with one that dies at ``s`` (a kernel's
    output must not overlap its inputs).

    The live blocks never overlap, so sorted by start they are sorted by end too, and the
    first fit is the first gap between them wide enough.  An upper bound of the widest gap
    skips the search when no gap can fit: an unrolled RNN keeps every step's activations
    alive for the backward pass, and searching all of them for each new buffer made its
    first call quadratic (0.4 s to plan 2,300 buffers at T=100, now 0.04 s).  A buffer that
    fits a hole near the end still searches from offset 0.
    """
    offsets: dict[Variable, int] = {}
    starts: list[int] = []  # live blocks, by start
    ends: list[int] = []
    dying: list[tuple[int, int]] = []  # heap of the live blocks' (death, start)
    widest = 0  # no gap between live blocks (or before the first) is wider than this
    total = 0
    for var in sorted(sizes, key=birth.__getitem__):
        step = birth[var]
        while dying and dying[0][0] < step:
            k = bisect.bisect_left(starts, heapq.heappop(dying)[1])
            del starts[k], ends[k]
            if k < len(starts):  # the gaps on both sides of block k are now one
                widest = max(widest, starts[k] - (ends[k - 1] if k else 0))
        size = max(ALIGN, -(-sizes[var] // ALIGN) * ALIGN)
        k, cursor = len(starts), ends[-1] if ends else 0
        if size <= widest:
            prev = seen = 0
            for i, start in enumerate(starts):
                if start - prev >= size:
                    k, cursor = i, prev
                    break
                seen = max(seen, start - prev)
                prev = ends[i]
            else:
                widest = seen  # exact: every gap was searched
        starts.insert(k, cursor)
        ends.insert(k, cursor + size)
        heapq.heappush(dying, (death[var], cursor))
        offsets[var] = cursor
        total = max(total, cursor + size)
    return offsets, total


def aligned_empty(nbytes: int) -> np.ndarray:
    """A zeroed uint8 array of ``nbytes`` whose data is 64-byte aligned; from
    :data:`HUGE_FROM` bytes on, backed by transparent huge pages where the OS offers them.

    Why huge pages: a fresh arena is paid for page by page at its first touch, ~2 us a 4 KiB
    page on this VM: W1's 1.7 MB arena cost ~1 ms of the first call, half of what a first
    call costs more than the next (a 2 MiB page faults in once, ~0.2 ms); fewer TLB entries
    for the step too."""
    if nbytes >= HUGE_FROM:
        arena = _huge_page_zeros(nbytes)
        if arena is not None:
            return arena
    return storage.aligned_empty((nbytes,), np.uint8, zeroed=True)


#: a transparent huge page (2 MiB on x86-64 and arm64 with 4 KiB pages)
HUGE_PAGE = 1 << 21
#: arenas this big or bigger ask for huge pages: half a huge page or more is faulted in
#: faster as one page than as 256 small ones
HUGE_FROM = 1 << 20


def _huge_page_zeros(nbytes: int) -> np.ndarray | None:
    """``nbytes`` of a private anonymous mapping (zero-filled), starting on a 2 MiB boundary,
    advised ``MADV_HUGEPAGE``; None where that is not available (the caller uses numpy)."""
    import mmap  # lazy: an extension module, needed once a plan is made

    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is None:
        return None
    size = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
    try:
        region = mmap.mmap(-1, size + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (OSError, ValueError, AttributeError):
        return None
    raw = np.frombuffer(region, dtype=np.uint8)  # keeps the mapping alive; unmapped with it
    start = (-raw.ctypes.data) % HUGE_PAGE
    try:
        region.madvise(advice, start, size)
    except (OSError, ValueError):
        pass  # still a zeroed, aligned mapping, in small pages
    return raw[start:start + nbytes]
