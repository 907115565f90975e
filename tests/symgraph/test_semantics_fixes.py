"""Regression tests for issue 7, defects 5-8: what a new user found silently wrong.

* 5: ``v == 0`` / ``v != 0`` build the elementwise op (numpy semantics); ``==`` between
  two Variables stays identity (Python's containers need it) and ``sg.where`` refuses the
  Python bool that ``a == b`` of two Variables gives.
* 6: ``maximum``/``minimum`` split the gradient at ties, as torch, jax and symgraph's own
  ``max`` reduction do.
* 7: ``x ** y`` at base 0 has torch's/jax's gradients, for tensor and constant exponents.
* 8: an out-of-range axis is numpy's ``AxisError`` at build time, for every op with an axis.

PyTorch (CPU) is the oracle where it and jax agree; where they differ the expected
values are jax's and are written as closed forms with the reason.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.exceptions import AxisError

import symgraph as sg
from symgraph.graph import toposort

torch = pytest.importorskip("torch")


def _torch_grads(fn, arrays, order: int = 1):
    """Elementwise first (and second: d/dx_j of sum(d/dx_i)) derivatives of ``fn``."""
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    first = torch.autograd.grad(fn(*ts).sum(), ts, create_graph=order > 1)
    if order == 1:
        return [g.detach().numpy() for g in first]
    second = []
    for g in first:
        row = (torch.autograd.grad(g.sum(), ts, allow_unused=True, retain_graph=True)
               if g.requires_grad else [None] * len(ts))
        second.append([np.zeros_like(arrays[0]) if h is None else h.detach().numpy()
                       for h in row])
    return [g.detach().numpy() for g in first], second


def _sg_grads(fn, arrays, backend, order: int = 1):
    """The same derivatives from ``sg.grad``, compiled on ``backend``."""
    xs = [sg.tensor(f"x{i}", a.shape) for i, a in enumerate(arrays)]
    first = sg.grad(sg.sum(fn(*xs)), xs)
    outputs = list(first)
    if order > 1:
        for g in first:
            outputs += sg.grad(sg.sum(g), xs, disconnected="zero")
    values = sg.function(xs, outputs, backend=backend)(*arrays)
    if order == 1:
        return values
    n = len(arrays)
    return values[:n], [values[n + i * n: n + (i + 1) * n] for i in range(n)]


def _close(actual, expected, **kw):
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12, equal_nan=True, **kw)


# --------------------------------------------------------------------------- 5: == and !=


def test_comparison_with_a_number_or_array_is_elementwise(backend):
    v = sg.vector("v", 4)
    values = np.array([0.0, 2.0, -1.0, 0.0])
    outputs = [sg.where(v != 0, 1.0, -1.0), v == 0, 0 == v, v != np.float64(2.0),
               np.float64(-1.0) == v, v == np.array([0.0, 2.0, 2.0, 1.0]), v == [0, 0, 0, 0]]
    assert all(isinstance(o, sg.Variable) for o in outputs)
    got = sg.function([v], outputs, backend=backend)(values)
    expected = [np.where(values != 0, 1.0, -1.0), values == 0, values == 0, values != 2.0,
                values == -1.0, values == np.array([0.0, 2.0, 2.0, 1.0]), values == 0]
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_comparison_of_two_variables_stays_identity_for_containers():
    a, b = sg.vector("a", 3), sg.matrix("b", (5, 7))  # shapes that do not even broadcast
    assert (a == a) is True and (a == b) is False
    assert (a != b) is True and (a != a) is False
    assert b in [a, b] and [a, b].index(b) == 1 and (a, b) == (a, b)
    assert a not in [b] and (a == None) is False and (a == "a") is False  # noqa: E711
    assert len({a, b, a}) == 2


def test_variables_and_numbers_share_a_dict_without_comparing():
    v = sg.scalar("v")
    table = {v.id: "the number"}
    table[v] = "the variable"  # a hash tie would call `number == v`, which is now an op
    assert table[v] == "the variable" and table[v.id] == "the number" and len(table) == 2


def test_truth_value_of_an_elementwise_comparison_raises():
    v = sg.vector("v", 3)
    with pytest.raises(TypeError, match="sg.equal"):
        bool(v == 0)
    with pytest.raises(TypeError, match="truth value"):
        0 in [v]  # noqa: B015


def test_where_refuses_the_python_bool_of_comparing_two_variables():
    a, b = sg.vector("a", 3), sg.vector("b", 3)
    with pytest.raises(TypeError, match="sg.equal"):
        sg.where(a == b, 1.0, 0.0)
    with pytest.raises(TypeError, match="sg.not_equal"):
        sg.where(a != b, 1.0, 0.0)
    assert sg.where(np.bool_(True), a, b).shape == (3,)  # a numpy bool is a constant


# --------------------------------------------------------------------------- 6: max/min ties


TIES = [np.array([1.0, 2.0, -3.0, 0.5, 4.0, 0.0]), np.array([1.0, 1.0, -3.0, 2.0, 4.0, 0.0])]


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_extremum_gradient_splits_ties_like_torch(backend, name):
    first, second = _sg_grads(lambda x, y: getattr(sg, name)(x, y) ** 2, TIES, backend, 2)
    t_first, t_second = _torch_grads(lambda x, y: getattr(torch, name)(x, y) ** 2, TIES, 2)
    for g, e in zip(first, t_first):
        _close(g, e)
    for row, t_row in zip(second, t_second):
        for g, e in zip(row, t_row):
            _close(g, e)
    assert first[0][0] == first[1][0] == 1.0  # a tie at 1: 2 * 1 * 0.5 to each side


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_extremum_gradient_agrees_with_the_reduction(backend, name):
    reduce = {"maximum": sg.max, "minimum": sg.min}[name]
    pairwise = _sg_grads(lambda x, y: getattr(sg, name)(x, y) * [1.0, 2, 3, 4, 5, 6],
                         TIES, backend)
    stacked = _sg_grads(lambda x, y: reduce(sg.stack([x, y]), axis=0) * [1.0, 2, 3, 4, 5, 6],
                        TIES, backend)
    for g, e in zip(pairwise, stacked):
        _close(g, e)


def test_maximum_with_zero_at_zero_is_half_while_relu_is_zero(backend):
    x = np.array([-1.0, 0.0, 2.0])
    (got,) = _sg_grads(lambda v: sg.maximum(v, 0), [x], backend)
    (want,) = _torch_grads(lambda v: torch.maximum(v, torch.zeros(())), [x])
    _close(got, want)
    _close(got, [0.0, 0.5, 1.0])
    (relu,) = _sg_grads(sg.nn.relu, [x], backend)
    (torch_relu,) = _torch_grads(torch.relu, [x])
    _close(relu, torch_relu)
    _close(relu, [0.0, 0.0, 1.0])


def test_extremum_gradient_with_nan_goes_nowhere(backend):
    # torch gives 1 to both sides, jax 0 to both; a NaN has no winner, so 0 (as jax)
    nan = np.array([np.nan, 1.0])
    gx, gy = _sg_grads(sg.maximum, [nan, np.array([1.0, np.nan])], backend)
    _close(gx, [0.0, 0.0])
    _close(gy, [0.0, 0.0])


# --------------------------------------------------------------------------- 7: x ** y at 0


_BASES = [0.0, 2.0, 0.5, -2.0, -0.5]
_EXPONENTS = [0.0, 1.0, 2.0, 3.0, 0.3, 0.5, 1.5, -1.0, -2.0, -0.5]
X_GRID, Y_GRID = (np.array(v, dtype=np.float64)
                  for v in zip(*[(x, y) for x in _BASES for y in _EXPONENTS]))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_power_gradients_match_torch_on_a_grid_including_base_zero(backend):
    (gx, gy), second = _sg_grads(lambda x, y: x ** y, [X_GRID, Y_GRID], backend, 2)
    (tx, ty), t_second = _torch_grads(lambda x, y: x ** y, [X_GRID, Y_GRID], 2)
    _close(gx, tx)  # x == 0, y == 0: 0 (torch; jax NaN): x ** 0 is the constant 1
    _close(gy, ty)  # x == 0, y >= 0: 0 (both); y < 0: inf * -inf (torch; jax NaN)
    base_zero = (X_GRID == 0) & (Y_GRID > 0)
    assert np.all(gy[base_zero] == 0) and not np.any(np.isnan(gy[X_GRID >= 0]))
    # d2/dx2: as torch, but 0 at (0, 0) (torch and jax: NaN from masking; x ** 0 is the
    # constant 1, and a constant exponent 0 gives 0 in torch too)
    one = (X_GRID == 0) & (Y_GRID == 0)
    assert np.all(second[0][0][one] == 0)
    _close(second[0][0][~one], t_second[0][0][~one])
    # d2/dy2: 0 ** y is constant for y >= 0, so 0 (jax; torch's masked rule gives NaN)
    constant = (X_GRID == 0) & (Y_GRID >= 0)
    assert np.all(second[1][1][constant] == 0)
    _close(second[1][1][~constant], t_second[1][1][~constant])
    # mixed: x ** (y - 1) * (1 + y log x) away from 0, symmetric (torch's d/dy of d/dx is
    # 0 at y == 0 where jax and the closed form give 1/x)
    away = (X_GRID > 0)
    mixed = X_GRID ** (Y_GRID - 1) * (1 + Y_GRID * np.log(np.where(away, X_GRID, 1.0)))
    _close(second[0][1][away], mixed[away])
    _close(second[1][0][away], mixed[away])


def test_zero_to_a_fractional_power_has_a_finite_gradient(backend):
    x, y = sg.vector("x", 1), sg.vector("y", 1)
    out = x ** y
    f = sg.function([x, y], [out, *sg.grad(sg.sum(out), [x, y])], backend=backend)
    value, gx, gy = f(np.array([0.0]), np.array([0.3]))
    assert value[0] == 0.0 and gx[0] == np.inf and gy[0] == 0.0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("c", [0.0, 1.0, 2.0, 3.0, 0.5, 0.3, -1.0])
def test_constant_and_tensor_exponents_give_the_same_gradients(backend, c):
    xs = np.array([0.0, 0.5, 2.0, -1.5])
    (const_first,), const_second = _sg_grads(lambda x: x ** c, [xs], backend, 2)
    y = np.full_like(xs, c)
    (tensor_first, _), tensor_second = _sg_grads(lambda x, e: x ** e, [xs, y], backend, 2)
    (torch_first,), _ = _torch_grads(lambda x: x ** c, [xs], 2)
    _close(const_first, tensor_first)
    _close(const_first, torch_first)
    _close(const_second[0][0], tensor_second[0][0])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_square_and_sqrt_spelled_as_powers_agree(backend):
    xs = np.array([0.0, 0.25, 3.0])
    pairs = [(lambda x: x ** 2, sg.square), (lambda x: x ** 0.5, sg.sqrt)]
    for as_power, named in pairs:
        (p,), p2 = _sg_grads(as_power, [xs], backend, 2)
        (n,), n2 = _sg_grads(named, [xs], backend, 2)
        _close(p, n)
        _close(p2[0][0][1:], n2[0][0][1:])  # at 0 sqrt'' is -inf * ... in both; skip


def test_constant_exponent_gradient_needs_no_mask():
    x = sg.vector("x", 3)
    g = sg.grad(sg.sum(x ** 3.0), x)
    nodes = toposort([g])
    assert not any(node.op.name in ("where", "eq") for node in nodes)
    exponents = [node.inputs[1] for node in nodes if node.op.name == "pow"]
    assert all(isinstance(e, sg.Constant) for e in exponents)
    assert sorted(float(e.value) for e in exponents) == [2.0, 3.0]  # forward and gradient


# --------------------------------------------------------------------------- 8: axes


A = sg.matrix("a", (4, 5))
OUT_OF_RANGE = [
    ("stack", lambda: sg.stack([A, A], axis=77), 77, 3),
    ("stack", lambda: sg.stack([A, A], axis=-4), -4, 3),
    ("concatenate", lambda: sg.concatenate([A, A], axis=5), 5, 2),
    ("concatenate", lambda: sg.concatenate([A, A], axis=-3), -3, 2),
    ("sum", lambda: sg.sum(A, axis=2), 2, 2),
    ("sum", lambda: A.sum(axis=(0, -3)), -3, 2),
    ("mean", lambda: sg.mean(A, axis=3), 3, 2),
    ("max", lambda: A.max(axis=2), 2, 2),
    ("min", lambda: sg.min(A, axis=-3), -3, 2),
    ("argmax", lambda: sg.argmax(A, axis=2), 2, 2),
    ("logsumexp", lambda: sg.logsumexp(A, axis=2), 2, 2),
    ("softmax", lambda: sg.nn.softmax(A, axis=2), 2, 2),
    ("softmax", lambda: sg.nn.softmax(sg.scalar("s")), -1, 0),
    ("log_softmax", lambda: sg.nn.log_softmax(A, axis=-3), -3, 2),
    ("expand_dims", lambda: sg.expand_dims(A, 3), 3, 3),
    ("expand_dims", lambda: sg.expand_dims(A, (0, -5)), -5, 4),
    ("squeeze", lambda: sg.squeeze(sg.matrix("m", (1, 3)), axis=2), 2, 2),
    ("transpose", lambda: sg.transpose(A, (0, 2)), 2, 2),
    ("transpose", lambda: A.transpose(1, -3), -3, 2),
]


@pytest.mark.parametrize("name, build, axis, rank", OUT_OF_RANGE,
                         ids=[f"{c[0]}-{c[2]}" for c in OUT_OF_RANGE])
def test_out_of_range_axis_raises_axis_error_at_build_time(name, build, axis, rank):
    with pytest.raises(AxisError) as info:
        build()
    assert isinstance(info.value, ValueError) and isinstance(info.value, IndexError)
    message = str(info.value)
    assert message.startswith(f"{name}:") and f"axis {axis} " in message
    assert f"rank {rank}" in message and __file__ in message  # the user's line


@pytest.mark.parametrize("build", [lambda: sg.sum(A, axis=1.0), lambda: sg.stack([A], True),
                                   lambda: sg.argmax(A, axis="1")])
def test_non_integer_axis_is_a_type_error(build):
    with pytest.raises(TypeError, match="integer"):
        build()


def test_negative_axes_in_range_still_count_from_the_end(backend):
    a, b = np.arange(20.0).reshape(4, 5), -np.arange(20.0).reshape(4, 5)
    x, y = sg.matrix("x", (4, 5)), sg.matrix("y", (4, 5))
    outputs = [sg.stack([x, y], axis=-1), sg.stack([x, y], axis=-3),
               sg.concatenate([x, y], axis=-1), sg.expand_dims(x, -1),
               sg.transpose(x, (-1, -2)), sg.sum(x, axis=-1), sg.argmax(y, axis=-2),
               sg.nn.softmax(x, axis=-2), sg.squeeze(sg.expand_dims(x, 0), axis=-3)]
    got = sg.function([x, y], outputs, backend=backend)(a, b)
    e = np.exp(a - a.max(axis=0))
    expected = [np.stack([a, b], -1), np.stack([a, b], -3), np.concatenate([a, b], -1),
                a[..., None], a.T, a.sum(-1), np.argmax(b, -2), e / e.sum(axis=0), a]
    for g, want in zip(got, expected):
        np.testing.assert_allclose(g, want, rtol=1e-12)
