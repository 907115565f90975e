"""What a compiled program keeps of its lowering, apart from the kernel builder.

A program loaded from the program cache (:mod:`codegen.signature`) needs its kernels
(:class:`KernelInfo`: which nodes, which buffers they read, whether they can fail) and the
int64 table's slots (:class:`ModuleContext`) but none of the code that writes IR: this module
is all it imports of the lowering, so a warm start skips importing the kernel builder, the IR
generator and the lowering rules (~3 ms).  :mod:`codegen.kernel` re-exports these names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import sympy

from symgraph.graph import Apply, Constant, Variable, user_nodes

if TYPE_CHECKING:
    from .fusion import Analysis

__all__ = ["ENTRY", "KernelInfo", "LoweringError", "ModuleContext", "SlotFn", "dim_slot",
           "node_error", "zero_slot"]

#: the step's entry function (:mod:`codegen.entry`)
ENTRY = "sg_step"


class LoweringError(NotImplementedError):
    """The graph uses an op (or a case of one) the LLVM backend cannot compile."""


def node_error(node: Apply, problem: str) -> LoweringError:
    where = f"\n  created at {node.site}" if node.site else ""
    return LoweringError(f"llvm backend: {problem} (op {node.op.name}, "
                         f"{type(node.op).__name__}){where}")


#: slot callables get (shapes: dict[Variable, tuple], env: {"bindings": ..., "offsets": ...})
SlotFn = Callable[[dict, dict], int]


class KernelInfo:
    """One fused kernel: the variable it writes and the graph nodes it computes."""

    __slots__ = ("name", "output", "nodes", "reads", "fallible", "outputs", "blas", "parallel",
                 "function", "args")

    def __init__(self, name: str, output: Variable, nodes: list[Apply],
                 reads: list[Variable] | None = None, fallible: bool = False,
                 outputs: list[Variable] | None = None, blas: bool = False):
        self.name, self.output, self.nodes = name, output, nodes
        self.reads: list[Variable] = [] if reads is None else reads  # root buffers read
        self.fallible = fallible
        #: all variables it writes
        self.outputs: list[Variable] = [] if outputs is None else outputs
        self.blas = blas  # calls BLAS (gemm or gemv)
        self.parallel = False  # hands loops to codegen.native.parallel (OpenBLAS's threads)
        #: the IR function its call site calls: its own, or an equal kernel's
        #: (``codegen.dedupe``)
        self.function = name
        #: the i64 values its call site passes after the table (``Kernel.static_arg``)
        self.args: list[int] = []

    @property
    def user_nodes(self) -> list[Apply]:
        """The nodes of the user's graph this kernel computes, in creation order: the
        rewrites' provenance (``symgraph.graph.user_nodes``) of every node it holds."""
        found: dict[int, Apply] = {}
        for node in self.nodes:
            for user in user_nodes(node):
                found.setdefault(id(user), user)
        return sorted(found.values(), key=lambda n: n.outputs[0].id)

    def __repr__(self) -> str:
        ops = ", ".join(n.op.name for n in self.nodes)
        return f"<kernel {self.name}: {self.output.name or self.output.type} <- [{ops}]>"


class ModuleContext:
    """State shared by all kernels of one module: table slots, roots, math functions."""

    def __init__(self, analysis: Analysis, split_minimum: int | None = None):
        self.an = analysis
        #: loops of at least this many elements run on OpenBLAS's threads (None: none do;
        #: :func:`codegen.native.parallel.split_minimum`, read once per compile)
        self.split_minimum = split_minimum
        self.slots: list[SlotFn] = []
        self._slot_keys: dict = {}
        #: symbolic dim expression -> the (variable, axis) whose table slot holds it
        self.dim_owners: dict = {}
        self._bound_symbols: set | None = None
        self.math_used: set[tuple[str, str]] = set()
        self.uses_blas = False
        self.uses_parallel = False  # some kernel calls codegen.native.parallel's runtime
        #: kernels stay functions of their own (``noinline``; see ``codegen.lower``)
        self.outlined = False
        self._next_metadata = 1  # !0 is the module header's empty node
        #: ``sg.function(flush_denormals=True)``: math calls get their arguments flushed
        self.flush_denormals = False

    def metadata_ids(self, count: int) -> int:
        """The first of ``count`` fresh metadata numbers, unique across the module's kernels
        (so they stay unique in whichever module ``codegen.partition`` puts a kernel)."""
        first, self._next_metadata = self._next_metadata, self._next_metadata + count
        return first

    def slot(self, key, fn: SlotFn) -> int:
        index = self._slot_keys.get(key)
        if index is None:
            index = self._slot_keys[key] = len(self.slots)
            self.slots.append(fn)
        return index

    def bound_symbols(self) -> set:
        """The symbols a call binds: plain symbolic dims of the graph's inputs and shared
        variables (``Function.check_inputs`` checks every one, and every input dim built
        from them)."""
        if self._bound_symbols is None:
            leaves = {v for node in self.an.all_nodes for v in node.inputs
                      if v.owner is None and not isinstance(v, Constant)}
            self._bound_symbols = {d for v in leaves for d in v.shape
                                   if isinstance(d, sympy.Symbol)}
        return self._bound_symbols

    def error_slot(self, field: int) -> int:
        """Table slot of field ``field`` of the error record (see :data:`ERROR_FIELDS`)."""
        return self.slot(("error", field), zero_slot)

    def node_position(self, node: Apply) -> int:
        positions = getattr(self, "_node_positions", None)
        if positions is None:
            positions = self._node_positions = {n: i for i, n in
                                                enumerate(self.an.all_nodes)}
        return positions[node]


def dim_slot(var: Variable, axis: int) -> SlotFn:
    return lambda shapes, offsets: shapes[var][axis]


def output_slot(root: Variable) -> SlotFn:
    """The address of output ``root``'s buffer: its place in the arena, which a call may
    replace by a fresh array of its own (``plans.make_runner``: a large output is then
    returned without a copy)."""
    return lambda shapes, env, r=root: env["arena_address"] + env["offsets"][r]


def zero_slot(shapes, env) -> int:
    """An error-record slot: zero until a failing check writes it."""
    return 0


