"""The rewrite pipeline: same results with and without it, fewer nodes, the user's graph intact.

The oracle is the unrewritten graph on the numpy backend (``rewrite=False``).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
from symgraph.graph import Constant, SharedVariable, graph_inputs, toposort
from symgraph.ops import Cast, DropoutMask, Reduce, Size, fill
from symgraph.ops.elemwise import ELEMWISE
from symgraph.ops.nn import LogSoftmax
from symgraph.ops.structure import DimShuffle, Reshape
from symgraph.rewrites import FOLD_MAX_ELEMENTS, RewriteReport, count_nodes, pipeline, rewrite_graph

RNG = np.random.default_rng(0)


def both(inputs, outputs, *args):
    """Outputs without and with rewrites (numpy backend), and the rewritten function."""
    plain = sg.function(inputs, outputs, backend="numpy", rewrite=False)
    rewritten = sg.function(inputs, outputs, backend="numpy", rewrite=True)
    return plain(*args), rewritten(*args), rewritten


def assert_same(a, b):
    for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
        assert np.shape(x) == np.shape(y)
        assert np.asarray(x).dtype == np.asarray(y).dtype


def op_names(outputs) -> list[str]:
    return [node.op.name for node in toposort(outputs)]


def rewritten(outputs):
    new, report = rewrite_graph(outputs)
    return new, report, op_names(new)


def mlp_loss_and_grads(batch="batch"):
    x = sg.tensor("x", (batch, 4))
    y = sg.tensor("y", (batch,), "int64")
    sizes = [(4, 5), (5, 5), (5, 3)]
    params = []
    h = x
    for i, (n_in, n_out) in enumerate(sizes):
        W = sg.shared(RNG.normal(size=(n_in, n_out)), name=f"W{i}")
        b = sg.shared(RNG.normal(size=n_out), name=f"b{i}")
        params += [W, b]
        h = h @ W + b
        if i < len(sizes) - 1:
            h = sg.nn.relu(h)
    loss = sg.nn.cross_entropy(h, y)
    loss.name = "loss"
    return x, y, loss, sg.grad(loss, params)


def snapshot(outputs):
    """Everything rewriting must not change about the user's nodes."""
    return [(node, node.op, list(node.inputs), list(node.outputs), node.site, node.grad_of,
             node.grad_call, [(o.name, o.type, o.owner, o.site) for o in node.outputs])
            for node in toposort(outputs)]


# --------------------------------------------------------------------------- same results


def test_elementwise_chain_same_results():
    x = sg.tensor("x", (3, 4))
    y = sg.tensor("y", (4,))
    out = sg.log(sg.exp(sg.ops.neg(-x) * 1 + 0)) / 1 - 0 + y * 0 + sg.stop_gradient(x) * sg.exp(y)
    args = RNG.normal(size=(3, 4)), RNG.normal(size=4)
    plain, new, f = both([x, y], out, *args)
    assert_same(plain, new)
    remaining = op_names(f.graph_outputs)
    assert "log" not in remaining and "neg" not in remaining and "stop_gradient" not in remaining
    assert f.rewrite_report.nodes_after < f.rewrite_report.nodes_before


def test_mlp_gradient_same_results_and_fewer_nodes():
    x, y, loss, grads = mlp_loss_and_grads()
    X, Y = RNG.normal(size=(6, 4)), np.array([0, 1, 2, 0, 1, 2])
    plain, new, f = both([x, y], [loss, *grads], X, Y)
    assert_same(plain, new)
    report = f.rewrite_report
    assert report.nodes_before == count_nodes([loss, *grads])
    assert report.nodes_after == count_nodes(f.graph_outputs) < report.nodes_before
    print(f"\nMLP gradient graph (symbolic batch): {report.nodes_before} -> "
          f"{report.nodes_after} nodes\n{report}")


def test_mlp_gradient_fixed_batch_folds_size():
    x, y, loss, grads = mlp_loss_and_grads(batch=6)
    X, Y = RNG.normal(size=(6, 4)), np.array([0, 1, 2, 2, 1, 0])
    plain, new, f = both([x, y], [loss, *grads], X, Y)
    assert_same(plain, new)
    assert "size" in op_names([loss, *grads]) and "size" not in op_names(f.graph_outputs)
    print(f"\nMLP gradient graph (fixed batch): {f.rewrite_report.nodes_before} -> "
          f"{f.rewrite_report.nodes_after} nodes")


def test_hessian_same_results():
    v = sg.vector("v", 3)
    cost = sg.sum(sg.tanh(v) ** 3) + sg.sum(v * v) * 1 + sg.log(sg.exp(v[0]))
    H = sg.hessian(cost, v)
    plain, new, f = both([v], H, np.array([0.1, -0.5, 2.0]))
    assert_same(plain, new)
    assert f.rewrite_report.nodes_after < f.rewrite_report.nodes_before


