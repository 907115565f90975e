"""The shared pieces of the graph pictures: the graph as drawn, labels, clusters, legend.

Where it fits: ``symgraph.rendering`` (``sg.render``) draws three kinds of view -- the ops
and layers views (``symgraph.render_views``) and the kernels/profile views
(``symgraph.kernel_view``). All of them read the user's graph the same way
(``DrawnGraph``: each reached variable's role, scope and ``grad`` call, repeated units
collapsed into blocks by ``symgraph.render_collapse``, capped at ``max_nodes``) and label
it the same way; those shared pieces live here, below every view, so the views and the
entry points import them without a cycle.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

from symgraph import shapes as sh
from symgraph.export import DOT_STYLES
from symgraph.grad import cost_label
from symgraph.graph import Constant, Variable
from symgraph.printing import (
    GraphLike,
    UpdatesLike,
    _collect,
    _reached,
    _update_only,
    constant_text,
    op_label,
    op_name,
    role_of,
)
from symgraph.render_collapse import Block, find_blocks

if TYPE_CHECKING:
    import graphviz

__all__ = ["BLOCK_CLUSTER", "GRADIENT_CLUSTER", "LABEL_LIMIT", "NEWRANK_LIMIT", "NOTE_STYLE",
           "SCOPE_CLUSTER", "UPDATE_TARGET_STYLE", "Clusters", "DrawnGraph", "block_node",
           "cap", "carried_label", "dot_lines", "grad_key", "legend", "new_digraph",
           "node_label", "param_short", "scope_key", "shape_text", "unit_in_block", "wrap"]

#: Longest line of a node label; longer text is cut with an ellipsis.
LABEL_LIMIT = 36
#: Up to this many drawn nodes the ops view ranks clusters globally (dot's newrank: inputs
#: on top, gradients below, updates last); dot's time for it grows steeply (5 s at 400
#: nodes), so larger graphs use the per-cluster ranking (0.1 s at 400, 0.5 s at 1,200).
NEWRANK_LIMIT = 200
#: Fill and border of the dashed compartment holding one ``grad`` call's nodes.
GRADIENT_CLUSTER = {"style": "dashed,rounded,filled", "color": "#d84315",
                    "fillcolor": "#fff3ef", "fontcolor": "#bf360c"}
SCOPE_CLUSTER = {"style": "rounded,filled", "color": "#607d8b", "fillcolor": "#f5f7f8",
                 "fontname": "Helvetica-Bold", "fontsize": "12"}
BLOCK_CLUSTER = {**SCOPE_CLUSTER, "style": "rounded,filled,bold", "fillcolor": "#eceff1",
                 "penwidth": "2"}
NOTE_STYLE = {"shape": "note", "style": "filled", "fillcolor": "#fffde7", "color": "#9e9d24"}
UPDATE_TARGET_STYLE = {"shape": "box", "style": "dashed,rounded", "color": "#5e35b1"}


# --------------------------------------------------------------------------- labels


def dot_lines(text: str) -> str:
    """``text`` for a label the graphviz package quotes: backslashes doubled and line breaks
    as DOT's ``\\n`` (it passes both through: a trailing backslash ended the string), and
    never an HTML label (it reads ``<logits>`` as one: the name lost its brackets, and
    ``<p&q>`` made dot fail); ``&`` as ``&amp;``, since dot decodes entities (``R&amp;D``
    was drawn ``R&D``)."""
    import graphviz  # lazy: `import symgraph` must not import graphviz

    return graphviz.nohtml(text.replace("&", "&amp;").replace("\\", "\\\\")
                           .replace("\n", "\\n"))


def cap(text: str, limit: int = LABEL_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shape_text(var: Variable) -> str:
    return sh.format_shape(var.shape) if var.shape else "scalar"


def node_label(var: Variable) -> str:
    """Two or three short lines: what it is (op or name), its name, its dtype and shape."""
    if var.owner is None:
        first = constant_text(var) if isinstance(var, Constant) and not var.name else (
            var.name or "<unnamed>")
        lines = [first]
    else:
        lines = [op_label(var.owner) + (f" [{var.index}]" if len(var.owner.outputs) > 1 else "")]
        if var.name:
            lines.append(var.name)
    lines.append(str(var.type))
    return "\n".join(cap(line) for line in lines)


# --------------------------------------------------------------------------- the graph read


class DrawnGraph:
    """The reached graph with each variable's role, scope and ``grad`` call, capped.

    With ``collapse`` the repeated units become ``blocks``: ``kept`` holds the variables
    drawn one by one, ``block_of``/``part_of``/``parts`` map block members to the node
    drawing them, ``items`` is both in drawing order and ``endpoint`` says where an edge
    of a variable lands.
    """

    def __init__(self, outputs: GraphLike, updates: UpdatesLike, rewritten: bool,
                 max_nodes: int | None, collapse: bool = False):
        if max_nodes is not None and (not isinstance(max_nodes, int) or max_nodes < 1):
            raise ValueError(f"max_nodes must be a positive int or None, got {max_nodes!r}")
        if rewritten:
            if not (hasattr(outputs, "graph_outputs") and hasattr(outputs, "graph_updates")):
                raise TypeError("rewritten=True draws what a compiled sg.function made of its "
                                f"graph; got {type(outputs).__name__}, not a Function")
            targets = [t for t, _ in outputs.updates]
            outs, pairs, _ = _collect(list(outputs.graph_outputs), updates)
            pairs = list(zip(targets, outputs.graph_updates, strict=True)) + pairs
        else:
            outs, pairs, _ = _collect(outputs, updates)
        self.outputs, self.pairs = outs, pairs
        roots = outs + [e for _, e in pairs]
        nodes, _ = _reached(roots)
        update_only = _update_only(outs, pairs)
        # each leaf just before its first consumer, then the node's outputs, in topological
        # order: a cap keeps the start of the forward pass with its weights and drops the
        # tail (gradient, then update arithmetic)
        ordered: dict[int, Variable] = {v.id: v for v in roots if v.owner is None}
        for node in nodes:
            for var in (*node.inputs, *node.outputs):
                ordered.setdefault(var.id, var)
        reached = list(ordered.values())
        self.total = len(reached)
        self.role = {v.id: role_of(v, update_only) for v in reached}
        scopes = {n.scope for n in nodes if n.scope}
        self.scope: dict[int, str | None] = {}
        for v in reached:  # (topological: a node's inputs have their scopes)
            self.scope[v.id] = self._scope_of(v, scopes)
        # numbered in the order the user called grad (``number``), not the drawing order
        made = {node.grad_call for node in nodes if node.grad_call is not None}
        self.grad_calls: dict[object, int] = {
            call: k for k, call in enumerate(
                sorted(made, key=lambda call: call.number), 1)}
        self.nodes = nodes
        self.forward_users: dict[int, list[Variable]] = defaultdict(list)
        for node in nodes:
            for inp in node.inputs:
                if inp.owner is None and self.role[node.outputs[0].id] == "forward":
                    self.forward_users[inp.id].append(node.outputs[0])
        # repeated units become blocks (before the cap, so the cap counts what is drawn)
        self.blocks: list[Block] = []
        self.block_of: dict[int, Block] = {}
        self.part_of: dict[int, str] = {}  # block member id -> its drawn node's id
        self.parts: dict[str, list[Variable]] = {}  # that node's id -> its members
        items: list[Variable | Block] = reached
        if collapse:
            items = self._collapse(reached)
        kept_items = items if max_nodes is None else self._capped(items, max_nodes)
        self.items = kept_items  # what is drawn, in order: variables and blocks
        self.kept = [v for v in kept_items if isinstance(v, Variable)]
        self.blocks = [b for b in kept_items if isinstance(b, Block)]
        self.elided = [v for item in items[len(kept_items):]
                       for v in ([item] if isinstance(item, Variable) else item.members)]
        self.max_nodes = max_nodes
        self.kept_ids = {v.id for v in self.kept}
        kept_numbers = {b.number for b in self.blocks}
        self.block_of = {i: b for i, b in self.block_of.items() if b.number in kept_numbers}
        self.part_of = {i: p for i, p in self.part_of.items() if i in self.block_of}
        self.parts = {p: m for p, m in self.parts.items() if m[0].id in self.block_of}
        self.output_ids = {v.id for v in outs}

    def _collapse(self, reached: list[Variable]) -> list[Variable | Block]:
        """``reached`` with each block's members replaced by the block (where its first was)."""
        blocks = find_blocks(self.nodes, reached, self.role, self.scope, self.grad_calls)
        number = {v.id: b.number for b in blocks for v in b.members}
        readers: dict[int, Variable] = {}  # leaf id -> its first reader in the same block
        for node in self.nodes:
            out = node.outputs[0]
            for inp in node.inputs:
                if inp.owner is None and number.get(inp.id, -1) == number.get(out.id, -2):
                    readers.setdefault(inp.id, out)
        for block in blocks:
            for var in block.members:
                self.block_of[var.id] = block
                if var.owner is not None:
                    role = self.role[var.id]
                    side = {"gradient": "g", "update": "u"}.get(role, "f")
                    call = self.grad_calls.get(var.owner.grad_call, "")
                    self.part_of[var.id] = f"r{block.number}{side}{call}"
            for var in block.members:  # a leaf is drawn with its first reader in the block
                if var.owner is None:
                    reader = readers.get(var.id)
                    self.part_of[var.id] = (self.part_of[reader.id] if reader is not None
                                            else f"r{block.number}f")
            for var in block.members:
                self.parts.setdefault(self.part_of[var.id], []).append(var)
        items: list[Variable | Block] = []
        placed: set[int] = set()
        for var in reached:
            block = self.block_of.get(var.id)
            if block is None:
                items.append(var)
            elif block.number not in placed:
                placed.add(block.number)
                items.append(block)
        return items

    def _capped(self, items: list[Variable | Block], max_nodes: int) -> list[Variable | Block]:
        """The first items that fit in ``max_nodes`` drawn nodes (a block draws one a part)."""
        used = 0
        for count, item in enumerate(items):
            cost = 1 if isinstance(item, Variable) else len(
                {self.part_of[v.id] for v in item.members})
            if used + cost > max_nodes:
                return items[:count]
            used += cost
        return items

    def endpoint(self, var: Variable) -> str | None:
        """The drawn node standing for ``var``: its own, its block's part, or None (elided)."""
        if var.id in self.kept_ids:
            return f"v{var.id}"
        return self.part_of.get(var.id)

    def shown(self) -> list[Variable]:
        """Kept variables and the members of kept blocks."""
        return self.kept + [v for b in self.blocks for v in b.members]

    def _scope_of(self, var: Variable, scopes: set[str]) -> str | None:
        node = var.owner
        if node is not None:
            if node.scope is None and node.grad_call is not None and node.grad_of is None:
                # ``grad`` sums a weight's gradient parts (an RNN's weight read at every
                # step) with no forward node to tag them with: they belong to the layer
                # whose parts they add, not to the loss
                parts = {self.scope[i.id] for i in node.inputs if not isinstance(i, Constant)}
                if len(parts) == 1:
                    return parts.pop()
            return node.scope
        # a layer's weights are named "<layer>/W": they belong in the layer's box
        if var.name and "/" in var.name:
            prefix = var.name.rsplit("/", 1)[0]
            if prefix in scopes:
                return prefix
        return None

    def grad_call_label(self, call: object) -> str:
        cost = getattr(call, "cost", None)
        number = self.grad_calls[call]
        head = "gradient" if len(self.grad_calls) == 1 else f"gradient {number}"
        return head + ("" if cost is None else f" of {cap(cost_label(cost)[0], 24)}")

    def edges(self):
        """(input, output, position or None) for each kept input slot of each kept node."""
        for node in self.nodes:
            distinct = len({i.id for i in node.inputs}) > 1
            for out in node.outputs:
                for index, inp in enumerate(node.inputs):
                    yield inp, out, (index if distinct else None)

    def elided_note(self) -> str:
        counts = Counter(self.role[v.id] for v in self.elided)
        detail = ", ".join(f"{n} {role}" for role, n in counts.most_common())
        return dot_lines(f"{len(self.elided)} of {self.total} nodes elided\n"
                         f"(max_nodes={self.max_nodes}):\n{detail}")


