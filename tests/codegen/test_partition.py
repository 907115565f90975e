"""codegen.partition and multi-module compiles: a step split over modules compiled on threads
computes what the one-module step computes, through the cache too."""

from __future__ import annotations

import contextlib
import functools
import re
import threading

import numpy as np
import pytest
from _helpers import cfunc, loop_ir

import symgraph as sg
from codegen import partition
from codegen.kernel_cache import Body, program_text
from codegen.native import cache, jit, llvmffi


def _force_split(monkeypatch, threads: int) -> None:
    """Split even a small step: every kernel may go to another module."""
    monkeypatch.setenv("SYMGRAPH_COMPILE_THREADS", str(threads))
    monkeypatch.setattr(partition, "MIN_SPLIT_LINES", 0)
    monkeypatch.setattr(partition, "LINES_PER_MODULE", 1)


def _train(seed: int = 0, steps: int = 4):
    rng = np.random.default_rng(seed)
    x = sg.tensor("x", ("batch", 7), "float32")
    y = sg.tensor("y", ("batch",), "int64")
    w1 = sg.shared(rng.normal(size=(7, 16)).astype("float32"), name="w1")
    b1 = sg.shared(np.zeros(16, "float32"), name="b1")
    w2 = sg.shared(rng.normal(size=(16, 5)).astype("float32"), name="w2")
    h = sg.tanh(x @ w1 + b1)
    loss = sg.nn.cross_entropy(sg.nn.log_softmax(h @ w2, axis=-1), y) + 1e-3 * sg.sum(w1 * w1)
    params = [w1, b1, w2]
    grads = sg.grad(loss, params)
    f = sg.function([x, y], loss, updates={p: p - 0.05 * g for p, g in zip(params, grads)})
    X = rng.normal(size=(9, 7)).astype("float32")
    Y = rng.integers(0, 5, 9)
    losses = [float(f(X, Y)) for _ in range(steps)]
    return f, losses, [p.get_value() for p in params]


def test_module_count():
    assert partition.module_count(10_000, threads=1) == 1
    assert partition.module_count(partition.MIN_SPLIT_LINES - 1, threads=8) == 1
    assert partition.module_count(1800, threads=2) == 2
    assert partition.module_count(1800, threads=8) == 1800 // partition.LINES_PER_MODULE
    assert partition.module_count(10 ** 6, threads=4) == 4


@pytest.mark.skipif(not llvmffi.compiler_available(),
                    reason="one compile thread without the thread-safe path: no split")
