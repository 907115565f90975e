"""codegen.native.cache: memory and disk caches, cross-process reuse, invalidation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codegen.native import blas, cache, vecmath

ROOT = Path(__file__).resolve().parents[2]

vecmath.register("exp", 1)  # (the elementwise table's rows register what they use)

# A kernel using both external libraries: C = exp(A @ B) for 4x4 float32 matrices, so a disk
# hit in a new process proves BLAS and libmvec symbols are re-resolved by name.
KERNEL_IR = f"""
define void @k(ptr noalias %a, ptr noalias %b, ptr noalias %c) #0 {{
entry:
  {blas.gemm_call("float32", a="%a", b="%b", c="%c", m=4, n=4, k=4)}
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
  %p = getelementptr inbounds float, ptr %c, i64 %i
  %v = load float, ptr %p
  {vecmath.math_call("exp", "float32", "%v", "%r")}
  store float %r, ptr %p
  %i1 = add i64 %i, 1
  %d = icmp eq i64 %i1, 16
  br i1 %d, label %exit, label %loop
exit:
  ret void
}}
attributes #0 = {{ nounwind }}
{blas.blas_declarations()}
{vecmath.math_declarations({("exp", "float32")})}
"""

CHILD = """
import ctypes, json, sys
import numpy as np
from codegen.native import cache
ir = sys.stdin.read()
cm = cache.compile_cached(ir)
a = np.arange(16, dtype=np.float32).reshape(4, 4) / 40
b = np.eye(4, dtype=np.float32) + 0.25
c = np.empty((4, 4), np.float32)
ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 3)(cm.address("k"))(
    a.ctypes.data, b.ctypes.data, c.ctypes.data)
ref = np.exp(a.astype(np.float64) @ b)
print(json.dumps({"stats": sorted(cm.stats), "cache": cm.stats["cache"],
                  "err": float(np.abs(c - ref).max() / np.abs(ref).max()), "c": c.tolist()}))
