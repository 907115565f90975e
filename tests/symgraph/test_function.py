"""``sg.function`` call semantics (docs/api.md, "Compiled functions").

Oracles: numpy arithmetic on the same arrays, and the Python loop of single
calls that ``f.epoch`` promises to equal.
"""

import re

import numpy as np
import pytest

import symgraph as sg

# --------------------------------------------------------------------------- outputs


def test_single_output_returns_single_value(backend):
    x = sg.tensor("x", (3,))
    f = sg.function([x], x * 2, backend=backend)
    out = f(np.array([1.0, 2.0, 3.0]))
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [2.0, 4.0, 6.0])
    s = sg.function([x], x.sum(), backend=backend)(np.ones(3))
    assert np.ndim(s) == 0 and s == 3.0


def test_list_outputs_return_list(backend):
    x = sg.tensor("x", (3,))
    f = sg.function([x], [x.sum(), x * 2], backend=backend)
    out = f(np.ones(3))
    assert isinstance(out, list) and len(out) == 2
    assert out[0] == 3.0
    np.testing.assert_array_equal(out[1], [2.0, 2.0, 2.0])
    one = sg.function([x], [x.sum()], backend=backend)(np.ones(3))
    assert isinstance(one, list) and len(one) == 1 and one[0] == 3.0


