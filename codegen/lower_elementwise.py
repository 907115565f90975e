"""Lowerings of the elementwise-style ops: values computed at one index inside any loop.

Elementwise nodes compose their ``ScalarOp`` bodies (``symgraph/ops/elemwise.py``: a libm
``math`` function or a ``lower`` against :class:`codegen.irgen.ScalarBuilder`), so a maximal
elementwise tree is one loop nest; casts, dropout masks, sizes, aranges and one-hots are
inline values too, and a transposing DimShuffle is read through permuted indices.  A
buffered result of these ops is one loop nest storing the inline value
(:func:`lower_elementwise_group`, which also runs adjacent same-shape results in one loop).
Each op's :class:`codegen.registry.Lowering` is registered at the end of this module.
"""

from __future__ import annotations

import math

from symgraph.graph import Apply, Variable, dtype_name
from symgraph.ops.elemwise import Cast, DropoutMask, Elemwise
from symgraph.ops.nn import Arange, OneHot
from symgraph.ops.reduce import Size
from symgraph.ops.structure import DimShuffle, Flip

from .irgen import Value, literal
from .kernel import Kernel, KernelInfo, broadcast_index, node_error
from .lower_sums import lower_sum_table
from .native import parallel
from .registry import Lowering, facts, register_lowering, shape_only

__all__ = ["lower_elementwise_group", "lower_elementwise_kernel", "nest_groups"]


def _inline_elemwise(k: Kernel, node: Apply, idx: list[str]) -> Value:
    """The scalar op's body at ``idx``, its inputs converted to the op's operand dtypes."""
    sop = node.op.scalar_op
    out = node.outputs[0]
    dtypes = node.op.operand_dtypes(node)
    args = []
    for i, (x, dt) in enumerate(zip(node.inputs, dtypes)):
        if i in sop.unread:  # the body ignores its value (fill's like): a placeholder
            args.append(k.sb.const(0, "int64"))
            continue
        args.append(k.sb.convert(k.value_at(x, broadcast_index(x, out, idx)), dt))
    lower = sop.lower
    if lower is None:
        raise node_error(node, "the scalar op has no lower()")
    if (sop.lower_invariant is not None and out.ndim
            and all(d == 1 for x in node.inputs[1:] for d in x.shape)):
        # x / s with a loop-invariant s (Adam's bias corrections): one reciprocal, which
        # LICM hoists out of the loop, and a multiply per element (``arcp`` allows it) --
        # a vector division costs as much as the memory traffic of the whole update
        lower = sop.lower_invariant
    return k.sb.convert(lower(k.sb, *args), dtype_name(out.dtype))


def _inline_cast(k: Kernel, node: Apply, idx: list[str]) -> Value:
    return k.sb.convert(k.value_at(node.inputs[0], idx), dtype_name(node.outputs[0].dtype))


def _splitmix(k: Kernel, z: str) -> str:
    op = k.fb.op
    z = op(f"add i64 {z}, {literal(0x9E3779B97F4A7C15, 'int64')}")
    for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        shifted = op(f"lshr i64 {z}, {shift}")
        mixed = op(f"xor i64 {z}, {shifted}")
        z = op(f"mul i64 {mixed}, {literal(mult, 'int64')}")
    shifted = op(f"lshr i64 {z}, 31")
    return op(f"xor i64 {z}, {shifted}")


def _inline_dropout(k: Kernel, node: Apply, idx: list[str]) -> Value:
    op_, out = node.op, node.outputs[0]
    counter = k.sb.convert(k.value_at(node.inputs[1], []), "int64")
    key = k.fb.op(f"xor i64 {_splitmix(k, counter.ref)}, {literal(op_.seed, 'int64')}")
    key = _splitmix(k, key)
    flat = k.offset(out, idx)
    bits = _splitmix(k, k.fb.op(f"xor i64 {flat}, {key}"))
    top = k.fb.op(f"lshr i64 {bits}, 11")
    u = k.fb.op(f"uitofp i64 {top} to double")
    u = k.fb.op(f"fmul double {u}, {literal(2.0 ** -53, 'float64')}")
    keep = k.fb.op(f"fcmp olt double {u}, {literal(op_.keep_prob, 'float64')}")
    dt = dtype_name(out.dtype)
    one = literal(out.dtype.type(1.0 / op_.keep_prob), dt)
    return Value(k.fb.op(f"select i1 {keep}, {Value('', dt).ty} {one}, "
                         f"{Value('', dt).ty} {literal(0, dt)}"), dt)


def _inline_size(k: Kernel, node: Apply, idx: list[str]) -> Value:
    x = node.inputs[0]
    n = k.size(x, node.op.axes)
    return k.sb.convert(Value(n, "int64"), dtype_name(node.outputs[0].dtype))


