"""Printing for humans: ``pprint`` and ``debugprint`` (``to_dot`` and ``to_networkx``
live in ``symgraph.export`` and share this module's roles and labels).

Where it fits: in the pipeline graph -> grad -> rewrite -> lower -> LLVM -> call, this
module reads a graph before lowering -- the user's forward nodes, the nodes ``grad``
added (``Apply.grad_call`` marks them, ``Apply.grad_of`` names the forward node whose
``bprop`` made them) and a ``Function``'s outputs and updates. It never changes a graph,
and prints only what the given outputs (and updates) reach, so dead code never appears.

Every entry point takes a Variable, a list of Variables or a ``Function`` (its outputs
and updates), plus optional ``updates={shared: expression}``. Node identity is the
Variable: one node per Variable, keyed by ``Variable.id``, with its owner's op.

* ``pprint``: infix math; a named node (``d(cost)/d(h)``) or a non-tiny node used more
  than once is printed once as ``x3 := ...`` and referenced by label (as jaxprs and
  tinygrad do), so the text is linear in the graph size.
* ``debugprint``: an indented tree, ``op{params} dtype(shape) 'name' [grad of op]``; a
  node used more than once is printed once as ``#3 ...`` and referenced as ``*3``.
* ``to_dot``: Graphviz text; ``to_networkx``: a ``networkx.DiGraph`` (networkx is
  imported on call only). Both carry each node's role: input, parameter, constant,
  forward, gradient, or update (a non-gradient op reached only from the updates).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

import numpy as np

from symgraph import dispatch
from symgraph import shapes as sh
from symgraph.evaluate import evaluate
from symgraph.graph import Apply, Constant, Op, Variable, toposort
from symgraph.ops.elemwise import Cast, DropoutMask, Elemwise
from symgraph.ops.indexing import (
    AdvancedIncSubtensor,
    AdvancedSubtensor,
    Subtensor,
    SubtensorGrad,
)
from symgraph.ops.linalg import MatMul
from symgraph.ops.nn import Arange, LogSoftmax, LogSumExp, OneHot, Softmax
from symgraph.ops.reduce import Argmax, Reduce, Size
from symgraph.ops.structure import Concatenate, DimShuffle, Flip, Reshape, Stack


class CompiledGraph(Protocol):
    """What printing reads of a ``Function``: its outputs and update pairs.

    A protocol, not ``symgraph.function.Function``: printing sits below ``function`` in
    the import order (``function`` reaches it through ``profiling``).
    """

    outputs: Sequence[Variable]
    updates: Sequence[tuple[Variable, Variable]]


GraphLike = Variable | Sequence[Variable] | CompiledGraph
UpdatesLike = Mapping[Variable, Variable] | Sequence[tuple[Variable, Variable]] | None

__all__ = ["debugprint", "pprint", "role_of", "short_label"]

#: A node used several times is still inlined by ``pprint`` when its text is at most
#: this long and its inputs are all leaves (``W.T``, ``tanh(x)``): naming it hides more
#: than it saves.
INLINE_LIMIT = 16
#: ``pprint`` gives an operand its own ``x3 := ...`` line when its text is longer than
#: this, so no line nests without bound (a deep chain's gradient stays readable).
WRAP_LIMIT = 100
#: ``debugprint`` indents at most this many levels; a deeper subtree is printed later,
#: unindented, as ``#3 ...`` (its place shows ``*3``), so the text stays linear in size.
MAX_INDENT = 24
#: Constants with at most this many elements print their values; larger ones ``const(shape)``.
CONSTANT_VALUES_LIMIT = 4

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.']*\Z")


# --------------------------------------------------------------------------- collecting


def _collect(outputs: GraphLike, updates: UpdatesLike
             ) -> tuple[list[Variable], list[tuple[Variable, Variable]], bool]:
    """(outputs, update pairs, single) from a Variable, a list or a Function."""
    pairs: list[tuple[Variable, Variable]] = []
    if isinstance(outputs, Variable):
        outs, single = [outputs], True
    elif hasattr(outputs, "outputs") and hasattr(outputs, "updates"):  # a Function
        outs, single = list(outputs.outputs), False
        pairs.extend(outputs.updates)
    else:
        outs, single = list(outputs), False
    if updates is not None:
        pairs.extend(updates.items() if isinstance(updates, Mapping) else updates)
    for v in outs + [e for pair in pairs for e in pair]:
        if not isinstance(v, Variable):
            raise TypeError(f"printing expects symgraph Variables, got {type(v).__name__}")
    return outs, pairs, single and not pairs


def is_gradient(var: Variable) -> bool:
    """True if a ``grad`` call made ``var`` (its seed and final sums included)."""
    return var.role == "gradient"


def role_of(var: Variable, update_only: frozenset[int] | set[int] = frozenset()) -> str:
    """``Variable.role``, with forward nodes whose id is in ``update_only`` as "update"."""
    role = var.role
    return "update" if role == "forward" and var.id in update_only else role


def _update_only(outputs: Sequence[Variable], pairs: Sequence[tuple[Variable, Variable]]
                 ) -> set[int]:
    """Ids of non-leaf variables reached from the update expressions but not the outputs."""
    if not pairs:
        return set()
    from_outputs = {o.id for n in toposort(outputs) for o in n.outputs}
    from_updates = {o.id for n in toposort([e for _, e in pairs]) for o in n.outputs}
    return from_updates - from_outputs


def _reached(roots: Sequence[Variable]) -> tuple[list[Apply], list[Variable]]:
    """Apply nodes in topological order and every reached Variable (leaves first, no dups)."""
    nodes = toposort(roots)
    seen: dict[int, Variable] = {}
    for var in roots:
        if var.owner is None:
            seen.setdefault(var.id, var)
    for node in nodes:
        for inp in node.inputs:
            if inp.owner is None:
                seen.setdefault(inp.id, inp)
    for node in nodes:
        for out in node.outputs:
            seen.setdefault(out.id, out)
    return nodes, list(seen.values())


def _use_counts(nodes: Iterable[Apply], roots: Sequence[Variable]) -> Counter:
    """How many times each variable id is consumed (each input slot and each root counts)."""
    uses: Counter = Counter(v.id for v in roots)
    for node in nodes:
        uses.update(inp.id for inp in node.inputs)
    return uses


# --------------------------------------------------------------------------- op descriptions


def _format_axes(axes: Sequence[int]) -> str:
    return str(axes[0]) if len(axes) == 1 else f"({', '.join(map(str, axes))})"


def _format_index_entry(entry) -> str:
    if not isinstance(entry, slice):
        return sh.format_dim(entry)
    parts = ["" if b is None else sh.format_dim(b) for b in (entry.start, entry.stop)]
    text = ":".join(parts)
    return text if entry.step is None else f"{text}:{sh.format_dim(entry.step)}"


def _array_index(pattern: tuple, arrays: list) -> str:
    """``i, :, j`` for an integer-array index: printed arrays where the pattern has "a"."""
    it = iter(arrays)
    return ", ".join(next(it)[0] if p == "a" else ":" for p in pattern)


def _format_index(index: Sequence) -> str:
    return ", ".join(_format_index_entry(e) for e in index) or ":"


def _snake(name: str) -> str:
    """``Argmax`` -> ``argmax``, ``DropoutMask`` -> ``dropout_mask`` (class-named ops)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def op_name(op: Op) -> str:
    """The short name of an op: ``add``, ``matmul``, ``sum``, ``cast<float32>``, ``argmax``."""
    return _snake(op.name) if op.name[:1].isupper() else op.name