# --------------------------------------------------------------------------- dot helpers


def new_digraph(name: str, rankdir: str) -> graphviz.Digraph:
    try:
        import graphviz  # lazy: `import symgraph` must not import graphviz
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("sg.render needs the Python package graphviz: "
                          "`pip install graphviz`") from exc
    g = graphviz.Digraph(dot_lines(name) if name else name)
    g.attr(rankdir=rankdir, fontname="Helvetica", nodesep="0.25",
           ranksep="0.35", compound="true")
    g.attr("node", fontname="Helvetica", fontsize="10", margin="0.08,0.03", height="0.3")
    g.attr("edge", fontname="Helvetica", fontsize="8", color="#546e7a", fontcolor="#37474f",
           arrowsize="0.6")
    return g


def legend(g: graphviz.Digraph, roles: Sequence[str], update_target: bool = False,
           repeated: bool = False) -> None:
    """One compact table node (a cluster of nodes would stretch over the graph's ranks)."""
    rows = []
    for role in roles:
        style = DOT_STYLES[role]
        rounded = "" if role in ("input", "parameter") else ' style="rounded"'
        rows.append(f'<tr><td bgcolor="{style["fillcolor"]}" border="1"{rounded}>'
                    f"{escape(role)}</td></tr>")
    if update_target:
        rows.append('<tr><td border="1" style="dashed" color="#5e35b1">updated parameter</td></tr>')
    if repeated:
        rows.append('<tr><td border="1">×N: N repeats drawn once</td></tr>')
    table = ('<<table border="0" cellborder="0" cellspacing="4" cellpadding="3">'
             '<tr><td><b>legend</b></td></tr>' + "".join(rows) + "</table>>")
    with g.subgraph(name="cluster_legend") as leg:
        leg.attr(label="", style="rounded", color="#b0bec5")
        leg.node("legend", table, shape="plaintext", fontsize="9", **{"class": "legend"})


