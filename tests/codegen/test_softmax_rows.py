"""softmax, log_softmax and logsumexp over a short static axis (codegen.lower_softmax:
``_blocked_rows``, blocks of rows one per vector lane, on hosts without AVX-512; otherwise
``_short_rows``, the row unrolled and the loop over rows vectorised) against the numpy
reference evaluator, on the lengths around the cut-off, every axis position, inlined inputs,
special values, and the gradients that read the forward result."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
from codegen.lower_softmax import BLOCK_ROWS, SHORT_AXIS
from codegen.native.jit import vector_registers


def _both(inputs, outputs, *args):
    got = sg.function(inputs, outputs, backend="llvm")(*args)
    want = sg.function(inputs, outputs, backend="numpy")(*args)
    return got, want


def _close(got, want, dtype):
    rtol, atol = (2e-6, 2e-6) if dtype == "float32" else (1e-13, 1e-13)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


@pytest.mark.parametrize("n", [2, 3, 8, 10, SHORT_AXIS - 1, SHORT_AXIS, SHORT_AXIS + 1])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rows_of_every_length(n, dtype):
    x = sg.tensor("x", ("b", n), dtype)
    outs = [sg.nn.softmax(x, axis=1), sg.nn.log_softmax(x, axis=1), sg.logsumexp(x, axis=1),
            sg.logsumexp(x, axis=1, keepdims=True)]
    a = (np.random.default_rng(n).standard_normal((37, n)) * 8).astype(dtype)
    _close(*_both([x], outs, a), dtype)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_any_axis_of_a_3d_input(axis):
    """Rows along the first or middle axis (contiguous across the vectorised loop) and the
    last (strided)."""
    x = sg.tensor("x", ("a", "b", "c"), "float32")
    outs = [sg.nn.softmax(x, axis=axis), sg.nn.log_softmax(x, axis=axis),
            sg.logsumexp(x, axis=axis)]
    a = np.random.default_rng(axis).standard_normal((5, 7, 6)).astype("float32")
    _close(*_both([x], outs, a), "float32")


def test_an_inlined_input_is_read_through_its_expression():
    x = sg.tensor("x", ("b", 10), "float32")
    w = sg.tensor("w", (10,), "float32")
    z = sg.tanh(x) * w + 1.0  # inlined into the softmax loops
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((33, 10)).astype("float32"), rng.standard_normal(10) * 4
    _close(*_both([x, w], [sg.nn.softmax(z, 1), sg.nn.log_softmax(z, 1)], a,
                  b.astype("float32")), "float32")


def test_special_values_as_numpy():
    """NaN propagates to its row, +inf rows, rows of -inf (log forms: -inf / NaN as numpy),
    and far-apart logits whose exps underflow."""
    x = sg.tensor("x", ("b", 5), "float64")
    outs = [sg.nn.softmax(x, axis=1), sg.nn.log_softmax(x, axis=1), sg.logsumexp(x, axis=1)]
    inf, nan = np.inf, np.nan
    a = np.array([[0.0, 1, 2, 3, 4], [nan, 1, 2, 3, 4], [inf, 1, 2, 3, 4],
                  [-inf, -inf, -inf, -inf, -inf], [-inf, 0, -inf, 1, -inf],
                  [-900.0, 0, 800, -50, 3], [1e300, -1e300, 0, 0, 0]])
    with np.errstate(all="ignore"):
        got, want = _both([x], outs, a)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-300, equal_nan=True)


def test_gradients_of_the_short_forms():
    """The cross-entropy gradient (exp of the log_softmax result) and logsumexp's gradient,
    first and second order, against the numpy backend."""
    x = sg.tensor("x", ("b", 10), "float64")
    y = sg.tensor("y", ("b",), "int64")
    loss = sg.nn.cross_entropy(x, y) + sg.sum(sg.logsumexp(x * 0.5, axis=1))
    g = sg.grad(loss, x)
    hv = sg.grad(sg.sum(g * g), x)
    rng = np.random.default_rng(7)
    a, labels = rng.standard_normal((12, 10)) * 3, rng.integers(0, 10, 12)
    _close(*_both([x, y], [loss, g, hv], a, labels), "float64")


@pytest.mark.parametrize("rows", [0, 1, 5, 16, 17, 64])
def test_every_row_count_through_the_masked_loop(rows):
    """The loop over rows is one masked vector loop (ROW_LOOP_HINTS): partial, single, empty
    and whole vectors of rows."""
    x = sg.tensor("x", ("b", 10), "float32")
    y = sg.tensor("y", ("b",), "int64")
    loss = sg.nn.cross_entropy(sg.nn.log_softmax(x, axis=1), y) if rows else sg.sum(x)
    outs = [sg.nn.softmax(x, axis=1), sg.logsumexp(x, axis=1), *sg.grad(loss, [x])]
    rng = np.random.default_rng(rows)
    a = (rng.standard_normal((rows, 10)) * 6).astype("float32")
    _close(*_both([x, y], outs, a, rng.integers(0, 10, rows)), "float32")
    f = sg.function([x, y], outs, backend="llvm")
    assert "llvm.loop.vectorize.predicate.enable" in f.llvm_ir(optimized=False)


@pytest.mark.skipif(vector_registers() == 32, reason="hosts with AVX-512 keep the row loop")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows", [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 33])
def test_blocks_of_rows_one_per_lane(rows, dtype):
    """softmax and log_softmax over an innermost axis of 10 take BLOCK_ROWS rows at a time,
    one row per vector lane (``_blocked_rows``): whole blocks, a last partial block (its
    lanes past the rows are computed and dropped), fewer rows than a block, none; a NaN row,
    a +inf row and an all -inf row among finite ones; the gradients through them."""
    x = sg.tensor("x", ("b", 10), dtype)
    outs = [sg.nn.softmax(x, axis=1), sg.nn.log_softmax(x, axis=1)]
    outs += sg.grad(sg.sum(outs[0] * outs[1]), [x])
    a = (np.random.default_rng(rows).standard_normal((rows, 10)) * 6).astype(dtype)
    for r, value in ((2, np.nan), (5, np.inf)):
        if r < rows:
            a[r, 3] = value
    if rows > 6:
        a[6] = -np.inf
    with np.errstate(all="ignore"):
        got, want = _both([x], outs, a)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-6 if dtype == "float32" else 1e-13,
                                   atol=2e-6 if dtype == "float32" else 1e-13, equal_nan=True)
    ir = sg.function([x], outs[:2], backend="llvm").llvm_ir(optimized=False)
    assert f'"llvm.loop.vectorize.width", i32 {BLOCK_ROWS[dtype]}' in ir


@pytest.mark.skipif(vector_registers() == 32, reason="hosts with AVX-512 keep the row loop")
def test_blocks_of_rows_inside_the_outer_loops():
    """A 3-d input: the blocks run over the middle axis inside the loop over the first (a
    block never spans two of its lines), its input an inlined expression."""
    x = sg.tensor("x", ("a", "b", 7), "float32")
    z = sg.tanh(x) * 3.0 + x
    outs = [sg.nn.softmax(z, axis=2), sg.nn.log_softmax(z, axis=2)]
    a = np.random.default_rng(5).standard_normal((3, 11, 7)).astype("float32")
    _close(*_both([x], outs, a), "float32")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(37, 5), (6, 130), ("b", 40, 300), (2, 3, 7, 1)])
def test_softmax_gradient_in_one_kernel(shape, dtype):
    """softmax's gradient ``y * (g - sum(g * y))`` along a last axis is one kernel
    (``softmax_grad``: the row sum, then the line), with the numpy reference's values: rows
    short and long, a symbolic batch, a trailing 1, an incoming gradient that is an inlined
    expression (``c * 3 + 1``) and a line of -inf logits (its softmax NaN, as numpy's)."""
    static = tuple(4 if d == "b" else d for d in shape)
    axis = len(shape) - 2 if shape[-1] == 1 else len(shape) - 1
    x, c = sg.tensor("x", shape, dtype), sg.tensor("c", shape, dtype)
    y = sg.nn.softmax(x, axis=axis)
    g = sg.grad(sg.sum(y * (c * 3 + 1)), x)
    rng = np.random.default_rng(7)
    a = (rng.standard_normal(static) * 4).astype(dtype)
    a.reshape(-1, static[axis])[0] = -np.inf  # (the first line: the axis is the last but 1s)
    cv = rng.standard_normal(static).astype(dtype)
    f = sg.function([x, c], [y, g], backend="llvm")
    assert [[n.op.name for n in k.nodes] for k in f.kernels][-1] == ["softmax_grad"]
    with np.errstate(invalid="ignore"):
        want = sg.function([x, c], [y, g], backend="numpy")(a, cv)
    _close(f(a, cv), want, dtype)
