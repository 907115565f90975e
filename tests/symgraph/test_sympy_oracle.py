"""First, second and third derivatives built by ``sg.grad`` against ``sympy.diff``.

Every derivative here is symbol-to-symbol: ``sg.grad`` of a gradient graph. The oracle
is sympy's exact derivative, evaluated with numpy at random points in each op's domain
(away from kinks and ties, where sympy's Heaviside/DiracDelta terms are not defined).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import sympy
from helpers import FIXTURE_SETTINGS, away_from, random_array, seeds
from hypothesis import assume, given

import symgraph as sg

X, Y = sympy.symbols("x y", real=True)
N = 5  # points per example
# away from kinks and ties: the singular parts are zero there
_SYMPY_MODULES = [{"DiracDelta": lambda *args: np.zeros_like(args[0]),
                   "Heaviside": lambda z, *rest: np.where(z > 0, 1.0, 0.0)}, "numpy"]


@functools.cache
def _derivative(expr, wrt: tuple, symbols: tuple):
    """``d expr / d wrt[0] d wrt[1] ...`` as a numpy function of ``symbols`` (memoised)."""
    derivative = sympy.diff(expr, *wrt) if wrt else expr  # diff(expr) alone is d/dx
    return sympy.lambdify(symbols, derivative, modules=_SYMPY_MODULES)


# name -> (symgraph function, sympy expression in X, range of x, kinks)
UNARY = {
    "exp": (sg.exp, sympy.exp(X), (-2, 2), ()),
    "log": (sg.log, sympy.log(X), (0.3, 4), ()),
    "log1p": (sg.log1p, sympy.log(1 + X), (-0.7, 3), ()),
    "expm1": (sg.expm1, sympy.exp(X) - 1, (-2, 2), ()),
    "sqrt": (sg.sqrt, sympy.sqrt(X), (0.3, 4), ()),
    "square": (sg.square, X**2, (-3, 3), ()),
    "sin": (sg.sin, sympy.sin(X), (-3, 3), ()),
    "cos": (sg.cos, sympy.cos(X), (-3, 3), ()),
    "tanh": (sg.tanh, sympy.tanh(X), (-3, 3), ()),
    "neg": (lambda x: -x, -X, (-3, 3), ()),
    "sigmoid": (sg.nn.sigmoid, 1 / (1 + sympy.exp(-X)), (-5, 5), ()),
    "softplus": (sg.nn.softplus, sympy.log(1 + sympy.exp(X)), (-5, 5), ()),
    "abs": (sg.abs, sympy.Abs(X), (-3, 3), (0.0,)),
    "relu": (sg.nn.relu, sympy.Max(X, 0), (-3, 3), (0.0,)),
    "reciprocal": (lambda x: 1 / x, 1 / X, (0.3, 3), ()),
    "cube": (lambda x: x**3, X**3, (-2, 2), ()),
}

# name -> (symgraph function, sympy expression in X, Y, range of x, range of y)
BINARY = {
    "add": (lambda x, y: x + y, X + Y, (-3, 3), (-3, 3)),
    "sub": (lambda x, y: x - y, X - Y, (-3, 3), (-3, 3)),
    "mul": (lambda x, y: x * y, X * Y, (-3, 3), (-3, 3)),
    "div": (lambda x, y: x / y, X / Y, (-3, 3), (0.4, 3)),
    "pow": (lambda x, y: x**y, X**Y, (0.3, 3), (-2, 2)),
    "maximum": (sg.maximum, sympy.Max(X, Y), (-3, 3), (-3, 3)),
    "minimum": (sg.minimum, sympy.Min(X, Y), (-3, 3), (-3, 3)),
}

THIRD_ORDER = {
    "sin(x)*x": (lambda x: sg.sin(x) * x, sympy.sin(X) * X, (-3, 3)),
    "exp(tanh(x))": (lambda x: sg.exp(sg.tanh(x)), sympy.exp(sympy.tanh(X)), (-2, 2)),
    "x**3/(1+x**2)": (lambda x: x**3 / (1 + x**2), X**3 / (1 + X**2), (-2, 2)),
    "sigmoid(x)*log1p(x*x)": (lambda x: sg.nn.sigmoid(x) * sg.log1p(x * x),
                              sympy.log(1 + X**2) / (1 + sympy.exp(-X)), (-2, 2)),
    "sqrt(1+x**2)*cos(x)": (lambda x: sg.sqrt(1 + x**2) * sg.cos(x),
                            sympy.sqrt(1 + X**2) * sympy.cos(X), (-2, 2)),
    "softplus(sin(x))": (lambda x: sg.nn.softplus(sg.sin(x)),
                         sympy.log(1 + sympy.exp(sympy.sin(X))), (-3, 3)),
}


@functools.cache
def _compiled_derivatives(kind: str, name: str, backend: str) -> sg.Function:
    """The derivative graphs of one table entry, built and compiled once per backend.

    unary: first and second derivative at ``N`` points (``f`` is elementwise, so the
    gradient of ``sum(f(x))`` is ``f'(x_i)`` entrywise); binary: the two first and four
    second partial derivatives; third: ``f`` and its first three derivatives at a scalar.
    """
    if kind == "unary":
        x = sg.tensor("x", (N,))
        g1 = sg.grad(sg.sum(UNARY[name][0](x)), x)
        g2 = sg.grad(sg.sum(g1), x, disconnected="zero")
        return sg.function([x], [g1, g2], backend=backend)
    if kind == "binary":
        x, y = sg.tensor("x", (N,)), sg.tensor("y", (N,))
        gx, gy = sg.grad(sg.sum(BINARY[name][0](x, y)), [x, y])
        gxx, gxy = sg.grad(sg.sum(gx), [x, y], disconnected="zero")
        gyx, gyy = sg.grad(sg.sum(gy), [x, y], disconnected="zero")
        return sg.function([x, y], [gx, gy, gxx, gxy, gyx, gyy], backend=backend)
    x = sg.scalar("x")
    f = THIRD_ORDER[name][0](x)
    g1 = sg.grad(f, x)
    g2 = sg.grad(g1, x)
    g3 = sg.grad(g2, x)
    return sg.function([x], [f, g1, g2, g3], backend=backend)


def _tol():
    return {"rtol": 1e-9, "atol": 1e-10}


@pytest.mark.parametrize("name", sorted(UNARY))
@FIXTURE_SETTINGS
@given(seed=seeds)
def test_unary_first_and_second_derivative_match_sympy(backend, name, seed):
    fn, expr, (lo, hi), kinks = UNARY[name]
    xv = away_from(random_array(np.random.default_rng(seed), (N,), lo, hi), kinks, 0.05)
    got1, got2 = _compiled_derivatives("unary", name, backend)(xv)
    want1 = _derivative(expr, (X,), (X,))(xv)
    want2 = _derivative(expr, (X, X), (X,))(xv)
    np.testing.assert_allclose(got1, np.broadcast_to(want1, (N,)), **_tol())
    np.testing.assert_allclose(got2, np.broadcast_to(want2, (N,)), **_tol())


@pytest.mark.parametrize("name", sorted(BINARY))
@FIXTURE_SETTINGS
@given(seed=seeds)
def test_binary_first_and_second_derivatives_match_sympy(backend, name, seed):
    fn, expr, xr, yr = BINARY[name]
    rng = np.random.default_rng(seed)
    xv, yv = random_array(rng, (N,), *xr), random_array(rng, (N,), *yr)
    assume(np.min(np.abs(xv - yv)) > 1e-3)  # no ties (maximum/minimum)
    got = _compiled_derivatives("binary", name, backend)(xv, yv)
    orders = [(X,), (Y,), (X, X), (X, Y), (Y, X), (Y, Y)]
    for wrt, g in zip(orders, got):
        want = np.broadcast_to(_derivative(expr, wrt, (X, Y))(xv, yv), (N,))
        label = "d/d" + "d".join(map(str, wrt))
        np.testing.assert_allclose(g, want, err_msg=f"{name} {label}", **_tol())


@pytest.mark.parametrize("name", sorted(THIRD_ORDER))
@FIXTURE_SETTINGS
@given(seed=seeds)
def test_third_derivative_of_scalar_function_matches_sympy(backend, name, seed):
    fn, expr, (lo, hi) = THIRD_ORDER[name]
    xv = random_array(np.random.default_rng(seed), (), lo, hi)
    got = _compiled_derivatives("third", name, backend)(xv)
    for order, value in enumerate(got):
        want = float(_derivative(expr, (X,) * order, (X,))(xv))
        np.testing.assert_allclose(value, want, err_msg=f"order {order}", **_tol())


def test_second_derivative_of_linear_op_is_disconnected_not_none():
    x = sg.tensor("x", (3,))
    g = sg.grad(sg.sum(x * 2.0), x)
    with pytest.raises(sg.DisconnectedInputError, match="'x'"):
        sg.grad(sg.sum(g), x)
