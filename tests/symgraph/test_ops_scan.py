"""prod, cumsum, cumprod, sort, argsort, topk (symgraph/ops/scan.py, codegen/lower_scan.py):
values vs numpy/torch float64, gradients vs torch and finite differences (zeros in the
products, ties in the sorts), second order vs finite differences, on both backends."""

import numpy as np
import pytest
import torch
from helpers import NARROW_INTEGERS as NARROW
from helpers import fd_grad, overflowing
from numpy.exceptions import AxisError

import symgraph as sg
from symgraph.check import finite_differences

RNG = np.random.default_rng(20)


def run(backend, fn, *arrays):
    xs = [sg.tensor(f"x{i}", a.shape, a.dtype.name) for i, a in enumerate(arrays)]
    return sg.function(xs, fn(*xs), backend=backend)(*arrays)


def torch_grad(fn, x, w):
    t = torch.tensor(x, requires_grad=True)
    (fn(t) * torch.tensor(w)).sum().backward()
    return t.grad.numpy()


def sg_grad(backend, fn, x, w):
    v = sg.tensor("x", x.shape)
    cost = (fn(v) * w).sum()
    return sg.function([v], sg.grad(cost, v), backend=backend)(x)


def check_second_order(backend, fn, x, w, rtol=1e-5, atol=1e-7):
    """grad of (grad(sum(fn(x) * w)) . v) against finite differences of the first gradient."""
    v = RNG.standard_normal(x.shape)
    var = sg.tensor("x", x.shape)
    g = sg.grad((fn(var) * w).sum(), var)
    first = sg.function([var], (g * v).sum(), backend=backend)
    second = sg.function([var], sg.grad((g * v).sum(), var), backend=backend)(x)
    np.testing.assert_allclose(second, fd_grad(first, x), rtol=rtol, atol=atol)


def with_zeros(shape, count, seed=0):
    x = np.random.default_rng(seed).uniform(0.5, 1.5, shape) * \
        np.random.default_rng(seed + 1).choice([-1, 1], shape)
    flat = x.reshape(-1)
    flat[np.random.default_rng(seed + 2).choice(flat.size, count, replace=False)] = 0.0
    return x


# --------------------------------------------------------------------------- prod


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True), (-1, False),
                                           ((0, 2), False), ((0, 2), True), ((), False)])
def test_prod_values(axis, keepdims, backend):
    x = RNG.uniform(0.5, 1.5, (3, 5, 7))
    got = run(backend, lambda v: sg.prod(v, axis, keepdims), x)
    np.testing.assert_allclose(got, np.prod(x, axis=axis, keepdims=keepdims), rtol=1e-13)


def test_prod_dtypes_and_empty(backend):
    ints = np.array([[1, -2, 3], [4, 5, 0]], dtype=np.int32)
    got = run(backend, lambda v: sg.prod(v, 1), ints)
    assert got.dtype == np.int64 and list(got) == [-6, 0]
    flags = np.array([True, True, False])
    assert run(backend, lambda v: sg.prod(v), flags) == 0
    x32 = RNG.uniform(0.5, 1.5, (4, 6)).astype(np.float32)
    got = run(backend, lambda v: sg.prod(v, 0), x32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.prod(x32, 0), rtol=1e-5)
    empty = np.zeros((3, 0))
    np.testing.assert_array_equal(run(backend, lambda v: sg.prod(v, 1), empty), np.ones(3))


@pytest.mark.parametrize("axis,keepdims", [(0, False), (0, True), ((0, 1), False),
                                           (1, True), ((0, 2), False)])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "bool"])
