"""Matrix products: numpy's ``matmul`` (vectors, matrices, stacks of matrices), ``dot`` and
``einsum``.

Two op classes.  ``MatMul`` takes vectors and matrices (a gemm or gemv in the LLVM backend;
the SGD fold and the BLAS transpose flags are written against it).  ``BatchedMatMul``
takes stacks of matrices whose leading (batch) dims broadcast as in numpy; ``matmul``
promotes a vector operand to a one-row (one-column) matrix around it and drops the added
axis, as numpy does.  The gradient rules are the textbook ones (``G @ B^T``, ``A^T @ G``)
with ``^T`` swapping the last two axes (a view the backend reads as a BLAS flag) and the
sum over broadcast batch dims; for ``(b, m, k) @ (k, n)`` the weight gradient is one 2-d
product of the flattened stacks.  The vector cases of ``MatMul`` use broadcasting products
(outer products) instead of reshapes, so they stay elementwise and fusable.

``einsum`` is built at graph level from transposes, reshapes, sums, broadcasting products and
matmuls (contracting two operands at a time, left to right), so it needs no lowering of its
own and its gradient comes from those ops.
"""

from __future__ import annotations

import string

import numpy as np

from symgraph import shapes as sh
from symgraph.dispatch import ops
from symgraph.graph import Op, TensorType, Variable, as_variable
from symgraph.ops.arguments import argument_error
from symgraph.ops.elemwise import check_runtime_broadcast_shapes

__all__ = ["dot", "einsum", "matmul"]


class MatMul(Op):
    """The product of vectors and matrices (1 or 2 dims each)."""

    @property
    def name(self) -> str:
        return "matmul"

    def infer(self, a, b):
        if a.ndim not in (1, 2) or b.ndim not in (1, 2):
            raise ValueError("matmul takes vectors and matrices (1 or 2 dims)")
        if a.dtype.kind == "b" or b.dtype.kind == "b":
            raise TypeError("matmul of booleans is not supported")
        k_a = a.shape[-1]
        k_b = b.shape[0]
        if sh.dims_equal(k_a, k_b) is False:
            raise sh.ShapeError(f"contracted dims differ: {sh.format_dim(k_a)} vs "
                                f"{sh.format_dim(k_b)}")
        shape = (a.shape[:-1]) + (b.shape[1:])
        return [TensorType(np.result_type(a.dtype, b.dtype), shape)]

    def perform(self, inputs, ctx):
        a, b = inputs
        return [np.asarray(np.matmul(a, b), dtype=ctx.out_dtype)]

    def bprop(self, inputs, outputs, index, grads):
        a, b = inputs
        g = grads[0]
        if index == 0:
            if a.ndim == 2 and b.ndim == 2:
                ga = g @ b.T
            elif a.ndim == 2:            # (m,k)@(k,) -> (m,): outer(g, b)
                ga = ops.expand_dims(g, 1) * b
            elif b.ndim == 2:            # (k,)@(k,n) -> (n,)
                ga = b @ g
            else:
                ga = g * b
            return ops.cast(ga, a.dtype)
        if a.ndim == 2 and b.ndim == 2:
            gb = a.T @ g
        elif a.ndim == 2:                # (m,k)@(k,) -> gb = a.T @ g
            gb = a.T @ g
        elif b.ndim == 2:                # outer(a, g)
            gb = ops.expand_dims(a, 1) * g
        else:
            gb = g * a
        return ops.cast(gb, b.dtype)


