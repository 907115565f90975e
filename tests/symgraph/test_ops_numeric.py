"""The elementwise numeric functions of api v1.1 (symgraph/ops/numeric.py) on both backends.

Values against numpy (torch for erf, erfc and round), edge values (NaN, +-inf, +-0, domain edges),
integer semantics of rounding and floor division, first derivatives against finite
differences and torch, second derivatives against sympy.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import sympy
import torch
from helpers import assert_close, assert_grad_matches, inputs_like, random_array, run_graph

import symgraph as sg

X = sympy.Symbol("x", real=True)
FLOATS = ("float32", "float64")


def _torch_erf(x):
    return torch.erf(torch.from_numpy(np.asarray(x, np.float64))).numpy()


def _torch_erfc(x):
    return torch.erfc(torch.from_numpy(np.asarray(x, np.float64))).numpy()


# name -> (symgraph function, float64 oracle, sympy expression, range of x (inside the domain))
TRANSCENDENTAL = {
    "tan": (sg.tan, np.tan, sympy.tan(X), (-1.4, 1.4)),
    "arcsin": (sg.arcsin, np.arcsin, sympy.asin(X), (-0.95, 0.95)),
    "arccos": (sg.arccos, np.arccos, sympy.acos(X), (-0.95, 0.95)),
    "sinh": (sg.sinh, np.sinh, sympy.sinh(X), (-4, 4)),
    "cosh": (sg.cosh, np.cosh, sympy.cosh(X), (-4, 4)),
    "arcsinh": (sg.arcsinh, np.arcsinh, sympy.asinh(X), (-5, 5)),
    "arccosh": (sg.arccosh, np.arccosh, sympy.acosh(X), (1.05, 6)),
    "arctanh": (sg.arctanh, np.arctanh, sympy.atanh(X), (-0.95, 0.95)),
    "erf": (sg.erf, _torch_erf, sympy.erf(X), (-3, 3)),
    "erfc": (sg.erfc, _torch_erfc, sympy.erfc(X), (-3, 3)),
    "log2": (sg.log2, np.log2, sympy.log(X, 2), (0.05, 20)),
    "log10": (sg.log10, np.log10, sympy.log(X, 10), (0.05, 20)),
    "exp2": (sg.exp2, np.exp2, 2**X, (-8, 8)),
}


def _numpy(f, *xs):
    with np.errstate(all="ignore"):
        return f(*xs)


def _assert_same_floats(got, want):
    """Equal values, NaN where ``want`` is NaN, and the same sign of every zero."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got[got == 0]), np.signbit(want[want == 0]))


# --------------------------------------------------------------------------- transcendentals


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(TRANSCENDENTAL))
def test_transcendental_values_match_numpy(backend, name, dtype):
    fn, oracle, _, (lo, hi) = TRANSCENDENTAL[name]
    x = random_array(np.random.default_rng(len(name)), (3, 67), lo, hi, dtype)  # vector body
    got = run_graph(fn, [x], backend)                                            # + remainder
    assert got.dtype == np.dtype(dtype) and got.shape == x.shape
    assert_close(got, oracle(x.astype(np.float64)), dtype)


def test_scalars_and_constants(backend):
    x = sg.tensor("x", ())
    outs = [fn(x) for fn, *_ in TRANSCENDENTAL.values()]
    outs += [sg.erf(sg.exp2(3.0) * x), sg.mod(x, 0.3), sg.floor_divide(-7, 2), sg.isnan(x),
             sg.round(x * 5)]
    got = sg.function([x], outs, backend=backend)(np.float64(0.5))
    want = [_numpy(oracle, np.float64(0.5)) for _, oracle, *_ in TRANSCENDENTAL.values()]
    want += [math.erf(4.0), np.remainder(0.5, 0.3), -4, False, 2.0]
    for g, w in zip(got, want):
        assert np.shape(g) == ()
        np.testing.assert_allclose(g, w, rtol=1e-14)