"""


def _child(ir: str, cache_dir: Path) -> dict:
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", CHILD], input=ir, env=env, capture_output=True, text=True,
        check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("SYMGRAPH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "symgraph"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_dir() == Path.home() / ".cache" / "symgraph"
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path / "own"))
    assert cache.cache_dir() == tmp_path / "own"


def test_second_process_loads_from_disk(cache_env):
    first = _child(KERNEL_IR, cache_env)
    assert first["cache"] == "miss" and "optimize" in first["stats"]
    assert first["err"] < 1e-6
    files = list(cache_env.glob("*.o"))
    assert len(files) == 1 and not list(cache_env.glob(".tmp-*"))
    second = _child(KERNEL_IR, cache_env)
    assert second["cache"] == "disk"
    assert "optimize" not in second["stats"] and "codegen" not in second["stats"]
    assert second["c"] == first["c"]


def test_memory_hit_changed_ir_and_clear(cache_env):
    cm1 = cache.compile_cached(KERNEL_IR)
    assert cm1.stats["cache"] == "miss"
    cm2 = cache.compile_cached(KERNEL_IR)
    assert cm2.stats["cache"] == "memory" and cm2.address("k") == cm1.address("k")
    changed = KERNEL_IR.replace("icmp eq i64 %i1, 16", "icmp eq i64 %i1, 8")
    assert cache.compile_cached(changed).stats["cache"] == "miss"
    # (8 lanes call another vector exp, whose shim module -- codegen.native.vecmath -- goes
    # to the cache too the first time a process needs it: count the objects after it)
    before = len(list(cache_env.glob("*.o")))
    assert cache.compile_cached(KERNEL_IR, opt_level=2).stats["cache"] == "miss"
    assert len(list(cache_env.glob("*.o"))) == before + 1 >= 3
    cache.clear_cache(memory=True, disk=False)
    assert cache.compile_cached(KERNEL_IR).stats["cache"] == "disk"
    cache.clear_cache()
    assert not list(cache_env.glob("*.o"))
    assert cache.compile_cached(KERNEL_IR).stats["cache"] == "miss"
    cm1.address("k")  # modules handed out earlier stay usable


def test_key_and_corrupt_file(cache_env):
    key = cache.cache_key(KERNEL_IR)
    assert key == cache.cache_key(KERNEL_IR) != cache.cache_key(KERNEL_IR, opt_level=1)
    assert key != cache.cache_key(KERNEL_IR + "\n")
    cache.compile_cached(KERNEL_IR)
    path = cache_env / f"{key}.o"
    path.write_bytes(path.read_bytes()[:100])  # truncated: must recompile, not crash
    cache.clear_cache(memory=True, disk=False)
    cm = cache.compile_cached(KERNEL_IR)
    assert cm.stats["cache"] == "miss"


def test_a_file_under_another_keys_name_is_not_run(cache_env):
    """A's object code copied over B's file passed the checksum (of the code alone) and ran
    as B: in a program, a segfault. The checksum covers the key too."""
    other = KERNEL_IR.replace("icmp eq i64 %i1, 16", "icmp eq i64 %i1, 8")
    cache.compile_cached(KERNEL_IR)
    cache.compile_cached(other)
    a, b = (cache_env / f"{cache.cache_key(ir)}.o" for ir in (KERNEL_IR, other))
    b.write_bytes(a.read_bytes())
    cache.clear_cache(memory=True, disk=False)
    assert cache.compile_cached(other).stats["cache"] == "miss"
    assert cache.compile_cached(KERNEL_IR).stats["cache"] == "disk"


@pytest.mark.parametrize("where", ["name too long", "not a directory"])
def test_an_unusable_cache_dir_compiles_without_it(cache_env, monkeypatch, where):
    """pathlib's is_file() raised for such paths (ENAMETOOLONG, and EACCES for a directory
    the user cannot search) before the disk errors that fall back to compiling."""
    bad = cache_env / ("n" * 300) if where == "name too long" else cache_env / "f" / "sub"
    cache_env.mkdir(parents=True, exist_ok=True)
    (cache_env / "f").write_text("a file where a directory should be")
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(bad))
    cache.clear_cache(memory=True, disk=False)
    cm = cache.compile_cached(KERNEL_IR)
    assert cm.stats["cache"] == "miss"
    cm.address("k")


def test_a_corrupt_facts_snapshot_is_ignored(cache_env):
    """One flipped flag in the snapshot made every later compile of its op fail until the
    file was deleted: it now has a checksum, and a bad one reads as no snapshot (which the
    registry then rewrites)."""
    data = {"format": 1, "records": {"Elemwise": ((True, False), (False, True))}}
    cache.store_facts(data)
    assert cache.load_facts() == data
    path = next(cache_env.glob("*.sgf"))
    blob = path.read_bytes()
    at = blob.rindex(b"T")  # a flag True -> False: still a valid marshal of another dict
    path.write_bytes(blob[:at] + b"F" + blob[at + 1:])
    assert cache.load_facts() is None


def test_code_of_dropped_functions_is_freed(cache_env, monkeypatch):
    """The memory caches keep the most recent modules only: the code of functions used once
    and dropped is freed (every one was kept: ~2 memory maps and 55-75 KB per graph, until
    LLVM aborted the process), while a live function keeps its own."""
    import gc
    import weakref

    import numpy as np

    import symgraph as sg

    monkeypatch.setattr(cache, "MEMORY_LIMIT", 3)
    x = sg.tensor("x", shape=(3,), dtype="float64")
    keep = sg.function([x], sg.tanh(x).sum() - 1.0)
    alive = []
    for k in range(12):
        f = sg.function([x], sg.tanh(x * (k + 0.25)).sum() + k)
        assert f(np.zeros(3)) == k
        alive.append(weakref.ref(f.program.module._engine))
        del f
    gc.collect()
    assert sum(r() is not None for r in alive) <= 3
    assert len(cache._memory) <= 3 and len(cache._programs) <= 3
    assert keep(np.zeros(3)) == -1.0


FORK_CHILD = """
import faulthandler, os, threading, time
import numpy as np, symgraph as sg
stop, compiled = False, [0]
def compile_loop():  # a background thread building functions (distinct graphs: all compile)
    while not stop:
        x = sg.tensor("x", shape=(3,), dtype="float64")
        sg.function([x], sg.tanh(x * (compiled[0] + 0.5)).sum())
        compiled[0] += 1
