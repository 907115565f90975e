"""Pictures of a graph: ``sg.render`` draws it through Graphviz (.svg, .png, .pdf or .dot).

Where it fits: like ``symgraph.printing`` and ``symgraph.export`` it reads the user's graph
(a Function's outputs and updates, or the graph the rewrites made of them) and never
changes it; it shares their roles (input, parameter, constant, forward, gradient,
update), op labels and ``DOT_STYLES``. What it adds is layout for humans:

* ``view="ops"`` -- every node, styled by role, clustered by ``sg.name_scope`` (a model's
  layer names; ``a/b`` nests), the nodes each ``grad`` call added in a dashed
  compartment of their forward node's scope, edges labelled with shapes, and a legend.
* ``view="layers"`` -- one cluster per scope with a forward box and a gradient box side
  by side; unscoped nodes go to "loss" (forward and gradient) and "updates".

Repeated structure is drawn once (``collapse=True``, ``symgraph.render_collapse`` finds
it): a run of equal sibling scopes (``dense_2`` ... ``dense_100``) or of loop iterations
(the same source lines) keeps its first and last unit and becomes one block in between,
"×97 like dense_2", one node per part (forward, gradient, update) whose edges in and out
carry the shapes and counts, and a self-loop the links from one unit to the next.

Then a graph over ``max_nodes`` keeps its first nodes in topological order (inputs,
forward, then gradient and update arithmetic; a block counts one a part) and replaces the
rest by one note naming how many were left out, so a 10,000-node chain still renders in
a second. The Python package
``graphviz`` builds the DOT text; the ``dot`` program draws it. Without ``dot`` the DOT
text is written next to the requested file and ``GraphvizNotFound`` says how to install it.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from symgraph import shapes as sh
from symgraph.export import DOT_STYLES
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
from symgraph.render_collapse import Block

if TYPE_CHECKING:
    import graphviz

__all__ = ["GraphvizNotFound", "render", "render_source"]

#: Output formats drawn by ``dot`` (by the path's extension); .dot and .gv write the text.
FORMATS = ("svg", "png", "pdf")
TEXT_FORMATS = ("dot", "gv")
VIEWS = ("ops", "layers", "kernels", "profile")
#: Longest line of a node label; longer text is cut with an ellipsis.
LABEL_LIMIT = 36
#: Ops whose edges need no input position (their inputs commute).
SYMMETRIC_OPS = frozenset({"add", "mul", "maximum", "minimum", "equal", "not_equal",
                           "logical_and", "logical_or"})
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
INSTALL_HINT = ("install Graphviz's dot program: `apt-get install graphviz` (Debian/Ubuntu), "
                "`brew install graphviz` (macOS) or `conda install -c conda-forge graphviz`")


class GraphvizNotFound(RuntimeError):
    """The ``dot`` program is not on PATH; the DOT text was written to ``dot_path``."""

    def __init__(self, message: str, dot_path: str):
        super().__init__(message)
        self.dot_path = dot_path


# --------------------------------------------------------------------------- labels


def _dot_lines(text: str) -> str:
    """Line breaks as DOT's ``\\n`` escape (the graphviz package passes text through)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _cap(text: str, limit: int = LABEL_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shape_text(var: Variable) -> str:
    return sh.format_shape(var.shape) if var.shape else "scalar"


def _node_label(var: Variable) -> str:
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
    return "\n".join(_cap(line) for line in lines)


# --------------------------------------------------------------------------- the graph read


class _Graph:
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
        self.scope = {v.id: self._scope_of(v, scopes) for v in reached}
        calls: dict[object, int] = {}
        for node in nodes:
            if node.grad_call is not None and node.grad_call not in calls:
                calls[node.grad_call] = len(calls) + 1
        self.grad_calls = calls
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
        from symgraph.render_collapse import find_blocks

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

    @staticmethod
    def _scope_of(var: Variable, scopes: set[str]) -> str | None:
        if var.owner is not None:
            return var.owner.scope
        # a layer's weights are named "<layer>/W": they belong in the layer's box
        if var.name and "/" in var.name:
            prefix = var.name.rsplit("/", 1)[0]
            if prefix in scopes:
                return prefix
        return None

    def grad_call_label(self, call: object) -> str:
        from symgraph.grad import _cost_label  # the numerator grad wrote into d(...)/d(...)

        cost = getattr(call, "cost", None)
        number = self.grad_calls[call]
        head = "gradient" if len(self.grad_calls) == 1 else f"gradient {number}"
        return head + ("" if cost is None else f" of {_cap(_cost_label(cost)[0], 24)}")

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
        return _dot_lines(f"{len(self.elided)} of {self.total} nodes elided\n"
                          f"(max_nodes={self.max_nodes}):\n{detail}")


