"""The ops and layers views of ``sg.render``: DOT text of the user's graph.

* ``ops_view`` -- every node, styled by role, clustered by ``sg.name_scope`` (``a/b``
  nests), the nodes each ``grad`` call added in a dashed compartment of their forward
  node's scope, edges labelled with shapes, and a legend.
* ``layers_view`` -- one cluster per scope with a forward box and a gradient box side by
  side; unscoped nodes go to "loss" (forward and gradient) and "updates".

Both draw a ``symgraph.render_graph.DrawnGraph`` (collapsed and capped already) into a
``graphviz.Digraph``; ``symgraph.rendering`` chooses the view.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from symgraph import shapes as sh
from symgraph.export import DOT_STYLES, dot_quote
from symgraph.graph import Variable
from symgraph.printing import op_name
from symgraph.render_collapse import Block
from symgraph.render_graph import (
    BLOCK_CLUSTER,
    LABEL_LIMIT,
    NOTE_STYLE,
    SCOPE_CLUSTER,
    UPDATE_TARGET_STYLE,
    Clusters,
    DrawnGraph,
    block_node,
    cap,
    carried_label,
    dot_lines,
    grad_key,
    legend,
    node_label,
    scope_key,
    shape_text,
    unit_in_block,
    wrap,
)

if TYPE_CHECKING:
    import graphviz

__all__ = ["layers_view", "ops_view"]

#: Ops whose edges need no input position (their inputs commute).
SYMMETRIC_OPS = frozenset({"add", "mul", "maximum", "minimum", "equal", "not_equal",
                           "logical_and", "logical_or"})

# --------------------------------------------------------------------------- ops view


def ops_view(graph: DrawnGraph, g: graphviz.Digraph) -> None:
    def statement(name: str, attrs: dict) -> str:
        body = ", ".join(f"{k}={dot_quote(str(v))}" for k, v in attrs.items())
        return f"\t{name} [{body}]\n"

    clusters = Clusters()
    labels: dict[tuple, tuple[str, dict]] = {}
    for item in graph.items:
        if isinstance(item, Block):
            _block_statements(graph, item, clusters, labels, statement)
            continue
        var = item
        role = graph.role[var.id]
        attrs = dict(DOT_STYLES[role])
        attrs.update(label=node_label(var), **{"class": role})
        if var.id in graph.output_ids:
            attrs["peripheries"] = "2"
        tooltip = var.site and str(var.site)
        if var.owner is not None and var.owner.grad_of is not None:
            tooltip = f"grad of {op_name(var.owner.grad_of.op)}" + (
                f" created at {var.owner.grad_of.site}" if var.owner.grad_of.site else "")
        if tooltip:
            attrs["tooltip"] = tooltip
        key = grad_key(graph, scope_key(graph.scope[var.id], labels), var, labels)
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
        label = shape_text(inp) if index is None or symmetric else (
            f"{index}: {shape_text(inp)}")
        attrs = {"label": label}
        if graph.role[out.id] == "gradient":
            attrs["color"] = "#d84315"
        g.edge(src, dst, **attrs)
    for (src, dst), tensors in carried.items():
        label = carried_label(list(tensors.values())) if src != dst else f"×{len(tensors)}"
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
        g.node(f"u{k}", dot_lines(f"{cap(target.name or '<unnamed>')} (new)"),
               **UPDATE_TARGET_STYLE, **{"class": "update_target"})
        g.edge(end, f"u{k}", style="dashed", color="#5e35b1", label="update")
    for end, count in block_targets.items():
        g.node(f"{end}_new", f"{count} parameters (new)", **UPDATE_TARGET_STYLE,
               **{"class": "update_target"})
        g.edge(end, f"{end}_new", style="dashed", color="#5e35b1", label=f"update ×{count}")
    _elision(graph, g)
    roles = [r for r in DOT_STYLES if r in set(graph.role.values())]
    legend(g, roles, update_target=bool(graph.pairs), repeated=bool(graph.blocks))


def _block_statements(graph: DrawnGraph, block: Block, clusters: Clusters,
                      labels: dict[tuple, tuple[str, dict]], statement) -> None:
    """One node per part of ``block``: a scope block is a cluster of its own, like a layer;
    a block of loop iterations sits where its nodes would (their scope, their compartment)."""
    for part in dict.fromkeys(graph.part_of[v.id] for v in block.members):
        members = graph.parts[part]
        head = next((v for v in members if v.owner is not None), members[0])
        key = scope_key(block.scope, labels)
        if block.kind == "scope":
            key += (("block", block.number),)  # a tuple: never equal to a scope name
            labels[key] = (cap(block.title, 2 * LABEL_LIMIT), BLOCK_CLUSTER)
        key = grad_key(graph, key, head, labels)
        clusters.add(key, statement(part, block_node(graph, block, part, members, "ops")))


def _elision(graph: DrawnGraph, g: graphviz.Digraph) -> None:
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


def _group_of(graph: DrawnGraph, var: Variable) -> tuple[str, str] | None:
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


def layers_view(graph: DrawnGraph, g: graphviz.Digraph) -> None:
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
            return dot_lines(f"{var.name or 'input'}\n{var.type}")
        params = [v for v in members if graph.role[v.id] == "parameter"]
        ops = Counter(op_name(v.owner.op) for v in members if v.owner is not None)
        # the cluster is labelled with the layer; the gradient box says whose gradient it is
        lines = [f"∂ {box}"] if side == "gradient" else []
        if params and side == "forward":
            for p in params[:4]:
                lines.append(cap(f"{p.name.rsplit('/', 1)[-1]} {sh.format_shape(p.shape)}"))
            if len(params) > 4:
                lines.append(f"+{len(params) - 4} more weights")
        op_text = ", ".join(f"{name}×{n}" if n > 1 else name for name, n in ops.most_common())
        if op_text:
            lines.extend(wrap(op_text))
        if side == "update" and graph.pairs:
            lines.append(f"{len(graph.pairs)} parameters updated")
        if not lines:
            lines.append(box)
        return dot_lines("\n".join(lines))

    for box, keys in boxes_of.items():
        if keys[0][1] == "input":
            key = keys[0]
            g.node(box_id[key], describe(key, groups[key]), **DOT_STYLES["input"],
                   **{"class": "input"})
            continue
        with g.subgraph(name=f"cluster_{box_id[keys[0]]}") as sub:
            sub.attr(label=dot_lines(box), **SCOPE_CLUSTER)
            if box in block_box:
                sub.attr(**BLOCK_CLUSTER)
            for key in keys:
                if box in block_box:
                    attrs = block_node(graph, block_box[box], box_id[key], groups[key], "layers")
                    sub.node(box_id[key], **{**attrs, "label": dot_lines(attrs["label"])})
                    continue
                role = {"forward": "forward", "gradient": "gradient", "update": "update"}[key[1]]
                style = {**DOT_STYLES[role], "shape": "box", "style": "filled,rounded"}
                sub.node(box_id[key], describe(key, groups[key]), **style, **{"class": role})
            if len(keys) > 1:
                with sub.subgraph() as same:
                    same.attr(rank="same")
                    for key in keys:
                        same.node(box_id[key])

    # (dicts used as ordered sets: a list's ``in`` made long graphs quadratic, 40k nodes 3.8 s)
    flows: dict[tuple[str, str], dict[Variable, None]] = defaultdict(dict)
    chained: dict[str, dict[int, Variable]] = defaultdict(dict)  # unit k -> k + 1 in a block
    for inp, out, _ in graph.edges():
        if graph.endpoint(inp) is None or graph.endpoint(out) is None:
            continue
        src, dst = _group_of(graph, inp), _group_of(graph, out)
        if src is None or dst is None:
            continue
        if src == dst:
            block = block_box.get(src[0])
            if block is not None and (unit_in_block(graph, block, inp)
                                      != unit_in_block(graph, block, out)):
                chained[box_id[src]][inp.id] = inp
            continue
        flows[(box_id[src], box_id[dst])][inp] = None
    box_side = {b: key[1] for key, b in box_id.items()}
    for (src, dst), carried_set in flows.items():
        carried = list(carried_set)
        label = shape_text(carried[0]) if len(carried) == 1 else carried_label(carried)
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
    legend(g, [r for r in ("input", "forward", "gradient", "update")
               if any(k[1] == r for k in groups)], repeated=bool(block_box))


def _elision_boxes(graph: DrawnGraph, g: graphviz.Digraph) -> None:
    if graph.elided:
        g.node("elided", graph.elided_note(), **NOTE_STYLE, **{"class": "elided"})