class Clusters:
    """Nested ``subgraph cluster_...`` blocks: one per scope path, one per (scope, grad call)."""

    def __init__(self):
        self.children: dict[tuple, list[tuple]] = defaultdict(list)
        self.members: dict[tuple, list[str]] = defaultdict(list)
        self.names: dict[tuple, str] = {}  # unique: scopes "a_b" and "a/b" must not merge

    def add(self, key: tuple, statement: str):
        self.members[key].append(statement)
        while key:
            parent = key[:-1]
            if key not in self.children[parent]:
                self.children[parent].append(key)
            key = parent

    def emit(self, g: graphviz.Digraph, key: tuple, labels: dict[tuple, tuple[str, dict]]):
        for statement in self.members.get(key, []):
            g.body.append(statement)
        for child in self.children.get(key, []):
            label, attrs = labels[child]
            name = self.names.setdefault(child, f"cluster_{len(self.names)}")
            with g.subgraph(name=name) as sub:
                sub.attr(label=dot_lines(label), **attrs)
                self.emit(sub, child, labels)


def scope_key(scope: str | None, labels: dict[tuple, tuple[str, dict]]) -> tuple:
    """The cluster path of a scope (``a/b`` -> ("a", "b")), its labels registered."""
    if not scope:
        return ()
    parts = scope.split("/")
    for depth in range(1, len(parts) + 1):
        labels[tuple(parts[:depth])] = (parts[depth - 1], SCOPE_CLUSTER)
    return tuple(parts)