# --------------------------------------------------------------------------- ops view


def _digraph(name: str, rankdir: str) -> graphviz.Digraph:
    try:
        import graphviz
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("sg.render needs the Python package graphviz: "
                          "`pip install graphviz`") from exc
    g = graphviz.Digraph(name)
    g.attr(rankdir=rankdir, fontname="Helvetica", nodesep="0.25",
           ranksep="0.35", compound="true")
    g.attr("node", fontname="Helvetica", fontsize="10", margin="0.08,0.03", height="0.3")
    g.attr("edge", fontname="Helvetica", fontsize="8", color="#546e7a", fontcolor="#37474f",
           arrowsize="0.6")
    return g


def _legend(g: graphviz.Digraph, roles: Sequence[str], update_target: bool = False,
            repeated: bool = False) -> None:
    """One compact table node (a cluster of nodes would stretch over the graph's ranks)."""
    from html import escape

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


class _Clusters:
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
                sub.attr(label=label, **attrs)
                self.emit(sub, child, labels)


def _scope_key(scope: str | None, labels: dict[tuple, tuple[str, dict]]) -> tuple:
    """The cluster path of a scope (``a/b`` -> ("a", "b")), its labels registered."""
    if not scope:
        return ()
    parts = scope.split("/")
    for depth in range(1, len(parts) + 1):
        labels[tuple(parts[:depth])] = (parts[depth - 1], SCOPE_CLUSTER)
    return tuple(parts)


def _grad_key(graph: _Graph, key: tuple, var: Variable,
              labels: dict[tuple, tuple[str, dict]]) -> tuple:
    """``key`` extended by the compartment of ``var``'s ``grad`` call, if it has one."""
    call = var.owner.grad_call if var.owner is not None else None
    if call is None:
        return key
    call_key = key + (f"grad{graph.grad_calls[call]}",)
    labels[call_key] = (graph.grad_call_label(call), GRADIENT_CLUSTER)
    return call_key


