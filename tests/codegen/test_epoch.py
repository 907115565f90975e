"""The native epoch (``codegen.epoch``): minibatches read in place by pointer offsets, a
shuffled epoch's rows gathered per step through the permutation (the dataset is never copied
by ``a[order]``), outputs stacked natively -- and all of it equal, bit for bit, to the Python
loop of single steps over ``a[order][i:i + batch_size]``."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
from codegen.epoch import _address
from symgraph.function import ShuffledArrays


def _spy_native(f) -> list:
    """Record what ``f``'s program's native epoch got and whether it ran."""
    seen = []
    steps = f.program.epoch_steps

    def spy(arrays, batch_size):
        result = steps(arrays, batch_size)
        seen.append((type(arrays), result is not None))
        return result
    f.program.epoch_steps = spy
    return seen


@pytest.fixture
def no_dataset_copy(monkeypatch):
    """A shuffled epoch that copies the whole dataset (``ShuffledArrays.arrays``) fails."""
    def refuse(self):
        raise AssertionError("the shuffled dataset was copied")
    monkeypatch.setattr(ShuffledArrays, "arrays", refuse)


@pytest.mark.parametrize("trailing", [(64,), ("d",), (3, "d")])
@pytest.mark.parametrize("n,batch_size", [(23, 5), (40, 8), (9, 4)])
def test_permutation_gather_equals_numpy_fancy_indexing(trailing, n, batch_size,
                                                        no_dataset_copy):
    """Rows gathered natively through the permutation are numpy's ``a[order]`` rows: fixed
    row sizes (constant row copies), symbolic ones (row bytes read at run time), 1-d int64
    labels, a non-contiguous and an int32 array (converted first)."""
    rng = np.random.default_rng(n)
    shape = tuple(3 if d == "d" else d for d in trailing)
    x = sg.tensor("x", ("b", *trailing), "float32")
    y = sg.tensor("y", ("b",), "int64")
    f = sg.function([x, y], [x * 2.0, y + 1], backend="llvm")
    seen = _spy_native(f)
    X = rng.standard_normal((n, *shape)).astype(np.float32)
    Xs = np.repeat(X, 2, axis=0)[::2]  # the same values, not contiguous
    Y = rng.integers(0, 100, n)
    for xa, ya in ((X, Y), (Xs, Y.astype(np.int32))):
        got_x, got_y = f.epoch(xa, ya, batch_size=batch_size, shuffle=11)
        order = np.random.default_rng(11).permutation(n)
        np.testing.assert_array_equal(got_x, (X[order] * 2.0).reshape(got_x.shape))
        np.testing.assert_array_equal(got_y, (Y[order] + 1).reshape(got_y.shape))
    assert seen == [(ShuffledArrays, True)] * 2


def _mlp(dtype: str):
    rng = np.random.default_rng(0)
    x = sg.tensor("x", ("b", 6), dtype)
    y = sg.tensor("y", ("b",), "int64")
    W1 = sg.shared(rng.standard_normal((6, 5)).astype(dtype), name="W1")
    b1 = sg.shared(np.zeros(5, dtype), name="b1")
    W2 = sg.shared(rng.standard_normal((5, 3)).astype(dtype), name="W2")
    loss = sg.nn.cross_entropy(sg.nn.relu(x @ W1 + b1) @ W2, y)
    params = [W1, b1, W2]
    lr = np.dtype(dtype).type(0.1)
    updates = {q: q - lr * g for q, g in zip(params, sg.grad(loss, params))}
    return sg.function([x, y], [loss, sg.argmax(x @ W1, 1)], updates, backend="llvm"), params


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shuffle", [None, 5])
@pytest.mark.parametrize("n,batch_size", [(30, 6), (31, 6), (12, 5)])
def test_epoch_equals_the_python_loop_bit_for_bit(dtype, shuffle, n, batch_size,
                                                  no_dataset_copy):
    """Losses, a per-example output and the in-place SGD updates: the native epoch (the
    last partial batch a second native call) equals the loop of calls on ``a[order]``
    exactly."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, 6)).astype(dtype)
    Y = rng.integers(0, 3, n)
    f, params = _mlp(dtype)
    seen = _spy_native(f)
    losses, picks = f.epoch(X, Y, batch_size=batch_size, shuffle=shuffle)
    assert seen == [(list if shuffle is None else ShuffledArrays, True)]
    g, ref = _mlp(dtype)
    order = np.arange(n) if shuffle is None else np.random.default_rng(shuffle).permutation(n)
    Xo, Yo = X[order], Y[order]
    steps = [g(Xo[i:i + batch_size], Yo[i:i + batch_size]) for i in range(0, n, batch_size)]
    np.testing.assert_array_equal(losses, np.array([s[0] for s in steps]))
    # equal shapes stack (step, example), a smaller last batch concatenates (example)
    join = np.stack if n % batch_size == 0 else np.concatenate
    np.testing.assert_array_equal(picks, join([s[1] for s in steps]))
    assert losses.dtype == np.dtype(dtype) and picks.dtype == steps[0][1].dtype
    for a, b in zip(params, ref):
        np.testing.assert_array_equal(a.get_value(), b.get_value())


