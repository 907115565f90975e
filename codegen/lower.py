"""Lower an analysed graph (see :mod:`codegen.fusion`) to one LLVM module with one entry point.

Pipeline position: graph -> grad -> rewrite -> **fusion analysis -> lower** -> LLVM -> call.

Every buffered variable gets a kernel: an internal function with ``noalias`` pointer
parameters (so the vectoriser needs no runtime alias checks; the inliner keeps that fact as
alias scopes) that the entry point ``sg_step`` calls in order.  Elementwise kernels evaluate
their whole inlined tree per element through :meth:`Kernel.value_at`, composing the
``ScalarOp.lower`` functions of symgraph/ops/elemwise.py; other ops have an entry in
``codegen.lowerings.LOWERINGS``, a table keyed by op class (PyTensor's ``singledispatch``
style).  An op without a lowering is a compile error naming the op and the user's line —
never a fallback.

Shapes are runtime values: every dim, buffer offset and slice bound the code needs is read
from an int64 *table* that the Python side fills once per shape signature, so one compiled
function serves every batch size.  Entry point ABI (:mod:`codegen.pycall`):
``i32 sg_step(ptr bufs, ptr dims)`` with ``bufs = [inputs, shared values, update targets,
arena, table, constants]``.  A non-zero return is ``1 + kernel index`` of a kernel that found
an out-of-bounds index or label; kernels only ever write the arena, the update targets (buffers
the caller adopts after success) and, for in-place updates, the shared variable's own buffer --
only after every fallible kernel has run (:func:`codegen.fusion.plan_inplace`) -- so a failed
call changes no shared variable.

Runtime checks (integer indices, one-hot labels) run in a loop over the checked values before
the kernel's main loop, which therefore stays free of early exits (and vectorises).  A failing
check writes an *error record* into reserved table slots (:meth:`Kernel.fail_if`: the node,
the input, the bad value, its position, the axis and its size) and returns;
:func:`runtime_error` turns the record into the exception the numpy reference raises for the
same call, with the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from symgraph.graph import Apply, Constant, Variable, user_nodes
from symgraph.ops.elemwise import Cast, DropoutMask, Elemwise
from symgraph.ops.nn import Arange, OneHot
from symgraph.ops.reduce import Size
from symgraph.ops.structure import (
    DimShuffle,
)

from . import vecmath
from .fusion import ADDRESSABLE, Analysis
from .irgen import (
    FMF,
    INTRINSIC_DECLARATIONS,
    MEM_TYPE,
    FunctionBuilder,
    ScalarBuilder,
    Value,
    literal,
)


class LoweringError(NotImplementedError):
    """The graph uses an op (or a case of one) the LLVM backend cannot compile."""


def node_error(node: Apply, problem: str) -> LoweringError:
    where = f"\n  created at {node.site}" if node.site else ""
    return LoweringError(f"llvm backend: {problem} (op {node.op.name}, "
                         f"{type(node.op).__name__}){where}")


#: slot callables get (shapes: dict[Variable, tuple], env: {"bindings": ..., "offsets": ...})
SlotFn = Callable[[dict, dict], int]


@dataclass
class KernelInfo:
    """One fused kernel: the variable it writes and the graph nodes it computes."""

    name: str
    output: Variable
    nodes: list[Apply]
    reads: list[Variable] = field(default_factory=list)  # root buffers read
    fallible: bool = False
    outputs: list[Variable] = field(default_factory=list)  # all variables it writes
    blas: bool = False  # calls BLAS (gemm or gemv)

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

    def __init__(self, analysis: Analysis):
        self.an = analysis
        self.slots: list[SlotFn] = []
        self._slot_keys: dict = {}
        self.math_used: set[tuple[str, str]] = set()
        self.uses_blas = False

    def slot(self, key, fn: SlotFn) -> int:
        index = self._slot_keys.get(key)
        if index is None:
            index = self._slot_keys[key] = len(self.slots)
            self.slots.append(fn)
        return index

    def error_slot(self, field: int) -> int:
        """Table slot of field ``field`` of the error record (see :data:`ERROR_FIELDS`)."""
        return self.slot(("error", field), _zero_slot)

    def node_position(self, node: Apply) -> int:
        positions = getattr(self, "_node_positions", None)
        if positions is None:
            positions = self._node_positions = {n: i for i, n in
                                                enumerate(self.an.all_nodes)}
        return positions[node]


def _dim_fn(var: Variable, axis: int) -> SlotFn:
    return lambda shapes, offsets: shapes[var][axis]


def _zero_slot(shapes, env) -> int:
    """An error-record slot: zero until a failing check writes it."""
    return 0


#: error record: (position of the failing node in ``Analysis.all_nodes``, its input index,
#: axis (-1 for labels), bad value, size of the axis (or the depth), position coordinates...)
ERROR_FIELDS = 5


class Kernel:
    """Builds one kernel function; ``value_at`` evaluates any variable at an index."""

    def __init__(self, ctx: ModuleContext, name: str):
        self.ctx, self.an, self.name = ctx, ctx.an, name
        self.fb = FunctionBuilder()
        self.sb = ScalarBuilder(self.fb)
        self.params: dict[Variable, str] = {}  # root -> %pN
        self._strides: dict[Variable, list[str]] = {}
        self.fallible = False
        self.blas = False

    # -- table and buffers -----------------------------------------------------------------
    def table(self, key, fn: SlotFn) -> str:
        index = self.ctx.slot(key, fn)
        p = self.fb.entry_op(f"tp{index}", f"getelementptr inbounds i64, ptr %tab, i64 {index}")
        return self.fb.entry_op(f"tv{index}", f"load i64, ptr {p}, !invariant.load !0")

    def dim(self, var: Variable, axis: int) -> str:
        d = var.shape[axis]
        if isinstance(d, int):
            return str(d)
        return self.table(("dim", var.id, axis), _dim_fn(var, axis))

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

    def check_labels(self, nodes: list[Apply]) -> None:
        """Before the main loop: every label of each one-hot among ``nodes`` is in
        ``[0, depth)`` (one pass over the labels, not one check per one-hot element)."""
        for node in nodes:
            if not isinstance(node.op, OneHot):
                continue
            labels = node.inputs[0]
            idx, toks = self.open_loops(labels, range(labels.ndim))
            position = [idx[a] for a in range(labels.ndim)]
            label = self.sb.convert(self.value_at(labels, position), "int64").ref
            depth = str(node.op.depth)
            bad = self.fb.op(f"icmp uge i64 {label}, {depth}")  # negatives are huge unsigned
            self.fail_if(bad, node, 0, -1, label, depth, position)
            self.close_loops(toks)

    # -- loops -----------------------------------------------------------------------------
    def open_loops(self, var: Variable, axes) -> tuple[dict[int, str], list]:
        idx, tokens = {}, []
        for a in axes:
            i, tok = self.fb.loop_begin(self.dim(var, a))
            idx[a] = i
            tokens.append(tok)
        return idx, tokens

    def close_loops(self, tokens: list) -> None:
        for tok in reversed(tokens):
            self.fb.loop_end(tok)

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
        rule = INLINE_RULES.get(type(node.op))
        if rule is None:
            raise node_error(node, "no inline lowering")
        return rule(self, node, idx)

    def finish(self, out_info: KernelInfo) -> str:
        params = ", ".join(f"ptr noalias {p}" for p in self.params.values())
        sep = ", " if params else ""
        header = (f"define internal i32 @{self.name}({params}{sep}ptr noalias %tab) #0 {{")
        self.ctx.math_used |= self.fb.math_used
        out_info.reads = list(self.params)
        out_info.fallible = self.fallible
        out_info.blas = self.blas
        return self.fb.finish(header)


# --------------------------------------------------------------------------- inline rules



def broadcast_index(x: Variable, out: Variable, idx: list[str]) -> list[str]:
    """Index of ``x`` read at ``idx`` of ``out`` (numpy broadcasting; static 1s broadcast)."""
    lead = out.ndim - x.ndim
    return ["0" if d == 1 else idx[lead + k] for k, d in enumerate(x.shape)]


def _comp_dtype(node: Apply) -> tuple[list[str], str]:
    """dtype each input is converted to before the scalar function runs."""
    sop = node.op.scalar_op
    ins = [x.dtype for x in node.inputs]
    out = node.outputs[0].dtype.name
    if sop.name == "where":
        return ["bool", out, out], out
    if sop.name == "fill":
        return [ins[0].name, out], out
    if sop.name in ("and", "or", "not"):
        return ["bool"] * len(ins), out
    comp = np.result_type(*ins).name
    if node.outputs[0].dtype.kind == "f" and comp != out:
        comp = out
    return [comp] * len(ins), out


def _inline_elemwise(k: Kernel, node: Apply, idx: list[str]) -> Value:
    sop = node.op.scalar_op
    out = node.outputs[0]
    dtypes, out_dtype = _comp_dtype(node)
    args = []
    for x, dt in zip(node.inputs, dtypes):
        if sop.name == "fill" and x is node.inputs[0]:
            args.append(k.sb.const(0, "int64"))
            continue
        args.append(k.sb.convert(k.value_at(x, broadcast_index(x, out, idx)), dt))
    lower = sop.lower
    if lower is None:
        raise node_error(node, "the scalar op has no lower()")
    if (sop.name == "div" and out.ndim and dtypes[1] in ("float32", "float64")
            and all(d == 1 for d in node.inputs[1].shape)):
        # x / s with a loop-invariant s (Adam's bias corrections): one reciprocal, which
        # LICM hoists out of the loop, and a multiply per element (``arcp`` allows it) --
        # a vector division costs as much as the memory traffic of the whole update
        recip = k.sb.div(k.sb.const(1, dtypes[1]), args[1])
        return k.sb.convert(k.sb.mul(args[0], recip), out_dtype)
    return k.sb.convert(lower(k.sb, *args), out_dtype)


def _inline_cast(k: Kernel, node: Apply, idx: list[str]) -> Value:
    return k.sb.convert(k.value_at(node.inputs[0], idx), node.outputs[0].dtype.name)


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
    dt = out.dtype.name
    one = literal(out.dtype.type(1.0 / op_.keep_prob), dt)
    return Value(k.fb.op(f"select i1 {keep}, {Value('', dt).ty} {one}, "
                         f"{Value('', dt).ty} {literal(0, dt)}"), dt)


def _inline_size(k: Kernel, node: Apply, idx: list[str]) -> Value:
    x = node.inputs[0]
    n = k.size(x, node.op.axes)
    return k.sb.convert(Value(n, "int64"), node.outputs[0].dtype.name)


def _inline_arange(k: Kernel, node: Apply, idx: list[str]) -> Value:
    return k.sb.convert(Value(idx[0], "int64"), node.outputs[0].dtype.name)


def _inline_one_hot(k: Kernel, node: Apply, idx: list[str]) -> Value:
    label = k.sb.convert(k.value_at(node.inputs[0], idx[:-1]), "int64")
    hit = Value(k.fb.op(f"icmp eq i64 {label.ref}, {idx[-1]}"), "bool")
    return k.sb.convert(hit, node.outputs[0].dtype.name)


def _inline_dimshuffle(k: Kernel, node: Apply, idx: list[str]) -> Value:
    op_ = node.op
    src = ["0"] * op_.ndim_in
    for pos, a in enumerate(op_.order):
        if a != "x":
            src[a] = idx[pos]
    return k.value_at(node.inputs[0], src)


INLINE_RULES: dict[type, Callable[[Kernel, Apply, list[str]], Value]] = {
    Elemwise: _inline_elemwise,
    Cast: _inline_cast,
    DropoutMask: _inline_dropout,
    Size: _inline_size,
    Arange: _inline_arange,
    OneHot: _inline_one_hot,
    DimShuffle: _inline_dimshuffle,
}


# --------------------------------------------------------------------------- kernel lowerings


def _flat_ok(k: Kernel, group: list[Variable]) -> bool:
    """Can the loop nest be one flat loop?  Yes when every value read has the output's full
    shape or is a broadcast scalar: then the flat index addresses all of them, and the
    vectoriser sees one long contiguous loop instead of short inner rows."""
    shape = tuple(group[0].shape)
    if len(shape) < 2:
        return False
    stack = [v.owner for v in group]
    while stack:
        node = stack.pop()
        if not isinstance(node.op, (Elemwise, Cast, DropoutMask, Size)):
            return False
        for i, x in enumerate(node.inputs):
            if isinstance(node.op, (DropoutMask, Size)) and i == 0:
                continue
            if k.an.mode.get(x) in ("inline", "view") and x not in group:
                if x.ndim and tuple(x.shape) != shape:
                    return False
                stack.append(x.owner)
            elif tuple(x.shape) != shape and any(d != 1 for d in x.shape):
                return False
    return True


def lower_elementwise_kernel(k: Kernel, node: Apply) -> None:
    """Store an inlinable op's value at every index of its output (one loop nest)."""
    lower_elementwise_group(k, [node.outputs[0]])


