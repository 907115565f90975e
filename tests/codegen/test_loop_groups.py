"""Loops over merged axes (codegen.kernel.Kernel.loop_groups) and rolled innermost loops
(Kernel.rolled): reductions and broadcasting elementwise nests over conv-shaped values
against the numpy reference evaluator, where the axes may merge and where they must not
(a value broadcast along only one of them, a transposed view), and the code they compile to."""

from __future__ import annotations

import re

import numpy as np
import pytest

import symgraph as sg
from codegen.native import jit

RNG = np.random.default_rng(7)
X = RNG.standard_normal((5, 3, 8, 8)).astype("float32")

# values broadcast against (N, 3, 8, 8): along both H and W, along one only, or not at all
BROADCASTS = {
    "channel": (1, 3, 1, 1),
    "plane": (8, 8),
    "rows": (8, 1),
    "cols": (1, 8),
    "scalar": (),
    "whole": (5, 3, 8, 8),
}


def _both(inputs, outputs, *args):
    got = sg.function(inputs, outputs, backend="llvm")(*args)
    want = sg.function(inputs, outputs, backend="numpy")(*args)
    return got, want


def _operand(shape):
    return (RNG.standard_normal(shape) + 2.0).astype("float32")


@pytest.mark.parametrize("broadcast", sorted(BROADCASTS))
@pytest.mark.parametrize("axes", [(2, 3), (0, 2, 3), (1, 2, 3), (0, 1, 2, 3), (0,), (3,),
                                  (1, 2), (0, 3)])
def test_reductions_of_a_broadcasting_expression(broadcast, axes):
    """sum/mean/max/min of ``x * b + b`` (inlined into the reduction's loops) over every
    kind of axis set, keepdims or not."""
    shape = BROADCASTS[broadcast]
    x = sg.tensor("x", ("n", 3, 8, 8), "float32")
    b = sg.tensor("b", shape, "float32")
    z = x * b + b
    outs = [sg.sum(z, axis=axes), sg.mean(z, axis=axes, keepdims=True),
            sg.max(z, axis=axes), sg.min(z, axis=axes, keepdims=True)]
    got, want = _both([x, b], outs, X, _operand(shape))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("broadcast", sorted(BROADCASTS))
def test_elementwise_nest_with_a_broadcast_operand(broadcast):
    """relu(x + b): the loops run H and W as one where b allows it; the same bits as numpy."""
    shape = BROADCASTS[broadcast]
    x = sg.tensor("x", ("n", 3, 8, 8), "float32")
    b = sg.tensor("b", shape, "float32")
    got, want = _both([x, b], [sg.nn.relu(x + b), (x - b) * 2.0], X, _operand(shape))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_a_transposed_view_is_read_per_axis():
    """A transposing view inside the reduction: its H and W are not the input's, so no
    merged loop may address them."""
    x = sg.tensor("x", ("n", 3, 8, 8), "float32")
    b = sg.tensor("b", (8, 8), "float32")
    z = sg.transpose(x, (0, 1, 3, 2)) * b
    outs = [sg.sum(z, axis=(2, 3)), sg.sum(z, axis=(0, 2, 3)), sg.nn.relu(z - 1.0)]
    got, want = _both([x, b], outs, X, _operand((8, 8)))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)


def test_static_ones_and_a_symbolic_middle_axis():
    """(N, 1, C, 1, W) with a symbolic C: static 1s need no loop, and the merged loop
    runs over a run-time size."""
    x = sg.tensor("x", ("n", 1, "c", 1, 16), "float64")
    a = RNG.standard_normal((4, 1, 5, 1, 16))
    outs = [sg.sum(x * x, axis=(2, 3, 4)), sg.sum(x, axis=(0, 1)), sg.max(x, axis=(1, 2, 3, 4))]
    got, want = _both([x], outs, a)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_a_bias_gradient_is_a_contiguous_vector_loop():
    """sum over (N, H, W) of an (N, 16, 8, 8) value: H*W = 64 contiguous floats per image
    and channel, read with vector loads.  Unrolled before vectorisation, the 8x8 loops had
    become 64 gathers across N (1,100 lines of IR, 80 ms to compile)."""
    x = sg.tensor("x", ("n", 16, 8, 8), "float32")
    f = sg.function([x], sg.sum(x, axis=(0, 2, 3), keepdims=True), backend="llvm")
    a = RNG.standard_normal((6, 16, 8, 8)).astype("float32")
    np.testing.assert_allclose(f(a), a.sum(axis=(0, 2, 3), keepdims=True), rtol=1e-5,
                               atol=1e-5)
    asm = f.asm()
    assert not re.search(r"vgather|vpgather", asm)
    widest = "zmm" if jit.host_target().has_feature("avx512f") else "ymm"  # (an EPYC: AVX2)
    assert re.search(rf"vaddps\s+.*{widest}", asm)
    assert len(asm.splitlines()) < 1000