def test_split_step_equals_one_module(cache_env, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_COMPILE_THREADS", "1")
    monkeypatch.setattr(partition, "MIN_SPLIT_LINES", 10 ** 9)  # one module, kernels inlined
    f1, losses1, params1 = _train()
    assert f1.compile_stats["cache"] == "miss"
    assert jit.PART_MARK not in f1.program.ir_text
    cache.clear_cache(memory=True, disk=True)
    _force_split(monkeypatch, 3)
    f3, losses3, params3 = _train()
    text = f3.program.ir_text
    assert text.count(jit.PART_MARK) == 3  # the entry's module and three of kernels
    assert f3.program.module.stats.get("modules") == f3.compile_stats["modules"] == 4
    # kernels are exported there (their helpers, and the header's runtime, stay internal)
    assert re.search(r"define weak_odr i32 @k_\w+\(", text.split(jit.PART_MARK)[1])
    assert not re.search(r"define internal i32 @k_[0-9a-f]+\(", text)
    np.testing.assert_allclose(losses3, losses1, rtol=1e-6)
    for a, b in zip(params3, params1):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the optimised IR and the assembly cover every module
    assert f3.llvm_ir().count(jit.PART_MARK) == 3
    assert "sg_step" in f3.asm()
    # a new Function from the program cache loads all object files into one engine
    cache.clear_cache(memory=True, disk=False)
    f4, losses4, _ = _train()
    assert f4.compile_stats["cache_level"] == "program" and not f4.compile_stats["lowered"]
    assert f4.compile_stats["modules"] == 1  # loaded, not compiled
    assert losses4 == losses3


def test_pack_objects_round_trip():
    assert jit.pack_objects([b"\x7fELF one"]) == b"\x7fELF one"
    packed = jit.pack_objects([b"\x7fELF a", b"\x7fELF bb", b"\x7fELF ccc"])
    assert jit.unpack_objects(packed) == [b"\x7fELF a", b"\x7fELF bb", b"\x7fELF ccc"]
    with pytest.raises(ValueError, match="truncated"):
        jit.unpack_objects(packed[:-1])


def _module_pair() -> str:
    """Two modules: ``twice`` calls ``add1`` defined in the other one."""
    callee = loop_ir("add1", "float", 1, "%r = fadd float %v0, 1.0")
    caller = """
declare void @add1(ptr, ptr, i64)
define void @twice(ptr %out, ptr %x, i64 %n) {
  call void @add1(ptr %out, ptr %x, i64 %n)
  call void @add1(ptr %out, ptr %out, i64 %n)
  ret void
}
"""
    return caller + jit.PART_MARK + callee


@pytest.mark.parametrize("threads", ["1", "2"])
def test_modules_link_by_name(monkeypatch, threads):
    monkeypatch.setenv("SYMGRAPH_COMPILE_THREADS", threads)
    cm = jit.compile_module(_module_pair())
    assert cm.stats["modules"] == 2 and cm.object_code[:4] == b"SGMO"
    import ctypes

    fn = cfunc(cm.address("twice"), None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
    x = np.arange(5, dtype=np.float32)
    out = np.zeros(5, np.float32)
    fn(out.ctypes.data, x.ctypes.data, 5)
    np.testing.assert_array_equal(out, x + 2)
    again = jit.load_object(cm.object_code)  # as the disk cache loads it
    fn2 = cfunc(again.address("twice"), None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
    out[:] = 0
    fn2(out.ctypes.data, x.ctypes.data, 5)
    np.testing.assert_array_equal(out, x + 2)


def test_bad_module_raises_with_llvm_message(monkeypatch):
    monkeypatch.setenv("SYMGRAPH_COMPILE_THREADS", "2")
    bad = _module_pair() + jit.PART_MARK + "define void @oops() { ret i32 0 }"
    with pytest.raises(RuntimeError, match="oops|ret|type"):
        jit.compile_module(bad)


@pytest.mark.skipif(not llvmffi.compiler_available(), reason="no thread-safe compile path")
def test_concurrent_compiles_give_the_same_code():
    """Many threads compiling at once (own contexts, no lock) emit what one thread emits."""
    host = jit.host_target()
    texts = [loop_ir(f"f{k}", "float", 2, f"%r = fmul float %v0, {k + 1}.0",
                     jit.function_attributes()) for k in range(6)]
    serial = [llvmffi.compile_object(t, host.triple, host.cpu, host.features, opt_level=3,
                                     vectorize=True, unroll=False, keep_ir=False)[0]
              for t in texts]
    results: dict[int, bytes] = {}

    def work(k: int) -> None:
        results[k] = llvmffi.compile_object(texts[k], host.triple, host.cpu, host.features,
                                            opt_level=3, vectorize=True, unroll=False,
                                            keep_ir=False)[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[k] for k in range(6)] == serial


@pytest.mark.skipif(not llvmffi.compiler_available(), reason="no thread-safe compile path")
def test_concurrent_ir_printing_keeps_the_locale(monkeypatch):
    """libllvmlite's module printer sets the locale to "C" and back: unserialised, concurrent
    prints left this process in "C" within a few compiles (files then read as ASCII)."""
    import locale

    monkeypatch.setenv("SYMGRAPH_COMPILE_THREADS", "4")
    # our own lock must do it (llvmlite's, taken too once llvmlite.binding is imported, is not
    # in every process)
    monkeypatch.setattr(llvmffi, "_llvmlite_lock", contextlib.nullcontext)
    before = locale.setlocale(locale.LC_CTYPE)
    try:  # a locale other than "C", so that a print left half-done shows
        locale.setlocale(locale.LC_CTYPE, "C.UTF-8")
    except locale.Error:
        pytest.skip("no C.UTF-8 locale")
    mods = ["\n".join(loop_ir(f"f{m}_{k}", "float", 2, f"%r = fmul float %v0, {k + 1}.0")
                      for k in range(40)) for m in range(4)]
    text = jit.PART_MARK.join(mods)
    try:
        for _ in range(30):
            cm = jit.compile_module(text, opt_level=0, keep_ir=True)
            assert locale.setlocale(locale.LC_CTYPE) == "C.UTF-8"
    finally:
        locale.setlocale(locale.LC_CTYPE, before)
    assert cm.llvm_ir().count("define void @f") == 160


def test_modules_compile_without_the_thread_safe_path(monkeypatch):
    """An llvmlite llvmffi does not support (or SYMGRAPH_LLVM_FFI=0): the modules compile one
    after another through llvmlite.binding and still link into one engine."""
    monkeypatch.setattr(llvmffi, "compiler_available", lambda: False)
    assert jit.compile_threads() == 1
    cm = jit.compile_module(_module_pair())
    assert cm.stats["modules"] == 2
    import ctypes

    fn = cfunc(cm.address("twice"), None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
    x = np.arange(4, dtype=np.float32)
    out = np.zeros(4, np.float32)
    fn(out.ctypes.data, x.ctypes.data, 4)
    np.testing.assert_array_equal(out, x + 2)
    assert cm.llvm_ir().count(jit.PART_MARK) == 1


def test_more_modules_than_threads(monkeypatch):
    """Five modules on two workers: each module compiles once, all link into one engine."""
    import ctypes

    monkeypatch.setenv("SYMGRAPH_COMPILE_THREADS", "2")
    mods = [loop_ir(f"f{k}", "float", 1, f"%r = fadd float %v0, {k}.0") for k in range(5)]
    cm = jit.compile_module(jit.PART_MARK.join(mods))
    assert cm.stats["modules"] == 5 and len(jit.unpack_objects(cm.object_code)) == 5
    x = np.arange(3, dtype=np.float32)
    for k in range(5):
        out = np.zeros(3, np.float32)
        cfunc(cm.address(f"f{k}"), None, ctypes.c_void_p, ctypes.c_void_p,
              ctypes.c_int64)(out.ctypes.data, x.ctypes.data, 3)
        np.testing.assert_array_equal(out, x + k)


def test_a_marked_module_compiles_at_its_own_level(monkeypatch):
    """OPT_LEVEL_MARK caps one module's level, never raises it; unmarked modules keep the
    call's level; all link as before."""
    import ctypes

    seen = {}
    real = jit._compile_one

    def spy(text, opt_level, *rest):
        seen[text.split("define void @")[1][:2]] = opt_level
        return real(text, opt_level, *rest)

    monkeypatch.setattr(jit, "_compile_one", spy)
    monkeypatch.setenv("SYMGRAPH_COMPILE_THREADS", "2")
    mods = [loop_ir(f"f{k}", "float", 1, f"%r = fadd float %v0, {k}.0") for k in range(3)]
    mods[0] = f"{jit.OPT_LEVEL_MARK}1\n" + mods[0]
    cm = jit.compile_module(jit.PART_MARK.join(mods), opt_level=3)
    assert seen == {"f0": 1, "f1": 3, "f2": 3}
    seen.clear()
    jit.compile_module(jit.PART_MARK.join(mods), opt_level=0)
    assert seen == {"f0": 0, "f1": 0, "f2": 0}
    assert jit.part_opt_level("; symgraph: opt_level=2\n...", 3) == 2
    x = np.arange(3, dtype=np.float32)
    out = np.zeros(3, np.float32)
    cfunc(cm.address("f2"), None, ctypes.c_void_p, ctypes.c_void_p,
          ctypes.c_int64)(out.ctypes.data, x.ctypes.data, 3)
    np.testing.assert_array_equal(out, x + 2)


def test_the_entry_module_declares_every_body_the_others_define_each_once(monkeypatch):
    monkeypatch.setattr(jit, "compile_threads", lambda: 8)  # a thread for every module
    bodies = [Body(f"k_{i:04x}", f"define internal i32 @k_{i:04x}(ptr %p) #2 {{\n"
                   + "  ; body\n" * (i + 1) + "  ret i32 0\n}", ["ptr"]) for i in range(7)]
    entry = ["define i32 @sg_step(ptr %bufs, ptr %dims) #1 {\n" + "  ; call\n" * 50 + "}"]
    names = sorted(b.symbol for b in bodies)
    for count in (1, 2, 3):
        for level in (None, 0):
            parts = program_text("; header", bodies, entry, count=count,
                                 entry_opt_level=level).split(jit.PART_MARK)
            assert len(parts) == count + 1
            assert parts[0].startswith(f"{jit.OPT_LEVEL_MARK}0\n") == (level == 0)
            assert "@sg_step(" in parts[0] and "define" not in parts[0].replace(
                "define i32 @sg_step(", "")
            assert sorted(re.findall(r"declare i32 @(k_\w+)\(ptr\)", parts[0])) == names
            # weak_odr: two object files defining one body load into one engine
            defined = [re.findall(r"^define weak_odr i32 @(k_\w+)\(", p, re.M) for p in parts[1:]]
            assert sorted(sum(defined, [])) == names
            assert all(defined)  # no empty module
            assert not any(p.startswith(jit.OPT_LEVEL_MARK) for p in parts[1:])
    # the largest first on the least loaded module
    assert partition.balance([5, 1, 4, 3, 2], 2) == [[0, 4, 1], [2, 3]]  # loads 8 and 7
    assert partition.balance([5, 1], 3) == [[0], [1]]
    assert partition.balance([5, 1, 4, 3, 2], 2, [0, 6]) == [[0, 2, 4], [3, 1]]  # 11 and 10
    # as many modules as threads: the thread done with the entry takes the last module,
    # which gets the fewer lines of kernels
    monkeypatch.setattr(jit, "compile_threads", lambda: 2)
    entry = ["define i32 @sg_step(ptr %bufs, ptr %dims) #1 {\n" + "  ; call\n" * 8 + "}"]
    entry_lines = entry[0].count("\n")
    first, *rest = program_text("; header", bodies, entry, count=2).split(jit.PART_MARK)
    lines = [p.count("  ; body\n") for p in rest]
    assert len(rest) == 2 and lines[1] < lines[0] and \
        abs(lines[0] - (lines[1] + entry_lines)) <= max(lines)


def test_a_long_step_compiles_its_entry_module_at_a_low_level(cache_env, monkeypatch):
    """More kernels than SEGMENT_KERNELS: the entry's segments get the first module, marked
    ENTRY_OPT_LEVEL; the kernels keep the call's level; the step computes the one-module step's
    values."""
    from codegen.entry import ENTRY_OPT_LEVEL, SEGMENT_KERNELS

    monkeypatch.setenv("SYMGRAPH_COMPILE_THREADS", "2")
    rng = np.random.default_rng(3)
    x = sg.tensor("x", (40, "batch", 3), "float64")
    w = sg.shared(rng.normal(size=(3, 3)) * 0.4, name="w")
    h = sg.zeros_like(x[0])
    for t in range(40):
        h = sg.tanh(x[t] @ w + h)
    loss = sg.sum(h * h)
    f = sg.function([x], [loss, *sg.grad(loss, [w])])
    assert len(f.kernels) > SEGMENT_KERNELS
    parts = f.program.ir_text.split(jit.PART_MARK)
    assert parts[0].startswith(f"{jit.OPT_LEVEL_MARK}{ENTRY_OPT_LEVEL}\n") and len(parts) >= 2
    assert "define internal i32 @sg_step_s1(" in parts[0]
    data = rng.normal(size=(40, 2, 3))
    want = sg.function([x], [loss, *sg.grad(loss, [w])], backend="numpy")(data)
    for g, r in zip(f(data), want):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)


def test_a_marked_module_keeps_its_level_in_the_ir_and_the_assembly(monkeypatch):
    monkeypatch.setenv("SYMGRAPH_COMPILE_THREADS", "2")
    body = loop_ir("f0", "float", 1, "%r = fdiv float %v0, 3.0", jit.function_attributes())
    marked = f"{jit.OPT_LEVEL_MARK}1\n" + body
    other = loop_ir("f1", "float", 1, "%r = fadd float %v0, 1.0")
    cm = jit.compile_module(marked + jit.PART_MARK + other, opt_level=3)
    first = cm.llvm_ir().split(jit.PART_MARK)[0]
    assert first.startswith(f"{jit.OPT_LEVEL_MARK}1\n")
    assert jit.assembly(marked) == jit.assembly(body, 1)
    # optimised first, O1 keeps the loop scalar and O3 vectorises it on any host (without
    # optimisation, O1's and O3's code generation gave the same text on an AVX-512 Xeon)
    opt = functools.partial(jit.assembly, optimize=True)
    assert opt(marked) == opt(body, 1) != opt(body, 3)
    with pytest.raises(ValueError, match="malformed"):
        jit.part_opt_level(f"{jit.OPT_LEVEL_MARK}x\n", 3)


def test_a_failed_module_stops_the_rest(monkeypatch):
    monkeypatch.setenv("SYMGRAPH_COMPILE_THREADS", "1")
    compiled = []
    real = jit._compile_one

    def spy(text, *rest):
        compiled.append(text)
        return real(text, *rest)

    monkeypatch.setattr(jit, "_compile_one", spy)
    good = [loop_ir(f"g{k}", "float", 1, "%r = fadd float %v0, 1.0") for k in range(4)]
    with pytest.raises(RuntimeError):
        jit.compile_module(jit.PART_MARK.join(["define void @oops() { ret i32 0 }", *good]))
    assert len(compiled) == 1