def lower_elementwise_group(k: Kernel, group: list[Variable]) -> None:
    """Same-shape elementwise results in ONE loop nest (e.g. Adam's m, v and p): a later
    member reads an earlier one at the same index, which LLVM forwards from the store, so
    each element is loaded and stored once."""
    first = group[0]
    if len(group) > 1:  # (a single variable's kernel checked its labels in lower_node)
        k.check_labels([n for var in group for n in k.an.members.get(var, [var.owner])])
    wide = [a for a, d in enumerate(first.shape) if d != 1]
    if wide and _flat_ok(k, group):
        # the flat index goes on the last axis that is not a static 1 (its stride is 1)
        i, token = k.fb.loop_begin(k.size(first))
        idx = ["0"] * first.ndim
        idx[wide[-1]] = i
        tokens = [token]
    else:
        idx_map, tokens = k.open_loops(first, range(first.ndim))
        idx = [idx_map[a] for a in range(first.ndim)]
    for var in group:
        k.store(var, idx, k.inline_value(var.owner, idx))
    k.close_loops(tokens)




def lower_node(k: Kernel, node: Apply) -> None:
    from .lowerings import LOWERINGS, lower_folded_sgd
    k.check_labels(k.an.members.get(node.outputs[0], [node]))
    if node.outputs[0] in k.an.folded:  # W - c * (A @ B) as one gemm into W
        return lower_folded_sgd(k, node)
    if type(node.op) in INLINE_RULES:
        return lower_elementwise_kernel(k, node)
    rule = LOWERINGS.get(type(node.op))
    if rule is None:
        raise node_error(node, "no lowering for this op")
    return rule(k, node)