def test_training_step_with_updates_and_dropout():
    x = sg.tensor("x", ("batch", 3))
    W = sg.shared(RNG.normal(size=(3, 2)), name="W")
    loss = sg.sum(sg.nn.dropout(x @ W, keep_prob=0.5, seed=3) ** 2)
    updates = {W: W - 0.1 * sg.grad(loss, W)}
    shared = [v for v in graph_inputs([loss]) if isinstance(v, SharedVariable)]
    X = RNG.normal(size=(4, 3))
    results = []
    for rewrite in (False, True):
        start = [v.get_value() for v in shared]  # W and dropout's call counter
        f = sg.function([x], loss, updates=updates, rewrite=rewrite)
        results.append([f(X), f(X), W.get_value()])
        for v, value in zip(shared, start):
            v.set_value(value)
    for a, b in zip(*results):
        assert_same(a, b)
    assert "dropout_mask" in op_names(f.graph_outputs)


PIECES = [
    lambda a, b: a * 1, lambda a, b: 1 * a, lambda a, b: a + 0, lambda a, b: a - 0,
    lambda a, b: 0 - a, lambda a, b: a / 1, lambda a, b: a * 0, lambda a, b: sg.ops.neg(-a),
    lambda a, b: sg.log(sg.exp(a)), lambda a, b: (-a) * (-b), lambda a, b: a * b + a,
    lambda a, b: sg.transpose(sg.transpose(a)), lambda a, b: sg.ops.fill(b, a),
    lambda a, b: sg.stop_gradient(a) - b, lambda a, b: sg.tanh(a) * sg.ones_like(b),
]


@given(st.lists(st.tuples(st.integers(0, len(PIECES) - 1), st.booleans()),
                min_size=1, max_size=12))
def test_random_identity_chains_same_results(steps):
    x, y = sg.tensor("x", (2, 2)), sg.tensor("y", (2, 2))
    a, b = x, y
    for piece, swap in steps:
        a, b = (PIECES[piece](a, b), a) if not swap else (b, PIECES[piece](b, a))
    out = a + b
    X, Y = np.array([[0.5, -1.0], [2.0, 0.25]]), np.array([[-0.3, 0.7], [1.5, -2.0]])
    plain, new, f = both([x, y], out, X, Y)
    assert_same(plain, new)
    assert f.rewrite_report.nodes_after <= f.rewrite_report.nodes_before


# --------------------------------------------------------------------------- the user's graph


def test_user_graph_unchanged_and_tags_kept():
    x, y, loss, grads = mlp_loss_and_grads()
    outputs = [loss, *grads]
    before = snapshot(outputs)
    new, report = rewrite_graph(outputs)
    assert snapshot(outputs) == before
    old_nodes = {id(n) for n in toposort(outputs)}
    assert not any(id(n) in old_nodes for n in toposort(new))  # a new graph, not a shared one
    assert new[0].name == "loss"
    assert [g.name for g in new[1:]] == [g.name for g in grads]
    assert new[1].name == "d(loss)/d(W0)"
    grad_nodes = [n for n in toposort(new[1:]) if n.grad_of is not None]
    assert grad_nodes and all(n.grad_call is grads[0].owner.grad_call for n in grad_nodes)
    assert {n.grad_of for n in grad_nodes} <= set(toposort(outputs))
    assert {n.site for n in toposort(new)} <= {n.site for n in toposort(outputs)}
    assert new[1].owner.grad_of is grads[0].owner.grad_of
    assert new[1].owner.site == grads[0].owner.site


def test_rewriting_twice_changes_nothing_more():
    x, y, loss, grads = mlp_loss_and_grads()
    once, first = rewrite_graph([loss, *grads])
    twice, second = rewrite_graph(once)
    assert second.nodes_before == second.nodes_after == first.nodes_after
    assert not set(second.fired) - {"merge"}


def test_rewrite_false_turns_it_off():
    x = sg.tensor("x", (3,))
    out = x * 1
    off = sg.function([x], out, rewrite=False)
    on = sg.function([x], out)
    assert off.rewrite_report is None and off.graph_outputs == [out]
    assert isinstance(on.rewrite_report, RewriteReport) and on.graph_outputs == [x]
    assert_same(off(np.arange(3.0)), on(np.arange(3.0)))


def test_report_stages_and_text():
    x = sg.tensor("x", (3,))
    new, report = rewrite_graph([sg.exp(x) + sg.exp(x) * 1])
    names = [stage.name for stage in report.stages]
    assert names[:4] == ["dce", "merge", "constant_fold", "algebraic"]
    assert report.stages[1].fired == {"merge": 1}
    assert report.fired["mul_by_one"] == 1
    assert report.nodes_before == 4 and report.nodes_after == 2
    name, nodes_after, seconds, fired = report.stages[-1]
    assert nodes_after == 2 and seconds >= 0
    text = str(report)
    assert "4 -> 2 nodes" in text and "mul_by_one x1" in text


