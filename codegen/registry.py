"""The LLVM backend's knowledge of each op class: one :class:`Lowering` record per class.

Why one record: fusion (which variables are computed inside a consumer's loop), grouping,
the in-place planner and the lowering all ask the same questions about an op; before, each
kept its own ``isinstance`` tuple.  A record is registered next to the op's lowering
(:mod:`codegen.lower_elementwise`, :mod:`codegen.lowerings`, :mod:`codegen.lower_blas`) with
:func:`register_lowering`; backend-neutral facts (which inputs give only their shape, which
ops alias their input's bytes, how big an output is for concrete inputs) are methods of the
op classes themselves (``symgraph/ops``), read here through :func:`shape_only` and
:func:`aliases_input` so an op that does not define them gets the neutral answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

__all__ = ["LOWERINGS", "Lowering", "aliases_input", "lowering", "register_lowering",
           "shape_only"]


class Lowering(NamedTuple):
    """How the LLVM backend computes one op class, and what fusion may do with it (a
    NamedTuple: the frozen dataclass of these eleven fields cost ~0.7 ms of every process
    that imports the backend)."""

    #: ``(kernel, node) -> None``: writes a buffered result (its own kernel); None for ops
    #: that are computed by an elementwise loop over ``inline``
    kernel: Callable | None = None
    #: ``(kernel, node, index) -> Value``: the value at one index, inside any loop
    inline: Callable | None = None
    #: an inline op cheap enough to recompute wherever it is read (sizes, aranges, one-hots)
    cheap: bool = False
    #: the op's loop evaluates a whole elementwise tree of inputs per element: "output" or
    #: "input" (reductions: the loop runs over input 0's shape); None when it does not.
    #: "output" also promises that each input is read at the index the op writes: kernel
    #: grouping and in-place updates rely on it (a flip or roll must not claim it)
    fuses: str | None = None
    #: reads its inputs element by element (through ``Kernel.value_at``), so an input may be
    #: an inline value or a transposing view
    value_consumer: bool = False
    #: a transposing view: read through permuted indices by value consumers (``inline``),
    #: never computed into a loop of its own unless a consumer needs memory
    view: bool = False
    #: its inline value at an index depends only on the flat position (a flat loop works)
    flat: bool = False
    #: 2-d matrix operands may be transposed views (read as a BLAS transpose flag)
    transposed_operands: bool = False
    #: checks values at run time (index bounds, labels): a call may fail in its kernel
    fallible: bool = False
    #: ``(kernel, node) -> None`` run before the main loop of any kernel computing the node
    precheck: Callable | None = None


#: op class -> its lowering (exact classes: a subclass is a different op)
LOWERINGS: dict[type, Lowering] = {}


def register_lowering(op_class: type, record: Lowering) -> None:
    """Make ``record`` the LLVM lowering of ``op_class`` (one per class)."""
    if record.kernel is None and record.inline is None:
        raise ValueError(f"lowering of {op_class.__name__}: give kernel or inline")
    LOWERINGS[op_class] = record


def lowering(op) -> Lowering | None:
    """The record of ``op``'s class, or None (an op the backend cannot compile)."""
    return LOWERINGS.get(type(op))


_NONE = Lowering(kernel=lambda k, node: None)


def facts(op) -> Lowering:
    """Like :func:`lowering`, with all flags off for an op without a record."""
    return LOWERINGS.get(type(op), _NONE)


def shape_only(op, index: int) -> bool:
    """Does input ``index`` of ``op`` contribute only its shape (``Op.shape_only``)?"""
    return op.shape_only(index)


def aliases_input(op) -> bool:
    """Is ``op``'s output its input's bytes with a new shape (``Op.aliases_input``)?"""
    return op.aliases_input()
