"""In-place parameter updates of the llvm backend (``codegen.fusion.plan_inplace``).

Why: the backend writes an update into the shared variable's own buffer (and folds plain SGD
into the weight-gradient gemm) only when no other reader of the old value runs later and no
fallible kernel runs after the write.  These tests pin the cases that must fall back or stay
correct: swaps, an old value that is also an output, later readers, transposed reads, runtime
index errors (a failed call changes nothing), ``epoch`` (bit for bit equal to the Python loop)
and ``profile`` (changes nothing).
"""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.ops as O


def _both(build, *args, steps: int = 2):
    """Run ``build()`` -> (inputs, outputs, updates, shared) on both backends ``steps`` times;
    return per backend (outputs of every step, final shared values, the function)."""
    res = {}
    for backend in ("numpy", "llvm"):
        inputs, outputs, updates, shared = build()
        f = sg.function(inputs, outputs, updates, backend=backend)
        outs = [f(*args) for _ in range(steps)]
        res[backend] = (outs, [s.get_value() for s in shared], f)
    return res


def _assert_same(res, tol=1e-12):
    (ro, rs, _), (go, gs, _) = res["numpy"], res["llvm"]
    for a, b in zip(ro, go):
        for u, v in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
            np.testing.assert_allclose(v, u, rtol=tol, atol=tol)
    for a, b in zip(rs, gs):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)


def _inplace_names(f) -> set:
    return {v.name for v in f.program.analysis.inplace.values()}


def test_swap_updates_are_simultaneous():
    def build():
        a = sg.shared(np.arange(6.0).reshape(2, 3), name="a")
        b = sg.shared(-np.arange(6.0).reshape(2, 3), name="b")
        x = sg.tensor("x", (2, 3))
        return [x], (a * x).sum(), {a: b, b: a}, [a, b]
    res = _both(build, np.ones((2, 3)), steps=3)
    _assert_same(res)
    _, (a, b), _ = res["llvm"]
    np.testing.assert_array_equal(a, -np.arange(6.0).reshape(2, 3))  # odd number of swaps


def test_swap_of_computed_updates_falls_back():
    def build():
        a = sg.shared(np.arange(4.0), name="a")
        b = sg.shared(np.ones(4), name="b")
        x = sg.tensor("x", (4,))
        return [x], x.sum(), {a: b * 2 + x, b: a * 3 - x}, [a, b]
    res = _both(build, np.arange(4.0) / 7, steps=3)
    _assert_same(res)


def test_old_value_as_output_is_not_overwritten():
    def build():
        W = sg.shared(np.arange(6.0).reshape(3, 2), name="W")
        x = sg.tensor("x", (3, 2))
        return [x], [W, W.reshape((6,)), (W * x).sum()], {W: W - 0.5 * x}, [W]
    res = _both(build, np.ones((3, 2)), steps=3)
    _assert_same(res)
    outs, _, f = res["llvm"]
    np.testing.assert_array_equal(outs[1][0], np.arange(6.0).reshape(3, 2) - 0.5)
    assert "W" not in _inplace_names(f)


def test_new_value_as_output_and_update():
    def build():
        W = sg.shared(np.arange(6.0).reshape(3, 2), name="W")
        x = sg.tensor("x", (3, 2))
        new = W * 2 + x
        return [x], [new, new.sum()], {W: new}, [W]
    res = _both(build, np.ones((3, 2)), steps=3)
    _assert_same(res)
    assert "W" in _inplace_names(res["llvm"][2])


def test_later_reader_of_old_value():
    """V's update reads the old W after W's own update kernel would naturally run."""
    def build():
        W = sg.shared(np.arange(4.0).reshape(2, 2), name="W")
        V = sg.shared(np.ones((2, 2)), name="V")
        x = sg.tensor("x", (2, 2))
        return [x], (W * x).sum(), {W: W * 2 + x, V: V + W @ x + W.T}, [W, V]
    _assert_same(_both(build, np.eye(2) + 0.5, steps=3))


