"""Big elementwise loops on OpenBLAS's threads (codegen/native/parallel.py,
codegen/lower_elementwise.py's ``_lower_parallel``).

Oracles: for the runtime, the chunks a recording part function saw (their bounds and the
thread that ran each: ``pthread_self``, which CPython's ``threading.get_ident`` also returns);
for compiled graphs, the same graph compiled with ``SYMGRAPH_THREADS=1`` (the serial code,
bit for bit) and numpy. ``SYMGRAPH_THREADS_MIN`` lowers the threshold so that sizes stay small.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading

import numpy as np
import pytest
from _helpers import blas_threads, cfunc, run_fresh

import symgraph as sg
from codegen.native import jit, parallel

pytestmark = pytest.mark.skipif(not parallel.available(),
                                reason="numpy's BLAS is not a pthreads OpenBLAS")

MIN = 4096


@pytest.fixture(autouse=True)
def _fresh_cache(cache_env):
    """A cache of the test's own: each test compiles (and lowers) its graphs itself."""
    yield


# ------------------------------------------------------------------------------ the runtime
_RECORDER = None


def recorder():
    """``run(out, n, align)``: ``sg_parallel_for`` over ``[0, n)`` with a part function that
    appends ``(lo, hi, pthread_self())`` to ``out[1:]`` (``out[0]``: records so far)."""
    global _RECORDER
    if _RECORDER is None:
        libc = ctypes.CDLL(None)
        jit.add_symbol("sg_test_pthread_self",
                       ctypes.cast(libc.pthread_self, ctypes.c_void_p).value)
        ir = parallel.declaration() + f"""
declare i64 @sg_test_pthread_self()

define internal void @record(ptr %out, i64 %lo, i64 %hi) {{
entry:
  %k = atomicrmw add ptr %out, i64 1 seq_cst
  %base = mul i64 %k, 3
  %at = add i64 %base, 1
  %p0 = getelementptr inbounds i64, ptr %out, i64 %at
  store i64 %lo, ptr %p0
  %p1 = getelementptr inbounds i64, ptr %p0, i64 1
  store i64 %hi, ptr %p1
  %tid = call i64 @sg_test_pthread_self()
  %p2 = getelementptr inbounds i64, ptr %p0, i64 2
  store i64 %tid, ptr %p2
  ret void
}}

define void @run(ptr %out, i64 %n, i64 %align, i1 %big) {{
entry:
  call void @{parallel.DISPATCH}(ptr @record, ptr %out, i64 %n, i64 %align, i1 %big)
  ret void
}}
"""
        module = jit.compile_module(ir, opt_level=2)
        _RECORDER = (module, cfunc(module.address("run"), None, ctypes.c_void_p,
                                   ctypes.c_int64, ctypes.c_int64, ctypes.c_bool))
    return _RECORDER[1]


def chunks(n: int, align: int, big: bool = True) -> list[tuple[int, int, int]]:
    out = np.zeros(1 + 3 * (parallel.MAX_THREADS + 1), np.int64)
    recorder()(out.ctypes.data, n, align, big)
    got = [tuple(int(v) for v in out[1 + 3 * k: 4 + 3 * k]) for k in range(out[0])]
    return sorted(got)


def check_cover(got, n: int, align: int) -> None:
    bounds = [(lo, hi) for lo, hi, _ in got]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    for (_, hi), (lo, _) in zip(bounds, bounds[1:]):
        assert hi == lo  # disjoint, no gap
    assert all(lo % align == 0 for lo, _ in bounds)


@pytest.mark.parametrize("n,align", [(10_000, 1024), (2048, 1024), (1500, 1024), (7, 1),
                                     (1_000_003, 1024)])
def test_two_chunks_on_two_threads(n, align):
    me = threading.get_ident()
    with blas_threads(2):
        got = chunks(n, align)
    check_cover(got, n, align)
    assert len(got) == 2
    first = [c for c in got if c[0] == 0][0]
    assert first[2] == me  # the first chunk runs on the caller ...
    assert [c for c in got if c[0] != 0][0][2] != me  # ... the other on OpenBLAS's worker


def test_serial_below_two_blocks_and_when_blas_has_one_thread():
    me = threading.get_ident()
    for n, align in [(1024, 1024), (1000, 1024), (0, 1024), (1, 1)]:
        got = chunks(n, align)
        assert got == [(0, n, me)]
    with blas_threads(2):  # a symbolic loop found small at run time
        assert chunks(100_000, 1024, big=False) == [(0, 100_000, me)]
    with blas_threads(1):  # e.g. threadpoolctl's limit: every loop stays on the caller
        assert chunks(100_000, 1024) == [(0, 100_000, me)]


