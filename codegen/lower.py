"""Lower an analysed graph (see :mod:`codegen.fusion`) to one LLVM module with one entry point.

Pipeline position: graph -> grad -> rewrite -> **fusion analysis -> lower** -> LLVM -> call.

Every buffered variable gets a kernel: an internal function with ``noalias`` pointer
parameters (so the vectoriser needs no runtime alias checks; the inliner keeps that fact as
alias scopes) that the entry point ``sg_step`` calls in order, built with
:class:`codegen.kernel.Kernel`.  Each op class has one :class:`codegen.registry.Lowering`
(PyTensor's ``singledispatch`` style): elementwise-style ops an ``inline`` value rule
(:mod:`codegen.lower_elementwise`), the others a ``kernel`` rule (:mod:`codegen.lowerings`,
:mod:`codegen.lower_blas`).  An op without a lowering, or an elementwise op whose libm
function does not exist, is a compile error naming the op and the user's line -- never a
fallback.

Shapes are runtime values: every dim, buffer offset and slice bound the code needs is read
from an int64 *table* that the Python side fills once per shape signature, so one compiled
function serves every batch size.  Entry point ABI (:mod:`codegen.native.pycall`):
``i32 sg_step(ptr bufs, ptr dims)`` with ``bufs = [inputs, shared values, update targets,
arena, table, constants]``.  A non-zero return is ``1 + kernel index`` of a kernel that found
an out-of-bounds index or label; kernels only ever write the arena, the update targets (buffers
the caller adopts after success) and, for in-place updates, the shared variable's own buffer --
only after every fallible kernel has run (:func:`codegen.fusion.plan_inplace`) -- so a failed
call changes no shared variable.  A failed check leaves an error record
(:meth:`codegen.kernel.Kernel.fail_if`) that :func:`runtime_error` turns into the exception
the numpy reference raises for the same call, with the same message.
"""

from __future__ import annotations

import numpy as np

from symgraph.evaluate import _node_error
from symgraph.graph import Apply, Variable
from symgraph.ops.indexing import describe_input

from . import (  # noqa: F401  (register their op families)
    lower_conv,
    lower_layout,
    lower_pool,
    lower_scan,
    lower_softmax,
)
from .irgen import FMF, INTRINSIC_DECLARATIONS
from .kernel import ERROR_FIELDS, Kernel, KernelInfo, LoweringError, ModuleContext, node_error
from .lower_blas import lower_folded_sgd
from .lower_elementwise import lower_elementwise_group, lower_elementwise_kernel
from .lower_epilogue import lower_gemm_epilogue
from .lowerings import lower_reshape_copy  # noqa: F401  (registers the non-elementwise ops)
from .native import vecmath
from .native.jit import function_attributes
from .registry import lowering, register_tunables


def lower_group(k: Kernel, group: list[Variable]) -> None:
    """Write the kernel of one group of ``codegen.fusion.group_kernels``: a gemm and its
    epilogue, one node's kernel, or elementwise kernels sharing one loop nest."""
    if group[0] in k.an.epilogues:
        lower_gemm_epilogue(k, group)
    elif len(group) == 1:
        lower_node(k, group[0].owner)
    else:
        lower_elementwise_group(k, group)


def lower_node(k: Kernel, node: Apply) -> None:
    """Write the kernel of ``node``'s buffered output (its prechecks first)."""
    k.run_prechecks(k.an.members.get(node.outputs[0], [node]))
    if node.outputs[0] in k.an.folded:  # W - c * (A @ B) as one gemm into W
        return lower_folded_sgd(k, node)
    rec = lowering(node.op)
    if rec is None:
        raise node_error(node, "no lowering for this op")
    if rec.kernel is None:
        return lower_elementwise_kernel(k, node)
    return rec.kernel(k, node)