class BatchedMatMul(MatMul):
    """Stacks of matrices, ``(..., m, k) @ (..., k, n) -> (..., m, n)``: both operands have at
    least 2 dims and the batch dims (all but the last two) broadcast as in numpy (a static 1
    broadcasts).  A subclass of ``MatMul`` for printing (``a @ b``) and profiles (a BLAS
    kernel); the LLVM backend lowers it separately (one gemm per batch, one gemm for a
    2-d right operand, or a loop for tiny matrices)."""

    def infer(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError("batched matmul takes operands of 2 or more dims "
                             "(sg.matmul promotes vectors)")
        if a.dtype.kind == "b" or b.dtype.kind == "b":
            raise TypeError("matmul of booleans is not supported")
        batch = _check_matmul_dims(a.shape, b.shape)
        return [TensorType(np.result_type(a.dtype, b.dtype),
                           batch + (a.shape[-2], b.shape[-1]))]

    def concrete_shape(self, shapes: list[tuple], ctx) -> tuple:
        """The output shape at run time; as for elementwise ops only a static 1 broadcasts
        (a symbolic batch dim of 1 against 3 made the llvm backend read past its operand)."""
        a, b = (tuple(s) for s in shapes)
        batch = tuple(sh.broadcast_shapes(a[:-2], b[:-2]))
        check_runtime_broadcast_shapes(ctx.node.inputs, [a[:-2], b[:-2]], batch)
        return batch + (a[-2], b[-1])

    def perform(self, inputs, ctx):
        a, b = inputs
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        check_runtime_broadcast_shapes(ctx.node.inputs, [a.shape[:-2], b.shape[:-2]], batch)
        return super().perform(inputs, ctx)

    def bprop(self, inputs, outputs, index, grads):
        a, b = inputs
        g = grads[0]
        if index == 0:   # G @ B^T, summed over the batch dims a broadcast
            return ops.cast(_sum_to(ops.matmul(g, swap_last(b)), a), a.dtype)
        rows = sh.shape_product(a.shape[:-1])
        if b.ndim == 2 and rows is not None and None not in (a.shape[-1], b.shape[-1]):
            # every batch shares B: sum_b A_b^T G_b is one product of the flattened stacks
            # (rows named, not -1: a -1 next to a dim of 0 is ambiguous, as in numpy)
            flat_a = ops.reshape(a, (rows, a.shape[-1]))
            flat_g = ops.reshape(g, (rows, b.shape[-1]))
            return ops.cast(ops.matmul(flat_a.T, flat_g), b.dtype)
        return ops.cast(_sum_to(ops.matmul(swap_last(a), g), b), b.dtype)


def _check_matmul_dims(a_shape: tuple, b_shape: tuple) -> tuple:
    """The broadcast batch shape of ``(..., m, k) @ (..., k, n)``; ShapeError on a clash."""
    k_a, k_b = a_shape[-1], b_shape[-2]
    if sh.dims_equal(k_a, k_b) is False:
        raise sh.ShapeError(f"contracted dims differ: {sh.format_dim(k_a)} vs "
                            f"{sh.format_dim(k_b)}")
    try:
        return sh.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except sh.ShapeError as err:
        raise sh.ShapeError(f"batch dims {sh.format_shape(a_shape[:-2])} and "
                            f"{sh.format_shape(b_shape[:-2])} do not broadcast ({err})") from None


def swap_last(x: Variable) -> Variable:
    """``x`` with its last two axes swapped (a matrix transpose of every batch)."""
    n = x.ndim
    return ops.transpose(x, (*range(n - 2), n - 1, n - 2))


def _sum_to(g: Variable, like: Variable) -> Variable:
    """``g`` summed over the leading axes ``like`` lacks and the axes where it has a static 1."""
    lead = g.ndim - like.ndim
    if lead:
        g = ops.sum(g, axis=tuple(range(lead)))
    ones = tuple(i for i, (d, e) in enumerate(zip(like.shape, g.shape)) if d == 1 and e != 1)
    return ops.sum(g, axis=ones, keepdims=True) if ones else g


# --------------------------------------------------------------------------- user functions


def matmul(a, b) -> Variable:
    """Matrix product, as numpy's ``matmul``: vectors, matrices and stacks of matrices whose
    leading dims broadcast; a vector operand is a one-row (left) or one-column (right) matrix
    whose added axis the result drops.

    >>> sg.matmul(sg.tensor("a", (8, 3, 4)), sg.tensor("b", (4, 5))).shape
    (8, 3, 5)
    """
    a, b = as_variable(a), as_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: scalar operands are not allowed, use *")
    if a.ndim <= 2 and b.ndim <= 2:
        return MatMul()(a, b)
    a_shape = (1,) + a.shape if a.ndim == 1 else a.shape
    b_shape = b.shape + (1,) if b.ndim == 1 else b.shape
    try:
        _check_matmul_dims(a_shape, b_shape)
    except sh.ShapeError as err:
        raise argument_error("matmul", err, [a, b]) from None
    out = BatchedMatMul()(ops.expand_dims(a, 0) if a.ndim == 1 else a,
                          ops.expand_dims(b, 1) if b.ndim == 1 else b)
    if b.ndim == 1:
        out = ops.squeeze(out, -1)
    if a.ndim == 1:
        out = ops.squeeze(out, -2)
    return out


def dot(a, b) -> Variable:
    """numpy's ``dot``: scalars multiply, vectors and matrices as ``matmul``; for more dims
    the sum over the last axis of ``a`` and the second-to-last of ``b``
    (``dot(a, b)[i, j, k, m] = sum(a[i, j, :] * b[k, :, m])``)."""
    a, b = as_variable(a), as_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        return ops.mul(a, b)
    if a.ndim <= 2 and b.ndim <= 2:
        return matmul(a, b)
    k_a, k_b = a.shape[-1], b.shape[-2 if b.ndim > 1 else 0]
    if sh.dims_equal(k_a, k_b) is False:
        raise argument_error("dot", sh.ShapeError(
            f"contracted dims differ: {sh.format_dim(k_a)} vs {sh.format_dim(k_b)}"), [a, b])
    letters = iter(string.ascii_letters)
    la = "".join(next(letters) for _ in range(a.ndim - 1))
    lb = "".join(next(letters) for _ in range(b.ndim - 1))
    k = next(letters)
    return einsum(f"{la}{k},{lb[:-1]}{k}{lb[-1:]}->{la}{lb}", a, b)


# --------------------------------------------------------------------------- einsum


def einsum(subscripts: str, *operands) -> Variable:
    """numpy's ``einsum``: ``"bij,bjk->bik"``; implicit output (the labels seen once, in
    alphabetical order, after the ``...`` dims); ``...`` for broadcast dims; a dim of static
    length 1 broadcasts against its label's length.  Built from transposes, reshapes, sums,
    broadcasting products and matmuls (two operands at a time, left to right), so it has
    their gradients.  A label repeated within one operand (a trace or diagonal, ``"ii->"``)
    is not supported (ValueError).

    >>> sg.einsum("bhqd,bhkd->bhqk", q, k)      # attention scores
    """
    xs = [as_variable(x) for x in operands]
    if len(xs) > 1 and any(x.dtype.kind == "b" for x in xs):  # (matmul refuses them)
        if all(x.dtype.kind == "b" for x in xs):
            raise argument_error("einsum", TypeError(
                "only boolean operands: cast one to a number"), xs)
        dtype = np.result_type(*(x.dtype for x in xs))  # numpy: a mask becomes 0 and 1
        xs = [ops.cast(x, dtype) if x.dtype.kind == "b" else x for x in xs]
    try:
        specs, out = _parse(subscripts, xs)
        xs, specs, sizes = _broadcast_labels(xs, specs, out)
    except (ValueError, TypeError) as err:
        raise argument_error("einsum", type(err)(f"{err} (subscripts {subscripts!r})"),
                             xs) from None
    x, labels = xs[0], specs[0]
    for n in range(1, len(xs)):
        later = set(out).union(*specs[n + 1:])
        x, labels = _contract(x, labels, xs[n], specs[n], later, sizes)
    x, labels = _sum_out(x, labels, set(out))
    perm = tuple(labels.index(c) for c in out)
    return ops.transpose(x, perm) if perm != tuple(range(len(perm))) else x


def _parse(subscripts: str, xs: list) -> tuple[list[list], list]:
    """Label lists of the operands and of the output.  Labels are letters; the dims ``...``
    stands for are the integer labels ``0, 1, ...`` counted from the right (broadcast)."""
    if not isinstance(subscripts, str):
        raise TypeError(f"subscripts must be a string, not {type(subscripts).__name__}")
    text = subscripts.replace(" ", "")
    lhs, arrow, rhs = text.partition("->")
    parts = lhs.split(",")
    if not xs:
        raise ValueError("einsum needs at least one operand")
    if len(parts) != len(xs):
        raise ValueError(f"{len(parts)} operand subscripts for {len(xs)} operands")
    specs, widest = [], 0
    for n, (part, x) in enumerate(zip(parts, xs)):
        spec = _labels(part, f"operand {n}")
        letters = [c for c in spec if c != "..."]
        if "..." in spec:
            extra = x.ndim - len(letters)
            if extra < 0:
                raise ValueError(f"operand {n} has {x.ndim} dims, fewer than the "
                                 f"{len(letters)} labels of {part!r}")
            at = spec.index("...")
            spec = spec[:at] + list(range(extra - 1, -1, -1)) + spec[at + 1:]
            widest = max(widest, extra)
        elif len(letters) != x.ndim:
            raise ValueError(f"operand {n} has {x.ndim} dims but {len(letters)} labels "
                             f"({part!r})")
        repeated = sorted({c for c in letters if letters.count(c) > 1})
        if repeated:
            raise ValueError(f"label {repeated[0]!r} repeated in operand {n} ({part!r}): "
                             "traces and diagonals are not supported")
        specs.append(spec)
    ellipsis = list(range(widest - 1, -1, -1))
    if arrow:
        out = _labels(rhs, "the output")
        if "..." in out:
            at = out.index("...")
            out = out[:at] + ellipsis + out[at + 1:]
        elif widest:
            raise ValueError("the output has no '...' for the operands' '...' dims")
        seen = set().union(*specs)
        for c in out:
            if out.count(c) > 1:
                raise ValueError(f"label {c!r} repeated in the output")
            if c not in seen:
                raise ValueError(f"output label {c!r} is not in any operand")
    else:
        letters = [c for spec in specs for c in spec if isinstance(c, str)]
        out = ellipsis + sorted(c for c in set(letters) if letters.count(c) == 1)
    return specs, out


def _labels(part: str, what: str) -> list:
    spec, rest = [], part
    while rest:
        if rest.startswith("..."):
            if "..." in spec:
                raise ValueError(f"more than one '...' in {what}")
            spec.append("...")
            rest = rest[3:]
        elif rest[0] in string.ascii_letters:
            spec.append(rest[0])
            rest = rest[1:]
        else:
            raise ValueError(f"invalid character {rest[0]!r} in {what}'s subscripts")
    return spec


def _broadcast_labels(xs: list, specs: list, out: list):
    """Each label's length (dims of one label broadcast: only a static 1 stretches); an
    operand's static-1 dim of a longer label is squeezed away (it does not vary along it)."""
    sizes: dict = {}
    for n, (x, spec) in enumerate(zip(xs, specs)):
        for c, d in zip(spec, x.shape):
            try:
                sizes[c] = sh.broadcast_dim(sizes.get(c, 1), d)
            except sh.ShapeError:
                name = "a '...' dim" if isinstance(c, int) else f"label {c!r}"
                raise sh.ShapeError(f"{name} has length {sh.format_dim(sizes[c])} and "
                                    f"{sh.format_dim(d)} in operand {n}") from None
    new_xs, new_specs = [], []
    for x, spec in zip(xs, specs):
        drop = [i for i, (c, d) in enumerate(zip(spec, x.shape)) if d == 1 and sizes[c] != 1]
        if drop:
            x = ops.squeeze(x, tuple(drop))
            spec = [c for i, c in enumerate(spec) if i not in drop]
        new_xs.append(x)
        new_specs.append(list(spec))
    return new_xs, new_specs, sizes


def _sum_out(x: Variable, labels: list, keep: set) -> tuple[Variable, list]:
    axes = tuple(i for i, c in enumerate(labels) if c not in keep)
    if not axes:
        return x, labels
    return _einsum_sum(x, axes), [c for c in labels if c in keep]


def _einsum_sum(x: Variable, axes: tuple) -> Variable:
    """``sum`` over ``axes`` in ``x``'s own dtype: numpy's einsum does not widen integers
    (int32 stays int32, bool is a logical or) as ``sum`` does."""
    s = ops.sum(x, axis=axes)
    return s if s.dtype == x.dtype else ops.cast(s, x.dtype)


def _regroup(x: Variable, groups: list[list], sizes: dict, split: bool = False):
    """``x`` reshaped from (to, with ``split``) one axis per label to one axis per group of
    labels (an empty group: a length-1 axis); None when the reshape would need more than one
    unknown (None) length."""
    empty = tuple(i for i, g in enumerate(groups) if not g)
    if all(len(g) <= 1 for g in groups):  # only length-1 axes to add or drop
        return x if not empty else ops.squeeze(x, empty) if split else ops.expand_dims(x, empty)
    target = [sizes[c] for g in groups for c in g] if split else \
        [sh.shape_product(sizes[c] for c in g) for g in groups]
    if sum(d is None for d in target) > 1:
        return None
    return ops.reshape(x, tuple(target))


def _contract(a: Variable, la: list, b: Variable, lb: list, later: set, sizes: dict):
    """``a`` and ``b`` as one operand, summing the labels no ``later`` operand or the output
    has: (result, its labels)."""
    a, la = _sum_out(a, la, later | set(lb))
    b, lb = _sum_out(b, lb, later | set(la))
    batch = [c for c in la if c in lb and c in later]
    summed = [c for c in la if c in lb and c not in later]
    only_a = [c for c in la if c not in lb]
    only_b = [c for c in lb if c not in la]
    labels = batch + only_a + only_b
    if summed and (only_a or only_b or not batch):  # (batched dot products: below)
        # a (batch..., M, K) @ (batch..., K, N) product; without batch labels an empty M or N
        # is a vector operand (a gemv, or a dot product)
        has_m, has_n = bool(batch or only_a), bool(batch or only_b)
        singles = [[c] for c in batch]
        am = _regroup(ops.transpose(a, [la.index(c) for c in batch + only_a + summed]),
                      singles + [only_a] * has_m + [summed], sizes)
        bm = _regroup(ops.transpose(b, [lb.index(c) for c in batch + summed + only_b]),
                      singles + [summed] + [only_b] * has_n, sizes)
        if am is not None and bm is not None:
            y = _regroup(ops.matmul(am, bm), singles + [only_a] * has_m + [only_b] * has_n,
                         sizes, split=True)
            if y is not None:
                return y, labels
    # an elementwise product broadcast over the labels of both, then the sum (no contracted
    # label, a dot product per batch entry ("ij,ij->i": a (1, K) @ (K, 1) product per row
    # was 3-6x slower than one fused multiply-sum loop), or axes of several unknown lengths
    # that a reshape cannot merge)
    full = labels + summed
    y = _aligned(a, la, full) * _aligned(b, lb, full)
    return (_einsum_sum(y, tuple(range(len(labels), len(full)))) if summed else y), labels


def _aligned(x: Variable, labels: list, target: list) -> Variable:
    """``x`` transposed to ``target``'s order of its labels, with length-1 axes for the rest."""
    own = [c for c in target if c in labels]
    perm = [labels.index(c) for c in own]
    if perm != list(range(len(perm))):
        x = ops.transpose(x, perm)
    missing = tuple(i for i, c in enumerate(target) if c not in labels)
    return ops.expand_dims(x, missing) if missing else x
