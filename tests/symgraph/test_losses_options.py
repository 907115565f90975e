"""``sg.nn.cross_entropy``'s options against ``torch.nn.functional.cross_entropy`` (float64).

``reduction`` ("mean", "sum", "none"), ``label_smoothing``, ``ignore_index`` and class
``weight``, alone and together: values and gradients on both backends (a symbolic weight's
gradient too). Every example ignored: torch's "mean" is
0 / 0 = NaN with a zero gradient, "sum" 0, "none" zeros; so are ours. A label outside
``[0, classes)`` that is not ``ignore_index`` still raises at call time naming the labels,
the value and its position, and a failed training step changes no shared variable.
"""

import itertools
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import symgraph as sg
from symgraph.graph import toposort

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((6, 4)) * 3
LABELS = np.array([0, 3, -100, 1, 3, 2])  # -100: torch's default ignore_index
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])


def _torch(logits, labels, **options):
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(labels, dtype=torch.int64)
    if "weight" in options:
        options = dict(options, weight=torch.tensor(options["weight"], dtype=torch.float64))
    loss = F.cross_entropy(z, y, **options)
    (g,) = torch.autograd.grad(loss.sum(), z)
    return loss.detach().numpy(), g.numpy()


def _ours(logits, labels, backend, **options):
    z = sg.tensor("z", ("n", logits.shape[1]))
    y = sg.tensor("y", ("n",), dtype=labels.dtype.name)
    loss = sg.nn.cross_entropy(z, y, **options)
    g = sg.grad(sg.sum(loss), z)
    return sg.function([z, y], [loss, g], backend=backend)(logits, labels)


OPTIONS = [dict(reduction=r, label_smoothing=s, **ignore, **weight)
           for r, s, ignore, weight in itertools.product(
               ["mean", "sum", "none"], [0.0, 0.1, 1.0],
               [{}, {"ignore_index": -100}, {"ignore_index": 3}], [{}, {"weight": WEIGHT}])]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(
    "weight" if k == "weight" else str(v) for k, v in o.items()))
def test_matches_torch(options, backend):
    labels = LABELS if options.get("ignore_index") == -100 else np.where(LABELS < 0, 2, LABELS)
    loss, grad = _ours(LOGITS, labels, backend, **options)
    expected_loss, expected_grad = _torch(LOGITS, labels, **options)
    assert np.shape(loss) == expected_loss.shape
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_every_example_ignored_is_as_torch(reduction, backend):
    labels = np.full(4, 7)  # 7 is outside [0, 4) but ignored: no error
    loss, grad = _ours(LOGITS[:4], labels, backend, reduction=reduction, ignore_index=7,
                       label_smoothing=0.2)
    expected_loss, expected_grad = _torch(LOGITS[:4], labels, reduction=reduction,
                                          ignore_index=7, label_smoothing=0.2)
    if reduction == "mean":  # torch: 0 / 0
        assert np.isnan(expected_loss) and np.isnan(loss)
    else:
        np.testing.assert_array_equal(loss, expected_loss)
    np.testing.assert_array_equal(grad, expected_grad)
    np.testing.assert_array_equal(grad, 0)


def test_symbolic_class_weights_match_torch_and_their_gradient_finite_differences(backend):
    """torch cannot differentiate in ``weight``; finite differences can."""
    from helpers import assert_grad_matches
    labels = np.where(LABELS < 0, 2, LABELS)
    z, y, w = sg.tensor("z", ("n", 4)), sg.tensor("y", ("n",), "int64"), sg.tensor("w", (4,))
    loss = sg.nn.cross_entropy(z, y, weight=w, label_smoothing=0.1)
    got = sg.function([z, y, w], [loss, sg.grad(loss, z)], backend=backend)(
        LOGITS, labels, WEIGHT)
    want = _torch(LOGITS, labels, weight=WEIGHT, label_smoothing=0.1)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    yc = sg.constant(labels)
    (gw,) = assert_grad_matches(
        lambda z, w: sg.nn.cross_entropy(z, yc, weight=w, label_smoothing=0.1),
        [LOGITS, WEIGHT], backend, wrt=[1])
    assert np.abs(gw).max() > 1e-3  # not trivially zero



