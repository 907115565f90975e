"""The graph for other tools: ``to_dot`` (Graphviz text) and ``to_networkx``.

Split from ``symgraph.printing`` (the text views, ``pprint`` and ``debugprint``),
whose collection of outputs, roles and op labels it shares. Like printing, it
reads a graph and never changes it; networkx is imported only when
``to_networkx`` is called.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from symgraph.graph import Constant, Variable
from symgraph.printing import (
    GraphLike,
    UpdatesLike,
    _collect,
    _leaf_line,
    _node_line,
    _reached,
    _update_only,
    constant_text,
    is_gradient,
    op_label,
    op_name,
    role_of,
)

if TYPE_CHECKING:
    import networkx

__all__ = ["DOT_STYLES", "dot_quote", "to_dot", "to_networkx"]


# --------------------------------------------------------------------------- to_dot

#: Graphviz styles per role: gradient nodes are salmon, forward ops light blue.
DOT_STYLES: dict[str, dict[str, str]] = {
    "input": {"shape": "box", "style": "filled", "fillcolor": "#c8e6c9"},
    "parameter": {"shape": "box", "style": "filled,bold", "fillcolor": "#fff59d"},
    "constant": {"shape": "plaintext", "style": "filled", "fillcolor": "#eeeeee"},
    "forward": {"shape": "ellipse", "style": "filled", "fillcolor": "#bbdefb"},
    "gradient": {"shape": "ellipse", "style": "filled", "fillcolor": "#ffab91"},
    "update": {"shape": "ellipse", "style": "filled", "fillcolor": "#d1c4e9"},
}


def dot_quote(text: str) -> str:
    """``text`` as a DOT double-quoted string: quotes and backslashes escaped, newlines
    as ``\\n``, ``&`` as ``&amp;`` (dot decodes entities: a name ``R&amp;D`` was drawn
    ``R&D``). ``<``, ``>``, ``{``, ``}`` need nothing inside quotes (no HTML/record labels).
    """
    escaped = text.replace("&", "&amp;").replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{escaped}"'


def _dot_attrs(attrs: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={dot_quote(value)}" for key, value in attrs.items())


def _short_label(var: Variable) -> list[str]:
    if var.owner is None:
        if isinstance(var, Constant) and not var.name:
            return [constant_text(var), str(var.type)]
        return [var.name or "<unnamed>", str(var.type)]
    lines = [op_label(var.owner)]
    if len(var.owner.outputs) > 1:
        lines[0] += f" [{var.index}]"
    if var.name:
        lines.append(var.name)
    lines.append(str(var.type))
    return lines


def to_dot(outputs: GraphLike, *, updates: UpdatesLike = None, name: str = "symgraph",
           rankdir: str = "TB") -> str:
    """Graphviz DOT text, one node per Variable (its op from its owner), edges
    input -> consumer labelled with the input position when the op has several inputs.

    >>> open("g.dot", "w").write(to_dot([loss, gW]))   # dot -Tsvg g.dot > g.svg

    Node ids are ``v<Variable.id>``; styles come from ``DOT_STYLES`` by role, and every
    node has ``class=<role>`` (kept in SVG output). Outputs are drawn with a double
    border; each update adds a dashed node ``W (new)`` fed by its expression.
    """
    outs, pairs, _ = _collect(outputs, updates)
    roots = outs + [e for _, e in pairs]
    nodes, reached = _reached(roots)
    update_only = _update_only(outs, pairs)
    output_ids = {v.id for v in outs}
    lines = [f"digraph {dot_quote(name)} {{",
             f"  graph [rankdir={dot_quote(rankdir)}];",
             '  node [fontname="Helvetica", fontsize="10"];',
             '  edge [fontname="Helvetica", fontsize="8"];']
    for var in reached:
        role = role_of(var, update_only)
        attrs = dict(DOT_STYLES[role])
        attrs["label"] = "\n".join(_short_label(var))
        attrs["class"] = role
        if var.owner is not None and var.owner.grad_of is not None:
            grad_of = var.owner.grad_of
            attrs["tooltip"] = f"grad of {op_name(grad_of.op)}" + (
                f" created at {grad_of.site}" if grad_of.site else "")
        elif var.site is not None:
            attrs["tooltip"] = str(var.site)
        if var.id in output_ids:
            attrs["peripheries"] = "2"
        lines.append(f"  v{var.id} [{_dot_attrs(attrs)}];")
    for node in nodes:
        several = len(node.inputs) > 1
        for out in node.outputs:
            for index, inp in enumerate(node.inputs):
                attrs = {"label": str(index)} if several else {}
                if is_gradient(out):
                    attrs["color"] = "#d84315"
                suffix = f" [{_dot_attrs(attrs)}]" if attrs else ""
                lines.append(f"  v{inp.id} -> v{out.id}{suffix};")
    for k, (target, expr) in enumerate(pairs):
        attrs = {"label": f"{target.name or '<unnamed>'} (new)", "shape": "box",
                 "style": "dashed", "class": "update_target"}
        lines.append(f"  u{k} [{_dot_attrs(attrs)}];")
        lines.append(f'  v{expr.id} -> u{k} [style="dashed", label="update"];')
    lines.append("}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- to_networkx


def _dim_value(d) -> Any:
    return d if d is None or isinstance(d, int) else str(d)


def to_networkx(outputs: GraphLike, *, updates: UpdatesLike = None) -> networkx.DiGraph:
    """The reached graph as a ``networkx.DiGraph``: one node per Variable, keyed by
    ``Variable.id``; an edge ``input.id -> output.id`` for each input of each Apply.

    >>> G = to_networkx([loss, gW]); G.nodes[gW.id]["role"]
    'gradient'

    Node attributes: ``op`` (short op name of the owner, None for leaves), ``name``
    (str or None), ``dtype`` (str), ``shape`` (tuple of int / str for symbolic dims /
    None), ``role`` (input / parameter / constant / forward / gradient / update),
    ``label`` (the ``debugprint`` line), ``grad_of`` (op name of the forward node whose
    bprop made it, or None), ``scope`` (the ``sg.name_scope`` — e.g. the model layer — that
    built it, or None), ``site`` (``file:line`` of the user's code, or None) and
    ``variable`` (the Variable itself). Edge attributes:
    ``index`` (first input position) and ``indices`` (all positions, e.g. ``x * x``).
    Graph attributes: ``outputs`` (ids) and ``updates`` (shared id -> expression id).
    """
    import networkx  # lazy: `import symgraph` must not import networkx

    outs, pairs, _ = _collect(outputs, updates)
    roots = outs + [e for _, e in pairs]
    nodes, reached = _reached(roots)
    update_only = _update_only(outs, pairs)
    graph = networkx.DiGraph(outputs=[v.id for v in outs],
                             updates={t.id: e.id for t, e in pairs})
    for var in reached:
        node = var.owner
        graph.add_node(
            var.id,
            op=None if node is None else op_name(node.op),
            name=var.name,
            dtype=var.dtype.name,
            shape=tuple(_dim_value(d) for d in var.shape),
            role=role_of(var, update_only),
            label=_leaf_line(var) if node is None else _node_line(var, update_only),
            grad_of=None if node is None or node.grad_of is None else op_name(node.grad_of.op),
            scope=None if node is None else node.scope,
            site=None if var.site is None else f"{var.site.filename}:{var.site.lineno}",
            variable=var,
        )
    for node in nodes:
        for out in node.outputs:
            for index, inp in enumerate(node.inputs):
                if graph.has_edge(inp.id, out.id):
                    graph.edges[inp.id, out.id]["indices"] += (index,)
                else:
                    graph.add_edge(inp.id, out.id, index=index, indices=(index,))
    return graph
