"""Ops that move data without arithmetic: dimshuffle, reshape, concatenate, stack.

``DimShuffle`` (Theano's name) covers transpose, expand_dims and dropping
length-1 axes with one rule, so gradients and the codegen (strides only, no
copies) have a single case to handle.
"""

from __future__ import annotations

import numpy as np
import sympy

from symgraph import shapes as sh
from symgraph.dispatch import ops
from symgraph.graph import Op, TensorType
from symgraph.sentinels import DISCONNECTED
from symgraph.shapes import contiguous as _contiguous


class DimShuffle(Op):
    """``order``: for each output axis, an input axis or ``"x"`` (a new length-1 axis).

    Input axes not listed must have static length 1 (they are dropped).
    """

    props = ("order", "ndim_in")

    def __init__(self, order: tuple, ndim_in: int):
        self.order, self.ndim_in = tuple(order), ndim_in
        kept = [a for a in self.order if a != "x"]
        if len(set(kept)) != len(kept) or any(not 0 <= a < ndim_in for a in kept):
            raise ValueError(f"bad dimshuffle order {order} for {ndim_in} dims")
        self.dropped = tuple(a for a in range(ndim_in) if a not in kept)

    @property
    def name(self) -> str:
        kept = [a for a in self.order if a != "x"]
        if "x" not in self.order and not self.dropped:
            return "transpose"
        if kept == sorted(kept):
            if "x" not in self.order:
                return "squeeze"  # (dropped axes only)
            return "expand_dims" if not self.dropped else "dimshuffle"
        return "dimshuffle"

    def infer(self, x):
        if x.ndim != self.ndim_in:
            raise ValueError(f"expects {self.ndim_in} dims")
        for a in self.dropped:
            if x.shape[a] != 1:
                raise ValueError(f"cannot drop axis {a} of length {sh.format_dim(x.shape[a])}")
        shape = tuple(1 if a == "x" else x.shape[a] for a in self.order)
        return [TensorType(x.dtype, shape)]

    def aliases_input(self) -> bool:
        """Inserting or dropping length-1 axes keeps the C layout: the same bytes."""
        kept = [a for a in self.order if a != "x"]
        return kept == sorted(kept)

    def perform(self, inputs, ctx):
        x = inputs[0]
        kept = [a for a in self.order if a != "x"]
        y = np.transpose(x.reshape([n for i, n in enumerate(x.shape) if i not in self.dropped])
                         if self.dropped else x,
                         [sorted(kept).index(a) for a in kept])
        return [_contiguous(y.reshape([1 if a == "x" else x.shape[a]
                                                for a in self.order]))]

    def bprop(self, inputs, outputs, index, grads):
        g = grads[0]
        # positions of input axes in the output, then reinsert dropped axes as "x"
        # (the gradient's "x" axes have length 1: the inverse drops them)
        where = {a: i for i, a in enumerate(self.order) if a != "x"}
        inverse = tuple("x" if a in self.dropped else where[a] for a in range(self.ndim_in))
        return DimShuffle(inverse, len(self.order))(g)



class Flip(Op):
    """Reverse the order of the elements along ``axes`` (``np.flip``): a view, read through
    reversed indices, so the LLVM backend fuses it into the loop of whoever reads it."""

    props = ("axes",)

    def __init__(self, axes: tuple[int, ...]):
        self.axes = tuple(sorted(axes))

    def infer(self, x):
        if any(not 0 <= a < x.ndim for a in self.axes):
            raise ValueError(f"axes {self.axes} out of range for {x.ndim} dims")
        return [TensorType(x.dtype, x.shape)]

    def perform(self, inputs, ctx):
        return [_contiguous(np.flip(inputs[0], self.axes))]

    def bprop(self, inputs, outputs, index, grads):
        return Flip(self.axes)(grads[0])  # flipping is its own inverse