@pytest.mark.parametrize("dtype", ["bool", "int8", "int32", "int64", "uint8"])
def test_transcendental_of_integers_computes_in_float64(backend, dtype):
    x = np.array([0, 1, 2, 3, 1, 0]).astype(dtype)
    table = sorted(TRANSCENDENTAL.items())
    got = run_graph(lambda a: [fn(a) for _, (fn, *_) in table], [x], backend)
    for (name, (_, oracle, *_)), value in zip(table, got):
        assert value.dtype == np.float64, name
        np.testing.assert_allclose(value, _numpy(oracle, x.astype(np.float64)), rtol=1e-14,
                                   err_msg=name)


SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 1e-30, 30.0]


@pytest.mark.parametrize("dtype", FLOATS)
def test_transcendental_special_values_match_numpy(backend, dtype):
    x = np.array(SPECIAL * 5, dtype)  # through the vectorised loop as well
    table = sorted(TRANSCENDENTAL.items())
    got = run_graph(lambda a: [fn(a) for _, (fn, *_) in table], [x], backend)
    for (name, (_, oracle, *_)), value in zip(table, got):
        want = _numpy(oracle, x.astype(np.float64)).astype(dtype)
        np.testing.assert_array_equal(np.isnan(value), np.isnan(want), err_msg=name)
        np.testing.assert_allclose(value, want, rtol=2e-6 if dtype == "float32" else 1e-14,
                                   err_msg=name)
        np.testing.assert_array_equal(np.signbit(value[want == 0]), np.signbit(want[want == 0]),
                                      err_msg=name)


EDGES = [  # (function, x, exact value)
    (sg.arcsin, 1.0, math.pi / 2), (sg.arcsin, -1.0, -math.pi / 2), (sg.arcsin, 1.5, math.nan),
    (sg.arccos, 1.0, 0.0), (sg.arccos, -1.0, math.pi), (sg.arccos, -1.01, math.nan),
    (sg.arccosh, 1.0, 0.0), (sg.arccosh, 0.99, math.nan), (sg.arccosh, math.inf, math.inf),
    (sg.arctanh, 1.0, math.inf), (sg.arctanh, -1.0, -math.inf), (sg.arctanh, 1.5, math.nan),
    (sg.arcsinh, -math.inf, -math.inf), (sg.sinh, -math.inf, -math.inf),
    (sg.cosh, -math.inf, math.inf), (sg.tan, math.inf, math.nan),
    (sg.erf, math.inf, 1.0), (sg.erf, -math.inf, -1.0), (sg.erf, 0.0, 0.0),
    (sg.erfc, math.inf, 0.0), (sg.erfc, -math.inf, 2.0), (sg.erfc, 0.0, 1.0),
    (sg.log2, 0.0, -math.inf), (sg.log2, -1.0, math.nan), (sg.log2, 1024.0, 10.0),
    (sg.log10, 0.0, -math.inf), (sg.log10, 1000.0, 3.0), (sg.log10, math.inf, math.inf),
    (sg.exp2, -math.inf, 0.0), (sg.exp2, 10.0, 1024.0), (sg.exp2, -1.0, 0.5),
]


@pytest.mark.parametrize("dtype", FLOATS)
def test_domain_edges(backend, dtype):
    points = np.array([at for _, at, _ in EDGES], dtype)
    x = sg.tensor("x", points.shape, dtype)
    f = sg.function([x], [fn(x) for fn, _, _ in EDGES], backend=backend)
    for k, ((fn, at, want), got) in enumerate(zip(EDGES, f(points))):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got[k], np.array(want, dtype), rtol=1e-6,
                                   err_msg=f"{fn.__name__}({at})")


@pytest.mark.parametrize("name", sorted(TRANSCENDENTAL))
def test_transcendental_gradient_matches_finite_differences(backend, name):
    fn, _, _, (lo, hi) = TRANSCENDENTAL[name]
    rng = np.random.default_rng(7)
    x = random_array(rng, (3, 4), lo, hi)
    w = random_array(rng, (3, 4))
    assert_grad_matches(lambda a: sg.sum(fn(a) * w), [x], backend, rtol=1e-6, atol=1e-7)