def check_lowerable(an: Analysis) -> None:
    """Raise :class:`LoweringError` for the first op the backend cannot compile."""
    from .lowerings import LOWERINGS
    for node in an.nodes:
        if type(node.op) not in INLINE_RULES and type(node.op) not in LOWERINGS:
            raise node_error(node, "no lowering for this op")
        if isinstance(node.op, Elemwise) and node.op.scalar_op.lower is None:
            raise node_error(node, "the scalar op has no lower()")
        for x in node.inputs:
            if isinstance(x, Constant) and x.dtype.name not in MEM_TYPE:
                raise node_error(node, f"constant of dtype {x.dtype.name}")


#: float32 vector division and square root through the hardware estimates plus one
#: Newton-Raphson step (~1 ulp; ``arcp``/``afn`` already allow it): a vectorised ``vdivps`` /
#: ``vsqrtps`` costs more than the memory traffic of an elementwise pass (Adam's update)
RECIP = '"reciprocal-estimates"="vec-divf:1,vec-sqrtf:1"'


def module_header() -> str:
    return "\n".join([
        INTRINSIC_DECLARATIONS,
        "!0 = !{}",
        f"attributes #0 = {{ nounwind {function_attrs()} {RECIP} }}",
        # the step itself stays one function (sg_epoch calls it instead of a second copy)
        f"attributes #1 = {{ nounwind noinline {function_attrs()} }}",
    ])