def _reduce_params(node: Apply, axes: Sequence[int], keepdims: bool) -> list[str]:
    params = []
    if tuple(axes) != tuple(range(node.inputs[0].ndim)):
        params.append(f"axis={_format_axes(axes)}")
    if keepdims:
        params.append("keepdims=True")
    return params


def _dimshuffle_params(node: Apply) -> list[str]:
    op: DimShuffle = node.op
    name = op.name
    if name == "transpose":
        reverse = tuple(reversed(range(op.ndim_in)))
        return [] if op.order == reverse else [f"axes={op.order}"]
    if name == "expand_dims":
        return [f"axis={_format_axes([i for i, a in enumerate(op.order) if a == 'x'])}"]
    if name == "squeeze":
        return [f"axis={_format_axes(op.dropped)}"]
    return [f"order={op.order}"]


def _props_params(node: Apply) -> list[str]:
    return [f"{p}={getattr(node.op, p)!r}" for p in node.op.props]


# Extra parameters of each op, shown as ``sum(x, axis=1)`` by pprint and ``sum{axis=1}`` by
# debugprint. Looked up along the op's class hierarchy; the fallback shows ``props``.
_PARAMS: dict[type, Callable[[Apply], list[str]]] = {
    Elemwise: lambda node: [],
    Cast: lambda node: [],
    MatMul: lambda node: [],
    Reduce: lambda node: _reduce_params(node, node.op.axes, node.op.keepdims),
    LogSumExp: lambda node: _reduce_params(node, node.op.axes, node.op.keepdims),
    Argmax: lambda node: ([] if node.op.axis is None else [f"axis={node.op.axis}"])
    + (["keepdims=True"] if node.op.keepdims else []),
    Size: lambda node: _reduce_params(node, node.op.axes, False),
    Softmax: lambda node: ([] if node.op.axis == node.inputs[0].ndim - 1
                           else [f"axis={node.op.axis}"]),
    LogSoftmax: lambda node: ([] if node.op.axis == node.inputs[0].ndim - 1
                              else [f"axis={node.op.axis}"]),
    OneHot: lambda node: [str(node.op.depth)],
    Arange: lambda node: [sh.format_dim(node.op.n)],
    Reshape: lambda node: [sh.format_shape(tuple(-1 if d == -1 else d for d in node.op.shape))],
    Concatenate: lambda node: [f"axis={node.op.axis}"],
    Stack: lambda node: [f"axis={node.op.axis}"],
    DimShuffle: _dimshuffle_params,
    Flip: lambda node: [f"axis={_format_axes(node.op.axes)}"],
    Subtensor: lambda node: [f"[{_format_index(node.op.index)}]"],
    SubtensorGrad: lambda node: [f"[{_format_index(node.op.index)}]"],
    AdvancedSubtensor: lambda node: [f"pattern={''.join(node.op.pattern)}"],
    AdvancedIncSubtensor: lambda node: [f"pattern={''.join(node.op.pattern)}"],
    DropoutMask: lambda node: [f"keep_prob={node.op.keep_prob}", f"seed={node.op.seed}"],
}