@functools.cache
def _sympy_derivatives(name):
    expr = TRANSCENDENTAL[name][2]
    return [sympy.lambdify(X, sympy.diff(expr, X, k), "numpy") for k in (1, 2)]


@pytest.mark.parametrize("name", sorted(TRANSCENDENTAL))
def test_transcendental_second_derivative_matches_sympy(backend, name):
    fn, _, _, (lo, hi) = TRANSCENDENTAL[name]
    xv = random_array(np.random.default_rng(11), (6,), lo, hi)
    x = sg.tensor("x", (6,))
    g1 = sg.grad(sg.sum(fn(x)), x)
    g2 = sg.grad(sg.sum(g1), x)
    got1, got2 = sg.function([x], [g1, g2], backend=backend)(xv)
    want1, want2 = (np.broadcast_to(d(xv), (6,)) for d in _sympy_derivatives(name))
    np.testing.assert_allclose(got1, want1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got2, want2, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", FLOATS)
def test_erfc_keeps_its_relative_precision_in_the_tail(backend, dtype):
    """Where erf is within rounding of 1 (x from 3 to 9: erfc from 2e-5 down to 4e-37)
    erfc still has the precision of its dtype: it is not ``1 - erf``."""
    xv = np.linspace(3, 9, 61).astype(dtype)
    x = sg.tensor("x", xv.shape, dtype)
    got = sg.function([x], sg.erfc(x), backend=backend)(xv)
    np.testing.assert_allclose(got, _torch_erfc(xv), rtol=4e-6 if dtype == "float32" else 1e-14)


def test_float32_stays_float32_through_value_and_gradient(backend):
    x = sg.tensor("x", (5,), "float32")
    outs = [sg.erf(x), sg.log2(x), sg.exp2(x), sg.mod(x, 0.75), sg.floor_divide(x, 2),
            sg.round(x)]
    assert all(o.dtype == np.float32 for o in outs)
    g = sg.grad(sg.sum(sg.erf(x) * sg.log2(x) + sg.mod(x, 0.75)), x)
    assert g.dtype == np.float32
    xv = np.array([0.3, 0.9, 1.6, 2.5, 3.1], np.float32)
    got = sg.function([x], [*outs, g], backend=backend)(xv)
    assert all(v.dtype == np.float32 for v in got)
    np.testing.assert_allclose(got[3], np.remainder(xv, np.float32(0.75)), rtol=1e-6)


# --------------------------------------------------------------------------- rounding

ROUNDING = {
    "floor": (sg.floor, np.floor, torch.floor),
    "ceil": (sg.ceil, np.ceil, torch.ceil),
    "round": (sg.round, np.round, torch.round),
    "trunc": (sg.trunc, np.trunc, torch.trunc),
}
HALVES = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, -0.2, 0.7, -0.7, 2**52 + 1.0, 1e300,
          -1e300, 0.0, -0.0, np.inf, -np.inf, np.nan, 3.0, -3.0, 1e-300]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(ROUNDING))
def test_rounding_matches_numpy_and_torch(backend, name, dtype):
    fn, oracle, torch_fn = ROUNDING[name]
    rng = np.random.default_rng(3)
    with np.errstate(over="ignore"):  # 1e300 is inf in float32
        x = np.concatenate([np.array(HALVES * 3), rng.uniform(-50, 50, 70)]).astype(dtype)
    got = run_graph(fn, [x], backend)
    _assert_same_floats(got, oracle(x))  # -0.0 from ceil(-0.5), round(-0.2) kept
    np.testing.assert_array_equal(got, torch_fn(torch.from_numpy(x)).numpy())


def test_round_is_half_to_even():
    got = sg.function([x := sg.tensor("x", (6,))], sg.round(x), backend="llvm")(
        np.array([0.5, 1.5, 2.5, 3.5, -0.5, -2.5]))
    np.testing.assert_array_equal(got, [0.0, 2.0, 2.0, 4.0, -0.0, -2.0])


