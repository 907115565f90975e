"""Labels outside ``[0, classes)``: ``one_hot`` and ``cross_entropy`` fail at call time.

A bad label used to give a row of zeros, so ``cross_entropy`` returned a finite, wrong loss.
Now both backends raise ``IndexError`` naming the labels, the bad value, its position and
the valid range, and a failed call changes no shared variable (the llvm kernels check labels
before anything is written in place: codegen.fusion.plan_inplace).  Oracles: numpy (the
value of a good call, the first bad label in C order) and the state before the call.
"""

import re

import numpy as np
import pytest

import symgraph as sg


def _training_step(backend: str):
    """A softmax-regression SGD step (in-place updates, the SGD gemm fold)."""
    rng = np.random.default_rng(0)
    x = sg.tensor("x", ("n", 4))
    y = sg.tensor("y", ("n",), dtype="int64")
    W = sg.shared(rng.standard_normal((4, 3)), name="W")
    b = sg.shared(np.zeros(3), name="b")
    steps = sg.shared(np.int64(0), name="steps")
    loss = sg.nn.cross_entropy(x @ W + b, y)
    gW, gb = sg.grad(loss, [W, b])
    f = sg.function([x, y], loss, backend=backend,
                    updates={W: W - 0.5 * gW, b: b - 0.5 * gb, steps: steps + 1})
    return f, (W, b, steps), rng.standard_normal((5, 4))


def _state(shared) -> list:
    return [v.get_value() for v in shared]


@pytest.mark.parametrize("bad", [3, 7, -1, -4])
def test_cross_entropy_bad_label_raises_and_changes_nothing(bad, backend):
    f, shared, xv = _training_step(backend)
    good = np.array([0, 2, 1, 1, 0])
    f(xv, good)
    before = _state(shared)
    labels = good.copy()
    labels[3] = bad
    with pytest.raises(IndexError):
        f(xv, labels)
    for old, new in zip(before, _state(shared)):
        np.testing.assert_array_equal(new, old)
    f(xv, good)  # the function still works, and steps
    assert shared[2].get_value() == before[2] + 1
    assert not np.array_equal(shared[0].get_value(), before[0])


def test_cross_entropy_good_labels_value(backend):
    # the check changes nothing for labels in range (0 and classes - 1 included)
    rng = np.random.default_rng(1)
    zv = rng.standard_normal((4, 3))
    yv = np.array([0, 2, 2, 1])
    z = sg.tensor("z", (4, 3))
    y = sg.tensor("y", (4,), dtype="int64")
    lv = sg.function([z, y], sg.nn.cross_entropy(z, y), backend=backend)(zv, yv)
    logp = zv - np.log(np.exp(zv).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(lv, -logp[np.arange(4), yv].mean(), rtol=1e-12)


def _one_hot_error(backend, labels: np.ndarray, depth: int, make=lambda y: y, name="y"):
    y = sg.tensor(name, labels.shape, dtype=labels.dtype.name)
    f = sg.function([y], sg.nn.one_hot(make(y), depth), backend=backend)
    with pytest.raises(IndexError) as info:
        f(labels)
    return str(info.value)


@pytest.mark.parametrize("labels, depth, value, position", [
    (np.array([0, 3, 1]), 3, 3, "1"),
    (np.array([2, 1, -1, 5]), 3, -1, "2"),
    (np.array([[0, 1], [4, 9]], dtype="int32"), 4, 4, "(1, 0)"),
    (np.array([[[0], [1]], [[2], [-7]]], dtype="int8"), 2, 2, "(1, 0, 0)"),
    (np.array([250, 0], dtype="uint8"), 100, 250, "0"),
    (np.array(5), 5, 5, None),
])
def test_one_hot_message_names_input_value_position_range(labels, depth, value, position,
                                                          backend):
    text = _one_hot_error(backend, labels, depth, name="labels")
    where = f" at position {position}" if position else ""
    assert f"label {value} of 'labels'{where} is out of range [0, {depth})" in text, text
    assert "one_hot" in text and "test_labels.py" in text  # the op and the user's line


def test_cross_entropy_message(backend):
    z = sg.tensor("logits", (3, 4))
    y = sg.tensor("targets", (3,), dtype="int64")
    f = sg.function([z, y], sg.nn.cross_entropy(z, y), backend=backend)
    with pytest.raises(IndexError) as info:
        f(np.zeros((3, 4)), np.array([1, 4, 9]))
    assert "label 4 of 'targets' at position 1 is out of range [0, 4)" in str(info.value)


def test_computed_labels_are_named_by_their_expression(backend):
    text = _one_hot_error(backend, np.array([0, 2]), 3, make=lambda y: y + 1)
    assert "label 3 of `y + 1` at position 1 is out of range [0, 3)" in text, text


def test_messages_identical_on_both_backends(backend):
    labels = np.array([[0, 1, 2], [3, 0, 8]])
    reference = _one_hot_error("numpy", labels, 3)
    assert _one_hot_error(backend, labels, 3) == reference


def _record_error(f, *args):
    """The exception :func:`codegen.lower.runtime_error` makes of the error record the last
    failed call of ``f`` (llvm) left in its plan's table."""
    from codegen.lower import runtime_error

    values, bindings = f.check_inputs(args)
    program = f.program
    arrays = [np.ascontiguousarray(values[v]) for v in program.inputs]
    plan = program._plan_for(arrays + [v._value for v in program.shared], bindings)
    return runtime_error(program.ctx, plan.table, plan.shapes)


def test_llvm_error_record_names_the_first_bad_label():
    # the record the llvm kernel writes (what codegen.lower.runtime_error reads) gives the
    # numpy backend's message, whatever LLVMProgram._raise does with it
    labels = np.array([[0, 1, 2], [3, 0, -8]])
    y = sg.tensor("y", ("n", 3), dtype="int64")
    z = sg.tensor("z", ("n", 3, 3))
    cost = (sg.nn.one_hot(y, 3) * z).sum()
    f = sg.function([y, z], cost, backend="llvm")
    with pytest.raises(IndexError):
        f(labels, np.ones((2, 3, 3)))
    err = _record_error(f, labels, np.ones((2, 3, 3)))
    ref = sg.function([y, z], cost, backend="numpy")
    with pytest.raises(IndexError) as info:
        ref(labels, np.ones((2, 3, 3)))
    assert type(err) is IndexError and str(err) == str(info.value)
    assert re.search(r"label 3 of 'y' at position \(1, 0\) is out of range \[0, 3\)", str(err))


def test_llvm_error_record_survives_the_program_cache(tmp_path, monkeypatch):
    # a program loaded from the disk cache (no lowering) keeps its error-record slots
    from codegen.native import cache

    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))

    def build():
        x = sg.tensor("x", (4, 5))
        i = sg.tensor("i", (3,), dtype="int64")
        y = sg.tensor("y", (3,), dtype="int64")
        cost = (x[i, 1] * sg.nn.one_hot(y, 5)[:, 2]).sum()
        return sg.function([x, i, y], [cost, sg.grad(cost, x)], backend="llvm")

    cache.clear_cache(memory=True, disk=False)
    try:
        build()
        cache.clear_cache(memory=True, disk=False)
        f = build()
        assert f.compile_stats["cache_level"] == "program" and not f.compile_stats["lowered"]
        for iv, yv, text in (([0, 4, 1], [0, 1, 2], "index 4 of 'i' at position 1 is out of "
                              "bounds for axis 0 with size 4"),
                             ([0, 1, 1], [0, 7, 2], "label 7 of 'y' at position 1 is out of "
                              "range [0, 5)")):
            args = (np.ones((4, 5)), np.array(iv), np.array(yv))
            with pytest.raises(IndexError):
                f(*args)
            assert text in str(_record_error(f, *args))
    finally:
        cache.clear_cache(memory=True, disk=False)


