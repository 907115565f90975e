"""Indexing: basic slicing and integer-array indexing, values and gradients.

Oracles: numpy indexing for values; central finite differences in float64 and
``np.add.at`` (the scatter-add that accumulates repeated indices) for gradients.
"""

import numpy as np
import pytest
from helpers import fd_grad
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgraph as sg
from symgraph.shapes import ShapeError

# the backend fixture is a constant parameter, safe to share between examples
FIXTURE_OK = settings(suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])


def check_index(backend, shape, index, seed=0):
    """``x[index]`` against numpy: value, and the gradient of ``sum(x[index] * c)``."""
    rng = np.random.default_rng(seed)
    xv = rng.standard_normal(shape)
    expected = xv[index]
    x = sg.tensor("x", shape)
    y = x[index]
    assert y.shape == expected.shape, (y.shape, expected.shape)
    cv = rng.standard_normal(expected.shape)
    c = sg.tensor("c", expected.shape)
    g = sg.grad((y * c).sum(), x)
    yv, gv = sg.function([x, c], [y, g], backend=backend)(xv, cv)
    np.testing.assert_array_equal(yv, expected)
    np.testing.assert_allclose(gv, fd_grad(lambda a: np.sum(a[index] * cv), xv),
                               rtol=1e-6, atol=1e-8)
    return gv, cv


# --------------------------------------------------------------------------- basic slicing


@pytest.mark.parametrize("index", [
    0, -1, 2,
    slice(1, 4), slice(None, None, 2), slice(None, None, -1), slice(-3, None),
    slice(4, 1, -2), slice(None, -2), slice(10, 20), slice(-100, 100, 3),
    (1, 2), (-1, slice(None, None, 2)), (slice(1, None), -2),
    (slice(None), slice(None, None, -3)), (Ellipsis, 0), (0, Ellipsis),
])
def test_basic_slicing(index, backend):
    check_index(backend, (5, 6), index)


def test_basic_slicing_3d(backend):
    check_index(backend, (3, 4, 5), (slice(None, None, 2), -1, slice(3, 0, -1)))
    check_index(backend, (3, 4, 5), (1, 2, 3))


def test_slice_of_symbolic_dim(backend):
    x = sg.tensor("x", ("n", 3))
    y = x[1:, ::2]
    g = sg.grad((y * y).sum(), x)
    f = sg.function([x], [y, g], backend=backend)
    rng = np.random.default_rng(1)
    for n in (2, 5):
        xv = rng.standard_normal((n, 3))
        yv, gv = f(xv)
        np.testing.assert_array_equal(yv, xv[1:, ::2])
        expected = np.zeros_like(xv)
        expected[1:, ::2] = 2 * xv[1:, ::2]
        np.testing.assert_allclose(gv, expected)


@pytest.mark.parametrize("make", [
    lambda x, k: x[:-k], lambda x, k: x[-k:], lambda x, k: x[1:-k], lambda x, k: x[-k:-1],
    lambda x, k: x[:k], lambda x, k: x[k:], lambda x, k: x[-k - 1:], lambda x, k: x[:k - 3],
], ids=[":-k", "-k:", "1:-k", "-k:-1", ":k", "k:", "-k-1:", ":k-3"])
@pytest.mark.parametrize("dim", ["n", 6])
def test_slice_bounds_of_symbolic_dims_count_from_the_end_as_in_numpy(make, dim, backend):
    """``x[:-k]`` with k a symbolic dim was given the static length 0 (``-k`` read as a
    position from the start): the llvm backend looped over no element and returned zeros.
    A bound whose sign only a run can tell (``-k`` is 0 when k = 0) gives an unknown length."""
    x = sg.tensor("x", (dim,))
    y = sg.tensor("y", ("k",))
    out = make(x, y.shape[0])
    f = sg.function([x, y], [out, sg.grad((out * out).sum(), x)], backend=backend)
    xv = np.arange(1.0, 7.0)
    for k in (2, 0, 6, 1, 9):
        expected = make(xv, k)
        value, g = f(xv, np.zeros(k))
        np.testing.assert_array_equal(value, expected)
        np.testing.assert_array_equal(g, 2 * (make(np.arange(6), k)[:, None] == np.arange(6))
                                      .sum(0) * xv)


def test_a_reversed_symbolic_dim_keeps_its_name(backend):
    x, y = sg.tensor("x", ("n",)), sg.tensor("y", ("n",))
    r = x[::-1]
    assert r.shape == x.shape  # was unknown (None): it could not meet y's n
    f = sg.function([x, y], [r + y, sg.grad((r * y).sum(), x)], backend=backend)
    xv, yv = np.arange(5.0), np.arange(5.0) ** 2
    value, g = f(xv, yv)
    np.testing.assert_array_equal(value, xv[::-1] + yv)
    np.testing.assert_array_equal(g, yv[::-1])


