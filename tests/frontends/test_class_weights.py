"""``CrossEntropy(weight=...)``: class weights as torch's, in training and in what fit and
evaluate report -- each minibatch's mean weighed by its labels' total weight, so the figures
are torch's weighted mean over the whole data at any batch size; a batch whose labels all
weigh 0 counts for nothing and leaves the weights finite."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import frontends as fe
from frontends.errors import UserInputError

WEIGHT = [0.0, 2.0, 0.5, 1.0]  # class 0 weighs nothing
IGNORE = -100


def _model(lr=0.1, ignore_index=None, metrics=("accuracy",)):
    model = fe.Sequential([fe.layers.Dense(4)], input_shape=(5,), dtype="float64", seed=0)
    model.compile(loss=fe.losses.CrossEntropy(weight=WEIGHT, ignore_index=ignore_index),
                  optimizer=fe.optimizers.SGD(lr), metrics=list(metrics))
    return model


def _data(n=13, seed=3):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 5)), rng.integers(1, 4, n)
    y[:4] = 0  # the first batch of 4: labels of weight 0 only
    y[9] = IGNORE
    return x, y


def _torch_loss(model, x, y):
    W, b = model.get_weights()
    return F.cross_entropy(torch.tensor(x @ W + b), torch.tensor(y),
                           weight=torch.tensor(WEIGHT, dtype=torch.float64),
                           ignore_index=IGNORE).item()


@pytest.mark.parametrize("batch_size", [1, 4, 5, 13, 256])
def test_evaluate_is_torchs_weighted_mean_at_any_batch_size(batch_size):
    model = _model(ignore_index=IGNORE)
    x, y = _data()
    got = model.evaluate(x, y, batch_size=batch_size)
    assert got["loss"] == pytest.approx(_torch_loss(model, x, y), rel=1e-12)
    W, b = model.get_weights()
    kept = y != IGNORE  # accuracy is not weighted: every label not ignored counts once
    assert got["accuracy"] == pytest.approx(np.mean((x @ W + b)[kept].argmax(1) == y[kept]))


def test_training_steps_match_torch_and_survive_a_batch_of_weight_zero():
    x, y = _data()
    y[9] = 2
    model = _model(lr=0.3)
    W0, b0 = (torch.tensor(a, requires_grad=True) for a in model.get_weights())
    opt = torch.optim.SGD([W0, b0], lr=0.3)
    for start in range(0, len(x), 4):  # the first batch: torch's NaN, skipped by hand
        if start == 0:
            continue
        opt.zero_grad()
        F.cross_entropy(torch.tensor(x[start:start + 4]) @ W0 + b0,
                        torch.tensor(y[start:start + 4]),
                        weight=torch.tensor(WEIGHT, dtype=torch.float64)).backward()
        opt.step()
    history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, progress=False,
                        verbose=False)
    for mine, theirs in zip(model.get_weights(), (W0, b0)):
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert np.isfinite(history.history["loss"][0])


def test_fit_history_with_lr_zero_is_evaluates_figure():
    x, y = _data()
    model = _model(lr=0.0, ignore_index=IGNORE)
    history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, progress=False,
                        verbose=False)
    assert history.history["loss"][0] == pytest.approx(_torch_loss(model, x, y), rel=1e-12)


def test_config_round_trip_and_errors():
    loss = fe.losses.get({"type": "cross_entropy", "weight": [1, 2.5], "ignore_index": -1})
    assert loss.weight == (1.0, 2.5)
    assert fe.losses.get(json.loads(json.dumps(loss.get_config()))) == loss
    for bad, kind, words in (([1.0, -1.0], ValueError, "weight must be a finite number >= 0"),
                             ([0.0, 0.0], ValueError, "weight needs an entry > 0"),
                             (3.0, TypeError, "weight must be a list of numbers")):
        with pytest.raises(kind, match=words):
            fe.losses.CrossEntropy(weight=bad)
    model = fe.Sequential([fe.layers.Dense(3)], input_shape=(5,), seed=0)
    with pytest.raises(ValueError, match="weight has 4 entries, the model scores 3 classes"):
        model.compile(loss=fe.losses.CrossEntropy(weight=WEIGHT), optimizer="sgd")


def test_labels_that_all_weigh_zero_are_refused_before_any_step():
    model = _model()
    x, _ = _data()
    y = np.zeros(len(x), np.int64)
    before = model.get_weights()
    for call in (lambda: model.fit(x, y, progress=False, verbose=False),
                 lambda: model.evaluate(x, y)):
        with pytest.raises(UserInputError,
                           match="every label in y is ignored or has class weight 0"):
            call()
    assert all((a == b).all() for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("part, y_of", [
    ("the last 4 examples, held out", lambda y: np.r_[y[:9], [0, 0, 0, 0]]),
    ("the first 9 examples, for training", lambda y: np.r_[np.zeros(9, np.int64), y[9:]]),
])
def test_a_validation_split_part_with_nothing_to_score_is_refused_before_any_step(part, y_of):
    model = _model(ignore_index=IGNORE)
    x, y = _data()
    y = y_of(np.where(y == IGNORE, 1, y))
    before = model.get_weights()
    with pytest.raises(UserInputError, match=f"fit \\({part}.*every label in y is ignored or "
                                             "has class weight 0"):
        model.fit(x, y, validation_split=0.3, progress=False, verbose=False)
    assert all((a == b).all() for a, b in zip(before, model.get_weights()))


def test_class_weight_dicts_are_refused_and_weighted_losses_hash():
    with pytest.raises(TypeError, match=r"class_weight dict \{0: 1.0, 1: 5.0\} is \[1.0, 5.0\]"):
        fe.losses.CrossEntropy(weight={0: 1.0, 1: 5.0})
    a, b = fe.losses.CrossEntropy(weight=[1, 2]), fe.losses.CrossEntropy(weight=[1.0, 2.0])
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