def test_passes_are_bounded():
    x = sg.tensor("x", (3,))
    out = x
    for _ in range(50):
        out = sg.ops.neg(-(out * 1 + 0))
    new, report = rewrite_graph([out], max_passes=1)
    assert new == [x]
    assert [s.name for s in report.stages][-1] == "algebraic"


def test_another_walk_runs_only_when_the_depth_cap_stopped_a_rule(monkeypatch):
    """A walk reaches the rules' fixed point unless MAX_RULE_DEPTH stopped one: then (and
    only then) the next walk goes on from there.  Two toy rules: ``-x -> |x|`` (a new node,
    one level deeper) and ``|x| -> x``."""
    rules = {"neg": [lambda node: sg.abs(node.inputs[0])],
             "abs": [lambda node: node.inputs[0]]}
    x = _x()
    new, report = rewrite_graph([-x], rules=rules)
    assert new == [x]
    assert [s.name for s in report.stages if s.name.startswith("algebraic")] == ["algebraic"]
    monkeypatch.setattr(pipeline, "MAX_RULE_DEPTH", 1)  # |x| is left to a new walk
    new, report = rewrite_graph([-x], rules=rules)
    assert new == [x]
    assert [s.name for s in report.stages if s.name.startswith("algebraic")] == [
        "algebraic", "algebraic#2"]
    assert report.stages[-1].fired == {"<lambda>": 1}


# --------------------------------------------------------------------------- identities


def _x(shape=(3, 4), dtype="float64"):
    return sg.tensor("x", shape, dtype)


IDENTITIES = [
    ("mul_by_one", lambda x: x * 1),
    ("mul_by_one", lambda x: 1 * x),
    ("mul_by_one", lambda x: x * sg.ones_like(x)),
    ("add_zero", lambda x: x + 0),
    ("add_zero", lambda x: 0 + x),
    ("sub_zero", lambda x: x - 0),
    ("div_by_one", lambda x: x / 1),
    ("neg_neg", lambda x: sg.ops.neg(-x)),
    ("log_exp", lambda x: sg.log(sg.exp(x))),
    ("identity_elemwise", lambda x: sg.stop_gradient(x)),
    ("identity_elemwise", lambda x: ELEMWISE["identity"](x)),
    ("fill_same_shape", lambda x: fill(sg.shared(np.zeros(4)), x)),
    ("cast_same_dtype", lambda x: Cast("float64")(x)),
    ("cast_cast", lambda x: sg.cast(sg.cast(x, "float64"), "float32")),
    ("dimshuffle_dimshuffle", lambda x: sg.transpose(sg.transpose(x))),
    ("dimshuffle_dimshuffle", lambda x: sg.squeeze(sg.expand_dims(x, 0), 0)),
    ("dimshuffle_identity", lambda x: DimShuffle((0, 1), 2)(x)),
    ("reshape_identity", lambda x: Reshape((-1, 4))(x)),
    ("reshape_reshape", lambda x: sg.reshape(sg.reshape(x, (12,)), (3, 4))),
    ("reduce_no_axes", lambda x: Reduce("sum", ())(x)),
    ("reduce_no_axes", lambda x: Reduce("max", (), keepdims=True)(x)),
]


@pytest.mark.parametrize("rule, build", IDENTITIES,
                         ids=[f"{r}-{i}" for i, (r, _) in enumerate(IDENTITIES)])
def test_identity_rule_removes_the_node(rule, build):
    x = _x(dtype="float32" if rule == "cast_cast" else "float64")
    out = build(x)
    new, report, names = rewritten([out])
    assert report.fired[rule] >= 1, str(report)
    assert new == [x] and names == []
    X = RNG.normal(size=(3, 4)).astype(x.dtype)
    assert_same(*both([x], out, X)[:2])


@pytest.mark.parametrize("dtype, kind", [("int8", "sum"), ("bool", "sum"), ("uint8", "sum"),
                                         ("int32", "mean")])
def test_a_widening_reduction_over_no_axes_becomes_a_cast(dtype, kind, backend):
    """numpy's sum of int8 over no axes is int64 (a mean of ints float64): the rule casts
    (it returned x itself, of the wrong dtype, which the rewriter refused)."""
    x = sg.tensor("x", (3, 4), dtype)
    out = Reduce(kind, ())(x)
    new, report, names = rewritten([out])
    assert report.fired["reduce_no_axes"] == 1 and names == ["cast<int64>" if kind == "sum"
                                                             else "cast<float64>"]
    X = RNG.integers(0 if dtype[0] in "bu" else -100, 100, size=(3, 4)).astype(dtype)
    got = sg.function([x], out, backend=backend)(X)
    want = getattr(np, kind)(X, axis=())
    assert got.dtype == out.dtype == (np.int64 if kind == "sum" else want.dtype)  # no uint64
    np.testing.assert_array_equal(got, want)


