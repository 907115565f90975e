"""codegen.registry: one Lowering per op class; a math function named once, in its table row."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symgraph as sg
from codegen.lower import LoweringError  # importing codegen.lower registers every lowering
from codegen.registry import LOWERINGS
from symgraph.graph import Op
from symgraph.ops import elemwise as ew
from symgraph.ops import indexing, linalg, nn, reduce, structure

THIS_FILE = "test_lowering_registry.py"


@pytest.fixture
def table_row():
    """Add rows to the elementwise table for one test, then remove them."""
    added = []

    def add(name, *args, **kwargs):
        added.append(name)
        return ew.scalar_op(name, *args, **kwargs)
    yield add
    for name in added:
        ew.SCALAR_OPS.pop(name, None)
        ew.ELEMWISE.pop(name, None)


def test_every_op_class_has_one_lowering():
    """Every op class of every ``symgraph.ops`` module (found by walking the package, so an
    op family added later is checked too) has a lowering, or a compile would fail."""
    modules = [importlib.import_module(f"symgraph.ops.{info.name}")
               for info in pkgutil.iter_modules(sg.ops.__path__)]
    assert {ew, indexing, linalg, nn, reduce, structure} <= set(modules)
    missing, seen = [], 0
    for module in modules:
        for cls in vars(module).values():
            if inspect.isclass(cls) and issubclass(cls, Op) and cls.__module__ == module.__name__:
                if not cls.__name__.startswith("_") and not inspect.isabstract(cls):
                    seen += 1
                    if cls not in LOWERINGS:
                        missing.append(f"{module.__name__}.{cls.__name__}")
    assert seen > 40 and not missing, missing


def test_an_elementwise_op_is_one_table_row(table_row):
    """value, gradient and lowering from one row naming its libm function (atan)."""
    atan = table_row("atan_test", 1, np.arctan, (lambda i, o, g: g / (1 + i[0] * i[0]),),
                     dtype_rule=ew._to_float, math="atan")
    x = sg.tensor("x", ("n",), "float32")
    y = ew.apply(atan, x)
    f = sg.function([x], [y, sg.grad(sg.sum(y), x)], backend="llvm")
    xv = np.linspace(-3, 3, 37, dtype=np.float32)
    value, grad = f(xv)
    np.testing.assert_allclose(value, np.arctan(xv), rtol=1e-6)
    np.testing.assert_allclose(grad, 1 / (1 + xv * xv), rtol=1e-6)


def test_unknown_math_function_is_a_compile_error_naming_op_and_line(table_row):
    bogus = table_row("bogus_test", 1, np.exp, (lambda i, o, g: g,), math="no_such_function")
    x = sg.tensor("x", (4,))
    y = ew.apply(bogus, x)  # the user's line
    with pytest.raises(LoweringError, match="no_such_function") as err:
        sg.function([x], y, backend="llvm")
    assert "bogus_test" in str(err.value) and THIS_FILE in str(err.value)


# --------------------------------------------------------------------------- facts snapshot
# A warm start reads the records' flags from a snapshot instead of importing the lowering
# modules (codegen.registry, "Warm starts").

ROOT = Path(__file__).resolve().parents[2]


def test_facts_snapshot_round_trips_every_own_record(cache_env):
    from codegen import registry
    from codegen.native import cache

    cache.store_facts(registry.snapshot())
    read = registry._read_snapshot()
    own = {registry._class_name(c): rec for c, rec in LOWERINGS.items()
           if registry.own_record(c, rec)}
    assert len(own) >= 40 and set(read) == set(own)
    for name, rec in own.items():
        got = read[name]
        for flag in registry._FLAGS:
            assert getattr(got, flag) == getattr(rec, flag), (name, flag)
        for rule in registry._RULES:
            assert (getattr(got, rule) is None) == (getattr(rec, rule) is None), (name, rule)
            if getattr(got, rule) is not None:
                with pytest.raises(RuntimeError, match="snapshot"):
                    getattr(got, rule)(None, None)


def test_a_damaged_or_foreign_snapshot_is_ignored(cache_env):
    from codegen import registry
    from codegen.native import cache

    cache._facts_path().parent.mkdir(parents=True, exist_ok=True)
    cache._facts_path().write_bytes(b"\x00not marshal")
    assert registry._read_snapshot() == {}
    cache.store_facts({**registry.snapshot(), "flags": ("cheap",)})  # another record layout
    assert registry._read_snapshot() == {}
    cache.clear_cache(memory=False, disk=True)
    assert not cache._facts_path().exists()


SNAPSHOT_CHILD = """
import json, sys
import numpy as np, symgraph as sg
from codegen import backend, fusion
seen = {}
analyse = backend.analyse
def watched(*a, **k):
    an = analyse(*a, **k)
    seen.setdefault("lower_at_analysis", "codegen.lower" in sys.modules)  # (the first one)
    return an
backend.analyse = watched
act = sys.argv[1]
x = sg.tensor("x", ("batch", 5), "float32"); y = sg.tensor("y", ("batch",), "int64")
w = sg.shared(np.linspace(-1, 1, 15).reshape(5, 3).astype("float32"), name="w")
h = getattr(sg.nn, act)(x @ w)
loss = sg.nn.cross_entropy(h.T.T * 2.0 + sg.sum(h, axis=1, keepdims=True), y)
gw = sg.grad(loss, w)
X = np.linspace(-2, 2, 20).reshape(4, 5).astype("float32"); Y = np.array([0, 2, 1, 2])
out = {}
for name in ("llvm", "numpy"):
    f = sg.function([x, y], [loss, gw], backend=name)
    out[name] = [np.asarray(v).tolist() for v in f(X, Y)]
    if name == "llvm":
        out["lowered"] = f.compile_stats["lowered"]