def test_more_blas_threads_more_chunks():
    with blas_threads(3):
        got = chunks(5 * 1024 + 5, 1024)  # 6 blocks over 3 threads: 2 blocks each
        assert [(lo, hi) for lo, hi, _ in got] == [(0, 2048), (2048, 4096), (4096, 5125)]
        assert len({tid for _, _, tid in got}) == 3
        got = chunks(2 * 1024, 1024)  # 2 blocks: only 2 threads
        assert len(got) == 2


# ------------------------------------------------------------------------ compiled graphs
@pytest.fixture
def compiled(monkeypatch):
    """``compiled(build, on)``: ``build()`` compiled with split loops (from ``MIN`` elements)
    or with ``SYMGRAPH_THREADS=1``."""
    monkeypatch.setenv("SYMGRAPH_THREADS_MIN", str(MIN))

    def build_with(build, on: bool):
        monkeypatch.setenv("SYMGRAPH_THREADS", "2" if on else "1")
        return build()

    return build_with


def uses_runtime(f) -> bool:
    return parallel.DISPATCH in f.program.ir_text


def adam(shape, dtype, with_exp=True):
    """An Adam update, m/v/p in place, and ``exp(g) * 2`` (a libmvec call, in the same loop)
    or ``g * 2``; returns (function, shared variables, gradient)."""
    rng = np.random.default_rng(int(np.prod(shape)))
    p = sg.shared(rng.standard_normal(shape).astype(dtype), name="p")
    m = sg.shared(rng.standard_normal(shape).astype(dtype) * 0.1, name="m")
    v = sg.shared(rng.random(shape).astype(dtype) * 0.1, name="v")
    g = sg.tensor("g", shape=shape, dtype=dtype)
    c = np.dtype(dtype).type
    m1 = c(0.9) * m + c(0.1) * g
    v1 = c(0.999) * v + c(0.001) * g * g
    new_p = p - c(1e-3) * m1 / (sg.sqrt(v1) / sg.sqrt(c(0.5)) + c(1e-8))
    out = sg.exp(g) * 2 if with_exp else g * 2
    f = sg.function([g], [out], updates={m: m1, v: v1, p: new_p})
    return f, (p, m, v), rng.standard_normal(shape).astype(dtype)


def run_twice(f, shared, g):
    outs = [f(g)[0], f(g)[0]]
    return outs + [s.get_value() for s in shared]


def numpy_twice(shared, g, with_exp=True):
    p, m, v = (s.get_value() for s in shared)
    c = g.dtype.type
    for _ in range(2):
        m = c(0.9) * m + c(0.1) * g
        v = c(0.999) * v + c(0.001) * g * g
        p = p - c(1e-3) * m / (np.sqrt(v) / np.sqrt(c(0.5)) + c(1e-8))
    return [np.exp(g) * 2 if with_exp else g * 2] * 2 + [p, m, v]


def assert_same(a, b):
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y, equal_nan=True), np.flatnonzero(x != y)[:10]


@pytest.mark.parametrize("with_exp", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [MIN - 1, MIN, 5 * 1024, 100 * 1024, 100_003])
def test_bit_for_bit_with_serial_kernel(dtype, n, with_exp, compiled):
    f_par, sh_par, g = compiled(lambda: adam((n,), dtype, with_exp), on=True)
    f_ser, sh_ser, _ = compiled(lambda: adam((n,), dtype, with_exp), on=False)
    want = numpy_twice(sh_ser, g, with_exp)
    assert not uses_runtime(f_ser)
    # a static length that is not a multiple of ALIGN keeps a loop calling exp serial (its
    # remainder is vectorised knowing the length); +-*/ and sqrt are split at any length
    assert uses_runtime(f_par) == (n >= MIN and (n % parallel.ALIGN == 0 or not with_exp))
    got_par, got_ser = run_twice(f_par, sh_par, g), run_twice(f_ser, sh_ser, g)
    assert_same(got_par, got_ser)
    tol = {"float32": 2e-6, "float64": 1e-13}[dtype]
    for x, y in zip(got_par, want):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)