def test_mul_by_zero_gives_zeros():
    x = _x()
    new, report, names = rewritten([x * 0])
    assert report.fired["mul_by_zero"] == 1 and names == ["fill"]
    out = sg.function([x], x * 0)(np.ones((3, 4)))
    assert out.shape == (3, 4) and not out.any()


def test_mul_by_zero_with_broadcasting_keeps_the_broadcast_shape():
    x = _x((3, 1))
    out = x * np.zeros((1, 4))
    X = RNG.normal(size=(3, 1))
    plain, new, f = both([x], out, X)
    assert_same(plain, new)
    assert new.shape == (3, 4)
    assert f.rewrite_report.fired["mul_by_zero"] == 1
    assert f.graph_outputs[0].type == out.type


def test_mul_by_one_skipped_where_broadcasting_widens_x():
    x = _x((4,))
    out = x * np.ones((3, 4))
    new, report, names = rewritten([out])
    assert "mul_by_one" not in report.fired and names == ["mul"]
    assert_same(*both([x], out, np.arange(4.0))[:2])


def test_rules_respect_unknown_dims():
    # like (None,) and v (None,): the fill's runtime shape may come from like
    like, v = sg.tensor("like", (None,)), sg.tensor("v", (None,))
    new, report, names = rewritten([fill(like, v)])
    assert names == ["fill"] and "fill_same_shape" not in report.fired
    # (an unknown dim never broadcasts at run time: only a declared 1 does)
    with pytest.raises(ValueError, match="only dims declared as 1 broadcast"):
        sg.function([like, v], fill(like, v))(np.zeros(5), np.ones(1))
    plain, rewritten_value, _ = both([like, v], fill(like, v), np.zeros(5), np.ones(5))
    assert_same(plain, rewritten_value)
    # a symbolic dim is bound once per call: dropping the operand is safe
    like, v = sg.tensor("like", ("n",)), sg.tensor("v", ("n",))
    assert rewritten([fill(like, v)])[0] == [v]


def test_dtype_changing_identities_do_not_fire():
    x = _x(dtype="int32")
    for out in (x * 1.0, x / 1, sg.cast(sg.cast(x, "float32"), "float64")):
        new, report, names = rewritten([out])
        assert new != [x] and names
        assert_same(*both([x], out, np.arange(12, dtype="int32").reshape(3, 4))[:2])


def test_lossy_cast_chain_is_kept():
    x = _x()
    out = sg.cast(sg.cast(x, "float32"), "float64")
    new, report, names = rewritten([out])
    assert "cast_cast" not in report.fired and len(names) == 2
    X = np.array([[1 + 1e-12] * 4] * 3)
    assert_same(*both([x], out, X)[:2])


def test_dimshuffles_compose_into_one():
    x = _x((2, 1, 3))
    out = sg.transpose(sg.expand_dims(sg.squeeze(x, 1), 0), (2, 0, 1))
    new, report, names = rewritten([out])
    assert names == ["dimshuffle"]
    assert new[0].type == out.type
    assert_same(*both([x], out, RNG.normal(size=(2, 1, 3)))[:2])


def test_neg_times_neg_and_zero_minus():
    x, y = _x(), _x()
    new, report, names = rewritten([(-x) * (-y), 0 - x])
    assert report.fired["mul_neg_neg"] == 1 and report.fired["sub_zero"] == 1
    assert sorted(names) == ["mul", "neg"]


@pytest.mark.parametrize("dtype, values", [("uint8", [3, 1, 0]), ("int8", [-128, 5, 0])])
def test_neg_times_neg_is_kept_when_the_product_widens_a_wrapped_negation(dtype, values,
                                                                          backend):
    """-u wraps in uint8 (and -(-128) in int8) before the float product widens it, so
    (-x) * (-u) is not x * u: the rule fires only when both negations are in the product's
    dtype (where the wrap cancels), and the result is numpy's either way."""
    x, u = sg.vector("x", 3), sg.tensor("u", (3,), dtype)
    xv, uv = np.array([1.0, 2.0, 3.0]), np.array(values, dtype)
    f = sg.function([x, u], (-x) * (-u), backend=backend)
    np.testing.assert_array_equal(f(xv, uv), (-xv) * (-uv))
    assert f.rewrite_report.fired.get("mul_neg_neg", 0) == 0
    i, j = sg.tensor("i", (2,), dtype), sg.tensor("j", (2,), dtype)
    g = sg.function([i, j], (-i) * (-j), backend=backend)
    a, b = np.array(values[:2], dtype), np.array([7, 200 % 128], dtype)
    np.testing.assert_array_equal(g(a, b), (-a) * (-b))
    assert g.rewrite_report.fired["mul_neg_neg"] == 1


