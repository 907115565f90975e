"""``sg.function(..., check_finite=True)``: the NaN/Inf debugger.

A call whose outputs or updates hold NaN/Inf changes no parameter and raises
``NonFiniteError`` naming the first node that made a non-finite value from finite inputs
(op, scope, inputs' ranges, the user's line, and for a gradient node its forward node), or
the input that brought one in.  The oracle for "first" is the graph's construction: each test
plants exactly one source of NaN/Inf at a known line.
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest

import symgraph as sg
from symgraph.evaluate import NonFiniteError, is_finite

function_module = importlib.import_module("symgraph.function")  # (sg.function is the function)


def line_above() -> int:
    """The line number just above the caller's line."""
    return inspect.currentframe().f_back.f_lineno - 1


def mlp_with_log(backend: str, shift: float):
    """x -> dense -> log(h - shift) in scope "deep" -> dense -> loss, SGD on both weights."""
    rng = np.random.default_rng(0)
    x = sg.tensor("x", shape=("batch", 4))
    W1 = sg.shared(rng.uniform(0.1, 0.5, (4, 5)), name="W1")
    W2 = sg.shared(rng.standard_normal((5, 2)), name="W2")
    with sg.name_scope("dense1"):
        h = sg.tanh(x @ W1)
    with sg.name_scope("deep"):
        z = sg.log(h - shift)
    log_line = line_above()
    with sg.name_scope("dense2"):
        out = z @ W2
    loss = (out ** 2).mean()
    grads = sg.grad(loss, [W1, W2])
    f = sg.function([x], loss, updates={W: W - 0.01 * g for W, g in zip([W1, W2], grads)},
                    backend=backend, check_finite=True)
    return f, [W1, W2], log_line


def test_log_of_a_negative_value_deep_in_the_graph_is_named(backend):
    f, params, log_line = mlp_with_log(backend, shift=0.2)
    x = np.full((3, 4), 1.0)
    f(x)  # finite: tanh(x @ W1) > 0.2 everywhere
    x[1] = -1.0  # row 1: h < 0, log of a negative value
    before = [W.get_value() for W in params]
    with pytest.raises(NonFiniteError) as info:
        f(x)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert err.node.op.name == "log" and err.node.scope == "deep"
    assert err.node.site.lineno == log_line and err.node.grad_of is None
    text = str(err)
    assert text.startswith("log in deep produced non-finite values from finite inputs")
    assert "nan of 15 (first at index (1, 0))" in text
    assert f"line {log_line}" in text and "z = sg.log(h - shift)" in text
    # the input's range: row 1 is tanh(-sum W1) - 0.2, the other rows tanh(sum W1) - 0.2
    W1 = before[0]
    low, high = np.tanh(-W1.sum(0)).min() - 0.2, np.tanh(W1.sum(0)).max() - 0.2
    assert f"float64 (3, 5) range [{low}, {high}]" in text
    assert "output 0" in text and "the update of 'W1'" in text
    for W, old in zip(params, before):  # no parameter changes on that call
        np.testing.assert_array_equal(W.get_value(), old)


def test_nan_in_a_gradient_names_the_gradient_node_and_its_forward_node(backend):
    P = sg.shared(np.array([1.0, 0.0, 4.0]), name="P")
    with sg.name_scope("layer"):
        y = sg.sqrt(P)
    sqrt_line = line_above()
    cost = y.sum()
    f = sg.function([], cost, updates={P: P - 0.1 * sg.grad(cost, P)}, backend=backend,
                    check_finite=True)
    with pytest.raises(NonFiniteError) as info:
        f()  # the forward is finite (sqrt(0) = 0), d sqrt/dP = 1 / (2 sqrt(0)) is not
    err = info.value
    assert err.node.grad_of is not None and err.node.grad_of.op.name == "sqrt"
    assert err.node.grad_of.site.lineno == sqrt_line
    assert err.node.scope == "layer"  # a gradient node belongs to its forward node's scope
    assert "made by the bprop of sqrt in layer created at" in str(err)
    assert f"line {sqrt_line}" in str(err) and "+inf of 3 (first at index (1,))" in str(err)
    assert err.bad == ["the update of 'P'"]
    np.testing.assert_array_equal(P.get_value(), [1.0, 0.0, 4.0])


def test_no_variable_changes_after_the_raising_call_and_the_next_call_works(backend):
    # in-place SGD, a double-buffered momentum, a counter: all restored
    x = sg.tensor("x", shape=("batch", 3))
    W = sg.shared(np.eye(3), name="W")
    m = sg.shared(np.zeros((3, 3)), name="m")
    t = sg.shared(np.float64(0.0), name="t")
    loss = sg.log(x @ W).sum()
    g = sg.grad(loss, W)
    m_new = 0.9 * m + g
    updates = {m: m_new, W: W - 0.01 * m_new, t: t + 1.0}
    f = sg.function([x], loss, updates=updates, backend=backend, check_finite=True)
    twin = sg.function([x], loss, updates=updates, backend=backend)
    state = [v.get_value() for v in (W, m, t)]
    with pytest.raises(NonFiniteError):
        f(np.array([[1.0, 2.0, -3.0]]))
    for v, old in zip((W, m, t), state):
        np.testing.assert_array_equal(v.get_value(), old)
    good = np.array([[1.0, 2.0, 3.0]])
    value = f(good)
    after = [v.get_value() for v in (W, m, t)]
    for v, old in zip((W, m, t), state):
        v.set_value(old)
    assert twin(good) == value
    for v, new in zip((W, m, t), after):
        np.testing.assert_array_equal(v.get_value(), new)