@pytest.mark.parametrize("dtype", ["bool", "int8", "int32", "int64", "uint8"])
@pytest.mark.parametrize("name", sorted(ROUNDING))
def test_rounding_integers_is_the_identity(backend, name, dtype):
    info = np.iinfo(dtype) if dtype != "bool" else None
    values = [0, 1] if info is None else [info.min, info.max, 0, 1, 7, info.min + 3]
    x = np.array(values).astype(dtype)
    got = run_graph(ROUNDING[name][0], [x], backend)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, x)
    if dtype != "bool":  # numpy's round of bool is float16; rounding a bool is the identity
        np.testing.assert_array_equal(got, ROUNDING[name][1](x))


@pytest.mark.parametrize("name", sorted(ROUNDING))
def test_rounding_gradient_is_zero_not_disconnected(backend, name):
    fn = ROUNDING[name][0]
    x = sg.tensor("x", (4,))
    xv = np.array([-1.3, -0.4, 0.6, 2.2])
    g = sg.grad(sg.sum(fn(x) * x), x)  # d/dx (r(x) * x) = r(x) with r' = 0
    np.testing.assert_array_equal(sg.function([x], g, backend=backend)(xv), ROUNDING[name][1](xv))
    # the fractional part has gradient 1, as in torch
    frac = sg.grad(sg.sum(x - fn(x)), x)
    np.testing.assert_array_equal(sg.function([x], frac, backend=backend)(xv), np.ones(4))


# --------------------------------------------------------------------------- classification

CLASSIFY = {"isnan": (sg.isnan, np.isnan), "isinf": (sg.isinf, np.isinf),
            "isfinite": (sg.isfinite, np.isfinite)}


@pytest.mark.parametrize("dtype", [*FLOATS, "int32", "int64", "uint8", "bool"])
@pytest.mark.parametrize("name", sorted(CLASSIFY))
def test_classification_matches_numpy(backend, name, dtype):
    fn, oracle = CLASSIFY[name]
    if dtype in FLOATS:
        x = np.array(SPECIAL * 7 + [np.finfo(dtype).max, -np.finfo(dtype).max], dtype)
    else:
        x = np.array([0, 1, 1, 0, 1, 0, 1]).astype(dtype)
    got = run_graph(fn, [x], backend)
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, oracle(x))


@pytest.mark.parametrize("name", sorted(CLASSIFY))
def test_classification_carries_no_gradient(backend, name):
    fn = CLASSIFY[name][0]
    x = sg.tensor("x", (3,))
    with pytest.raises(sg.DisconnectedInputError, match="'x'"):
        sg.grad(sg.sum(sg.cast(fn(x), "float64")), x)
    # a mask for where: the condition adds nothing, the selected branch its gradient
    g = sg.grad(sg.sum(sg.where(fn(x), x * 0.0, x * x)), x)
    xv = np.array([1.0, -2.0, 3.0])
    got = sg.function([x], g, backend=backend)(xv)
    np.testing.assert_array_equal(got, np.where(CLASSIFY[name][1](xv), 0.0, 2 * xv))


def test_nan_to_zero_pattern(backend):
    x = sg.tensor("x", (5,))
    clean = sg.where(sg.isfinite(x), x, 0.0)
    xv = np.array([1.0, np.nan, -np.inf, 2.0, np.inf])
    out, g = sg.function([x], [clean, sg.grad(sg.sum(clean * 3.0), x)], backend=backend)(xv)
    np.testing.assert_array_equal(out, [1.0, 0.0, 0.0, 2.0, 0.0])
    np.testing.assert_array_equal(g, [3.0, 0.0, 0.0, 3.0, 0.0])


# --------------------------------------------------------------------------- floor division

DIVISION = {"floor_divide": (sg.floor_divide, np.floor_divide),
            "mod": (sg.mod, np.remainder)}


