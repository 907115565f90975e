"""A class per position: outputs (batch, length, classes), labels (batch, length) -- a
language model's next tokens, a tagger's tags. The loss against torch's cross_entropy on
the flattened positions (ignore_index, class weights, label smoothing, one-hot rows),
evaluate's means over the whole data against numpy, a causal transformer language model
that learns, and the label checks naming the position."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import frontends as fe
import symgraph as sg
from frontends import losses
from frontends.errors import UserInputError

L = fe.layers
B, T, V = 4, 6, 5


@pytest.mark.parametrize("options", [{}, {"ignore_index": 0},
                                     {"weight": [1.0, 2.0, 0.5, 1.5, 3.0], "ignore_index": 4},
                                     {"label_smoothing": 0.2}])
def test_per_position_cross_entropy_matches_torch(backend, options):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(B, T, V)) * 2
    y = rng.integers(0, V, (B, T))
    loss = losses.CrossEntropy(**options)
    x = sg.tensor("z", ("batch", T, V), "float64")
    target = loss.target(x)
    assert target.shape[1:] == (T,)
    cost = loss(x, target)
    value, grad = sg.function([x, target], [cost, sg.grad(cost, x)], backend=backend)(z, y)
    tz = torch.tensor(z, requires_grad=True)
    kwargs = {"ignore_index": options.get("ignore_index", -100),
              "label_smoothing": options.get("label_smoothing", 0.0)}
    if "weight" in options:
        kwargs["weight"] = torch.tensor(options["weight"], dtype=torch.float64)
    want = F.cross_entropy(tz.reshape(-1, V), torch.from_numpy(y).reshape(-1), **kwargs)
    want.backward()
    assert float(value) == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(grad, tz.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_one_hot_rows_per_position(backend):
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(B, T, V)), rng.integers(0, V, (B, T))
    loss = losses.CrossEntropy(targets="probabilities")
    x = sg.tensor("z", ("batch", T, V), "float64")
    target = loss.target(x)
    value = sg.function([x, target], loss(x, target), backend=backend)(z, np.eye(V)[y])
    want = F.cross_entropy(torch.from_numpy(z).reshape(-1, V), torch.from_numpy(y).reshape(-1))
    assert float(value) == pytest.approx(want.item(), rel=1e-12)


def _next_token_data(rng, n, vocab, length):
    """Sequences counting up mod (vocab - 1) from a random start, ids 1..vocab-1 (0 is the
    padding), some ending early in padding; the labels are the next tokens (0 past the end)."""
    start = rng.integers(0, vocab - 1, (n, 1))
    ids = (start + np.arange(length + 1)) % (vocab - 1) + 1
    ends = rng.integers(length // 2, length + 2, n)
    ids[np.arange(length + 1) >= ends[:, None]] = 0
    return ids[:, :-1], ids[:, 1:]


def test_a_causal_language_model_learns_and_evaluate_is_the_mean_over_tokens():
    """Embedding, PositionEmbedding, a causal TransformerEncoder and a Dense to the vocabulary
    on every position; CrossEntropy(ignore_index=0) skips the padding. evaluate's loss and
    accuracy, at a batch size that leaves a ragged last batch, are the means over the
    non-padding tokens of the whole data, as numpy computes them from predict's logits."""
    rng = np.random.default_rng(2)
    vocab, length = 9, 8
    X, Y = _next_token_data(rng, 400, vocab, length)
    model = fe.Sequential([L.Embedding(vocab, 16, padding_idx=0), L.PositionEmbedding(),
                           L.TransformerEncoder(2, 32, causal=True), L.Dense(vocab)],
                          input_shape=(length,), dtype="int64", seed=0)
    model.compile(loss=losses.CrossEntropy(ignore_index=0),
                  optimizer=fe.optimizers.Adam(lr=3e-3), metrics=["accuracy"])
    assert model.output.shape[1:] == (length, vocab)
    history = model.fit(X[:320], Y[:320], batch_size=32, epochs=15, progress=False,
                        verbose=False)
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
    result = model.evaluate(X[320:], Y[320:], batch_size=23)
    logits = model.predict(X[320:]).astype(np.float64).reshape(-1, vocab)
    labels = Y[320:].reshape(-1)
    kept = labels != 0
    nll = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1) \
        - logits[np.arange(len(labels)), labels]
    assert result["loss"] == pytest.approx(nll[kept].mean(), rel=1e-4)
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == labels)[kept].mean(),
                                               abs=1e-6)
    assert result["accuracy"] > 0.9


def test_labels_out_of_range_are_named_by_row_and_position():
    model = fe.Sequential([L.Embedding(V, 4), L.Dense(V)], input_shape=(T,), dtype="int64",
                          seed=0)
    model.compile(loss="cross_entropy")
    X = np.ones((3, T), np.int64)
    Y = np.zeros((3, T), np.int64)
    Y[2, 4] = V
    with pytest.raises(UserInputError, match=rf"label {V} at row 2, column 4 of y is out of "
                                             rf"range.*scores {V} classes"):
        model.fit(X, Y, progress=False, verbose=False)
    with pytest.raises(UserInputError, match=r"takes targets of shape \(batch, 6\)"):
        model.fit(X, Y[:, 0], progress=False, verbose=False)


def test_targets_of_the_wrong_form_say_what_fits_a_class_per_position():
    """The hints for (batch,) labels of (batch, classes) outputs hold for (batch, length)
    labels too: one-hot rows per position, a trailing axis of 1, one label per example
    (a classifier missing its pooling), and labels for a loss of one-hot rows. Each hint's
    remedy works: its loss equals torch's on the flattened positions."""
    model = fe.Sequential([L.Embedding(V, 4, dtype="float64"), L.Dense(V)], input_shape=(T,),
                          dtype="int64", seed=0)
    model.compile(loss="cross_entropy")
    rng = np.random.default_rng(4)
    X, Y = rng.integers(0, V, (3, T)), rng.integers(0, V, (3, T))
    one_hot = np.eye(V)[Y]
    with pytest.raises(UserInputError, match=r"got y of shape \(3, 6, 5\) \(one-hot rows\? "
                                             r"pass the class indices: y.argmax\(-1\), or use "
                                             r"a loss that takes rows: CrossEntropy\(targets="):
        model.evaluate(X, one_hot)
    with pytest.raises(UserInputError, match=r"\(labels with an axis of 1 at the end\? pass "
                                             r"y\[\.\.\., 0\]\)"):
        model.evaluate(X, Y[..., None])
    with pytest.raises(UserInputError, match=r"\(one label per example\? the model's outputs "
                                             r"score a class at every position: pool"):
        model.evaluate(X, Y[:, 0])
    want = F.cross_entropy(torch.from_numpy(model.predict(X).reshape(-1, V)),
                           torch.from_numpy(Y.reshape(-1))).item()
    assert model.evaluate(X, one_hot.argmax(-1))["loss"] == pytest.approx(want, rel=1e-12)
    model.compile(loss=losses.CrossEntropy(targets="probabilities"))
    with pytest.raises(UserInputError, match=r"got y of shape \(3, 6\) \(integer class "
                                             r"labels\? .*np.eye\(classes\)\[y\]\)"):
        model.evaluate(X, Y)
    assert model.evaluate(X, one_hot)["loss"] == pytest.approx(want, rel=1e-12)
