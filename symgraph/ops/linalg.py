"""Matrix products for vector and matrix operands (numpy's ``matmul``/``dot``).

The gradient rules are the textbook ones (``G @ B.T``, ``A.T @ G``); the
vector cases use broadcasting products (outer products) instead of reshapes,
so they stay elementwise and fusable.
"""

from __future__ import annotations

import numpy as np

from symgraph import shapes as sh
from symgraph.dispatch import ops
from symgraph.graph import Op, TensorType, Variable, as_variable

__all__ = ["dot", "matmul"]


class MatMul(Op):
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


# --------------------------------------------------------------------------- user functions


def matmul(a, b) -> Variable:
    """Matrix product of vectors and matrices (numpy's ``matmul``)."""
    a, b = as_variable(a), as_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: scalar operands are not allowed, use *")
    return MatMul()(a, b)


def dot(a, b) -> Variable:
    """numpy's ``dot`` for vectors and matrices; scalars multiply."""
    a, b = as_variable(a), as_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        return ops.mul(a, b)
    return matmul(a, b)