def test_function_without_inputs_and_outputs_are_copies(backend):
    W = sg.shared(np.arange(3.0), name="W")
    f = sg.function([], W, backend=backend)
    out = f()
    out[0] = 100.0
    np.testing.assert_array_equal(W.get_value(), [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(f(), [0.0, 1.0, 2.0])


def test_wrong_number_of_arguments(backend):
    x = sg.tensor("x", (3,))
    f = sg.function([x], x * 2, backend=backend)
    with pytest.raises(TypeError):
        f()
    with pytest.raises(TypeError):
        f(np.ones(3), np.ones(3))


# --------------------------------------------------------------------------- updates


def test_updates_are_simultaneous_swap(backend):
    a = sg.shared(np.array([1.0, 2.0]), name="a")
    b = sg.shared(np.array([3.0, 4.0]), name="b")
    f = sg.function([], [], updates={a: b, b: a}, backend=backend)
    f()
    np.testing.assert_array_equal(a.get_value(), [3.0, 4.0])
    np.testing.assert_array_equal(b.get_value(), [1.0, 2.0])
    f()
    np.testing.assert_array_equal(a.get_value(), [1.0, 2.0])
    np.testing.assert_array_equal(b.get_value(), [3.0, 4.0])


def test_updates_read_old_values_and_outputs_see_old_values(backend):
    a = sg.shared(np.array(2.0), name="a")
    b = sg.shared(np.array(5.0), name="b")
    f = sg.function([], [a, b, a * b], updates=[(a, a + b), (b, a - b)], backend=backend)
    av, bv, pv = f()
    assert (av, bv, pv) == (2.0, 5.0, 10.0)
    assert a.get_value() == 7.0 and b.get_value() == -3.0


def test_update_of_a_variable_the_graph_never_reads(backend):
    """Keeping the last loss, or a transpose of a weight, in a shared variable: its old value
    is read by nothing (the llvm backend raised a bare KeyError for such a target)."""
    x = sg.tensor("x", shape=("batch", 3), dtype="float64")
    W = sg.shared(np.arange(6.0).reshape(3, 2), name="W")
    last, Wt, flipped = (sg.shared(np.zeros(s), name=n)
                         for s, n in (((), "last"), ((2, 3), "Wt"), ((3, 2), "flipped")))
    loss = sg.mean(sg.square(x @ W))
    f = sg.function([x], loss, updates={W: W - 0.01 * sg.grad(loss, W), last: loss,
                                        Wt: W.T, flipped: sg.flip(W, 0)}, backend=backend)
    X = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    W0 = W.get_value()
    got = f(X)
    assert last.get_value() == got
    np.testing.assert_allclose(got, np.mean((X @ W0) ** 2), rtol=1e-12)
    np.testing.assert_array_equal(Wt.get_value(), W0.T)
    np.testing.assert_array_equal(flipped.get_value(), W0[::-1])


def test_sgd_update_keeps_dtype_and_shape(backend):
    W = sg.shared(np.ones((2, 3), "float32"), name="W")
    x = sg.tensor("x", ("batch", 2), dtype="float32")
    loss = ((x @ W) ** 2).mean()
    gW = sg.grad(loss, W)
    f = sg.function([x], loss, updates={W: W - 0.1 * gW}, backend=backend)
    xv = np.array([[1.0, 0.0], [0.0, 2.0]], "float32")
    lv = f(xv)
    assert np.asarray(lv).dtype == np.float32
    Wv = np.ones((2, 3))
    expected_loss = np.mean((xv @ Wv) ** 2)
    expected_W = Wv - 0.1 * (2 * xv.T @ (xv @ Wv) / 6)
    np.testing.assert_allclose(lv, expected_loss, rtol=1e-6)
    new = W.get_value()
    assert new.dtype == np.float32 and new.shape == (2, 3)
    np.testing.assert_allclose(new, expected_W, rtol=1e-6)


def test_update_of_float32_with_float64_expression_is_cast(backend):
    W = sg.shared(np.zeros(2, "float32"), name="W")
    f = sg.function([], [], updates={W: W + np.float64(0.5)}, backend=backend)
    f()
    assert W.get_value().dtype == np.float32
    np.testing.assert_array_equal(W.get_value(), [0.5, 0.5])


def test_update_errors_at_construction():
    W = sg.shared(np.zeros(2), name="W")
    i = sg.shared(np.zeros(2, "int64"), name="i")
    with pytest.raises(TypeError):
        sg.function([], [], updates={i: i + 0.5})  # float into an int variable
    with pytest.raises(ValueError):
        sg.function([], [], updates={W: sg.concatenate([W, W])})  # shape (4,) for (2,)
    with pytest.raises(TypeError):
        sg.function([], [], updates={W * 1: W})  # not a shared variable


# --------------------------------------------------------------------------- shared variables


def test_an_array_in_a_graph_stays_the_users(backend):
    """A numpy array mixed into a graph is copied: the user's array stays writeable (it was
    made read-only), and writing it, or the array it is a view of, changes no function."""
    x = sg.vector("x", dtype="float64")
    scale, base = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0])
    f = sg.function([x], x * scale + base[1:], backend=backend)
    scale[0] = 10.0
    base[:] = 7.0
    np.testing.assert_array_equal(f(np.ones(3)), [3.0, 5.0, 7.0])


@pytest.mark.parametrize("code", [">f4", ">f8", ">i8"])
def test_big_endian_values_are_converted_not_read_as_native(backend, code):
    """A big-endian array as a constant, a shared value, or a tensor's dtype is the native
    dtype's value (the llvm backend read its bytes as native: 1.0 became 4.6e-41)."""
    big = np.array([1, 2, 3], code)
    native = big.dtype.newbyteorder("=")
    x = sg.tensor("x", (3,), dtype=code)
    S = sg.shared(big, name="S")
    assert x.dtype == S.dtype == native
    f = sg.function([x], [x * 2 + big, S.sum()], updates={S: S + 1}, backend=backend)
    out, total = f(big)
    np.testing.assert_array_equal(out, [3, 6, 9])
    assert total == 6 and out.dtype == native
    np.testing.assert_array_equal(S.get_value(), [2, 3, 4])


def test_shared_get_value_returns_a_copy():
    init = np.arange(4.0)
    W = sg.shared(init, name="W")
    init[0] = 99.0  # shared() copies its argument
    v = W.get_value()
    v[1] = 42.0
    np.testing.assert_array_equal(W.get_value(), [0.0, 1.0, 2.0, 3.0])
    new = np.full(4, 7.0)
    W.set_value(new)
    new[:] = 0.0  # set_value copies too
    np.testing.assert_array_equal(W.get_value(), [7.0] * 4)


