"""The backend interface (``symgraph.backends``): the registry with its two real backends,
the plain ``CompileRequest`` a backend compiles, and the numpy defaults of inspection."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import symgraph as sg
from symgraph import backends
from symgraph.function import Function


def _sgd_step(backend: str):
    x = sg.tensor("x", ("b", 3))
    w = sg.shared(np.linspace(-1, 1, 6).reshape(3, 2), name="w")
    loss = sg.sum(sg.tanh(x @ w))
    return sg.function([x], loss, {w: w - 0.1 * sg.grad(loss, w)}, backend=backend), w


def test_unknown_backend_names_the_registered_ones():
    x = sg.tensor("x", (3,))
    with pytest.raises(ValueError, match="unknown backend 'cuda'; registered backends: "
                                         "'llvm', 'numpy'"):
        sg.function([x], x * 2, backend="cuda")
    assert backends.backend_names() == ["llvm", "numpy"]


def test_llvm_is_resolved_from_its_module_path_on_first_use():
    # in a fresh process: importing symgraph, and compiling with numpy, loads no codegen
    code = (
        "import sys, numpy as np, symgraph as sg\n"
        "from symgraph import backends\n"
        "assert backends._REGISTRY['llvm'] == 'codegen.backend:LLVMProgram'\n"
        "x = sg.tensor('x', (3,))\n"
        "sg.function([x], x * 2, backend='numpy')\n"
        "print(any(m.split('.')[0] == 'codegen' for m in sys.modules), end=' ')\n"
        "backends.register_backend('llvm_again', 'codegen.backend:LLVMProgram')\n"
        "print(any(m.split('.')[0] == 'codegen' for m in sys.modules), end=' ')\n"
        "f = sg.function([x], x * 2, backend='llvm_again')\n"
        "from codegen.backend import LLVMProgram\n"
        "print(type(f.program) is LLVMProgram, backends._REGISTRY['llvm_again'] is LLVMProgram,"
        " f(np.ones(3)).tolist())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "True", "True", "[2.0,", "2.0,", "2.0]"]


def test_register_backend_takes_a_factory_or_a_module_path(monkeypatch):
    monkeypatch.setitem(backends._REGISTRY, "reference", backends.NumpyProgram)
    f, w = _sgd_step("reference")
    g, v = _sgd_step("numpy")
    X = np.ones((4, 3))
    assert f(X) == g(X)
    np.testing.assert_array_equal(w.get_value(), v.get_value())
    with pytest.raises(ValueError, match="module:attribute"):
        backends.register_backend("bad", "codegen.backend")
    with pytest.raises(TypeError, match="neither callable"):
        backends.register_backend("bad", 3)
    assert "bad" not in backends.backend_names()


@pytest.mark.parametrize("name", ["numpy", "llvm"])
def test_a_program_is_built_from_the_request_alone(name):
    """No backend needs the ``Function``: the request carries everything, and the program
    it compiles computes what the function does."""
    f, w = _sgd_step("numpy")
    request = f.request
    assert not any(isinstance(v, Function) for v in vars(request).values())
    assert request.update_vars == [w] and request.graph_updates == f.graph_updates
    assert list(request.graph_outputs) == f.graph_outputs and request.single
    program = backends.make_program(name, request)
    X = np.arange(6.0).reshape(2, 3)
    before = w.get_value()
    values, bindings = request.check_inputs([X])
    outputs, new_values = program.run(values, bindings)
    loss, new_w = float(outputs[0]), np.array(new_values[0])  # llvm: w's array, in place
    w.set_value(before)
    assert loss == pytest.approx(float(f(X)), rel=1e-12)
    np.testing.assert_allclose(new_w, w.get_value(), rtol=1e-12)


def test_numpy_inspection_defaults():
    f, w = _sgd_step("numpy")
    assert f.kernels is None  # every node runs by itself
    assert set(f.compile_stats) == {"rewrite", "compile_total"}
    assert f.compile_stats["rewrite"] == f.rewrite_report.seconds
    assert f.compile_stats["compile_total"] == 0.0
    assert f.memory_kept() == {"plans": 0, "bytes": 0, "largest": 0}
    with pytest.raises(NotImplementedError, match="numpy backend generates no LLVM IR"):
        f.llvm_ir()
    with pytest.raises(NotImplementedError, match="numpy backend generates no assembly"):
        f.asm()
    before = w.get_value()
    rows = f.profile(np.ones((4, 3)), n=2)
    assert f.last_profile is rows and {r["kernel"][0] for r in rows} == {"n"}
    np.testing.assert_array_equal(w.get_value(), before)
    assert sg.function([], sg.constant(1.0), backend="numpy",
                       rewrite=False).compile_stats["rewrite"] is None


def test_llvm_inspection_is_the_programs():
    f, _ = _sgd_step("llvm")
    assert f.kernels is f.program.kernels and len(f.kernels) >= 2
    assert f.compile_stats is f.program.compile_stats
    assert f.compile_stats["rewrite"] == f.rewrite_report.seconds
    assert "sg_step" in f.llvm_ir(optimized=False)
    f(np.ones((4, 3)))
    assert f.memory_kept()["plans"] == 1


@pytest.mark.parametrize("n", [0, 1, 5, 9])
def test_epoch_is_one_loop_with_a_native_hook(backend, n):
    """Full minibatches natively (llvm), the partial last one as a call: both backends give
    the Python loop's results and the same updates."""
    f, w = _sgd_step(backend)
    X = np.random.default_rng(1).standard_normal((n, 3))
    losses = f.epoch(X, batch_size=2, shuffle=4)
    g, v = _sgd_step("numpy")
    order = np.random.default_rng(4).permutation(n)
    expected = [g(X[order][i:i + 2]) for i in range(0, n, 2)]
    np.testing.assert_allclose(losses, np.array(expected).reshape(-1), rtol=1e-12)
    np.testing.assert_allclose(w.get_value(), v.get_value(), rtol=1e-12)


def test_failed_partial_batch_after_native_steps_restores_parameters(backend):
    w = sg.shared(np.ones(3), name="w")
    i = sg.tensor("i", ("k",), "int64")
    f = sg.function([i], sg.sum(w[i]), updates={w: w * 2}, backend=backend)
    with pytest.raises(IndexError):  # steps [0, 1], [2, 0] run, then [7] fails
        f.epoch(np.array([0, 1, 2, 0, 7]), batch_size=2)
    if backend == "llvm":  # the two full minibatches ran in the native loop
        assert getattr(f.program, "_epoch_cfunc", None) is not None
    np.testing.assert_array_equal(w.get_value(), np.ones(3))
    assert f.epoch(np.array([0, 1, 2, 0, 1]), batch_size=2).tolist() == [2.0, 4.0, 4.0]
    np.testing.assert_array_equal(w.get_value(), np.full(3, 8.0))
