"""What a compiled function keeps between calls: a bounded number of plans (shape signatures)
and bytes, least recently used out first, and nothing of a one-off huge call.

The oracle for "kept" is independent of the backend's own bookkeeping: the live step builtins
of a function (found through the garbage collector) and the arenas they keep alive.  Results
are checked against the numpy backend while plans are evicted and rebuilt.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

import symgraph as sg
from codegen import backend as llvm_backend
from codegen.native import pycall


def live_arenas(f) -> list[int]:
    """Bytes of the arena of every live step builtin of ``f`` (what its plans keep)."""
    gc.collect()
    module = f.program.module
    return [ctx.keepalive[-1][0].nbytes for ctx in gc.get_objects()
            if type(ctx) is pycall.KernelContext and ctx.keepalive[2] is module]


def mlp(backend: str, hidden: int = 32):
    """A one-hidden-layer SGD step whose arena grows with the batch size."""
    rng = np.random.default_rng(0)
    x = sg.tensor("x", shape=("batch", 8))
    y = sg.tensor("y", shape=("batch",), dtype="int64")
    W1 = sg.shared(rng.standard_normal((8, hidden)) * 0.3, name="W1")
    W2 = sg.shared(rng.standard_normal((hidden, 3)) * 0.3, name="W2")
    loss = sg.nn.cross_entropy(sg.nn.relu(x @ W1) @ W2, y)
    grads = sg.grad(loss, [W1, W2])
    updates = {W: W - 0.1 * g for W, g in zip([W1, W2], grads)}
    return sg.function([x, y], loss, updates=updates, backend=backend), [W1, W2]


def batch(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 8)), rng.integers(0, 3, n)


def test_thirty_batch_sizes_keep_at_most_max_plans():
    f, _ = mlp("llvm")
    for n in range(1, 31):
        f(*batch(n * 7))
    arenas = live_arenas(f)
    assert len(arenas) == llvm_backend.MAX_PLANS
    kept = f.memory_kept()
    assert kept["plans"] == llvm_backend.MAX_PLANS
    assert sum(arenas) <= kept["bytes"] <= llvm_backend.MAX_KEPT_BYTES
    # the kept ones are the most recent: the last batch size runs without building a plan
    built = f.program._make_plan
    f.program._make_plan = lambda *a: pytest.fail("the most recent plan was not kept")
    try:
        f(*batch(30 * 7, seed=1))
    finally:
        f.program._make_plan = built


def test_the_byte_budget_bounds_what_is_kept(monkeypatch):
    f, _ = mlp("llvm")
    f(*batch(10))
    small = f.memory_kept()["bytes"]
    monkeypatch.setattr(llvm_backend, "MAX_KEPT_BYTES", 40 * small)
    for n in range(10, 310, 10):  # 30 batch sizes, arenas growing with n
        f(*batch(n))
        assert f.memory_kept()["bytes"] <= 40 * small
    assert sum(live_arenas(f)) <= 40 * small
    assert 1 <= f.memory_kept()["plans"] < llvm_backend.MAX_PLANS


def test_a_huge_call_keeps_no_arena(monkeypatch):
    f, params = mlp("llvm")
    g, ref_params = mlp("numpy")
    f(*batch(16))
    g(*batch(16))
    before = sorted(live_arenas(f))
    limit = 64 * 1024
    monkeypatch.setattr(llvm_backend, "MAX_PLAN_BYTES", limit)
    big = batch(2000, seed=3)  # an arena of ~0.8 MB: built for the call, dropped after it
    np.testing.assert_allclose(f(*big), g(*big), rtol=1e-10)
    assert sorted(live_arenas(f)) == before
    assert max(live_arenas(f)) < limit
    for W, R in zip(params, ref_params):
        np.testing.assert_allclose(W.get_value(), R.get_value(), rtol=1e-10)
    other = batch(1500, seed=4)  # another one-off shape: built and dropped too
    np.testing.assert_allclose(f(*other), g(*other), rtol=1e-10)
    assert sorted(live_arenas(f)) == before
    np.testing.assert_allclose(f(*big), g(*big), rtol=1e-10)
    assert sorted(live_arenas(f)) == before


def test_a_huge_shape_called_again_is_kept(monkeypatch):
    """A big signature called twice in a row (a training step's shape, not a one-off
    batch) keeps its plan from the second call: rebuilding it cost an LSTM of 200 steps
    5.7x its step's time."""
    f, params = mlp("llvm")
    g, ref_params = mlp("numpy")
    monkeypatch.setattr(llvm_backend, "MAX_PLAN_BYTES", 64 * 1024)
    big = batch(2000, seed=3)
    np.testing.assert_allclose(f(*big), g(*big), rtol=1e-10)
    assert f.memory_kept()["plans"] == 0
    np.testing.assert_allclose(f(*big), g(*big), rtol=1e-10)
    kept = f.memory_kept()
    assert kept["plans"] == 1 and kept["largest"] > 64 * 1024
    arena = live_arenas(f)
    np.testing.assert_allclose(f(*big), g(*big), rtol=1e-10)  # from the kept plan
    assert live_arenas(f) == arena
    for W, R in zip(params, ref_params):
        np.testing.assert_allclose(W.get_value(), R.get_value(), rtol=1e-10)


