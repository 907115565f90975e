"""The generated small-matrix products of codegen/small_gemm.py (``small_gemm``).

A 2-d float ``MatMul`` (and the folded SGD update ``W - c * (A @ B)``) with a static column
count and ``m * n * k`` at most ``SMALL_GEMM_WORK`` runs a register-blocked loop instead of
OpenBLAS: chosen at compile time for static sizes, at run time by the actual sizes for a
symbolic batch.  The numpy backend is the oracle: the same values to the BLAS path's
tolerance (the accumulation order differs), NaN/inf as numpy's matmul, zeros for ``k = 0``,
and the folded update's semantics for every learning rate (0, NaN and inf included).
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

import symgraph as sg
from codegen import small_gemm
from codegen.native import cache, jit


@pytest.fixture
def runtime_dispatch(monkeypatch, tmp_path):
    """Symbolic sizes branch to the loop at run time (SMALL_GEMM_RUNTIME), with a program
    cache of its own (the switch is not part of the program key)."""
    monkeypatch.setattr(small_gemm, "SMALL_GEMM_RUNTIME", True)
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cache, "_programs", {})
    yield

SHAPES = [(1, 1, 1), (5, 3, 7), (4, 17, 9), (32, 32, 64), (32, 10, 32), (32, 32, 10),
          (33, 40, 5), (7, 64, 16)]


def _tol(dt: str) -> float:
    return 1e-5 if dt == "float32" else 1e-12


def _product(dt: str, m: int, n: int, k: int, ta: bool, tb: bool, symbolic: bool):
    """``op(A) @ op(B)`` compiled by both backends (A stored (k, m) when ta, B (n, k) when tb;
    a symbolic first axis of A's storage when ``symbolic``), and random operands."""
    ash, bsh = ((k, m) if ta else (m, k)), ((n, k) if tb else (k, n))
    a = sg.tensor("a", ("r", ash[1]) if symbolic else ash, dt)
    if symbolic and ta:  # the symbol is k: B's too
        b = sg.tensor("b", (n, "r") if tb else ("r", n), dt)
    else:
        b = sg.tensor("b", bsh, dt)
    out = (a.T if ta else a) @ (b.T if tb else b)
    fs = {be: sg.function([a, b], out, backend=be) for be in ("numpy", "llvm")}
    rng = np.random.default_rng(m * 10000 + n * 100 + k)
    return fs, rng.standard_normal(ash).astype(dt), rng.standard_normal(bsh).astype(dt)


def _calls_blas(f) -> bool:
    return any("call" in line and ("gemm" in line or "gemv" in line)
               for line in f.program.ir_text.splitlines())


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("ta,tb", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("symbolic", [False, True])
@pytest.mark.parametrize("runtime", [False, True])
def test_small_products_equal_numpy(dt, ta, tb, symbolic, runtime, request):
    if runtime:
        request.getfixturevalue("runtime_dispatch")
    for m, n, k in SHAPES:
        fs, a, b = _product(dt, m, n, k, ta, tb, symbolic)
        want = fs["numpy"](a, b)
        got = fs["llvm"](a, b)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=_tol(dt), atol=_tol(dt) * k)
        # a static product below the crossover calls no BLAS; a symbolic one keeps the BLAS
        # route for large sizes
        above = m * n * k > small_gemm.crossover(dt, (ta, tb), str(k))
        assert _calls_blas(fs["llvm"]) == (symbolic or above)


@pytest.mark.parametrize("m,n,k", [(None, 65, 8), (None, 512, 784), (784, 512, None),
                                   (None, 64, 8), (None, 10, None), (None, 100, None),
                                   (None, 10, 256), (256, 10, None), (64, 32, None)])
def test_runtime_branch_only_for_products_that_can_be_small(m, n, k, monkeypatch, tmp_path):
    """With run-time sizes the loop is emitted behind a branch only when every static size
    is at most ``SMALL_GEMM_RUNTIME_SIDE`` and their product within the crossover: the IR of
    any other product is the BLAS route's, line for line."""
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cache, "_programs", {})
    a = sg.tensor("a", ("r" if m is None else m, "s" if k is None else k), "float32")
    b = sg.tensor("b", ("s" if k is None else k, n), "float32")
    texts = {}
    for flag in (False, True):
        monkeypatch.setattr(small_gemm, "SMALL_GEMM_RUNTIME", flag)
        texts[flag] = sg.function([a, b], a @ b, backend="llvm").program.ir_text
    narrow = max(d for d in (m, n, k) if d is not None) <= small_gemm.SMALL_GEMM_RUNTIME_SIDE
    small_static = n * (m or 1) * (k or 1) <= small_gemm.SMALL_GEMM_WORK["float32", False]
    assert (texts[True] != texts[False]) == (narrow and small_static)


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_static_product_above_the_crossover_calls_blas(dt):
    m = n = k = 128
    assert m * n * k > small_gemm.SMALL_GEMM_WORK[dt, False]
    fs, a, b = _product(dt, m, n, k, False, False, False)
    assert _calls_blas(fs["llvm"])
    np.testing.assert_allclose(fs["llvm"](a, b), a @ b, rtol=_tol(dt), atol=_tol(dt) * k)


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True)])
def test_symbolic_batch_switches_route_at_run_time(dt, ta, tb, runtime_dispatch):
    """One compiled function, batch sizes on both sides of the crossover (and zero): the
    batch is A's first stored axis, the rows of the product or (A transposed, the weight
    gradient's layout) its inner dimension."""
    m, n, k = 24, 32, 16
    fs, _, _ = _product(dt, m, n, k, ta, tb and not ta, True)
    rng = np.random.default_rng(3)
    # the batch is the product's m (or, A transposed, its k): past the crossover's work too
    over = small_gemm.crossover(dt, (ta, tb), "r" if ta else str(k)) // (n * (m if ta else k))
    for batch in (0, 1, 3, 4, 31, over + 5, 2 * over):
        if ta:  # (batch, m) read as its transpose: k = batch
            a, b = rng.standard_normal((batch, m)), rng.standard_normal((batch, n))
        else:
            a = rng.standard_normal((batch, k))
            b = rng.standard_normal((n, k) if tb else (k, n))
        a, b = a.astype(dt), b.astype(dt)
        want = fs["numpy"](a, b)
        np.testing.assert_allclose(fs["llvm"](a, b), want, rtol=_tol(dt),
                                   atol=_tol(dt) * max(k, batch))


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("ta,tb", list(itertools.product([False, True], repeat=2)))
def test_nan_and_inf_propagate_like_numpy(dt, ta, tb):
    fs, a, b = _product(dt, 9, 11, 6, ta, tb, False)
    a[(2, 1) if ta else (1, 2)] = np.nan
    a[(4, 3) if ta else (3, 4)] = np.inf
    b[(5, 2) if tb else (2, 5)] = -np.inf
    b[(0, 3) if tb else (3, 0)] = 0.0  # inf * 0 is NaN
    with np.errstate(invalid="ignore"):
        want = fs["numpy"](a, b)
    got = fs["llvm"](a, b)
    assert (np.isnan(got) == np.isnan(want)).all()
    assert (np.isposinf(got) == np.isposinf(want)).all()
    assert (np.isneginf(got) == np.isneginf(want)).all()
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=_tol(dt), atol=_tol(dt) * 6)


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("symbolic", [False, True])
def test_empty_inner_dimension_gives_zeros(dt, symbolic, runtime_dispatch):
    fs, a, b = _product(dt, 6, 10, 0, False, False, symbolic)
    got = fs["llvm"](a, b)
    assert got.shape == (6, 10) and not got.any()
    fs, a, b = _product(dt, 6, 10, 0, True, True, symbolic)
    assert not fs["llvm"](a, b).any()


