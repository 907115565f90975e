"""exp in generated loops beyond libmvec's fast path (codegen.irgen.ScalarBuilder._exp).

Lanes below the split point take ``exp(x + K) * exp(-K)``; the oracle is numpy's
exp in float64 rounded to the dtype: normal results within 4 ulp (libmvec's own bound; the
split adds at most one), denormal results within the product's relative error plus one step of
the denormal grid, exact 0 / inf / NaN where numpy gives them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys

import numpy as np
import pytest

import symgraph as sg
from codegen.irgen import _EXP_SPLIT

# (lo, hi) ranges per dtype: the fast path, each side of the split point, the denormal
# results, the results that round to 0, overflow
RANGES = {
    "float32": [(-20, 20), (-87.5, -86.5), (86.5, 88.9), (-104.5, -87), (-130, -103),
                (88.5, 120)],
    "float64": [(-20, 20), (-701, -699), (699, 710.5), (-746, -700), (-800, -744),
                (709, 800)],
}


def _check(got: np.ndarray, x: np.ndarray, dtype: str) -> None:
    with np.errstate(over="ignore", under="ignore"):
        want = np.exp(x.astype(np.float64)).astype(dtype)
    info = np.finfo(dtype)
    normal = (np.abs(want) >= info.tiny) & np.isfinite(want)
    ulp = np.spacing(np.where(normal, want, 1).astype(dtype))
    assert np.all(np.abs(got[normal] - want[normal]) <= 4 * ulp[normal]), "normal results"
    sub = ~normal & np.isfinite(want)
    # the product's relative error (exp and the constant, ~2 ulp) plus rounding to the grid
    tol = 3 * info.eps * np.abs(want[sub]) + info.smallest_subnormal
    assert np.all(np.abs(got[sub] - want[sub]) <= tol), "denormal results"
    assert np.array_equal(got[want == 0], want[want == 0])
    assert np.array_equal(np.isinf(got), np.isinf(want))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exp_over_the_split(dtype):
    x = sg.tensor("x", shape=("n",), dtype=dtype)
    f = sg.function([x], sg.exp(x), backend="llvm")
    rng = np.random.default_rng(0)
    t, lim, k = _EXP_SPLIT[dtype]
    edges = np.array([-t, -lim, k - t, k - lim, 89.0, 710.0])
    edges = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, 2 * edges)])
    for lo, hi in RANGES[dtype]:
        # 4099: vector body plus a scalar remainder
        a = np.concatenate([rng.uniform(lo, hi, 4099), edges]).astype(dtype)
        _check(f(a), a, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exp_special_values(dtype):
    x = sg.tensor("x", shape=("n",), dtype=dtype)
    f = sg.function([x], sg.exp(x), backend="llvm")
    a = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0] * 5, dtype=dtype)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(f(a), np.exp(a))


def test_softmax_far_apart_logits():
    """The case that motivated the split: a trained classifier's logits, most of a row's
    entries underflowing; log_softmax, its gradient and softmax vs the numpy backend."""
    x = sg.tensor("x", shape=("b", 10), dtype="float32")
    y = sg.tensor("y", shape=("b",), dtype="int64")
    loss = sg.nn.cross_entropy(x, y)
    outs = [sg.nn.softmax(x, axis=1), sg.nn.log_softmax(x, axis=1), sg.grad(loss, x)]
    rng = np.random.default_rng(1)
    a = (rng.standard_normal((64, 10)) * 60).astype("float32")
    labels = rng.integers(0, 10, 64)
    got = sg.function([x, y], outs, backend="llvm")(a, labels)
    want = sg.function([x, y], outs, backend="numpy")(a, labels)
    for g, w in zip(got[:2], want[:2]):
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-30)
    # the gradient is (p - one_hot) / 64: where p rounds near 1 the difference cancels, so
    # its error is a few float32 ulps of 1 over the batch (at [9, 4] llvm gave -3.2783e-07,
    # numpy -3.2689e-07, float64 -3.2843e-07)
    np.testing.assert_allclose(got[2], want[2], rtol=2e-6, atol=4 * np.finfo(np.float32).eps / 64)


_FE_UNDERFLOW, _FE_ALL_EXCEPT = 0x10, 0x3F  # glibc's x86 <fenv.h>


def _underflows(f, a: np.ndarray) -> tuple[np.ndarray, bool]:
    """``f(a)`` and whether the FPU's underflow flag was raised during the call (an underflow
    the call did not flush is a microcode assist per element on Intel)."""
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    libm.feclearexcept(_FE_ALL_EXCEPT)
    out = f(a)
    return out, bool(libm.fetestexcept(_FE_UNDERFLOW))


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or sys.platform != "linux",
                    reason="glibc's x86 floating-point flags")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exp_far_below_the_range_is_zero_without_an_underflow(dtype):
    """-inf (a causal attention mask's) and inputs far below the range give numpy's 0 with no
    underflowing operation on the way: ``exp(-L + K) * exp(-K)`` underflowed to 0, an assist
    per element that made a causal softmax 3-5x a plain one. An input whose result is a
    denormal does underflow (numpy's result too): the check sees the flag."""
    x = sg.tensor("x", shape=("n",), dtype=dtype)
    f = sg.function([x], sg.exp(x), backend="llvm")
    t, lim, _ = _EXP_SPLIT[dtype]
    below = np.nextafter(np.asarray(-lim, dtype), np.asarray(-np.inf, dtype))
    far = np.array([-np.inf, -1e4, -3 * lim, -lim - 1, below] * 50, dtype=dtype)
    f(far)
    got, raised = _underflows(f, far)
    np.testing.assert_array_equal(got, np.zeros_like(far))
    assert not raised
    denormal = np.full(250, -(t + lim) / 2, dtype=dtype)  # exp of it is a denormal
    got, raised = _underflows(f, denormal)
    assert 0 < got[0] < np.finfo(dtype).tiny and raised