def _adam_like(double_buffered: bool):
    """A step with updates in place (b, the moments) and, with ``double_buffered``, one
    whose new value is also read by an output (W: a pool of two buffers on llvm)."""
    rng = np.random.default_rng(4)
    x = sg.tensor("x", ("b", 4), "float64")
    y = sg.tensor("y", ("b",), "int64")
    W = sg.shared(rng.standard_normal((4, 3)), name="W")
    b = sg.shared(np.zeros(3), name="b")
    m, v = sg.shared(np.zeros((4, 3)), name="m"), sg.shared(np.zeros((4, 3)), name="v")
    loss = sg.nn.cross_entropy(x @ W + b, y)
    gW, gb = sg.grad(loss, [W, b])
    m2, v2 = 0.9 * m + 0.1 * gW, 0.99 * v + 0.01 * gW * gW
    new_W = W - 0.05 * m2 / (sg.sqrt(v2) + 1e-8)
    outputs = [loss, new_W[:, y].sum()] if double_buffered else [loss, sg.argmax(x @ W, 1)]
    f = sg.function([x, y], outputs, {W: new_W, b: b - 0.1 * gb, m: m2, v: v2},
                    backend="llvm")
    return f, [W, b, m, v]


@pytest.fixture
def native_partial(monkeypatch):
    """The last partial batch runs natively whatever the variables' size."""
    import codegen.epoch

    monkeypatch.setattr(codegen.epoch, "PARTIAL_NATIVE_BYTES", 0)


@pytest.mark.parametrize("double_buffered", [False, True])
@pytest.mark.parametrize("shuffle", [None, 3])
def test_the_partial_last_batch_runs_natively_and_nothing_is_copied(
        double_buffered, shuffle, monkeypatch, native_partial):
    """The last partial batch is a second native call on its own plan, reading what the
    full steps left: equal to the loop of calls bit for bit, over two epochs (the second
    starts from buffers of the first), and ``Function.epoch`` copies no shared variable
    to undo a failure (it copied every one, Adam's moments included, for that step)."""
    import sys

    function_module = sys.modules["symgraph.function"]  # (sg.function is the function)

    class NoCopies:
        def __getattr__(self, name):
            if name == "copy":
                raise AssertionError("Function.epoch copied a shared variable")
            return getattr(storage, name)

    from symgraph import storage
    monkeypatch.setattr(function_module, "storage", NoCopies())
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((23, 4)), rng.integers(0, 3, 23)
    f, params = _adam_like(double_buffered)
    seen = []
    steps = f.program.epoch_steps

    def spy(arrays, batch_size):
        result = steps(arrays, batch_size)
        seen.append(result is not None and result[1] is not None)
        return result
    f.program.epoch_steps = spy
    g, ref = _adam_like(double_buffered)
    for epoch in range(2):
        got = f.epoch(X, Y, batch_size=5, shuffle=None if shuffle is None else shuffle + epoch)
        order = np.arange(23) if shuffle is None else \
            np.random.default_rng(shuffle + epoch).permutation(23)
        want = [g(X[order][i:i + 5], Y[order][i:i + 5]) for i in range(0, 23, 5)]
        np.testing.assert_array_equal(got[0], [w[0] for w in want])
        join = np.concatenate if not double_buffered else np.stack
        np.testing.assert_array_equal(got[1], join([w[1] for w in want]))
        for a, b in zip(params, ref):
            np.testing.assert_array_equal(a.get_value(), b.get_value())
    assert seen == [True, True]


