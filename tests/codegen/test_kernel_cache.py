"""Kernel bodies compiled for one program are reused by the next (``codegen.kernel_cache``):
a changed model compiles only the bodies no earlier program compiled, in this process or
another, and computes what a compile from an empty cache computes, bit for bit, and what
the numpy reference computes."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from _helpers import run_fresh

import symgraph as sg
from codegen import partition
from codegen.native import cache, jit, parallel


@pytest.fixture(autouse=True)
def _split(monkeypatch):
    """Compile body by body even a small step, on two threads."""
    monkeypatch.setenv("SYMGRAPH_COMPILE_THREADS", "2")
    monkeypatch.setattr(partition, "MIN_SPLIT_LINES", 0)


def _step(widths=(12, 16, 5), momentum=False, act="relu", backend="llvm"):
    """An MLP's training step (ReLU or tanh, cross-entropy), SGD or SGD with momentum."""
    rng = np.random.default_rng(len(widths))
    x = sg.tensor("x", ("batch", widths[0]), "float32")
    y = sg.tensor("y", ("batch",), "int64")
    params, h = [], x
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        W = sg.shared((rng.normal(size=(a, b)) / np.sqrt(a)).astype("float32"), name=f"W{i}")
        c = sg.shared(np.full(b, 0.1, "float32"), name=f"b{i}")
        params += [W, c]
        h = h @ W + c
        if i < len(widths) - 2:
            h = sg.nn.relu(h) if act == "relu" else sg.tanh(h)
    loss = sg.nn.cross_entropy(sg.nn.log_softmax(h, axis=-1), y)
    grads = sg.grad(loss, params)
    updates = {}
    for p, g in zip(params, grads):
        if momentum:
            v = sg.shared(np.zeros(p.get_value().shape, "float32"), name=f"v_{p.name}")
            updates[v] = 0.9 * v + g
            updates[p] = p - 0.05 * updates[v]
        else:
            updates[p] = p - 0.05 * g
    f = sg.function([x, y], loss, updates=updates, backend=backend)
    X = rng.normal(size=(9, widths[0])).astype("float32")
    Y = rng.integers(0, widths[-1], 9)
    return f, (X, Y), params


def _train(f, data, params, steps=3):
    losses = [float(f(*data)) for _ in range(steps)]
    return losses, [p.get_value() for p in params]


def _symbols(f) -> set[str]:
    return {k.function for k in f.kernels}


def _compiled_bodies(monkeypatch) -> list[str]:
    """Names of the kernel bodies LLVM is asked to compile from now on."""
    seen: list[str] = []
    compile_objects = jit.compile_objects

    def counting(parts, **kw):
        for text in parts:
            seen.extend(re.findall(r"^define weak_odr i32 @(k_[0-9a-f]+)\(", text, re.M))
        return compile_objects(parts, **kw)

    monkeypatch.setattr(jit, "compile_objects", counting)
    return seen


VARIANTS = [dict(widths=(12, 24, 5)), dict(momentum=True), dict(widths=(12, 16, 8, 5)),
            dict(act="tanh")]


# tanh: a libmvec function more, declared in the header and listed in @llvm.compiler.used
@pytest.mark.parametrize("variant", VARIANTS, ids=["width", "momentum", "depth", "tanh"])
def test_a_changed_model_compiles_only_its_new_bodies(cache_env, tmp_path, monkeypatch,
                                                       variant):
    base, _, _ = _step()
    assert base.compile_stats["bodies_compiled"] == base.compile_stats["bodies"] > 0
    compiled = _compiled_bodies(monkeypatch)
    f, data, params = _step(**variant)
    new = _symbols(f) - _symbols(base)
    st = f.compile_stats
    assert st["cache"] == "miss" and st["bodies"] == len(_symbols(f))
    assert 0 < st["bodies_compiled"] == len(new) < st["bodies"]  # most bodies reused
    assert sorted(compiled) == sorted(new)  # LLVM saw exactly the new ones
    got = _train(f, data, params)
    # an empty cache compiles everything: the same code, so the same bits
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path / "empty"))
    cache.clear_cache(memory=True, disk=False)
    fresh, data2, params2 = _step(**variant)
    assert fresh.compile_stats["bodies_compiled"] == fresh.compile_stats["bodies"]
    want = _train(fresh, data2, params2)
    assert got[0] == want[0]
    for a, b in zip(got[1], want[1]):
        np.testing.assert_array_equal(a, b)
    ref, data3, params3 = _step(**variant, backend="numpy")
    ref_losses, ref_params = _train(ref, data3, params3)
    np.testing.assert_allclose(got[0], ref_losses, rtol=1e-5)
    for a, b in zip(got[1], ref_params):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


