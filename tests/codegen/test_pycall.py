"""codegen.native.pycall: kernels called as METH_FASTCALL builtins."""

from __future__ import annotations

import ctypes
import gc
import json
import sys

import numpy as np
import pytest
from _helpers import run_fresh

from codegen.native import jit, pycall

KERNELS = """
; buffers[0] += 1 elementwise (float32, n = dims[0]); returns n if n > 100 else 0
define i32 @add1(ptr %bufs, ptr %dims) {
entry:
  %x = load ptr, ptr %bufs
  %n = load i64, ptr %dims
  %c = icmp sgt i64 %n, 0
  br i1 %c, label %loop, label %exit
loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
  %p = getelementptr inbounds float, ptr %x, i64 %i
  %v = load float, ptr %p
  %w = fadd float %v, 1.0
  store float %w, ptr %p
  %i1 = add i64 %i, 1
  %d = icmp eq i64 %i1, %n
  br i1 %d, label %exit, label %loop
exit:
  %s = trunc i64 %n to i32
  %big = icmp sgt i64 %n, 100
  %r = select i1 %big, i32 %s, i32 0
  ret i32 %r
}

; with 3 array args and 3 owned buffers: out (int64, buffers[0]) = [dims[0..3], buffers[3..5]]
define i32 @probe(ptr %bufs, ptr %dims) {
  %out = load ptr, ptr %bufs
  br label %loop
loop:
  %i = phi i64 [0, %0], [%i1, %loop]
  %dp = getelementptr inbounds i64, ptr %dims, i64 %i
  %dv = load i64, ptr %dp
  %op = getelementptr inbounds i64, ptr %out, i64 %i
  store i64 %dv, ptr %op
  %i1 = add i64 %i, 1
  %done = icmp eq i64 %i1, 4
  br i1 %done, label %ptrs, label %loop
ptrs:
  br label %ploop
ploop:
  %j = phi i64 [3, %ptrs], [%j1, %ploop]
  %bp = getelementptr inbounds ptr, ptr %bufs, i64 %j
  %bv = load ptr, ptr %bp
  %k = add i64 %j, 1
  %slot = getelementptr inbounds i64, ptr %out, i64 %k
  store ptr %bv, ptr %slot
  %j1 = add i64 %j, 1
  %pdone = icmp eq i64 %j1, 6
  br i1 %pdone, label %exit, label %ploop
exit:
  ret i32 0
}

define i32 @noop(ptr %bufs, ptr %dims) {
  ret i32 0
}
"""


@pytest.fixture(scope="module")
def kernels():
    return jit.compile_module(KERNELS)


def test_add_one_in_place(kernels):
    f = pycall.make_builtin(kernels.address("add1"), [1], name="add1", keepalive=kernels)
    assert f.__name__ == "add1"
    x = np.arange(10, dtype=np.float32)
    assert f(x) is None
    np.testing.assert_array_equal(x, np.arange(10, dtype=np.float32) + 1)
    y = np.zeros(300, np.float32)
    assert f(y) == 300  # non-zero status comes back as an int
    np.testing.assert_array_equal(y, 1.0)
    view = np.zeros(20, np.float32)[5:15]  # data pointer of a view, not of its base
    f(view)
    assert view.base[4] == 0 and view.base[5] == 1 and view.base[15] == 0


def test_dims_and_owned_buffers(kernels):
    w = np.zeros(3, np.float32)
    arena = np.zeros(16, np.uint8)
    raw = 0x1234560
    f = pycall.make_builtin(kernels.address("probe"), [1, 2, 1], owned=[w, arena, raw])
    out = np.zeros(7, np.int64)
    f(out, np.zeros((5, 6)), np.zeros(9, np.int8))
    assert out[:4].tolist() == [7, 5, 6, 9]
    assert out[4:].tolist() == [w.ctypes.data, arena.ctypes.data, raw]
    assert f.__self__.keepalive  # the builtin keeps owned arrays alive


def test_wrong_arg_count(kernels):
    f = pycall.make_builtin(kernels.address("noop"), [1, 1])
    with pytest.raises(TypeError, match="expected 2 array"):
        f(np.zeros(1))
    with pytest.raises(TypeError):
        f()


def test_no_refcount_leak(kernels):
    owned = [np.zeros(4, np.float32)]
    f = pycall.make_builtin(kernels.address("noop"), [1, 1, 2, 1], owned=owned, keepalive=kernels)
    args = [np.zeros(8, np.float32), np.zeros(3), np.zeros((2, 2)), np.zeros(1)]
    f(*args)
    gc.collect()
    before = [sys.getrefcount(None), sys.getrefcount(f), *map(sys.getrefcount, args + owned)]
    for _ in range(10_000):
        f(*args)
    after = [sys.getrefcount(None), sys.getrefcount(f), *map(sys.getrefcount, args + owned)]
    assert after == before


def test_builtin_keeps_code_and_owned_alive():
    cm = jit.compile_module(KERNELS)
    x = np.zeros(4, np.float32)
    f = pycall.make_builtin(cm.address("add1"), [1], owned=[x], keepalive=cm)
    del cm, x  # only the builtin references the kernel module and the owned array now
    gc.collect()
    y = np.zeros(5, np.float32)
    f(y)
    assert y.tolist() == [1.0] * 5
    assert f.__self__.keepalive[-1][0].shape == (4,)


def test_layout_constants():
    a = np.zeros((2, 3))
    assert ctypes.c_void_p.from_address(id(a) + pycall.ARRAY_DATA_OFFSET).value == a.ctypes.data
    assert "define ptr @sg_trampoline" in pycall.trampoline_ir()


def test_one_trampoline_per_process_from_the_disk_cache(tmp_path):
    """Steps do not carry a trampoline of their own: the builtins of two different compiled
    functions share the one compiled on the machine's first call (then in the disk cache),
    and a new process loads it from there. Both functions compute their numpy results."""
    script = """
import json
import numpy as np
import symgraph as sg
from codegen.native import pycall
x = sg.tensor("x", ("n",), "float32")
f, g = sg.function([x], x * 2 + 1), sg.function([x], sg.exp(x))
a = np.linspace(-1, 1, 7, dtype=np.float32)
ok = np.allclose(f(a), a * 2 + 1) and np.allclose(g(a), np.exp(a), rtol=1e-6)
module, address = pycall._trampoline_entry
print(json.dumps(dict(ok=bool(ok), cache=module.stats.get("cache"),
                      embedded=any("trampoline" in h.program.ir_text for h in (f, g)))))
"""
    runs = [json.loads(run_fresh(script, tmp_path / "cache")) for _ in range(2)]
    assert runs[0] == dict(ok=True, cache="miss", embedded=False), runs[0]
    assert runs[1] == dict(ok=True, cache="disk", embedded=False), runs[1]