def test_a_failing_partial_last_batch_changes_nothing_and_is_named(native_partial):
    """The partial batch's step fails (a label out of range) after the native full steps:
    the error names that step and its example, every variable is bit-identical to its value
    before the epoch, and the same arrays: nothing was written, so nothing was copied."""
    f, params = _adam_like(True)
    rng = np.random.default_rng(6)
    X, Y = rng.standard_normal((13, 4)), rng.integers(0, 3, 13)
    f.epoch(X, Y, batch_size=4)
    before = [p._value for p in params]
    copies = [b.copy() for b in before]
    Y[12] = 3
    with pytest.raises(IndexError, match="epoch step 3") as err:
        f.epoch(X, Y, batch_size=4)
    assert err.value.step == 3
    for p, b, c in zip(params, before, copies):
        assert p._value is b
        np.testing.assert_array_equal(b, c)


def test_an_interrupt_before_the_partial_step_keeps_the_full_steps(native_partial,
                                                                   monkeypatch):
    """Ctrl-C is not a failure (Function.epoch): the full steps that ran stay applied, each
    whole, when it lands between the full loop and the partial step."""
    import codegen.epoch

    f, params = _adam_like(True)
    g, ref = _adam_like(True)
    rng = np.random.default_rng(9)
    X, Y = rng.standard_normal((13, 4)), rng.integers(0, 3, 13)
    loop = codegen.epoch._loop

    def interrupted(*args, **kwargs):
        if kwargs.get("first_step"):
            raise KeyboardInterrupt
        return loop(*args, **kwargs)
    monkeypatch.setattr(codegen.epoch, "_loop", interrupted)
    with pytest.raises(KeyboardInterrupt):
        f.epoch(X, Y, batch_size=4)
    for i in range(0, 12, 4):
        g(X[i:i + 4], Y[i:i + 4])
    for a, b in zip(params, ref):
        np.testing.assert_array_equal(a.get_value(), b.get_value())