CHILD = """
import json, sys
sys.path.insert(0, "tests/codegen")
from codegen import partition
partition.MIN_SPLIT_LINES = 0
import test_kernel_cache as t
f, data, params = t._step(**json.loads(sys.argv[1]))
losses, _ = t._train(f, data, params)
print(json.dumps({"stats": {k: f.compile_stats[k] for k in ("bodies", "bodies_compiled", "cache")},
                  "symbols": sorted(t._symbols(f)), "losses": losses}))
"""


def test_another_process_reuses_the_bodies_on_disk(cache_env):
    def child(variant):
        return json.loads(run_fresh(CHILD.replace("sys.argv[1]", repr(json.dumps(variant))),
                                    cache_env))

    base = child({})
    assert base["stats"]["bodies_compiled"] == base["stats"]["bodies"]
    changed = child({"momentum": True})
    new = set(changed["symbols"]) - set(base["symbols"])
    assert 0 < changed["stats"]["bodies_compiled"] == len(new) < changed["stats"]["bodies"]
    assert len(list(cache_env.glob("*.sgb"))) == len(set(base["symbols"]) | new)
    again = child({"momentum": True})  # the same program: the program cache
    assert again["stats"]["bodies_compiled"] is None and again["losses"] == changed["losses"]


def _index(cache_dir) -> dict[str, str]:
    """``{index file: key of the object file it names}`` of the bodies on disk."""
    return {path.name: path.read_bytes()[32:].decode() for path in cache_dir.glob("*.sgb")}


def test_a_body_defined_by_two_loaded_objects_is_linked_once(cache_env, monkeypatch):
    """A lost index entry: its body is compiled again, while the object file that holds it
    is loaded for the other bodies in it -- two definitions of one weak_odr body in one
    engine, the first serving."""
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(cache_env.parent / "elsewhere"))
    shared = _symbols(_step(momentum=True)[0])  # the changed step's bodies ...
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(cache_env))
    cache.clear_cache(memory=True, disk=False)
    base, _, _ = _step()
    shared &= _symbols(base)  # ... that the first step has too
    keys = base.program.module.stats["body_keys"]
    index = _index(cache_env)
    lost = next(s for s in sorted(shared)
                if sum(o == index[f"{keys[s]}.sgb"] for o in index.values()) >= 2)
    obj = index[f"{keys[lost]}.sgb"]  # a file holding more bodies than the lost one
    (cache_env / f"{keys[lost]}.sgb").unlink()
    cache.clear_cache(memory=True, disk=False)
    compiled = _compiled_bodies(monkeypatch)
    f, data, params = _step(momentum=True)
    assert set(compiled) & _symbols(base) == {lost}
    assert f.compile_stats["bodies_compiled"] == len(_symbols(f) - _symbols(base)) + 1
    loaded = jit.unpack_objects(f.program.module.object_code)
    assert cache.read_object(obj) in loaded  # the old definition is loaded too
    assert sum(lost.encode() in code for code in loaded) >= 2
    got = _train(f, data, params)
    ref, data2, params2 = _step(momentum=True, backend="numpy")
    np.testing.assert_allclose(got[0], _train(ref, data2, params2)[0], rtol=1e-5)


def test_a_lost_index_is_written_again_from_the_object_files(cache_env):
    """The same step with its index and program files gone: its modules are found by their
    text, nothing is compiled, and the index is back for the next program."""
    first, data, params = _step()
    count = len(_index(cache_env))
    for path in [*cache_env.glob("*.sgb"), *cache_env.glob("*.sgp")]:
        path.unlink()
    cache.clear_cache(memory=True, disk=False)
    f, data, params = _step()
    st = f.compile_stats
    assert (st["modules"], st["bodies_compiled"], st["cache"]) == (0, 0, "disk")
    assert len(_index(cache_env)) == count > 0
    cache.clear_cache(memory=True, disk=True)
    assert not list(cache_env.glob("*.sgb"))


