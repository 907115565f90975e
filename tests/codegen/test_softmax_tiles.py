"""softmax, log_softmax and logsumexp over an axis that is not the innermost one
(codegen.lower_softmax._tiled: tiles of TILE positions of the innermost axis, maxima and sums
in stack arrays) and over the innermost one (exps stored, then scaled), against the numpy
reference evaluator and a closed form in numpy: tile edges, several and unit trailing axes,
symbolic dims, inlined inputs, special values and gradients."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
from codegen.lower_softmax import TILE, TILED_MINIMUM


def _outs(x, axis):
    return [sg.nn.softmax(x, axis=axis), sg.nn.log_softmax(x, axis=axis),
            sg.logsumexp(x, axis=axis), sg.logsumexp(x, axis=axis, keepdims=True)]


def _closed_form(a, axis):
    m = np.max(a, axis=axis, keepdims=True)
    e = np.exp(a - m)
    s = np.sum(e, axis=axis, keepdims=True)
    lse = m + np.log(s)
    return [e / s, a - lse, np.squeeze(lse, axis), lse]


def _tiled(f) -> bool:
    return f"alloca [{TILE} x " in f.llvm_ir(optimized=False)


def _check(inputs, outs, args, want, dtype, tiled=True):
    f = sg.function(inputs, outs, backend="llvm")
    assert _tiled(f) == tiled
    got = f(*args)
    ref = sg.function(inputs, outs, backend="numpy")(*args)
    rtol = 3e-6 if dtype == "float32" else 1e-13
    for g, r, w in zip(got, ref, want):
        np.testing.assert_allclose(g, r, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("last", [TILED_MINIMUM, TILE - 1, TILE, TILE + 1, 2 * TILE + 5])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tile_edges_of_the_innermost_axis(last, dtype):
    """Whole, partial and several tiles along the innermost axis, over a leading axis."""
    x = sg.tensor("x", (40, last), dtype)
    a = (np.random.default_rng(last).standard_normal((40, last)) * 5).astype(dtype)
    _check([x], _outs(x, 0), [a], _closed_form(a, 0), dtype)


@pytest.mark.parametrize("shape, axis", [((3, 20, 5, 7), 1), ((20, 3, 5, 7), 0),
                                         ((2, 17, 9, 1), 1), ((2, 30, 1, 1, 12), 1),
                                         ((4, 19, 33), 1), ((19, 3, 2, 70), 0)])
def test_several_and_unit_trailing_axes(shape, axis):
    """The axes between the reduced and the tiled one are loops around the tiles; trailing
    static 1s are skipped (the tiled axis is the innermost one longer than 1)."""
    a = np.random.default_rng(len(shape)).standard_normal(shape) * 4
    x = sg.tensor("x", shape, "float64")
    _check([x], _outs(x, axis), [a], _closed_form(a, axis), "float64")


def test_symbolic_dims_take_the_tiles_and_every_size_runs():
    x = sg.tensor("x", ("n", "a", "b"), "float32")
    outs = _outs(x, 1)
    f = sg.function([x], outs, backend="llvm")
    assert _tiled(f)
    for shape in [(2, 30, 70), (1, 1, 1), (3, 5, 0), (0, 4, 9), (2, 64, 64)]:
        a = np.random.default_rng(sum(shape)).standard_normal(shape).astype("float32") * 3
        for g, w in zip(f(a), _closed_form(a, 1)):
            np.testing.assert_allclose(g, w, rtol=3e-6, atol=3e-6)


def test_short_trailing_axes_stay_line_by_line():
    """Fewer than TILED_MINIMUM positions after the axis: the old loops (faster there)."""
    x = sg.tensor("x", (6, 300, TILED_MINIMUM - 1), "float64")
    a = np.random.default_rng(0).standard_normal((6, 300, TILED_MINIMUM - 1))
    _check([x], _outs(x, 1), [a], _closed_form(a, 1), "float64", tiled=False)


def test_innermost_axis_stores_exps_once():
    """The innermost (long) axis: exps stored in the first pass, then scaled."""
    x = sg.tensor("x", ("b", 300), "float32")
    a = (np.random.default_rng(1).standard_normal((7, 300)) * 9).astype("float32")
    _check([x], _outs(x, 1), [a], _closed_form(a, 1), "float32", tiled=False)


def test_an_inlined_input_is_read_through_its_expression():
    x = sg.tensor("x", (50, 70), "float64")
    w = sg.tensor("w", (70,), "float64")
    z = sg.tanh(x) * w + 1.0
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((50, 70)), rng.standard_normal(70) * 4
    _check([x, w], _outs(z, 0), [a, b], _closed_form(np.tanh(a) * b + 1.0, 0), "float64")


def test_special_values_stay_in_their_column():
    """NaN, +inf, an all -inf column and exps that underflow, each in its own column of a
    reduction over axis 0: the other columns are untouched, as in numpy."""
    inf, nan = np.inf, np.nan
    a = np.random.default_rng(5).standard_normal((19, 20))
    a[3, 1] = nan
    a[4, 2] = inf
    a[:, 3] = -inf
    a[2, 4] = -inf
    a[:9, 5] = [-900.0, 0, 800, -50, 3, 1e300, -1e300, 0, 0]
    x = sg.tensor("x", (19, 20), "float64")
    f = sg.function([x], _outs(x, 0), backend="llvm")
    assert _tiled(f)
    with np.errstate(all="ignore"):
        got = f(a)
        want = sg.function([x], _outs(x, 0), backend="numpy")(a)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-300, equal_nan=True)
    assert np.isfinite(got[0][:, 6:]).all()


def test_gradients_through_a_leading_axis():
    """First and second order through softmax/log_softmax/logsumexp over axis 0."""
    x = sg.tensor("x", (30, 40), "float64")
    w = np.random.default_rng(2).standard_normal((30, 40))
    loss = (sg.sum(sg.nn.softmax(x, axis=0) * w) + sg.sum(sg.nn.log_softmax(x, axis=0) * w)
            + sg.sum(sg.logsumexp(x * 0.5, axis=0)))
    g = sg.grad(loss, x)
    hv = sg.grad(sg.sum(g * g), x)
    a = np.random.default_rng(4).standard_normal((30, 40)) * 2
    got = sg.function([x], [loss, g, hv], backend="llvm")(a)
    want = sg.function([x], [loss, g, hv], backend="numpy")(a)
    for gg, ww in zip(got, want):
        np.testing.assert_allclose(gg, ww, rtol=1e-12, atol=1e-12)
    # the gradient itself against central differences of the loss
    f = sg.function([x], loss, backend="llvm")
    e = np.zeros_like(a)
    for i, j in [(0, 0), (7, 13), (29, 39)]:
        e[i, j] = 1e-6
        fd = (f(a + e) - f(a - e)) / 2e-6
        e[i, j] = 0
        assert abs(fd - got[1][i, j]) < 1e-6 * max(1.0, abs(fd))
