"""A loss's ``ignore_index`` in what fit and evaluate report: each batch's mean is weighed by
its count of labels not ignored (not its size), a batch with none counts for nothing, and the
label metrics skip ignored rows as the loss does -- against torch and numpy on the whole
data, for every batch size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import frontends as fe
from frontends.errors import UserInputError

IGNORE = -100


def _model(metrics=("accuracy", "top_2_accuracy")):
    model = fe.Sequential([fe.layers.Dense(4)], input_shape=(5,), dtype="float64", seed=0)
    model.compile(loss=fe.losses.CrossEntropy(ignore_index=IGNORE),
                  optimizer=fe.optimizers.SGD(0.1), metrics=list(metrics))
    return model


def _data(n=13, seed=3):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 5)), rng.integers(0, 4, n)
    y[[0, 1, 2, 3, 4, 8]] = IGNORE  # rows 0-3: a whole batch of 4 ignored
    return x, y


def _oracle(model, x, y):
    """torch's mean cross-entropy over the labels not ignored; accuracy and top-2 accuracy
    over the same rows, in numpy."""
    W, b = model.get_weights()
    z = x @ W + b
    loss = F.cross_entropy(torch.tensor(z), torch.tensor(y), ignore_index=IGNORE).item()
    kept = y != IGNORE
    zk, yk = z[kept], y[kept]
    accuracy = np.mean(zk.argmax(axis=1) == yk)
    above = (zk > zk[np.arange(len(yk)), yk][:, None]).sum(axis=1)
    return {"loss": loss, "accuracy": accuracy, "top_2_accuracy": np.mean(above < 2)}


@pytest.mark.parametrize("batch_size", [1, 4, 5, 8, 13, 256])
def test_evaluate_is_the_mean_over_labels_not_ignored_at_any_batch_size(batch_size):
    model = _model()
    x, y = _data()
    got = model.evaluate(x, y, batch_size=batch_size)
    want = _oracle(model, x, y)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=1e-12), name


def test_fit_reports_the_same_mean_and_survives_a_batch_of_ignored_labels():
    """The first batch of 4 holds only ignored labels (its loss is 0/0, as torch's): fit
    trains on, and with lr 0 its history is exactly evaluate's figures."""
    x, y = _data()
    model = fe.Sequential([fe.layers.Dense(4)], input_shape=(5,), dtype="float64", seed=0)
    model.compile(loss=fe.losses.CrossEntropy(ignore_index=IGNORE),
                  optimizer=fe.optimizers.SGD(0.0), metrics=["accuracy"])
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, progress=False,
                        verbose=False)
    want = _oracle(model, x, y)
    for name in ("loss", "accuracy"):
        assert history.history[name] == pytest.approx([want[name]] * 2, rel=1e-12)
    trained = _model(["accuracy"])
    trained.fit(x, y, batch_size=4, epochs=3, shuffle=True, progress=False, verbose=False)
    assert all(np.isfinite(w).all() for w in trained.get_weights())


def test_every_label_ignored_is_refused_before_any_step():
    model = _model()
    x, _ = _data()
    y = np.full(len(x), IGNORE)
    before = model.get_weights()
    for call in (lambda: model.fit(x, y, progress=False, verbose=False),
                 lambda: model.evaluate(x, y)):
        with pytest.raises(UserInputError, match="every label in y is the loss's ignore_index"):
            call()
    assert all((a == b).all() for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_evaluate_and_predict_check_batch_size(bad):
    model = _model()
    x, y = _data()
    with pytest.raises(UserInputError, match=r"^evaluate: batch_size must be a positive"):
        model.evaluate(x, y, batch_size=bad)
    with pytest.raises(UserInputError, match=r"^predict: batch_size must be a positive"):
        model.predict(x, batch_size=bad)