def _int_operands(dtype):
    info = np.iinfo(dtype)
    if info.min == 0:
        a = [0, 1, 2, 5, 7, 100, info.max, info.max - 1]
        b = [0, 1, 2, 3, 7, info.max]
    else:
        a = [0, 1, -1, 5, -5, 7, -7, 100, -100, info.min, info.max, info.min + 1]
        b = [0, 1, -1, 2, -2, 3, -3, 7, -7, info.min, info.max]
    return np.array(a, dtype)[:, None], np.array(b, dtype)  # every pair, by broadcasting


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8"])
@pytest.mark.parametrize("name", sorted(DIVISION))
def test_integer_division_matches_numpy(backend, name, dtype):
    """Floor semantics with negative operands, zero divisors (numpy: 0) and MIN // -1."""
    fn, oracle = DIVISION[name]
    a, b = _int_operands(dtype)
    got = run_graph(fn, [a, b], backend)
    want = _numpy(oracle, a, b)
    assert got.dtype == want.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(DIVISION))
def test_division_of_bools_gives_int8_as_numpy(backend, name):
    fn, oracle = DIVISION[name]
    a, b = np.array([[False], [True]]), np.array([False, True])
    got = run_graph(fn, [a, b], backend)
    want = _numpy(oracle, a, b)
    assert got.dtype == want.dtype == np.int8
    np.testing.assert_array_equal(got, want)


FLOAT_OPERANDS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.3, -0.3, 5.5, -5.5, 7.0,
                  -7.0, 2.0, 1e308, -1e-308, 3e-45, 1e30]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(DIVISION))
def test_float_division_matches_numpy_exactly(backend, name, dtype):
    """numpy's npy_divmod: infinities, NaN, zero divisors, signed zeros, huge quotients."""
    fn, oracle = DIVISION[name]
    with np.errstate(over="ignore"):
        values = np.array(FLOAT_OPERANDS, dtype)
    a, b = values[:, None], values
    _assert_same_floats(run_graph(fn, [a, b], backend), _numpy(oracle, a, b))
    rng = np.random.default_rng(5)
    a = rng.uniform(-20, 20, (4, 37)).astype(dtype)
    b = rng.choice([-3.0, -0.7, 0.25, 1.5, 4.0], (4, 37)).astype(dtype)
    _assert_same_floats(run_graph(fn, [a, b], backend), _numpy(oracle, a, b))


def test_division_mixes_python_numbers_and_dtypes(backend):
    i = sg.tensor("i", (4,), "int32")
    x = sg.tensor("x", (4,), "float32")
    outs = [sg.floor_divide(i, 3), sg.mod(i, -3), sg.floor_divide(i, 2.5), sg.mod(x, 2),
            sg.mod(7, i), sg.floor_divide(x, i)]
    assert [o.dtype.name for o in outs] == ["int32", "int32", "float64", "float32", "int32",
                                            "float64"]
    iv, xv = np.array([-7, -1, 4, 9], np.int32), np.array([-2.5, 0.5, 3.0, 8.25], np.float32)
    got = sg.function([i, x], outs, backend=backend)(iv, xv)
    want = [iv // 3, iv % -3, iv // 2.5, xv % np.float32(2), 7 % iv, xv.astype(np.float64) // iv]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_division_shape_error_names_the_op():
    a, b = sg.tensor("a", (2, 3)), sg.tensor("b", (4,))
    with pytest.raises(ValueError, match="floor_divide"):
        sg.floor_divide(a, b)
    with pytest.raises(ValueError, match="mod"):
        sg.mod(a, b)


def _away_from_kinks(rng, shape):
    """``a``, ``b`` with ``a / b`` at least 0.1 from an integer (mod's jumps)."""
    b = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)
    q = rng.integers(-4, 4, shape) + rng.uniform(0.1, 0.9, shape)
    return q * b, b


def test_mod_gradient_matches_torch_and_finite_differences(backend):
    rng = np.random.default_rng(2)
    a, b = _away_from_kinks(rng, (3, 4))
    w = random_array(rng, (3, 4))
    ga, gb = assert_grad_matches(lambda x, y: sg.sum(sg.mod(x, y) * w), [a, b], backend)
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    (torch.remainder(ta, tb) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ga, ta.grad.numpy(), rtol=1e-14)
    np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-14)