def op_params(node: Apply) -> list[str]:
    """The op's parameters as short strings (``axis=1``, ``keepdims=True``, ``[0:2]``)."""
    for cls in type(node.op).__mro__:
        rule = _PARAMS.get(cls)
        if rule is not None:
            return rule(node)
    return _props_params(node)


def op_label(node: Apply) -> str:
    """``sum{axis=1}``, ``matmul``, ``getitem{[0:2]}``: the op name and its parameters."""
    params = op_params(node)
    return op_name(node.op) + (f"{{{', '.join(params)}}}" if params else "")


def constant_text(const: Constant) -> str:
    """``0.5``, ``[1, 2, 3]``, or ``const(784, 10)`` for a large constant."""
    value = const.value
    if value.ndim == 0:
        return str(value[()])
    if value.ndim == 1 and value.size <= CONSTANT_VALUES_LIMIT:
        return "[" + ", ".join(str(v) for v in value) + "]"
    return "const" + sh.format_shape(value.shape)


# --------------------------------------------------------------------------- pprint

# A rendered expression: its text and whether it is an *atom* (a name, number, call,
# ``x.T`` or ``x[...]``) that needs no parentheses as an operand.
_Expr = tuple[str, bool]


def _operand(expr: _Expr) -> str:
    text, atom = expr
    return text if atom else f"({text})"


def _label_expr(label: str) -> _Expr:
    """Names like ``d(cost)/d(W)`` are parenthesised as operands."""
    return label, bool(_IDENTIFIER.match(label))


#: Infix operators numpy reads as logical only between bools (``logical_and``, ``logical_or``).
_BOOL_INFIX = ("&", "|")
#: Elementwise ops whose short names are Python keywords print as numpy's functions.
_CALL_NAMES = {"and": "logical_and", "or": "logical_or", "not": "logical_not"}