def _ops_view(graph: _Graph, g: graphviz.Digraph) -> None:
    from symgraph.export import dot_quote

    def statement(name: str, attrs: dict) -> str:
        body = ", ".join(f"{k}={dot_quote(str(v))}" for k, v in attrs.items())
        return f"\t{name} [{body}]\n"

    clusters = _Clusters()
    labels: dict[tuple, tuple[str, dict]] = {}
    for item in graph.items:
        if isinstance(item, Block):
            _block_statements(graph, item, clusters, labels, statement)
            continue
        var = item
        role = graph.role[var.id]
        attrs = dict(DOT_STYLES[role])
        attrs.update(label=_node_label(var), **{"class": role})
        if var.id in graph.output_ids:
            attrs["peripheries"] = "2"
        tooltip = var.site and str(var.site)
        if var.owner is not None and var.owner.grad_of is not None:
            tooltip = f"grad of {op_name(var.owner.grad_of.op)}" + (
                f" created at {var.owner.grad_of.site}" if var.owner.grad_of.site else "")
        if tooltip:
            attrs["tooltip"] = tooltip
        key = _grad_key(graph, _scope_key(graph.scope[var.id], labels), var, labels)
        clusters.add(key, statement(f"v{var.id}", attrs))
    clusters.emit(g, (), labels)

    carried: dict[tuple[str, str], dict[int, Variable]] = defaultdict(dict)
    dst_role: dict[tuple[str, str], str] = {}
    for inp, out, index in graph.edges():
        src, dst = graph.endpoint(inp), graph.endpoint(out)
        if src is None or dst is None:
            continue
        if src[0] == "r" or dst[0] == "r":
            block = graph.block_of.get(inp.id)
            if src == dst and block.unit_of[inp.id] == block.unit_of[out.id]:
                continue  # inside one unit; what is left in a block links unit k to k + 1
            carried[(src, dst)][inp.id] = inp
            if dst_role.get((src, dst)) != "gradient":
                dst_role[(src, dst)] = graph.role[out.id]
            continue
        # the position matters only where the op is not symmetric in its inputs
        symmetric = op_name(out.owner.op) in SYMMETRIC_OPS
        label = _shape_text(inp) if index is None or symmetric else (
            f"{index}: {_shape_text(inp)}")
        attrs = {"label": label}
        if graph.role[out.id] == "gradient":
            attrs["color"] = "#d84315"
        g.edge(src, dst, **attrs)
    for (src, dst), tensors in carried.items():
        label = _carried_label(list(tensors.values())) if src != dst else f"×{len(tensors)}"
        attrs = {"label": label, "penwidth": "1.6"}
        if dst_role[(src, dst)] == "gradient":
            attrs["color"] = "#d84315"
        elif dst_role[(src, dst)] == "forward" and src != dst:
            attrs["weight"] = "8"  # keep the chain through a block straight
        elif dst_role[(src, dst)] == "update" and dst[0] == "r" and src != dst:
            # a block of update arithmetic reads every layer's weights and gradients;
            # ranking it by all of them made dot fail ("trouble in init_rank")
            attrs["constraint"] = "false"
        g.edge(src, dst, **attrs)
    block_targets: dict[str, int] = Counter()
    for k, (target, expr) in enumerate(graph.pairs):
        end = graph.endpoint(expr)
        if end is None:
            continue
        if end[0] == "r":
            block_targets[end] += 1
            continue
        g.node(f"u{k}", f"{_cap(target.name or '<unnamed>')} (new)", **UPDATE_TARGET_STYLE,
               **{"class": "update_target"})
        g.edge(end, f"u{k}", style="dashed", color="#5e35b1", label="update")
    for end, count in block_targets.items():
        g.node(f"{end}_new", f"{count} parameters (new)", **UPDATE_TARGET_STYLE,
               **{"class": "update_target"})
        g.edge(end, f"{end}_new", style="dashed", color="#5e35b1", label=f"update ×{count}")
    _elision(graph, g)
    roles = [r for r in DOT_STYLES if r in set(graph.role.values())]
    _legend(g, roles, update_target=bool(graph.pairs), repeated=bool(graph.blocks))


def _block_statements(graph: _Graph, block: Block, clusters: _Clusters,
                      labels: dict[tuple, tuple[str, dict]], statement) -> None:
    """One node per part of ``block``: a scope block is a cluster of its own, like a layer;
    a block of loop iterations sits where its nodes would (their scope, their compartment)."""
    for part in dict.fromkeys(graph.part_of[v.id] for v in block.members):
        members = graph.parts[part]
        head = next((v for v in members if v.owner is not None), members[0])
        key = _scope_key(block.scope, labels)
        if block.kind == "scope":
            key += (("block", block.number),)  # a tuple: never equal to a scope name
            labels[key] = (_cap(block.title, 2 * LABEL_LIMIT), BLOCK_CLUSTER)
        key = _grad_key(graph, key, head, labels)
        clusters.add(key, statement(part, _block_node(graph, block, part, members, "ops")))


def _carried_label(tensors: list[Variable]) -> str:
    """What an edge into or out of a block carries: ``(batch, 16)``, ``(16, 16) ×97``."""
    shapes = Counter(_shape_text(v) for v in tensors)
    if len(shapes) > 2:
        return f"{len(tensors)} tensors"
    return _cap(", ".join(s if n == 1 else f"{s} ×{n}" for s, n in shapes.items()))