def test_shared_set_value_checks_shape_and_dtype():
    W = sg.shared(np.zeros((2, 3), "float32"), name="W")
    with pytest.raises(ValueError):
        W.set_value(np.zeros((3, 2), "float32"))
    with pytest.raises(ValueError):
        W.set_value(np.zeros(6, "float32"))
    counts = sg.shared(np.zeros(3, "int64"), name="counts")
    with pytest.raises(TypeError):
        counts.set_value(np.array([0.5, 1.0, 2.0]))
    np.testing.assert_array_equal(counts.get_value(), [0, 0, 0])
    W.set_value(np.ones((2, 3)))  # float64 -> float32: a same_kind cast, kept float32
    assert W.get_value().dtype == np.float32
    np.testing.assert_array_equal(W.get_value(), np.ones((2, 3)))


def test_set_value_is_seen_by_an_existing_function(backend):
    W = sg.shared(np.ones(3), name="W")
    x = sg.tensor("x", (3,))
    f = sg.function([x], (x * W).sum(), backend=backend)
    assert f(np.ones(3)) == 3.0
    W.set_value(np.full(3, 2.0))
    assert f(np.ones(3)) == 6.0


def test_shared_with_symbolic_shape_can_change_size(backend):
    H = sg.shared(np.zeros(3), name="H", shape=("h",))
    f = sg.function([], H.sum(), backend=backend)
    H.set_value(np.ones(5))
    assert f() == 5.0


# --------------------------------------------------------------------------- input checks


def test_wrong_rank_raises_value_error_naming_input(backend):
    x = sg.tensor("images", ("batch", 4))
    f = sg.function([x], x.sum(), backend=backend)
    with pytest.raises(ValueError, match="images"):
        f(np.ones(4))
    with pytest.raises(ValueError, match="images"):
        f(np.ones((2, 4, 1)))


def test_wrong_fixed_dim_raises_value_error_naming_input(backend):
    x = sg.tensor("images", ("batch", 4))
    f = sg.function([x], x.sum(), backend=backend)
    with pytest.raises(ValueError, match="images"):
        f(np.ones((2, 5)))


def test_symbolic_dim_bound_to_two_sizes_raises(backend):
    x = sg.tensor("x", ("batch", 3))
    y = sg.tensor("labels", ("batch",), dtype="int64")
    f = sg.function([x, y], [x.sum(), y.sum()], backend=backend)
    with pytest.raises(ValueError, match="labels"):
        f(np.ones((4, 3)), np.zeros(5, "int64"))
    out = f(np.ones((4, 3)), np.zeros(4, "int64"))  # consistent sizes still work
    assert out[0] == 12.0


def test_symbolic_dim_of_shared_variable_binds_inputs(backend):
    W = sg.shared(np.ones((3, 2)), name="W", shape=("h", 2))
    x = sg.tensor("x", ("batch", "h"))
    f = sg.function([x], (x @ W).sum(), backend=backend)
    assert f(np.ones((2, 3))) == 12.0
    with pytest.raises(ValueError, match="x"):
        f(np.ones((2, 4)))


