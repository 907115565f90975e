"""The layers view of repeated layers whose weights the collapsed block does not own."""

from __future__ import annotations

import re

import numpy as np

import symgraph as sg
from symgraph.rendering import render_source


def unprefixed_chain(depth: int, width: int = 4):
    """``depth`` tanh layers in scopes ``layer_<i>`` whose weights are named ``W<i>``/``b<i>``
    (not ``layer_<i>/W``: the user's own names), an mse cost, SGD updates: each weight is
    read by its layer and by the update arithmetic outside every scope."""
    x, y = sg.matrix("x", dtype="float32"), sg.matrix("y", dtype="float32")
    h, params = x, []
    for i in range(1, depth + 1):
        with sg.name_scope(f"layer_{i}"):
            W = sg.shared(np.eye(width, dtype="float32"), name=f"W{i}")
            b = sg.shared(np.zeros(width, dtype="float32"), name=f"b{i}")
            h = sg.tanh(h @ W + b)
        params += [W, b]
    cost = sg.mean((h - y) ** 2)
    grads = sg.grad(cost, params)
    updates = {p: p - np.float32(0.1) * g for p, g in zip(params, grads, strict=True)}
    return sg.function([x, y], cost, updates=updates, backend="numpy")


def test_layers_view_of_repeated_layers_with_weights_read_by_the_updates():
    # the weights go in the block's box (with their forward reader) but are no members of
    # the block: looking their unit up raised KeyError, for any model built in a loop with
    # name scopes and its own weight names
    depth = 12
    text = render_source(unprefixed_chain(depth), view="layers")
    labels = re.findall(r'^\s*b\d+ \[.*label="([^"]*)"', text, re.M)
    # layer_1 differs (nothing asks for the gradient of x); of the run layer_2 ... layer_12
    # the first and last are drawn in full
    middle = depth - 3
    forward = [lab for lab in labels if lab.startswith(f"×{middle} like layer_2")]
    assert len(forward) == 1, labels
    # the weights line names one unit's weights and shapes, as for weights the block owns
    assert "\\nW (4, 4), b (4,)\\n" in forward[0], forward[0]
    assert any(lab.startswith(f"∂ ×{middle} like layer_2") for lab in labels)
    # one self-loop per box: the links from one of the collapsed units to the next, not
    # from a weight to the layer reading it
    assert re.search(rf'(b\d+) -> \1 \[label="×{middle - 1}"', text)
    assert f"{2 * depth} parameters updated" in text


def parameter_nodes(text: str) -> list[str]:
    """Labels of the parameters drawn one by one in DOT text."""
    return re.findall(r'^\s*v\d+ \[.*label="([^"\\]*)\\n[^"]*".*class="parameter"', text, re.M)


def test_ops_view_draws_the_weights_of_collapsed_layers_in_their_block():
    # only the weights of the layers drawn in full are nodes of their own, as when they are
    # named after their scope (``layer_3/W``, what the model API does); with the user's own
    # names every weight was, with edges into the block and to the updates (a 50-layer
    # MLP's picture was 12,000 pixels wide), because the update arithmetic also reads it
    depth = 12
    drawn = parameter_nodes(render_source(unprefixed_chain(depth), view="ops"))
    # layer_1 (it differs), layer_2 and layer_12 (the run's first and last) are drawn
    assert sorted(drawn) == sorted(f"{w}{i}" for i in (1, 2, depth) for w in "Wb")
    assert "\\nW (4, 4), b (4,)\\n" in render_source(unprefixed_chain(depth), view="ops")