def _inline_arange(k: Kernel, node: Apply, idx: list[str]) -> Value:
    return k.sb.convert(Value(idx[0], "int64"), dtype_name(node.outputs[0].dtype))


def _inline_one_hot(k: Kernel, node: Apply, idx: list[str]) -> Value:
    label = k.sb.convert(k.value_at(node.inputs[0], idx[:-1]), "int64")
    hit = Value(k.fb.op(f"icmp eq i64 {label.ref}, {idx[-1]}"), "bool")
    return k.sb.convert(hit, dtype_name(node.outputs[0].dtype))


def _check_labels(k: Kernel, node: Apply) -> None:
    """Before the main loop: every label of the one-hot is in ``[0, depth)`` (one pass over
    the labels, not one check per one-hot element)."""
    labels = node.inputs[0]
    idx, toks = k.open_loops(labels, range(labels.ndim))
    position = [idx[a] for a in range(labels.ndim)]
    label = k.sb.convert(k.value_at(labels, position), "int64").ref
    depth = str(node.op.depth)
    bad = k.fb.op(f"icmp uge i64 {label}, {depth}")  # negatives are huge unsigned
    k.fail_if(bad, node, 0, -1, label, depth, position)
    k.close_loops(toks)


def _inline_dimshuffle(k: Kernel, node: Apply, idx: list[str]) -> Value:
    op_ = node.op
    src = ["0"] * op_.ndim_in
    for pos, a in enumerate(op_.order):
        if a != "x":
            src[a] = idx[pos]
    return k.value_at(node.inputs[0], src)


def _inline_flip(k: Kernel, node: Apply, idx: list[str]) -> Value:
    """``flip``: input index ``n - 1 - i`` along each flipped axis."""
    x, src = node.inputs[0], list(idx)
    for a in node.op.axes:
        d = k.dim(x, a)
        last = str(int(d) - 1) if d.isdigit() else k.fb.op(f"sub i64 {d}, 1")
        src[a] = k.fb.op(f"sub i64 {last}, {idx[a]}")
    return k.value_at(x, src)


def lower_elementwise_kernel(k: Kernel, node: Apply) -> None:
    """Store an inlinable op's value at every index of its output (one loop nest)."""
    lower_elementwise_group(k, [node.outputs[0]])


def lower_elementwise_group(k: Kernel, group: list[Variable]) -> None:
    """Same-shape elementwise results in ONE loop nest (e.g. Adam's m, v and p): a later
    member reads an earlier one at the same index, which LLVM forwards from the store, so
    each element is loaded and stored once.  From ``k.ctx.split_minimum`` elements the
    loop runs on both cores (:func:`_lower_parallel`)."""
    first = group[0]
    if len(group) > 1:  # (a single variable's kernel checked its labels in lower_node)
        k.run_prechecks([n for var in group for n in k.an.members.get(var, [var.owner])])
    if lower_sum_table(k, group):  # a long chain of sums, term by term
        return
    wide = [a for a, d in enumerate(first.shape) if d != 1]
    groups = nest_groups(k, group, range(first.ndim))
    # one flat loop when every value read is whole or a broadcast scalar: the vectoriser
    # sees one long contiguous loop instead of short inner rows
    if _lower_parallel(k, group, wide, len(groups) == 1):
        return
    idx_map, tokens = k.open_groups(first, groups)
    idx = [idx_map[a] for a in range(first.ndim)]
    for var in group:
        k.store(var, idx, k.inline_value(var.owner, idx))
    k.close_loops(tokens, *k.rolled(first, groups))


def nest_groups(k: Kernel, group: list[Variable], axes) -> list[list[int]]:
    """The loops of an elementwise nest: ``Kernel.loop_groups`` runs adjacent axes as one
    loop when every value read allows it (all of them for whole operands and scalars; H*W
    for a bias broadcast over (N, C, H, W))."""
    first = group[0]
    if not all(facts(v.owner.op).flat for v in group):
        return [[a] for a in axes if first.shape[a] != 1]
    reads = [x for v in group for i, x in enumerate(v.owner.inputs)
             if not shape_only(v.owner.op, i)]
    return k.loop_groups(first, axes, reads)