def test_results_stay_right_while_plans_are_evicted_and_rebuilt(monkeypatch):
    monkeypatch.setattr(llvm_backend, "MAX_PLANS", 2)
    f, params = mlp("llvm")
    g, ref_params = mlp("numpy")
    sizes = [3, 5, 7, 3, 9, 5, 1, 7, 3, 11, 3, 5]
    for step, n in enumerate(sizes * 2):
        data = batch(n, seed=step)
        np.testing.assert_allclose(f(*data), g(*data), rtol=1e-10, err_msg=f"step {step}")
    assert len(live_arenas(f)) <= 2
    for W, R in zip(params, ref_params):
        np.testing.assert_allclose(W.get_value(), R.get_value(), rtol=1e-9)


def test_least_recently_used_plan_goes_first(monkeypatch):
    monkeypatch.setattr(llvm_backend, "MAX_PLANS", 2)
    f, _ = mlp("llvm")
    program = f.program
    built = []
    make = program._make_plan

    def counting(arrays, bindings):
        built.append(arrays[0].shape[0])
        return make(arrays, bindings)
    program._make_plan = counting
    for n in (4, 6, 4, 4, 8, 4, 6):  # 8 evicts 6 (4 was used since), 6 then evicts 8
        f(*batch(n))
    assert built == [4, 6, 8, 6]


def test_epoch_uses_the_same_bounded_plans(monkeypatch):
    monkeypatch.setattr(llvm_backend, "MAX_PLANS", 3)
    f, _ = mlp("llvm")
    x, y = batch(200)
    for size in (8, 16, 24, 32, 40):
        f.epoch(x, y, batch_size=size)
    assert len(live_arenas(f)) <= 3


@pytest.mark.parametrize("nbytes", [64, 1000, (1 << 20) - 1, 1 << 20, (3 << 20) + 5])
def test_arenas_are_zeroed_aligned_and_live_as_long_as_their_array(nbytes):
    """Arenas from 1 MiB on come from a 2 MiB-aligned anonymous mapping advised for huge
    pages (where the OS has MADV_HUGEPAGE); every arena is zeroed, 64-byte aligned and owns
    its memory."""
    import mmap

    from codegen import memory

    arena = memory.aligned_empty(nbytes)
    assert arena.nbytes == nbytes and arena.ctypes.data % memory.ALIGN == 0
    assert not arena.any()
    if nbytes >= memory.HUGE_FROM and hasattr(mmap, "MADV_HUGEPAGE"):
        assert arena.ctypes.data % memory.HUGE_PAGE == 0
    arena[:] = 7
    view = arena[nbytes // 2:]
    del arena
    gc.collect()
    assert (view == 7).all()  # the mapping lives while a view of it does


def test_a_static_dim_the_run_time_shape_contradicts_is_an_error_not_garbage(monkeypatch):
    """Kernels loop over a static dim's own value. An op whose ``infer`` got a dim wrong
    (as slicing did for ``x[:-k]``: 0 for a length of 4) made the llvm backend return an
    unwritten buffer; the plan now checks every output's static dims against its run-time
    shape, as the reference evaluator does."""
    from symgraph.ops import indexing

    monkeypatch.setattr(indexing, "_slice_length", lambda d, s: 0)  # a wrong shape rule
    x = sg.tensor("x", ("n",))
    y = x[1:] * 2.0
    assert y.shape == (0,)
    f = sg.function([x], y, backend="llvm")
    with pytest.raises(ValueError, match="getitem: dim 0 must be 0, got 4"):
        f(np.arange(5.0))


def test_two_huge_shapes_that_alternate_are_kept(monkeypatch):
    """A full batch and the epoch's ragged last one, both big, alternate (A, B, A, B, ...):
    keeping only a signature equal to the previous big build kept neither, and every call
    rebuilt its plan."""
    f, params = mlp("llvm")
    g, ref_params = mlp("numpy")
    monkeypatch.setattr(llvm_backend, "MAX_PLAN_BYTES", 64 * 1024)
    built = []
    make = f.program._make_plan
    monkeypatch.setattr(f.program, "_make_plan", lambda *a: built.append(1) or make(*a))
    shapes = [batch(2000, seed=1), batch(1900, seed=2)]
    for _ in range(6):
        for arrays in shapes:
            np.testing.assert_allclose(f(*arrays), g(*arrays), rtol=1e-10)
    assert len(built) <= 6 and f.memory_kept()["plans"] == 2
    for W, R in zip(params, ref_params):
        np.testing.assert_allclose(W.get_value(), R.get_value(), rtol=1e-10)