@pytest.mark.parametrize("width", [3, 10, 15])
def test_a_short_row_is_unrolled_not_masked(width):
    """A bias added to each row of a batch with relu, a bias gradient (the sum over the
    batch) and row sums: the row of ``width`` < ROLLED_MINIMUM is unrolled and written with plain
    vectors.  Left to LLVM it was vectorised with its tail folded into masked loads and
    stores (``vmaskmovps``, microcoded on AMD Zen: a (32, 10) bias add 400 ns against 24
    unrolled, the bias gradient 425 against 54).  Vector math (exp) is unrolled only where
    whole vectors leave at most two scalar calls: rows of 10, not 3 or 15."""
    x = sg.tensor("x", ("n", width), "float32")
    b = sg.tensor("b", (width,), "float32")
    s = sg.tensor("s", ("n", 1), "float32")
    outs = [sg.nn.relu(x + b), sg.sum(x * s, axis=0), sg.sum(x * b, axis=1)]
    if width == 10:
        outs.append(x - sg.exp(x) * s)
    args = (RNG.standard_normal((32, width)).astype("float32"), _operand((width,)),
            _operand((32, 1)))
    got, want = _both([x, b, s], outs, *args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    asm = sg.function([x, b, s], outs, backend="llvm").asm()
    assert "maskmov" not in asm  # (AVX-512 selects use {%k} masks of their own: not checked)


def _chain(y, b, steps: int):
    for _ in range(steps):
        y = sg.tanh(y * b + 0.1) + sg.exp(-y * y) * 0.5
    return y


# (what a kernel computes over rows of `width`, unrolled on an AVX2 host?)
UNROLL_CASES = {
    "tanh, rows of 3": (3, lambda x, b: sg.tanh(x + b), False),  # no 3-lane tanh
    "tanh row sums, rows of 3": (3, lambda x, b: sg.sum(sg.tanh(x + b), axis=1), False),
    "tanh, rows of 10": (10, lambda x, b: sg.tanh(x + b), False),  # 8 + 2 scalar: slower
    "exp, rows of 10": (10, lambda x, b: sg.exp(x + b), True),  # 8 + 2 scalar: faster
    # 8 lanes + 4 scalar calls (one libmvec variant per function: codegen.native.vecmath);
    # the masked loop ran as fast as the 8 + 4 lanes did (sg / numpy 0.44-0.45 / 0.44-0.49)
    "tanh, rows of 12": (12, lambda x, b: sg.tanh(x + b), False),
    "exp, rows of 8": (8, lambda x, b: sg.exp(x + b), True),  # one whole vector
    "row sums, rows of 10": (10, lambda x, b: sg.sum(x * b, axis=1), True),
    "40 tanh/exp steps, rows of 10": (10, lambda x, b: _chain(x, b, 40), False),  # too long
}


@pytest.mark.parametrize("case", sorted(UNROLL_CASES))
@pytest.mark.parametrize("batch", ["n", 8192])
def test_which_short_rows_are_unrolled(case, batch):
    """Kernel.short_rows unrolls a short row only where that measured faster on AVX2 and
    the unrolled body stays small (40 fused tanh/exp steps over rows of 10 were 9,212 lines
    of assembly and 1.4 s of LLVM unrolled, against 1,370 and 0.17 s).  A static batch of
    8,192 takes the two-core range loop (its hints are asked after its body too).  The
    values match numpy's either way."""
    width, build, unrolled = UNROLL_CASES[case]
    x = sg.tensor("x", (batch, width), "float32")
    b = sg.tensor("b", (width,), "float32")
    out = build(x, b)
    f = sg.function([x, b], out, backend="llvm")
    rows = 8192 if batch == 8192 else 8
    args = (RNG.standard_normal((rows, width)).astype("float32"), _operand((width,)))
    tol = 3e-3 if "steps" in case else 1e-4  # (40 steps compound the math's ulps)
    np.testing.assert_allclose(f(*args), sg.function([x, b], out, backend="numpy")(*args),
                               rtol=tol, atol=tol)
    expected = unrolled and jit.vector_registers() == 16  # (AVX-512: the masked loops)
    assert ("llvm.loop.unroll.full" in f.llvm_ir(optimized=False)) == expected


def test_merged_only_where_every_read_allows():
    """In the unoptimised IR: H and W are one loop of 64 for a channel bias, but stay two
    loops of 8 when the operand varies along H only."""
    x = sg.tensor("x", ("n", 3, 8, 8), "float32")

    def loop_bounds(shape):
        b = sg.tensor("b", shape, "float32")
        f = sg.function([x, b], sg.nn.relu(x + b), backend="llvm")
        f(X, _operand(shape))
        return set(re.findall(r"icmp slt i64 %t\d+, (\d+)", f.llvm_ir(optimized=False)))

    assert "64" in loop_bounds((1, 3, 1, 1)) and "8" not in loop_bounds((1, 3, 1, 1))
    assert "8" in loop_bounds((8, 1)) and "64" not in loop_bounds((8, 1))


@pytest.mark.parametrize("axes", [(2, 3), (0, 2, 3), (0, 1, 2, 3)])
def test_integer_and_boolean_reductions(axes):
    """The merged loops with an int64 accumulator and boolean max/min (any/all)."""
    x = sg.tensor("x", ("n", 3, 8, 8), "int64")
    b = sg.tensor("b", (1, 3, 1, 1), "int64")
    mask = sg.tensor("m", ("n", 3, 8, 8), "bool")
    outs = [sg.sum(x * b, axis=axes), sg.max(x - b, axis=axes, keepdims=True),
            sg.max(mask, axis=axes), sg.min(mask, axis=axes)]
    ints = RNG.integers(-50, 50, (5, 3, 8, 8))
    mask_v = RNG.random((5, 3, 8, 8)) < 0.97
    got, want = _both([x, b, mask], outs, ints, RNG.integers(-3, 4, (1, 3, 1, 1)), mask_v)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