def test_an_operand_of_unknown_length_is_not_dropped_with_its_shape_check(backend):
    """x + zeros_like(y) with y of unknown length: numpy refuses y of length 5 against x's
    3, so the rewrite keeps the operand (dropping it accepted the call silently); names the
    function binds, and a fitting y, are unaffected."""
    x, y = sg.vector("x", 3), sg.tensor("y", (None,))
    f = sg.function([x, y], x + sg.zeros_like(y), backend=backend)
    with pytest.raises(ValueError):
        f(np.ones(3), np.ones(5))
    np.testing.assert_array_equal(f(np.ones(3), np.ones(3)), np.ones(3))
    n = sg.tensor("n", ("len",))
    g = sg.function([n], n + sg.zeros_like(n), backend=backend)
    assert g.rewrite_report.fired["add_zero"] == 1


def test_fill_of_smaller_value_is_kept():
    x = _x()
    new, report, names = rewritten([sg.zeros_like(x)])
    assert names == ["fill"]


# --------------------------------------------------------------------------- log(softmax)


@pytest.mark.parametrize("view", [
    lambda s: s,
    lambda s: sg.transpose(s),
    lambda s: sg.reshape(s, (6,)),
    lambda s: sg.reshape(sg.transpose(s), (1, 6)),
])
def test_log_softmax_is_fused_and_stable(view):
    logits = sg.tensor("logits", (2, 3))
    out = sg.log(view(sg.nn.softmax(logits)))
    new, report, names = rewritten([out])
    assert report.fired["log_softmax"] == 1
    assert any(isinstance(n.op, LogSoftmax) and n.op.axis == 1 for n in toposort(new))
    assert "log" not in names and "softmax" not in names
    X = np.array([[1000.0, -1000.0, 0.0], [1.0, 2.0, 3.0]])
    plain, fused, _ = both([logits], out, X)
    assert np.isneginf(plain).any()
    assert np.isfinite(fused).all()
    expected = view(sg.nn.log_softmax(logits))
    np.testing.assert_allclose(fused, sg.function([logits], expected, rewrite=False)(X))


def test_log_softmax_keeps_softmax_needed_elsewhere():
    logits = sg.tensor("logits", (2, 3))
    s = sg.nn.softmax(logits)
    new, report, names = rewritten([sg.log(s), s * 2])
    assert sorted(names) == ["log_softmax", "mul", "softmax"]


# --------------------------------------------------------------------------- merge and folding


def test_merge_equal_nodes_and_constants():
    x = _x()
    a = sg.exp(x) + sg.constant(np.float64(2.0))
    b = sg.exp(x) + sg.constant(np.float64(2.0))
    c = x[1:3] * x[1:3]  # slices in op props (unhashable before Python 3.12)
    new, report, names = rewritten([a, b, c])
    assert new[0] is new[1]
    assert sorted(names) == ["add", "exp", "getitem", "mul"]


def test_constant_folding():
    x = _x()
    c = sg.constant(np.arange(4.0))
    out = x + sg.exp(c) * 2 + sg.ops.size(x, dtype="float64")
    new, report, names = rewritten([out])
    assert names == ["add", "add"]
    assert report.fired["constant_fold"] >= 3
    assert_same(*both([x], out, RNG.normal(size=(3, 4)))[:2])


def test_constant_folding_skips_large_outputs():
    big = sg.constant(np.ones(FOLD_MAX_ELEMENTS + 1))
    new, report, names = rewritten([big * 3])
    assert names == ["mul"] and report.skipped["constant_fold: too large"] >= 1


def test_size_with_symbolic_dims_is_kept():
    x = _x(("batch", 4))
    new, report, names = rewritten([sg.ops.size(x)])
    assert names == ["size"]
    assert sg.function([x], sg.ops.size(x))(np.ones((5, 4))) == 20


def test_dropout_mask_is_never_folded():
    mask = DropoutMask(0.5, seed=1)(sg.constant(np.ones(8)), sg.constant(np.int64(3)))
    new, report, names = rewritten([mask])
    assert names == ["dropout_mask"]
    assert isinstance(Size((0,), "int64")(mask), sg.Variable)


def test_folding_errors_are_left_to_run_time():
    out = sg.constant(np.arange(3.0))[np.array([5])]  # out of bounds: fails when run
    new, report, names = rewritten([out])
    assert names == ["take"] and report.skipped["constant_fold: error"] >= 1
    with pytest.raises(IndexError, match="take"):
        sg.function([], out)()


