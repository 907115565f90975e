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

from symgraph.graph import Apply, Variable, dtype_name

from .fusion import ADDRESSABLE
from .irgen import ITEMSIZE, MEM_TYPE, FunctionBuilder, ScalarBuilder, Value
from .kernel_info import (  # noqa: F401  (re-exported: what lowerings import from here)
    KernelInfo,
    LoweringError,
    ModuleContext,
    SlotFn,
    dim_slot,
    node_error,
    zero_slot,
)
from .native.jit import vector_registers
from .registry import facts, lowering, register_tunables, shape_only

__all__ = ["ERROR_FIELDS", "Kernel", "KernelInfo", "LoweringError", "ModuleContext", "SlotFn",
           "broadcast_index", "dim_slot", "node_error", "zero_slot"]


#: an innermost loop of at least this many iterations over contiguous values stays a loop
#: (:meth:`Kernel.rolled`)
ROLLED_MINIMUM = 16
NO_UNROLL = '!{!"llvm.loop.unroll.disable"}'
FULL_UNROLL = '!{!"llvm.loop.unroll.full"}'
#: a short innermost loop is unrolled (:meth:`Kernel.short_rows`) only while its body times
#: its count stays within this many lines of IR: 40 fused tanh/exp steps over rows of 15
#: unrolled took LLVM 2.0 s against 0.12 and ran 9x slower (rows of 10: 1.4 s against 0.17)
SHORT_UNROLL_LINES = 1024
NO_VECTORIZE = '!{!"llvm.loop.vectorize.enable", i1 false}'

#: error record: (position of the failing node in ``Analysis.all_nodes``, its input index,
#: axis (-1 for labels), bad value, size of the axis (or the depth), position coordinates...)
ERROR_FIELDS = 5


