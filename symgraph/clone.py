"""Rebuilding a graph with some variables replaced (Theano's ``clone``): the model API
builds its inference graphs this way (dropout off, batch norm on running statistics)."""

from __future__ import annotations

from collections.abc import Sequence

from .graph import Variable, toposort

__all__ = ["clone_replace"]


def clone_replace(outputs: Sequence[Variable], replace: dict[Variable, Variable] | None = None,
                  substitute=None) -> list[Variable]:
    """``outputs`` rebuilt with ``replace``'s keys swapped for its values (Theano's ``clone``).

    Nodes none of whose inputs changed are shared, not copied; a copied node
    keeps the creation site, name scope and gradient tags of the node it copies,
    so errors and pictures still point at the user's code. ``substitute(var,
    rebuilt)``, if given, is asked first for every op output and may return a
    replacement; ``rebuilt(v)`` gives the new version of any variable the walk
    has passed (every ancestor of ``var``). The model API builds inference graphs
    this way: dropout off, batch norm on running statistics.
    """
    mapping: dict[Variable, Variable] = dict(replace or {})

    def rebuilt(v: Variable) -> Variable:
        return mapping.get(v, v)

    for node in toposort(outputs):
        inputs = [mapping.get(x, x) for x in node.inputs]
        if all(node.outputs[i] in mapping for i in range(len(node.outputs))):
            continue
        if substitute is not None:
            found = False
            for out in node.outputs:
                new = substitute(out, rebuilt)
                if new is not None:
                    mapping[out] = new
                    found = True
            if found:
                continue
        if all(a is b for a, b in zip(inputs, node.inputs)):
            continue
        new_node = node.op.make_node(*inputs)
        new_node.site, new_node.scope = node.site, node.scope
        new_node.grad_of, new_node.grad_call = node.grad_of, node.grad_call
        for old, new in zip(node.outputs, new_node.outputs):
            new.site, new.name = old.site, old.name
            mapping[old] = new
    return [mapping.get(v, v) for v in outputs]