class Reshape(Op):
    """Reshape to a static target (ints, symbolic dims, one -1)."""

    props = ("shape",)

    def __init__(self, shape: tuple):
        self.shape = tuple(shape)
        if sum(1 for d in self.shape if isinstance(d, int) and d == -1) > 1:
            raise ValueError("only one -1 allowed in a reshape")

    def infer(self, x):
        total = sh.shape_product(x.shape)
        known = [d for d in self.shape if not (isinstance(d, int) and d == -1)]
        out = list(self.shape)
        if len(known) < len(self.shape):
            rest = sh.shape_product(known)
            if total is None or rest is None:
                missing = None
            else:
                missing = sympy.sympify(total) / sympy.sympify(rest) if rest != 0 else None
                if missing is not None:
                    if missing.is_Integer:
                        missing = int(missing)
                    elif missing.is_number:
                        raise ValueError(f"cannot reshape {sh.format_shape(x.shape)} "
                                         f"to {sh.format_shape(self.shape)}")
                    elif not missing.is_integer:
                        missing = None
            out[out.index(-1)] = missing
        else:
            new_total = sh.shape_product(out)
            if total is not None and new_total is not None and sh.dims_equal(total,
                                                                            new_total) is False:
                raise ValueError(f"cannot reshape {sh.format_shape(x.shape)} "
                                 f"(size {total}) to {sh.format_shape(self.shape)}")
        return [TensorType(x.dtype, tuple(out))]

    def aliases_input(self) -> bool:
        return True

    def _target(self, ctx) -> list[int]:
        target = []
        for d in self.shape:
            try:
                target.append(d if isinstance(d, int) else ctx.resolve(d))
            except sh.ShapeError:
                # a symbolic dim no input binds (a new name): numpy infers it, and the
                # evaluator binds the name from the output's shape
                target.append(-1)
        if target.count(-1) > 1:
            raise sh.ShapeError(f"reshape to {sh.format_shape(self.shape)}: more than one "
                                "dim is unknown at run time")
        return target

    def concrete_shape(self, shapes: list[tuple], ctx) -> tuple:
        """The output shape for a concrete input shape; binds a new symbolic dim (a name no
        input binds) in ``ctx.bindings``, as the evaluator does from the output."""
        target = self._target(ctx)
        total = int(np.prod(shapes[0], dtype=np.int64))
        if -1 in target:
            known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
            if known == 0 or total % known:
                raise ValueError(f"cannot reshape {shapes[0]} to {self.shape}")
            target[target.index(-1)] = total // known
        if int(np.prod(target, dtype=np.int64)) != total:
            raise ValueError(f"cannot reshape {shapes[0]} to {tuple(target)}")
        for d, n in zip(self.shape, target):
            if isinstance(d, sympy.Symbol) and d not in ctx.bindings:
                ctx.bindings[d] = n
        return tuple(target)

    def perform(self, inputs, ctx):
        return [_contiguous(inputs[0]).reshape(self._target(ctx))]

    def bprop(self, inputs, outputs, index, grads):
        x = inputs[0]
        if None in x.shape:
            # x's run-time shape: a target with -1 for its unknown dim is ambiguous when
            # another dim is 0, and can hold only one unknown dim
            return ReshapeLike()(grads[0], x)
        return ops.reshape(grads[0], x.shape)


class ReshapeLike(Op):
    """``g`` reshaped to the run-time shape of ``like`` (the gradient of a reshape whose
    input has several unknown dims); ``like`` gives the shape only."""

    @property
    def name(self) -> str:
        return "reshape_like"

    def infer(self, g, like):
        total, want = sh.shape_product(g.shape), sh.shape_product(like.shape)
        if total is not None and want is not None and sh.dims_equal(total, want) is False:
            raise ValueError(f"cannot reshape {sh.format_shape(g.shape)} "
                             f"to {sh.format_shape(like.shape)}")
        return [TensorType(g.dtype, like.shape)]

    def shape_only(self, index: int) -> bool:
        return index == 1

    def aliases_input(self) -> bool:
        return True

    def perform(self, inputs, ctx):
        g, like = inputs
        return [_contiguous(g).reshape(np.shape(like))]

    def bprop(self, inputs, outputs, index, grads):
        if index != 0:
            return DISCONNECTED
        return ReshapeLike()(grads[0], inputs[0])


