"""``sg.render(f, ..., view="kernels" | "profile")``: what the compiler made of the graph.

Why: the ops view shows the graph the user wrote; these views show how the compiled
step computes it. Each fused kernel of an llvm function is a cluster drawn around the
*user's* nodes it computes -- found through the rewrites' provenance
(``symgraph.graph.user_nodes``), so a kernel that holds rewritten copies still shows the
user's ``tanh in dense_1``. Kernels that call BLAS are marked; edges inside a kernel are
fused (no memory traffic) and drawn thin, edges between kernels carry a buffer.
Transposes and reshapes that became views and nodes the rewrites removed (folded,
merged into an identity) stand outside every cluster, dotted, so nothing the user wrote
disappears from the picture.

``view="profile"`` shades each kernel by its share of the step's time from
``f.profile(...)`` (the rows passed as ``profile=``, else the function's last profile)
and prints the percentage in its label. A numpy-backend function has no kernels; its
profile view shades each user node by the time of the reference evaluator's node(s)
computing it. ``rewritten=True`` draws the rewritten nodes inside the kernels instead of
the user's.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from symgraph.export import DOT_STYLES, dot_quote
from symgraph.graph import Apply, Constant, toposort, user_nodes
from symgraph.printing import op_name
from symgraph.render_graph import (
    NEWRANK_LIMIT,
    NOTE_STYLE,
    DrawnGraph,
    cap,
    dot_lines,
    new_digraph,
    node_label,
    shape_text,
)

__all__ = ["kernel_source"]

#: the cluster of a fused kernel; a kernel that calls BLAS is drawn with a bold border
KERNEL_CLUSTER = {"style": "rounded,filled", "color": "#455a64", "fillcolor": "#eceff1",
                  "fontname": "Helvetica-Bold", "fontsize": "11", "fontcolor": "#263238"}
BLAS_CLUSTER = {"color": "#1565c0", "penwidth": "2.5", "fontcolor": "#0d47a1"}
#: user nodes no kernel computes: views (transpose read through strides), aliases
#: (reshape), or nodes the rewrites removed
OUTSIDE_STYLE = {"style": "dashed,filled", "fillcolor": "#fafafa", "color": "#9e9e9e",
                 "fontcolor": "#616161"}
FUSED_EDGE = {"color": "#90a4ae", "style": "dashed", "arrowsize": "0.4"}
#: heat scale for the profile view: white (0 %) to deep orange (the slowest kernel)
HEAT_LOW, HEAT_HIGH = (0xff, 0xff, 0xff), (0xe6, 0x4a, 0x19)

_OUTSIDE_TEXT = {"view": "view (no copy)", "alias": "alias (no copy)",
                 "removed": "removed by rewrites", "dead": "shape only"}


@dataclass
class _Unit:
    """One unit of work: an llvm kernel, or a node of the numpy reference evaluator."""

    name: str
    members: list[Apply]            # the nodes drawn inside it (user's or rewritten)
    blas: bool = False
    fraction: float | None = None   # share of step time (profile view)
    seconds: float | None = None
    ops: list[str] = field(default_factory=list)


def _units(function, rewritten: bool) -> list[_Unit]:
    kernels = getattr(function, "kernels", None)
    if kernels is None:
        # numpy backend: each node of the rewritten graph is a unit (its numbering is the
        # one symgraph.profiling.profile_numpy uses: "n<k>" in topological order)
        roots = list(function.graph_outputs) + list(function.graph_updates)
        return [_Unit(f"n{k}", [node] if rewritten else list(user_nodes(node)),
                      ops=[node.op.name]) for k, node in enumerate(toposort(roots))]
    # a transpose read through strides or as a BLAS flag is a view, computed by no kernel
    # (several kernels may read it): drawn outside the clusters like a reshape's alias
    modes = function.program.node_modes()
    units = []
    for info in kernels:
        computed = [n for n in info.nodes if modes.get(n) != "view"]
        members = computed if rewritten else list(dict.fromkeys(
            user for node in computed for user in user_nodes(node)))
        units.append(_Unit(info.name, members, blas=info.blas,
                           ops=[n.op.name for n in info.nodes]))
    return units


def _outside_status(function, rewritten: bool) -> dict[int, str]:
    """Why a node that no kernel computes has no kernel: view, alias, dead or removed."""
    status: dict[int, str] = {}
    for node, mode in function.program.node_modes().items():
        if mode in ("view", "alias", "dead"):
            for user in ([node] if rewritten else user_nodes(node)):
                status.setdefault(id(user), mode)
    return status


def _apply_profile(units: list[_Unit], rows) -> None:
    by_name = {u.name: u for u in units}
    unknown = [r["kernel"] for r in rows if r["kernel"] not in by_name]
    if unknown:
        raise ValueError(f"profile rows name units this function does not have "
                         f"({', '.join(unknown[:4])}): pass rows from this function's "
                         "f.profile(...)")
    for row in rows:
        unit = by_name[row["kernel"]]
        unit.fraction, unit.seconds = float(row["fraction"]), float(row["seconds"])


def _heat(fraction: float, top: float) -> str:
    t = 0.0 if top <= 0 else min(1.0, fraction / top) ** 0.7
    rgb = [round(lo + (hi - lo) * t) for lo, hi in zip(HEAT_LOW, HEAT_HIGH)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _dark(fraction: float, top: float) -> bool:
    """Is the heat fill dark enough to need white text?"""
    return top > 0 and (fraction / top) ** 0.7 > 0.6


def _seconds(value: float) -> str:
    return f"{value * 1e3:.2f} ms" if value >= 1e-3 else f"{value * 1e6:.1f} µs"


def _unit_label(unit: _Unit, profile: bool) -> str:
    parts = [unit.name]
    if unit.blas:
        parts.append("BLAS")
    scopes = list(dict.fromkeys(n.scope for n in unit.members if n.scope))
    if len(scopes) == 1:
        parts.append(scopes[0])
    elif len(scopes) > 1:
        parts.append(f"{len(scopes)} scopes")
    head = " · ".join(parts)
    if profile and unit.fraction is not None:
        return f"{head}\n{100 * unit.fraction:.1f}% · {_seconds(unit.seconds or 0.0)}"
    return head


def kernel_source(function, view: str = "kernels", *, rewritten: bool = False,
                  max_nodes: int | None = 400, rankdir: str = "TB", profile=None) -> str:
    """DOT text of the kernels or profile view of a compiled ``Function`` (see the module
    docstring); ``profile`` is the rows of ``function.profile(...)``."""
    if not (hasattr(function, "graph_outputs") and hasattr(function, "program")):
        raise TypeError(f"view={view!r} draws a compiled sg.function; got "
                        f"{type(function).__name__}")
    is_profile = view == "profile"
    llvm = getattr(function, "kernels", None) is not None
    if not is_profile and not llvm:
        raise ValueError(f"view='kernels' draws the fused kernels of an llvm function; this "
                         f"function uses backend {function.backend!r} (try view='profile', "
                         "which times its nodes)")
    units = _units(function, rewritten)
    if is_profile:
        rows = profile if profile is not None else getattr(function, "last_profile", None)
        if rows is None:
            raise ValueError("view='profile' needs timings: call f.profile(*args) first, or "
                             "pass profile=f.profile(*args)")
        _apply_profile(units, rows)
    graph = DrawnGraph(function, None, rewritten, max_nodes)
    g = new_digraph(getattr(function, "name", None) or "symgraph", rankdir)
    if len(graph.kept) <= NEWRANK_LIMIT:
        g.attr(newrank="true")
    _draw(graph, g, units, _outside_status(function, rewritten), is_profile, clusters=llvm)
    return g.source


def _draw(graph: DrawnGraph, g, units: list[_Unit], status: dict[int, str], is_profile: bool,
          clusters: bool) -> None:
    # each drawn node belongs to the first unit that computes it (an inlined cheap node
    # can be recomputed by several kernels: the others are named in its tooltip)
    home: dict[int, _Unit] = {}
    also: dict[int, list[str]] = defaultdict(list)
    for unit in units:
        for node in unit.members:
            for var in node.outputs:
                if var.id in home:
                    if home[var.id] is not unit:
                        also[var.id].append(unit.name)
                else:
                    home[var.id] = unit
    top = max((u.fraction or 0.0 for u in units), default=0.0)
    share: dict[int, float] = defaultdict(float)  # numpy profile: a user node's time share
    if is_profile and not clusters:
        for unit in units:
            counted: set[int] = set()
            for node in unit.members:
                for var in node.outputs:
                    if var.id not in counted:
                        counted.add(var.id)
                        share[var.id] += (unit.fraction or 0.0) / max(1, len(unit.members))
        top = max(share.values(), default=0.0)

    members: dict[str, list[str]] = defaultdict(list)
    loose: list[str] = []
    for var in graph.kept:
        if _is_literal(var):
            continue
        role = graph.role[var.id]
        attrs = dict(DOT_STYLES[role])
        label = node_label(var)
        tooltip = []
        if var.owner is not None:
            if var.owner.scope:
                tooltip.append(f"scope {var.owner.scope}")
            if var.site:
                tooltip.append(str(var.site))
        unit = home.get(var.id)
        if var.owner is not None and unit is None:
            why = status.get(id(var.owner), "removed")
            attrs.update(OUTSIDE_STYLE)
            label += "\n" + _OUTSIDE_TEXT[why]
        if also.get(var.id):
            tooltip.append("also recomputed in " + ", ".join(also[var.id]))
        if is_profile and not clusters and var.id in share:
            attrs.update(style="filled", fillcolor=_heat(share[var.id], top))
            label += f"\n{100 * share[var.id]:.1f}%"
        if var.id in graph.output_ids:
            attrs["peripheries"] = "2"
        attrs.update(label=label, **{"class": role})
        if tooltip:
            attrs["tooltip"] = "\n".join(tooltip)
        body = ", ".join(f"{k}={dot_quote(str(v))}" for k, v in attrs.items())
        statement = f"\tv{var.id} [{body}]\n"
        if clusters and unit is not None:
            members[unit.name].append(statement)
        else:
            loose.append(statement)
    g.body.extend(loose)
    drawn = 0.0
    for unit in units:
        if unit.name not in members:
            continue
        drawn += unit.fraction or 0.0
        with g.subgraph(name=f"cluster_{unit.name}") as sub:
            style = dict(KERNEL_CLUSTER)
            if unit.blas:
                style.update(BLAS_CLUSTER)
            if is_profile:
                style["fillcolor"] = _heat(unit.fraction or 0.0, top)
                if _dark(unit.fraction or 0.0, top):
                    style["fontcolor"] = "#ffffff"
            tip = ", ".join(unit.ops)
            sub.attr(label=dot_lines(_unit_label(unit, is_profile)), tooltip=cap(tip, 200),
                     **style, **{"class": "kernel blas" if unit.blas else "kernel"})
            sub.body.extend(members[unit.name])

    for inp, out, _ in graph.edges():
        if inp.id not in graph.kept_ids or out.id not in graph.kept_ids or _is_literal(inp):
            continue
        src, dst = home.get(inp.id), home.get(out.id)
        if clusters and src is not None and src is dst:
            g.edge(f"v{inp.id}", f"v{out.id}", **FUSED_EDGE)
            continue
        attrs = {"label": shape_text(inp)}
        if clusters and dst is not None and (
                _is_transpose(out) or graph.role[inp.id] == "forward"
                and graph.role[out.id] == "gradient"):
            # a value the backward pass reads from the forward pass (an activation, a
            # transpose read through strides) does not pull the gradient kernel up beside
            # it: else one cluster spans the whole forward pass
            attrs.update(constraint="false", style="dotted")
        if graph.role[out.id] == "gradient":
            attrs["color"] = "#d84315"
        g.edge(f"v{inp.id}", f"v{out.id}", **attrs)
    for k, (target, expr) in enumerate(graph.pairs):
        if expr.id in graph.kept_ids:
            g.node(f"u{k}", dot_lines(f"{cap(target.name or '<unnamed>')} (new)"), shape="box",
                   style="dashed,rounded", color="#5e35b1", **{"class": "update_target"})
            g.edge(f"v{expr.id}", f"u{k}", style="dashed", color="#5e35b1", label="update")
    _notes(graph, g, units, members, is_profile and clusters, drawn)
    _legend(g, clusters, is_profile)


def _is_literal(var) -> bool:
    """0-d constants are literals in the kernels' code: drawn, they bury the picture."""
    return isinstance(var, Constant) and var.ndim == 0


