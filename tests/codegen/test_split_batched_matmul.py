"""Stacks of matrix products split across the cores (codegen/lower_blas.py ``_split_batch``):
each matrix a generated loop (``small_gemm(..., wide=True)``), the matrices shared out
among OpenBLAS's threads by codegen/native/parallel.py's runtime.

Oracles: numpy's matmul (values, NaN and inf where numpy puts them), the numpy backend, and
the same program run on one and on two threads (the same code per matrix, so the same bits).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _helpers import blas_threads

import symgraph as sg
from codegen import lower_blas
from codegen.native import parallel

pytestmark = pytest.mark.skipif(not parallel.available(),
                                reason="numpy's BLAS is not a pthreads OpenBLAS")


@pytest.fixture(autouse=True)
def _fresh_cache(cache_env):
    yield


def splits(f) -> bool:
    return parallel.DISPATCH in f.program.ir_text


def stack_product(dt, batch, m, n, k, ta, tb, broadcast=False, backend="llvm"):
    """``op(A) @ op(B)`` over a stack: A stored (..., k, m) when ``ta``, B (..., n, k) when
    ``tb``; with ``broadcast`` A has a 1 where B has its heads axis (a mask or a shared
    query).  Returns (function, A, B, numpy's product)."""
    ash = (k, m) if ta else (m, k)
    bsh = (n, k) if tb else (k, n)
    a_batch = (batch[0], 1) + tuple(batch[2:]) if broadcast else tuple(batch)
    sym = ["b"] + list(batch[1:]) if isinstance(batch[0], str) else list(batch)
    a_sym = ["b", 1] + list(batch[2:]) if broadcast and isinstance(batch[0], str) else \
        sym if not broadcast else list(a_batch)
    a = sg.tensor("a", tuple(a_sym) + ash, dt)
    b = sg.tensor("b", tuple(sym) + bsh, dt)
    nb = len(batch) + 2
    swap = tuple(range(nb - 2)) + (nb - 1, nb - 2)
    out = sg.matmul(sg.transpose(a, swap) if ta else a, sg.transpose(b, swap) if tb else b)
    return sg.function([a, b], out, backend=backend)


def operands(dt, batch, m, n, k, ta, tb, broadcast=False, seed=0):
    rng = np.random.default_rng(seed)
    a_batch = (batch[0], 1) + tuple(batch[2:]) if broadcast else tuple(batch)
    A = rng.standard_normal(a_batch + ((k, m) if ta else (m, k))).astype(dt)
    B = rng.standard_normal(tuple(batch) + ((n, k) if tb else (k, n))).astype(dt)
    want = np.matmul(np.swapaxes(A, -1, -2) if ta else A, np.swapaxes(B, -1, -2) if tb else B)
    return A, B, want


def tol(dt):
    return {"float32": dict(rtol=2e-5, atol=2e-5), "float64": dict(rtol=1e-12, atol=1e-12)}[dt]


# attention's shapes at small T, odd sizes (a row shorter than a vector, a tail of columns),
# a row of C of exactly one 512-bit vector and of several
SHAPES = [(32, 32, 16), (16, 16, 32), (13, 20, 7), (24, 40, 33), (64, 8, 64)]


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("ta,tb", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_split_stack_equals_numpy_on_one_or_two_threads(dt, ta, tb, m, n, k):
    batch = (max(2, (1 << 18) // (m * n * k) // 4 + 1), 4)  # just over the split minimum
    f = stack_product(dt, batch, m, n, k, ta, tb)
    assert splits(f)
    A, B, want = operands(dt, batch, m, n, k, ta, tb)
    with blas_threads(2):
        two = f(A, B)
    with blas_threads(1):
        one = f(A, B)
    np.testing.assert_allclose(two, want, **tol(dt))
    assert np.array_equal(one, two)  # each matrix the same code, whichever thread runs it


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("rows", [1, 3, 40])
def test_symbolic_batch_splits_when_big_enough_at_run_time(dt, rows):
    """(b, 4) stacks of 32x32x16: below SPLIT_MATMUL_MINIMUM multiply-adds (b < 16) the
    range runs on the caller, above it on both threads; both equal numpy."""
    f = stack_product(dt, ("b", 4), 32, 32, 16, False, True)
    assert splits(f)
    A, B, want = operands(dt, (rows, 4), 32, 32, 16, False, True, seed=rows)
    with blas_threads(2):
        np.testing.assert_allclose(f(A, B), want, **tol(dt))
    ref = stack_product(dt, ("b", 4), 32, 32, 16, False, True, backend="numpy")
    np.testing.assert_allclose(f(A, B), ref(A, B), **tol(dt))


@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False)])
def test_broadcast_batch_axis(ta, tb):
    """A (batch, 1, m, k) against B (batch, heads, k, n): A's matrix read for every head."""
    batch = (24, 4)
    f = stack_product("float32", batch, 32, 32, 16, ta, tb, broadcast=True)
    assert splits(f)
    A, B, want = operands("float32", batch, 32, 32, 16, ta, tb, broadcast=True)
    np.testing.assert_allclose(f(A, B), want, **tol("float32"))


def test_nan_and_inf_where_numpy_puts_them():
    batch = (64, 4)
    f = stack_product("float32", batch, 32, 32, 16, False, True)
    A, B, _ = operands("float32", batch, 32, 32, 16, False, True)
    A[3, 1, 5, 2] = np.nan
    B[60, 2, 7, 0] = np.inf
    want = np.matmul(A, np.swapaxes(B, -1, -2))
    got = f(A, B)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], **tol("float32"))