def test_float_into_int_input_raises_type_error(backend):
    y = sg.tensor("labels", (3,), dtype="int64")
    f = sg.function([y], y.sum(), backend=backend)
    with pytest.raises(TypeError, match="labels"):
        f(np.array([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="labels"):
        f(np.array([0.5, 1.0, 2.0], "float32"))


def test_an_integer_cast_that_would_wrap_is_refused(backend):
    """uint64 and int64 fit int64 and int32 inputs by ``same_kind`` but may wrap: a uint64
    label of 2**64 - 1 became -1, which a gather takes as the last row."""
    x = sg.tensor("x", ("batch", 4), dtype="float64")
    y = sg.tensor("y", ("batch",), dtype="int64")
    picked = sg.function([x, y], x[sg.arange(x.shape[0]), y], backend=backend)
    X = np.arange(8.0).reshape(2, 4)
    np.testing.assert_array_equal(picked(X, np.array([3, 0], "uint64")), [3.0, 4.0])
    with pytest.raises(ValueError, match=r"'y' is int64; its uint64 value 18446744073709551615"):
        picked(X, np.array([2**64 - 1, 0], "uint64"))
    k = sg.tensor("k", (2,), dtype="int32")
    f = sg.function([k], k * 1, backend=backend)
    np.testing.assert_array_equal(f(np.array([-2**31, 5])), [-2**31, 5])
    with pytest.raises(ValueError, match=r"'k' is int32; its int64 value -2147483649"):
        f(np.array([-2**31 - 1, 5]))


def test_safe_casts_happen_silently_and_float32_stays_float32(backend):
    x = sg.tensor("x", (3,), dtype="float32")
    i = sg.tensor("i", (3,), dtype="int64")
    out = x * 2.5 + 1
    assert out.dtype == np.float32
    f = sg.function([x, i], [out, x.mean(), i.sum()], backend=backend)
    # float64 into a float32 input, int32 into int64, lists and ints into floats
    ov, mv, sv = f(np.array([1.0, 2.0, 3.0]), np.array([1, 2, 3], "int32"))
    assert ov.dtype == np.float32 and np.asarray(mv).dtype == np.float32
    np.testing.assert_allclose(ov, [3.5, 6.0, 8.5])
    assert sv == 6
    ov, _, _ = f(np.array([1, 2, 3]), [4, 5, 6])  # int64 into float32
    assert ov.dtype == np.float32
    np.testing.assert_allclose(ov, [3.5, 6.0, 8.5])
    g = sg.grad(out.sum(), x)
    gv = sg.function([x], g, backend=backend)([1, 2, 3])
    assert gv.dtype == np.float32
    np.testing.assert_allclose(gv, [2.5] * 3)


def test_missing_input_raises_at_construction():
    x = sg.tensor("x", (3,))
    hidden = sg.tensor("hidden_input", (3,))
    with pytest.raises(ValueError, match="hidden_input"):
        sg.function([x], x + hidden)
    with pytest.raises(ValueError, match="hidden_input"):
        W = sg.shared(np.zeros(3), name="W")
        sg.function([x], x.sum(), updates={W: W + hidden})


def test_bad_function_inputs_raise_at_construction():
    x = sg.tensor("x", (3,))
    W = sg.shared(np.zeros(3), name="W")
    with pytest.raises(TypeError):
        sg.function([W], W.sum())
    with pytest.raises(TypeError):
        sg.function([x * 2], x.sum())
    with pytest.raises(ValueError):
        sg.function([x, x], x.sum())


def test_one_variable_as_the_inputs_says_they_are_a_list():
    """``sg.function(x, ...)`` was list(x)'s "a symbolic Variable is not iterable"."""
    x = sg.tensor("x", (3,))
    with pytest.raises(TypeError, match=re.escape("function inputs are a list of Variables: "
                                                  "sg.function([x], ...), got one Variable")):
        sg.function(x, x.sum())


# --------------------------------------------------------------------------- no change on errors


def _trainer(backend):
    """A step with an integer-array index (can fail at run time), an update and dropout."""
    W = sg.shared(np.arange(4.0), name="W")
    x = sg.tensor("x", ("batch", 4))
    idx = sg.tensor("idx", ("batch",), dtype="int64")
    picked = sg.nn.dropout(x, 0.5, seed=0)[sg.arange(x.shape[0]), idx]
    loss = (picked * W[:2].sum()).sum() + (W ** 2).sum()
    f = sg.function([x, idx], loss, updates={W: W - 0.1 * sg.grad(loss, W)}, backend=backend)
    counters = [v for v in f.shared if v.default_update is not None]
    assert len(counters) == 1  # dropout's call counter, applied by default
    return f, W, counters[0]


def test_no_shared_variable_changes_on_bad_input(backend):
    f, W, counter = _trainer(backend)
    before_W, before_c = W.get_value(), counter.get_value()
    with pytest.raises(ValueError):
        f(np.ones((2, 5)), np.zeros(2, "int64"))
    with pytest.raises(ValueError):
        f(np.ones((2, 4)), np.zeros(3, "int64"))
    with pytest.raises(TypeError):
        f(np.ones((2, 4)), np.zeros(2))
    np.testing.assert_array_equal(W.get_value(), before_W)
    assert counter.get_value() == before_c


def test_no_shared_variable_changes_on_runtime_error(backend):
    f, W, counter = _trainer(backend)
    before_W, before_c = W.get_value(), counter.get_value()
    with pytest.raises(Exception):  # noqa: B017 - the kind of error is the backend's
        f(np.ones((2, 4)), np.array([0, 4]))  # index 4 is out of bounds
    np.testing.assert_array_equal(W.get_value(), before_W)
    assert counter.get_value() == before_c
    f(np.ones((2, 4)), np.array([0, 3]))  # a good call still works and updates
    assert not np.array_equal(W.get_value(), before_W)
    assert counter.get_value() == before_c + 1


def test_no_shared_variable_changes_when_one_update_fails(backend):
    # the second update would change its variable's shape: the first must not be applied
    a = sg.shared(np.zeros(2), name="a")
    H = sg.shared(np.zeros(3), name="H", shape=("h",))
    v = sg.tensor("v", ("m",))
    f = sg.function([v], v.sum(), updates={a: a + 1, H: v}, backend=backend)
    with pytest.raises(ValueError):
        f(np.ones(4))
    np.testing.assert_array_equal(a.get_value(), [0.0, 0.0])
    np.testing.assert_array_equal(H.get_value(), [0.0, 0.0, 0.0])
    f(np.full(3, 2.0))
    np.testing.assert_array_equal(a.get_value(), [1.0, 1.0])
    np.testing.assert_array_equal(H.get_value(), [2.0, 2.0, 2.0])


# --------------------------------------------------------------------------- default updates


def test_dropout_counter_default_update_is_applied(backend):
    x = sg.tensor("x", (32,))
    f = sg.function([x], sg.nn.dropout(x, 0.5, seed=5), backend=backend)
    (counter,) = [v for v in f.shared if v.default_update is not None]
    start = int(counter.get_value())
    masks = [f(np.ones(32)) for _ in range(3)]
    assert int(counter.get_value()) == start + 3
    assert not np.array_equal(masks[0], masks[1])
    # rewinding the counter replays the masks
    counter.set_value(start)
    np.testing.assert_array_equal(f(np.ones(32)), masks[0])


def test_explicit_update_overrides_default_update(backend):
    x = sg.tensor("x", (32,))
    y = sg.nn.dropout(x, 0.5, seed=5)
    probe = sg.function([x], y, backend=backend)
    (counter,) = [v for v in probe.shared if v.default_update is not None]
    frozen = sg.function([x], y, updates={counter: counter}, backend=backend)
    first = frozen(np.ones(32))
    np.testing.assert_array_equal(frozen(np.ones(32)), first)
    assert counter.get_value() == 0


# --------------------------------------------------------------------------- epoch


def _epoch_model(backend):
    W = sg.shared(np.array([0.5, -0.25, 1.0]), name="W")
    b = sg.shared(np.array(0.1), name="b")
    x = sg.tensor("x", ("batch", 3))
    y = sg.tensor("y", ("batch",))
    pred = x @ W + b
    loss = sg.nn.mse(pred, y)
    gW, gb = sg.grad(loss, [W, b])
    index_sum = sg.cast(sg.arange(x.shape[0]).sum(), "float64")  # depends on the batch size
    f = sg.function([x, y], [loss, b, index_sum],
                    updates={W: W - 0.1 * gW, b: b - 0.1 * gb}, backend=backend)
    return f, W, b


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3)), rng.standard_normal(n)