def test_mod_gradient_with_broadcasting(backend):
    rng = np.random.default_rng(4)
    a, _ = _away_from_kinks(rng, (3, 4))
    b = np.array([0.7, -1.3, 1.9, -0.55])
    a = np.where(np.abs(a / b - np.round(a / b)) < 0.1, a + 0.3 * b, a)  # away from kinks
    gb = assert_grad_matches(lambda x, y: sg.sum(sg.mod(x, y) ** 2), [a, b], backend)[1]
    assert gb.shape == (4,)


def test_floor_divide_gradient_is_zero_in_both_operands(backend):
    a, b = sg.tensor("a", (3,)), sg.tensor("b", ())
    cost = sg.sum(sg.floor_divide(a, b) * a)
    ga, gb = sg.grad(cost, [a, b])
    av, bv = np.array([-3.5, 0.2, 7.1]), np.array(2.0)
    got_a, got_b = sg.function([a, b], [ga, gb], backend=backend)(av, bv)
    np.testing.assert_array_equal(got_a, np.floor_divide(av, bv))
    assert got_b == 0.0 and got_b.shape == ()
    ta, tb = torch.tensor(av, requires_grad=True), torch.tensor(bv, requires_grad=True)
    (torch.div(ta, tb, rounding_mode="floor") * ta).sum().backward()
    np.testing.assert_array_equal(got_a, ta.grad.numpy())
    np.testing.assert_array_equal(got_b, tb.grad.numpy())


def test_mod_second_derivative(backend):
    """d/db of mod's b-gradient (-floor_divide) is zero; d2/da2 is zero; d/da of it too."""
    a, b = sg.tensor("a", (3,)), sg.tensor("b", (3,))
    ga, gb = sg.grad(sg.sum(sg.mod(a, b) ** 2), [a, b])
    hessian_parts = sg.grad(sg.sum(gb), [a, b])
    av, bv = np.array([2.3, -4.1, 0.7]), np.array([1.5, 1.2, -0.4])
    got = sg.function([a, b], [ga, gb, *hessian_parts], backend=backend)(av, bv)
    r, q = np.remainder(av, bv), np.floor_divide(av, bv)
    np.testing.assert_allclose(got[0], 2 * r)
    np.testing.assert_allclose(got[1], -2 * r * q)
    # d/da (-2 r q) = -2 q, d/db (-2 r q) = -2 (-q) q = 2 q^2
    np.testing.assert_allclose(got[2], -2 * q)
    np.testing.assert_allclose(got[3], 2 * q * q)


def test_fused_into_one_loop(backend):
    x = sg.tensor("x", (None,))
    y = sg.floor(x * 2.0) + sg.mod(x, 0.5) - sg.erf(x) * sg.where(sg.isnan(x), 0.0, 1.0)
    f = sg.function([x], y, backend=backend)
    xv = np.linspace(-3, 3, 101)
    with np.errstate(all="ignore"):
        want = np.floor(xv * 2) + np.remainder(xv, 0.5) - _torch_erf(xv)
    np.testing.assert_allclose(f(xv), want, rtol=1e-14, atol=1e-15)
    if backend == "llvm":
        assert len(f.kernels) == 1


def test_public_names():
    names = ["tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh",
             "arctanh", "erf", "erfc", "log2", "log10", "exp2", "floor", "ceil", "round", "trunc",
             "isnan", "isinf", "isfinite", "floor_divide", "mod"]
    for name in names:
        assert callable(getattr(sg, name)) and callable(getattr(sg.ops, name)), name
    x = inputs_like([np.zeros(2)])[0]
    assert sg.floor_divide(x, 2).owner.op.name == "floor_divide"


def test_floordiv_and_mod_operators_are_numpy_s(backend):
    a = sg.tensor("a", (5,), "int64")
    f = sg.function([a], [a // 3, 7 // a, a % 3, -7 % a], backend=backend)
    A = np.array([-7, -1, 1, 4, 9])
    for got, want in zip(f(A), [A // 3, 7 // A, A % 3, -7 % A]):
        np.testing.assert_array_equal(got, want)