def test_output_that_is_a_constant_or_input():
    x = _x()
    out = [x * 1, sg.constant(2.0) * 3]
    new, report, names = rewritten(out)
    assert new[0] is x and isinstance(new[1], Constant) and new[1].value == 6.0
    assert_same(*both([x], out, np.ones((3, 4)))[:2])


@pytest.mark.parametrize("exponent, names",
                         [(2, ["mul"]), (1, []), (-1, ["div"]), (0.5, ["sqrt"])])
@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_special_powers_are_products_or_sqrt(exponent, names, backend):
    """``x ** 2``, ``x ** 1``, ``x ** -1``, ``x ** 0.5`` lose their pow (a libm call per
    element in the llvm backend) with the same bits: the correctly rounded power is the one
    rounding of the product or quotient; -0, inf and NaN as numpy (``x ** 0.5`` is numpy's
    sqrt: NaN at -inf, where C's pow, which llvm called, gives inf)."""
    x = _x((5, 4), "float32")
    out = x ** exponent
    new, report, got_names = rewritten([out])
    assert report.fired["pow_special_exponent"] == 1 and got_names == names
    X = RNG.normal(size=(5, 4)).astype("float32")
    X[0, :4] = [-0.0, np.inf, -np.inf, np.nan]
    with np.errstate(all="ignore"):
        want = {2: np.square, 1: np.copy, -1: np.reciprocal, 0.5: np.sqrt}[exponent](X)
        assert_same(want, X ** exponent)  # numpy's own power at this exponent
        got = sg.function([x], out, backend=backend)(X)
    np.testing.assert_array_equal(got, want)
    number = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[number]), np.signbit(want[number]))  # -0
    assert got.dtype == np.float32


def test_pow_rule_leaves_other_exponents_and_widening_bases():
    x = _x((3, 4))
    for out in (x ** 3, x ** 1.5, x ** sg.tensor("e", (3, 4))):
        new, report, names = rewritten([out])
        assert "pow_special_exponent" not in report.fired and names == ["pow"]
    v = _x((4,))
    wide = v ** np.full((3, 4), 2.0)  # the exponent widens v: the product alone would not
    new, report, names = rewritten([wide])
    assert "pow_special_exponent" not in report.fired
    assert_same(*both([v], wide, np.arange(4.0))[:2])
    n = sg.tensor("n", (3,), "int64")  # int ** 2 is float: not the int product
    assert "pow_special_exponent" not in rewritten([n ** 2])[1].fired


def test_square_gradient_uses_no_pow():
    """d/dx sum(x ** 2) = 2 x: the gradient's x ** 1 goes too."""
    x = _x((6,))
    g = sg.grad(sg.sum(x ** 2), x)
    new, report, names = rewritten([g])
    assert "pow" not in names
    X = RNG.normal(size=6)
    np.testing.assert_allclose(sg.function([x], g)(X), 2 * X, rtol=1e-15)


@pytest.mark.parametrize("shape, index", [
    (("batch", 4, 5), (slice(None), 2, slice(None))),  # an RNN's x[:, t, :], any batch
    ((3, 4, 5), (1, slice(1, 3))),                      # ints and a unit-step slice
    ((3, 4, 5), (slice(None), -1)),                     # a negative int counts from the end
    ((3, 4, 5), (slice(-3, None), slice(None, 2))),     # negative bounds
    ((3, 4, 5), (slice(2, 1),)),                        # an empty slice: all zeros
])
def test_gradient_of_basic_indexing_becomes_a_zero_pad(shape, index, backend):
    """setitem_zeros (zeros with g written at x[index]) -> Pad of g, a view the loops read
    in place: the same values (against numpy's np.zeros + assignment), and no
    setitem_zeros left in the rewritten gradient."""
    x = sg.tensor("x", shape)
    c = RNG.normal(size=np.zeros((3, 4, 5))[index].shape[-1:])  # broadcasts over the rest
    g = sg.grad(sg.sum(x[index] * c), x)
    new, report, names = rewritten([g])
    assert report.fired["setitem_zeros_as_pad"] == 1 and "setitem_zeros" not in names
    want = np.zeros((3, 4, 5))
    want[index] = c
    got = sg.function([x], g, backend=backend)(RNG.normal(size=(3, 4, 5)))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("index", [(slice(1, 3),), (slice(None), slice(None, None, 2))])
def test_gradient_of_indexing_a_symbolic_dim_or_with_a_step_is_kept(index, backend):
    x = sg.tensor("x", ("n", 6))
    g = sg.grad(sg.sum(x[index] * 2.0), x)
    new, report, names = rewritten([g])
    assert report.fired["setitem_zeros_as_pad"] == 0 and "setitem_zeros" in names
    want = np.zeros((4, 6))
    want[index] = 2.0
    np.testing.assert_array_equal(sg.function([x], g, backend=backend)(np.ones((4, 6))), want)