def test_the_partial_batch_runs_natively_from_partial_native_bytes_of_variables():
    """Below the threshold the partial batch is a call (copying small variables is cheaper
    than the native call's Python side); from it on, native; the same values either way."""
    import codegen.epoch

    rng = np.random.default_rng(7)
    X, Y = rng.standard_normal((11, 4)), rng.integers(0, 3, 11)
    results = []
    for extra in (0, codegen.epoch.PARTIAL_NATIVE_BYTES // 8):
        f, params = _adam_like(False)
        big = sg.shared(np.zeros(max(extra, 1)), name="big")
        g = sg.function(f.inputs, f.outputs[0], {**dict(f.updates), big: big + 1.0},
                        backend="llvm")
        seen = []
        steps = g.program.epoch_steps
        g.program.epoch_steps = lambda a, b, seen=seen, steps=steps: (
            seen.append(steps(a, b)) or seen[-1])
        results.append((g.epoch(X, Y, batch_size=4), [p.get_value() for p in params]))
        assert (seen[0][1] is not None) == bool(extra)
    (small, small_params), (large, large_params) = results
    np.testing.assert_array_equal(small, large)
    for a, b in zip(small_params, large_params):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("at", [3, 13])  # in a full batch (native), in the partial last one
def test_failed_shuffled_epoch_restores_parameters(at):
    w = sg.shared(np.ones(3), name="w")
    i = sg.tensor("i", ("k",), "int64")
    f = sg.function([i], sg.sum(w[i]), updates={w: w * 2}, backend="llvm")
    idx = np.arange(14) % 3
    order = np.random.default_rng(2).permutation(14)
    bad = order[at]  # the example the shuffled epoch reads at position ``at``
    idx[bad] = 7
    with pytest.raises(IndexError):
        f.epoch(idx, batch_size=4, shuffle=2)
    np.testing.assert_array_equal(w.get_value(), np.ones(3))
    idx[bad] = 0
    got = f.epoch(idx, batch_size=4, shuffle=2)
    expected = [len(idx[order][s:s + 4]) * 2.0 ** k for k, s in enumerate(range(0, 14, 4))]
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(w.get_value(), np.full(3, 16.0))


def test_shuffled_arrays_is_the_shuffled_data_for_other_backends():
    """A backend that does not know ``ShuffledArrays`` reads the shuffled arrays."""
    a, b = np.arange(10.0), np.arange(20).reshape(10, 2)
    order = np.random.default_rng(0).permutation(10)
    s = ShuffledArrays([a, b], order)
    assert len(s) == 2
    np.testing.assert_array_equal(s[0], a[order])
    np.testing.assert_array_equal(s[1], b[order])
    assert s[0] is s.arrays()[0]  # gathered once


def test_repeated_epochs_reuse_checks_only_for_the_same_signature():
    """The first minibatch's checks are cached by (type, shape, dtype) and the shared shapes:
    a repeated epoch on read-only data equals the loop, converted inputs (float64 features,
    int32 labels) are converted every time, and a different signature is checked again."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((24, 6)).astype(np.float32)
    Y = rng.integers(0, 3, 24)
    X.setflags(write=False)
    Y.setflags(write=False)
    f, params = _mlp("float32")
    g, ref = _mlp("float32")
    seen = _spy_native(f)
    for xa, ya in ((X, Y), (X, Y), (X.astype(np.float64), Y.astype(np.int32)), (X, Y)):
        losses, _ = f.epoch(xa, ya, batch_size=6)
        expected = [g(X[i:i + 6], Y[i:i + 6])[0] for i in range(0, 24, 6)]
        np.testing.assert_array_equal(losses, expected)
    assert seen == [(list, True)] * 4
    for a, b in zip(params, ref):
        np.testing.assert_array_equal(a.get_value(), b.get_value())
    with pytest.raises(ValueError, match="'x'"):  # 5 features: the checks ran again
        f.epoch(np.zeros((24, 5), np.float32), Y, batch_size=6)
    with pytest.raises(TypeError, match="'y'"):
        f.epoch(X, Y.astype(np.float32), batch_size=6)
    for a, b in zip(params, ref):  # the failed epochs changed nothing
        np.testing.assert_array_equal(a.get_value(), b.get_value())


@pytest.mark.parametrize("make", [
    lambda: np.arange(12.0),
    lambda: np.arange(12.0)[2:],
    lambda: np.arange(24.0).reshape(4, 6)[:, ::2],  # not contiguous: numpy's pointer
    lambda: np.zeros(0),
    lambda: np.frombuffer(b"\x00" * 64, np.float64),  # read-only
])
def test_address_is_the_data_pointer(make):
    a = make()
    assert _address(a) == a.ctypes.data


def test_sg_epoch_is_compiled_on_the_first_epoch_call_only():
    """A function that is only called compiles no epoch loop; the first ``epoch`` compiles
    it as a module of its own (cached by its text: a second program of the same graph
    reuses it) and it calls this program's step."""
    def build():
        w = sg.shared(np.ones(3), name="w")
        x = sg.tensor("x", ("n", 3))
        return w, sg.function([x], sg.sum(x * w), updates={w: w * 0.5}, backend="llvm")

    w, f = build()
    X = np.arange(24.0).reshape(8, 3)
    f(X[:2])
    assert "sg_epoch" not in f.llvm_ir() and getattr(f.program, "_epoch_module", None) is None
    w.set_value(np.ones(3))
    got = f.epoch(X, batch_size=2)
    np.testing.assert_array_equal(got, [X[i:i + 2].sum() * 0.5 ** (i // 2) for i in range(0, 8, 2)])
    assert f.program._epoch_module.stats["cache"] in ("miss", "disk")
    w2, g = build()
    g.epoch(X, batch_size=2)
    assert g.program._epoch_module.stats["cache"] == "memory"
    np.testing.assert_array_equal(w2.get_value(), np.full(3, 0.5 ** 4))


@pytest.mark.parametrize("shuffle", [None, 4])
@pytest.mark.parametrize("n", [12, 14])  # an even (6) and an odd (7) count of native steps
def test_double_buffered_and_in_place_updates_equal_the_python_loop(shuffle, n):
    """An update that reads its variable at other indices than it writes (transposed) cannot
    be written in place: its steps alternate between two buffers (``epoch_module``: A, then
    B, then A ...), next to an in-place one.  Over two epochs on one plan (its control-block
    layout reused), both equal the loop of calls."""
    def build():
        w = sg.shared(np.linspace(-1, 1, 16).reshape(4, 4), name="w")  # double-buffered
        c = sg.shared(np.zeros(4), name="c")                             # in place
        x = sg.tensor("x", ("b", 4))
        out = sg.sum(x @ w, axis=1) + sg.sum(c)
        f = sg.function([x], out, updates={w: w.T * 0.9 + 0.01 * sg.mean(x, 0),
                                           c: c + sg.sum(x, 0)}, backend="llvm")
        return f, (w, c)

    f, params = build()
    g, ref = build()
    seen = _spy_native(f)
    X = np.random.default_rng(n).standard_normal((n, 4))
    for epoch in range(2):
        seed = None if shuffle is None else shuffle + epoch
        outs = f.epoch(X, batch_size=2, shuffle=seed)
        order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
        np.testing.assert_array_equal(outs, np.stack([g(X[order][i:i + 2])
                                                      for i in range(0, n, 2)]))
        for a, b in zip(params, ref):
            np.testing.assert_array_equal(a.get_value(), b.get_value())
    targets = [t for run in f.program._cache.values() for t in run.plan.targets]
    assert any(isinstance(t, int) for t in targets)      # c: in place
    assert any(not isinstance(t, int) for t in targets)  # w: two buffers
    assert seen == [(list if shuffle is None else ShuffledArrays, True)] * 2


@pytest.mark.parametrize("shuffle", [None, 3])
def test_a_repeated_epoch_skips_the_checks_while_its_plan_is_kept(shuffle, monkeypatch):
    """The first minibatch is checked (``check_inputs``) on a signature's first epoch only,
    while the program's plan cache keeps the plan; once the plan is dropped, the next epoch
    checks again and makes it anew, and every epoch equals the loop of calls."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 6)).astype(np.float32)
    Y = rng.integers(0, 3, 20)
    f, params = _mlp("float32")
    g, ref = _mlp("float32")
    request = f.program.request
    checks = []
    real = type(request).check_inputs
    monkeypatch.setattr(type(request), "check_inputs", lambda self, args: (
        checks.append(len(args)) if self is request else None) or real(self, args))
    for epoch in range(4):
        if epoch == 2:
            f.program._cache.clear()  # (as its LRU bound would)
            f.program._kept_bytes = 0
        seed = None if shuffle is None else shuffle + epoch
        losses, _ = f.epoch(X, Y, batch_size=5, shuffle=seed)
        order = np.arange(20) if seed is None else np.random.default_rng(seed).permutation(20)
        expected = [g(X[order][i:i + 5], Y[order][i:i + 5])[0] for i in range(0, 20, 5)]
        np.testing.assert_array_equal(losses, expected)
        for a, b in zip(params, ref):
            np.testing.assert_array_equal(a.get_value(), b.get_value())
    assert checks == [2, 2]  # epochs 0 and 2


@pytest.mark.parametrize("shuffle", [None, 1])
@pytest.mark.parametrize("case", ["symbolic dim", "empty max"])
def test_a_first_minibatch_refused_is_named_step_0_as_in_the_python_loop(backend, case,
                                                                         shuffle):
    """The native loop checks the first minibatch (and builds its plan) before running: an
    error there is step 0's, which the reference loop names (``err.step``, the message's
    "epoch step 0 (examples 0:2 ...)"); the llvm backend raised it bare. (A wrong rank or
    fixed dim is the whole array's: ``test_epoch_failures``.)"""
    w = sg.shared(np.float64(0.0), name="w")
    x = sg.tensor("x", ("n", "k"))
    if case == "empty max":  # the plan's zero-size reduction check
        f = sg.function([x], x.max(axis=1).sum(), updates={w: w + 1}, backend=backend)
        data = [np.ones((8, 0))]
    else:  # Function.check_inputs of the first minibatch: k bound to 3, then 2
        z = sg.tensor("z", ("n", "k"))
        f = sg.function([x, z], x.sum() + z.sum(), updates={w: w + 1}, backend=backend)
        data = [np.ones((8, 3)), np.ones((8, 2))]
    with pytest.raises(ValueError, match=r"^epoch step 0 \(examples 0:2") as err:
        f.epoch(*data, batch_size=2, shuffle=shuffle)
    assert err.value.step == 0
    assert w.get_value() == 0.0