def test_small_or_serial_stacks_are_not_split(monkeypatch):
    """Below the minimum (a few small matrices), above SPLIT_MATMUL_WORK per matrix (one
    gemm each, threaded by OpenBLAS) or SPLIT_MATMUL_COLUMNS, and with SYMGRAPH_THREADS=1
    the stack keeps its loop."""
    assert not splits(stack_product("float32", (2, 2), 32, 32, 16, False, False))
    side = round(lower_blas.SPLIT_MATMUL_WORK ** (1 / 3)) * 2
    assert not splits(stack_product("float32", (4,), side, side, side, False, False))
    wide = lower_blas.SPLIT_MATMUL_COLUMNS * 2  # more columns than the loop's code is for
    assert splits(stack_product("float32", (64,), 4, wide // 2, 4, False, False))
    assert not splits(stack_product("float32", (64,), 4, wide, 4, False, False))
    monkeypatch.setenv("SYMGRAPH_THREADS", "1")
    f = stack_product("float32", (64, 4), 32, 32, 16, False, True)
    assert not splits(f)
    A, B, want = operands("float32", (64, 4), 32, 32, 16, False, True)
    np.testing.assert_allclose(f(A, B), want, **tol("float32"))


def test_attention_gradients_equal_the_numpy_backend():
    """softmax(q k^T) v and its gradients with respect to q, k and v: every batched product
    of the forward and backward pass split, the numpy backend the oracle."""
    q, k, v = (sg.tensor(name, ("b", 4, 32, 16), "float64") for name in "qkv")
    s = sg.matmul(q, sg.transpose(k, (0, 1, 3, 2))) * 0.25
    o = sg.matmul(sg.nn.softmax(s, axis=-1), v)
    loss = sg.sum(o * o)
    grads = sg.grad(loss, [q, k, v])
    fs = {be: sg.function([q, k, v], [o, *grads], backend=be) for be in ("numpy", "llvm")}
    assert splits(fs["llvm"])
    rng = np.random.default_rng(7)
    args = [rng.standard_normal((40, 4, 32, 16)) for _ in range(3)]
    with blas_threads(2):
        got = fs["llvm"](*args)
    for x, y in zip(got, fs["numpy"](*args)):
        np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-11)



@pytest.mark.parametrize("batch,length,heads,d", [
    (40, 32, 4, 16),   # split across the cores
    (2, 8, 2, 4),      # serial small loops
    (1, 200, 2, 128),  # a gemm per matrix (over SPLIT_MATMUL_WORK each)
])
@pytest.mark.parametrize("symbolic", [False, True])
def test_heads_are_read_in_place_not_copied(batch, length, heads, d, symbolic):
    """Attention's scores and mixing on (batch, length, heads, d) arrays read as
    (batch, heads, length, d) and (batch, heads, d, length) views: no copy kernel for the
    transposes (each product reads its operands through a leading dimension), values equal
    numpy's on every route."""
    x = sg.tensor("x", ("b" if symbolic else batch, length, heads, d), "float32")
    y = sg.tensor("y", ("b" if symbolic else batch, length, heads, d), "float32")
    q = sg.transpose(x, (0, 2, 1, 3))
    k = sg.transpose(y, (0, 2, 3, 1))
    scores = sg.matmul(q, k)                       # (b, h, T, T): q . k over d
    mixed = sg.matmul(scores, sg.transpose(y, (0, 2, 1, 3)))  # (b, h, T, d)
    f = sg.function([x, y], [scores, mixed], backend="llvm")
    rng = np.random.default_rng(batch * length)
    X = rng.standard_normal((batch, length, heads, d)).astype(np.float32)
    Y = rng.standard_normal((batch, length, heads, d)).astype(np.float32)
    got = f(X, Y)
    kernels = sorted(row["ops"] for row in f.profile(X, Y, n=1))  # (rows: slowest first)
    assert kernels == [["matmul", "transpose"],
                       ["matmul", "transpose", "transpose"]], kernels
    qn, kn = X.transpose(0, 2, 1, 3), Y.transpose(0, 2, 3, 1)
    want_scores = qn @ kn
    want_mixed = want_scores @ Y.transpose(0, 2, 1, 3)
    np.testing.assert_allclose(got[0], want_scores, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got[1], want_mixed, rtol=1e-4, atol=1e-3 * length)