def test_transposed_read_of_itself_is_not_in_place():
    def build():
        W = sg.shared(np.arange(9.0).reshape(3, 3), name="W")
        x = sg.tensor("x", (3, 3))
        return [x], x.sum(), {W: W.T * 2 + W + x}, [W]
    res = _both(build, np.ones((3, 3)), steps=3)
    _assert_same(res)
    assert "W" not in _inplace_names(res["llvm"][2])


def test_gemm_reading_itself_is_not_folded():
    def build():
        W = sg.shared(np.arange(9.0).reshape(3, 3) / 10, name="W")
        x = sg.tensor("x", (3, 3))
        return [x], x.sum(), {W: W - 0.1 * (W @ x)}, [W]
    res = _both(build, np.ones((3, 3)), steps=3)
    _assert_same(res)
    assert not res["llvm"][2].program.analysis.folded


def _mlp(dtype, optimizer, n_in=8):
    x = sg.tensor("x", ("batch", n_in), dtype)
    y = sg.tensor("y", ("batch",), "int64")

    def build():
        rng = np.random.default_rng(1)
        w1 = sg.shared((rng.standard_normal((n_in, 16)) * 0.3).astype(dtype), name="w1")
        b1 = sg.shared(np.zeros(16, dtype), name="b1")
        w2 = sg.shared((rng.standard_normal((16, 3)) * 0.3).astype(dtype), name="w2")
        b2 = sg.shared(np.zeros(3, dtype), name="b2")
        params = [w1, b1, w2, b2]
        loss = O.cross_entropy(O.relu(x @ w1 + b1) @ w2 + b2, y)
        grads = sg.grad(loss, params)
        lr = np.asarray(0.1, dtype)[()]
        if optimizer == "sgd":
            return [x, y], loss, {p: p - lr * g for p, g in zip(params, grads)}, params
        t = sg.shared(np.array(0.0, dtype), name="t")
        updates, shared = {t: t + 1}, list(params)
        for p, g in zip(params, grads):
            m = sg.shared(np.zeros(p.get_value().shape, dtype))
            v = sg.shared(np.zeros(p.get_value().shape, dtype))
            m_new = 0.9 * m + 0.1 * g
            v_new = 0.999 * v + 0.001 * g * g
            mhat = m_new / (1 - 0.9 ** (t + 1))
            vhat = v_new / (1 - 0.999 ** (t + 1))
            updates.update({m: m_new, v: v_new, p: p - 1e-2 * mhat / (O.sqrt(vhat) + 1e-8)})
            shared += [m, v]
        return [x, y], loss, updates, shared
    return build


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_step_in_place_equals_numpy(dtype, optimizer):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((10, 8)).astype(dtype)
    Y = rng.integers(0, 3, 10)
    res = _both(_mlp(dtype, optimizer), X, Y, steps=4)
    _assert_same(res, 2e-5 if dtype == "float32" else 1e-10)
    f = res["llvm"][2]
    assert {"w1", "b1", "w2", "b2"} <= _inplace_names(f)
    if optimizer == "sgd":  # both weight updates folded into their gradient gemm
        assert len(f.program.analysis.folded) == 2


def test_failed_call_changes_nothing_with_in_place_updates():
    W = sg.shared(np.arange(12.0).reshape(4, 3) / 10, name="W")
    x = sg.tensor("x", ("batch", 4))
    idx = sg.tensor("idx", ("batch",), dtype="int64")
    z = x @ W
    loss = (z[sg.arange(x.shape[0]), idx]).sum() + (W ** 2).sum()
    f = sg.function([x, idx], loss, {W: W - 0.1 * sg.grad(loss, W)}, backend="llvm")
    assert "W" in _inplace_names(f)  # the index checks all run before the write
    before = W.get_value()
    with pytest.raises(IndexError):
        f(np.ones((2, 4)), np.array([0, 3]))
    np.testing.assert_array_equal(W.get_value(), before)
    f(np.ones((2, 4)), np.array([0, 2]))
    assert not np.array_equal(W.get_value(), before)


