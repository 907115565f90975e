"""Which variables get a buffer and which are computed inside their consumer's loop.

Why: the speed of a compiled step comes from few memory passes.  Every variable gets a *mode*:

* ``arg`` (function input or shared variable: a pointer passed in), ``const`` (a constant's
  array, owned by the program), ``literal`` (a 0-d constant, written into the IR);
* ``inline`` — computed inside the loop of its consumer (elementwise trees, casts, dropout
  masks, sizes, aranges, one-hots): a maximal elementwise tree becomes one loop nest, and a
  reduction that consumes an elementwise tree (bias-gradient sums, softmax sums, loss means)
  runs in the same loop;
* ``view`` — a transposing DimShuffle read through permuted indices (or as a BLAS flag);
* ``alias`` — a Reshape or an axis-inserting/dropping DimShuffle: the same bytes, new shape;
* ``buffer`` — materialised by its own kernel; ``dead`` — only its shape is used.

The rules are local and bounded (one pass in topological order), as the style guide asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from symgraph.graph import Apply, Constant, SharedVariable, Variable, toposort
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
from symgraph.ops.structure import (
    Concatenate,
    ConcatenateGrad,
    DimShuffle,
    Reshape,
    ReshapeLike,
    Stack,
)

#: ops whose output can be computed at any index inside another loop
INLINABLE = (Elemwise, Cast, DropoutMask, Size, Arange, OneHot)
#: inlinable ops cheap enough to recompute wherever they are read
CHEAP = (Size, Arange, OneHot)
#: consumers whose loops evaluate a whole elementwise tree per element
FUSING_CONSUMERS = (Elemwise, Cast, Reduce)
#: consumers that read their inputs element by element (through ``value_at``)
VALUE_CONSUMERS = (*FUSING_CONSUMERS, Argmax, Softmax, LogSoftmax, LogSumExp, Concatenate,
                   Stack, Subtensor, SubtensorGrad, AdvancedSubtensor, AdvancedIncSubtensor,
                   OneHot, DropoutMask, Size, DimShuffle, ConcatenateGrad)
#: modes whose values sit in memory with a C layout
ADDRESSABLE = ("arg", "const", "literal", "buffer", "alias")
#: (op class, input index) pairs that use only the input's shape
SHAPE_ONLY = {(DropoutMask, 0), (Size, 0), (SubtensorGrad, 0), (AdvancedIncSubtensor, 0),
              (ReshapeLike, 1)}


def shape_only(op, index: int) -> bool:
    """Does input ``index`` of ``op`` contribute only its shape?"""
    return (type(op), index) in SHAPE_ONLY or isinstance(op, ConcatenateGrad) and index > 0


def is_alias_dimshuffle(op: DimShuffle) -> bool:
    """Inserting or dropping length-1 axes keeps the C layout: no copy needed."""
    kept = [a for a in op.order if a != "x"]
    return kept == sorted(kept)


def is_transpose2d(op) -> bool:
    return isinstance(op, DimShuffle) and op.ndim_in == 2 and tuple(op.order) == (1, 0)


@dataclass
class Analysis:
    """Modes of all variables and the kernels (buffered variables) in execution order."""

    outputs: list[Variable]
    nodes: list[Apply]
    all_nodes: list[Apply]
    mode: dict[Variable, str] = field(default_factory=dict)
    uses: dict[Variable, list[tuple[Apply, int]]] = field(default_factory=dict)
    kernels: list[Variable] = field(default_factory=list)
    members: dict[Variable, list[Apply]] = field(default_factory=dict)

    def root(self, var: Variable) -> Variable:
        """The variable whose memory ``var`` lives in (follows aliases)."""
        while self.mode.get(var) == "alias":
            var = var.owner.inputs[0]
        return var


def _value_uses(node: Apply) -> list[tuple[int, Variable]]:
    return [(i, x) for i, x in enumerate(node.inputs) if not shape_only(node.op, i)]


def analyse(outputs: list[Variable]) -> Analysis:
    """Decide every variable's mode (see module docstring)."""
    all_nodes = toposort(outputs)
    # liveness: which nodes' values are needed (shape-only uses do not need the value)
    needed: set[Variable] = set(outputs)
    for node in reversed(all_nodes):
        if any(o in needed for o in node.outputs):
            for _, x in _value_uses(node):
                needed.add(x)
    nodes = [n for n in all_nodes if any(o in needed for o in n.outputs)]
    an = Analysis(outputs=list(outputs), nodes=nodes, all_nodes=all_nodes)
    for node in nodes:
        for i, x in _value_uses(node):
            an.uses.setdefault(x, []).append((node, i))
    out_set = set(outputs)
    for node in all_nodes:
        for x in node.inputs:
            if x.owner is None:
                an.mode[x] = _leaf_mode(x)
    for x in outputs:
        if x.owner is None:
            an.mode[x] = _leaf_mode(x)
    for node in all_nodes:
        var = node.outputs[0]
        if node not in nodes:
            an.mode[var] = "dead"
            continue
        an.mode[var] = _mode(an, node, var, var in out_set)
    for node in nodes:
        var = node.outputs[0]
        if an.mode[var] == "buffer":
            an.kernels.append(var)
            an.members[var] = _members(an, node)
    return an


