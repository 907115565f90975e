"""Plain SGD folded into the weight-gradient gemm with a runtime learning rate.

Why: ``frontends`` keeps the learning rate in a 0-d shared variable so a schedule or
``optimizer.learning_rate = x`` changes it without recompiling; the llvm backend must still
fold ``W - lr * (A @ B)`` into one ``gemm(alpha=-lr, beta=1, C=W)`` (``codegen.fusion._sgd_fold``,
``codegen.lowerings.lower_folded_sgd``).  The numpy backend is the oracle: the value read is the
step's (old) learning rate, 0/NaN/inf take the unfolded route and give numpy's NaN/inf pattern,
a failed call changes nothing, ``epoch`` equals the Python loop bit for bit, and the program
cache never confuses a runtime alpha with a literal one.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.ops as O
from codegen.native import cache


def _mlp(dtype: str, lr_value: float = 0.1, lr_updates=None, n_in: int = 8):
    """A 2-layer MLP trained by plain SGD with a shared learning rate: (f's pieces)."""
    rng = np.random.default_rng(1)
    x = sg.tensor("x", ("batch", n_in), dtype)
    y = sg.tensor("y", ("batch",), "int64")
    w1 = sg.shared((rng.standard_normal((n_in, 16)) * 0.3).astype(dtype), name="w1")
    b1 = sg.shared(np.zeros(16, dtype), name="b1")
    w2 = sg.shared((rng.standard_normal((16, 3)) * 0.3).astype(dtype), name="w2")
    b2 = sg.shared(np.zeros(3, dtype), name="b2")
    lr = sg.shared(np.asarray(lr_value, dtype), name="lr")
    params = [w1, b1, w2, b2]
    loss = O.cross_entropy(O.relu(x @ w1 + b1) @ w2 + b2, y)
    updates = {p: p - lr * g for p, g in zip(params, sg.grad(loss, params))}
    if lr_updates is not None:
        updates[lr] = lr_updates(lr)
    return [x, y], loss, updates, params + [lr]


def _data(dtype: str, n: int = 10):
    rng = np.random.default_rng(2)
    return rng.standard_normal((n, 8)).astype(dtype), rng.integers(0, 3, n)


def _scales(f) -> dict:
    """Folded weight name -> name of the variable its alpha comes from."""
    an = f.program.analysis
    return {an.inplace[e].name: c.name for e, (_, c) in an.folded.items()}


def _tol(dtype: str) -> float:
    return 2e-6 if dtype == "float32" else 1e-13


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mlp_with_shared_lr_folds_and_equals_numpy(dtype):
    X, Y = _data(dtype)
    results = {}
    for backend in ("numpy", "llvm"):
        inputs, loss, updates, shared = _mlp(dtype)
        f = sg.function(inputs, loss, updates, backend=backend)
        losses = [f(X, Y) for _ in range(3)]
        results[backend] = (losses, [s.get_value() for s in shared])
    assert _scales(f) == {"w1": "lr", "w2": "lr"}  # f is the llvm function
    for a, b in zip(*(results[k][0] for k in ("numpy", "llvm"))):
        np.testing.assert_allclose(b, a, rtol=_tol(dtype), atol=_tol(dtype))
    for a, b in zip(*(results[k][1] for k in ("numpy", "llvm"))):
        np.testing.assert_allclose(b, a, rtol=_tol(dtype), atol=_tol(dtype))


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_set_value_takes_effect_without_recompiling(backend):
    """Changing lr between calls equals a function compiled with that lr as a literal."""
    X, Y = _data("float64")
    inputs, loss, updates, shared = _mlp("float64", 0.1)
    f = sg.function(inputs, loss, updates, backend=backend)
    program = f.program
    f(X, Y)
    shared[-1].set_value(np.float64(0.025))
    f(X, Y)
    assert f.program is program

    # the same two steps with literal learning rates, on the numpy oracle
    inputs, loss, _, ref = _mlp("float64")
    params = ref[:-1]
    grads = sg.grad(loss, params)
    for lr in (0.1, 0.025):
        sg.function(inputs, loss, {p: p - lr * g for p, g in zip(params, grads)},
                    backend="numpy")(X, Y)
    for a, b in zip(params, shared):
        np.testing.assert_allclose(b.get_value(), a.get_value(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lr_zero_leaves_weights_unchanged(dtype):
    X, Y = _data(dtype)
    inputs, loss, updates, shared = _mlp(dtype, 0.0)
    f = sg.function(inputs, loss, updates, backend="llvm")
    assert _scales(f) == {"w1": "lr", "w2": "lr"}
    before = [s.get_value() for s in shared]
    f(X, Y)
    for a, s in zip(before, shared):
        np.testing.assert_array_equal(s.get_value(), a)
    shared[-1].set_value(np.asarray(0.5, dtype))  # and the same function then trains
    f(X, Y)
    assert not np.array_equal(shared[0].get_value(), before[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lr_updated_in_the_same_step_reads_the_old_value(dtype):
    """updates={W: W - lr * gW, lr: lr * 0.5}: every weight uses the step's lr."""
    X, Y = _data(dtype)
    results = {}
    for backend in ("numpy", "llvm"):
        inputs, loss, updates, shared = _mlp(dtype, 0.4, lambda lr: lr * 0.5)
        f = sg.function(inputs, loss, updates, backend=backend)
        losses = [f(X, Y) for _ in range(3)]
        results[backend] = (losses, [s.get_value() for s in shared])
    assert _scales(f) == {"w1": "lr", "w2": "lr"}
    assert results["llvm"][1][-1] == np.asarray(0.05, dtype)
    for a, b in zip(results["numpy"][0] + results["numpy"][1],
                    results["llvm"][0] + results["llvm"][1]):
        np.testing.assert_allclose(b, a, rtol=_tol(dtype), atol=_tol(dtype))


def test_lr_updated_in_the_same_step_without_other_readers():
    """No bias update reads lr after the gemms: only the folded kernels' own reads of lr keep
    its in-place update from running before them."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((6, 5))
    results = {}
    for backend in ("numpy", "llvm"):
        x = sg.tensor("x", ("batch", 5))
        ws = [sg.shared(np.full((5, 5), 0.2 * (k + 1)), name=f"w{k}") for k in range(2)]
        lr = sg.shared(np.float64(0.3), name="lr")
        loss = (O.tanh(O.tanh(x @ ws[0]) @ ws[1]) ** 2).sum()
        updates = {w: w - lr * g for w, g in zip(ws, sg.grad(loss, ws))}
        updates[lr] = lr * 0.5
        f = sg.function([x], loss, updates, backend=backend)
        results[backend] = [f(X) for _ in range(3)] + [w.get_value() for w in ws]
    assert _scales(f) == {"w0": "lr", "w1": "lr"}
    for a, b in zip(results["numpy"], results["llvm"]):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13)


def test_inf_lr_over_blocks_of_the_inner_dimension():
    """Why inf takes the unfolded route: BLAS adds alpha * (partial sum) per block of k, so
    -inf * (+2000) + -inf * (-1000) is NaN, where numpy's W - inf * 1000 is -inf."""
    k = 4000
    A, B = np.ones((4, k)), np.ones((k, 3))
    B[k // 2:] = -0.5
    out = {}
    for backend in ("numpy", "llvm"):
        a, b = sg.tensor("a", (4, k)), sg.tensor("b", (k, 3))
        lr, W = sg.shared(np.float64(np.inf), name="lr"), sg.shared(np.zeros((4, 3)), name="W")
        f = sg.function([a, b], [], {W: W - lr * (a @ b)}, backend=backend)
        f(A, B)
        out[backend] = W.get_value()
    assert _scales(f) == {"W": "lr"}
    np.testing.assert_array_equal(out["numpy"], np.full((4, 3), -np.inf))
    np.testing.assert_array_equal(out["llvm"], out["numpy"])


def _direct(dtype, shape_a, shape_b, transpose_a, transpose_b, lr_value):
    """``W - lr * (op(A) @ op(B))`` on both backends; returns (numpy W, llvm W, llvm f)."""
    rng = np.random.default_rng(3)
    A = rng.standard_normal(shape_a).astype(dtype)
    B = rng.standard_normal(shape_b).astype(dtype)
    if A.size:
        A.flat[5] = np.inf  # one row of op(A) @ op(B) is inf or NaN
        if transpose_b:  # column 2 of op(B) is zero: inf * 0 is NaN there
            B[2] = 0
        else:
            B[:, 2] = 0
    out = {}
    for backend in ("numpy", "llvm"):
        a = sg.tensor("a", shape_a, dtype)
        b = sg.tensor("b", shape_b, dtype)
        lr = sg.shared(np.asarray(lr_value, dtype), name="lr")
        W = sg.shared(np.linspace(-1, 1, 70 * 45).reshape(70, 45).astype(dtype), name="W")
        g = (a.T if transpose_a else a) @ (b.T if transpose_b else b)
        f = sg.function([a, b], [], {W: W - lr * g}, backend=backend)
        with np.errstate(all="ignore"):
            f(A, B)
        out[backend] = W.get_value()
    return out["numpy"], out["llvm"], f


@pytest.mark.parametrize("lr_value", [0.0, -0.0, np.nan, np.inf, -np.inf, 0.3])
@pytest.mark.parametrize("transpose", [(False, False), (True, False), (False, True)])
def test_nonfinite_or_zero_lr_gives_numpys_nan_pattern(lr_value, transpose):
    """70x45 spans partial tiles of the unfolded route; A has an inf, B zero columns."""
    ta, tb = transpose
    shape_a = (9, 70) if ta else (70, 9)
    shape_b = (45, 9) if tb else (9, 45)
    ref, got, f = _direct("float64", shape_a, shape_b, ta, tb, lr_value)
    assert _scales(f) == {"W": "lr"}
    if lr_value == 0:  # the case OpenBLAS's alpha == 0 shortcut would get wrong
        assert np.isnan(ref).any() and not np.isnan(ref).all()
    np.testing.assert_allclose(got, ref, rtol=1e-14, atol=1e-14)  # NaNs at the same places


@pytest.mark.parametrize("lr_value", [0.5, 0.0, np.inf, np.nan])
def test_empty_inner_dimension(lr_value):
    ref, got, f = _direct("float32", (70, 0), (0, 45), False, False, lr_value)
    assert _scales(f) == {"W": "lr"}
    np.testing.assert_array_equal(got, ref)


def test_lr_as_function_input():
    X, Y = _data("float32")
    lr = sg.tensor("lr", (), "float32")
    results = {}
    for backend in ("numpy", "llvm"):
        inputs, loss, _, shared = _mlp("float32")
        params = shared[:-1]
        updates = {p: p - lr * g for p, g in zip(params, sg.grad(loss, params))}
        f = sg.function(inputs + [lr], loss, updates, backend=backend)
        for value in (0.2, 0.0, 0.05):
            f(X, Y, np.float32(value))
        results[backend] = [p.get_value() for p in params]
    assert _scales(f) == {"w1": "lr", "w2": "lr"}
    for a, b in zip(results["numpy"], results["llvm"]):
        np.testing.assert_allclose(b, a, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("n_weights", [1, 2])
def test_computed_scale_from_a_schedule_folds(n_weights):
    """c = lr * cast(0.5 ** t) with t updated in the same step: a scalar tree computed inside
    the folded kernel (one weight) or by an earlier kernel (shared by two weights)."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((6, 5)).astype("float32")
    results = {}
    for backend in ("numpy", "llvm"):
        x = sg.tensor("x", ("batch", 5), "float32")
        ws = [sg.shared(np.full((5, 5), 0.1 * (k + 1), "float32"), name=f"w{k}")
              for k in range(n_weights)]
        lr = sg.shared(np.float32(0.2), name="lr")
        t = sg.shared(np.float64(0.0), name="t")
        h = x
        for w in ws:
            h = O.tanh(h @ w)
        loss = (h * h).sum()
        c = lr * sg.cast(0.5 ** t, "float32")
        updates = {w: w - c * g for w, g in zip(ws, sg.grad(loss, ws))}
        updates[t] = t + 1
        f = sg.function([x], loss, updates, backend=backend)
        losses = [f(X) for _ in range(3)]
        results[backend] = losses + [w.get_value() for w in ws] + [t.get_value()]
    an = f.program.analysis
    assert len(an.folded) == n_weights
    assert {an.mode[c] for _, c in an.folded.values()} == \
        ({"inline"} if n_weights == 1 else {"buffer"})
    for a, b in zip(results["numpy"], results["llvm"]):
        np.testing.assert_allclose(b, a, rtol=2e-6, atol=2e-6)


def _index_trainer(second_output: bool):
    W = sg.shared(np.arange(12.0).reshape(4, 3) / 10, name="W")
    lr = sg.shared(np.float64(0.1), name="lr")
    x = sg.tensor("x", ("batch", 4))
    idx = sg.tensor("idx", ("batch",), dtype="int64")
    loss = ((x @ W)[sg.arange(x.shape[0]), idx]).sum()
    new = W - lr * sg.grad(loss, W)
    outputs = [loss, new[idx]] if second_output else loss
    return sg.function([x, idx], outputs, {W: new, lr: lr * 0.5}, backend="llvm"), W, lr


@pytest.mark.parametrize("second_output", [False, True])
def test_failed_call_changes_nothing(second_output):
    """An out-of-range index fails the call: before the folded gemm (folded), or in an output
    reading the new W, i.e. after it (then W must not be written in place: not folded)."""
    f, W, lr = _index_trainer(second_output)
    assert bool(f.program.analysis.folded) is not second_output
    before = W.get_value()
    with pytest.raises(IndexError):
        f(np.ones((2, 4)), np.array([0, 3]))
    np.testing.assert_array_equal(W.get_value(), before)
    assert lr.get_value() == 0.1
    f(np.ones((2, 4)), np.array([0, 2]))
    expected = before.copy()
    expected[:, [0, 2]] -= 0.1  # d loss / d W[i, j] = sum of x[k, i] over k with idx[k] == j
    np.testing.assert_allclose(W.get_value(), expected, rtol=1e-15)
    assert lr.get_value() == 0.05


def test_epoch_equals_loop_bit_for_bit():
    X, Y = _data("float64", 23)
    results = []
    for use_epoch in (True, False):
        inputs, loss, updates, shared = _mlp("float64", 0.3, lambda lr: lr * 0.9)
        f = sg.function(inputs, loss, updates, backend="llvm")
        assert _scales(f) == {"w1": "lr", "w2": "lr"}
        shared[-1].set_value(np.float64(0.2))
        if use_epoch:
            losses = f.epoch(X, Y, batch_size=5)
        else:
            losses = np.stack([f(X[i:i + 5], Y[i:i + 5]) for i in range(0, 23, 5)])
        results.append((losses, [s.get_value() for s in shared]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    cache.clear_cache(memory=True, disk=False)
    yield
    cache.clear_cache(memory=True, disk=False)


def _lr_function(lr_kind: str, value: float):
    x = sg.tensor("x", ("batch", 6), "float32")
    w = sg.shared(np.linspace(-1, 1, 18).reshape(6, 3).astype("float32"), name="w")
    lr = np.float32(value) if lr_kind == "literal" else sg.shared(np.float32(value), name="lr")
    loss = (O.tanh(x @ w) ** 2).sum()
    f = sg.function([x], loss, {w: w - lr * sg.grad(loss, w)}, backend="llvm")
    return f, w


def test_program_cache_keeps_runtime_and_literal_alpha_apart(cache_env):
    X = np.linspace(-1, 1, 12).reshape(2, 6).astype("float32")
    expected = {}
    for value in (0.1, 0.3):
        f, w = _lr_function("literal", value)
        f(X)
        expected[value] = w.get_value()
    for value in (0.1, 0.3):  # the second is a program hit: alpha is not baked into it
        f, w = _lr_function("shared", value)
        assert f.compile_stats["lowered"] is (value == 0.1)
        assert _scales(f) == {"w": "lr"}
        f(X)
        np.testing.assert_allclose(w.get_value(), expected[value], rtol=1e-6, atol=1e-7)