class Kernel:
    """Builds one kernel function; ``value_at`` evaluates any variable at an index."""

    def __init__(self, ctx: ModuleContext, name: str):
        self.ctx, self.an, self.name = ctx, ctx.an, name
        self.fb = FunctionBuilder(metadata_ids=ctx.metadata_ids)
        self.fb.flush_denormals = ctx.flush_denormals
        self.sb = ScalarBuilder(self.fb)
        self.params: dict[Variable, str] = {}  # root -> %pN
        self._strides: dict[Variable, list[str]] = {}
        self.fallible = False
        self.blas = False
        self.parallel = False
        #: more parameters after ``%tab`` (a loop over a sub-range: ``", i64 %lo, i64 %hi"``)
        #: and more IR functions emitted after this one (codegen.lower_elementwise's parallel
        #: loops: the range function and the task the runtime calls)
        self.extra_params = ""
        self.extra_functions: list[str] = []
        #: values the call site passes after ``%tab`` (``static_arg``); a kernel whose body
        #: is a function of its own (a parallel loop's range) takes them as literals
        self.args: list[int] = []
        self.static_args = True

    # -- table and buffers -----------------------------------------------------------------
    def table(self, key, fn: SlotFn) -> str:
        index = self.ctx.slot(key, fn)
        p = self.fb.entry_op(f"tp{index}", f"getelementptr inbounds i64, ptr %tab, i64 {index}")
        return self.fb.entry_op(f"tv{index}", f"load i64, ptr {p}, !invariant.load !0")

    def static_arg(self, value: int) -> str:
        """An i64 known when compiling, passed by the call site (``%aN``) rather than written
        into the body, so kernels that differ only in such values are one text."""
        if not self.static_args:
            return str(int(value))
        self.args.append(int(value))
        return f"%a{len(self.args) - 1}"

    def dim(self, var: Variable, axis: int) -> str:
        d = var.shape[axis]
        if isinstance(d, int):
            return str(d)
        if d is not None and d.free_symbols <= self.ctx.bound_symbols():
            # a dim whose symbols the call's inputs bind (and check) has one value wherever
            # it appears: one slot per expression (the first variable's), so kernels that
            # differ only in their buffers are the same text (codegen.dedupe).  A symbol no
            # input binds gives each variable its own length (reshape's -1): its own slot.
            var, axis = self.ctx.dim_owners.setdefault(d, (var, axis))
        return self.table(("dim", var.id, axis), dim_slot(var, axis))

    def ptr(self, var: Variable) -> str:
        root = self.an.root(var)
        p = self.params.get(root)
        if p is None:
            p = self.params[root] = f"%p{len(self.params)}"
        return p

    def pointer_array(self, key: str, pointers: list[str]) -> str:
        """A stack array holding ``pointers`` (a parallel loop's context, the pieces of a
        join, the terms of a sum), filled where the kernel's code is now."""
        array = self.fb.entry_op(key, f"alloca [{len(pointers)} x ptr]")
        for slot, p in enumerate(pointers):
            address = self.fb.op(f"getelementptr inbounds ptr, ptr {array}, i64 {slot}")
            self.fb.emit(f"store ptr {p}, ptr {address}")
        return array

    def pointer_at(self, array: str, index: str) -> str:
        """Pointer ``index`` of a :meth:`pointer_array`."""
        address = self.fb.op(f"getelementptr inbounds ptr, ptr {array}, i64 {index}")
        return self.fb.op(f"load ptr, ptr {address}")

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
        dtype = dtype_name(var.dtype)
        return self.fb.op(f"getelementptr inbounds {MEM_TYPE[dtype]}, ptr {self.ptr(var)}, "
                          f"i64 {self.offset(var, idx)}")

    def load(self, var: Variable, idx: list[str]) -> Value:
        dtype = dtype_name(var.dtype)
        v = self.fb.op(f"load {MEM_TYPE[dtype]}, ptr {self.address(var, idx)}")
        if dtype == "bool":
            v = self.fb.op(f"trunc i8 {v} to i1")
        return Value(v, dtype)

    def store(self, var: Variable, idx: list[str], value: Value) -> None:
        dtype = dtype_name(var.dtype)
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

    def loop_groups(self, var: Variable, axes, reads: list[Variable]) -> list[list[int]]:
        """``axes`` of ``var`` (increasing) as the loops to run over them, each a list of axes.

        A static 1 needs no loop.  Adjacent axes (nothing but static 1s between them) share
        one loop when every value in ``reads`` (read at ``var``'s index, numpy broadcasting)
        and everything an inline one reads is whole or broadcast along all of them, as
        numpy's iterator coalesces dims: one index on the last axis then addresses them all
        (``var`` itself is row-major).  Why: an (N, C, 8, 8) reduction over its last two
        axes is one contiguous loop of 64 that vectorises, not two loops of 8 that LLVM
        unrolls into 64 scalar loads and vectorises across N with gathers instead (80 ms
        to compile, and slower to run).
        """
        groups: list[list[int]] = []
        for a in axes:
            if var.shape[a] == 1:
                continue
            last = groups[-1][-1] if groups else None
            if (last is not None and all(var.shape[b] == 1 for b in range(last + 1, a))
                    and all(self._whole_or_broadcast(x, var, groups[-1] + [a])
                            for x in reads)):
                groups[-1].append(a)
            else:
                groups.append([a])
        return groups

    def _whole_or_broadcast(self, v: Variable, ref: Variable, axes: list[int]) -> bool:
        """Along all ``axes`` of ``ref``, is ``v`` (read at ``ref``'s index) either ``ref``'s
        size or a static 1, laid out row-major, and so is everything it reads if inline?

        A walk with a stack, each variable once: the inline chain of an unrolled LSTM of
        330 steps overflowed Python's recursion limit, and a value read by several inline
        nodes was visited once per path."""
        stack, seen = [v], set()
        while stack:
            x = stack.pop()
            if x in seen:
                continue
            seen.add(x)
            lead = ref.ndim - x.ndim
            dims = [x.shape[a - lead] if a >= lead else 1 for a in axes]
            if all(d == 1 for d in dims):
                continue
            if any(d != ref.shape[a] for d, a in zip(dims, axes)):
                return False
            mode = self.an.mode.get(x)
            if mode in ADDRESSABLE:
                continue
            node = x.owner
            if mode != "inline" or node is None or not facts(node.op).flat:
                return False  # (a view reads through permuted indices)
            stack.extend(y for i, y in enumerate(node.inputs) if not shape_only(node.op, i))
        return True

    def open_groups(self, var: Variable, groups: list[list[int]]) -> tuple[dict[int, str],
                                                                           list]:
        """One loop per group of :meth:`loop_groups`: ``idx`` has the loop's index on the
        group's last axis and 0 on its other axes (and on every static 1 of ``var``)."""
        idx = {a: "0" for a in range(var.ndim) if var.shape[a] == 1}
        tokens = []
        for group in groups:
            i, tok = self.fb.loop_begin(self.size(var, group))
            idx.update({a: "0" for a in group})
            idx[group[-1]] = i
            tokens.append(tok)
        return idx, tokens

    def rolled(self, var: Variable, groups: list[list[int]], accumulates: bool = False
               ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Loop hints (innermost, the others) for a nest over ``groups`` of ``var``.

        LLVM unrolls a loop with a small static count fully before it vectorises, then
        vectorises the loop around it across rows with gathers: an (N, C, 8, 8) bias
        gradient became 64 gathers of 16 and took 80-120 ms to compile.  So an innermost
        loop of ``ROLLED_MINIMUM`` or more stays rolled and vectorises itself, and so do the
        loops around it (16 unrolled channels of that loop were 2,500 lines of IR).
        ``unroll.disable`` also stops the vectoriser's interleaving: a loop that
        ``accumulates`` gets four vector accumulators to hide the add's latency (a sum of
        64k floats 5.0 -> 2.9 us).

        A shorter static innermost loop (a bias of 10 added to each row of a batch) may be
        unrolled fully with the loops around it kept scalar (:meth:`short_rows` says when),
        so the SLP vectoriser writes each line as plain vectors (8 + 2 floats).  Left to
        itself LLVM vectorised the short loop with its tail folded into masks (a trip count
        under 16 forbids a scalar remainder): ``vmaskmovps`` loads and stores, microcoded on
        AMD Zen, where a (32, 10) bias add took 400 ns against 24 ns unrolled (``f.profile``
        of W2's step on an EPYC)."""
        if not groups or (len(groups) == 1 and not accumulates):
            return (), ()  # (a single loop has nothing around it to vectorise instead)
        n = self.size(var, groups[-1])
        if n.isdigit() and int(n) < ROLLED_MINIMUM:
            return self.short_rows(var, groups, accumulates)
        if not accumulates:
            return (NO_UNROLL,), (NO_UNROLL,)
        count = 4 if not n.isdigit() or int(n) >= 64 else 2 if int(n) >= 32 else 1
        return (NO_UNROLL, f'!{{!"llvm.loop.interleave.count", i32 {count}}}'), (NO_UNROLL,)

    def short_rows(self, var: Variable, groups: list[list[int]], accumulates: bool = False
                   ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Loop hints (innermost, the others) for a nest over ``groups`` of ``var`` whose
        innermost loop is static and shorter than ``ROLLED_MINIMUM``: unrolled, the loops
        around it scalar (see :meth:`rolled`; a loop that ``accumulates`` counts as a nest:
        the loops around it are not in ``groups``).  Ask once the innermost body is written,
        just before closing it: the decision measures that body.  No hints for any other
        nest, on a host with AVX-512 (masked moves are native there, and the old hints were
        measured there), for a body that would unroll past ``SHORT_UNROLL_LINES``, or for
        one whose vector math (exp, tanh) would leave costly scalar calls
        (:func:`_math_fits`)."""
        n = self.size(var, groups[-1]) if len(groups) > 1 or accumulates else ""
        if not (n.isdigit() and int(n) < ROLLED_MINIMUM) or vector_registers() == 32:
            return (), ()
        body = self.fb.innermost_body()
        if len(body) * int(n) > SHORT_UNROLL_LINES:
            return (), ()
        calls = [line for line in body if "call" in line and "@sg_" in line]
        if calls and not _math_fits(int(n), ITEMSIZE.get(dtype_name(var.dtype), 4), calls):
            return (), ()
        return (FULL_UNROLL,), (NO_VECTORIZE,)

    def close_loops(self, tokens: list, innermost: tuple[str, ...] = (),
                    others: tuple[str, ...] = ()) -> None:
        """Close ``tokens``' loops; ``innermost`` are LLVM loop hints for the last one,
        ``others`` for the rest."""
        for n, tok in enumerate(reversed(tokens)):
            self.fb.loop_end(tok, innermost if n == 0 else others)

    # -- values ----------------------------------------------------------------------------
    def value_at(self, var: Variable, idx: list[str]) -> Value:
        mode = self.an.mode[var]
        if mode == "literal":
            return self.sb.const(var.value[()], dtype_name(var.dtype))
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
        args = "".join(f", i64 %a{i}" for i in range(len(self.args)))
        header = (f"define internal i32 @{self.name}({params}{sep}ptr noalias %tab{args}"
                  f"{self.extra_params}) #0 {{")  # (#2 where outlined: partition.outlined)
        self.ctx.math_used |= self.fb.math_used
        out_info.reads = list(self.params)
        out_info.fallible = self.fallible
        out_info.blas = self.blas
        out_info.parallel = self.parallel
        out_info.args = list(self.args)
        return "\n\n".join([self.fb.finish(header), *self.extra_functions])


def _math_fits(n: int, itemsize: int, calls: list[str]) -> bool:
    """Is a row of ``n`` unrolled through the vector math ``calls`` no slower than the masked
    loop?  Whole 256-bit vectors are vector calls; at most two scalar calls after them pay
    for exp, log and sigmoid (rows of 10: 0.17-0.57x the masked time) but not for tanh
    (1.4x), and longer scalar tails or rows shorter than a vector never do (AVX2 EPYC, 4,096
    rows).  (Rows of 4 and 12 floats were 128-bit calls, tanh over rows of 12 78 against 154
    us masked, until every call of a function had to use one variant, the 256-bit one:
    :mod:`codegen.native.vecmath`.)"""
    lanes = 32 // itemsize
    if n % lanes == 0:
        return True
    return n >= lanes and n % lanes <= 2 and not any("tanh" in line for line in calls)


def broadcast_index(x: Variable, out: Variable, idx: list[str]) -> list[str]:
    """Index of ``x`` read at ``idx`` of ``out`` (numpy broadcasting; static 1s broadcast)."""
    lead = out.ndim - x.ndim
    return ["0" if d == 1 else idx[lead + k] for k, d in enumerate(x.shape)]


register_tunables(__name__, ("ROLLED_MINIMUM", "SHORT_UNROLL_LINES", "NO_UNROLL", "FULL_UNROLL",
                            "NO_VECTORIZE"))