@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_gradient_of_a_symbolic_class_weight_of_zero_matches_finite_differences(reduction,
                                                                                 backend):
    """d loss / d w[c] is -sum log p[y] over the examples of class c (over sum w[y] for
    "mean"), whatever w[c] is: a class weight of 0 (a class switched off) still has one.
    The select that leaves out the classes of target 0 left it out: 0 instead of 2.07."""
    from helpers import assert_grad_matches
    labels = sg.constant(np.where(LABELS < 0, 2, LABELS))  # [0, 3, 2, 1, 3, 2]
    weight = np.array([0.5, 0.0, 1.0, 3.0])  # class 1 (label of example 3) switched off
    (gw,) = assert_grad_matches(
        lambda z, w: sg.nn.cross_entropy(z, labels, weight=w, reduction=reduction),
        [LOGITS, weight], backend, wrt=[1])
    assert abs(gw[1]) > 1e-3

def test_labels_of_weight_zero_only_give_nan_and_a_zero_gradient(backend):
    """torch: NaN and a NaN gradient; ours keeps the NaN value but the gradient is zero, as
    for a minibatch whose labels are all ignored, so one such batch cannot ruin a model."""
    weight = np.array([0.0, 1.0, 1.0, 1.0])
    labels = np.zeros(4, np.int64)
    for smoothing in (0.0, 0.3):
        loss, grad = _ours(LOGITS[:4], labels, backend, weight=weight,
                           label_smoothing=smoothing)
        expected_loss, _ = _torch(LOGITS[:4], labels, weight=weight, label_smoothing=smoothing)
        assert np.isnan(loss) and np.isnan(expected_loss)
        np.testing.assert_array_equal(grad, 0)


@pytest.mark.parametrize("weight, words", [
    ([1.0, 2.0], ["one entry per class, (4,)", "(2,)"]),
    ([1.0, -1.0, 1.0, 1.0], ["finite and >= 0"]),
    ([0.0, 0.0, 0.0, 0.0], ["with one > 0"]),
    ([1.0, np.nan, 1.0, 1.0], ["finite"]),
    (["a", "b", "c", "d"], ["must be numbers", "['a', 'b', 'c', 'd']"]),
    ({0: 1.0, 1: 2.0, 2: 1.0, 3: 1.0}, ["must be numbers", "{0: 1.0"]),
    (sg.tensor("w", (3,)), ["one entry per class, (4,)", "(3,)"]),
    (sg.tensor("w", (4,), "int64"), ["must be float"]),
])
def test_bad_class_weights_are_refused_while_building(weight, words):
    with pytest.raises((ValueError, TypeError)) as err:
        sg.nn.cross_entropy(sg.tensor("z", ("n", 4)), sg.tensor("y", ("n",), "int64"),
                            weight=weight)
    for word in ["cross_entropy: weight", *words, "test_losses_options.py"]:
        assert word in str(err.value), (word, str(err.value))


def test_gradient_matches_finite_differences_with_every_option(backend):
    from helpers import assert_grad_matches
    labels = sg.constant(LABELS)
    assert_grad_matches(lambda z: sg.nn.cross_entropy(z, labels, label_smoothing=0.3,
                                                      ignore_index=-100), [LOGITS], backend)


