"""codegen.native.jit: host target, optimisation pipeline, MCJIT loading, accessors."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import numpy as np
import pytest
from _helpers import cfunc, loop_ir

from codegen.native import jit


def _axpy_ir() -> str:
    fm = jit.fast_math_flags()
    body = f"%m = fmul {fm} float %v0, 2.5\n  %r = fadd {fm} float %m, %v1"
    return loop_ir("axpy", "float", 2, body, jit.function_attributes())


def test_import_does_not_load_llvmlite():
    code = (
        "import sys, codegen, codegen.native.jit, codegen.native.cache, codegen.native.vecmath, "
        "codegen.native.blas, codegen.native.pycall; "
        "assert 'llvmlite' not in sys.modules, 'llvmlite imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=jit.__file__.rsplit("/", 3)[0])


def test_host_target_and_attributes():
    host = jit.host_target()
    assert host is jit.host_target()
    assert host.cpu and host.triple and "+" in host.features
    attrs = jit.function_attributes()
    assert f'"target-cpu"="{host.cpu}"' in attrs
    assert '"prefer-vector-width"=' in attrs
    assert '"prefer-vector-width"="256"' in jit.function_attributes(vector_width=256)
    assert jit.fast_math_flags() == "reassoc contract nsz arcp afn"
    assert "nnan" not in jit.FAST_MATH_FLAGS and "ninf" not in jit.FAST_MATH_FLAGS


@pytest.mark.parametrize("opt_level", [0, 3])
def test_compile_and_call(opt_level):
    cm = jit.compile_module(_axpy_ir(), opt_level=opt_level)
    for stage in ("parse", "optimize", "codegen", "load"):
        assert cm.stats[stage] >= 0.0
    n = 1003
    x = np.linspace(-3, 3, n, dtype=np.float32)
    y = np.arange(n, dtype=np.float32)
    out = np.empty_like(x)
    f = cfunc(cm.address("axpy"), None, *[ctypes.c_void_p] * 3, ctypes.c_int64)
    f(out.ctypes.data, x.ctypes.data, y.ctypes.data, n)
    np.testing.assert_allclose(out, 2.5 * x + y, rtol=1e-6, atol=1e-6)
    assert cm.address("axpy") == cm.address("axpy")
    assert "define" in cm.llvm_ir()


def test_o3_vectorises():
    cm = jit.compile_module(_axpy_ir(), opt_level=3)
    assert "<8 x float>" in cm.llvm_ir() or "<16 x float>" in cm.llvm_ir()
    asm = cm.asm()
    assert "axpy" in asm and ("ymm" in asm or "zmm" in asm)


def test_errors():
    with pytest.raises(RuntimeError):
        jit.compile_module("define void @f() { ret i32 0 }")
    with pytest.raises(ValueError):
        jit.compile_module(_axpy_ir(), opt_level=5)
    cm = jit.compile_module("define void @f() {\n  ret void\n}\n", opt_level=1)
    with pytest.raises(KeyError):
        cm.address("missing")
    cfunc(cm.address("f"), None)()


def test_load_object_roundtrip():
    cm = jit.compile_module(_axpy_ir())
    again = jit.load_object(cm.object_code)
    assert set(again.stats) == {"load"}
    with pytest.raises(RuntimeError):
        again.llvm_ir()
    n = 40
    x = np.ones(n, np.float32)
    out = np.empty_like(x)
    f = cfunc(again.address("axpy"), None, *[ctypes.c_void_p] * 3, ctypes.c_int64)
    f(out.ctypes.data, x.ctypes.data, x.ctypes.data, n)
    np.testing.assert_allclose(out, 3.5)
