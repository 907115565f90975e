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

In-place updates (:func:`plan_inplace`).  Why: double-buffered parameters cost a write into
a cold buffer per update, and plain SGD can only fold into the weight-gradient gemm
(``beta = 1, C = W``) when ``W`` is written where it lives.  A shared variable's value is a
buffer the program owns (``get_value`` copies, ``set_value`` replaces), so an update may write
into it when (a) every other reader of the old value runs before the writing kernel (update
kernels and what depends on them are ordered last; a kernel that reads the variable at another
index than the one it writes, an output or another update that is the old value, or a later
reader, forbids it); (b) no fallible kernel (integer-index bounds checks, one-hot label
checks; ``Lowering.fallible``) runs after the write (checks run before their kernel's main loop,
so one in the writing kernel's own loop is fine), so a failed call still changes no shared
variable.  ``Analysis.root`` then maps the
update expression to the variable's own buffer.  ``W - c * (A @ B)`` whose gemm result has no
other use is *folded*: one gemm with ``alpha = -c, beta = 1`` into ``W``; ``c`` is a 0-d literal
or a 0-d value read at run time (a shared learning rate, so a schedule changes it without
recompiling; see :func:`_sgd_fold`).
"""

from __future__ import annotations

from collections import Counter

from symgraph.graph import Apply, Constant, SharedVariable, Variable, toposort
from symgraph.ops import elemwise as ew

from .registry import aliases_input, facts, shape_only

__all__ = ["ADDRESSABLE", "Analysis", "analyse", "gemm_sources", "group_kernels", "inlinable",
           "is_matrix_transpose", "is_transpose2d", "kernel_reads", "pair_epilogues",
           "plan_inplace", "reads_only_at_own_index", "same_shape", "shape_only",
           "strided_matrices", "value_uses"]

#: modes whose values sit in memory with a C layout
ADDRESSABLE = ("arg", "const", "literal", "buffer", "alias")

#: the longest chain of inline (or view) producers one kernel computes; a longer one gets a
#: buffer every this many links.  Code generation walks such a chain recursively (~3.5
#: Python frames a link): the gradient of a weight read by each step of an unrolled LSTM is
#: a sum of one product per step, a chain of T adds, and T = 330 overflowed Python's
#: recursion limit of 1,000.  128 links take ~450 frames, and keep a GRU's T = 100 sum one
#: pointer table (``codegen.lower_sums``).
MAX_INLINE_DEPTH = 128


def is_transpose2d(op) -> bool:
    """A 2-d transpose (a view a BLAS call reads through its transpose flag)?"""
    return facts(op).view and getattr(op, "ndim_in", None) == 2 and \
        tuple(getattr(op, "order", ())) == (1, 0)


def is_matrix_transpose(op) -> bool:
    """A swap of the last two axes, the others in place (a 2-d transpose, or one of every
    matrix of a stack): a view a BLAS call reads through its transpose flag."""
    if not facts(op).view:
        return False
    n = getattr(op, "ndim_in", None)
    return n is not None and n >= 2 and \
        tuple(getattr(op, "order", ())) == (*range(n - 2), n - 1, n - 2)


def strided_matrices(op) -> bool:
    """A permutation of axes (no axis added or dropped) that keeps the last axis of its
    source as one of its last two: each matrix of the view is then a strided block of the
    source, rows (or, transposed, columns) contiguous, which BLAS and the generated loops
    read through a leading dimension.  Attention's heads are such views: (batch, length,
    heads, d) read as (batch, heads, length, d) and (batch, heads, d, length).  (A set, not
    ``sorted``: a dimshuffle that drops a length-1 axis and adds one, ``("x", 2, 0)``, has as
    many axes as its source but an ``"x"`` among them.)"""
    if not facts(op).view:
        return False
    n = getattr(op, "ndim_in", None)
    order = tuple(getattr(op, "order", ()))
    return n is not None and n >= 2 and len(order) == n and set(order) == set(range(n)) \
        and n - 1 in order[-2:]


def inlinable(op) -> bool:
    """Can the op's value be computed at any index inside another op's loop?"""
    rec = facts(op)
    return rec.inline is not None and not rec.view


class Analysis:
    """Modes of all variables and the kernels (buffered variables) in execution order.

    (A plain class, like the backend's other records: creating a dataclass costs ~0.3 ms of
    every process that imports the backend, a warm start's budget is 30 ms.)"""

    __slots__ = ("outputs", "nodes", "all_nodes", "mode", "uses", "kernels", "members",
                 "inplace", "folded", "epilogues")

    def __init__(self, outputs: list[Variable], nodes: list[Apply], all_nodes: list[Apply]):
        self.outputs, self.nodes, self.all_nodes = outputs, nodes, all_nodes
        self.mode: dict[Variable, str] = {}
        self.uses: dict[Variable, list[tuple[Apply, int]]] = {}
        self.kernels: list[Variable] = []
        self.members: dict[Variable, list[Apply]] = {}
        #: update expression -> the shared variable whose buffer it is written into
        self.inplace: dict[Variable, Variable] = {}
        #: folded SGD update expression -> (gemm result it absorbs, the 0-d scale c: a
        #: literal, or a variable whose value the kernel reads at run time)
        self.folded: dict[Variable, tuple[Variable, Variable]] = {}
        #: gemm result -> the elementwise kernels computed block by block after it, in one
        #: kernel (``codegen.epilogue_plan``)
        self.epilogues: dict[Variable, tuple[Variable, ...]] = {}

    def root(self, var: Variable) -> Variable:
        """The variable whose memory ``var`` lives in (follows aliases and in-place updates)."""
        while self.mode.get(var) == "alias":
            var = var.owner.inputs[0]
        return self.inplace.get(var, var)

    def base_root(self, var: Variable) -> Variable:
        """Like :meth:`root` but ignoring in-place updates."""
        while self.mode.get(var) == "alias":
            var = var.owner.inputs[0]
        return var


def value_uses(node: Apply) -> list[tuple[int, Variable]]:
    return [(i, x) for i, x in enumerate(node.inputs) if not shape_only(node.op, i)]


def analyse(outputs: list[Variable], updates=None) -> Analysis:
    """Decide every variable's mode (see module docstring); with ``updates`` (pairs of shared
    variable and update expression, the expressions among ``outputs``), also which updates
    are written in place (:func:`plan_inplace`)."""
    all_nodes = toposort(outputs)
    # liveness: which nodes' values are needed (shape-only uses do not need the value)
    needed: set[Variable] = set(outputs)
    for node in reversed(all_nodes):
        if any(o in needed for o in node.outputs):
            for _, x in value_uses(node):
                needed.add(x)
    nodes = [n for n in all_nodes if any(o in needed for o in n.outputs)]
    an = Analysis(outputs=list(outputs), nodes=nodes, all_nodes=all_nodes)
    for node in nodes:
        for i, x in value_uses(node):
            an.uses.setdefault(x, []).append((node, i))
    out_set = set(outputs)
    for node in all_nodes:
        for x in node.inputs:
            if x.owner is None:
                an.mode[x] = _leaf_mode(x)
    for x in outputs:
        if x.owner is None:
            an.mode[x] = _leaf_mode(x)
    for var, _ in updates or ():  # a target the graph never reads (``{last_loss: loss}``)
        an.mode.setdefault(var, _leaf_mode(var))
    live = set(map(id, nodes))  # (``node not in nodes``, a list, made this quadratic)
    depth: dict[Variable, int] = {}  # links of inline/view producers up to a kernel's input
    for node in all_nodes:
        var = node.outputs[0]
        if id(node) not in live:
            an.mode[var] = "dead"
            continue
        an.mode[var] = mode = _mode(an, node, var, var in out_set)
        if mode in ("inline", "view"):
            depth[var] = 1 + max((depth.get(x, 0) for x in node.inputs), default=0)
            if mode == "inline" and depth[var] > MAX_INLINE_DEPTH:
                an.mode[var], depth[var] = "buffer", 0
    for node in nodes:
        var = node.outputs[0]
        if an.mode[var] == "buffer":
            an.kernels.append(var)
            an.members[var] = _members(an, node)
    if updates:
        plan_inplace(an, list(updates))
    return an


def _leaf_mode(x: Variable) -> str:
    if isinstance(x, Constant):
        return "literal" if x.ndim == 0 else "const"
    return "arg"


def _mode(an: Analysis, node: Apply, var: Variable, is_output: bool) -> str:
    op = node.op
    uses = an.uses.get(var, [])
    if aliases_input(op):
        return "alias" if an.mode[node.inputs[0]] in ADDRESSABLE else "buffer"
    if is_output:
        return "buffer"
    rec = facts(op)
    if rec.view:
        src_mode = an.mode[node.inputs[0]]
        for client, _ in uses:
            if facts(client.op).value_consumer:
                continue
            if (facts(client.op).transposed_operands and is_matrix_transpose(op)
                    and src_mode in ADDRESSABLE):
                continue
            if (facts(client.op).strided_operands and strided_matrices(op)
                    and src_mode in ADDRESSABLE):
                continue
            return "buffer"
        return "view"
    if rec.cheap:
        return "inline" if all(facts(c.op).value_consumer for c, _ in uses) else "buffer"
    if inlinable(op):
        if len(uses) != 1:
            return "buffer"
        client, index = uses[0]
        fuses = facts(client.op).fuses
        if fuses is None:
            return "buffer"
        space = client.inputs[0].shape if fuses == "input" else client.outputs[0].shape
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


def group_kernels(an: Analysis, epilogues: bool = True) -> list[list[Variable]]:
    """Runs of adjacent elementwise kernels of one static shape, to share one loop nest.

    A later member may read an earlier one only at the same index (through elementwise
    nodes of that shape): the value is then complete when it is read.  With ``epilogues``,
    a gemm of ``an.epilogues`` and the group after it are one (the gemm first).
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
    if epilogues and an.epilogues:
        return pair_epilogues(an, groups)[0]
    return groups


def _reads_any(an: Analysis, var: Variable, members: set) -> bool:
    stack = [var.owner]
    while stack:
        node = stack.pop()
        for x in node.inputs:
            # (base_root: through aliases but not in-place updates, whose root is the shared
            # variable, not the member: a hoisted scalar read an update's old value)
            if an.base_root(x) in members or x in members:
                return True
            if an.mode.get(x) in ("inline", "view"):
                stack.append(x.owner)
    return False


def _can_join(an: Analysis, group: list[Variable], var: Variable) -> bool:
    first = group[0]
    if first in an.folded or var in an.folded:  # a gemm, not a loop
        return False
    if not (inlinable(first.owner.op) and inlinable(var.owner.op)):
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
                if not (facts(node.op).fuses == "output" and
                        tuple(node.outputs[0].shape) == shape and tuple(x.shape) == shape):
                    return False
            elif an.base_root(x) in members:
                # a reshape of a member (an alias of its buffer), read through a transpose
                # at other elements than the loop writes: it read values not yet written
                return False
            elif an.mode.get(x) in ("inline", "view"):
                stack.append(x.owner)
    return True


# --------------------------------------------------------------------------- in-place updates


def _fallible(an: Analysis, kv: Variable) -> bool:
    """Does the kernel of ``kv`` check values at run time (``Lowering.fallible``: integer
    indices, one-hot labels)?  It may then fail after other kernels have run."""
    return any(facts(n.op).fallible for n in an.members[kv])


def kernel_reads(an: Analysis, kv: Variable) -> set:
    """Base roots whose values the kernel of ``kv`` reads."""
    out = set()
    for node in an.members[kv]:
        for _, x in value_uses(node):
            if an.mode.get(x) not in ("inline", "view"):
                out.add(an.base_root(x))
    return out


def same_shape(a, b) -> bool:
    return tuple(a.shape) == tuple(b.shape) and all(d is not None for d in a.shape)


def reads_only_at_own_index(an: Analysis, kv: Variable, var: Variable) -> bool:
    """Does the kernel of ``kv`` (shape of ``var``) read ``var`` only at the index it writes,
    through elementwise nodes of the full shape?  Then an in-place store is safe."""
    total = sum(1 for node in an.members[kv] for _, x in value_uses(node)
                if an.base_root(x) is var)
    ok, stack, seen = 0, [kv.owner], set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if not (facts(node.op).fuses == "output" and same_shape(node.outputs[0], var)):
            continue
        for _, x in value_uses(node):
            if x is var:
                ok += 1
            elif an.mode.get(x) == "inline" and x.owner in an.members[kv]:
                stack.append(x.owner)
    return ok == total


#: modes of a 0-d scale ``c`` whose value the folded kernel reads at run time, before its gemm
RUNTIME_SCALE_MODES = ("arg", "buffer", "alias", "inline")


def _sgd_fold(an: Analysis, expr: Variable, var: Variable):
    """``var - c * (A @ B)`` with a 2-d gemm used only here and a 0-d scale ``c`` of
    ``var``'s dtype: (gemm result, c), else None.

    ``c`` is a literal (then 0, NaN and inf are refused here: OpenBLAS returns early for
    ``alpha = 0`` and adds ``alpha * A_k @ B_k`` per block of the inner dimension, so neither
    propagates NaN/inf like ``W - c * (A @ B)``), or a value read at run time
    (:data:`RUNTIME_SCALE_MODES`: a shared variable or input, a scalar computed by an earlier
    kernel, or an elementwise scalar tree computed inside the folded kernel, e.g.
    ``lr * decay ** t``).  A runtime ``c`` is loaded once before the gemm, and the kernel
    takes the unfolded route when it is 0, NaN or inf
    (:func:`codegen.lowerings.lower_folded_sgd`).  It is the value of the step: the old value
    of a shared ``lr`` the same step updates, because :func:`plan_inplace` counts ``c``'s
    leaves among the folded kernel's reads (an in-place write of ``lr`` must then run after
    it, or ``lr`` is double-buffered)."""
    node = expr.owner
    if node.op != ew.sub:
        return None
    w, scaled = node.inputs
    if w is not var or an.mode.get(scaled) != "inline":
        return None
    mul = scaled.owner
    if mul.op != ew.mul:
        return None
    c, g = mul.inputs
    if g.ndim == 0 and c.ndim == 2:
        c, g = g, c
    if c.ndim != 0 or g.owner is None or not facts(g.owner.op).transposed_operands:
        return None
    mode = an.mode.get(c)
    if mode == "literal":
        scale = float(c.value)
        if scale == 0 or scale != scale or abs(scale) == float("inf"):  # see docstring
            return None
    elif mode not in RUNTIME_SCALE_MODES:
        return None
    dt = var.dtype
    if (an.mode.get(g) != "buffer" or len(an.uses.get(g, [])) != 1 or g in an.outputs
            or dt.name not in ("float32", "float64")
            or not all(x.dtype == dt for x in (c, g, scaled, expr))
            or not all(x.ndim == 2 for x in g.owner.inputs)
            or not same_shape(g, var) or not same_shape(expr, var)):
        return None
    for src in gemm_sources(an, g):
        if an.mode.get(src) not in ADDRESSABLE or an.base_root(src) is var:
            return None
    return g, c


def gemm_sources(an: Analysis, g: Variable) -> list[Variable]:
    """The variables whose memory a 2-d gemm ``g`` reads: each operand, or the source of a
    transposing view (read through BLAS's transpose flag)."""
    return [x.owner.inputs[0] if an.mode.get(x) == "view" and is_transpose2d(x.owner.op)
            else x for x in g.owner.inputs]


def plan_inplace(an: Analysis, updates: list) -> None:
    """Choose the updates written in place and order the kernels (see module docstring)."""
    count = Counter(e for _, e in updates)
    cand: dict[Variable, Variable] = {}
    for var, e in updates:
        if (isinstance(var, SharedVariable) and an.mode.get(e) == "buffer" and count[e] == 1
                and e.owner is not None and e.dtype == var.dtype and same_shape(e, var)
                and var not in cand.values()):
            cand[e] = var
    # the old value is an output or another update's value: it must survive the call
    for x in an.outputs:
        r = an.base_root(x)
        for e, var in list(cand.items()):
            if r is var and x is not e:
                del cand[e]
    folds = {e: f for e, var in cand.items() if (f := _sgd_fold(an, e, var)) is not None}
    base_kernels, base_members = list(an.kernels), dict(an.members)
    for _ in range(len(cand) + 1):
        fold = {e: folds[e] for e in cand if e in folds}
        gone = {g for g, _ in fold.values()}
        kernels = [kv for kv in base_kernels if kv not in gone]
        for g in gone:
            an.mode[g] = "inline"
        members = dict(base_members)
        for e in fold:
            members[e] = _members(an, e.owner)
        for g in gone:
            an.mode[g] = "buffer"
        saved = an.members, an.kernels, an.folded
        an.members, an.folded = members, fold
        reads = {kv: kernel_reads(an, kv) for kv in kernels}
        late: set = set()
        for kv in kernels:  # update kernels and everything that reads them go last
            if kv in cand or reads[kv] & late:
                late.add(kv)
        order = [kv for kv in kernels if kv not in late] + [kv for kv in kernels if kv in late]
        an.kernels = order
        groups = group_kernels(an)  # execution order (scalars may be hoisted)
        pos = {kv: n for n, kv in enumerate(kv for group in groups for kv in group)}
        group_of = {kv: group for group in groups for kv in group}
        # a kernel's checks run before its main loop (codegen.lower), so a fallible group of
        # kernels (one loop) fails before any member writes: count failures per group
        group_at = {kv: n for n, group in enumerate(groups) for kv in group}
        last_fallible = max((n for n, group in enumerate(groups)
                             if any(_fallible(an, kv) for kv in group)), default=-1)
        drop = set()
        for e, var in cand.items():
            if group_at[e] < last_fallible or any(
                    var in reads[kv] and pos[kv] > pos[e] for kv in order if kv is not e):
                drop.add(e)
            # one loop: every member reading var must read it at the index being written
            elif not all(reads_only_at_own_index(an, kv, var) for kv in group_of[e]
                         if var in reads[kv]):
                drop.add(e)
        an.members, an.kernels, an.folded = saved
        if not drop:
            break
        for e in drop:
            del cand[e]
    else:  # did not settle (cannot happen: each round drops one): no in-place updates
        return
    if not cand:
        return
    for g in gone:
        an.mode[g] = "inline"
    an.members = {kv: members[kv] for kv in order}
    an.kernels = order
    an.inplace = dict(cand)
    an.folded = fold


# --------------------------------------------------------------------------- gemm epilogues


def pair_epilogues(an: Analysis, groups: list[list[Variable]]
                    ) -> tuple[list[list[Variable]], set]:
    """``groups`` with each gemm of ``an.epilogues`` joined to its group, and the gemms so
    joined.  Scalar kernels between the two (Adam's bias corrections, hoisted before the
    group: :func:`group_kernels`) go before the gemm, which none of them reads."""
    merged: list[list[Variable]] = []
    paired = set()
    pending = None  # where in merged a gemm waits for its group
    for group in groups:
        if pending is not None and tuple(group) == an.epilogues[merged[pending][0]]:
            gemm = merged.pop(pending)
            merged.append(gemm + group)
            paired.add(gemm[0])
            pending = None
            continue
        if len(group) == 1 and group[0] in an.epilogues:
            pending = len(merged)
        elif pending is not None and not (len(group) == 1 and group[0].ndim == 0):
            pending = None
        merged.append(group)
    return merged, paired