def test_prod_over_leading_axes_multiplies_in_input_order(axis, keepdims, dtype, backend):
    """A reduced axis before the last one is taken in input order (ones, then multiplied
    into): the kept innermost axis vectorises. Long rows, odd lengths, NaN, inf, 0 and an
    empty reduced axis, against numpy."""
    rng = np.random.default_rng(5)
    if dtype == "bool":
        x = rng.random((3, 4, 67)) < 0.9
    elif dtype == "int8":
        x = rng.integers(-3, 4, (3, 4, 67)).astype(np.int8)
    else:
        x = rng.uniform(0.5, 1.5, (3, 4, 67)).astype(dtype)
        x[0, 1, 5], x[1, 2, 6], x[2, 0, 7] = np.nan, np.inf, 0.0
    got = run(backend, lambda v: sg.prod(v, axis, keepdims), x)
    expected = np.prod(x, axis=axis, keepdims=keepdims)
    assert got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == "float32" else 1e-13)
    empty = np.ones((0, 5), dtype)
    np.testing.assert_array_equal(run(backend, lambda v: sg.prod(v, 0), empty),
                                  np.prod(empty, 0))


@pytest.mark.parametrize("zeros", [0, 1, 2, 3])
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
def test_prod_gradient_with_zeros(zeros, axis, backend):
    x = with_zeros((4, 5), zeros, seed=zeros)
    w = RNG.standard_normal(np.prod(x, axis=axis).shape)
    dims = None if axis is None else ((axis,) if isinstance(axis, int) else axis)
    expected = torch_grad(lambda t: t.prod() if dims is None else
                          _torch_prod(t, dims), x, w)
    got = sg_grad(backend, lambda v: sg.prod(v, axis), x, w)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def _torch_prod(t, dims):
    for d in sorted(dims, reverse=True):
        t = t.prod(d)
    return t


def test_prod_gradient_single_zero_is_product_of_others(backend):
    x = np.array([0.0, 2.0, 3.0])
    np.testing.assert_array_equal(sg_grad(backend, sg.prod, x, np.ones(())), [6.0, 0, 0])


@pytest.mark.parametrize("zeros", [0, 1, 2])
@pytest.mark.parametrize("axis,keepdims", [(1, False), (None, False), ((0, 1), True)])
def test_prod_second_order(zeros, axis, keepdims, backend):
    x = with_zeros((3, 4), zeros, seed=10 + zeros)
    w = RNG.standard_normal(np.prod(x, axis=axis, keepdims=keepdims).shape)
    check_second_order(backend, lambda v: sg.prod(v, axis, keepdims), x, w)


# --------------------------------------------------------------------------- cumsum, cumprod


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_cumsum_cumprod_values(axis, backend):
    x = RNG.uniform(0.5, 1.5, (3, 5, 7))
    np.testing.assert_allclose(run(backend, lambda v: sg.cumsum(v, axis), x),
                               np.cumsum(x, axis), rtol=1e-13)
    np.testing.assert_allclose(run(backend, lambda v: sg.cumprod(v, axis), x),
                               np.cumprod(x, axis), rtol=1e-13)


def test_cumsum_dtypes_and_empty(backend):
    ints = np.array([[1, 2], [3, 4]], dtype=np.int32)
    got = run(backend, lambda v: sg.cumsum(v, 0), ints)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.cumsum(ints, 0))
    flags = np.array([True, False, True])
    np.testing.assert_array_equal(run(backend, sg.cumsum, flags), [1, 1, 2])
    np.testing.assert_array_equal(run(backend, lambda v: sg.cumprod(v, 0), ints),
                                  np.cumprod(ints, 0))
    x32 = RNG.standard_normal((5, 3)).astype(np.float32)
    got = run(backend, lambda v: sg.cumsum(v, 0), x32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.cumsum(x32, 0), rtol=1e-6)
    assert run(backend, lambda v: sg.cumsum(v, 1), np.zeros((2, 0))).shape == (2, 0)
    np.testing.assert_array_equal(run(backend, sg.cumsum, np.float64(3.0)), [3.0])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum_gradient(axis, backend):
    x = RNG.standard_normal((4, 5))
    w = RNG.standard_normal(x.shape)
    expected = torch_grad(lambda t: torch.cumsum(t, axis), x, w)
    np.testing.assert_allclose(sg_grad(backend, lambda v: sg.cumsum(v, axis), x, w),
                               expected, rtol=1e-12)


