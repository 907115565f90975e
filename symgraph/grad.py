"""Symbol-to-symbol differentiation: ``build_grad`` (Goodfellow et al., Alg. 6.5/6.6).

``grad(cost, wrt)`` adds derivative nodes to the *same* graph: it prunes to
the nodes between ``wrt`` and ``cost``, then walks them in reverse
topological order — which is the book's memoised recursion over
``grad_table`` without Python's recursion limit — asking each op's ``bprop``
for the contribution to each input and summing the contributions of all
consumers. Contributions are summed back to the input's shape where the
forward pass broadcast. Because the result is ordinary graph, ``grad`` of a
gradient works to any order.

"No gradient" is never ``None``: ``DISCONNECTED`` (no differentiable path)
and ``Undefined(reason)`` (a path exists but the derivative does not) are
distinct typed values, and an op with no rule raises.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from symgraph import ops
from symgraph.gc_pause import without_gc
from symgraph.graph import Apply, Constant, Variable, is_float, toposort
from symgraph.printing import short_label
from symgraph.provenance import grad_tag
from symgraph.sentinels import (  # noqa: F401  (re-exported: sg.grad's public names)
    DISCONNECTED,
    DisconnectedInputError,
    GradNotImplementedError,
    Undefined,
    UndefinedGradError,
)
from symgraph.shapes import ShapeError

_grad_calls = itertools.count(1)


class GradCall:
    """Identifies one call of ``grad``; every node it adds points here."""

    def __init__(self, cost: Variable | None, wrt: Sequence[Variable]):
        self.number = next(_grad_calls)
        self.cost = cost
        self.wrt = list(wrt)

    def __repr__(self):
        return f"<grad call {self.number}>"


_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def derivative_label(numerator: str, denominators: Sequence[str]) -> str:
    """``d(f)/d(x)``, ``d²(f)/d(x)²``, ``d²(f)/d(x)d(y)``: the name of a gradient node."""
    order = len(denominators)
    if order == 1:
        return f"d({numerator})/d({denominators[0]})"
    sup = str(order).translate(_SUPERSCRIPTS)
    if len(set(denominators)) == 1:
        return f"d{sup}({numerator})/d({denominators[0]}){sup}"
    return f"d{sup}({numerator})/" + "".join(f"d({d})" for d in denominators)


def cost_label(cost: Variable | None) -> tuple[str, list[str]]:
    """(numerator, denominators so far): a gradient's own derivative label, else the cost's
    name, else its expression when short (``sum(x ** 3)``), else ``cost``."""
    if cost is None:
        return "cost", []
    if getattr(cost, "derivative", None) is not None:
        numerator, denominators = cost.derivative
        return numerator, list(denominators)
    return short_label(cost) or "cost", []


def _differentiable(v: Variable) -> bool:
    return is_float(v.dtype)


def _describe(v: Variable) -> str:
    """``'x @ W' (created at ...)``: a variable's name, else its expression when short
    (a constant's value), else its op."""
    label = v.name or short_label(v) or (v.owner.op.name if v.owner else "variable")
    where = f" (created at {v.site})" if v.site else ""
    return f"{label!r}{where}"


def unbroadcast(g: Variable, like: Variable) -> Variable:
    """Sum ``g`` over the axes where ``like`` was broadcast (statically known)."""
    if g.ndim < like.ndim:
        raise ValueError(f"gradient of {_describe(like)} has fewer dims than the variable")
    lead = g.ndim - like.ndim
    if lead:
        g = ops.sum(g, axis=tuple(range(lead)))
    ones = tuple(i for i, (dl, dg) in enumerate(zip(like.shape, g.shape)) if dl == 1 and dg != 1)
    if ones:
        g = ops.sum(g, axis=ones, keepdims=True)
    if g.dtype != like.dtype:
        g = ops.cast(g, like.dtype)
    return g


def _sum_parts(parts: list):
    undefined = [p for p in parts if isinstance(p, Undefined)]
    if undefined:
        return undefined[0]
    parts = [p for p in parts if p is not DISCONNECTED]
    if not parts:
        return DISCONNECTED
    total = parts[0]
    for p in parts[1:]:
        total = ops.add(total, p)
    return total


def _relevant_nodes(cost_vars: Sequence[Variable], wrt: Sequence[Variable]) -> list[Apply]:
    """Nodes on a differentiable path from some ``wrt`` to the cost (pruned G')."""
    order = toposort(cost_vars)
    reaches = {v for v in wrt}
    relevant = []
    for node in order:
        if any(inp in reaches for inp in node.inputs):
            outs = [o for o in node.outputs if _differentiable(o)]
            if outs:
                reaches.update(outs)
                relevant.append(node)
    # keep only nodes that also lead to a cost variable
    needed = {v for v in cost_vars}
    kept = []
    for node in reversed(relevant):
        if any(o in needed for o in node.outputs):
            needed.update(node.inputs)
            kept.append(node)
    kept.reverse()
    return kept


def _known_grad(var: Variable, g) -> Variable:
    """A ``known_grads`` value as a gradient of ``var``: its dtype, broadcast to its shape
    (a Variable as a number is: a 0-d one was passed on 0-d, a vector's "gradient")."""
    if not isinstance(var, Variable):
        raise TypeError(f"known_grads keys must be symgraph Variables, got {type(var).__name__}")
    if not isinstance(g, Variable):
        g = Constant(np.asarray(g, dtype=var.dtype))
    g = ops.cast(g, var.dtype)
    if tuple(g.shape) == tuple(var.shape):
        return g
    try:
        filled = ops.fill(var, g)
    except ShapeError:
        filled = None
    if filled is None or tuple(filled.shape) != tuple(var.shape):
        raise ValueError(f"the known gradient of {_describe(var)} has shape "
                         f"{tuple(g.shape)}, which does not broadcast to its shape "
                         f"{tuple(var.shape)}")
    return filled


@without_gc
def build_grad(cost: Variable | None, wrt: Sequence[Variable],
               known_grads: Mapping[Variable, Variable] | None = None) -> list:
    """The core: gradients of ``cost`` w.r.t. each of ``wrt`` (or typed sentinels).

    Returns, for each ``wrt``, a Variable, ``DISCONNECTED`` or an ``Undefined``.
    """
    call = GradCall(cost, wrt)
    table: dict[Variable, list] = {}
    seeds: list[Variable] = []
    numerator, denominators = cost_label(cost)
    with grad_tag(None, call):
        if cost is not None and cost not in (known_grads or {}):  # a known one replaces it
            seed = ops.ones_like(cost)
            if denominators and cost.name:
                # the cost is itself a gradient (``grad(grad(f, x), x)``): its seed is
                # d(cost)/d(cost), labelled in the cost's notation, not d(f)/d(f)
                seed.derivative = (numerator, (*denominators, cost.name))
                seed.name = derivative_label(*seed.derivative)
            else:
                seed.name = f"d({numerator})/d({numerator})"
            table[cost] = [seed]
            seeds.append(cost)
        for var, g in (known_grads or {}).items():
            table.setdefault(var, []).append(_known_grad(var, g))
            seeds.append(var)

    nodes = _relevant_nodes(seeds, wrt)
    needed = {o for node in nodes for o in node.outputs} | set(wrt)
    done: dict[Variable, object] = {}

    def total(var: Variable):
        if var not in done:
            with grad_tag(var.owner, call):
                done[var] = _sum_parts(table.get(var, []))
            g = done[var]
            # name only nodes this call made: a known_grads value may be the user's variable
            if (isinstance(g, Variable) and var.name and g.owner is not None
                    and g.owner.grad_call is call):
                label = (numerator, (*denominators, var.name))
                if g.name is not None and g.name != derivative_label(*label):
                    # one node is the gradient of several variables (``a + b`` passes it to
                    # both; the seed passes through): each gets a named identity of it
                    with grad_tag(var.owner, call):
                        g = done[var] = ops.identity(g)
                if g.name is None:
                    g.derivative = label
                    g.name = derivative_label(*label)
        return done[var]

    for node in reversed(nodes):
        grads = [total(o) for o in node.outputs]
        if all(g is DISCONNECTED for g in grads):
            continue
        for index, inp in enumerate(node.inputs):
            if not _differentiable(inp) or inp not in needed:
                continue
            if any(isinstance(g, Undefined) for g in grads):
                part = next(g for g in grads if isinstance(g, Undefined))
            else:
                filled = [g if g is not DISCONNECTED else ops.zeros_like(o)
                          for g, o in zip(grads, node.outputs)]
                with grad_tag(node, call):
                    try:
                        part = node.op.bprop(node.inputs, node.outputs, index, filled)
                    except GradNotImplementedError as err:
                        raise GradNotImplementedError(
                            f"{err}; needed for the gradient through the node created at "
                            f"{node.site}") from None
                    if isinstance(part, Variable):
                        part = unbroadcast(part, inp)
            table.setdefault(inp, []).append(part)
    return [total(v) for v in wrt]


def _wrt_list(wrt, function: str = "") -> tuple[bool, list]:
    """(single, the list): ``wrt`` is a Variable or an iterable of them; ``function``
    (``"hessian: "``) starts the error for anything else."""
    if isinstance(wrt, Variable):
        return True, [wrt]
    try:
        wrt_list = list(wrt)
    except TypeError:
        raise TypeError(f"{function}wrt must be a symgraph Variable or a list of them, got "
                        f"{type(wrt).__name__}") from None
    for w in wrt_list:
        if not isinstance(w, Variable):
            raise TypeError(f"{function}wrt must be symgraph Variables, got "
                            f"{type(w).__name__}")
    return False, wrt_list


def _scalar_cost(function: str, cost) -> None:
    """What ``hessian`` and ``hvp`` check before they use ``wrt``'s shapes (they have no
    ``known_grads``: a non-scalar cost is an error of theirs)."""
    if not isinstance(cost, Variable):
        raise TypeError(f"{function}: cost must be a symgraph Variable, got "
                        f"{type(cost).__name__}")
    if cost.ndim != 0:
        raise ValueError(f"{function}: cost must be a scalar, got shape {cost.shape} for "
                         f"{_describe(cost)}; reduce it (e.g. .sum())")


def grad(cost: Variable | None, wrt, *, known_grads: Mapping | None = None,
         disconnected: str = "raise"):
    """Gradient of scalar ``cost`` w.r.t. ``wrt`` (a Variable or a list), as graph nodes.

    >>> gW, gb = grad(loss, [W, b])

    ``known_grads`` seeds gradients of intermediate variables (then ``cost``
    may be None); a known gradient of ``cost`` itself replaces the seed of ones
    (a non-scalar ``cost`` needs one). ``disconnected="zero"`` returns zeros for a ``wrt`` the cost
    does not depend on instead of raising.
    """
    single, wrt_list = _wrt_list(wrt)
    if disconnected not in ("raise", "zero"):
        raise ValueError(f"disconnected must be 'raise' or 'zero', not {disconnected!r}")
    if cost is None and not known_grads:
        raise ValueError("grad needs a cost or known_grads")
    if cost is not None:
        if not isinstance(cost, Variable):
            raise TypeError(f"cost must be a symgraph Variable, got {type(cost).__name__}")
        if cost.ndim != 0 and cost not in (known_grads or {}):
            raise ValueError(f"cost must be a scalar, got shape {cost.shape} for "
                             f"{_describe(cost)}; reduce it (e.g. .sum()) or pass its "
                             "gradient in known_grads")
        if not is_float(cost.dtype):
            raise TypeError(f"cost must be a float, got {cost.dtype.name} for "
                            f"{_describe(cost)}")
    for w in wrt_list:
        if not is_float(w.dtype):
            raise TypeError(f"{_describe(w)} is {w.dtype.name}: integer and boolean variables "
                            "have no gradient")
    results = build_grad(cost, wrt_list, known_grads)
    out = []
    for w, g in zip(wrt_list, results):
        if g is DISCONNECTED:
            if disconnected == "zero":
                g = ops.zeros_like(w)
            else:
                raise DisconnectedInputError(
                    f"the cost does not depend (differentiably) on {_describe(w)}; "
                    "pass disconnected='zero' to get zeros")
        elif isinstance(g, Undefined):
            raise UndefinedGradError(f"the gradient w.r.t. {_describe(w)} is undefined: "
                                     f"{g.reason}")
        out.append(g)
    return out[0] if single else out


def jacobian(expr: Variable, wrt, *, disconnected: str = "raise"):
    """Jacobian of a vector ``expr``: shape ``expr.shape + wrt.shape`` (one grad per entry)."""
    single, wrt_list = _wrt_list(wrt)
    if not isinstance(expr, Variable):
        raise TypeError(f"jacobian: expr must be a symgraph Variable, got {type(expr).__name__}")
    if expr.ndim == 0:
        rows = [grad(expr, wrt_list, disconnected=disconnected)]
        result = rows[0]
    else:
        if expr.ndim != 1 or not isinstance(expr.shape[0], int):
            raise ValueError("jacobian needs a scalar or a vector of fixed length, "
                             f"got shape {expr.shape}")
        if expr.shape[0] == 0:  # (0, *wrt.shape): there is no row to stack
            result = [ops.expand_dims(ops.zeros_like(w), 0)[:0] for w in wrt_list]
            return result[0] if single else result
        rows = []
        for i in range(expr.shape[0]):
            entry = expr[i]
            if entry.name is None and expr.name:
                entry.name = f"{expr.name}[{i}]"
            rows.append(grad(entry, wrt_list, disconnected=disconnected))
        result = [ops.stack([row[k] for row in rows]) for k in range(len(wrt_list))]
    return result[0] if single else result


def hessian(cost: Variable, wrt, *, disconnected: str = "raise"):
    """Hessian of scalar ``cost`` w.r.t. a vector ``wrt`` (a list of vectors: diagonal blocks)."""
    single, wrt_list = _wrt_list(wrt, "hessian: ")
    _scalar_cost("hessian", cost)
    out = []
    for w in wrt_list:
        if w.ndim != 1:
            raise ValueError(f"hessian: {_describe(w)} must be a vector, got shape {w.shape}")
        g = grad(cost, w, disconnected=disconnected)
        h = jacobian(g, w, disconnected="zero")
        if getattr(g, "derivative", None) is not None and h.name is None:
            numerator, denominators = g.derivative
            h.derivative = (numerator, (*denominators, w.name or "w"))
            h.name = derivative_label(*h.derivative)
        out.append(h)
    return out[0] if single else out


def hvp(cost: Variable, wrt, vectors, *, disconnected: str = "raise"):
    """Hessian-vector product (Pearlmutter): ``grad(sum(grad(cost, w) * stop_gradient(v)),
    w)``. ``v`` is held constant: without it a ``v`` built from ``w`` (``v = grad(cost, w)``,
    a Newton-CG direction) added ``(dv/dw)^T g``, and ``hvp(cost, w, grad(cost, w))`` gave
    twice ``H g``."""
    single, wrt_list = _wrt_list(wrt, "hvp: ")
    v_list = [vectors] if single else list(vectors)
    _scalar_cost("hvp", cost)
    if len(v_list) != len(wrt_list):
        raise ValueError(f"hvp: {len(wrt_list)} wrt but {len(v_list)} vectors")
    for w, v in zip(wrt_list, v_list):  # (a v that broadcasts against w was taken silently)
        vshape = np.shape(v) if not isinstance(v, Variable) else v.shape
        if len(vshape) != w.ndim or any(isinstance(a, int) and isinstance(b, int) and a != b
                                        for a, b in zip(vshape, w.shape)):
            raise ValueError(f"hvp: the vector for {_describe(w)} has shape "
                             f"{tuple(vshape)}, not the shape of w {tuple(w.shape)}")
    grads = grad(cost, wrt_list, disconnected=disconnected)
    dot = None
    for g, v in zip(grads, v_list):
        if isinstance(v, Variable):
            v = ops.stop_gradient(ops.cast(v, g.dtype))
        term = ops.sum(g * v)
        dot = term if dot is None else dot + term
    out = grad(dot, wrt_list, disconnected="zero")
    numerator, _ = cost_label(cost)
    names = [w.name for w in wrt_list]
    v_names = [getattr(v, "name", None) or "v" for v in v_list]
    # with several wrt, w's product holds the cross terms: the row block of w times all v
    every = names[0] if len(names) == 1 else ", ".join(map(str, names))
    v_every = v_names[0] if len(v_names) == 1 else f"({', '.join(v_names)})"
    for w, hv in zip(wrt_list, out):
        if w.name and all(names) and hv.owner is not None and hv.owner.grad_call is not None:
            hv.name = f"{derivative_label(numerator, [w.name, every])}·{v_every}"
    return out[0] if single else out
