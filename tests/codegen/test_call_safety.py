"""Calling a compiled function: no Python object crashes the process, and threads are safe.

The llvm backend hands the caller's objects straight to a native step builtin
(``codegen.native.pycall``), which must check each one before reading its struct.  The hostile
inputs run in a subprocess, so a crash fails the test instead of killing pytest; the oracle
is the numpy backend (the reference evaluator): every input gives the same value, or the
same kind of error, on both backends.  Threads: calls of one function are serialised, so no
update is lost and no call returns another's outputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import symgraph as sg

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_isolated(code: str, tmp_path) -> str:
    """Run ``code`` in a fresh interpreter (own compile cache); its stdout. A crash (a signal)
    or an exception fails the test with the child's output."""
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else \
            f"exit status {proc.returncode}"
        pytest.fail(f"the child process failed ({how})\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def test_the_reported_segfault_snippet(tmp_path):
    # defect 1: a numpy scalar (the function's own 0-d output) on a warm 0-d fast path
    out = run_isolated("""
        import numpy as np, symgraph as sg
        s = sg.scalar("s"); f = sg.function([s], s * 2.0)
        v = f(np.array(3.0))
        print(type(v).__name__, f(v), f(np.float64(3.0)), f(v))
    """, tmp_path)
    assert out.split() == ["float64", "12.0", "6.0", "12.0"]


HOSTILE = """
import pickle, numpy as np, symgraph as sg

def outcome(f, value):
    try:
        out = f(value)
    except (TypeError, ValueError) as err:
        return type(err).__name__
    return [np.asarray(o, dtype=np.float64) for o in (out if isinstance(out, list) else [out])]

def same(a, b, label):
    if isinstance(a, str) or isinstance(b, str):
        assert a == b, (label, a, b)
    else:
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5, err_msg=label)

def scalar_cases():
    cases = {}
    for name in ("float64", "float32", "float16", "int64", "int32", "int8", "uint8", "uint64",
                 "bool_", "complex128", "str_", "bytes_", "datetime64", "timedelta64"):
        kind = getattr(np, name)
        value = kind(3) if name not in ("datetime64", "timedelta64") else kind(3, "D")
        cases["scalar " + name] = value
        cases["0-d " + name] = np.array(value)
    ro = np.array(3.0); ro.setflags(write=False)
    cases.update({"python float": 3.0, "python int": 3, "python bool": True, "None": None,
                  "list": [3.0], "nested list": [[3.0]], "empty list": [], "string": "3",
                  "object 0-d": np.array(3.0, dtype=object), "read-only 0-d": ro,
                  "byte-swapped 0-d": np.array(3.0, ">f8"), "1-d": np.array([3.0]),
                  "masked 0-d": np.ma.array(3.0), "dict": {}, "object()": object(),
                  "pickled 0-d": pickle.loads(pickle.dumps(np.array(3.0))),
                  "metadata dtype": np.array(3.0, np.dtype("f8", metadata={"a": 1})),
                  "huge int": 10 ** 30})
    return cases

def matrix_cases():
    base = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    wide = np.arange(24, dtype=np.float32).reshape(4, 6) / 7
    ro = base.copy(); ro.setflags(write=False)
    raw = np.zeros(base.nbytes + 1, np.uint8)[1:]
    unaligned = np.frombuffer(raw, np.float32).reshape(4, 3); unaligned[...] = base
    return {
        "contiguous": base, "non-contiguous view": wide[:, ::2],
        "fortran order": np.asfortranarray(base), "read-only": ro, "unaligned": unaligned,
        "byte-swapped": base.astype(">f4"), "float64": base.astype(np.float64),
        "int32": np.arange(12, dtype=np.int32).reshape(4, 3), "bool": base > 0.5,
        "complex": base.astype(np.complex64), "object": base.astype(object),
        "np.matrix": np.matrix(base), "masked": np.ma.array(base, mask=base > 1),
        "list": base.tolist(), "transposed": np.ascontiguousarray(base.T).T,
        "wrong rank": base[0], "wrong dim": wide, "empty batch": base[:0],
        "other batch": np.ones((7, 3), np.float32), "0-d": np.array(1.0, np.float32),
        "numpy scalar": np.float32(1.0), "python float": 1.0, "None": None,
        "pickled": pickle.loads(pickle.dumps(base)), "3-d": base[None],
    }

def paired(build):
    # the same graph on both backends, each with its own shared variables
    return build("llvm"), build("numpy")

def build_scalar(backend):
    s = sg.scalar("s")
    return sg.function([s], s * 2.0, backend=backend)

def build_matrix(backend):
    x = sg.tensor("x", shape=("batch", 3), dtype="float32")
    W = sg.shared(np.linspace(-1, 1, 6).reshape(3, 2).astype(np.float32), name="W")
    loss = ((x @ W) ** 2).sum()
    f = sg.function([x], [loss, x @ W], updates={W: W - 1e-4 * sg.grad(loss, W)},
                    backend=backend)
    return f, W

checked = 0
for build, cases, warm in ((build_scalar, scalar_cases(), np.array(3.0)),
                           (build_matrix, matrix_cases(), matrix_cases()["contiguous"])):
    fl, fn = paired(build)
    if isinstance(fl, tuple):
        (fl, Wl), (fn, Wn) = fl, fn
    else:
        Wl = Wn = None
    order = list(cases) + list(reversed(list(cases)))
    for name in order:  # alternate: warm the fast path, then a hostile input, then again
        for label, value in (("warm", warm), (name, cases[name]), ("warm", warm)):
            same(outcome(fl, value), outcome(fn, value), label)
            if Wl is not None:
                np.testing.assert_allclose(Wl.get_value(), Wn.get_value(), rtol=1e-4,
                                           atol=1e-6, err_msg=label)
            checked += 1
    # the function's own outputs fed back
    for _ in range(3):
        out = fl(warm)
        fn(warm)
        first = out if not isinstance(out, list) else out[1][:, :1].repeat(3, axis=1)
        same(outcome(fl, first), outcome(fn, first), "own output")
        checked += 1
print("checked", checked)
"""


def test_hostile_inputs_never_crash_and_match_the_reference(tmp_path):
    out = run_isolated(HOSTILE, tmp_path)
    assert int(out.split()[-1]) > 200


def test_the_builtin_refuses_what_it_cannot_read(tmp_path):
    # the native checks themselves, one bad property at a time: -(i + 1) and no write
    out = run_isolated("""
        import numpy as np
        from codegen.native import jit, pycall
        cm = jit.compile_module('''
        define i32 @fill(ptr %bufs, ptr %dims) {
          %x = load ptr, ptr %bufs
          store double 7.0, ptr %x
          ret i32 0
        }''')
        f = pycall.make_builtin(cm.address("fill"), [2, 1], dtypes=["float64", "int64"],
                                shapes=[(2, 3), (pycall.ANY_DIM,)], writeable=[True, False],
                                keepalive=cm)
        good = np.zeros((2, 3)); idx = np.zeros(5, np.int64)
        ro = np.zeros((2, 3)); ro.setflags(write=False)
        unaligned = np.frombuffer(np.zeros(49, np.uint8)[1:], np.float64).reshape(2, 3)
        bad = {"float32": np.zeros((2, 3), np.float32), "shape": np.zeros((3, 2)),
               "rank": np.zeros(6), "view": np.zeros((2, 6))[:, ::2], "read-only": ro,
               "swapped": np.zeros((2, 3), ">f8"), "unaligned": unaligned,
               "matrix": np.matrix(np.zeros((2, 3))), "scalar": np.float64(0), "list": [0.0],
               "None": None, "int": 1, "masked": np.ma.zeros((2, 3)),
               "fortran": np.asfortranarray(np.zeros((2, 3)))}
        for name, value in bad.items():
            assert f(value, idx) == -1, name
            if isinstance(value, np.ndarray):  # the kernel did not run
                assert not (np.asarray(value) == 7.0).any(), name
        assert f(good, idx[::2]) == -2 and f(good, idx.astype(np.int32)) == -2
        assert f(good, np.zeros(0, np.int64)) is None and good[0, 0] == 7.0
        print("ok")
    """, tmp_path)
    assert out.strip() == "ok"


def test_function_refuses_a_wrong_argument_count_after_a_warm_call(backend):
    x = sg.tensor("x", shape=(3,))
    W = sg.shared(np.ones(3), name="W")
    f = sg.function([x], (x * W).sum(), updates={W: W * 2.0}, backend=backend)
    f(np.ones(3))
    for args in ((), (np.ones(3), np.ones(3))):
        with pytest.raises(TypeError, match="takes 1 inputs"):
            f(*args)
    np.testing.assert_array_equal(W.get_value(), [2.0, 2.0, 2.0])


# --------------------------------------------------------------------------- threads


@pytest.fixture
def fast_switching():
    """Make the interpreter switch threads every microsecond (races show up at once)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run_threads(work, n: int = 4) -> None:
    errors = []

    def guarded(k):
        try:
            work(k)
        except BaseException as err:  # noqa: BLE001  (reported below)
            errors.append(err)
    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_threads_lose_no_update_and_get_their_own_outputs(backend, fast_switching):
    # defect 2: each call returns the counter's old value and adds one; serialised calls
    # return every value 0..N-1 exactly once and end at N
    calls = 1500 if backend == "llvm" else 300
    c = sg.shared(np.float64(0.0), name="c")
    f = sg.function([], c, updates={c: c + 1}, backend=backend)
    seen = [[] for _ in range(4)]
    run_threads(lambda k: seen[k].extend(float(f()) for _ in range(calls)))
    values = sorted(v for part in seen for v in part)
    assert c.get_value() == 4 * calls
    assert values == list(range(4 * calls))


def test_threads_with_in_place_updates_and_arena_outputs(backend, fast_switching):
    # the llvm step writes W in place and its outputs live in a shared arena
    calls = 3000 if backend == "llvm" else 150
    x = sg.tensor("x", shape=("batch",))
    W = sg.shared(np.zeros(5), name="W")
    out = x * 3.0 + 1.0
    f = sg.function([x], [out, W.sum()], updates={W: W + 1.0}, backend=backend)

    def work(k):
        v = np.full(6 if k % 2 else 5, float(k))  # two threads per plan (and arena)
        for _ in range(calls):
            got, _ = f(v)
            np.testing.assert_array_equal(got, v * 3.0 + 1.0)
    run_threads(work)
    np.testing.assert_array_equal(W.get_value(), np.full(5, 4.0 * calls))


def test_epoch_and_calls_from_threads_are_serialised(backend, fast_switching):
    x = sg.tensor("x", shape=("batch",))
    c = sg.shared(np.float64(0.0), name="c")
    f = sg.function([x], x.sum(), updates={c: c + x.sum()}, backend=backend)
    data = np.ones(64)

    def work(k):
        for _ in range(20):
            if k % 2:
                f.epoch(data, batch_size=8)  # 8 steps, adds 64
            else:
                f(data[:8])  # adds 8
    run_threads(work)
    assert c.get_value() == 2 * 20 * 64 + 2 * 20 * 8