def _sgd(dt: str, backend: str, lr_value, symbolic: bool):
    """``W <- W - lr * (A^T @ G)`` (the folded weight-gradient update) with a shared lr."""
    rng = np.random.default_rng(5)
    a = sg.tensor("a", ("batch" if symbolic else 12, 24), dt)
    g = sg.tensor("g", ("batch" if symbolic else 12, 10), dt)
    w = sg.shared(rng.standard_normal((24, 10)).astype(dt), name="w")
    lr = sg.shared(np.asarray(lr_value, dt), name="lr")
    f = sg.function([a, g], (a * a).sum(), {w: w - lr * (a.T @ g)}, backend=backend)
    return f, w


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("symbolic", [False, True])
@pytest.mark.parametrize("lr_value", [0.1, -0.5, 0.0, np.nan, np.inf])
def test_folded_sgd_takes_the_loop_with_numpy_semantics(dt, symbolic, lr_value,
                                                         runtime_dispatch):
    rng = np.random.default_rng(6)
    A = rng.standard_normal((12, 24)).astype(dt)
    G = rng.standard_normal((12, 10)).astype(dt)
    G[3, 4] = np.nan  # a NaN in the product: W keeps it for every lr (numpy: nan * lr)
    results = {}
    for backend in ("numpy", "llvm"):
        f, w = _sgd(dt, backend, lr_value, symbolic)
        with np.errstate(invalid="ignore"):
            for _ in range(2):
                f(A, G)
        results[backend] = w.get_value()
    an = f.program.analysis
    assert [c.name for _, c in an.folded.values()] == ["lr"]  # the update is folded
    assert _calls_blas(f) == symbolic
    want, got = results["numpy"], results["llvm"]
    assert (np.isnan(got) == np.isnan(want)).all()
    assert (np.isinf(got) == np.isinf(want)).all()
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=_tol(dt) * 10,
                               atol=_tol(dt) * 10)


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_folded_sgd_with_k_zero_leaves_w(dt, runtime_dispatch):
    f, w = _sgd(dt, "llvm", 0.1, True)
    before = w.get_value().copy()
    f(np.zeros((0, 24), dt), np.zeros((0, 10), dt))
    np.testing.assert_array_equal(w.get_value(), before)


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("ta,tb", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("m,n,k", [(512, 1, 64), (1, 300, 64), (1, 1, 4096), (700, 1, 3)])
@pytest.mark.parametrize("symbolic", [False, True])
def test_one_column_or_one_row_products_call_gemv(dt, ta, tb, m, n, k, symbolic):
    """(m, k) @ (k, 1) and (1, k) @ (k, n) went to gemm or to the small loop (whose
    register tiles are wasted on one column): 2-4x slower than numpy's gemv. A transposed
    operand of one row or column is still k contiguous values."""
    fs, a, b = _product(dt, m, n, k, ta, tb, symbolic)
    ir = fs["llvm"].program.ir_text
    if n == 1 or not (symbolic and not ta):  # (symbolic: A's first stored axis, here m)
        assert "gemv" in ir and "gemm" not in ir.split("define", 1)[1]
    expected = (a.T if ta else a) @ (b.T if tb else b)
    for f in fs.values():
        np.testing.assert_allclose(f(a, b), expected, rtol=_tol(dt), atol=_tol(dt) * k)


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True)])
def test_the_register_tile_fits_the_hosts_registers(dt, ta, tb):
    """The tile's sums stay in vector registers (``SMALL_GEMM_TILES`` by the host's register
    count): no vector is stored to or loaded from the stack.  The AVX-512 host's 4x4 tile
    spilled 9 of its 16 sums on an AVX2 machine's 16 registers and ran 3x slower."""
    k = 16 if tb else 64  # within every host's crossover
    fs, a, b = _product(dt, 32, 32, k, ta, tb, False)
    np.testing.assert_allclose(fs["llvm"](a, b), fs["numpy"](a, b), rtol=_tol(dt),
                               atol=_tol(dt) * k)
    assert not _calls_blas(fs["llvm"])
    asm = fs["llvm"].asm()
    spills = re.findall(r"vmov\w*\s+[^\n]*\(%rsp\)", asm)
    assert not spills, spills[:4]


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("symbolic", [False, True])
@pytest.mark.parametrize("m,n,k", [(34, 10, 67), (5, 3, 64), (1, 7, 129), (32, 32, 64)])
def test_dot_products_along_k_for_a_transposed_b(m, n, k, symbolic, dt, runtime_dispatch,
                                                  monkeypatch):
    """``A @ B.T`` with a long ``k`` (the dot-product form on hosts listed in
    ``SMALL_GEMM_DOT``): left-over rows, columns and the ``k % width`` tail products all land,
    and a static product within its crossover calls no BLAS."""
    taken = []
    dot_tiles = small_gemm._dot_tiles
    monkeypatch.setattr(small_gemm, "_dot_tiles", lambda *a: taken.append(a) or dot_tiles(*a))
    fs, a, b = _product(dt, m, n, k, False, True, symbolic)
    np.testing.assert_allclose(fs["llvm"](a, b), fs["numpy"](a, b), rtol=_tol(dt),
                               atol=_tol(dt) * k)
    dot_host = jit.vector_registers() in small_gemm.SMALL_GEMM_DOT
    # a symbolic m branches to the loop when every static size is within the side bound
    loop = (max(n, k) <= small_gemm.SMALL_GEMM_RUNTIME_SIDE if symbolic
            else m * n * k <= small_gemm.SMALL_GEMM_DOT_WORK)
    assert bool(taken) == (dot_host and loop)
    if not symbolic:
        limit = small_gemm.crossover(dt, (False, True), str(k))
        assert _calls_blas(fs["llvm"]) == (m * n * k > limit)


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("m,n,k", [(32, 32, 10), (7, 10, 3), (5, 3, 1), (4, 64, 40),
                                   (9, 24, 17), (6, 13, 16), (3, 8, 8)])