def _render(node: Apply, args: list[_Expr]) -> _Expr:
    """One node as infix math, given its rendered inputs."""
    op = node.op
    if isinstance(op, Elemwise):
        infix = op.scalar_op.infix
        if infix in _BOOL_INFIX and not all(i.dtype.kind == "b" for i in node.inputs):
            infix = None  # ``&`` of integers is bitwise (numpy; an error in symgraph)
        if infix is not None and len(args) == 2:
            return f"{_operand(args[0])} {infix} {_operand(args[1])}", False
        if infix == "-" and len(args) == 1:
            text, atom = args[0]
            simple = atom and _IDENTIFIER.match(text)
            return (f"-{text}" if simple else f"-({text})"), False
    if isinstance(op, MatMul):
        return f"{_operand(args[0])} @ {_operand(args[1])}", False
    if isinstance(op, Cast):
        return f"{op.dtype.name}({args[0][0]})", True
    if isinstance(op, DimShuffle) and op.name == "transpose" and not op_params(node):
        return f"{_operand(args[0])}.T", True
    if isinstance(op, Subtensor):
        return f"{_operand(args[0])}[{_format_index(op.index)}]", True
    if isinstance(op, AdvancedSubtensor):
        return f"{_operand(args[0])}[{_array_index(op.pattern, args[1:])}]", True
    if isinstance(op, SubtensorGrad):
        return f"setitem_zeros({args[0][0]}, [{_format_index(op.index)}], {args[1][0]})", True
    if isinstance(op, AdvancedIncSubtensor):
        index = _array_index(op.pattern, args[2:])
        return f"scatter_add({args[0][0]}, [{index}], {args[1][0]})", True
    parts = [text for text, _ in args] + op_params(node)
    name = op_name(op)
    return f"{_CALL_NAMES.get(name, name)}({', '.join(parts)})", True


class _Names:
    """Unique labels: a user's name when free, else ``name_2``; fresh ones as ``x3``."""

    def __init__(self, reserved: Iterable[str]):
        self.reserved = set(reserved)
        self.given: set[str] = set()
        self.counter = 0

    def claim(self, name: str) -> str:
        """``name``, or ``name_k`` for the first k that is neither given nor another
        variable's own name (a second ``W`` printed as ``W_2`` beside a variable named
        ``W_2``)."""
        label, k = name, 1
        while label in self.given or (k > 1 and label in self.reserved):
            k += 1
            label = f"{name}_{k}"
        self.given.add(label)
        return label

    def fresh(self, prefix: str = "x") -> str:
        while True:
            self.counter += 1
            label = f"{prefix}{self.counter}"
            if label not in self.reserved and label not in self.given:
                self.given.add(label)
                return label