@pytest.mark.parametrize("n, batch_size", [(10, 4), (8, 4), (3, 5), (7, 1)])
def test_epoch_equals_python_loop(n, batch_size, backend):
    X, Y = _data(n)
    f, W, b = _epoch_model(backend)
    got = f.epoch(X, Y, batch_size=batch_size)
    got_W, got_b = W.get_value(), b.get_value()

    f, W, b = _epoch_model(backend)
    steps = [f(X[i:i + batch_size], Y[i:i + batch_size]) for i in range(0, n, batch_size)]
    assert isinstance(got, list) and len(got) == 3
    n_steps = -(-n // batch_size)
    for k in range(3):
        assert got[k].shape == (n_steps,)
        np.testing.assert_allclose(got[k], np.stack([s[k] for s in steps]), rtol=1e-12)
    np.testing.assert_allclose(got_W, W.get_value(), rtol=1e-12)
    np.testing.assert_allclose(got_b, b.get_value(), rtol=1e-12)
    # the last step is the partial batch: sum(arange(size))
    last = n - (n_steps - 1) * batch_size
    assert got[2][-1] == last * (last - 1) / 2


def test_epoch_applies_updates_after_every_step(backend):
    total = sg.shared(np.array(0.0), name="total")
    x = sg.tensor("x", ("batch",))
    f = sg.function([x], total, updates={total: total + x.sum()}, backend=backend)
    seen = f.epoch(np.arange(10.0), batch_size=3)  # batches 0-2, 3-5, 6-8, 9
    np.testing.assert_array_equal(seen, [0.0, 3.0, 15.0, 36.0])
    assert total.get_value() == 45.0


def test_epoch_single_output_is_stacked_array(backend):
    x = sg.tensor("x", ("batch",))
    f = sg.function([x], x.sum(), backend=backend)
    out = f.epoch(np.arange(5.0), batch_size=2)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [1.0, 5.0, 4.0])


