"""Name scopes on nodes and ``clone_replace`` (the model API builds on both)."""

import numpy as np
import pytest

import symgraph as sg


def test_nodes_record_nested_scope_and_gradients_inherit_it():
    x = sg.tensor("x", ("batch", 3))
    W = sg.shared(np.ones((3, 2)), name="W")
    with sg.name_scope("block"), sg.name_scope("dense"):
        h = sg.tanh(x @ W)
    outside = h.sum()
    assert h.owner.scope == "block/dense"
    assert h.owner.inputs[0].owner.scope == "block/dense"
    assert outside.owner.scope is None
    g = sg.grad(outside, W)
    scopes = {n.scope for n in sg.graph.toposort([g]) if n.grad_call is not None}
    # gradient nodes take the scope of the forward node whose bprop made them
    assert "block/dense" in scopes
    assert sg.graph.current_scope() is None


def test_scope_in_build_errors_and_networkx():
    x = sg.tensor("x", ("batch", 3))
    with pytest.raises(ValueError, match=r"matmul in layer_7: .*3 vs 4"):
        with sg.name_scope("layer_7"):
            x @ sg.shared(np.ones((4, 2)))
    with sg.name_scope("s"):
        y = sg.exp(x)
    G = sg.to_networkx([y])
    assert G.nodes[y.id]["scope"] == "s"
    assert G.nodes[y.id]["site"].endswith(f":{y.site.lineno}")


@pytest.mark.parametrize("bad", ["", "a/b", None])
def test_bad_scope_names(bad):
    with pytest.raises(ValueError, match="name scope"):
        with sg.name_scope(bad):
            pass


def test_clone_replace_values_and_sharing(backend):
    x = sg.tensor("x", (None, 3))
    z = sg.tensor("z", (None, 3))
    W = sg.shared(np.arange(6.0).reshape(3, 2), name="W")
    c = sg.exp(W).sum()                       # does not depend on x: shared, not copied
    with sg.name_scope("net"):
        out = sg.tanh(x @ W) + c
    [new] = sg.clone_replace([out], {x: z * 2.0})
    assert new is not out and new.owner.scope == "net"
    assert c in sg.graph.toposort([new])[-1].inputs or any(
        c is i for n in sg.graph.toposort([new]) for i in n.inputs)
    X = np.random.default_rng(0).normal(size=(4, 3))
    f = sg.function([z], new, backend=backend)
    expect = np.tanh((2 * X) @ np.arange(6.0).reshape(3, 2)) + np.exp(np.arange(6.0)).sum()
    np.testing.assert_allclose(f(X), expect, rtol=1e-12)


def test_clone_replace_substitute_hook():
    x = sg.tensor("x", (None, 3))
    h = sg.nn.relu(x)
    out = (h * 3.0).sum()
    [new] = sg.clone_replace([out], substitute=lambda v, new: sg.tanh(new(x)) if v is h else None)
    f = sg.function([x], new, backend="numpy")
    X = np.array([[-1.0, 0.5, 2.0]])
    np.testing.assert_allclose(f(X), (np.tanh(X) * 3).sum())