@pytest.mark.parametrize("batch", [1, 7, 110, 111, 112, 300])
def test_symbolic_shape_splits_at_run_time(batch, compiled):
    """(batch, 37): from 111 rows (4107 elements) the loop is split, below it runs serially;
    a bias broadcast over rows is a loop nest split by whole rows."""
    def build():
        x = sg.tensor("x", shape=("batch", 37), dtype="float32")
        b = sg.shared(np.linspace(-1, 1, 37, dtype=np.float32), name="b")
        return sg.function([x], [sg.nn.relu(x + b) * 3, sg.sqrt(x * x + b)])

    f_par, f_ser = compiled(build, True), compiled(build, False)
    assert uses_runtime(f_par) and not uses_runtime(f_ser)
    x = np.random.default_rng(batch).standard_normal((batch, 37)).astype(np.float32)
    assert_same(f_par(x), f_ser(x))
    b = np.linspace(-1, 1, 37, dtype=np.float32)
    np.testing.assert_allclose(f_par(x)[0], np.maximum(x + b, 0) * 3, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_flush_denormals_holds_in_every_chunk(compiled, dtype):
    """flush_denormals=True: every element of a split loop whose product is subnormal is 0,
    as in the serial loop, and a subnormal input reads as 0 in every chunk. OpenBLAS's worker
    kept its own MXCSR, so the worker's half of the loop kept the subnormals (131,072 of
    262,144 products) and the split changed the result."""
    n = 16 * MIN
    tiny = {"float32": 1e-30, "float64": 1e-300}[dtype]

    def build():
        x = sg.tensor("x", shape=(n,), dtype=dtype)
        return sg.function([x], [x * np.dtype(dtype).type(tiny), x * 3.0],
                           flush_denormals=True)

    f_par, f_ser = compiled(build, True), compiled(build, False)
    assert uses_runtime(f_par)
    x = np.full(n, 1e-10 if dtype == "float32" else 1e-20, dtype)
    sub = np.full(n, np.finfo(dtype).smallest_normal / 4, dtype)
    with blas_threads(2):
        product, _ = f_par(x)
        _, passed = f_par(sub)
    assert np.count_nonzero(product) == 0 and np.count_nonzero(passed) == 0
    assert_same(f_par(x), f_ser(x))
    assert np.count_nonzero(x * np.dtype(dtype).type(tiny)) == n  # numpy keeps them: a real test


def test_failed_call_changes_no_parameter(compiled):
    """An out-of-range label fails the step before the big in-place updates run."""
    def build():
        W = sg.shared(np.ones((64, 128), np.float32), name="W")
        V = sg.shared(np.ones((64, 128), np.float32), name="V")  # momentum: not a gemm
        x = sg.tensor("x", shape=(8, 64), dtype="float32")
        y = sg.tensor("y", shape=(8,), dtype="int64")
        loss = sg.nn.cross_entropy(x @ W, y)
        (g,) = sg.grad(loss, [W])
        V1 = 0.9 * V + g
        return sg.function([x, y], loss, updates={V: V1, W: W - 0.1 * V1}), W

    (f, W) = compiled(build, True)
    assert uses_runtime(f)
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    before = W.get_value().copy()
    with pytest.raises(IndexError):
        f(x, np.array([0, 1, 2, 3, 4, 5, 6, 500]))
    assert np.array_equal(W.get_value(), before)
    f(x, np.arange(8))
    assert not np.array_equal(W.get_value(), before)


def test_several_python_threads_and_numpy_gemms_at_once(compiled):
    """Four Python threads call split loops while numpy runs threaded gemms: OpenBLAS's
    queue lock serialises the hand-outs; every result is the serial one."""
    f, shared, g = compiled(lambda: adam((64 * 1024,), "float32"), on=True)
    fs, shared_s, _ = compiled(lambda: adam((64 * 1024,), "float32"), on=False)
    want = fs(g)[0]
    a = np.random.default_rng(1).standard_normal((300, 300))
    errors: list[BaseException] = []

    def call_f():
        try:
            for _ in range(50):
                assert np.array_equal(f(g)[0], want)
        except BaseException as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    def gemm():
        try:
            for _ in range(20):
                np.testing.assert_allclose(a @ a.T, (a @ a.T).T, rtol=1e-12, atol=1e-9)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    workers = [threading.Thread(target=call_f) for _ in range(4)]
    workers += [threading.Thread(target=gemm) for _ in range(2)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in workers) and not errors, errors


def test_fork_child_runs_split_loops(tmp_path):
    """OpenBLAS stops its threads before a fork and restarts them on the next call, in the
    parent and in the child: a child calls the compiled step and gets the serial result."""
    script = f"""
import os, sys
import numpy as np
sys.path.insert(0, {os.path.dirname(__file__)!r})
os.environ["SYMGRAPH_THREADS_MIN"] = "{MIN}"
from test_parallel import adam, uses_runtime
f, shared, g = adam((50 * 1024,), "float32")
assert uses_runtime(f)
want = f(g)[0]
pid = os.fork()
if pid == 0:
    ok = np.array_equal(f(g)[0], want) and np.array_equal(f(g)[0], want)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert np.array_equal(f(g)[0], want)
print("ok")
"""
    assert run_fresh(script, tmp_path / "cache") == "ok"


def test_threads_off_by_env_and_in_cache_key(monkeypatch):
    monkeypatch.setenv("SYMGRAPH_THREADS", "1")
    assert not parallel.enabled() and parallel.split_minimum() is None
    off = parallel.codegen_key(parallel.split_minimum())
    monkeypatch.setenv("SYMGRAPH_THREADS", "2")
    monkeypatch.setenv("SYMGRAPH_THREADS_MIN", "5000")
    assert parallel.enabled() and parallel.split_minimum() == 5000
    on = parallel.codegen_key(parallel.split_minimum())
    assert on != off != parallel.codegen_key(6000)
    monkeypatch.setenv("SYMGRAPH_THREADS_MIN", "abc")  # (was int()'s bare message)
    with pytest.raises(ValueError, match="SYMGRAPH_THREADS_MIN='abc': expected a number"):
        parallel.split_minimum()


def test_cached_program_lowered_again_with_its_own_setting(compiled, monkeypatch):
    """A program loaded from the cache is lowered only when ``ir_text`` is asked for; that
    text is the code the program runs even if ``SYMGRAPH_THREADS`` changed since."""
    f1, _, g = compiled(lambda: adam((5 * 1024,), "float32", False), on=True)
    f2, sh2, _ = compiled(lambda: adam((5 * 1024,), "float32", False), on=True)
    assert f2.compile_stats["lowered"] is False
    monkeypatch.setenv("SYMGRAPH_THREADS", "1")
    assert uses_runtime(f2) and uses_runtime(f1)
    f3, sh3, _ = compiled(lambda: adam((5 * 1024,), "float32", False), on=False)
    assert f3.compile_stats["lowered"] is True and not uses_runtime(f3)
    monkeypatch.setenv("SYMGRAPH_THREADS", "2")
    assert not uses_runtime(f3)
    want = numpy_twice(sh3, g, False)
    got = run_twice(f2, sh2, g)
    assert_same(got, run_twice(f3, sh3, g))
    for x, y in zip(got, want):
        np.testing.assert_allclose(x, y, rtol=2e-6, atol=2e-6)


def test_runtime_compiled_once_per_machine_and_bound_on_load(tmp_path):
    """Kernels only declare ``sg_parallel_for``; the runtime is a module of its own in the disk
    cache. A first process compiles both; a second loads the program without lowering, and
    the runtime from the disk: its split loops give numpy's results."""
    script = f"""
import json, os, sys
import numpy as np
sys.path.insert(0, {os.path.dirname(__file__)!r})
os.environ["SYMGRAPH_THREADS_MIN"] = "{MIN}"
from test_parallel import adam, numpy_twice, run_twice
from codegen.native import parallel
f, shared, g = adam((50 * 1024,), "float32", with_exp=False)
want = numpy_twice(shared, g, with_exp=False)
got = run_twice(f, shared, g)
ok = all(np.allclose(a, b, rtol=2e-6, atol=2e-6) for a, b in zip(got, want))
print(json.dumps(dict(ok=ok, lowered=f.compile_stats["lowered"],
                      runtime=parallel._runtime[0].stats.get("cache"),
                      declared_only="define void @sg_parallel_for" not in f.program.ir_text
                      and parallel.declaration() in f.program.ir_text)))
"""
    first, second = (json.loads(run_fresh(script, tmp_path / "cache")) for _ in range(2))
    assert first == dict(ok=True, lowered=True, runtime="miss", declared_only=True), first
    assert second == dict(ok=True, lowered=False, runtime="disk", declared_only=True), second


def test_threads_loading_the_runtime_at_once(tmp_path):
    """Four threads of a new process compile different graphs with split loops at once, so
    the first loads race to bind the runtime: every one gets numpy's results (no deadlock
    between the cache's lock and the binder, no call through an unbound name)."""
    script = f"""
import os, sys, threading
import numpy as np
sys.path.insert(0, {os.path.dirname(__file__)!r})
os.environ["SYMGRAPH_THREADS_MIN"] = "{MIN}"
from test_parallel import adam, numpy_twice, run_twice
from codegen.native import parallel
barrier, errors = threading.Barrier(4), []

def work(i):
    try:
        barrier.wait()
        f, shared, g = adam(((40 + i) * 1024,), "float32", with_exp=False)
        want = numpy_twice(shared, g, with_exp=False)
        got = run_twice(f, shared, g)
        if not all(np.allclose(a, b, rtol=2e-6, atol=2e-6) for a, b in zip(got, want)):
            errors.append(i)
    except BaseException as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=100)
assert not any(t.is_alive() for t in threads), "deadlock"
assert not errors, errors
assert len(parallel._runtime) >= 1
print("ok")
"""
    assert run_fresh(script, tmp_path / "cache", timeout=150) == "ok"