def test_one_hot_in_an_in_place_update_changes_nothing_on_failure(backend):
    # the one-hot is computed inside the update's own loop (and grouped with a second
    # update of the same shape): its check must run before either is written in place
    M = sg.shared(np.zeros((4, 3)), name="M")
    A = sg.shared(np.ones((4, 3)), name="A")
    y = sg.tensor("y", (4,), dtype="int64")
    f = sg.function([y], [], backend=backend,
                    updates={A: A * 2.0, M: M + sg.nn.one_hot(y, 3)})
    f(np.array([0, 1, 2, 0]))
    expected_m, expected_a = np.eye(3)[[0, 1, 2, 0]], np.full((4, 3), 2.0)
    np.testing.assert_array_equal(M.get_value(), expected_m)
    with pytest.raises(IndexError):
        f(np.array([0, 1, 2, 3]))
    np.testing.assert_array_equal(M.get_value(), expected_m)
    np.testing.assert_array_equal(A.get_value(), expected_a)


def test_epoch_with_a_bad_label_changes_nothing(backend):
    f, shared, _ = _training_step(backend)
    rng = np.random.default_rng(2)
    xv = rng.standard_normal((12, 4))
    yv = rng.integers(0, 3, 12)
    yv[7] = 3  # in the second minibatch
    before = _state(shared)
    with pytest.raises(IndexError):
        f.epoch(xv, yv, batch_size=4)
    for old, new in zip(before, _state(shared)):
        np.testing.assert_array_equal(new, old)


@pytest.mark.parametrize("depth", [-3, 0, 2.5, True, "3"])
def test_one_hot_depth_must_be_positive_int_at_build_time(depth):
    with pytest.raises(ValueError, match="depth must be a positive int"):
        sg.nn.one_hot(sg.tensor("y", (3,), dtype="int64"), depth)


def test_one_hot_depth_numpy_integer_is_accepted(backend):
    y = sg.tensor("y", (2,), dtype="int64")
    h = sg.function([y], sg.nn.one_hot(y, np.int64(3)), backend=backend)(np.array([2, 0]))
    np.testing.assert_array_equal(h, np.eye(3)[[2, 0]])