def _is_transpose(var) -> bool:
    return var.owner is not None and op_name(var.owner.op) == "transpose"


def _notes(graph: DrawnGraph, g, units: list[_Unit], members: dict, profile: bool,
           drawn: float) -> None:
    lines = []
    if graph.elided:
        lines.append(graph.elided_note().replace("\\n", "\n"))
    if profile:
        hidden = [u for u in units if u.name not in members and u.fraction]
        if hidden:
            lines.append(f"{len(hidden)} kernels not drawn: "
                         f"{100 * sum(u.fraction for u in hidden):.1f}% of the step")
    if lines:
        g.node("elided", dot_lines("\n".join(lines)), **NOTE_STYLE, **{"class": "elided"})


def _legend(g, clusters: bool, profile: bool) -> None:
    rows = []
    if clusters:
        rows.append('<tr><td border="1" style="rounded" bgcolor="#eceff1">fused kernel</td></tr>')
        rows.append('<tr><td border="2" style="rounded" color="#1565c0" bgcolor="#eceff1">'
                    "kernel calling BLAS</td></tr>")
        rows.append('<tr><td border="0">- - -&gt; fused: no buffer</td></tr>')
    rows.append('<tr><td border="1" style="dashed">no kernel: view, alias, or removed'
                "</td></tr>")
    if profile:
        rows.append(f'<tr><td bgcolor="{_heat(1, 1)}" border="1"><font color="#ffffff">'
                    "share of step time</font></td></tr>")
    for role in ("forward", "gradient", "update"):
        rows.append(f'<tr><td bgcolor="{DOT_STYLES[role]["fillcolor"]}" border="1" '
                    f'style="rounded">{role}</td></tr>')
    table = ('<<table border="0" cellborder="0" cellspacing="4" cellpadding="3">'
             "<tr><td><b>legend</b></td></tr>" + "".join(rows) + "</table>>")
    with g.subgraph(name="cluster_legend") as leg:
        leg.attr(label="", style="rounded", color="#b0bec5")
        leg.node("legend", table, shape="plaintext", fontsize="9", **{"class": "legend"})

