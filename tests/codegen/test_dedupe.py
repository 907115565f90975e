"""Kernels that are the same code compile once (``codegen.dedupe``): a stack of equal
layers calls one IR function per kind of kernel, with every value, gradient, update, epoch
and profile still the numpy reference's; the canonical text ignores a kernel's own name
and metadata numbering but nothing else."""

from __future__ import annotations

import re

import numpy as np
import pytest

import symgraph as sg
from codegen.dedupe import dedupe


def test_equal_text_up_to_name_and_metadata_is_one_function():
    a = ("define internal i32 @k3(ptr %p0) #0 {\n  call void @k3_part(), !llvm.loop !7\n}\n"
         "!7 = distinct !{!7, !8}\n!8 = !{}")
    b = a.replace("k3", "k9").replace("!7", "!12").replace("!8", "!13")
    c = a.replace("ptr %p0", "ptr %p1")       # another parameter: other code
    d = a.replace("!8 = !{}", "!8 = !{!0}")   # other metadata content
    kept, target = dedupe([("k3", a), ("k9", b), ("k4", c), ("k5", d)])
    assert [i for i, _, _ in kept] == [0, 2, 3]
    names = [name for _, name, _ in kept]
    assert len(set(names)) == 3 and all(re.fullmatch(r"k_[0-9a-f]{20}", n) for n in names)
    assert target == {"k3": names[0], "k9": names[0], "k4": names[1], "k5": names[2]}
    # a body is its text under its content name, helpers included; the name does not
    # depend on the kernel's position, so another program names the same body alike
    assert kept[0][2] == a.replace("@k3", "@" + names[0])
    assert dedupe([("k7", b)])[0][0][1] == names[0]


def _stack(layers, batch="batch"):
    rng = np.random.default_rng(layers)
    x = sg.tensor("x", (batch, 8))
    Ws = [sg.shared(rng.normal(size=(8, 8)) * 0.4, name=f"W{i}") for i in range(layers)]
    h = x
    for W in Ws:
        h = sg.tanh(h @ W)
    loss = sg.mean(h * h)
    grads = sg.grad(loss, Ws)
    return x, loss, Ws, grads, rng


def _defined(f) -> int:
    return len(re.findall(r"^define (?:internal |weak_odr )?i32 @k_[0-9a-f]+\(",
                          f.llvm_ir(optimized=False), re.M))


def test_a_stack_of_equal_layers_compiles_each_kind_of_kernel_once():
    x, loss, Ws, grads, rng = _stack(12)
    data = rng.normal(size=(5, 8))
    f = sg.function([x], [loss, *grads], backend="llvm")
    assert _defined(f) < len(f.kernels) / 3  # 12 equal layers: ~one body per kind
    want = sg.function([x], [loss, *grads], backend="numpy")(data)
    for g, w in zip(f(data), want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
    rows = f.profile(data, n=3)  # the profile module calls the same shared bodies
    assert len(rows) == len(f.kernels)


def test_shared_bodies_train_and_run_epochs_as_the_reference():
    x, loss, Ws, grads, rng = _stack(8)
    data = rng.normal(size=(12, 8))
    updates = {W: W - 0.2 * g for W, g in zip(Ws, grads)}
    start = [W.get_value() for W in Ws]
    f = sg.function([x], loss, updates=updates, backend="llvm")
    got = f.epoch(data, batch_size=4)
    after = [W.get_value() for W in Ws]
    for W, v in zip(Ws, start):
        W.set_value(v)
    ref = sg.function([x], loss, updates=updates, backend="numpy")
    want = [ref(data[i:i + 4]) for i in range(0, 12, 4)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    for a, W in zip(after, Ws):
        np.testing.assert_allclose(a, W.get_value(), rtol=1e-12, atol=1e-14)


def test_a_dim_built_from_a_symbol_no_input_binds_keeps_each_variables_length(backend):
    """Two inputs of static shape (2*n, 3) where no input binds n: each has its own length
    (as in the reference), so they must not share the dim's table slot -- sharing ran
    one's cumsum over the other's length (wrong sums, then out-of-bounds writes)."""
    n = sg.tensor("z", ("n",)).shape[0]
    a, b = sg.tensor("a", (2 * n, 3)), sg.tensor("b", (2 * n, 3))
    out = sg.sum(sg.cumsum(a, axis=0)) + 10 * sg.sum(sg.cumsum(b, axis=0))
    f = sg.function([a, b], out, backend=backend)
    for rows in ((4, 6), (600, 4)):
        A, B = np.ones((rows[0], 3)), np.ones((rows[1], 3))
        want = np.cumsum(A, axis=0).sum() + 10 * np.cumsum(B, axis=0).sum()
        assert f(A, B) == want


def test_an_input_dim_built_from_a_later_inputs_symbol_is_checked(backend):
    """x: (2*b,) before y: (b, 2): 2*b is checked once y has bound b (it was skipped)."""
    x, y = sg.tensor("x", (2 * sg.tensor("t", ("b",)).shape[0],)), sg.tensor("y", ("b", 2))
    f = sg.function([x, y], sg.sum(sg.cumsum(x)) + sg.sum(y), backend=backend)
    assert f(np.ones(6), np.ones((3, 2))) == 21 + 6
    with pytest.raises(ValueError, match=r"input 'x': dim 0 is 2\*b = 6, got 10"):
        f(np.ones(10), np.ones((3, 2)))


def test_programs_from_the_cache_call_the_same_shared_bodies():
    x, loss, Ws, grads, rng = _stack(12)
    cold = sg.function([x], [loss, *grads], backend="llvm")
    warm = sg.function([x], [loss, *grads], backend="llvm")
    assert warm.compile_stats["cache_level"] == "program"
    assert [k.function for k in warm.kernels] == [k.function for k in cold.kernels]
    assert any(k.function != k.name for k in warm.kernels)


def _loop_over_time(steps):
    """A hand-unrolled gated recurrence reading x[:, t] (symbolic batch), with an update."""
    rng = np.random.default_rng(steps)
    x = sg.tensor("x", ("batch", steps, 3))
    W = sg.shared(rng.normal(size=(3, 3)) * 0.5, name="W")
    h = sg.tanh(x[:, 0, :] @ W)
    for t in range(1, steps):
        h = sg.tanh(x[:, t, :] @ W + h * sg.nn.sigmoid(x[:, -t, ::2].sum(axis=1, keepdims=True)))
    loss = sg.mean(h * h)
    return x, W, loss, rng


def test_the_kernels_of_every_time_step_are_one_body_and_compute_the_reference():
    """x[:, t]'s start is an argument of the call, not a per-node table slot: the number of
    kernel bodies does not grow with the number of steps."""
    bodies = {}
    for steps in (8, 24):
        x, W, loss, rng = _loop_over_time(steps)
        g = sg.grad(loss, W)
        f = sg.function([x], [loss, g], updates={W: W - 0.1 * g}, backend="llvm")
        bodies[steps] = _defined(f)
        ref = sg.function([x], [loss, g], backend="numpy")
        data = rng.normal(size=(5, steps, 3))
        want = ref(data)
        for got, w in zip(f(data), want):
            np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-14)
    assert bodies[24] == bodies[8]