def grad_key(graph: DrawnGraph, key: tuple, var: Variable,
             labels: dict[tuple, tuple[str, dict]]) -> tuple:
    """``key`` extended by the compartment of ``var``'s ``grad`` call, if it has one."""
    call = var.owner.grad_call if var.owner is not None else None
    if call is None:
        return key
    call_key = key + (("grad", graph.grad_calls[call]),)  # a tuple: never a scope's name
    labels[call_key] = (graph.grad_call_label(call), GRADIENT_CLUSTER)
    return call_key


# --------------------------------------------------------------------------- blocks


def carried_label(tensors: list[Variable]) -> str:
    """What an edge into or out of a block carries: ``(batch, 16)``, ``(16, 16) ×97``."""
    shapes = Counter(shape_text(v) for v in tensors)
    if len(shapes) > 2:
        return f"{len(tensors)} tensors"
    return cap(", ".join(s if n == 1 else f"{s} ×{n}" for s, n in shapes.items()))


def block_node(graph: DrawnGraph, block: Block, part: str, members: list[Variable],
               view: str) -> dict[str, str]:
    """Attributes of the node drawing one part (forward, gradient...) of a block."""
    ops = [v for v in members if v.owner is not None]
    role = graph.role[ops[0].id] if ops else "forward"
    if block.kind == "scope":
        lines = [f"×{block.count} like {block.like}"]
    else:
        lines = [f"×{block.count} iterations", block.title]
    if role == "gradient" and view == "layers":
        lines[0] = "∂ " + lines[0]
    weights = [v for v in members if v.owner is None and unit_in_block(graph, block, v) == 0
               and graph.role[v.id] == "parameter"]
    if weights:
        text = ", ".join(f"{param_short(w)} {sh.format_shape(w.shape)}" for w in weights)
        lines.extend(wrap(text, max_lines=2))
    counts = Counter(op_name(v.owner.op) for v in ops)
    per_unit = [(name, n // block.count) for name, n in counts.items()]
    lines.extend(wrap(", ".join(f"{name}×{n}" if n > 1 else name for name, n in per_unit)))
    style = {**DOT_STYLES[role], "shape": "box3d", "style": "filled"}
    tip = (f"{block.count} repeated units ({block.title}), each drawn as {block.like}")
    return {**style, "label": "\n".join(cap(ln) for ln in lines),
            "tooltip": tip, "class": f"{role} repeated"}


def unit_in_block(graph: DrawnGraph, block: Block, var: Variable) -> int | None:
    """The unit of ``block`` that ``var`` belongs to: a member's own; for a weight the block
    does not own (the update arithmetic reads it too, so ``render_collapse`` leaves it out)
    but the layers view draws in the block's box, the unit of its first forward reader."""
    unit = block.unit_of.get(var.id)
    if unit is None and var.owner is None:
        readers = graph.forward_users.get(var.id)
        unit = block.unit_of.get(readers[0].id) if readers else None
    return unit


def param_short(var: Variable) -> str:
    """``dense_7/W`` -> ``W``, ``W7`` -> ``W``: the name without what differs per unit."""
    short = re.sub(r"[_\d]+$", "", (var.name or "").rsplit("/", 1)[-1])
    return short or "weight"


def wrap(text: str, width: int = LABEL_LIMIT, max_lines: int = 3) -> list[str]:
    lines: list[str] = []
    for word in text.split(", "):
        if lines and len(lines[-1]) + len(word) + 2 <= width:
            lines[-1] += ", " + word
        else:
            lines.append(word)
    return lines if len(lines) <= max_lines else lines[: max_lines - 1] + [
        cap(lines[max_lines - 1] + ", …")]