@pytest.mark.parametrize("zeros", [0, 1, 2])
@pytest.mark.parametrize("axis", [0, 1])
def test_cumprod_gradient_with_zeros(zeros, axis, backend):
    x = with_zeros((5, 6), zeros, seed=20 + zeros)
    x[1, 1] = x[1, 3] = 0.0 if zeros == 2 else x[1, 1]  # two zeros in one line
    w = RNG.standard_normal(x.shape)
    expected = torch_grad(lambda t: torch.cumprod(t, axis), x, w)
    np.testing.assert_allclose(sg_grad(backend, lambda v: sg.cumprod(v, axis), x, w),
                               expected, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("zeros", [0, 1, 2])
def test_cumprod_second_order(zeros, backend):
    x = with_zeros((3, 5), zeros, seed=30 + zeros)
    w = RNG.standard_normal(x.shape)
    check_second_order(backend, lambda v: sg.cumprod(v, 1), x, w)
    check_second_order(backend, lambda v: sg.cumprod(v, 0), x, w)


SCANS = {"prod": (sg.prod, np.prod), "cumsum": (sg.cumsum, np.cumsum),
         "cumprod": (sg.cumprod, np.cumprod)}


@pytest.mark.parametrize("dtype", NARROW)
@pytest.mark.parametrize("name", sorted(SCANS))
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_narrow_integers_accumulate_wide_as_numpy(name, dtype, axis, backend):
    # numpy's values (products wrap modulo 2**64 as numpy's do) and dtypes, except uint64:
    # symgraph has none, so unsigned integers widen to int64 (the same bits)
    ours, theirs = SCANS[name]
    xv = overflowing(dtype, (3, 19))
    got = run(backend, lambda v: ours(v, axis), xv)
    expected = np.asarray(theirs(xv, axis=axis))
    if expected.dtype == np.uint64:
        expected = expected.view(np.int64)
    assert np.asarray(got).dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_cumsum_fuses_its_elementwise_input():
    x = sg.tensor("x", (4, 5))
    f = sg.function([x], sg.cumsum(sg.exp(x) * 2.0, 1), backend="llvm")
    assert len(f.kernels) == 1 and {"exp", "mul", "cumsum"} <= {
        n.op.name for n in f.kernels[0].nodes}
    X = RNG.standard_normal((4, 5))
    np.testing.assert_allclose(f(X), np.cumsum(np.exp(X) * 2.0, 1), rtol=1e-13)


def test_scans_over_a_symbolic_batch(backend):
    x = sg.tensor("x", ("batch", 4))
    f = sg.function([x], [sg.cumsum(x, 0), sg.prod(x, 0), sg.sort(x, 0)], backend=backend)
    for n in (1, 6):
        X = RNG.standard_normal((n, 4))
        cs, pr, so = f(X)
        np.testing.assert_allclose(cs, np.cumsum(X, 0), rtol=1e-13)
        np.testing.assert_allclose(pr, np.prod(X, 0), rtol=1e-13)
        np.testing.assert_array_equal(so, np.sort(X, 0))


# --------------------------------------------------------------------------- sort, argsort


def ties(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 4, shape).astype(np.float64)


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_sort_argsort_with_ties(axis, backend):
    x = ties((4, 7, 5), seed=1)
    idx = run(backend, lambda v: sg.argsort(v, axis), x)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, np.argsort(x, axis, kind="stable"))
    np.testing.assert_array_equal(run(backend, lambda v: sg.sort(v, axis), x), np.sort(x, axis))
    if axis is not None:
        t = torch.sort(torch.tensor(x), dim=axis, stable=True)
        np.testing.assert_array_equal(idx, t.indices.numpy())


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool", "float32"])
def test_argsort_dtypes(dtype, backend):
    x = RNG.integers(-3, 3, (3, 9)).astype(dtype)
    np.testing.assert_array_equal(run(backend, sg.argsort, x),
                                  np.argsort(x, -1, kind="stable"))
    np.testing.assert_array_equal(run(backend, sg.sort, x), np.sort(x, -1))