def test_second_derivative_matches_torch(backend):
    z = sg.tensor("z", LOGITS.shape)
    y = sg.tensor("y", LABELS.shape, dtype="int64")
    v = RNG.standard_normal(LOGITS.shape)
    g = sg.grad(sg.nn.cross_entropy(z, y, label_smoothing=0.1, ignore_index=-100), z)
    h = sg.function([z, y], sg.grad(sg.sum(g * v), z), backend=backend)(LOGITS, LABELS)
    zt = torch.tensor(LOGITS, requires_grad=True)
    loss = F.cross_entropy(zt, torch.tensor(LABELS), label_smoothing=0.1, ignore_index=-100)
    (gt,) = torch.autograd.grad(loss, zt, create_graph=True)
    (ht,) = torch.autograd.grad((gt * torch.tensor(v)).sum(), zt)
    np.testing.assert_allclose(h, ht.numpy(), rtol=1e-10, atol=1e-14)


def test_float32(backend):
    z = sg.tensor("z", LOGITS.shape, dtype="float32")
    y = sg.tensor("y", LABELS.shape, dtype="int32")
    loss = sg.nn.cross_entropy(z, y, reduction="none", label_smoothing=0.1, ignore_index=-100)
    assert loss.dtype == np.float32
    got = sg.function([z, y], loss, backend=backend)(LOGITS.astype("float32"),
                                                   LABELS.astype("int32"))
    expected, _ = _torch(LOGITS, LABELS, reduction="none", label_smoothing=0.1,
                         ignore_index=-100)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_unsigned_labels_with_a_negative_ignore_index(backend):
    # no uint8 equals -100: nothing is ignored, and the graph is the default one
    labels = np.array([0, 3, 1, 2], dtype="uint8")
    loss, _ = _ours(LOGITS[:4], labels, backend, ignore_index=-100)
    expected, _ = _torch(LOGITS[:4], labels.astype("int64"))
    np.testing.assert_allclose(loss, expected, rtol=1e-12)


def test_default_call_selects_the_labels_log_probability_without_a_product():
    # the digits MLP's loss: one select of log p over the one-hot (a -inf logit of another
    # class adds nothing), no product by it and no mask for an option it does not use
    z = sg.tensor("z", ("n", 4))
    y = sg.tensor("y", ("n",), dtype="int64")
    nodes = toposort([sg.nn.cross_entropy(z, y)])
    names = [node.op.name for node in nodes]
    assert names.count("where") == 1 and names.count("one_hot") == 1, names
    assert not any(name == "mul" and any(i.owner and i.owner.op.name == "one_hot"
                                         for i in node.inputs)
                   for name, node in zip(names, nodes)), names


def _training_step(backend: str, **options):
    x = sg.tensor("x", ("n", 4))
    y = sg.tensor("y", ("n",), dtype="int64")
    W = sg.shared(RNG.standard_normal((4, 4)), name="W")
    steps = sg.shared(np.int64(0), name="steps")
    loss = sg.nn.cross_entropy(x @ W, y, **options)
    f = sg.function([x, y], loss, backend=backend,
                    updates={W: W - 0.5 * sg.grad(loss, W), steps: steps + 1})
    return f, W, steps


@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("bad, position", [(4, 3), (-1, 1), (-7, 5)])
def test_bad_label_still_raises_naming_labels_value_position(ignore_index, bad, position,
                                                             backend):
    f, W, steps = _training_step(backend, ignore_index=ignore_index, label_smoothing=0.1)
    xv = RNG.standard_normal((6, 4))
    labels = np.array([0, 1, ignore_index, 3, ignore_index, 1])
    f(xv, labels)  # ignored labels pass the check
    before = W.get_value().copy(), steps.get_value()
    labels[position] = bad
    message = f"label {bad} of 'y' at position {position} is out of range [0, 4)"
    with pytest.raises(IndexError, match=re.escape(message)):
        f(xv, labels)
    np.testing.assert_array_equal(W.get_value(), before[0])
    assert steps.get_value() == before[1]


