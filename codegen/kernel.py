"""The kernel builder every lowering writes against: one internal LLVM function per kernel.

Pipeline position: graph -> grad -> rewrite -> fusion analysis -> **lower** -> LLVM -> call.
A :class:`Kernel` gives a lowering rule (:mod:`codegen.registry`) table slots for run-time
dims, buffer pointers (``noalias`` parameters: the vectoriser needs no runtime alias
checks), loops, loads and stores, and ``value_at`` -- any variable at an index, whether it is
in memory, a literal, or computed inline through its op's ``Lowering.inline`` rule.

Runtime checks (integer indices, one-hot labels) run in a loop over the checked values before
the kernel's main loop, which therefore stays free of early exits (and vectorises).  A failing
check writes an *error record* into reserved table slots (:meth:`Kernel.fail_if`: the node,
the input, the bad value, its position, the axis and its size) and returns;
:func:`codegen.lower.runtime_error` turns the record into the exception the numpy reference
raises for the same call, with the same message.
"""

from __future__ import annotations

from symgraph.graph import Apply, Variable

from .fusion import ADDRESSABLE
from .irgen import MEM_TYPE, FunctionBuilder, ScalarBuilder, Value
from .kernel_info import (  # noqa: F401  (re-exported: what lowerings import from here)
    KernelInfo,
    LoweringError,
    ModuleContext,
    SlotFn,
    dim_slot,
    node_error,
    zero_slot,
)
from .registry import lowering

__all__ = ["ERROR_FIELDS", "Kernel", "KernelInfo", "LoweringError", "ModuleContext", "SlotFn",
           "broadcast_index", "dim_slot", "node_error", "zero_slot"]


#: error record: (position of the failing node in ``Analysis.all_nodes``, its input index,
#: axis (-1 for labels), bad value, size of the axis (or the depth), position coordinates...)
ERROR_FIELDS = 5


