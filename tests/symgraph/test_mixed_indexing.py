"""Integer-array indices mixed with ints and slices: ``x[i, 1]``, ``x[:, i]``, ``x[i, j]``.

numpy's rules: an int next to an index array is an advanced index too; advanced indices
broadcast together; their dims replace the first one's when they are adjacent and go in
front when a slice separates them; negative indices count from the end.  The gradient is a
scatter-add (repeated indices accumulate).  Oracles: numpy indexing for values and shapes,
``np.add.at`` and central finite differences (``sg.check_grad``) for gradients.
"""

import numpy as np
import pytest

import symgraph as sg

I3 = np.array([2, 0, 2])  # a repeated index
INEG = np.array([-1, 1, -1, 0])  # negative and repeated
I2D = np.array([[0, 2], [2, 2]])
COL = np.array([[1], [0]])

S = slice(None)
#: (shape of x, index): every index holds at least one integer array
PATTERNS = [
    ((4, 5), (I3, 1)),
    ((4, 5), (INEG, -2)),
    ((4, 5), (1, I3)),
    ((4, 5), (S, I3)),
    ((4, 5), (S, INEG)),
    ((4, 5), (I3, np.array([4, 4, 0]))),
    ((4, 5), (I2D, 3)),
    ((4, 5), (I2D, np.array([1, -5]))),  # broadcast (2, 2) with (2,)
    ((4, 5), (COL, I3)),  # broadcast (2, 1) with (3,) -> (2, 3)
    ((4, 5), (slice(1, 3), I3)),
    ((4, 5), (I3, slice(None, None, 2))),
    ((4, 5), (I3, slice(3, 0, -1))),
    ((4, 5), (slice(-2, None), INEG)),
    ((3, 4, 5), (I3, 1, S)),  # adjacent: in place
    ((3, 4, 5), (S, I3, 1)),
    ((3, 4, 5), (S, 1, INEG)),
    ((3, 4, 5), (I3 - 1, S, 1)),  # separated by a slice: advanced dims go first
    ((3, 4, 5), (1, S, INEG)),
    ((3, 4, 5), (I3, slice(1, 3), -1)),
    ((3, 4, 5), (I3, np.array([3, 3, 0]), 2)),
    ((3, 4, 5), (COL, S, I3)),
    ((3, 4, 5), (Ellipsis, I3, 4)),
    ((3, 4, 5), (slice(1, None), I3, slice(None, None, 2))),
    ((3, 4, 5), (2, I3)),
]


def _ids(case):
    shape, index = case
    parts = []
    for e in index:
        if isinstance(e, np.ndarray):
            parts.append(f"a{e.shape}")
        elif isinstance(e, slice):
            parts.append("." if e == S else f"{e.start}:{e.stop}:{e.step}")
        else:
            parts.append(repr(e))
    return f"{shape}[{','.join(parts)}]"


def _symbolic(index: tuple, as_variables: bool):
    """The index with its arrays as graph inputs (returned with their values) or constants."""
    inputs, values, out = [], [], []
    for n, e in enumerate(index):
        if isinstance(e, np.ndarray) and as_variables:
            var = sg.tensor(f"i{n}", e.shape, dtype="int64")
            inputs.append(var)
            values.append(e)
            out.append(var)
        else:
            out.append(e)
    return tuple(out), inputs, values