def test_argsort_long_lines_many_ties(backend):
    x = RNG.integers(0, 20, (3, 1001)).astype(np.float64)
    x[0] = np.arange(1001)[::-1]  # reversed
    x[1, ::7] = np.nan
    np.testing.assert_array_equal(run(backend, sg.argsort, x), np.argsort(x, -1, kind="stable"))


@pytest.mark.parametrize("n", [17, 33, 8192, 8193])
def test_argsort_both_llvm_strategies_on_a_symbolic_line(n, backend):
    """Lines up to MERGE_CAP are merge-sorted in a stack scratch, longer ones in a malloc'd
    one (llvm), chosen at run time for a symbolic length or at compile time for a fixed one."""
    x = RNG.integers(0, 50, (2, n)).astype(np.float64)
    x[1, ::5] = np.nan
    expected = np.argsort(x, -1, kind="stable")
    for shape in ((2, "n"), x.shape):
        v = sg.tensor("x", shape)
        got = sg.function([v], sg.argsort(v), backend=backend)(x)
        np.testing.assert_array_equal(got, expected)


def test_sort_nan_last_and_signed_zero(backend):
    x = np.array([[np.nan, 1.0, -np.inf, np.nan, 0.0, -0.0, np.inf, -1.0]])
    np.testing.assert_array_equal(run(backend, sg.argsort, x), np.argsort(x, kind="stable"))
    np.testing.assert_array_equal(run(backend, sg.sort, x), np.sort(x))


@pytest.mark.parametrize("axis", [0, 1])
def test_sort_gradient_with_ties(axis, backend):
    x = ties((5, 6), seed=3) + 0.0
    w = RNG.standard_normal(x.shape)
    expected = torch_grad(lambda t: torch.sort(t, dim=axis, stable=True).values, x, w)
    np.testing.assert_allclose(sg_grad(backend, lambda v: sg.sort(v, axis), x, w), expected,
                               rtol=1e-12)


def test_sort_second_order(backend):
    x = RNG.standard_normal((3, 6))
    w = RNG.standard_normal(x.shape)
    check_second_order(backend, lambda v: sg.sort(v * v * v, 1), x, w)
    check_second_order(backend, lambda v: sg.sort(sg.sin(v), 0) ** 2, x, w)


def test_argsort_has_no_gradient():
    x = sg.tensor("x", (3,))
    with pytest.raises(sg.DisconnectedInputError):
        sg.grad(sg.sum(sg.cast(sg.argsort(x), "float64")), x)


# --------------------------------------------------------------------------- topk


def topk_oracle(x, k, axis):
    """Largest first, NaN largest, ties lower index first, by Python's stable sort."""
    x = np.moveaxis(x, axis, -1)
    order = np.empty(x.shape[:-1] + (k,), dtype=np.int64)
    for pos in np.ndindex(x.shape[:-1]):
        line = x[pos]
        order[pos] = sorted(range(line.size),
                            key=lambda i: (0 if np.isnan(line[i]) else 1, -line[i]))[:k]
    order = np.moveaxis(order, -1, axis)
    return np.take_along_axis(np.moveaxis(x, -1, axis), order, axis), order


@pytest.mark.parametrize("k,axis", [(1, -1), (3, -1), (7, -1), (2, 0), (4, 1), (0, -1)])
def test_topk_values_indices_ties(k, axis, backend):
    x = ties((4, 5, 7), seed=4)
    x[0, 0, 3] = x[1, 2, 0] = np.nan
    values, indices = run(backend, lambda v: sg.topk(v, k, axis), x)
    expected_values, expected_indices = topk_oracle(x, k, axis)
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(values, expected_values)