threading.Thread(target=compile_loop, daemon=True).start()
while compiled[0] < 2:
    time.sleep(0.01)
codes = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        faulthandler.dump_traceback_later(20, exit=True)  # a hang exits 1
        x = sg.tensor("x", shape=(3,), dtype="float64")
        os._exit(0 if sg.function([x], x.sum() * (i + 2))(np.ones(3)) == 3 * (i + 2) else 5)
    codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    time.sleep(0.05)
stop = True
print(codes)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_while_another_thread_compiles(cache_env):
    """The child of a fork made while another thread held the compile lock waited on it
    forever: a fork now waits for the compile in progress."""
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(cache_env), PYTHONPATH=str(ROOT),
               OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", FORK_CHILD], env=env, capture_output=True,
                         text=True, check=True, cwd=ROOT, timeout=240)
    assert out.stdout.strip() == "[0, 0, 0, 0]", out.stderr[-2000:]


# --------------------------------------------------------------------------- program cache

PROGRAM_CHILD = """
import json, sys
import numpy as np, symgraph as sg
from codegen import backend
from codegen.native import cache, jit
calls = {"lower": 0, "compile": 0, "cached": 0}
lower, compile_objects = backend.LLVMProgram._lower, jit.compile_objects
compile_cached = cache.compile_cached
def wrapper(a):  # a math function's scalar wrapper: compiled once per machine (vecmath)
    return "sg_same_" in str(a)
def counting_cached(*a, **k):
    calls["cached"] += not wrapper(a)
    return compile_cached(*a, **k)
cache.compile_cached = counting_cached
def counting_lower(self):
    calls["lower"] += 1
    return lower(self)
def counting_compile(*a, **k):
    calls["compile"] += not wrapper(a)
    return compile_objects(*a, **k)
backend.LLVMProgram._lower = counting_lower
jit.compile_objects = counting_compile
x = sg.tensor("x", ("batch", 6), "float32"); y = sg.tensor("y", ("batch",), "int64")
rng = np.random.default_rng(0)
w = sg.shared(rng.normal(size=(6, 4)).astype("float32"), name="w")
b = sg.shared(np.zeros(4, "float32"), name="b")
loss = sg.nn.cross_entropy(sg.nn.relu(x @ w + b) * 0.5, y)
gw, gb = sg.grad(loss, [w, b])
f = sg.function([x, y], loss, updates={w: w - 0.1 * gw, b: b - 0.1 * gb})
counted = dict(calls)
X = rng.normal(size=(5, 6)).astype("float32"); Y = rng.integers(0, 4, 5)
losses = [float(f(X, Y)) for _ in range(3)]
counted["after_calls"] = calls["cached"]  # the step's trampoline is inside its module
stats = {k: v for k, v in f.compile_stats.items()}
print(json.dumps({"calls": counted, "stats": stats, "losses": losses,
                  "w": w.get_value().tolist(), "kernels": [k.name for k in f.kernels],
                  "binding": "llvmlite.binding" in sys.modules,
                  "lowering_modules": sorted(m for m in sys.modules if m in (
                      "codegen.lower", "codegen.kernel", "codegen.irgen", "codegen.lowerings",
                      "codegen.entry", "codegen.partition"))}))
"""


def _program_child(cache_dir: Path) -> dict:
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT))
    env.pop("SYMGRAPH_LLVM_FFI", None)
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM_CHILD], env=env, capture_output=True, text=True,
        check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_second_process_skips_lowering_and_llvm(cache_env):
    first = _program_child(cache_env)
    assert first["calls"] == {"lower": 1, "compile": 1, "cached": 0, "after_calls": 0}
    assert first["stats"]["cache"] == "miss" and first["stats"]["lowered"] is True
    assert len(list(cache_env.glob("*.sgp"))) == 1
    second = _program_child(cache_env)
    # no lowering, no LLVM optimisation, no separate trampoline
    assert second["calls"] == {"lower": 0, "compile": 0, "cached": 0, "after_calls": 0}
    st = second["stats"]
    assert st["cache"] == "disk" and st["cache_level"] == "program" and st["lowered"] is False
    assert st["lower"] == 0.0 and st["llvm_optimize"] == 0.0 and st["machine_code"] == 0.0
    assert second["losses"] == first["losses"] and second["w"] == first["w"]
    assert second["kernels"] == first["kernels"]
    # nor imports any module of the lowering (codegen.registry, "Warm starts")
    assert second["lowering_modules"] == [] and "codegen.lower" in first["lowering_modules"]
    from codegen.native import llvmffi

    if llvmffi._version() in llvmffi.SUPPORTED:  # neither compiling nor loading imports
        assert second["binding"] is False and first["binding"] is False  # llvmlite.binding