@pytest.mark.parametrize("step", [2, 3, -2, -3])
def test_a_strided_symbolic_dim_has_a_known_length(step, backend):
    """``x[::2]`` over a symbolic n had an unknown length (None), so it could not be split,
    reshaped by name or met with another ceil(n / 2)-long value."""
    x = sg.tensor("x", ("n", 2))
    y = x[::step]
    z = x[::abs(step)][::-1]  # the same length: checked equal when building
    assert y.shape[0] is not None and (y + z).shape[0] is not None
    f = sg.function([x], [y + z, sg.grad((y * y).sum(), x)], backend=backend)
    for n in range(8):
        xv = np.arange(2.0 * n).reshape(n, 2)
        value, g = f(xv)
        np.testing.assert_array_equal(value, xv[::step] + xv[::abs(step)][::-1])
        expected = np.zeros_like(xv)
        expected[::step] = 2 * xv[::step]
        np.testing.assert_array_equal(g, expected)


def test_symbolic_step_over_a_fixed_dim(backend):
    x, y = sg.tensor("x", (7,)), sg.tensor("y", ("k",))
    f = sg.function([x, y], x[::y.shape[0]], backend=backend)  # raised a TypeError
    for k in (1, 2, 3):
        np.testing.assert_array_equal(f(np.arange(7.0), np.zeros(k)), np.arange(7.0)[::k])


def test_static_index_errors():
    x = sg.tensor("x", (3, 4))
    with pytest.raises(IndexError):
        x[3]
    with pytest.raises(IndexError):
        x[0, -5]
    with pytest.raises(IndexError):
        x[0, 0, 0]
    with pytest.raises(ValueError):
        x[::0]


def test_slice_second_derivative(backend):
    # gradient nodes of slicing are differentiable themselves
    x = sg.tensor("x", (4,))
    cost = (x[1:3] ** 3).sum()
    H = sg.hessian(cost, x)
    xv = np.array([0.5, 1.0, -2.0, 3.0])
    Hv = sg.function([x], H, backend=backend)(xv)
    np.testing.assert_allclose(Hv, np.diag([0, 6 * 1.0, 6 * -2.0, 0]))


# --------------------------------------------------------------------------- integer arrays


def test_pick_per_row_with_symbolic_arange(backend):
    logp = sg.tensor("logp", ("n", 4))
    y = sg.tensor("y", ("n",), dtype="int64")
    n = logp.shape[0]
    picked = logp[sg.arange(n), y]
    assert picked.shape == (n,)
    cost = picked.mean()
    g = sg.grad(cost, logp)
    f = sg.function([logp, y], [picked, g], backend=backend)
    rng = np.random.default_rng(2)
    for size in (3, 6):
        lv = rng.standard_normal((size, 4))
        yv = rng.integers(0, 4, size)
        pv, gv = f(lv, yv)
        np.testing.assert_array_equal(pv, lv[np.arange(size), yv])
        expected = np.zeros_like(lv)
        expected[np.arange(size), yv] = 1.0 / size
        np.testing.assert_allclose(gv, expected)
        numeric = fd_grad(lambda a, yv=yv: a[np.arange(len(yv)), yv].mean(), lv)
        np.testing.assert_allclose(gv, numeric, rtol=1e-6, atol=1e-8)


def test_repeated_indices_accumulate(backend):
    x = sg.tensor("x", (5,))
    idx = np.array([1, 3, 1, 1, 0])
    cv = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    c = sg.tensor("c", (5,))
    g = sg.grad((x[idx] * c).sum(), x)
    gv = sg.function([x, c], g, backend=backend)(np.zeros(5), cv)
    np.testing.assert_allclose(gv, [5.0, 1 + 3 + 4, 0.0, 2.0, 0.0])


def test_index_array_as_graph_input(backend):
    x = sg.tensor("x", (4, 3))
    i = sg.tensor("i", ("k",), dtype="int32")
    y = x[i]
    assert y.shape[1] == 3
    g = sg.grad((y ** 2).sum(), x)
    f = sg.function([x, i], [y, g], backend=backend)
    rng = np.random.default_rng(3)
    xv = rng.standard_normal((4, 3))
    iv = np.array([3, 0, 3, -1], dtype="int32")  # -1 is row 3 again
    yv, gv = f(xv, iv)
    np.testing.assert_array_equal(yv, xv[iv])
    expected = np.zeros_like(xv)
    np.add.at(expected, iv, 2 * xv[iv])
    np.testing.assert_allclose(gv, expected)
    np.testing.assert_allclose(gv[3], 3 * 2 * xv[3])