def test_an_infinite_input_is_reported_where_it_enters(backend):
    u = sg.tensor("u", shape=(3,))
    v = sg.tensor("v", shape=(3,))
    with sg.name_scope("head"):
        scaled = u * 2.0
    mul_line = line_above()
    f = sg.function([u, v], (scaled + sg.exp(v)).sum(), backend=backend, check_finite=True)
    with pytest.raises(NonFiniteError) as info:
        f(np.array([1.0, np.inf, 2.0]), np.zeros(3))
    err = info.value
    assert err.variable is u and err.node.op.name == "mul" and err.node.scope == "head"
    assert err.node.site.lineno == mul_line
    text = str(err)
    assert text.startswith("input 'u' holds non-finite values: 1 +inf of 3 (first at index (1,))")
    assert "it enters the graph at mul in head" in text
    assert "NON-FINITE: 1 +inf" in text  # the entry node's input listing marks it
    with pytest.raises(NonFiniteError) as info:  # exp overflows: exp is the first node
        f(np.ones(3), np.array([0.0, 1000.0, 0.0]))
    assert info.value.node.op.name == "exp" and "1 +inf" in str(info.value)


def test_a_masked_nan_is_not_blamed(backend):
    x = sg.tensor("x", shape=(3,))
    y = sg.tensor("y", shape=(3,))
    safe = sg.where(x > 0, sg.log(x), 0.0)  # log(-1) = nan, masked by the where
    f = sg.function([x, y], safe.sum() + sg.sqrt(y).sum(), backend=backend, check_finite=True)
    assert np.isclose(f(np.array([-1.0, 1.0, np.e]), np.ones(3)), 4.0)  # no false positive
    with pytest.raises(NonFiniteError) as info:
        f(np.array([-1.0, 1.0, np.e]), np.array([1.0, -4.0, 1.0]))
    assert info.value.node.op.name == "sqrt"


def test_no_false_positives_and_same_results_on_finite_runs(backend):
    rng = np.random.default_rng(1)
    x = sg.tensor("x", shape=("batch", 6))
    y = sg.tensor("y", shape=("batch",), dtype="int64")

    def build(check):
        W = sg.shared(np.full((6, 4), 0.1), name="W")
        logits = x @ W
        loss = sg.nn.cross_entropy(logits, y)
        f = sg.function([x, y], [loss, sg.argmax(logits, axis=1)],
                        updates={W: W - 0.5 * sg.grad(loss, W)}, backend=backend,
                        check_finite=check)
        return f, W
    (f, W), (g, V) = build(True), build(False)
    for _ in range(5):
        data = rng.standard_normal((8, 6)) * 10, rng.integers(0, 4, 8)
        (a, ka), (b, kb) = f(*data), g(*data)
        assert a == b and np.array_equal(ka, kb)
    np.testing.assert_array_equal(W.get_value(), V.get_value())
    big = sg.tensor("big", shape=(5000,))  # finite values whose sum overflows
    h = sg.function([big], big * 1.0, backend=backend, check_finite=True)
    assert np.all(h(np.full(5000, 1e308)) == 1e308)


def test_epoch_names_the_failing_step_and_undoes_the_epoch(backend):
    x = sg.tensor("x", shape=("batch", 2))
    W = sg.shared(np.ones((2, 1)), name="W")
    loss = sg.sqrt(x @ W).mean()
    f = sg.function([x], loss, updates={W: W - 0.01 * sg.grad(loss, W)}, backend=backend,
                    check_finite=True)
    data = np.ones((40, 2))
    data[27] = -5.0  # in step 3 of batch_size 8 (examples 24:32)
    with pytest.raises(NonFiniteError) as info:
        f.epoch(data, batch_size=8)
    err = info.value
    assert err.step == 3 and err.node.op.name == "sqrt"
    assert str(err).startswith("epoch step 3 (examples 24:32; the epoch's updates are undone)")
    np.testing.assert_array_equal(W.get_value(), np.ones((2, 1)))
    data[27] = 1.0
    losses = f.epoch(data, batch_size=8)
    assert losses.shape == (5,) and np.all(np.isfinite(losses))


def test_off_does_no_new_work_on_the_call_path(backend, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a check ran with check_finite off")
    monkeypatch.setattr(function_module, "is_finite", forbidden)
    monkeypatch.setattr(function_module, "trace_nonfinite", forbidden)
    x = sg.tensor("x", shape=("batch",))
    c = sg.shared(np.float64(0.0), name="c")
    f = sg.function([x], sg.log(x).sum(), updates={c: c + 1.0}, backend=backend)
    with np.errstate(all="ignore"):
        assert np.isnan(f(np.array([-1.0, 2.0])))  # no check: the NaN comes back
        f.epoch(np.ones(32), batch_size=8)
    assert c.get_value() == 5.0


def test_is_finite():
    assert is_finite(np.arange(3)) and is_finite(np.array([True])) and is_finite(2.0)
    assert not is_finite(np.float32("nan")) and not is_finite([1.0, -np.inf])
    big = np.full(10_000, 3e38, np.float32)  # the sum overflows, every value is finite
    assert is_finite(big)
    big[-1] = np.nan
    assert not is_finite(big)


def test_a_non_finite_parameter_is_named_as_the_parameter(backend):
    x = sg.tensor("x", shape=(2,))
    W = sg.shared(np.array([1.0, np.nan]), name="W")
    f = sg.function([x], (x * W).sum(), updates={W: W * 0.5}, backend=backend,
                    check_finite=True)
    with pytest.raises(NonFiniteError) as info:
        f(np.ones(2))
    assert info.value.variable is W and info.value.node.op.name == "mul"
    assert str(info.value).startswith("parameter 'W' holds non-finite values: 1 nan of 2")
    assert info.value.bad == ["output 0", "the update of 'W'"]
    np.testing.assert_array_equal(W.get_value(), [1.0, np.nan])