print(json.dumps(dict(out, **seen)))
"""


def _snapshot_child(cache_dir: Path, act: str) -> dict:
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", SNAPSHOT_CHILD, act], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_a_new_process_analyses_with_the_snapshot_and_lowers_after(cache_env):
    first = _snapshot_child(cache_env, "relu")  # no snapshot yet: imports the lowering
    assert first["lower_at_analysis"] is True and first["lowered"] is True
    assert list(cache_env.glob("facts-*.sgf"))
    again = _snapshot_child(cache_env, "relu")  # a program cache hit: no lowering at all,
    assert "lower_at_analysis" not in again and again["lowered"] is False  # no analysis
    other = _snapshot_child(cache_env, "tanh")  # a miss: analysed from the snapshot, lowered
    assert other["lower_at_analysis"] is False and other["lowered"] is True
    for run in (first, again, other):
        for got, want in zip(run["llvm"], run["numpy"]):
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    assert again["llvm"] == first["llvm"]


def test_records_registered_before_the_lowerings_load_stay_in_force():
    code = """
from codegen import registry
from symgraph.ops.elemwise import Elemwise
def mine(k, node, index):
    raise NotImplementedError
registry.register_lowering(Elemwise, registry.Lowering(inline=mine, fuses="output"))
registry.load_lowerings()
import sys
assert "codegen.lower" in sys.modules
print(registry.LOWERINGS[Elemwise].inline is mine)
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "True"


THREADS_CHILD = """
import sys, threading
import numpy as np, symgraph as sg
results, errors = {}, []
def compile_and_run(act):
    try:
        x = sg.tensor("x", ("n", 4), "float32")
        w = sg.shared(np.linspace(-1, 1, 12).reshape(4, 3).astype("float32"))
        out = sg.sum(getattr(sg.nn, act)(x @ w), axis=1)
        xv = np.linspace(-2, 2, 20).reshape(5, 4).astype("float32")
        got = sg.function([x], out, backend="llvm")(xv)
        want = sg.function([x], out, backend="numpy")(xv)
        results[act] = bool(np.allclose(got, want, rtol=1e-5, atol=1e-6))
    except Exception as err:  # noqa: BLE001
        errors.append(repr(err))
threads = [threading.Thread(target=compile_and_run, args=(a,))
           for a in ("relu", "tanh", "sigmoid", "softplus")]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(errors or sorted(results.items()), "codegen.lower" in sys.modules)
"""


def test_threads_compiling_at_once_in_a_new_process(cache_env):
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(cache_env), PYTHONPATH=str(ROOT))
    # first without the facts snapshot and the programs (lowered), then with both (not)
    for lowered in (True, False):
        out = subprocess.run([sys.executable, "-c", THREADS_CHILD], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == ("[('relu', True), ('sigmoid', True), ('softplus', True), "
                                      f"('tanh', True)] {lowered}"), out.stdout + out.stderr


GEMM = "call void @sg_cblas_sgemm"


def _product():
    """``x @ w`` for (4, 8) @ (8, 6) float32, checked against numpy: small enough for the
    generated loop under the source's settings."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(s).astype("float32") for s in ((4, 8), (8, 6)))
    x = sg.tensor("x", (4, 8), "float32")
    w = sg.tensor("w", (8, 6), "float32")
    f = sg.function([x, w], x @ w)
    np.testing.assert_allclose(f(a, b), a @ b, rtol=1e-5, atol=1e-5)
    return f


def test_a_setting_changed_at_run_time_is_a_program_of_its_own(cache_env, monkeypatch):
    """The program cache keys on the lowering's settings as they are when compiling: a
    product forced through BLAS is not taken from the cache for the loop compiled before
    with the source's settings, and that one is found again once they are back."""
    from codegen import small_gemm

    build, gemm = _product, GEMM
    loop = build()
    assert loop.compile_stats["lowered"] is True and gemm not in loop.program.ir_text
    monkeypatch.setitem(small_gemm.SMALL_GEMM_WORK, ("float32", False), 0)  # never the loop
    blas = build()
    assert blas.compile_stats["lowered"] is True and gemm in blas.program.ir_text
    monkeypatch.undo()
    again = build()
    assert again.compile_stats["lowered"] is False  # the loop's program, from the cache
    code = again.program.module.object_code
    assert code == loop.program.module.object_code != blas.program.module.object_code


def test_a_cached_program_is_lowered_again_only_under_its_own_settings(cache_env, monkeypatch):
    """``llvm_ir()`` of a program taken from the cache lowers it again: under settings
    other than the ones it was compiled with, that would show (and profile) other code
    than it runs, so it is refused until they are back."""
    from codegen import small_gemm

    monkeypatch.setitem(small_gemm.SMALL_GEMM_WORK, ("float32", False), 0)  # BLAS
    _product()
    hit = _product()
    assert hit.compile_stats["lowered"] is False
    monkeypatch.undo()
    assert GEMM in hit.llvm_ir()  # the optimised IR this process compiled: no lowering
    with pytest.raises(RuntimeError, match="other lowering settings"):
        hit.llvm_ir(optimized=False)
    monkeypatch.setitem(small_gemm.SMALL_GEMM_WORK, ("float32", False), 0)
    assert GEMM in hit.llvm_ir(optimized=False)