def _mlp_function(act="relu", shape=(6, 4), dtype="float32", scale=0.5, lr=0.1):
    import numpy as np

    import symgraph as sg

    x = sg.tensor("x", ("batch", shape[0]), dtype)
    w = sg.shared(np.linspace(-1, 1, shape[0] * shape[1]).reshape(shape).astype(dtype),
                  name="w")
    h = getattr(sg.nn, act)(x @ w) * scale
    loss = sg.sum(h * h)
    return sg.function([x], loss, updates={w: w - lr * sg.grad(loss, w)}), x, w


def test_changed_graph_misses_equal_graph_hits(cache_env):
    import numpy as np

    f0, _, _ = _mlp_function()
    assert f0.compile_stats["lowered"] is True
    again, _, _ = _mlp_function()  # new Variables, same graph: a program hit, no lowering
    assert again.compile_stats["lowered"] is False
    assert again.compile_stats["cache"] == "memory"
    for changed in (dict(act="sigmoid"), dict(shape=(6, 3)), dict(dtype="float64"),
                    dict(scale=0.25), dict(lr=0.2)):
        f, _, _ = _mlp_function(**changed)
        assert f.compile_stats["lowered"] is True, changed
    X = np.ones((3, 6), "float32")
    f1, _, w1 = _mlp_function()
    f2, _, w2 = _mlp_function(scale=0.25)
    assert f1.compile_stats["lowered"] is False and f2.compile_stats["lowered"] is False
    assert float(f1(X)) != float(f2(X))  # the constant is really part of the key


def test_program_hit_introspection_lowers_on_demand(cache_env):
    import numpy as np

    f1, _, _ = _mlp_function()
    text = f1.llvm_ir(optimized=False)
    cache.clear_cache(memory=True, disk=False)
    f2, _, _ = _mlp_function()
    st = f2.compile_stats
    assert st["lowered"] is False and st["cache"] == "disk"
    assert "ir_text" not in vars(f2.program)
    assert f2.llvm_ir(optimized=False) == text  # lowered lazily, identical
    assert "sg_step" in f2.asm()
    rows = f2.profile(np.ones((3, 6), "float32"), n=2)
    assert len(rows) == len(f2.kernels)


def test_corrupt_program_metadata_recompiles(cache_env):
    import hashlib
    import marshal

    import numpy as np

    f1, _, _ = _mlp_function()
    ref = float(f1(np.ones((3, 6), "float32")))
    (path,) = cache_env.glob("*.sgp")
    good = path.read_bytes()

    def rewrite(meta_edit):
        body = good[36:]
        n = int.from_bytes(body[:8], "little")
        meta = marshal.loads(body[8:8 + n])
        meta_edit(meta)
        data = marshal.dumps(meta)
        new = len(data).to_bytes(8, "little") + data + body[8 + n:]
        path.write_bytes(good[:4] + hashlib.sha256(new).digest() + new)

    # the forged checksum is valid: an unchanged rewrite still loads without lowering, so the
    # corruptions below are refused for their metadata, not for the checksum
    rewrite(lambda meta: None)
    cache.clear_cache(memory=True, disk=False)
    f, _, _ = _mlp_function()
    assert f.compile_stats["lowered"] is False

    def bad_kernel(meta):
        meta["program"]["kernels"][0]["reads"] = [10 ** 6]

    def bad_format(meta):
        meta["program"]["format"] = -1

    def bad_slot(meta):
        meta["program"]["slots"] = [["nonsense", 0]]

    def bad_analysis(meta):
        meta["program"]["analysis"]["kernels"] = [10 ** 6]

    corruptions = [lambda: path.write_bytes(good[:50]),  # truncated
                   lambda: path.write_bytes(b"garbage"),
                   lambda: path.write_bytes(good[:-1] + bytes([good[-1] ^ 1])),  # checksum
                   lambda: rewrite(bad_kernel), lambda: rewrite(bad_format),
                   lambda: rewrite(bad_slot), lambda: rewrite(bad_analysis)]
    for corrupt in corruptions:
        corrupt()
        cache.clear_cache(memory=True, disk=False)
        f, _, _ = _mlp_function()
        assert f.compile_stats["lowered"] is True
        assert float(f(np.ones((3, 6), "float32"))) == ref
        assert path.read_bytes() == good  # rewritten cleanly


