"""``f.epoch`` and ``f.profile`` when something goes wrong: a failed epoch changes no shared
variable (whatever buffers the backend double-buffers), errors in the whole arrays are not a
step's, and ``shuffle`` means what a user writes.

Oracles: the values before the call (bit-identical), and the Python loop of single calls.
"""

import numpy as np
import pytest

import symgraph as sg


def _gather_step(backend):
    """A step whose update of W is double-buffered on llvm (a checked gather of the new W is
    an output), with labels that can be out of range."""
    x = sg.tensor("x", shape=("batch", 3), dtype="float64")
    y = sg.tensor("y", shape=("batch",), dtype="int64")
    W = sg.shared(np.ones((3, 4)), name="W")
    loss = sg.mean(sg.square(x @ W))
    new = W - 0.1 * sg.grad(loss, W)
    f = sg.function([x, y], [loss, new[:, y].sum()], updates={W: new}, backend=backend)
    return f, W


def test_failed_last_step_after_a_native_loop_restores_the_parameters(backend):
    """Two full minibatches (llvm: its native loop), then a partial one that fails. The
    previous epoch left W in a buffer of the 1-example step's pool, which the failing step
    wrote into: restoring that array restored the failed step's W."""
    f, W = _gather_step(backend)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((7, 3)), rng.integers(0, 4, 7)
    f.epoch(X, Y, batch_size=3)
    before = W.get_value()
    Y[6] = 9
    with pytest.raises(IndexError, match="epoch step 2"):
        f.epoch(X, Y, batch_size=3)
    np.testing.assert_array_equal(W.get_value(), before)


@pytest.mark.parametrize("output", ["flat", "outer"])
def test_an_output_that_cannot_be_stacked_fails_and_changes_nothing(backend, output):
    """Outputs whose shape depends on the batch without being per-example cannot be stacked
    over steps of 2, 2 and 1 examples: the epoch fails, clearly, and changes nothing."""
    x = sg.tensor("x", shape=("batch", 2), dtype="float64")
    W = sg.shared(np.zeros(2), name="W")
    out = x.reshape((-1,)) if output == "flat" else x @ x.T
    f = sg.function([x], out, updates={W: W + x.sum(axis=0)}, backend=backend)
    with pytest.raises(ValueError, match="an output changes shape between steps"):
        f.epoch(np.ones((5, 2)), batch_size=2)
    np.testing.assert_array_equal(W.get_value(), [0.0, 0.0])
    shapes = [np.shape(f(np.ones((b, 2)))) for b in (2, 1)]  # the loop of calls runs
    assert shapes == ([(4,), (2,)] if output == "flat" else [(2, 2), (1, 1)])


def test_profile_changes_no_parameter(backend):
    """W is an output, so its update is double-buffered on llvm: the profiled calls wrote into
    the pool buffer W held after an ordinary call."""
    x = sg.tensor("x", shape=("batch", 3), dtype="float64")
    W = sg.shared(np.ones((3, 2)), name="W")
    loss = sg.sum(sg.square(x @ W))
    f = sg.function([x], [loss, W], updates={W: W - 0.01 * sg.grad(loss, W)},
                    backend=backend)
    X = np.arange(12.0).reshape(4, 3)
    f(X)
    before = W.get_value()
    f.profile(X, n=3)
    np.testing.assert_array_equal(W.get_value(), before)


@pytest.mark.parametrize("n", [3, 10])
def test_a_bad_dtype_is_the_arrays_error_not_a_steps(backend, n):
    """The whole label array is float: said before any step, the same with and without a
    native loop (llvm's loop runs from two full minibatches)."""
    f, W = _gather_step(backend)
    before = W.get_value()
    with pytest.raises(TypeError) as info:
        f.epoch(np.ones((n, 3)), np.zeros(n), batch_size=4)
    assert str(info.value).startswith("input 'y' is int64; got a float64 array")
    assert getattr(info.value, "step", None) is None
    np.testing.assert_array_equal(W.get_value(), before)


@pytest.mark.parametrize("X, message", [
    (np.ones((10, 2)), r"input 'x': dim 1 must be 3, got 2 \(shape \(10, 2\)\)"),
    (np.ones((10, 3, 1)), r"input 'x': expected 2 dims \(batch, 3\), got shape \(10, 3, 1\)"),
])
def test_a_wrong_feature_dim_is_the_arrays_error_not_a_steps(backend, X, message):
    """Said of the user's whole array before any step: it was step 0's, with the first
    minibatch's shape (4, 2)."""
    f, W = _gather_step(backend)
    before = W.get_value()
    with pytest.raises(ValueError, match=f"^{message}$") as info:
        f.epoch(X, np.zeros(10, "int64"), batch_size=4)
    assert getattr(info.value, "step", None) is None
    np.testing.assert_array_equal(W.get_value(), before)


def test_shuffle_false_keeps_the_order_and_true_or_a_generator_permutes(backend):
    x = sg.tensor("x", shape=("batch",), dtype="float64")
    f = sg.function([x], x * 1.0, backend=backend)
    X = np.arange(64.0)
    np.testing.assert_array_equal(f.epoch(X, batch_size=8, shuffle=False).ravel(), X)
    order = np.random.default_rng(5).permutation(64)
    got = f.epoch(X, batch_size=8, shuffle=np.random.default_rng(5)).ravel()
    np.testing.assert_array_equal(got, X[order])
    np.testing.assert_array_equal(f.epoch(X, batch_size=8, shuffle=5).ravel(), X[order])
    assert sorted(f.epoch(X, batch_size=8, shuffle=True).ravel()) == list(X)
    for bad in (-1, 2.5, "yes"):
        with pytest.raises(TypeError, match="shuffle is a seed"):
            f.epoch(X, batch_size=8, shuffle=bad)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        f.epoch(X, batch_size=8.0)