def test_fallible_kernel_after_update_forbids_in_place():
    """The second output indexes the *new* W: its bounds check runs after W's update."""
    W = sg.shared(np.arange(4.0), name="W")
    idx = sg.tensor("idx", (2,), dtype="int64")
    new = W * 2
    f = sg.function([idx], [W.sum(), new[idx]], {W: new}, backend="llvm")
    before = W.get_value()
    with pytest.raises(IndexError):
        f(np.array([0, 9]))
    np.testing.assert_array_equal(W.get_value(), before)
    out = f(np.array([1, 3]))
    np.testing.assert_array_equal(out[1], [2.0, 6.0])
    np.testing.assert_array_equal(W.get_value(), before * 2)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_epoch_equals_loop_bit_for_bit_in_place(optimizer):
    build = _mlp("float64", optimizer)
    X = np.random.default_rng(4).standard_normal((23, 8))
    Y = np.random.default_rng(5).integers(0, 3, 23)
    results = []
    for use_epoch in (True, False):
        inputs, loss, ups, shared = build()
        f = sg.function(inputs, loss, ups, backend="llvm")
        assert "w1" in _inplace_names(f)
        if use_epoch:
            losses = f.epoch(X, Y, batch_size=5)
        else:
            losses = np.stack([f(X[i:i + 5], Y[i:i + 5]) for i in range(0, 23, 5)])
        results.append((losses, [p.get_value() for p in shared]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


def _indexing_trainer():
    W = sg.shared(np.arange(12.0).reshape(4, 3) / 10, name="W")
    x = sg.tensor("x", ("batch", 4))
    idx = sg.tensor("idx", ("batch",), dtype="int64")
    loss = ((x @ W)[sg.arange(x.shape[0]), idx]).sum() + (W ** 2).sum()
    f = sg.function([x, idx], loss, {W: W - 0.1 * sg.grad(loss, W)}, backend="llvm")
    assert "W" in _inplace_names(f)
    return f, W


@pytest.mark.parametrize("bad", [3, 22])  # in a full batch (native epoch), in the last one
def test_failed_epoch_restores_in_place_variables(bad):
    f, W = _indexing_trainer()
    before = W.get_value()
    X = np.random.default_rng(4).standard_normal((23, 4))
    idx = np.random.default_rng(5).integers(0, 3, 23)
    idx[bad] = 9
    with pytest.raises(IndexError):
        f.epoch(X, idx, batch_size=5)
    np.testing.assert_array_equal(W.get_value(), before)
    idx[bad] = 1
    f.epoch(X, idx, batch_size=5)
    assert not np.array_equal(W.get_value(), before)


def test_profile_changes_nothing():
    build = _mlp("float32", "sgd")
    inputs, loss, ups, shared = build()
    f = sg.function(inputs, loss, ups, backend="llvm")
    before = [p.get_value() for p in shared]
    X = np.ones((4, 8), "float32")
    f.profile(X, np.zeros(4, "int64"), n=3)
    for a, p in zip(before, shared):
        np.testing.assert_array_equal(p.get_value(), a)


def test_double_buffered_updates_across_two_functions_never_alias():
    # swaps cannot be written in place: each function double-buffers its updates, and the
    # buffer it writes must never be one that a shared variable currently holds
    a = sg.shared(np.arange(3.0), name="a")
    b = sg.shared(np.arange(3.0) + 10, name="b")
    swap = sg.function([], [], updates={a: b, b: a}, backend="llvm")
    bump = sg.function([], [], updates={a: b + 1, b: a * 2}, backend="llvm")
    ref_a, ref_b = np.arange(3.0), np.arange(3.0) + 10
    for step in range(6):
        (swap if step % 2 else bump)()
        ref_a, ref_b = (ref_b, ref_a) if step % 2 else (ref_b + 1, ref_a * 2)
        np.testing.assert_array_equal(a.get_value(), ref_a)
        np.testing.assert_array_equal(b.get_value(), ref_b)