class Kernel:
    """Builds one kernel function; ``value_at`` evaluates any variable at an index."""

    def __init__(self, ctx: ModuleContext, name: str):
        self.ctx, self.an, self.name = ctx, ctx.an, name
        self.fb = FunctionBuilder(metadata_ids=ctx.metadata_ids)
        self.sb = ScalarBuilder(self.fb)
        self.params: dict[Variable, str] = {}  # root -> %pN
        self._strides: dict[Variable, list[str]] = {}
        self.fallible = False
        self.blas = False
        #: more parameters after ``%tab`` (a loop over a sub-range: ``", i64 %lo, i64 %hi"``)
        #: and more IR functions emitted after this one (codegen.lower_elementwise's parallel
        #: loops: the range function and the task the runtime calls)
        self.extra_params = ""
        self.extra_functions: list[str] = []

    # -- table and buffers -----------------------------------------------------------------
    def table(self, key, fn: SlotFn) -> str:
        index = self.ctx.slot(key, fn)
        p = self.fb.entry_op(f"tp{index}", f"getelementptr inbounds i64, ptr %tab, i64 {index}")
        return self.fb.entry_op(f"tv{index}", f"load i64, ptr {p}, !invariant.load !0")

    def dim(self, var: Variable, axis: int) -> str:
        d = var.shape[axis]
        if isinstance(d, int):
            return str(d)
        return self.table(("dim", var.id, axis), dim_slot(var, axis))

    def ptr(self, var: Variable) -> str:
        root = self.an.root(var)
        p = self.params.get(root)
        if p is None:
            p = self.params[root] = f"%p{len(self.params)}"
        return p

    def size(self, var: Variable, axes=None) -> str:
        axes = range(var.ndim) if axes is None else axes
        n = "1"
        for a in axes:
            n = self.mul_i64(n, self.dim(var, a))
        return n

    def mul_i64(self, a: str, b: str) -> str:
        if a == "1":
            return b
        if b == "1":
            return a
        if a.isdigit() and b.isdigit():
            return str(int(a) * int(b))
        return self.fb.entry_op(f"mul {a} {b}", f"mul nsw i64 {a}, {b}")

    def add_i64(self, a: str, b: str) -> str:
        if a == "0":
            return b
        if b == "0":
            return a
        return self.fb.op(f"add nsw i64 {a}, {b}")

    def strides(self, var: Variable) -> list[str]:
        hit = self._strides.get(var)
        if hit is None:
            hit, s = [], "1"
            for axis in reversed(range(var.ndim)):
                hit.append(s)
                s = self.mul_i64(s, self.dim(var, axis))
            hit = self._strides[var] = hit[::-1]
        return hit

    def offset(self, var: Variable, idx: list[str]) -> str:
        off = "0"
        for i, s in zip(idx, self.strides(var)):
            if i == "0":
                continue
            term = i if s == "1" else self.fb.op(f"mul nsw i64 {i}, {s}")
            off = self.add_i64(off, term)
        return off

    def address(self, var: Variable, idx: list[str]) -> str:
        dtype = var.dtype.name
        return self.fb.op(f"getelementptr inbounds {MEM_TYPE[dtype]}, ptr {self.ptr(var)}, "
                          f"i64 {self.offset(var, idx)}")

    def load(self, var: Variable, idx: list[str]) -> Value:
        dtype = var.dtype.name
        v = self.fb.op(f"load {MEM_TYPE[dtype]}, ptr {self.address(var, idx)}")
        if dtype == "bool":
            v = self.fb.op(f"trunc i8 {v} to i1")
        return Value(v, dtype)

    def store(self, var: Variable, idx: list[str], value: Value) -> None:
        dtype = var.dtype.name
        value = self.sb.convert(value, dtype)
        ref = value.ref
        if dtype == "bool":
            ref = self.fb.op(f"zext i1 {ref} to i8")
        self.fb.emit(f"store {MEM_TYPE[dtype]} {ref}, ptr {self.address(var, idx)}")

    # -- runtime checks --------------------------------------------------------------------
    def fail_if(self, bad: str, node: Apply, input_index: int, axis: int, value: str,
                size: str, position: list[str]) -> None:
        """If ``bad`` (i1): write the error record (see :data:`ERROR_FIELDS`) and return 1.
        ``value``/``size``/``position`` are i64 operands."""
        self.fallible = True
        done = self.fb.if_begin(bad)
        fields = [str(self.ctx.node_position(node)), str(input_index), str(axis), value, size,
                  *position]
        for n, field_value in enumerate(fields):
            index = self.ctx.error_slot(n)
            p = self.fb.entry_op(f"ep{index}",
                                 f"getelementptr inbounds i64, ptr %tab, i64 {index}")
            self.fb.emit(f"store i64 {field_value}, ptr {p}")
        self.fb.emit("ret i32 1")
        self.fb.start_block(self.fb.label("dead"))
        self.fb.if_end(done)

    def run_prechecks(self, nodes: list[Apply]) -> None:
        """Before the main loop: the run-time checks of ``nodes`` (``Lowering.precheck``,
        e.g. one pass over a one-hot's labels instead of one check per element)."""
        for node in nodes:
            rec = lowering(node.op)
            if rec is not None and rec.precheck is not None:
                rec.precheck(self, node)

    # -- loops -----------------------------------------------------------------------------
    def open_loops(self, var: Variable, axes) -> tuple[dict[int, str], list]:
        idx, tokens = {}, []
        for a in axes:
            i, tok = self.fb.loop_begin(self.dim(var, a))
            idx[a] = i
            tokens.append(tok)
        return idx, tokens

    def close_loops(self, tokens: list, innermost: tuple[str, ...] = ()) -> None:
        """Close ``tokens``' loops; ``innermost`` are LLVM loop hints for the last one."""
        for n, tok in enumerate(reversed(tokens)):
            self.fb.loop_end(tok, innermost if n == 0 else ())

    # -- values ----------------------------------------------------------------------------
    def value_at(self, var: Variable, idx: list[str]) -> Value:
        mode = self.an.mode[var]
        if mode == "literal":
            return self.sb.const(var.value[()], var.dtype.name)
        if mode in ADDRESSABLE:
            return self.load(var, idx)
        if mode in ("inline", "view"):
            return self.inline_value(var.owner, idx)
        raise node_error(var.owner, f"internal: no value for a {mode} variable")

    def inline_value(self, node: Apply, idx: list[str]) -> Value:
        rec = lowering(node.op)
        if rec is None or rec.inline is None:
            raise node_error(node, "no inline lowering")
        return rec.inline(self, node, idx)

    def finish(self, out_info: KernelInfo) -> str:
        params = ", ".join(f"ptr noalias {p}" for p in self.params.values())
        sep = ", " if params else ""
        header = (f"define internal i32 @{self.name}({params}{sep}ptr noalias %tab"
                  f"{self.extra_params}) #0 {{")
        self.ctx.math_used |= self.fb.math_used
        out_info.reads = list(self.params)
        out_info.fallible = self.fallible
        out_info.blas = self.blas
        return "\n\n".join([self.fb.finish(header), *self.extra_functions])


def broadcast_index(x: Variable, out: Variable, idx: list[str]) -> list[str]:
    """Index of ``x`` read at ``idx`` of ``out`` (numpy broadcasting; static 1s broadcast)."""
    lead = out.ndim - x.ndim
    return ["0" if d == 1 else idx[lead + k] for k, d in enumerate(x.shape)]