def _graphs():
    """Functions whose analyses differ in kind: folded in-place SGD, Adam (in place, several
    constants), an update that must be double-buffered (read transposed), outputs that are
    an alias (reshape) and an argument, a dead branch."""
    import numpy as np

    import symgraph as sg

    yield lambda: _mlp_function()[0]

    def adam():
        x = sg.tensor("x", ("b", 5))
        w = sg.shared(np.linspace(-1, 1, 15).reshape(5, 3), name="w")
        m, v = sg.shared(np.zeros((5, 3)), name="m"), sg.shared(np.zeros((5, 3)), name="v")
        loss = sg.sum(sg.tanh(x @ w) ** 2)
        g = sg.grad(loss, w)
        m1, v1 = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        return sg.function([x], [loss, sg.reshape(x @ w, (-1,))],
                           updates={m: m1, v: v1, w: w - 0.01 * m1 / (sg.sqrt(v1) + 1e-8)})

    def transposed():
        x = sg.tensor("x", ("b", 4))
        w = sg.shared(np.linspace(-1, 1, 16).reshape(4, 4), name="w")
        unused = sg.exp(x) * 3.0  # noqa: F841  (never reaches an output: dead)
        return sg.function([x], [sg.sum(x @ w, axis=1), w], updates={w: w.T * 0.5 + 1.0})

    yield adam
    yield transposed


@pytest.mark.parametrize("build", list(_graphs()))
def test_a_cached_analysis_is_the_analysis(cache_env, build):
    """A program from the cache reads its fusion analysis with it (``encode_analysis``):
    every mode, use, kernel, member node, in-place and folded update, in the same order,
    is what analysing its graph again gives."""
    from codegen.epilogue_plan import plan_epilogues
    from codegen.fusion import analyse

    first = build()
    second = build()  # the same graph anew: a program hit
    assert first.compile_stats["lowered"] is True and second.compile_stats["lowered"] is False
    p = second.program
    got = p.analysis
    want = analyse(p.outputs + p.update_exprs, updates=list(zip(p.update_vars, p.update_exprs)))
    plan_epilogues(want)

    def ids(x):
        if isinstance(x, dict):
            return [(id(k), ids(v)) for k, v in x.items()]
        if isinstance(x, (list, tuple)):
            return [ids(v) for v in x]
        return x if isinstance(x, (str, int)) else id(x)

    for field in ("outputs", "nodes", "all_nodes", "mode", "uses", "kernels", "members",
                  "inplace", "folded", "epilogues"):
        assert ids(getattr(got, field)) == ids(getattr(want, field)), field
    assert got.mode and got.kernels and got.uses


def test_clear_cache_removes_programs(cache_env):
    _mlp_function()
    assert list(cache_env.glob("*.sgp")) and list(cache_env.glob("*.o"))
    cache.clear_cache()
    assert not list(cache_env.iterdir())
    f, _, _ = _mlp_function()
    assert f.compile_stats["cache"] == "miss" and f.compile_stats["lowered"] is True


def test_program_key_covers_options_and_source(cache_env):
    sig = "some graph"
    key = cache.program_key(sig)
    assert key == cache.program_key(sig) != cache.program_key(sig + " ")
    assert key != cache.program_key(sig, opt_level=2)
    assert key != cache.program_key(sig, loop_unrolling=False)
    assert len(cache.source_fingerprint()) == 64


def test_source_fingerprint_follows_an_edit():
    """An edited source file (a new modification time) changes the fingerprint; the old time
    restores it."""
    import codegen.partition as some_source

    path = some_source.__file__
    st = os.stat(path)
    before = cache.source_fingerprint.__wrapped__()
    try:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        assert cache.source_fingerprint.__wrapped__() != before
    finally:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.source_fingerprint.__wrapped__() == before