def pprint(outputs: GraphLike, *, updates: UpdatesLike = None) -> str:
    """The graph as infix math.

    >>> pprint(x @ W + b)
    '(x @ W) + b'

    A single Variable prints as one expression, preceded by ``label := expr`` lines for
    nodes that are named (e.g. ``d(cost)/d(h)``) or used more than once (``x3``). A list
    (or a Function) prints ``label = expr`` per output (its name, else ``out0``, ...) in
    dependency order, then ``W <- expr`` per update.
    """
    outs, pairs, single = _collect(outputs, updates)
    roots = outs + [e for _, e in pairs]
    nodes, reached = _reached(roots)
    uses = _use_counts(nodes, roots)
    names = _Names([v.name for v in reached if v.name] + [t.name for t, _ in pairs if t.name])

    exprs: dict[int, _Expr] = {}   # how a reference to each variable prints
    for var in reached:
        if var.owner is None:
            if isinstance(var, Constant) and not var.name:
                text = constant_text(var)
                exprs[var.id] = text, not text.startswith("-")
            else:
                exprs[var.id] = _label_expr(names.claim(var.name) if var.name
                                            else names.fresh("in"))

    first_position: dict[int, int] = {}
    for i, var in enumerate(outs):
        first_position.setdefault(var.id, i)
    output_labels: dict[int, str] = {}
    if not single:
        for var_id, i in first_position.items():
            var = outs[i]
            if var.owner is not None:
                output_labels[var_id] = names.claim(var.name or f"out{i}")

    lines: list[str] = []
    top = outs[0] if single else None
    inline: set[int] = set()  # ids printed as their expression, not a label
    folded = _constant_values(nodes)
    for node in nodes:
        if node.outputs[0].id in folded and not node.outputs[0].name:
            # ``3.0 - 1.0`` (a bprop's arithmetic on constants) prints as ``2.0``
            text = constant_text(folded[node.outputs[0].id])
            exprs[node.outputs[0].id] = text, not text.startswith("-")
            inline.add(node.outputs[0].id)
            if node.outputs[0].id in output_labels:  # an output still gets its line
                lines.append(f"{output_labels[node.outputs[0].id]} = {text}")
            continue
        for inp in node.inputs:
            if inp.id in inline and len(exprs[inp.id][0]) > WRAP_LIMIT:
                label = names.fresh("x")
                lines.append(f"{label} := {exprs[inp.id][0]}")
                exprs[inp.id] = _label_expr(label)
                inline.discard(inp.id)
        expr = _render(node, [exprs[inp.id] for inp in node.inputs])
        for out in node.outputs:
            text = expr if len(node.outputs) == 1 else (f"{expr[0]}#{out.index}", True)
            if out.id in output_labels:
                label = output_labels[out.id]
                lines.append(f"{label} = {text[0]}")
            elif out is not top and (out.name or (
                    uses[out.id] > 1 and not _is_small(text, node))):
                label = names.claim(out.name) if out.name else names.fresh("x")
                lines.append(f"{label} := {text[0]}")
            else:
                exprs[out.id] = text
                inline.add(out.id)
                continue
            exprs[out.id] = _label_expr(label)
    if single:
        lines.append(exprs[outs[0].id][0])
    else:  # outputs that are leaves, or listed twice, still get their line
        for i, var in enumerate(outs):
            if var.owner is None or first_position[var.id] != i:
                lines.append(f"{names.claim(f'out{i}')} = {exprs[var.id][0]}")
    for target, expr_var in pairs:
        # (a target nothing printed reads: its name claimed, so no other variable's label)
        label = exprs[target.id][0] if target.id in exprs else (
            names.claim(target.name) if target.name else "<unnamed>")
        lines.append(f"{label} <- {exprs[expr_var.id][0]}")
    return "\n".join(lines)


def _constant_values(nodes: Sequence[Apply]) -> dict[int, Constant]:
    """Single-output nodes computed from constants alone, with few elements and at most one
    axis (what :func:`constant_text` prints as values): their value.

    Folding uses the reference evaluator, so what prints is what the graph computes.
    """
    values: dict[int, Constant] = {}
    for node in nodes:
        if len(node.outputs) != 1 or node.op.name in ("dropout_mask", "arange"):
            continue
        if not all(isinstance(i, Constant) or i.id in values for i in node.inputs):
            continue
        out = node.outputs[0]
        if out.ndim > 1 or not all(isinstance(d, int) for d in out.shape) or \
                int(np.prod(out.shape, dtype=np.int64)) > CONSTANT_VALUES_LIMIT:
            continue  # (a matrix prints as its shape: folding ``c.T`` would hide the .T)
        try:
            [value] = evaluate([out], {}, {})
        except Exception:  # noqa: BLE001 - a constant that fails to compute prints as built
            continue
        values[out.id] = Constant(np.asarray(value, dtype=out.dtype))
    return values


def short_label(var: Variable, limit: int = 40) -> str | None:
    """``var`` as one line of infix math (named nodes as their names), or None when it
    would be longer than ``limit``: how ``grad`` names a nameless cost (``d(sum(x ** 3))/d(x)``).
    """
    if var.name:
        return var.name

    def render(v: Variable, depth: int) -> _Expr | None:
        if v.name:
            return _label_expr(v.name)
        if isinstance(v, Constant):
            text = constant_text(v)
            return text, not text.startswith("-")
        if v.owner is None or depth == 0:
            return None
        args = [render(i, depth - 1) for i in v.owner.inputs]
        if any(a is None for a in args):
            return None
        return _render(v.owner, args)

    expr = render(var, 4)
    return expr[0] if expr is not None and len(expr[0]) <= limit else None