class Concatenate(Op):
    props = ("axis",)

    def __init__(self, axis: int):
        self.axis = axis

    def infer(self, *xs):
        if not xs:
            raise ValueError("needs at least one input")
        ndim = xs[0].ndim
        if ndim == 0:
            raise ValueError("cannot concatenate scalars (use stack)")
        if any(x.ndim != ndim for x in xs):
            raise ValueError("all inputs must have the same number of dims")
        sh.check_normalized_axis(self.axis, ndim)
        shape = list(xs[0].shape)
        for x in xs[1:]:
            for i, d in enumerate(x.shape):
                if i == self.axis:
                    continue
                if sh.dims_equal(shape[i], d) is False:
                    raise sh.ShapeError(f"dim {i} differs: {shape[i]} vs {d}")
                if shape[i] is None or not isinstance(shape[i], int) and isinstance(d, int):
                    shape[i] = d
        shape[self.axis] = sh.shape_sum(x.shape[self.axis] for x in xs)
        dtype = np.result_type(*(x.dtype for x in xs))
        return [TensorType(dtype, tuple(shape))]

    def perform(self, inputs, ctx):
        return [np.concatenate(inputs, axis=self.axis).astype(ctx.out_dtype, copy=False)]

    def bprop(self, inputs, outputs, index, grads):
        start = sh.shape_sum(x.shape[self.axis] for x in inputs[:index])
        length = inputs[index].shape[self.axis]
        if start is None or length is None:
            # some length is only known at run time: split there
            return ops.cast(ConcatenateGrad(self.axis, index)(grads[0], *inputs),
                            inputs[index].dtype)
        key = [slice(None)] * inputs[index].ndim
        key[self.axis] = slice(start, sympy.sympify(start) + length
                               if not isinstance(start, int) or not isinstance(length, int)
                               else start + length)
        return ops.cast(grads[0][tuple(key)], inputs[index].dtype)


class ConcatenateGrad(Op):
    """Part ``index`` of ``g`` split like ``concatenate(xs, axis)`` (the gradient of a
    concatenation whose lengths are known only at run time); ``xs`` give shapes only."""

    props = ("axis", "index")

    def __init__(self, axis: int, index: int):
        self.axis, self.index = axis, index

    @property
    def name(self) -> str:
        return "concatenate_grad"

    def infer(self, g, *xs):
        if not 0 <= self.index < len(xs):
            raise IndexError(f"part {self.index} of {len(xs)}")
        return [TensorType(g.dtype, xs[self.index].shape)]

    def shape_only(self, index: int) -> bool:
        return index > 0

    def perform(self, inputs, ctx):
        g, *xs = inputs
        start = int(np.sum([np.shape(x)[self.axis] for x in xs[:self.index]], dtype=np.int64))
        key = [slice(None)] * np.ndim(g)
        key[self.axis] = slice(start, start + np.shape(xs[self.index])[self.axis])
        return [_contiguous(g[tuple(key)])]

    def bprop(self, inputs, outputs, index, grads):
        if index != 0:
            return DISCONNECTED
        g, xs = inputs[0], inputs[1:]
        parts = [grads[0] if j == self.index else ops.zeros_like(x, dtype=g.dtype)
                 for j, x in enumerate(xs)]
        return Concatenate(self.axis)(*parts)


class Stack(Op):
    props = ("axis",)

    def __init__(self, axis: int):
        self.axis = axis

    def infer(self, *xs):
        if not xs:
            raise ValueError("needs at least one input")
        shape = sh.broadcast_shapes(*(x.shape for x in xs)) if len(xs) > 1 else xs[0].shape
        if any(x.ndim != len(shape) for x in xs):
            raise ValueError("all inputs must have the same shape")
        for x in xs:
            for a, b in zip(x.shape, shape):
                if sh.dims_equal(a, b) is False:
                    raise sh.ShapeError("all inputs must have the same shape")
        sh.check_normalized_axis(self.axis, len(shape) + 1, "the result")
        out = list(shape)
        out.insert(self.axis, len(xs))
        return [TensorType(np.result_type(*(x.dtype for x in xs)), tuple(out))]

    def perform(self, inputs, ctx):
        return [np.stack(inputs, axis=self.axis).astype(ctx.out_dtype, copy=False)]

    def bprop(self, inputs, outputs, index, grads):
        key = [slice(None)] * outputs[0].ndim
        key[self.axis] = index
        return ops.cast(grads[0][tuple(key)], inputs[index].dtype)
