"""Gradient labels name the cost and the order of differentiation; printed gradients fold
constant arithmetic (issue 7, defect 12)."""

import numpy as np

import symgraph as sg
from symgraph.graph import variables


def test_labels_name_the_cost_and_the_order():
    x = sg.vector("x", 3)
    f = (x ** 3).sum()
    f.name = "f"
    g = sg.grad(f, x)
    assert g.name == "d(f)/d(x)"
    H = sg.hessian(f, x)
    assert H.name == "d²(f)/d(x)²" and H.name != g.name
    s, t = sg.scalar("s"), sg.scalar("t")
    ds = sg.grad(s ** 4 * t, s)
    assert ds.name == "d((s ** 4.0) * t)/d(s)"          # a nameless cost: its expression
    assert sg.grad(ds, s).name == "d²((s ** 4.0) * t)/d(s)²"
    assert sg.grad(ds, t).name == "d²((s ** 4.0) * t)/d(s)d(t)"
    assert sg.grad(sg.grad(sg.grad(ds, s), s), t).name == "d⁴((s ** 4.0) * t)/d(s)d(s)d(s)d(t)"
    v = sg.vector("v", 3)
    assert sg.hvp(f, x, v).name == "d²(f)/d(x)²·v"
    long_cost = sg.exp(sg.tanh(sg.sin(sg.cos(x * x + 1.0) * 2.0) - 3.0)).sum()
    assert sg.grad(long_cost, x).name == "d(cost)/d(x)"  # too long to be a label


def test_one_node_that_is_the_gradient_of_two_variables_is_named_for_each(backend):
    """``a + b`` passes its gradient to both inputs and the seed passes straight through:
    every wrt was labelled with the first name given (d(c)/d(x) for W, d(s)/d(s) for a and b).
    Values: the closed forms."""
    x = sg.vector("x", 3)
    W = sg.shared(np.ones(3), name="W")
    c = ((x + W) ** 2).sum()
    c.name = "c"
    gx, gW = sg.grad(c, [x, W])
    assert (gx.name, gW.name) == ("d(c)/d(x)", "d(c)/d(W)")
    a, b = sg.scalar("a"), sg.scalar("b")
    s = a + b
    s.name = "s"
    ga, gb = sg.grad(s, [a, b])
    assert (ga.name, gb.name, sg.grad(s, b).name) == ("d(s)/d(a)", "d(s)/d(b)", "d(s)/d(b)")
    assert "d(c)/d(W) = identity(d(c)/d(x))" in sg.pprint([gW])
    xv = np.array([1.0, -2.0, 0.5])
    got = sg.function([x, a, b], [gx, gW, ga, gb], backend=backend)(xv, 1.0, 2.0)
    for value, expected in zip(got, [2 * (xv + 1), 2 * (xv + 1), 1.0, 1.0]):
        np.testing.assert_array_equal(value, expected)


def test_hessian_rows_are_not_labelled_as_the_gradient():
    w = sg.vector("w", 2)
    cost = (w * w * w).sum()
    cost.name = "c"
    text = sg.pprint(sg.hessian(cost, w))
    rows = [line.split(" := ")[0] for line in text.splitlines() if " := " in line]
    assert "d(c)/d(w)" in rows                          # the gradient, once
    assert "d(d(c)/d(w)[0])/d(w)" in rows and "d(d(c)/d(w)[1])/d(w)" in rows


def test_printed_gradients_fold_constant_arithmetic():
    x = sg.vector("x", 3)
    f = (x ** 3).sum()
    f.name = "f"
    text = sg.pprint(sg.grad(f, x))
    assert "3.0 - 1.0" not in text and "x ** 2.0" in text
    hessian_text = sg.pprint(sg.hessian(f, x))
    assert "(3.0 - 1.0) - 1.0" not in hessian_text and "x ** 1.0" in hessian_text
    # folding is printing only: the graph still computes the same values
    H = sg.function([x], sg.hessian(f, x), backend="numpy")(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(H, np.diag([6.0, 12.0, 18.0]))


def test_hvp_over_several_parameters_is_labelled_with_its_cross_terms():
    """With several wrt, a's product is H_aa va + H_ab vb; it was labelled d²(c)/d(a)²·va."""
    a, b, va, vb = sg.vector("a"), sg.vector("b"), sg.vector("va"), sg.vector("vb")
    c = sg.sum(a * a * b)
    c.name = "c"
    ha, hb = sg.hvp(c, [a, b], [va, vb])
    assert (ha.name, hb.name) == ("d²(c)/d(a)d(a, b)·(va, vb)", "d²(c)/d(b)d(a, b)·(va, vb)")
    # the value is the whole row block: (2b va + 2a vb, 2a va)
    f = sg.function([a, b, va, vb], [ha, hb], backend="numpy")
    av, bv, vav, vbv = np.array([1.0, 2.0]), np.array([3.0, -1.0]), np.ones(2), np.full(2, 2.0)
    got_a, got_b = f(av, bv, vav, vbv)
    np.testing.assert_allclose(got_a, 2 * bv * vav + 2 * av * vbv)
    np.testing.assert_allclose(got_b, 2 * av * vav)


def test_the_seed_of_a_second_derivative_is_not_labelled_as_the_first_seed():
    """``grad(grad(f, s), s)`` seeds with ones like ``d(f)/d(s)``, i.e. d(d(f)/d(s)) by
    itself; it was labelled ``d(f)/d(f)``, the first call's seed: two different nodes of
    one graph under one label (pprint showed ``d(f)/d(f)`` and ``d(f)/d(f)_2``)."""
    s = sg.scalar("s", dtype="float64")
    f = s ** 3 - s / (s + 2.0)
    f.name = "f"
    g1 = sg.grad(f, s)
    g2 = sg.grad(g1, s)
    seeds = [v for v in variables([g2]) if v.name == "d(f)/d(f)"]
    assert len(seeds) == 1, [v.owner.inputs for v in seeds]
    assert g2.name == "d²(f)/d(s)²"
    value = sg.function([s], g2, backend="numpy")(np.float64(0.7))
    np.testing.assert_allclose(value, 6 * 0.7 + 4 / (0.7 + 2.0) ** 3)