def test_topk_matches_torch_without_ties(backend):
    x = RNG.standard_normal((6, 9))
    x[2, 4] = np.nan
    for k in (1, 4, 9):
        values, indices = run(backend, lambda v, k=k: sg.topk(v, k), x)
        t = torch.topk(torch.tensor(x), k, dim=-1)
        np.testing.assert_array_equal(values, t.values.numpy())
        np.testing.assert_array_equal(indices, t.indices.numpy())


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool", "float32"])
def test_topk_dtypes(dtype, backend):
    x = RNG.integers(-3, 3, (3, 8)).astype(dtype)
    values, indices = run(backend, lambda v: sg.topk(v, 3), x)
    expected_values, expected_indices = topk_oracle(x.astype(np.float64), 3, -1)
    assert values.dtype == x.dtype
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(values, expected_values.astype(dtype))


@pytest.mark.parametrize("k,axis", [(1, 1), (3, 0), (6, 1)])
def test_topk_gradient(k, axis, backend):
    x = RNG.standard_normal((4, 6))
    w = RNG.standard_normal(np.moveaxis(np.moveaxis(x, axis, -1)[..., :k], -1, axis).shape)
    expected = torch_grad(lambda t: torch.topk(t, k, dim=axis).values, x, w)
    np.testing.assert_allclose(sg_grad(backend, lambda v: sg.topk(v, k, axis)[0], x, w),
                               expected, rtol=1e-12)
    check_second_order(backend, lambda v: sg.topk(v * v * v, k, axis)[0], x, w)


def test_topk_gradient_with_ties_goes_to_the_lower_index(backend):
    x = np.array([1.0, 3.0, 2.0, 3.0])
    got = sg_grad(backend, lambda v: sg.topk(v, 1)[0], x, np.ones(1))
    np.testing.assert_array_equal(got, [0, 1, 0, 0])


def test_topk_symbolic_axis_checks_k_at_call(backend):
    x = sg.tensor("x", ("n",))
    f = sg.function([x], sg.topk(x, 3)[0], backend=backend)
    np.testing.assert_array_equal(f(np.array([1.0, 5.0, 2.0, 4.0])), [5.0, 4.0, 2.0])
    with pytest.raises(ValueError, match="k=3"):
        f(np.array([1.0, 2.0]))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name,call", [
    ("prod", lambda x: sg.prod(x, 2)), ("cumsum", lambda x: sg.cumsum(x, -3)),
    ("cumprod", lambda x: sg.cumprod(x, 2)), ("sort", lambda x: sg.sort(x, 5)),
    ("argsort", lambda x: sg.argsort(x, -3)), ("topk", lambda x: sg.topk(x, 1, 2)),
])
def test_bad_axis_names_the_function(name, call):
    with pytest.raises(AxisError, match=name):
        call(sg.tensor("x", (2, 3)))


def test_topk_k_out_of_range_at_build_time():
    x = sg.tensor("x", (2, 3))
    for k in (4, -1):
        with pytest.raises(ValueError, match="topk.*k=") as err:
            sg.topk(x, k)
        assert not isinstance(err.value, AxisError)
    with pytest.raises(TypeError, match="topk"):
        sg.topk(x, 1.5)


def test_gradient_values_vs_finite_differences(backend):
    """One composite cost through every differentiable op of the family."""
    x = RNG.uniform(0.5, 1.5, (3, 4))

    def cost(v):
        return (sg.prod(v, 0).sum() + (sg.cumprod(v, 1) * sg.cumsum(v, 0)).sum()
                + sg.sort(v * v, 1)[:, 0].sum() + sg.topk(v, 2, 0)[0].sum())

    var = sg.tensor("x", x.shape)
    f = sg.function([var], cost(var), backend=backend)
    g = sg.function([var], sg.grad(cost(var), var), backend=backend)(x)
    np.testing.assert_allclose(g, finite_differences(f, [x], 1e-6)[0], rtol=1e-6)
