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