@FIXTURE_OK
@given(data=st.data())
def test_integer_array_gradient_is_scatter_add(data, backend):
    rows = data.draw(st.integers(1, 5), label="rows")
    cols = data.draw(st.integers(1, 4), label="cols")
    k = data.draw(st.integers(1, 8), label="k")
    i = np.array(data.draw(st.lists(st.integers(-rows, rows - 1), min_size=k, max_size=k)))
    j = np.array(data.draw(st.lists(st.integers(-cols, cols - 1), min_size=k, max_size=k)))
    seed = data.draw(st.integers(0, 2**31), label="seed")
    rng = np.random.default_rng(seed)
    xv = rng.standard_normal((rows, cols))
    cv = rng.standard_normal(k)

    x = sg.tensor("x", (rows, cols))
    iv, jv = sg.tensor("i", (k,), dtype="int64"), sg.tensor("j", (k,), dtype="int64")
    c = sg.tensor("c", (k,))
    y = x[iv, jv]
    g = sg.grad((y * c).sum(), x)
    yv, gv = sg.function([x, iv, jv, c], [y, g], backend=backend)(xv, i, j, cv)

    np.testing.assert_array_equal(yv, xv[i, j])
    scatter = np.zeros_like(xv)
    np.add.at(scatter, (i, j), cv)
    np.testing.assert_allclose(gv, scatter, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gv, fd_grad(lambda a: np.sum(a[i, j] * cv), xv),
                               rtol=1e-6, atol=1e-8)


@FIXTURE_OK
@given(data=st.data())
def test_row_gather_with_repeats(data, backend):
    rows = data.draw(st.integers(1, 4), label="rows")
    idx = np.array(data.draw(st.lists(st.integers(0, rows - 1), min_size=1, max_size=6)))
    seed = data.draw(st.integers(0, 2**31), label="seed")
    gv, cv = check_index(backend, (rows, 3), idx, seed=seed)
    scatter = np.zeros((rows, 3))
    np.add.at(scatter, idx, cv)
    np.testing.assert_allclose(gv, scatter, rtol=1e-12, atol=1e-12)


def test_integer_array_second_derivative(backend):
    x = sg.tensor("x", (3,))
    idx = np.array([0, 2, 2])
    cost = (x[idx] ** 3).sum()
    H = sg.hessian(cost, x)
    xv = np.array([1.0, 2.0, -1.0])
    Hv = sg.function([x], H, backend=backend)(xv)
    np.testing.assert_allclose(Hv, np.diag([6 * 1.0, 0.0, 2 * 6 * -1.0]))


def test_integer_array_index_errors():
    x = sg.tensor("x", (3, 4))
    with pytest.raises(IndexError):
        x[sg.tensor("f", (2,))]  # float index array
    with pytest.raises(IndexError):
        x[np.array([True, False, True])]  # boolean masks are not supported
    with pytest.raises(IndexError):
        x[0, np.array([1, 2.5])]  # float index array mixed with an int


def test_integer_array_out_of_bounds_raises_at_run_time(backend):
    x = sg.tensor("x", (3,))
    i = sg.tensor("i", (2,), dtype="int64")
    f = sg.function([x, i], x[i], backend=backend)
    with pytest.raises(Exception) as info:  # noqa: B017 - any error, as long as it is loud
        f(np.zeros(3), np.array([0, 3]))
    assert "take" in str(info.value) or "index" in str(info.value).lower()


# --------------------------------------------------------------------------- mixed patterns


@pytest.mark.parametrize("make_index", [
    lambda: (slice(None), np.array([0, 3, 3])),
    lambda: (Ellipsis, np.array([1, 0, 1])),
    lambda: (np.array([2, 2, 0]), Ellipsis),
    lambda: (np.array([[0, 2], [1, 1]]),),
    lambda: (np.array([[0, 2], [1, 1]]), np.array([3, 0])),
    lambda: [0, 2, 0],
])
def test_integer_arrays_with_full_slices_and_ellipsis(make_index, backend):
    check_index(backend, (3, 4), make_index())


def test_non_adjacent_integer_arrays_move_to_front(backend):
    i, j = np.array([0, 1, 1]), np.array([3, 0, 3])
    gv, cv = check_index(backend, (2, 3, 4), (i, slice(None), j))
    scatter = np.zeros((2, 3, 4))
    np.add.at(scatter, (i, slice(None), j), cv)
    np.testing.assert_allclose(gv, scatter)


def test_two_ellipses_raise():
    with pytest.raises(IndexError):
        sg.tensor("x", (2, 3))[..., ...]


def test_the_gradient_of_an_index_refuses_a_value_of_another_shape():
    """setitem_zeros writes g element for element into its window: a (1, 2) g for a (4, 2)
    window (which the llvm backend wrote into one row) is refused when it is built."""
    y = sg.tensor("y", (4, 3, 2))
    node = sg.grad(sg.sum(y[:, 1] * 2.0), y).owner
    with pytest.raises(ShapeError, match=r"\(1, 2\) for the window \(4, 2\)"):
        type(node.op)(node.op.index)(node.inputs[0], sg.constant(np.ones((1, 2))))
    with pytest.raises(ShapeError, match="window"):
        type(node.op)(node.op.index)(node.inputs[0], sg.constant(np.ones((4, 3, 2))))