def _block_node(graph: _Graph, block: Block, part: str, members: list[Variable],
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
    weights = [v for v in members if v.owner is None and block.unit_of[v.id] == 0
               and graph.role[v.id] == "parameter"]
    if weights:
        text = ", ".join(f"{_param_short(w)} {sh.format_shape(w.shape)}" for w in weights)
        lines.extend(_wrap(text, max_lines=2))
    counts = Counter(op_name(v.owner.op) for v in ops)
    per_unit = [(name, n // block.count) for name, n in counts.items()]
    lines.extend(_wrap(", ".join(f"{name}×{n}" if n > 1 else name for name, n in per_unit)))
    style = {**DOT_STYLES[role], "shape": "box3d", "style": "filled"}
    tip = (f"{block.count} repeated units ({block.title}), each drawn as {block.like}")
    return {**style, "label": "\n".join(_cap(ln) for ln in lines),
            "tooltip": tip, "class": f"{role} repeated"}


def _param_short(var: Variable) -> str:
    """``dense_7/W`` -> ``W``, ``W7`` -> ``W``: the name without what differs per unit."""
    import re

    short = re.sub(r"[_\d]+$", "", (var.name or "").rsplit("/", 1)[-1])
    return short or "weight"


def _elision(graph: _Graph, g: graphviz.Digraph) -> None:
    if not graph.elided:
        return
    g.node("elided", graph.elided_note(), **NOTE_STYLE, **{"class": "elided"})
    elided_ids = {v.id for v in graph.elided}
    feeding: dict[str, None] = {}
    for inp, out, _ in graph.edges():
        end = graph.endpoint(inp)
        if end is not None and out.id in elided_ids:
            feeding[end] = None
    for end in list(feeding)[:12]:  # a few arrows show where the cut is, not every one
        g.edge(end, "elided", style="dotted", color="#9e9d24")


# --------------------------------------------------------------------------- layers view


def _group_of(graph: _Graph, var: Variable) -> tuple[str, str] | None:
    """(box, side) for the layers view: side is "forward" or "gradient"; None: not drawn."""
    role = graph.role[var.id]
    if role == "constant":
        return None
    if role == "input":
        return (f"input {var.name or var.id}", "input")
    scope = graph.scope[var.id]
    if role == "parameter" and var.id in graph.block_of:
        # a weight a block owns goes where the block's first reader of it goes
        reader = next((v for v in graph.parts[graph.part_of[var.id]] if v.owner is not None),
                      None)
        if reader is not None:
            return _group_of(graph, reader)
    if role == "parameter" and scope is None:
        # an unscoped weight goes with the forward op that reads it; the optimizer's
        # learning rate and step counter, read only by update arithmetic, with the updates
        users = graph.forward_users.get(var.id)
        if not users:
            return ("updates", "update")
        var, scope = users[0], graph.scope[users[0].id]
    block = graph.block_of.get(var.id)
    if block is not None and block.kind == "scope" and role != "update":
        # repeated layers are one box pair (a block of loop iterations stays in its box)
        return (block.title, "gradient" if role == "gradient" else "forward")
    if role == "update":
        return ("updates", "update")
    side = "gradient" if role == "gradient" else "forward"
    return (scope or "loss", side)


def _layers_view(graph: _Graph, g: graphviz.Digraph) -> None:
    groups: dict[tuple[str, str], list[Variable]] = defaultdict(list)
    block_box: dict[str, Block] = {}
    for var in graph.shown():
        key = _group_of(graph, var)
        if key is not None:
            groups[key].append(var)
            block = graph.block_of.get(var.id)
            if block is not None and key[0] == block.title:
                block_box[key[0]] = block
    box_id = {key: f"b{i}" for i, key in enumerate(groups)}
    boxes_of: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for box, side in groups:
        boxes_of[box].append((box, side))

    def describe(key: tuple[str, str], members: list[Variable]) -> str:
        box, side = key
        if side == "input":
            var = members[0]
            return _dot_lines(f"{var.name or 'input'}\n{var.type}")
        params = [v for v in members if graph.role[v.id] == "parameter"]
        ops = Counter(op_name(v.owner.op) for v in members if v.owner is not None)
        # the cluster is labelled with the layer; the gradient box says whose gradient it is
        lines = [f"∂ {box}"] if side == "gradient" else []
        if params and side == "forward":
            for p in params[:4]:
                lines.append(_cap(f"{p.name.rsplit('/', 1)[-1]} {sh.format_shape(p.shape)}"))
            if len(params) > 4:
                lines.append(f"+{len(params) - 4} more weights")
        op_text = ", ".join(f"{name}×{n}" if n > 1 else name for name, n in ops.most_common())
        if op_text:
            lines.extend(_wrap(op_text))
        if side == "update" and graph.pairs:
            lines.append(f"{len(graph.pairs)} parameters updated")
        if not lines:
            lines.append(box)
        return _dot_lines("\n".join(lines))

    for box, keys in boxes_of.items():
        if keys[0][1] == "input":
            key = keys[0]
            g.node(box_id[key], describe(key, groups[key]), **DOT_STYLES["input"],
                   **{"class": "input"})
            continue
        with g.subgraph(name=f"cluster_{box_id[keys[0]]}") as sub:
            sub.attr(label=box, **SCOPE_CLUSTER)
            if box in block_box:
                sub.attr(**BLOCK_CLUSTER)
            for key in keys:
                if box in block_box:
                    attrs = _block_node(graph, block_box[box], box_id[key], groups[key], "layers")
                    sub.node(box_id[key], **{**attrs, "label": _dot_lines(attrs["label"])})
                    continue
                role = {"forward": "forward", "gradient": "gradient", "update": "update"}[key[1]]
                style = {**DOT_STYLES[role], "shape": "box", "style": "filled,rounded"}
                sub.node(box_id[key], describe(key, groups[key]), **style, **{"class": role})
            if len(keys) > 1:
                with sub.subgraph() as same:
                    same.attr(rank="same")
                    for key in keys:
                        same.node(box_id[key])

    flows: dict[tuple[str, str], list[Variable]] = defaultdict(list)
    chained: dict[str, dict[int, Variable]] = defaultdict(dict)  # unit k -> k + 1 in a block
    for inp, out, _ in graph.edges():
        if graph.endpoint(inp) is None or graph.endpoint(out) is None:
            continue
        src, dst = _group_of(graph, inp), _group_of(graph, out)
        if src is None or dst is None:
            continue
        if src == dst:
            block = block_box.get(src[0])
            if block is not None and block.unit_of[inp.id] != block.unit_of[out.id]:
                chained[box_id[src]][inp.id] = inp
            continue
        if inp not in flows[(box_id[src], box_id[dst])]:
            flows[(box_id[src], box_id[dst])].append(inp)
    box_side = {b: key[1] for key, b in box_id.items()}
    for (src, dst), carried in flows.items():
        label = _shape_text(carried[0]) if len(carried) == 1 else _carried_label(carried)
        attrs = {"label": label}
        dst_side, src_side = box_side[dst], box_side[src]
        if dst_side == "gradient":
            attrs["color"] = "#d84315"
            if src_side == "forward":
                # activations kept for the backward pass: drawn, but they do not set ranks
                attrs.update(style="dotted", constraint="false")
            elif src_side == "gradient":
                # the gradient flows back up beside the forward boxes: ranks come from the
                # forward pass, or each layer's rank=same pair would make a cycle
                attrs["constraint"] = "false"
        if dst_side == "update":
            attrs.update(color="#5e35b1")
        g.edge(src, dst, **attrs)
    for box, tensors in chained.items():
        color = "#d84315" if box_side[box] == "gradient" else "#546e7a"
        g.edge(box, box, label=f"×{len(tensors)}", color=color, penwidth="1.6")
    _elision_boxes(graph, g)
    _legend(g, [r for r in ("input", "forward", "gradient", "update")
                if any(k[1] == r for k in groups)], repeated=bool(block_box))


def _elision_boxes(graph: _Graph, g: graphviz.Digraph) -> None:
    if graph.elided:
        g.node("elided", graph.elided_note(), **NOTE_STYLE, **{"class": "elided"})


def _wrap(text: str, width: int = LABEL_LIMIT, max_lines: int = 3) -> list[str]:
    lines: list[str] = []
    for word in text.split(", "):
        if lines and len(lines[-1]) + len(word) + 2 <= width:
            lines[-1] += ", " + word
        else:
            lines.append(word)
    return lines if len(lines) <= max_lines else lines[: max_lines - 1] + [
        _cap(lines[max_lines - 1] + ", …")]


# --------------------------------------------------------------------------- entry points


def render_source(vars_or_function: GraphLike, view: str = "ops", *, rewritten: bool = False,
                  max_nodes: int | None = 400, updates: UpdatesLike = None,
                  rankdir: str = "TB", collapse: bool = True,
                  profile: Sequence[dict] | None = None) -> str:
    """The DOT text ``render`` would draw (for a notebook's own display, or a diff).

    ``updates`` and ``collapse`` apply to the views "ops" and "layers"; ``profile`` to
    "kernels" and "profile" (drawn by ``symgraph.kernel_view``).

    >>> text = sg.render_source(f, view="layers")   # 'digraph ...'
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}: expected one of {', '.join(VIEWS)}")
    if view in ("kernels", "profile"):
        from symgraph.kernel_view import kernel_source

        return kernel_source(vars_or_function, view, rewritten=rewritten, max_nodes=max_nodes,
                             rankdir=rankdir, profile=profile)
    graph = _Graph(vars_or_function, updates, rewritten, max_nodes, collapse=collapse)
    g = _digraph(getattr(vars_or_function, "name", None) or "symgraph", rankdir)
    drawn = len(graph.kept) + len(graph.parts)
    if view == "layers" or drawn <= NEWRANK_LIMIT:
        g.attr(newrank="true")
    (_ops_view if view == "ops" else _layers_view)(graph, g)
    return g.source


def render(vars_or_function: GraphLike, path: str | os.PathLike, view: str = "ops", *,
           rewritten: bool = False, max_nodes: int | None = 400, updates: UpdatesLike = None,
           view_file: bool = False, rankdir: str = "TB", collapse: bool = True,
           profile: Sequence[dict] | None = None, dpi: int = 110) -> str:
    """Draw the graph to ``path`` (.svg, .png, .pdf through ``dot``; .dot/.gv: DOT text).

    Pictures show what ``grad`` added and which layer made each node, which the text
    views cannot. ``vars_or_function`` is a Variable, a list, or a Function (its outputs
    and updates; ``rewritten=True``: the graph after its rewrites). ``max_nodes=None``
    draws everything; ``collapse=False`` draws repeated layers one by one instead of as
    one "×N" block. Views: ``"ops"``, ``"layers"``, and for a compiled function
    ``"kernels"`` (its fused kernels around the user's nodes) and ``"profile"`` (kernels
    shaded by ``profile=f.profile(...)``, by default the function's last profile; see
    ``symgraph.kernel_view``). ``dpi`` sets a PNG's resolution (110: readable text without
    multi-megabyte files). Returns the path written.

    >>> sg.render(model.train_function, "train.svg", view="layers")
    'train.svg'
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in FORMATS + TEXT_FORMATS:
        raise ValueError(f"cannot tell the format of {path!r}: end it in "
                         f"{', '.join('.' + f for f in FORMATS + TEXT_FORMATS)}")
    if not isinstance(dpi, int) or not 20 <= dpi <= 600:
        raise ValueError(f"dpi must be an int from 20 to 600, got {dpi!r}")
    source = render_source(vars_or_function, view, rewritten=rewritten, max_nodes=max_nodes,
                           updates=updates, rankdir=rankdir, collapse=collapse,
                           profile=profile)
    if ext in TEXT_FORMATS:
        _write_text(path, source)
        return path
    if shutil.which("dot") is None:
        dot_path = os.path.splitext(path)[0] + ".dot"
        _write_text(dot_path, source)
        raise GraphvizNotFound(f"cannot draw {path}: Graphviz's `dot` is not on PATH; "
                               f"{INSTALL_HINT}. The DOT text is in {dot_path}", dot_path)
    import subprocess

    done = subprocess.run(["dot", f"-T{ext}", *([f"-Gdpi={dpi}"] if ext == "png" else [])],
                          input=source.encode(), capture_output=True, check=False)
    if done.returncode != 0:
        # dot can print thousands of lines (its rank dump); the first few say what failed
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        detail = "\n".join(lines[:5]) + (f"\n... ({len(lines) - 5} more lines)"
                                          if len(lines) > 5 else "")
        raise RuntimeError(f"dot failed drawing {path} (exit {done.returncode}); try a "
                           f"smaller max_nodes or the .dot output:\n{detail}")
    with open(path, "wb") as handle:
        handle.write(done.stdout)
    if view_file:
        import graphviz

        graphviz.view(path)
    return path


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