def test_epoch_shuffle_permutes_examples_together(backend):
    x = sg.tensor("x", ("batch",))
    y = sg.tensor("y", ("batch",), dtype="int64")
    f = sg.function([x, y], [x.sum(), sg.cast(y.sum(), "float64")], backend=backend)
    X = np.arange(20.0) * 100
    Y = np.arange(20)
    xs, ys = f.epoch(X, Y, batch_size=1, shuffle=3)
    assert sorted(xs) == list(X)  # a permutation of the examples ...
    np.testing.assert_array_equal(xs, ys * 100)  # ... with x and y kept together
    assert not np.array_equal(xs, X)
    xs2, _ = f.epoch(X, Y, batch_size=1, shuffle=3)
    np.testing.assert_array_equal(xs, xs2)  # the seed fixes the order
    xs3, _ = f.epoch(X, Y, batch_size=1, shuffle=4)
    assert not np.array_equal(xs, xs3)
    # with bigger batches: the loop over the same permutation
    order = (xs / 100).astype(int)
    sums, _ = f.epoch(X, Y, batch_size=6, shuffle=3)
    np.testing.assert_allclose(sums, [X[order[i:i + 6]].sum() for i in range(0, 20, 6)])


def test_epoch_applies_dropout_default_update_every_step(backend):
    def build():
        x = sg.tensor("x", ("batch", 16))
        return sg.function([x], sg.nn.dropout(x, 0.5, seed=11).sum(), backend=backend)

    X = np.ones((12, 16))
    got = build().epoch(X, batch_size=4)
    f = build()
    expected = [f(X[i:i + 4]) for i in range(0, 12, 4)]
    np.testing.assert_array_equal(got, expected)
    assert len(set(got.tolist())) > 1  # a new mask on every step