@pytest.mark.parametrize("damage", ["corrupt object", "missing object", "corrupt index"])
def test_a_damaged_cache_file_is_compiled_again(cache_env, monkeypatch, damage):
    _step()
    index = _index(cache_env)
    assert index
    if damage == "corrupt index":
        for name in index:
            path = cache_env / name
            path.write_bytes(path.read_bytes()[:-1] + b"x")  # (not a hex digit)
    for key in set(index.values()) if "object" in damage else ():
        path = cache_env / f"{key}.o"
        if damage == "corrupt object":
            path.write_bytes(path.read_bytes()[:40] + b"\0" * 64)
        else:
            path.unlink()
    cache.clear_cache(memory=True, disk=False)
    f, data, params = _step(momentum=True)
    assert f.compile_stats["bodies_compiled"] == f.compile_stats["bodies"]
    got = _train(f, data, params)
    ref, data2, params2 = _step(momentum=True, backend="numpy")
    np.testing.assert_allclose(got[0], _train(ref, data2, params2)[0], rtol=1e-5)


PARALLEL_CHILD = """
import json, sys
sys.path.insert(0, "tests/codegen")
from codegen import partition
from codegen.native import parallel
partition.MIN_SPLIT_LINES = 0
if sys.argv[1] == "without":  # numpy's BLAS here is not a pthreads OpenBLAS
    parallel._entry_points = lambda: None
import test_kernel_cache as t
f, data, params = t._step(**json.loads(sys.argv[2]))
losses, _ = t._train(f, data, params)
print(json.dumps({"parallel": b"sg_parallel_for" in f.program.module.object_code,
                  "compiled": f.compile_stats["bodies_compiled"], "losses": losses}))
"""


def test_bodies_that_need_what_this_process_lacks_are_not_loaded(cache_env, monkeypatch):
    """Another process (loops split on OpenBLAS's threads) filled the cache; here OpenBLAS
    has no threads to lend.  Object files whose other bodies call the parallel runtime are
    not loaded (its binder would refuse them): their bodies are compiled again, serially."""
    if parallel.split_minimum() is None:
        pytest.skip("no parallel loops here to fill the cache with")
    monkeypatch.setenv("SYMGRAPH_THREADS_MIN", "64")  # split even these small loops

    def child(where, variant):
        script = PARALLEL_CHILD.replace("sys.argv[1]", repr(where)).replace(
            "sys.argv[2]", repr(json.dumps(variant)))
        return json.loads(run_fresh(script, cache_env))

    filled = child("with", {})
    assert filled["parallel"]
    got = child("without", {"momentum": True})
    assert not got["parallel"] and got["compiled"] > 0
    ref, data, params = _step(momentum=True, backend="numpy")
    np.testing.assert_allclose(got["losses"], _train(ref, data, params)[0], rtol=1e-5)


def test_ir_and_assembly_of_a_program_assembled_from_cached_bodies(cache_env):
    _step()
    f, data, params = _step(momentum=True)
    assert 0 < f.compile_stats["bodies_compiled"] < f.compile_stats["bodies"]
    ir = f.llvm_ir()  # some bodies were not compiled here: the lowering's IR
    assert ir == f.program.ir_text
    for symbol in _symbols(f):
        assert len(re.findall(rf"^define weak_odr i32 @{symbol}\(", ir, re.M)) == 1
    asm = f.asm()
    assert "sg_step:" in asm and all(f"{s}:" in asm for s in _symbols(f))