def function_attrs() -> str:
    from .jit import function_attributes
    return function_attributes()


def math_declarations(used: set[tuple[str, str]]) -> str:
    return vecmath.math_declarations(used)


def runtime_failure(ctx: ModuleContext, table: np.ndarray) -> tuple[Apply, Exception] | None:
    """The node whose runtime check failed and the exception its numpy ``perform`` raises
    for the same bad value (same type, same message), read from the error record that
    :meth:`Kernel.fail_if` wrote into ``table`` (the plan's table); None without a record."""
    from symgraph.ops.indexing import (
        AdvancedIncSubtensor,
        AdvancedSubtensor,
        describe_input,
        index_error_text,
    )
    from symgraph.ops.nn import label_error_text

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
    source = describe_input(checked)
    if isinstance(node.op, OneHot):
        return node, IndexError(label_error_text(value, size, source, tuple(position)))
    if isinstance(node.op, (AdvancedSubtensor, AdvancedIncSubtensor)):
        return node, IndexError(index_error_text(value, axis, size, source, tuple(position)))
    return None


class _Shape:
    """Stands for an input value in an error message (only its shape is shown)."""

    def __init__(self, shape):
        self.shape = tuple(shape)


def runtime_error(ctx: ModuleContext, table: np.ndarray, shapes: dict) -> Exception | None:
    """The exception for a failed call of a compiled step, worded exactly as the numpy
    backend words it (:func:`symgraph.evaluate` reports node errors), from the error record
    in the plan's ``table`` and the plan's concrete ``shapes``; None without a record."""
    from symgraph.evaluate import _node_error

    found = runtime_failure(ctx, table)
    if found is None:
        return None
    node, err = found
    values = [_Shape(shapes.get(x, x.shape)) for x in node.inputs]
    return _node_error(node, values, str(err), err)


__all__ = ["ERROR_FIELDS", "FMF", "Kernel", "KernelInfo", "LoweringError", "ModuleContext",
           "check_lowerable", "lower_node", "module_header", "runtime_error", "runtime_failure"]