@pytest.mark.parametrize("as_variables", [False, True], ids=["constants", "variables"])
@pytest.mark.parametrize("case", PATTERNS, ids=[_ids(c) for c in PATTERNS])
def test_value_shape_and_gradient_match_numpy(case, as_variables, backend):
    shape, index = case
    rng = np.random.default_rng(len(shape) * 7 + len(index))
    xv = rng.standard_normal(shape)
    expected = xv[index]
    x = sg.tensor("x", shape)
    sym, inputs, values = _symbolic(index, as_variables)
    y = x[sym]
    assert tuple(y.shape) == expected.shape
    cv = rng.standard_normal(expected.shape)
    g = sg.grad((y * cv).sum(), x)
    yv, gv = sg.function([x, *inputs], [y, g], backend=backend)(xv, *values)
    np.testing.assert_array_equal(yv, expected)
    scatter = np.zeros(shape)
    np.add.at(scatter, index, cv)  # repeated indices accumulate
    np.testing.assert_allclose(gv, scatter, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", PATTERNS[::3], ids=[_ids(c) for c in PATTERNS[::3]])
def test_gradient_matches_finite_differences(case, backend):
    shape, index = case
    rng = np.random.default_rng(5)
    cv = rng.standard_normal(np.zeros(shape)[index].shape)
    sg.check_grad(lambda x: (sg.tanh(x[index]) * cv).sum(), [rng.standard_normal(shape)],
                  backend=backend)


def test_lists_and_numpy_integers_as_indices(backend):
    x = sg.tensor("x", (4, 5))
    xv = np.arange(20.0).reshape(4, 5)
    outs = [x[[3, 3, 0], np.int64(2)], x[np.int32(-1), [0, 4]], x[[[1], [2]], [0, 1, 1]]]
    got = sg.function([x], outs, backend=backend)(xv)
    for g, e in zip(got, [xv[[3, 3, 0], 2], xv[-1, [0, 4]], xv[[[1], [2]], [0, 1, 1]]]):
        np.testing.assert_array_equal(g, e)


def test_index_dtypes_and_0d_index_variable(backend):
    x = sg.tensor("x", (4, 5))
    i = sg.tensor("i", (3,), dtype="uint8")
    j = sg.tensor("j", (), dtype="int16")
    f = sg.function([x, i, j], [x[i, j], x[j, i]], backend=backend)
    xv = np.arange(20.0).reshape(4, 5)
    iv, jv = np.array([3, 0, 3], dtype="uint8"), np.array(-2, dtype="int16")
    a, b = f(xv, iv, jv)
    np.testing.assert_array_equal(a, xv[iv, jv])
    np.testing.assert_array_equal(b, xv[jv, iv])


def test_symbolic_batch_dim_and_int(backend):
    # x[:, i] and x[i, 0] with a symbolic batch dim: one compiled function, two batch sizes
    x = sg.tensor("x", ("n", 4))
    i = sg.tensor("i", ("k",), dtype="int64")
    cols, firsts = x[:, i], x[i, 0]
    cost = (cols ** 2).sum() + (firsts ** 3).sum()
    f = sg.function([x, i], [cols, firsts, sg.grad(cost, x)], backend=backend)
    rng = np.random.default_rng(3)
    for n in (3, 6):
        xv, iv = rng.standard_normal((n, 4)), np.array([1, -1, 1])
        a, b, g = f(xv, iv)
        np.testing.assert_array_equal(a, xv[:, iv])
        np.testing.assert_array_equal(b, xv[iv, 0])
        expected = np.zeros_like(xv)
        np.add.at(expected, (S, iv), 2 * xv[:, iv])
        np.add.at(expected, (iv, 0), 3 * xv[iv, 0] ** 2)
        np.testing.assert_allclose(g, expected, rtol=1e-12)


def test_second_derivative(backend):
    # gradient nodes of mixed indexing are differentiable again
    x = sg.tensor("x", (6,))
    idx = np.array([0, 2, 2])
    H = sg.hessian((sg.reshape(x, (3, 2))[idx, 1] ** 3).sum(), x)
    xv = np.array([1.0, 2.0, 3.0, 4.0, 5.0, -1.0])
    Hv = sg.function([x], H, backend=backend)(xv)
    expected = np.zeros((6, 6))
    for r, count in ((0, 1), (2, 2)):  # row 2 is picked twice
        expected[2 * r + 1, 2 * r + 1] = count * 6 * xv[2 * r + 1]
    np.testing.assert_allclose(Hv, expected)


@pytest.mark.parametrize("index, axis, value, position", [
    ((np.array([0, 4, 1]), 1), 0, 4, "1"),
    ((np.array([0, -5]), 1), 0, -5, "1"),
    ((slice(None), np.array([[0, 1], [5, 1]])), 1, 5, "(1, 0)"),
    ((np.array([1, 0]), np.array([0, 7])), 1, 7, "1"),
])
def test_out_of_bounds_raises_at_call_time(index, axis, value, position, backend):
    x = sg.tensor("x", ("n", "m"))
    sym, inputs, values = _symbolic(index, True)
    f = sg.function([x, *inputs], x[sym], backend=backend)
    with pytest.raises(IndexError) as info:
        f(np.zeros((4, 5)), *values)
    name = inputs[0 if axis == 0 or len(inputs) == 1 else 1].name
    assert (f"index {value} of '{name}' at position {position} is out of bounds for "
            f"axis {axis} with size {(4, 5)[axis]}") in str(info.value)


def test_int_beyond_a_symbolic_dim_raises_at_call_time(backend):
    x = sg.tensor("x", ("n", 3))
    i = sg.tensor("i", (2,), dtype="int64")
    f = sg.function([x, i], x[2, i], backend=backend)
    np.testing.assert_array_equal(f(np.arange(9.0).reshape(3, 3), np.array([0, 2])), [6, 8])
    with pytest.raises(IndexError) as info:
        f(np.zeros((2, 3)), np.array([0, 2]))
    assert "index 2 is out of bounds for axis 0 with size 2" in str(info.value)


def test_failed_gather_changes_no_shared_variable(backend):
    W = sg.shared(np.arange(12.0).reshape(4, 3), name="W")
    i = sg.tensor("i", (2,), dtype="int64")
    cost = (W[i, 1] ** 2).sum()
    f = sg.function([i], cost, updates={W: W - 0.1 * sg.grad(cost, W)}, backend=backend)
    f(np.array([0, 0]))
    before = W.get_value()
    with pytest.raises(IndexError):
        f(np.array([1, 4]))
    np.testing.assert_array_equal(W.get_value(), before)


@pytest.mark.parametrize("index, words", [
    (lambda x: (np.array([0.5]),), "array indices must be integers, got float64"),
    (lambda x: (..., ...), "a single ellipsis"),
    (lambda x: (None,), "use sg.expand_dims"),
    (lambda x: ([0, 1], 9), "index 9 is out of bounds for axis 1 with size 5"),
])
def test_index_errors_name_indexing_the_input_and_the_line(index, words):
    """As a shape error does: the function, x's type and the user's line (these had none)."""
    x = sg.tensor("x", (4, 5))
    with pytest.raises(IndexError) as info:
        x[index(x)]
    text = str(info.value)
    assert text.startswith("indexing: ") and words in text
    assert "inputs float64(4, 5)" in text and "test_mixed_indexing.py" in text


def test_build_time_errors():
    x = sg.tensor("x", (4, 5))
    i = np.array([0, 1])
    with pytest.raises(IndexError, match="out of bounds for axis 1 with size 5"):
        x[i, 5]
    with pytest.raises(IndexError, match="out of bounds for axis 0 with size 4"):
        x[-5, i]
    with pytest.raises(IndexError, match="too many indices"):
        x[i, 0, 0]
    with pytest.raises(IndexError, match="boolean"):
        x[np.array([True, False, True, False]), 0]
    with pytest.raises(IndexError, match="boolean"):
        x[i, True]
    with pytest.raises(IndexError, match="integers"):
        x[np.array([0.0, 1.0]), 0]
    with pytest.raises(IndexError, match="symbolic"):
        sg.tensor("y", ("n", 5))["n", i]
    with pytest.raises(Exception, match="broadcast|shape"):
        x[np.array([0, 1, 2]), np.array([0, 1])]