#: No hardware estimates for division and square root, on the kernels and on ``sg_step``
#: (kernels inlined into it take its attributes): with ``arcp``/``afn`` and no attribute,
#: LLVM's x86 default turned ``g / sqrt(x)`` (the gradients of sqrt, arcsin, arccos,
#: arccosh) into ``vrsqrtps`` plus a Newton-Raphson step, NaN at x = 0 where IEEE (and
#: numpy) give inf.  W1-W3's steps compile to the same instructions either way (Adam's
#: loop: ``vsqrtps``/``vdivps``).
RECIP = '"reciprocal-estimates"="none"'


def module_header() -> str:
    return "\n".join([
        INTRINSIC_DECLARATIONS,
        "!0 = !{}",
        f"attributes #0 = {{ nounwind {function_attrs()} {RECIP} }}",
        # the step itself stays one function (sg_epoch calls it instead of a second copy)
        f"attributes #1 = {{ nounwind noinline {function_attrs()} {RECIP} }}",
        # kernels of a module with more than OUTLINE_KERNELS (ModuleContext.outlined)
        f"attributes #2 = {{ nounwind noinline {function_attrs()} {RECIP} }}",
    ])


#: a step of more kernels than this keeps them as functions of their own (``noinline``),
#: where smaller steps inline them into ``sg_step``.  LLVM's optimisation of one function of
#: hundreds of inlined kernels grew faster than linearly (an unrolled RNN: 230 kernels
#: 2.7 s, 455 kernels 7.8 s, T=200 98 s of compile); outlined, 1.0 and 1.9 s, the step as
#: fast (T=5, 50 kernels, and T=12, 113: equal step times either way).
OUTLINE_KERNELS = 64


def function_attrs() -> str:
    return function_attributes()


def math_declarations(used: set[tuple[str, str]]) -> str:
    return vecmath.math_declarations(used)


def runtime_failure(ctx: ModuleContext, table: np.ndarray) -> tuple[Apply, Exception] | None:
    """The node whose runtime check failed and the exception its numpy ``perform`` raises
    for the same bad value (same type, same message), read from the error record that
    :meth:`Kernel.fail_if` wrote into ``table`` (the plan's table); None without a record."""
    slots = [ctx._slot_keys.get(("error", n)) for n in range(ERROR_FIELDS)]
    if None in slots:
        return None
    node_at, input_index, axis, value, size = (int(table[i]) for i in slots)
    if not 0 <= node_at < len(ctx.an.all_nodes):
        return None
    node = ctx.an.all_nodes[node_at]
    checked = node.inputs[input_index]
    position = []
    for n in range(checked.ndim):
        index = ctx._slot_keys.get(("error", ERROR_FIELDS + n))
        if index is None:
            return None
        position.append(int(table[index]))
    error = node.op.runtime_error  # the op's own wording of the failure
    if error is None:
        return None
    return node, error(value, axis, size, describe_input(checked), tuple(position))


class _Shape:
    """Stands for an input value in an error message (only its shape is shown)."""

    def __init__(self, shape):
        self.shape = tuple(shape)


def runtime_error(ctx: ModuleContext, table: np.ndarray, shapes: dict) -> Exception | None:
    """The exception for a failed call of a compiled step, worded exactly as the numpy
    backend words it (:func:`symgraph.evaluate` reports node errors), from the error record
    in the plan's ``table`` and the plan's concrete ``shapes``; None without a record."""
    found = runtime_failure(ctx, table)
    if found is None:
        return None
    node, err = found
    values = [_Shape(shapes.get(x, x.shape)) for x in node.inputs]
    return _node_error(node, values, str(err), err)


__all__ = ["ERROR_FIELDS", "FMF", "OUTLINE_KERNELS", "Kernel", "KernelInfo", "LoweringError",
           "ModuleContext",
           "lower_elementwise_group", "lower_group", "lower_node", "math_declarations",
           "module_header", "runtime_error", "runtime_failure"]


register_tunables(__name__, ("OUTLINE_KERNELS", "RECIP"))
