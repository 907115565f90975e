"""``f.profile()``: where a step's time goes, named in the user's terms.

Why: a profile that says "k7: sub, mul, matmul, transpose" (or Theano's
``Elemwise{Composite{...}}``) leaves the user to guess which line of their model
that is. Every row here names the *user's* nodes a unit of work computes -- through
the rewrites' provenance (``symgraph.graph.user_nodes``) -- with their name scope
(the model layer) and source line.

Both backends return the same rows, so they can be compared:

* ``llvm`` (``codegen.backend.LLVMProgram.profile``): one row per fused kernel,
  timed by cycle counters inside the compiled step;
* ``numpy`` (:func:`profile_numpy`): one row per node of the rewritten graph,
  timed around each node's numpy reference.

A row is a dict: ``kernel`` (``"k3"``, or ``"n3"`` for the numpy backend's third
node), ``ops`` (op names it computes), ``nodes`` (one label per user node:
``"matmul in dense_1"``, ``"mul (d/d tanh) in dense_1"`` for a gradient node), ``sites``
(``file:line`` of those nodes, unique, in order), ``scopes`` (unique), ``blas``
(calls BLAS), ``seconds`` (per call) and ``fraction`` (of the step). Rows come
slowest first; ``format_profile(rows)`` prints them as a table.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence

import numpy as np

from symgraph.evaluate import _perform, _value_of
from symgraph.graph import Apply, toposort, user_nodes
from symgraph.ops.linalg import MatMul
from symgraph.printing import op_label, op_name

__all__ = ["describe_nodes", "format_profile", "node_label", "profile_numpy"]


def node_label(node: Apply) -> str:
    """``matmul in dense_1``; a gradient node: ``mul (d/d tanh) in dense_1`` (the forward op
    whose bprop made it); a named node starts with its name: ``d(loss)/d(W) = matmul ...``."""
    text = op_label(node)
    if node.grad_of is not None:
        text = f"{text} (d/d {op_name(node.grad_of.op)})"
    name = node.outputs[0].name
    if name:
        text = f"{name} = {text}"
    return f"{text} in {node.scope}" if node.scope else text


def site_text(node: Apply) -> str | None:
    """``train.py:12`` (the file's base name: rows stay short), or None."""
    site = node.site
    return None if site is None else f"{os.path.basename(site.filename)}:{site.lineno}"


def describe_nodes(users: Iterable[Apply]) -> dict:
    """``nodes``, ``sites`` and ``scopes`` of a profile row for these user nodes."""
    users = list(users)
    sites = [s for s in (site_text(n) for n in users) if s is not None]
    scopes = [n.scope for n in users if n.scope]
    return {"nodes": [node_label(n) for n in users],
            "sites": list(dict.fromkeys(sites)),
            "scopes": list(dict.fromkeys(scopes))}


def profile_numpy(request, args: Sequence, n: int = 100) -> list[dict]:
    """Time each node of the rewritten graph of ``request`` (a ``CompileRequest``: the
    default ``Program.profile``) on the reference evaluator over ``n`` calls on ``args``;
    no shared variable changes. Rows as in the module docstring."""
    if n < 1:
        raise ValueError(f"profile: n must be >= 1, got {n}")
    values, bindings = request.check_inputs(args)
    values.update({var: var._value for var in request.shared})
    roots = list(request.graph_outputs) + list(request.graph_updates)
    nodes = toposort(roots)
    spent = np.zeros(len(nodes))
    for _ in range(n):
        env = dict(values)
        local = dict(bindings)
        for k, node in enumerate(nodes):
            t0 = time.perf_counter()
            _perform(node, env, local)
            spent[k] += time.perf_counter() - t0
        for var in roots:  # constants and leaves as outputs are read, as a call does
            _value_of(var, env)
    total = float(spent.sum()) or 1.0
    rows = []
    for k, node in enumerate(nodes):
        row = {"kernel": f"n{k}", "ops": [node.op.name]}
        row.update(describe_nodes(user_nodes(node)))
        row.update(blas=isinstance(node.op, MatMul), seconds=spent[k] / n,
                   fraction=spent[k] / total)
        rows.append(row)
    return sorted(rows, key=lambda r: -r["seconds"])


def format_profile(rows: Sequence[dict], limit: int | None = 20, width: int = 100) -> str:
    """The rows as a text table, slowest first: share, time, unit, what it computes, where.

    >>> print(sg.format_profile(f.profile(X, Y)))
    """
    lines = [f"{'share':>6}  {'time':>9}  {'unit':<5} computes (user's nodes) @ lines"]
    shown = list(rows) if limit is None else list(rows)[:limit]
    for row in shown:
        what = ", ".join(row["nodes"]) or ", ".join(row["ops"])
        where = ", ".join(row["sites"][:3]) + (" …" if len(row["sites"]) > 3 else "")
        text = f"{what} @ {where}" if where else what
        mark = "*" if row.get("blas") else " "
        head = f"{100 * row['fraction']:5.1f}%  {_seconds(row['seconds']):>9}  " \
               f"{row['kernel']:<4}{mark} "
        room = max(20, width - len(head))
        lines.append(head + (text if len(text) <= room else text[: room - 1] + "…"))
    if len(shown) < len(rows):
        rest = rows[len(shown):]
        lines.append(f"{100 * sum(r['fraction'] for r in rest):5.1f}%  "
                     f"{_seconds(sum(r['seconds'] for r in rest)):>9}  "
                     f"({len(rest)} more)")
    if any(row.get("blas") for row in shown):
        lines.append("* calls BLAS")
    return "\n".join(lines)


def _seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.2f} ms"
    return f"{value * 1e6:.1f} µs"
