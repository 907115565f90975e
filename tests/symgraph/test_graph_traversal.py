"""``symgraph.graph.toposort`` against a recursive depth-first walk (the oracle: inputs in
order, each node listed once, after all of its inputs), on random graphs with shared
subexpressions, several outputs and repeated inputs."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import symgraph as sg
from symgraph.graph import toposort


def _reference(outputs) -> list:
    order, seen = [], set()

    def visit(var) -> None:
        node = var.owner
        if node is None or id(node) in seen:
            return
        for inp in node.inputs:
            visit(inp)
        seen.add(id(node))
        order.append(node)

    for out in outputs:
        visit(out)
    return order


def _random_graph(seed: int):
    """Variables of a random DAG: each new one combines two earlier ones (often the same
    one twice, often an old one), so nodes have many consumers and repeated inputs."""
    rng = np.random.default_rng(seed)
    pool = [sg.tensor(f"x{i}", shape=(3,), dtype="float32") for i in range(3)]
    for _ in range(200):
        a, b = (pool[int(rng.integers(len(pool)))] for _ in range(2))
        if rng.random() < 0.2:
            b = a
        combine = (lambda p, q: p + q, lambda p, q: p * q, sg.maximum)[int(rng.integers(3))]
        pool.append(combine(a, b))
    picks = rng.choice(np.arange(3, len(pool)), size=4, replace=False)
    return [pool[int(i)] for i in picks]


@pytest.mark.parametrize("seed", range(6))
def test_toposort_is_the_depth_first_post_order(seed):
    outputs = _random_graph(seed)
    for outs in (outputs, outputs[::-1], outputs[:1], outputs + outputs):
        order = toposort(outs)
        assert order == _reference(outs)
        position = {id(n): k for k, n in enumerate(order)}
        assert len(position) == len(order)  # each node once
        for node in order:  # after its inputs
            assert all(x.owner is None or position[id(x.owner)] < position[id(node)]
                       for x in node.inputs)


def test_toposort_of_a_long_chain_does_not_recurse():
    x = sg.tensor("x", shape=(2,), dtype="float32")
    y = x
    depth = sys.getrecursionlimit() + 500
    for _ in range(depth):
        y = y + 1.0
    order = toposort([y])
    assert len(order) == depth
    assert order[0].inputs[0] is x and order[-1].outputs[0] is y


def test_toposort_of_inputs_and_constants_is_empty():
    x = sg.tensor("x", shape=(2,), dtype="float32")
    assert toposort([x, sg.constant(np.ones(2, np.float32))]) == []
