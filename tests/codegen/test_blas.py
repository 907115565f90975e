"""codegen.native.blas: numpy's OpenBLAS called from JIT code, compared with numpy."""

from __future__ import annotations

import ctypes
import itertools

import numpy as np
import pytest
from _helpers import cfunc

from codegen.native import blas, jit

COMBOS = list(itertools.product(("float32", "float64"), (False, True), (False, True), (0.0, 1.0)))
M, N, K = 5, 7, 3


@pytest.fixture(scope="module")
def gemm_module():
    funcs = []
    for idx, (dtype, ta, tb, beta) in enumerate(COMBOS):
        call = blas.gemm_call(
            dtype, a="%a", b="%b", c="%c", m=M, n=N, k=K, trans_a=ta, trans_b=tb,
            alpha=0.5, beta=beta,
        )  # fmt: skip
        funcs.append(f"define void @g{idx}(ptr %a, ptr %b, ptr %c) {{\n  {call}\n  ret void\n}}")
    # Runtime sizes/scalars as IR operands, with a leading dimension wider than the matrix.
    dyn = blas.gemm_call(
        "float64", a="%a", b="%b", c="%c", m="%m", n="%n", k="%k", alpha="%al", beta="%be",
        lda="%lda",
    )  # fmt: skip
    funcs.append(
        "define void @gdyn(ptr %a, ptr %b, ptr %c, i64 %m, i64 %n, i64 %k, i64 %lda, "
        f"double %al, double %be) {{\n  {dyn}\n  ret void\n}}"
    )
    gemv = blas.gemv_call("float32", a="%a", x="%x", y="%y", m=M, n=N, trans=True)
    funcs.append(f"define void @gemv(ptr %a, ptr %x, ptr %y) {{\n  {gemv}\n  ret void\n}}")
    return jit.compile_module("\n".join(funcs) + "\n" + blas.blas_declarations())


@pytest.mark.parametrize(("idx", "combo"), list(enumerate(COMBOS)))
def test_gemm_combos(gemm_module, idx, combo):
    dtype, ta, tb, beta = combo
    rng = np.random.default_rng(idx)
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    c = rng.standard_normal((M, N)).astype(dtype)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = 0.5 * ((a64.T if ta else a64) @ (b64.T if tb else b64)) + beta * c
    f = cfunc(gemm_module.address(f"g{idx}"), None, *[ctypes.c_void_p] * 3)
    f(a.ctypes.data, b.ctypes.data, c.ctypes.data)
    np.testing.assert_allclose(c, ref, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)


def test_gemm_runtime_operands_and_leading_dim(gemm_module):
    rng = np.random.default_rng(7)
    m, n, k = 6, 4, 9
    wide = rng.standard_normal((m, k + 5))  # A is wide[:, :k], lda = k + 5
    b = rng.standard_normal((k, n))
    c = rng.standard_normal((m, n))
    ref = 2.0 * wide[:, :k] @ b - 1.0 * c
    i64, vp, dbl = ctypes.c_int64, ctypes.c_void_p, ctypes.c_double
    f = cfunc(gemm_module.address("gdyn"), None, vp, vp, vp, i64, i64, i64, i64, dbl, dbl)
    f(wide.ctypes.data, b.ctypes.data, c.ctypes.data, m, n, k, k + 5, 2.0, -1.0)
    np.testing.assert_allclose(c, ref, rtol=1e-12)


def test_gemv(gemm_module):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((M, N)).astype(np.float32)
    x = rng.standard_normal(M).astype(np.float32)
    y = np.full(N, np.nan, np.float32)  # beta = 0 must ignore y
    cfunc(gemm_module.address("gemv"), None, *[ctypes.c_void_p] * 3)(
        a.ctypes.data, x.ctypes.data, y.ctypes.data
    )
    np.testing.assert_allclose(y, a.T.astype(np.float64) @ x, rtol=1e-5, atol=1e-6)


def test_info_threads_and_single_blas():
    info = blas.blas_info()
    assert "openblas" in info["path"].lower()
    assert "OpenBLAS" in info["config"] and info["corename"]
    old = blas.get_num_threads()
    try:
        blas.set_num_threads(1)
        assert blas.get_num_threads() == 1
        assert blas.blas_info()["num_threads"] == 1
    finally:
        blas.set_num_threads(old)
    assert blas.get_num_threads() == old
    with open("/proc/self/maps") as maps:
        mapped = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    assert mapped == {info["path"]}, "a second OpenBLAS is loaded"


def test_bad_dtype():
    with pytest.raises(ValueError):
        blas.gemm_call("int32", a="%a", b="%b", c="%c", m=1, n=1, k=1)


def test_candidates_prefer_the_library_numpy_loaded(monkeypatch):
    """The bundled library numpy loaded is found without /proc/self/maps; with none loaded
    (a numpy linked to a system BLAS), the mapped OpenBLAS comes first."""
    with open("/proc/self/maps") as maps:
        mapped = [line.split()[-1] for line in maps if "openblas" in line.lower()]
    assert blas._candidate_paths()[0] == mapped[0]
    monkeypatch.setattr(blas, "_bundled_paths", lambda: ["/nonexistent/libopenblas.so"])
    paths = blas._candidate_paths()
    assert paths[0] == mapped[0] and paths[-1] == "/nonexistent/libopenblas.so"