def test_code_outside_the_package_is_not_program_cached():
    import types

    from codegen import signature
    from symgraph.graph import Op

    class LocalOp(Op):  # its lowering could change without the source fingerprint changing
        pass

    with pytest.raises(signature.Unsupported):
        signature._check_own_code(types.SimpleNamespace(op=LocalOp()))
    with pytest.raises(signature.Unsupported):
        signature._canon(object())
    assert signature._canon((1, 0.5, None, "a")) == signature._canon([1, 0.5, None, "a"])


def test_a_users_lowering_of_a_package_op_is_not_program_cached(monkeypatch):
    """A lowering rule registered from outside the package for one of its ops could change
    without the source fingerprint changing: such a graph is not keyed; the package's own
    rule (registered, or not yet: a warm start reads no record) is."""
    import symgraph as sg
    from codegen import registry, signature

    x = sg.tensor("x", ("n",))
    node = sg.exp(x).owner
    signature._check_own_code(node)  # the package's rule

    def users_rule(k, node, index):  # defined here, outside the package
        raise NotImplementedError

    monkeypatch.setitem(registry.LOWERINGS, type(node.op), registry.Lowering(inline=users_rule))
    with pytest.raises(signature.Unsupported, match="lowering of"):
        signature._check_own_code(node)


def test_compile_stats_report_every_stage(cache_env):
    f, _, _ = _mlp_function()
    st = f.compile_stats
    for stage in ("rewrite", "analyse", "llvm_init", "signature", "program_load", "lower",
                  "llvm_optimize", "machine_code", "load", "compile_total"):
        assert isinstance(st[stage], float) and st[stage] >= 0.0, stage
    assert st["cache"] == "miss" and st["cache_level"] == "ir" and st["lowered"] is True
    assert st["llvm_optimize"] > 0 and st["machine_code"] > 0 and st["lower"] > 0


FFI_CHILD = """
import json, sys
import numpy as np, symgraph as sg
from codegen.native import jit, llvmffi
assert llvmffi.available()
host = jit.host_target()
x = sg.tensor("x", ("b", 3), "float64")
f = sg.function([x], sg.sum(sg.exp(x) * 2), backend="llvm")  # from the disk cache
assert "llvmlite.binding" not in sys.modules and f.compile_stats["cache"] == "disk"
g = sg.function([x], sg.sum(sg.tanh(x) * 3), backend="llvm")  # compiled: imports llvmlite
import llvmlite.binding as llvm
X = np.arange(6.0).reshape(2, 3)
print(json.dumps({
    "host": [host.triple, host.cpu, host.features, list(host.llvm_version)],
    "llvmlite": [llvm.get_process_triple(), llvm.get_host_cpu_name(),
                 llvm.get_host_cpu_features().flatten(), list(llvm.llvm_version_info)],
    "f": float(f(X)), "g": float(g(X)), "g_stats": g.compile_stats["cache"],
    "ref": [float(np.sum(np.exp(X) * 2)), float(np.sum(np.tanh(X) * 3))],
    "f_again": float(f(X))}))
"""


def test_ffi_loader_matches_llvmlite_and_mixes_with_it(cache_env):
    from codegen.native import llvmffi

    if llvmffi._version() not in llvmffi.SUPPORTED:
        pytest.skip("llvmlite version not supported by codegen.native.llvmffi")
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(cache_env), PYTHONPATH=str(ROOT))
    env.pop("SYMGRAPH_LLVM_FFI", None)
    warm = ("import symgraph as sg\n"
            "x = sg.tensor('x', ('b', 3), 'float64')\n"
            "sg.function([x], sg.sum(sg.exp(x) * 2), backend='llvm')\n")
    subprocess.run([sys.executable, "-c", warm], env=env, check=True, cwd=ROOT)
    out = subprocess.run([sys.executable, "-c", FFI_CHILD], env=env, capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["host"] == res["llvmlite"]  # same key whichever way LLVM was reached
    assert res["g_stats"] == "miss"
    assert res["f"] == pytest.approx(res["ref"][0]) and res["g"] == pytest.approx(res["ref"][1])
    assert res["f_again"] == res["f"]
