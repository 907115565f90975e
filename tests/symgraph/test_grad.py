"""``sg.grad`` and friends: Hessians, Jacobians, HVPs, graph structure, sentinels, errors.

Oracles: closed forms (``x @ A @ x`` has Hessian ``A + A.T``), central finite
differences (``helpers.fd_grad``) and the Hessian itself for
``hvp``.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from helpers import (
    FIXTURE_SETTINGS,
    assert_grad_matches,
    fd_grad,
    random_array,
    seeds,
)
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
from symgraph.grad import GradCall, build_grad
from symgraph.graph import Op, TensorType, toposort

THIS_FILE = "test_grad.py"


# ------------------------------------------------------------------ hessian / hvp / jacobian


@functools.cache
def _hessian_of_quadratic_form(n: int, backend: str) -> sg.Function:
    x, A = sg.tensor("x", (n,)), sg.tensor("A", (n, n))
    H = sg.hessian(x @ A @ x, x)
    assert H.shape == (n, n)
    return sg.function([x, A], H, backend=backend)


@FIXTURE_SETTINGS
@given(n=st.integers(1, 5), seed=seeds)
def test_hessian_of_quadratic_form_is_a_plus_a_transpose(backend, n, seed):
    rng = np.random.default_rng(seed)
    Av, xv = rng.normal(size=(n, n)), rng.normal(size=n)
    np.testing.assert_allclose(_hessian_of_quadratic_form(n, backend)(xv, Av), Av + Av.T,
                               rtol=1e-12, atol=1e-12)


@functools.cache
def _hessian_and_hvp(backend: str) -> sg.Function:
    x, W, v = sg.tensor("x", (4,)), sg.tensor("W", (3, 4)), sg.tensor("v", (4,))
    cost = sg.sum(sg.tanh(W @ x))
    return sg.function([x, W, v], [sg.hessian(cost, x), sg.hvp(cost, x, v)], backend=backend)


@FIXTURE_SETTINGS
@given(seed=seeds)
def test_hvp_equals_hessian_times_vector(backend, seed):
    rng = np.random.default_rng(seed)
    vv = rng.normal(size=4)
    Hv, hvv = _hessian_and_hvp(backend)(rng.normal(size=4), rng.normal(size=(3, 4)), vv)
    np.testing.assert_allclose(Hv, Hv.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hvv, Hv @ vv, rtol=1e-10, atol=1e-12)


def test_hvp_of_several_parameters_matches_finite_differences_of_the_gradient(backend):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3))
    W, b = sg.tensor("W", (3, 2)), sg.tensor("b", (2,))
    vW, vb = sg.tensor("vW", (3, 2)), sg.tensor("vb", (2,))
    cost = sg.sum(sg.nn.softplus(x @ W + b) ** 2)
    hW, hb = sg.hvp(cost, [W, b], [vW, vb])
    assert hW.shape == (3, 2) and hb.shape == (2,)
    gW, gb = sg.grad(cost, [W, b])
    f = sg.function([W, b, vW, vb], [hW, hb], backend=backend)
    f_grad = sg.function([W, b], [gW, gb], backend=backend)
    Wv, bv, vWv, vbv = (rng.normal(size=(3, 2)), rng.normal(size=2), rng.normal(size=(3, 2)),
                        rng.normal(size=2))
    eps = 1e-5
    up = f_grad(Wv + eps * vWv, bv + eps * vbv)
    down = f_grad(Wv - eps * vWv, bv - eps * vbv)
    got = f(Wv, bv, vWv, vbv)
    for g, u, d in zip(got, up, down):
        np.testing.assert_allclose(g, (u - d) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_hvp_holds_a_vector_built_from_w_constant(backend):
    """``hvp(cost, w, v)`` is H(w) v for the value of ``v``, also when ``v`` is computed from
    ``w`` (a gradient, ``w`` itself): the product rule through ``v`` gave H v + (dv/dw)^T g,
    so ``hvp(cost, w, grad(cost, w))`` was 2 H g. Closed form: cost = sum(w**4) / 4, so
    H = diag(3 w**2)."""
    w = sg.vector("w", 3)
    cost = sg.sum(w ** 4) / 4.0
    g = sg.grad(cost, w)
    wv = np.array([1.0, 2.0, -0.5])
    got_g, got_w = sg.function([w], [sg.hvp(cost, w, g), sg.hvp(cost, w, w)],
                               backend=backend)(wv)
    np.testing.assert_allclose(got_g, 3 * wv ** 2 * wv ** 3, rtol=1e-12)
    np.testing.assert_allclose(got_w, 3 * wv ** 2 * wv, rtol=1e-12)


def test_hvp_refuses_a_vector_of_another_shape():
    """A v that broadcasts against w ((1,) or (4, 3) for a (3,) w) was taken silently."""
    w = sg.vector("w", 3)
    cost = sg.sum(w ** 3)
    for v in (sg.vector("v", 1), sg.tensor("m", (4, 3)), np.ones(4)):
        with pytest.raises(ValueError, match=r"hvp: the vector for 'w'.* not the shape of w"):
            sg.hvp(cost, w, v)


def test_jacobian_and_hessian_of_a_zero_length_vector(backend):
    """(0, n) and (0, 0) results, as torch gives (``stack`` of no rows raised)."""
    x, y = sg.tensor("x", (0,)), sg.tensor("y", (3,))
    cost = sg.sum(x ** 2) + sg.sum(y ** 2)
    jx, jy = sg.jacobian(x * 2, [x, y])
    hx, hy = sg.hessian(cost, [x, y])
    got = sg.function([x, y], [jx, jy, hx, hy], backend=backend)(np.zeros(0), np.ones(3))
    assert [g.shape for g in got] == [(0, 0), (0, 3), (0, 0), (3, 3)]
    np.testing.assert_array_equal(got[3], 2 * np.eye(3))


@functools.cache
def _vector_function_and_jacobian(backend: str) -> tuple[sg.Function, sg.Function]:
    x, A = sg.tensor("x", (4,)), sg.tensor("A", (3, 4))
    expr = sg.tanh(A @ x) * sg.sum(x**2) + sg.sin(x[:3])
    J = sg.jacobian(expr, x)
    assert J.shape == (3, 4)
    return sg.function([x, A], expr, backend=backend), sg.function([x, A], J, backend=backend)


@FIXTURE_SETTINGS
@given(seed=seeds)
def test_jacobian_of_vector_function_matches_finite_differences(backend, seed):
    rng = np.random.default_rng(seed)
    Av, xv = rng.normal(size=(3, 4)), rng.normal(size=4)
    f_expr, f_jac = _vector_function_and_jacobian(backend)
    np.testing.assert_allclose(f_jac(xv, Av), fd_grad(lambda a: f_expr(a, Av), xv),
                               rtol=1e-6, atol=1e-8)


def test_jacobian_of_several_wrt_and_of_a_scalar(backend):
    x, y = sg.tensor("x", (2,)), sg.tensor("y", (3,))
    Jx, Jy = sg.jacobian(sg.concatenate([x * 2, y**2]), [x, y])
    assert Jx.shape == (5, 2) and Jy.shape == (5, 3)
    yv = np.array([1.0, 2.0, 3.0])
    jx, jy = sg.function([x, y], [Jx, Jy], backend=backend)(np.ones(2), yv)
    np.testing.assert_array_equal(jx, np.vstack([2 * np.eye(2), np.zeros((3, 2))]))
    np.testing.assert_array_equal(jy, np.vstack([np.zeros((2, 3)), np.diag(2 * yv)]))
    gs = sg.jacobian(sg.sum(x * x), x)  # a scalar's Jacobian is its gradient
    np.testing.assert_array_equal(sg.function([x], gs, backend=backend)(np.array([1.0, 3.0])),
                                  [2.0, 6.0])


def test_grad_of_grad_of_grad(backend):
    x = sg.tensor("x", (3,))
    g1 = sg.grad(sg.sum(x**4 + sg.exp(2 * x)), x)
    g2 = sg.grad(sg.sum(g1), x)
    g3 = sg.grad(sg.sum(g2), x)
    xv = np.array([-1.0, 0.5, 2.0])
    got = sg.function([x], [g1, g2, g3], backend=backend)(xv)
    np.testing.assert_allclose(got[0], 4 * xv**3 + 2 * np.exp(2 * xv), rtol=1e-12)
    np.testing.assert_allclose(got[1], 12 * xv**2 + 4 * np.exp(2 * xv), rtol=1e-12)
    np.testing.assert_allclose(got[2], 24 * xv + 8 * np.exp(2 * xv), rtol=1e-12)


def test_mixed_second_derivative_through_matmul(backend):
    rng = np.random.default_rng(1)
    W, x = sg.tensor("W", (2, 3)), sg.tensor("x", (3,))
    gx = sg.grad(sg.sum(sg.tanh(W @ x)), x)
    # d/dW sum(gx * c): check it against finite differences of the first gradient
    c = rng.normal(size=3)
    Wv, xv = rng.normal(size=(2, 3)), rng.normal(size=3)
    gW = sg.grad(sg.sum(gx * c), W)
    f_gx = sg.function([W, x], gx, backend=backend)
    got = sg.function([W, x], gW, backend=backend)(Wv, xv)
    eps, numeric = 1e-6, np.zeros((2, 3))
    for i in np.ndindex(2, 3):
        d = np.zeros((2, 3))
        d[i] = eps
        numeric[i] = (f_gx(Wv + d, xv) @ c - f_gx(Wv - d, xv) @ c) / (2 * eps)
    np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- calling conventions


def test_list_in_list_out_and_single_in_single_out(backend):
    W, b = sg.tensor("W", (3, 2)), sg.tensor("b", (2,))
    x = np.arange(6.0).reshape(2, 3)
    cost = sg.sum(x @ W + b)
    grads = sg.grad(cost, [W, b])
    assert isinstance(grads, list) and len(grads) == 2
    assert all(isinstance(g, sg.Variable) for g in grads)
    gW = sg.grad(cost, W)
    assert isinstance(gW, sg.Variable)
    (only,) = sg.grad(cost, [b])
    gWv, gbv, gW1, gb1 = sg.function([W, b], [*grads, gW, only], backend=backend)(
        np.ones((3, 2)), np.zeros(2))
    np.testing.assert_array_equal(gWv, np.repeat(x.sum(0)[:, None], 2, axis=1))
    np.testing.assert_array_equal(gbv, [2.0, 2.0])
    np.testing.assert_array_equal(gW1, gWv)
    np.testing.assert_array_equal(gb1, gbv)


def test_grad_wrt_an_intermediate_variable(backend):
    x = sg.tensor("x", (3,))
    h = sg.tanh(x)
    g = sg.grad(sg.sum(h**2 + x), h)
    xv = np.array([0.3, -1.0, 2.0])
    np.testing.assert_allclose(sg.function([x], g, backend=backend)(xv), 2 * np.tanh(xv))


def test_disconnected_wrt_raises_naming_it_unless_zero(backend):
    x, unused = sg.tensor("x", (3,)), sg.tensor("unused_input", (2, 2))
    cost = sg.sum(x**2)
    with pytest.raises(sg.DisconnectedInputError) as info:
        sg.grad(cost, [x, unused])
    assert "unused_input" in str(info.value) and THIS_FILE in str(info.value)
    gx, gu = sg.grad(cost, [x, unused], disconnected="zero")
    gxv, guv = sg.function([x, unused], [gx, gu], backend=backend)(np.ones(3), np.ones((2, 2)))
    np.testing.assert_array_equal(gxv, 2.0)
    np.testing.assert_array_equal(guv, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="disconnected"):
        sg.grad(cost, x, disconnected="ignore")


def test_cost_must_be_a_float_scalar_variable():
    x = sg.tensor("x", (3,))
    with pytest.raises(ValueError, match=r"scalar.*\(3,\)"):
        sg.grad(x * 2, x)
    with pytest.raises(TypeError, match="Variable"):
        sg.grad(1.0, x)
    with pytest.raises(TypeError, match="Variables"):
        sg.grad(sg.sum(x), [x, np.ones(3)])
    with pytest.raises(ValueError, match="known_grads"):
        sg.grad(None, x)
    with pytest.raises(ValueError, match="vector"):
        sg.hessian(sg.sum(x), sg.tensor("m", (2, 2)))
    with pytest.raises(ValueError, match="2 wrt but 1 vectors"):
        sg.hvp(sg.sum(x), [x, x], [x])


def _tanh_chain(depth):
    x = sg.tensor("x", (3,))
    h = x
    for _ in range(depth):
        h = sg.tanh(h)
    return x, sg.sum(h)


@pytest.mark.parametrize("depth", [10, 100])
def test_gradient_graph_is_linear_in_depth_and_shares_forward_nodes(depth):
    x, cost = _tanh_chain(depth)
    forward = toposort([cost])
    g = sg.grad(cost, x)
    nodes = toposort([g])
    assert len(nodes) < 20 * depth
    assert len({id(n) for n in nodes}) == len(nodes)
    # forward nodes appear once, as the same objects: the graph is never copied
    forward_ids = {id(n) for n in forward}
    reused = [n for n in nodes if id(n) in forward_ids]
    assert sum(n.op.name == "tanh" for n in nodes) == depth
    assert all(n.grad_call is None for n in reused)
    new = [n for n in nodes if id(n) not in forward_ids]
    assert all(n.grad_call is not None for n in new)
    # tanh's bprop uses the forward output itself (1 - t^2), not a recomputed copy
    grad_inputs = {id(v) for n in new for v in n.inputs}
    tanh_outputs = [n.out for n in forward if n.op.name == "tanh"]
    assert all(id(t) in grad_inputs for t in tanh_outputs)


def test_gradient_of_repeated_subexpression_is_not_exponential():
    # f(f(f(w))): naive chain-rule expansion grows exponentially; memoised backprop does not
    w = sg.scalar("w")
    h = w
    for _ in range(30):
        h = h * h + sg.sin(h)
    g = sg.grad(h, w)
    assert len(toposort([g])) < 20 * 30


def test_gradient_nodes_are_tagged_with_their_forward_node():
    x = sg.tensor("x", (3,))
    W = sg.tensor("W", (2, 3))
    cost = sg.sum(sg.tanh(W @ x) * 2.0)
    forward = toposort([cost])
    forward_ids = {id(n) for n in forward}
    gW, gx = sg.grad(cost, [W, x])
    new = [n for n in toposort([gW, gx]) if id(n) not in forward_ids]
    assert new
    calls = {id(n.grad_call) for n in new}
    assert len(calls) == 1  # one grad call
    call = new[0].grad_call
    assert isinstance(call, GradCall) and call.cost is cost and call.wrt == [W, x]
    assert all(n.grad_of is None or id(n.grad_of) in forward_ids for n in new)
    # every forward op on the path got gradient nodes made by its bprop
    tagged = {id(n.grad_of) for n in new if n.grad_of is not None}
    for n in forward:
        assert id(n) in tagged, n
    assert all(n.outputs[0].role == "gradient" for n in new)
    assert all(n.outputs[0].role == "forward" for n in forward)
    # a second grad call tags its own nodes
    g2 = sg.grad(sg.sum(gx), W)
    new2 = [n for n in toposort([g2]) if n.grad_call is not None and n.grad_call is not call]
    assert new2 and all(n.grad_call.wrt == [W] for n in new2)


# --------------------------------------------------------------------------- summing contributions


@FIXTURE_SETTINGS
@given(seed=seeds)
def test_contributions_of_all_consumers_are_summed(backend, seed):
    x = random_array(np.random.default_rng(seed), (4,))
    # x used three times: x*x (twice in one node), sin(x), 3*x
    got = assert_grad_matches(lambda a: sg.sum(a * a + sg.sin(a) + 3 * a), [x], backend)[0]
    np.testing.assert_allclose(got, 2 * x + np.cos(x) + 3, rtol=1e-12)


@pytest.mark.parametrize("bias_shape", [(3,), (1, 3), (), (5, 1)])
def test_broadcast_gradient_is_summed_back_to_input_shape(backend, bias_shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3))
    b = rng.normal(size=bias_shape)
    w = rng.normal(size=(5, 3))
    gx, gb = assert_grad_matches(lambda a, c: sg.sum((a + c) * w), [x, b], backend)
    assert gb.shape == bias_shape
    expected = w.sum(axis=tuple(i for i, d in enumerate((1,) * (2 - len(bias_shape))
                                                           + bias_shape) if d == 1),
                     keepdims=True).reshape(bias_shape)
    np.testing.assert_allclose(gb, expected, rtol=1e-12)
    np.testing.assert_allclose(gx, w, rtol=1e-12)


def test_broadcast_gradient_with_symbolic_batch_dim(backend):
    x = sg.tensor("x", ("batch", 3))
    b = sg.tensor("b", (3,))
    gb = sg.grad(sg.sum(sg.tanh(x + b)), b)
    assert gb.shape == (3,)
    xv, bv = np.random.default_rng(2).normal(size=(7, 3)), np.zeros(3)
    got = sg.function([x, b], gb, backend=backend)(xv, bv)
    np.testing.assert_allclose(got, (1 - np.tanh(xv) ** 2).sum(0), rtol=1e-12)


def test_float32_parameters_get_float32_gradients(backend):
    W = sg.tensor("W", (3, 2), "float32")
    x = np.ones((4, 3), np.float32)
    gW = sg.grad(sg.mean(sg.nn.relu(x @ W) * 0.5), W)
    assert gW.dtype == np.float32
    got = sg.function([W], gW, backend=backend)(np.ones((3, 2), np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.full((3, 2), 4 * 0.5 / 8), rtol=1e-6)


# --------------------------------------------------------------------------- custom ops, check_grad


class _Double(Op):
    """``2 x`` with a configurable (possibly wrong) gradient rule."""

    props = ("factor",)

    def __init__(self, factor=2.0):
        self.factor = factor

    def infer(self, x):
        return [TensorType(x.dtype, x.shape)]

    def perform(self, inputs, ctx):
        return [2 * inputs[0]]

    def bprop(self, inputs, outputs, index, grads):
        return grads[0] * self.factor


class _WrongSquare(Op):
    """``x * x`` whose bprop forgets the factor 2: the error grows with ``|x|``."""

    def infer(self, x):
        return [TensorType(x.dtype, x.shape)]

    def perform(self, inputs, ctx):
        return [inputs[0] * inputs[0]]

    def bprop(self, inputs, outputs, index, grads):
        return grads[0] * inputs[0]


class _NoGradOp(Op):
    def infer(self, x):
        return [TensorType(x.dtype, x.shape)]

    def perform(self, inputs, ctx):
        return [inputs[0].copy()]


class _UndefinedGradOp(Op):
    def infer(self, x):
        return [TensorType(x.dtype, x.shape)]

    def perform(self, inputs, ctx):
        return [np.round(inputs[0])]

    def bprop(self, inputs, outputs, index, grads):
        return sg.Undefined("rounding has no useful derivative")


# The test-local ops below have a numpy reference but no LLVM lowering, so these
# check_grad tests run on the reference evaluator; the compiler must refuse them.


def test_check_grad_passes_for_correct_ops():
    rng = np.random.default_rng(0)
    err = sg.check_grad(lambda a, b: sg.sum(sg.tanh(a @ b) ** 2) + sg.sum(_Double()(a)),
                        [rng.normal(size=(2, 3)), rng.normal(size=(3, 2))], backend="numpy")
    assert 0 <= err < 1e-5


def test_op_without_lowering_is_a_compile_error_naming_it():
    x = sg.tensor("x", (3,))
    with pytest.raises(NotImplementedError) as info:
        sg.function([x], _Double()(x), backend="llvm")
    assert "_double" in str(info.value).lower() and THIS_FILE in str(info.value)


def test_check_grad_reports_the_worst_entry_of_a_wrong_bprop():
    backend = "numpy"
    x0 = np.array([[0.5, -1.0], [3.0, 0.25]])
    with pytest.raises(sg.GradientCheckError) as info:
        sg.check_grad(lambda a: sg.sum(_WrongSquare()(a)), [x0], backend=backend)
    message = str(info.value)
    assert "argument 0" in message and "(1, 0)" in message  # |x| is largest at [1, 0]
    assert "3.0" in message and "6.0" in message  # symbolic x vs finite differences 2x
    with pytest.raises(sg.GradientCheckError, match="argument 1"):
        sg.check_grad(lambda a, b: sg.sum(a * 2.0) + sg.sum(_Double(factor=3.0)(b)),
                      [x0, np.ones(2)], backend=backend)


@pytest.mark.filterwarnings("ignore:invalid value")
def test_check_grad_fails_on_a_nan_gradient(backend):
    # sqrt(x * x) = |x|: central differences at 0 give exactly 0, the symbolic gradient
    # x / sqrt(x * x) is 0 * inf = NaN there; a NaN compares false, so check_grad returned 0.0
    x0 = np.array([0.0, 1.0])
    numeric = (np.abs(x0 + 1e-6) - np.abs(x0 - 1e-6)) / 2e-6
    assert np.all(np.isfinite(numeric))
    with pytest.raises(sg.GradientCheckError, match=r"argument 0 at index \(0,\).*nan"):
        sg.check_grad(lambda a: sg.sum(sg.sqrt(a * a)), [x0], backend=backend)


def test_check_grad_and_finite_differences_of_a_transposed_array(backend):
    # a.T is Fortran-ordered: np.array(a, float64) kept that order, reshape(-1) was a copy,
    # the perturbations never reached f and every difference was 0 (oracle: d sum(a^2) = 2a)
    a = np.random.default_rng(0).normal(size=(4, 3)).T
    numeric = sg.check.finite_differences(lambda v: np.sum(v**2), [a])[0]
    np.testing.assert_allclose(numeric, 2 * a, rtol=1e-6)
    assert sg.check_grad(lambda v: sg.sum(v**2), [a], backend=backend) < 1e-5


def test_op_without_bprop_raises_naming_the_op_and_the_users_line():
    x = sg.tensor("x", (3,))
    cost = sg.sum(_NoGradOp()(x) * 2.0)
    with pytest.raises(sg.GradNotImplementedError) as info:
        sg.grad(cost, x)
    assert "_NoGradOp" in str(info.value) and THIS_FILE in str(info.value)
    assert isinstance(info.value, NotImplementedError)
    # a gradient that does not need the op is fine
    y = sg.tensor("y", (3,))
    g = sg.grad(sg.sum(sg.stop_gradient(_NoGradOp()(x)) * y), y)
    assert isinstance(g, sg.Variable)


def test_typed_sentinels_never_none():
    x, unused = sg.tensor("x", (3,)), sg.tensor("unused", (3,))
    result = build_grad(sg.sum(sg.exp(x)), [x, unused])
    assert isinstance(result[0], sg.Variable)
    assert result[1] is sg.DISCONNECTED
    assert repr(sg.DISCONNECTED) == "DISCONNECTED"
    assert type(sg.DISCONNECTED)() is sg.DISCONNECTED  # a singleton
    # undefined: a path exists, the derivative does not
    cost = sg.sum(_UndefinedGradOp()(x) * x)
    result = build_grad(cost, [x])
    assert isinstance(result[0], sg.Undefined) and "rounding" in result[0].reason
    with pytest.raises(sg.UndefinedGradError, match="rounding"):
        sg.grad(cost, x)


def test_elemwise_bprops_return_variables_or_sentinels():
    from symgraph.ops.elemwise import ELEMWISE
    for name, op in ELEMWISE.items():
        arity = op.scalar_op.arity
        inputs = [sg.tensor(f"a{k}", (2,)) for k in range(arity)]
        if name == "where":
            inputs[0] = sg.tensor("c", (2,), "bool")
        node = op.make_node(*inputs)
        g = sg.tensor("g", node.out.shape, node.out.dtype.name)
        for index in range(arity):
            part = op.bprop(node.inputs, node.outputs, index, [g])
            assert part is not None, (name, index)
            assert isinstance(part, (sg.Variable, sg.Undefined)) or part is sg.DISCONNECTED


def test_grad_does_not_rename_the_users_variables(backend):
    x = sg.tensor("x", (3,))
    u = sg.exp(x)  # an unnamed forward variable, passed through unchanged as x's gradient
    g = sg.grad(None, x, known_grads={x + 1.0: u})
    assert u.name is None and u.role == "forward"
    xv = np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(sg.function([x], g, backend=backend)(xv), np.exp(xv))
    named = sg.grad(sg.sum(x * x), x)
    assert named.name == "d(sum(x * x))/d(x)"  # labelled by the cost expression (issue 7, #12)