@pytest.mark.parametrize("shuffle", [None, 2])
@pytest.mark.parametrize("at", [5, 13])  # in a full minibatch (native on llvm), the last one
def test_a_failed_epoch_step_is_named_with_its_examples(at, shuffle, backend):
    """A position in a step's error is one in its minibatch: the message says which step
    and which examples (of the shuffled order), on both backends and both llvm paths."""
    w = sg.shared(np.ones(3), name="w")
    i = sg.tensor("i", ("k",), "int64")
    f = sg.function([i], sg.sum(w[i]), updates={w: w * 2}, backend=backend)
    idx = np.arange(14) % 3
    order = np.arange(14) if shuffle is None else np.random.default_rng(2).permutation(14)
    idx[order[at]] = 7  # the example the epoch reads at position ``at``
    with pytest.raises(IndexError) as info:
        f.epoch(idx, batch_size=4, shuffle=shuffle)
    step, start = at // 4, at // 4 * 4
    rows = f"examples {start}:{min(start + 4, 14)}" + (
        " of the shuffled order" if shuffle is not None else "")
    assert str(info.value).startswith(
        f"epoch step {step} ({rows}; the epoch's updates are undone): ")
    assert f"at position {at - start} " in str(info.value)
    assert info.value.step == step
    np.testing.assert_array_equal(w.get_value(), np.ones(3))


def test_epoch_argument_errors_change_nothing(backend):
    f, W, b = _epoch_model(backend)
    before = W.get_value()
    X, Y = _data(6)
    with pytest.raises(ValueError):
        f.epoch(X, Y[:5], batch_size=2)  # first dims differ
    with pytest.raises(ValueError):
        f.epoch(X[:, :2], Y, batch_size=2)  # wrong fixed dim
    with pytest.raises(TypeError):
        f.epoch(X, batch_size=2)  # one array for two inputs
    np.testing.assert_array_equal(W.get_value(), before)


def test_epoch_of_empty_per_example_outputs_with_a_partial_last_batch(backend):
    """5 examples of width 0 in minibatches of 2: (5, 0), as the loop of calls gives (the
    native steps' stack holds nothing, so it cannot be reshaped with -1)."""
    x = sg.tensor("x", ("n", "m"), "float32")
    f = sg.function([x], x * 2.0, backend=backend)
    X = np.zeros((5, 0), np.float32)
    assert f.epoch(X, batch_size=2).shape == (5, 0)
    assert np.concatenate([f(X[i:i + 2]) for i in range(0, 5, 2)]).shape == (5, 0)


@pytest.mark.parametrize("outputs, words", [
    (lambda x: {"double": x * 2}, "not a dict (for named outputs pass list(d.values())"),
    (lambda x: [x * 2, "loss"], "function output 1 is 'loss', not a Variable"),
    (lambda x: "x", "not 'x'"),
])
def test_outputs_that_are_not_variables_are_named(outputs, words):
    """A dict or a string among the outputs is a TypeError saying so (it was 'dtype str32
    is not supported', from making a constant of the string)."""
    x = sg.tensor("x", (3,))
    with pytest.raises(TypeError, match=re.escape(words)):
        sg.function([x], outputs(x))
    np.testing.assert_array_equal(sg.function([x], [x * 2, 1.5])(np.ones(3))[1], 1.5)


def test_a_compiled_function_refuses_pickle_and_copy_plainly(backend):
    import copy
    import pickle

    x = sg.vector("x")
    f = sg.function([x], x * 2, backend=backend)
    for attempt in (pickle.dumps, copy.deepcopy, copy.copy):
        with pytest.raises(TypeError, match="a compiled function cannot be pickled or copied"):
            attempt(f)
    np.testing.assert_array_equal(f(np.ones(2)), [2.0, 2.0])


def test_a_ragged_list_input_is_named(backend):
    x = sg.matrix("x")
    f = sg.function([x], x.sum(), backend=backend)
    for call in (lambda: f([[1.0, 2.0], [3.0]]), lambda: f.epoch([[1.0, 2.0], [3.0]])):
        with pytest.raises(ValueError, match="input 'x': setting an array element"):
            call()