def _is_small(expr: _Expr, node: Apply) -> bool:
    return len(expr[0]) <= INLINE_LIMIT and all(inp.owner is None for inp in node.inputs)


# --------------------------------------------------------------------------- debugprint


def _leaf_line(var: Variable) -> str:
    role = role_of(var)
    if isinstance(var, Constant) and not var.name:
        label = constant_text(var)
    else:
        label = var.name if var.name else "<unnamed>"
    return f"{label} {var.type} [{role}]"


def _grad_marker(node: Apply) -> str:
    if node.grad_of is not None:
        return f" [grad of {op_name(node.grad_of.op)}]"
    if node.grad_call is not None:
        return " [grad]"
    return ""


def _node_line(var: Variable, update_only: set[int]) -> str:
    node = var.owner
    parts = [op_label(node), str(var.type)]
    if len(node.outputs) > 1:
        parts.append(f"out={var.index}")
    if var.name:
        parts.append(f"'{var.name}'")
    line = " ".join(parts) + _grad_marker(node)
    if var.id in update_only and not is_gradient(var):
        line += " [update]"
    return line


def debugprint(outputs: GraphLike, *, updates: UpdatesLike = None) -> str:
    """An indented tree of the graph, one line per node, shared subtrees printed once.

    >>> print(debugprint(x @ W + b))
    add float32(batch, 10)
    |- matmul float32(batch, 10)
    |  |- x float32(batch, 784) [input]
    |  `- W float32(784, 10) [parameter]
    `- b float32(10,) [parameter]

    A line reads ``op{params} dtype(shape) 'name' [grad of op]``; leaves read
    ``name dtype(shape) [role]``. A non-leaf node used more than once is tagged ``#3``
    where first printed and later shown as ``*3``; leaves are repeated. Updates print
    as trees under ``W <- ``. Iterative, so deep graphs do not hit the recursion limit.
    """
    outs, pairs, _ = _collect(outputs, updates)
    roots = outs + [e for _, e in pairs]
    nodes, _ = _reached(roots)
    uses = _use_counts(nodes, roots)
    update_only = _update_only(outs, pairs)
    tags: dict[int, int] = {}
    printed: set[int] = set()
    lines: list[str] = []
    heads: list[tuple[str | None, Variable]] = [("", v) for v in outs]
    heads += [(f"{t.name or '<unnamed>'} <- ", e) for t, e in pairs]
    while heads:  # the roots, then subtrees too deep to indent (head None)
        head, root = heads.pop(0)
        if head is None:
            if root.id in printed:
                continue
            head = ""
        # (variable, prefix of its own line, prefix for its children)
        stack: list[tuple[Variable, str, str]] = [(root, head, " " * len(head))]
        while stack:
            var, prefix, child_prefix = stack.pop()
            if var.owner is None:
                lines.append(prefix + _leaf_line(var))
                continue
            if var.id in tags and (var.id in printed or var is not root):
                lines.append(f"{prefix}*{tags[var.id]}")
                continue
            if len(child_prefix) > 3 * MAX_INDENT and var is not root:
                tags[var.id] = len(tags) + 1
                lines.append(f"{prefix}*{tags[var.id]}")
                heads.append((None, var))
                continue
            line = _node_line(var, update_only)
            if uses[var.id] > 1 or var.id in tags:
                tags.setdefault(var.id, len(tags) + 1)
                line = f"#{tags[var.id]} {line}"
            printed.add(var.id)
            lines.append(prefix + line)
            inputs = var.owner.inputs
            for i in reversed(range(len(inputs))):
                last = i == len(inputs) - 1
                stack.append((inputs[i], child_prefix + ("`- " if last else "|- "),
                              child_prefix + ("   " if last else "|  ")))
    return "\n".join(lines)


# error messages name an unnamed input by its expression (``ops.indexing.describe_input``);
# the printer sits above the op classes it prints, so the ops look it up by name
dispatch.register({"pprint": pprint})