def _lower_parallel(k: Kernel, group: list[Variable], wide: list[int], flat: bool) -> bool:
    """The group's loop split across OpenBLAS's threads (:mod:`codegen.native.parallel`) when
    it has at least ``k.ctx.split_minimum`` elements (static shapes decide here, others at
    run time, if a symbolic dim of ``parallel.LIKELY_DIM`` would make it that big); False
    (nothing emitted) when it does not apply.

    The loop over a sub-range ``[lo, hi)`` of the flat index (or of axis 0 when the loop is not
    flat) becomes ``@<kernel>_range(buffers..., tab, lo, hi)``; ``@<kernel>_part(ctx, lo, hi)``
    unpacks the buffer pointers from ``ctx`` and calls it; the kernel packs ``ctx`` and calls
    ``sg_parallel_for``, which runs chunks of the range on the caller and on OpenBLAS's workers.

    Same bits as the serial loop: chunk bounds of a contiguous loop are multiples of
    ``parallel.ALIGN`` elements, so each element goes through the same vector or remainder code.
    One exception is refused here: a static loop's remainder is vectorised knowing its length, a
    chunk's is not, so a static length that is not a multiple of ``ALIGN`` stays serial when the
    loop calls a vector maths function (another libmvec width could change the last elements'
    bits; ``+ - * /`` and ``sqrt`` are exact in any width). Chunks are disjoint, and every member
    reads the others (and an in-place update its own old value) only at the index it writes, so
    any order of chunks is right.
    """
    first, minimum = group[0], k.ctx.split_minimum
    if minimum is None or not wide or (not flat and first.shape[0] == 1):
        return False
    static = all(isinstance(d, int) for d in first.shape)
    contiguous = flat or first.ndim == 1
    known = math.prod(d for d in first.shape if isinstance(d, int))
    if known * (1 if static else parallel.LIKELY_DIM) < minimum:
        return False  # (a symbolic dim would have to exceed LIKELY_DIM: not worth the code)
    r = Kernel(k.ctx, f"{k.name}_range")
    r.extra_params = ", i64 %lo, i64 %hi"
    r.static_args = False  # the part function passes buffers only
    j, token = r.fb.loop_begin(r.fb.entry_op("count", "sub i64 %hi, %lo"))
    i = r.fb.op(f"add nsw i64 {j}, %lo")
    if flat:
        idx = ["0"] * first.ndim
        idx[wide[-1]] = i
        tokens = [token]
    else:
        groups = nest_groups(r, group, range(1, first.ndim))
        inner, more = r.open_groups(first, groups)
        idx, tokens = [i] + [inner[a] for a in range(1, first.ndim)], [token, *more]
    for var in group:
        r.store(var, idx, r.inline_value(var.owner, idx))
    # (after the body: short_rows measures it; the range loop is around the groups)
    hints = ((), ()) if flat else r.rolled(first, [[0], *groups])
    r.close_loops(tokens, *hints)
    if r.fallible:  # a check inside the loop returns early: keep the serial loop
        return False
    if (static and contiguous and math.prod(first.shape) % parallel.ALIGN
            and r.fb.math_used):
        return False
    roots = list(r.params)
    k.extra_functions += [r.finish(KernelInfo(r.name, first, [])),
                          parallel.part_function(f"{k.name}_part", r.name, len(roots))]
    k.ctx.uses_parallel = k.parallel = True
    # the kernel: pack the buffers and hand the range to the runtime, with whether it is big
    # enough to split (symbolic dims: known at run time only)
    fb = k.fb
    ptrs = [k.ptr(root) for root in roots] + ["%tab"]
    n = k.size(first) if flat else k.dim(first, 0)
    big = "true" if static else fb.op(f"icmp sge i64 {k.size(first)}, {minimum}")
    ctx = k.pointer_array("ctx", ptrs)
    # the split index runs over contiguous elements (flat, or a vector): chunk bounds on
    # multiples of ALIGN; over axis 0 of a nest: whole rows, any bound
    align = parallel.ALIGN if contiguous else 1
    fb.emit(f"call void @{parallel.DISPATCH}(ptr @{k.name}_part, ptr {ctx}, i64 {n}, "
            f"i64 {align}, i1 {big})")
    return True


# --------------------------------------------------------------------------- registrations
# inline ops: an elementwise loop computes a buffered result (``kernel`` None)
register_lowering(Elemwise, Lowering(inline=_inline_elemwise, fuses="output",
                                     value_consumer=True, flat=True))
register_lowering(Cast, Lowering(inline=_inline_cast, fuses="output", value_consumer=True,
                                 flat=True))
register_lowering(DropoutMask, Lowering(inline=_inline_dropout, value_consumer=True, flat=True))
register_lowering(Size, Lowering(inline=_inline_size, cheap=True, value_consumer=True,
                                 flat=True))
register_lowering(Arange, Lowering(inline=_inline_arange, cheap=True))
register_lowering(OneHot, Lowering(inline=_inline_one_hot, cheap=True, value_consumer=True,
                                   fallible=True, precheck=_check_labels))
# a transposing view; a buffered one (a consumer needs memory) is a copy loop
register_lowering(DimShuffle, Lowering(inline=_inline_dimshuffle, view=True,
                                       value_consumer=True))
# flip: a view read through reversed indices inside its consumer's loop, like a transpose.
# Not ``fuses``: fusion takes "fuses output" to mean "reads each input at the index it
# writes" (grouping kernels, in-place updates), which a flip does not
register_lowering(Flip, Lowering(inline=_inline_flip, view=True, value_consumer=True))