@pytest.mark.parametrize("options, error, words", [
    ({"reduction": "avg"}, ValueError, "reduction must be one of"),
    ({"label_smoothing": 1.5}, ValueError, "label_smoothing must be a number in [0, 1]"),
    ({"label_smoothing": -0.1}, ValueError, "label_smoothing"),
    ({"ignore_index": 1.0}, TypeError, "ignore_index must be an int or None"),
])
def test_bad_options_raise_when_building(options, error, words):
    z = sg.tensor("z", (3, 4))
    y = sg.tensor("y", (3,), dtype="int64")
    with pytest.raises(error, match=re.escape(words)):
        sg.nn.cross_entropy(z, y, **options)


def test_positional_call_and_labels_shape():
    z = sg.tensor("z", (3, 4))
    assert sg.nn.cross_entropy(z, sg.tensor("y", (3,), dtype="int64")).ndim == 0
    with pytest.raises(ValueError, match=r"labels must be \(batch,\)"):
        sg.nn.cross_entropy(z, sg.tensor("y", (3, 1), dtype="int64"))


@pytest.mark.parametrize("logits, labels, error, words", [
    (((5, 4), "float64"), ((3,), "int64"), sg.ShapeError, "logits have 5 examples, labels 3"),
    ((("n", 4), "float64"), (("n",), "float32"), TypeError, "labels must be integer class"),
    (((5, 4), "float64"), ((5, 1), "int64"), ValueError, "labels must be (batch,), got (5, 1)"),
    (((5,), "float64"), ((5,), "int64"), ValueError, "logits must be (batch, classes)"),
])
def test_cross_entropy_argument_errors_name_it_the_inputs_and_the_line(logits, labels, error,
                                                                        words):
    """Not an internal op's shapes (a batch mismatch was 'mul: dims 3 and 5'), and the line."""
    z, y = sg.tensor("z", *logits), sg.tensor("y", *labels)
    with pytest.raises(error) as info:
        sg.nn.cross_entropy(z, y)
    text = str(info.value)
    assert text.startswith("cross_entropy: ") and words in text
    assert f"inputs {z.type}, {y.type}" in text and "test_losses_options.py" in text


def test_binary_cross_entropy_takes_targets_of_the_logits_shape(backend):
    """(n, 1) logits against (n,) targets would average an (n, n) broadcast: refused, as in
    torch; a scalar target is one number for every example."""
    z, t = sg.tensor("z", ("n", 1)), sg.tensor("t", ("n",))
    with pytest.raises(sg.ShapeError, match=r"binary_cross_entropy: logits and targets must "
                                            r"have one shape, got \(n, 1\) and \(n,\)"):
        sg.nn.binary_cross_entropy(z, t)
    f = sg.function([z], sg.nn.binary_cross_entropy(z, 1.0), backend=backend)
    zv = np.array([[0.5], [-2.0], [3.0]])
    np.testing.assert_allclose(f(zv), np.mean(np.logaddexp(0, -zv)), rtol=1e-12)


@pytest.mark.parametrize("options", [{}, {"reduction": "sum"}, {"reduction": "none"},
                                     {"ignore_index": -100}, {"weight": WEIGHT}],
                         ids=["mean", "sum", "none", "ignore", "weight"])
def test_minus_inf_logit_of_another_class_keeps_the_loss_finite(backend, options):
    """A masked class (logit -inf, log p = -inf) that is not the label adds nothing to the loss
    in torch (it picks log p[y]); the sum of ``one_hot * log_softmax`` made it 0 * -inf = NaN
    (the gradient was already torch's)."""
    labels = LABELS if options.get("ignore_index") == -100 else np.where(LABELS < 0, 2, LABELS)
    logits = LOGITS.copy()
    logits[0, 2] = logits[3, 0] = logits[5, 3] = -np.inf  # none of them a label
    want_loss, want_grad = _torch(logits, labels, **options)
    assert np.all(np.isfinite(want_loss))
    got_loss, got_grad = _ours(logits, labels, backend, **options)
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-12, atol=1e-15)