def test_a_body_is_keyed_with_the_declarations_it_calls_and_no_others():
    from codegen.kernel_cache import Body, _key_headers

    attrs = "!0 = !{}\nattributes #0 = { nounwind }"
    decl_exp = "declare float @sg_expf(float) nounwind willreturn memory(none)"
    decl_par = "declare void @sg_parallel_for(ptr, ptr, i64, i64, i1) nounwind"
    calls = Body("k_1", "define internal i32 @k_1(ptr %p) #0 {\n  %e = call float "
                 "@sg_expf(float 1.0) #3\n  ret i32 0\n}\nattributes #3 = { "
                 '"vector-function-abi-variant"="_ZGV_LLVM_N8v_sg_expf(_ZGVdN8v_expf)" }',
                 ["ptr"])
    decl_vec = "declare <8 x float> @_ZGVdN8v_expf(<8 x float>) nounwind"
    used = "@llvm.compiler.used = appending global [1 x ptr] [ptr @_ZGVdN8v_expf]"
    plain = Body("k_2", "define internal i32 @k_2(ptr %p) #0 {\n  ret i32 0\n}", ["ptr"])
    base = _key_headers("\n".join([decl_exp, decl_vec, used, attrs]), [calls, plain])
    # another program also splits loops and uses tanh: more declarations and variants,
    # used by none of these
    tanh = "declare <8 x float> @_ZGVdN8v_tanhf(<8 x float>) nounwind"
    more = _key_headers("\n\n".join([decl_exp, decl_vec, tanh, used.replace(
        "[1 x ptr] [ptr @_ZGVdN8v_expf]", "[2 x ptr] [ptr @_ZGVdN8v_expf, ptr @_ZGVdN8v_tanhf]"),
        attrs, decl_par]), [calls, plain])
    assert more == base and decl_exp in base[0] and decl_exp not in base[1]
    assert decl_vec in base[0]  # named only in an attribute string
    # what a body calls is declared otherwise, or the attributes differ: another key
    other = _key_headers("\n".join([decl_exp.replace(" willreturn", ""), decl_vec, used,
                                     attrs]), [calls, plain])
    assert other[0] != base[0] and other[1] == base[1]
    assert _key_headers(attrs.replace("nounwind", "nounwind noinline"), [plain]) != base[1:]


WRONG_INDEX_CHILD = """
import json, sys
sys.path.insert(0, "tests/codegen")
from codegen import partition
partition.MIN_SPLIT_LINES = 0
import test_kernel_cache as t
f, data, params = t._step()
losses, _ = t._train(f, data, params)
print(json.dumps({"compiled": f.compile_stats["bodies_compiled"], "losses": losses}))
"""


def test_an_index_naming_a_file_without_the_body_is_not_trusted(cache_env):
    """Every body's index entry names a file of other bodies (only a bug or a hash collision
    could write that): the bodies are not taken from it.  Trusted where the file that does
    hold a body is not loaded, the step would call an unresolved symbol; the program runs in
    a fresh process, where a crash fails only this test."""
    base, data, params = _step()
    want = _train(base, data, params)[0]
    keys = base.program.module.stats["body_keys"]
    index = _index(cache_env)
    files = sorted(set(index.values()))
    if len(files) < 2:
        pytest.skip("one file of bodies (one compile thread): no other file to name")
    for key in keys.values():
        held = index[f"{key}.sgb"]
        cache.index_bodies(next(f for f in files if f != held), [key])
    for path in cache_env.glob("*.sgp"):  # (not the program cache: the bodies)
        path.unlink()
    got = json.loads(run_fresh(WRONG_INDEX_CHILD, cache_env))
    np.testing.assert_allclose(got["losses"], want, rtol=1e-6)
    # none was taken from the file named; the same modules again, found by their text,
    # and the index mended
    assert got["compiled"] == 0 and _index(cache_env) == index


def test_more_kernels_than_outline_kernels_keep_the_bodies_names(cache_env, monkeypatch):
    """Past OUTLINE_KERNELS a one-module step marks its kernels noinline; bodies in modules
    of their own are not, so their names (and cached code) are the same either way."""
    from codegen import lower

    base, _, _ = _step()
    monkeypatch.setattr(lower, "OUTLINE_KERNELS", 0)
    f, data, params = _step(widths=(12, 24, 5))
    new = _symbols(f) - _symbols(base)
    assert 0 < f.compile_stats["bodies_compiled"] == len(new) < f.compile_stats["bodies"]
    assert all(") #2 {" in text for text in f.program._functions)  # the profiling twin's
    got = _train(f, data, params)
    ref, data2, params2 = _step(widths=(12, 24, 5), backend="numpy")
    np.testing.assert_allclose(got[0], _train(ref, data2, params2)[0], rtol=1e-5)
    assert len(f.profile(*data, n=2)) == len(f.kernels)