def test_a_transposed_b_is_copied_untransposed_first(dt, m, n, k, monkeypatch):
    """``A @ B.T`` with a static ``k`` outside the dot form: B is copied ``(n, k) -> (k, n)``
    into a stack array when it holds at most ``SMALL_GEMM_TRANSPOSE_BYTES`` (4x64x40 does not:
    its vectors are built from scalar loads; the 512-bit tiles' limit is higher), and NaN and
    inf in B land where numpy's do.  The copy moves whole 256-bit blocks (8x8 floats, 4x4
    doubles) and the rows and columns past them one by one: the shapes have neither, both,
    and each alone."""
    taken = []
    real = small_gemm._transposed_copy
    monkeypatch.setattr(small_gemm, "_transposed_copy",
                        lambda *args: taken.append(args[4:6]) or real(*args))
    fs, a, b = _product(dt, m, n, k, False, True, False)
    b[min(1, n - 1), k // 2] = np.nan
    b[-1, -1] = np.inf
    with np.errstate(invalid="ignore"):
        want = fs["numpy"](a, b)
    np.testing.assert_allclose(fs["llvm"](a, b), want, rtol=_tol(dt), atol=_tol(dt) * k)
    assert not _calls_blas(fs["llvm"])
    wide = small_gemm.SMALL_GEMM_WIDE_2D and jit.vector_registers() == 32
    limit = small_gemm.SMALL_GEMM_WIDE_TRANSPOSE_BYTES if wide else \
        small_gemm.SMALL_GEMM_TRANSPOSE_BYTES
    fits = n * k * np.dtype(dt).itemsize <= limit
    assert taken == ([(n, k)] if fits else [])


@pytest.mark.skipif(jit.vector_registers() != 32, reason="512-bit tiles are AVX-512's")
@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True)])
def test_avx512_hosts_take_512_bit_tiles(dt, ta, tb):
    """On a host of 32 vector registers the loop works in 512-bit vectors (SMALL_GEMM_WIDE_2D:
    0.2-0.7x the 256-bit tiles' time), with the same values as numpy's."""
    fs, a, b = _product(dt, 32, 32, 16, ta, tb, False)
    np.testing.assert_allclose(fs["llvm"](a, b), fs["numpy"](a, b), rtol=_tol(dt),
                               atol=_tol(dt) * 16)
    lanes, ty = (16, "float") if dt == "float32" else (8, "double")
    assert f"<{lanes} x {ty}>" in fs["llvm"].program.ir_text