def test_gradient_of_indexing_a_symbolic_batch_with_a_static_g_is_kept(backend):
    """x[:, 1] of a (batch, 3, 2) x whose gradient is static (3, 2): a pad of g would be
    (3, 3, 2), not x's type, so the node stays (values against numpy)."""
    x = sg.tensor("x", ("batch", 3, 2))
    c = RNG.normal(size=(3, 2))
    g = sg.grad(sg.sum(x[:, 1] * c), x)
    new, report, names = rewritten([g])
    assert report.fired["setitem_zeros_as_pad"] == 0 and names.count("setitem_zeros") == 1
    want = np.zeros((3, 3, 2))
    want[:, 1] = c
    np.testing.assert_array_equal(sg.function([x], g, backend=backend)(np.ones((3, 3, 2))),
                                  want)


@pytest.mark.parametrize("order", ["forward", "reverse", "gaps"])
def test_sums_of_disjoint_zero_pads_become_one_concatenation(order, backend):
    """The gradient of sum_t x[:, t] * c_t: T pads summed -> one concatenate (plus one pad
    when the windows leave a gap), in any summation order; values against numpy."""
    T = 6
    x = sg.tensor("x", ("batch", T, 3))
    ts = {"forward": range(T), "reverse": range(T - 1, -1, -1), "gaps": [5, 1, 3]}[order]
    cs = {t: RNG.normal(size=3) for t in ts}
    cost = None
    for t in ts:
        term = sg.sum(x[:, t, :] * cs[t])
        cost = term if cost is None else cost + term
    g = sg.grad(cost, x)
    new, report, names = rewritten([g])
    assert names.count("concatenate") == 1 and "add" not in names
    assert report.fired["add_disjoint_pads"] == len(cs) - 1
    want = np.zeros((2, T, 3))
    for t, c in cs.items():
        want[:, t, :] = c
    np.testing.assert_array_equal(sg.function([x], g, backend=backend)(np.ones((2, T, 3))),
                                  want)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sums_of_equal_zero_pads_become_one_pad_of_the_sum(dtype, backend):
    """A weight read as b[1] at every step of an unrolled loop (a GRU's recurrent bias): its
    T padded gradients summed -> one pad of their sum, bit for bit the unrewritten graph's
    sum of zero-filled arrays (numpy backend, rewrite=False)."""
    T = 7
    b = sg.tensor("b", (2, 3), dtype)
    h = sg.tensor("h", (4, 3), dtype)
    cost = None
    for t in range(T):
        term = sg.sum(sg.tanh(h * (t + 1.0) + b[1]) * RNG.normal(size=3).astype(dtype))
        cost = term if cost is None else cost + term
    g = sg.grad(cost, b)
    new, report, names = rewritten([g])
    assert report.fired["add_same_pads"] == T - 1 and names.count("pad") == 1
    B, H = RNG.normal(size=(2, 3)).astype(dtype), RNG.normal(size=(4, 3)).astype(dtype)
    want = sg.function([b, h], g, backend="numpy", rewrite=False)(B, H)
    assert np.all(want[0] == 0) and np.all(want[1] != 0)
    got = sg.function([b, h], g, backend=backend)(B, H)
    if backend == "numpy":
        np.testing.assert_array_equal(got, want)
    else:  # (the llvm backend's tanh and FMAs differ from numpy's in the last bits)
        np.testing.assert_allclose(got, want, rtol=2e-5 if dtype == "float32" else 1e-13)


@pytest.mark.parametrize("order", [[0, 2, 1, 3], [3, 0, 2, 1], [0, 3, 1, 2]])
def test_a_window_that_fills_an_earlier_gap_joins_the_concatenation(order, backend):
    """An LSTM adds its gates' gradients in the order i, g, f, o: the first two leave a gap
    that the third fills. The sum becomes one concatenation (no add), in any such order,
    also when a window fills only the middle of a gap (order [0, 3, 1, 2]: gaps left on
    both sides until the last); values against numpy's zeros + assignment."""
    x = sg.tensor("x", ("batch", 12))
    cs = {t: RNG.normal(size=3) for t in order}
    cost = None
    for t in order:
        term = sg.sum(x[:, 3 * t:3 * t + 3] * cs[t])
        cost = term if cost is None else cost + term
    g = sg.grad(cost, x)
    new, report, names = rewritten([g])
    assert "add" not in names and names.count("concatenate") == 1
    want = np.zeros((2, 12))
    for t, c in cs.items():
        want[:, 3 * t:3 * t + 3] = c
    np.testing.assert_array_equal(sg.function([x], g, backend=backend)(np.ones((2, 12))),
                                  want)