def _leaf_mode(x: Variable) -> str:
    if isinstance(x, Constant):
        return "literal" if x.ndim == 0 else "const"
    return "arg"


def _mode(an: Analysis, node: Apply, var: Variable, is_output: bool) -> str:
    op = node.op
    uses = an.uses.get(var, [])
    if isinstance(op, (Reshape, ReshapeLike)) or isinstance(op, DimShuffle) and \
            is_alias_dimshuffle(op):
        return "alias" if an.mode[node.inputs[0]] in ADDRESSABLE else "buffer"
    if is_output:
        return "buffer"
    if isinstance(op, DimShuffle):
        src_mode = an.mode[node.inputs[0]]
        for client, _ in uses:
            if isinstance(client.op, VALUE_CONSUMERS):
                continue
            if (isinstance(client.op, MatMul) and is_transpose2d(op)
                    and src_mode in ADDRESSABLE):
                continue
            return "buffer"
        return "view"
    if isinstance(op, CHEAP):
        return "inline" if all(isinstance(c.op, VALUE_CONSUMERS) for c, _ in uses) else "buffer"
    if isinstance(op, INLINABLE):
        if len(uses) != 1:
            return "buffer"
        client, index = uses[0]
        if not isinstance(client.op, FUSING_CONSUMERS):
            return "buffer"
        space = client.inputs[0].shape if isinstance(client.op, Reduce) else \
            client.outputs[0].shape
        if var.ndim == 0 or tuple(var.shape) == tuple(space):
            return "inline"
        return "buffer"
    return "buffer"


def _members(an: Analysis, node: Apply) -> list[Apply]:
    """The graph nodes computed by the kernel of ``node`` (itself plus inlined producers)."""
    out, stack = [node], list(node.inputs)
    while stack:
        x = stack.pop()
        if x.owner is not None and an.mode.get(x) in ("inline", "view") and x.owner not in out:
            out.append(x.owner)
            stack.extend(x.owner.inputs)
    return out


def is_shared(var: Variable) -> bool:
    return isinstance(var, SharedVariable)


#: ops whose buffered result is computed by a plain elementwise loop (groupable)
_GROUPABLE = (Elemwise, Cast, DropoutMask, Size, Arange, OneHot)


def group_kernels(an: Analysis) -> list[list[Variable]]:
    """Runs of adjacent elementwise kernels of one static shape, to share one loop nest.

    A later member may read an earlier one only at the same index (through elementwise
    nodes of that shape): the value is then complete when it is read.
    """
    groups: list[list[Variable]] = []
    for var in an.kernels:
        last = groups[-1] if groups else None
        if last is not None and _can_join(an, last, var):
            last.append(var)
        elif (last is not None and var.ndim == 0 and last[0].ndim > 0
              and not _reads_any(an, var, set(last))):
            # a scalar (e.g. Adam's bias corrections) computed between two members of a
            # group: hoist it so the group stays one loop
            groups.insert(len(groups) - 1, [var])
        else:
            groups.append([var])
    return groups


def _reads_any(an: Analysis, var: Variable, members: set) -> bool:
    stack = [var.owner]
    while stack:
        node = stack.pop()
        for x in node.inputs:
            if an.root(x) in members or x in members:
                return True
            if an.mode.get(x) in ("inline", "view"):
                stack.append(x.owner)
    return False


def _can_join(an: Analysis, group: list[Variable], var: Variable) -> bool:
    first = group[0]
    if not (isinstance(first.owner.op, _GROUPABLE) and isinstance(var.owner.op, _GROUPABLE)):
        return False
    shape = tuple(first.shape)
    if tuple(var.shape) != shape or any(d is None for d in shape):
        return False
    members = set(group)
    stack = [var.owner]
    while stack:
        node = stack.pop()
        for i, x in enumerate(node.inputs):
            if shape_only(node.op, i):
                continue
            if x in members:
                if not (isinstance(node.op, (Elemwise, Cast)) and
                        tuple(node.outputs[0].shape) == shape and tuple(x.shape) == shape):
                    return False
            elif an.mode.get(x) in ("inline", "view"):
                stack.append(x.owner)
    return True
