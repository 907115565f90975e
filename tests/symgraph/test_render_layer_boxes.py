"""What the layers view puts in each layer's box: every gradient node of the layer."""

from __future__ import annotations

import re

import numpy as np

import symgraph as sg
from symgraph.rendering import render_source


def rnn_step(steps: int):
    """A tanh RNN in scope ``rnn`` over ``steps`` steps (W read at every step, U at every
    step but the first), a readout in scope ``out``, cross-entropy and SGD updates."""
    x = sg.tensor("x", ("batch", steps, 3), "float64")
    y = sg.tensor("y", ("batch",), "int64")
    with sg.name_scope("rnn"):
        W = sg.shared(np.ones((3, 5)), name="rnn/W")
        U = sg.shared(np.eye(5), name="rnn/U")
        h = sg.tanh(x[:, 0] @ W)
        for t in range(1, steps):
            h = sg.tanh(x[:, t] @ W + h @ U)
    with sg.name_scope("out"):
        V = sg.shared(np.ones((5, 2)), name="out/V")
        logits = h @ V
    loss = sg.nn.cross_entropy(logits, y)
    params = [W, U, V]
    grads = sg.grad(loss, params)
    return [loss], {p: p - 0.1 * g for p, g in zip(params, grads, strict=True)}


def op_counts(label: str) -> dict[str, int]:
    """{op: count} from a box's label (``mul×2, sum`` on the lines after its head)."""
    counts: dict[str, int] = {}
    for item in ", ".join(label.split("\\n")[1:]).split(", "):
        name, _, n = item.partition("×")
        counts[name] = int(n or 1)
    return counts


def boxes(text: str) -> dict[str, str]:
    """{box id: label} of the layers view's DOT text."""
    return dict(re.findall(r'^\s*(b\d+) \[label="([^"]*)"', text, re.M))


def test_the_sums_of_a_weights_gradient_parts_are_in_its_layers_gradient_box():
    # ``grad`` adds the parts of W's gradient (one per step that reads it) with nodes no
    # forward node's bprop made, so they had no scope and were drawn in "∂ loss", with an
    # edge from ∂ rnn to ∂ loss and the loss's gradient box updating the RNN's weights
    steps = 4
    outputs, updates = rnn_step(steps)
    text = render_source(outputs, view="layers", updates=updates)
    labels = boxes(text)
    by_head = {label.split("\\n")[0]: box for box, label in labels.items()}
    # W's 4 parts need 3 adds, U's 3 parts 2; the bprops of add and tanh make none
    assert f"add×{2 * steps - 3}" in labels[by_head["∂ rnn"]], labels[by_head["∂ rnn"]]
    assert "add" not in labels[by_head["∂ loss"]], labels[by_head["∂ loss"]]
    rnn_grad, loss_grad = by_head["∂ rnn"], by_head["∂ loss"]
    update_box = next(b for b, label in labels.items() if "parameters updated" in label)
    assert re.search(rf'{rnn_grad} -> {update_box} \[label="\(3, 5\), \(5, 5\)"', text)
    assert not re.search(rf"{rnn_grad} -> {loss_grad} ", text)
    assert not re.search(rf"{loss_grad} -> {update_box} ", text)



def widening_mlp(depth: int):
    """``depth`` tanh layers ``dense_<i>`` of widths 2, 3, ... (no two alike: nothing is
    collapsed), cross-entropy and SGD updates."""
    x = sg.tensor("x", ("batch", 2), "float64")
    y = sg.tensor("y", ("batch",), "int64")
    h, params = x, []
    for i in range(1, depth + 1):
        with sg.name_scope(f"dense_{i}"):
            W = sg.shared(np.ones((i + 1, i + 2)), name=f"dense_{i}/W")
            b = sg.shared(np.zeros(i + 2), name=f"dense_{i}/b")
            h = sg.tanh(h @ W + b)
        params += [W, b]
    loss = sg.nn.cross_entropy(h, y)
    grads = sg.grad(loss, params)
    return [loss], {p: p - 0.1 * g for p, g in zip(params, grads, strict=True)}


def test_the_layers_view_is_not_capped_by_default():
    # the default cap of 400 variables is for the views drawing one node per variable;
    # the layers view drew its first 400 and dropped the rest from its boxes: the digits
    # LSTM's step (722 nodes) showed dense_1's gradient as "transpose, matmul", with no
    # bias sum, no weight-gradient product and no edge to the updates
    depth = 30
    outputs, updates = widening_mlp(depth)
    total = len(sg.to_networkx(outputs, updates=updates))
    assert total > 400
    text = render_source(outputs, view="layers", updates=updates)
    assert "elided" not in text
    assert text == render_source(outputs, view="layers", updates=updates, max_nodes=None)
    labels = boxes(text)
    # the first layer's gradient: W's product and b's sum (nothing asks for x's); the
    # others' also the product passing the gradient down
    heads = {label.split("\\n")[0]: label for label in labels.values()}
    for i in range(1, depth + 1):
        ops = op_counts(heads[f"∂ dense_{i}"])
        assert (ops["matmul"], ops["sum"]) == (1 if i == 1 else 2, 1), (i, ops)
    assert any(f"{2 * depth} parameters updated" in label for label in labels.values())
    # the ops view keeps its cap, and an explicit cap still applies to the layers view
    assert f"of {total} nodes elided" in render_source(outputs, view="ops", updates=updates)
    assert "elided" in render_source(outputs, view="layers", updates=updates, max_nodes=100)