def test_a_gap_in_a_whole_concatenation_is_filled_too(backend):
    """concatenate([a, pad(b, gap)]) spans the whole axis (no pad around it); a zero pad
    whose window is in the gap joins it, and one that overlaps a piece is still added."""
    a, b, c = sg.tensor("a", (2, 3)), sg.tensor("b", (2, 3)), sg.tensor("c", (2, 2))
    whole = sg.concatenate([a, sg.pad(b, ((0, 0), (4, 0)))], axis=1)  # gap at [3:7]
    filled = whole + sg.pad(c, ((0, 0), (4, 4)))                      # c at [4:6]
    clash = whole + sg.pad(c, ((0, 0), (2, 6)))                       # c at [2:4]
    new, report, names = rewritten([filled, clash])
    assert report.fired["add_disjoint_pads"] == 1 and names.count("add") == 1
    A, B, C = RNG.normal(size=(2, 3)), RNG.normal(size=(2, 3)), RNG.normal(size=(2, 2))
    got = sg.function([a, b, c], [filled, clash], backend=backend)(A, B, C)
    base = np.concatenate([A, np.zeros((2, 4)), B], axis=1)
    want_filled, want_clash = base.copy(), base.copy()
    want_filled[:, 4:6] += C
    want_clash[:, 2:4] += C
    np.testing.assert_array_equal(got[0], want_filled)
    np.testing.assert_array_equal(got[1], want_clash)


def test_sums_of_negative_zero_pads_keep_their_signs(backend):
    """-0 + -0 is -0: pads of -0 are not merged into a pad of +0 (same or disjoint windows)."""
    u, v = sg.tensor("u", (1,)), sg.tensor("v", (1,))
    same = sg.pad(u, (1, 1), constant_values=-0.0) + sg.pad(v, (1, 1), constant_values=-0.0)
    apart = sg.pad(u, (0, 3), constant_values=-0.0) + sg.pad(v, (3, 0), constant_values=-0.0)
    new, report, names = rewritten([same, apart])
    assert report.fired["add_same_pads"] == 0 and report.fired["add_disjoint_pads"] == 0
    got = sg.function([u, v], [same, apart], backend=backend)(np.ones(1), np.ones(1))
    np.testing.assert_array_equal(np.signbit(got[0]), [True, False, True])
    np.testing.assert_array_equal(np.signbit(got[1]), [False, True, True, False])
    np.testing.assert_array_equal(got[1], [1.0, 0.0, 0.0, 1.0])


def test_overlapping_or_differently_shaped_pads_are_still_added(backend):
    x = sg.tensor("x", (4, 5))
    overlap = sg.grad(sg.sum(x[1:3] * 2.0) + sg.sum(x[2:4] * 3.0), x)
    two_axes = sg.grad(sg.sum(x[1] * 2.0) + sg.sum(x[:, 2] * 3.0), x)
    for g in (overlap, two_axes):
        new, report, names = rewritten([g])
        assert report.fired["add_disjoint_pads"] == 0 and "add" in names
    got = sg.function([x], [overlap, two_axes], backend=backend)(np.ones((4, 5)))
    want_overlap, want_two = np.zeros((4, 5)), np.zeros((4, 5))
    want_overlap[1:3] += 2.0
    want_overlap[2:4] += 3.0
    want_two[1] += 2.0
    want_two[:, 2] += 3.0
    np.testing.assert_array_equal(got[0], want_overlap)
    np.testing.assert_array_equal(got[1], want_two)


@pytest.mark.parametrize("shape, index", [((), ()), ((), Ellipsis), ((3, 4), slice(None)),
                                          ((3, 4), (slice(None), slice(None)))])
def test_gradient_of_an_index_that_takes_everything_is_g_itself(shape, index, backend):
    """No zero-width pad (a no-op node, and the numpy backend's np.pad refused the 0-d one)."""
    x = sg.tensor("x", shape)
    g = sg.grad(sg.sum(x[index] * 2.0), x)
    new, report, names = rewritten([g])
    assert report.fired["setitem_zeros_as_pad"] == 1
    assert not {"pad", "crop", "setitem_zeros"} & set(names)
    np.testing.assert_array_equal(sg.function([x], g, backend=backend)(np.ones(shape)),
                                  np.full(shape, 2.0))


def test_a_bool_in_a_basic_index_is_refused():
    """numpy reads x[True] as a 0-d mask (a new axis); taking it as x[1] gave a gradient
    where the forward pass failed."""
    x = sg.tensor("x", (3, 4))
    for index in (True, (0, np.bool_(False))):
        with pytest.raises(IndexError, match="a boolean in an index"):
            x[index]
