"""Runtime errors name the op, the input, the offending value and shapes and the user's line,
worded identically on both backends (issue 7, defect 11)."""

import numpy as np
import pytest

import symgraph as sg


def _messages(build, *args):
    texts = {}
    for backend in ("numpy", "llvm"):
        f = sg.function(*build(), backend=backend)
        with pytest.raises(IndexError) as info:
            f(*args)
        texts[backend] = str(info.value)
    return texts


def test_out_of_bounds_index_message_is_complete_and_identical():
    def build():
        x = sg.vector("x", 3)
        i = sg.tensor("i", (2,), dtype="int64")
        return [x, i], x[i] * 2.0
    texts = _messages(build, np.zeros(3), np.array([0, 3]))
    assert texts["numpy"] == texts["llvm"]
    text = texts["llvm"]
    assert "take: index 3 of 'i' at position 1 is out of bounds for axis 0 with size 3" in text
    assert "input shapes (3,), (2,)" in text and __file__ in text
    assert "IndexError:" not in text  # the exception's type is not repeated in its message


def test_label_message_is_identical_on_both_backends():
    def build():
        logits = sg.matrix("logits", (None, 3))
        y = sg.tensor("y", (None,), dtype="int64")
        return [logits, y], sg.nn.cross_entropy(logits, y)
    texts = _messages(build, np.zeros((2, 3)), np.array([1, 7]))
    assert texts["numpy"] == texts["llvm"]
    assert "label 7 of 'y' at position 1 is out of range [0, 3)" in texts["llvm"]


def test_softmax_of_a_scalar_is_a_build_time_axis_error():
    with pytest.raises(np.exceptions.AxisError, match="rank 0"):
        sg.nn.softmax(sg.scalar("s"))


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_uncastable_input_messages_read_well(backend):
    x = sg.vector("x", None, dtype="float64")
    f = sg.function([x], x * 2.0, backend=backend)
    with pytest.raises(TypeError, match=r"input 'x' is float64; got an array of Python objects"):
        f(np.array([object()], dtype=object))
    i = sg.vector("i", None, dtype="int64")
    g = sg.function([i], i + 1, backend=backend)
    with pytest.raises(TypeError, match=r"input 'i' is int64; got a float64 array"):
        g(np.array([1.5]))


def _shape_failure(backend, build, *args, error=ValueError):
    """The error of a call whose shapes only meet at run time; every shared value after it."""
    inputs, output, shared, updates = build()
    f = sg.function(inputs, output, updates=updates, backend=backend)
    before = [v.get_value() for v in shared]
    with pytest.raises(error) as info:
        f(*args)
    assert all(np.array_equal(v.get_value(), b) for v, b in zip(shared, before))
    return info.value


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_a_late_shape_mismatch_names_the_shapes_and_changes_nothing(backend):
    # the llvm plan's shape inference said "concatenate: dim 1 differs: 5 vs 4" and no
    # input shapes (the numpy backend's message has them)
    def build():
        a = sg.matrix("a", ("n", "p"))
        c = sg.matrix("c", ("m", "q"))
        W = sg.shared(np.arange(3.0), name="W")
        with sg.name_scope("joiner"):
            out = sg.concatenate([a, c], axis=0).sum()
        return [a, c], out, [W], {W: W * 2}
    err = _shape_failure(backend, build, np.ones((2, 5)), np.ones((2, 4)))
    text = str(err)
    assert text.startswith("concatenate in joiner: ")
    assert "input shapes (2, 5), (2, 4)" in text and __file__ in text


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_a_shape_rule_failing_at_run_time_is_a_value_error_on_both_backends(backend):
    # the numpy backend wrapped the op's ShapeError (a ValueError) in a RuntimeError
    # (EvaluationError): `except ValueError` caught it on the llvm backend only
    def build():
        img = sg.tensor("img", ("n", 1, "h", "w"), dtype="float64")
        K = sg.shared(np.ones((2, 1, 3, 3)), name="K")
        loss = sg.nn.conv2d(img, K).sum()
        return [img], loss, [K], {K: K - 0.1 * sg.grad(loss, K)}
    err = _shape_failure(backend, build, np.ones((1, 1, 2, 2)))
    assert isinstance(err, sg.shapes.ShapeError)
    text = str(err)
    assert text.startswith("conv2d: kernel 3 (dilated extent 3) is bigger than the padded "
                           "input 2")
    assert "ShapeError:" not in text and "input shapes (1, 1, 2, 2), (2, 1, 3, 3)" in text


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_a_reduction_over_an_empty_axis_names_the_shape(backend):
    def build():
        y = sg.matrix("y", ("b", "d"))
        t = sg.shared(np.zeros(()), name="t")
        return [y], sg.argmax(y, axis=1), [t], {t: t + 1}
    err = _shape_failure(backend, build, np.ones((2, 0)))
    assert str(err).startswith("argmax: ") and "input shapes (2, 0)" in str(err)
    assert __file__ in str(err)
