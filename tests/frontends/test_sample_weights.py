"""fit's and evaluate's ``sample_weight`` and ``class_weight`` and compile's
``weighted_metrics``, against independent oracles: numpy's closed forms of each weighted
loss (Keras 3's ``sum(w l) / N``) and metric (``sum(w v) / sum(w)``), torch float64 (a
weighted loss and SGD steps), and identities (class_weight = the sample weights it
gives; integer weights = repeated examples)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import frontends as fe
from frontends.errors import UserInputError

IGNORE = -100


def _fit(model, x, y, **kwargs):
    kwargs.setdefault("shuffle", False)
    return model.fit(x, y, progress=False, verbose=False, **kwargs)


def _dense(backend, loss, units, lr=0.1, metrics=(), weighted_metrics=(), activation=None,
           shape=(5,)):
    model = fe.Sequential([fe.layers.Dense(units, activation=activation)], input_shape=shape,
                          dtype="float64", seed=0)
    model.compile(loss=loss, optimizer=fe.optimizers.SGD(lr), metrics=list(metrics),
                  weighted_metrics=list(weighted_metrics), backend=backend)
    return model


def _logits(model, x):
    W, b = model.get_weights()
    return x @ W + b


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _data(n=11, features=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)), rng.uniform(0.0, 3.0, n)


# each case: loss, units, activation, targets(rng, n), numpy per-example losses(z, y)
CASES = {
    "cross_entropy": ("cross_entropy", 4, None, lambda r, n: r.integers(0, 4, n),
                      lambda z, y: -_log_softmax(z)[np.arange(len(y)), y]),
    "categorical_crossentropy": (
        "categorical_crossentropy", 4, "softmax",
        lambda r, n: np.eye(4)[r.integers(0, 4, n)],
        lambda z, y: -(y * _log_softmax(z)).sum(-1)),
    "binary_crossentropy": (
        "binary_crossentropy", 3, "sigmoid", lambda r, n: r.integers(0, 2, (n, 3)) * 1.0,
        lambda z, y: (np.logaddexp(0, z) - y * z).mean(-1)),
    "mse": ("mse", 3, None, lambda r, n: r.normal(size=(n, 3)),
            lambda z, y: ((z - y) ** 2).mean(-1)),
    "mae": ("mae", 3, None, lambda r, n: r.normal(size=(n, 3)),
            lambda z, y: np.abs(z - y).mean(-1)),
    "hinge": ("hinge", 4, None, lambda r, n: r.integers(0, 4, n),
              lambda z, y: np.maximum(0, z - z[np.arange(len(y)), y][:, None] + 1).sum(1) - 1),
    "gaussian_nll": (
        "gaussian_nll", 4, None, lambda r, n: r.normal(size=(n, 2)),
        lambda z, y: (0.5 * (z[:, 2:] + (y - z[:, :2]) ** 2 * np.exp(-z[:, 2:])
                             + np.log(2 * np.pi))).sum(1)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_weighted_loss_is_keras_sum_over_batch_size(case, backend):
    """evaluate's weighted loss is sum(w_i l_i) / n at any batch size, l_i numpy's."""
    loss, units, activation, targets, per_example = CASES[case]
    x, w = _data()
    y = targets(np.random.default_rng(1), len(x))
    w[3] = 0.0
    model = _dense(backend, loss, units, activation=activation)
    expected = (w * per_example(_logits(model, x), y)).sum() / len(x)
    for batch_size in (1, 4, 256):
        got = model.evaluate(x, y, batch_size=batch_size, sample_weight=w)["loss"]
        assert got == pytest.approx(expected, rel=1e-11)
    unweighted = per_example(_logits(model, x), y).mean()
    assert model.evaluate(x, y, sample_weight=np.ones(len(x)))["loss"] == pytest.approx(
        unweighted, rel=1e-12)


def test_ignore_index_and_class_weight_keep_their_denominators(backend):
    """Under ignore_index the weighted sum is divided by the labels kept (Keras's mask);
    with torch's per-class ``weight`` by their class weights: weights of 1 give the
    unweighted loss (torch's own)."""
    x, w = _data(n=13)
    y = np.random.default_rng(2).integers(0, 4, 13)
    y[[2, 7]] = IGNORE
    cw = [0.5, 2.0, 1.0, 3.0]
    for weight in (None, cw):
        model = _dense(backend, fe.losses.CrossEntropy(ignore_index=IGNORE, weight=weight), 4)
        z = torch.tensor(_logits(model, x))
        t_weight = None if weight is None else torch.tensor(weight, dtype=torch.float64)
        each = F.cross_entropy(z, torch.tensor(y), weight=t_weight, ignore_index=IGNORE,
                               reduction="none").numpy()
        kept = y != IGNORE
        denominator = kept.sum() if weight is None else np.array(cw)[y[kept]].sum()
        expected = (w * each).sum() / denominator
        for batch_size in (2, 5, 256):
            got = model.evaluate(x, y, batch_size=batch_size, sample_weight=w)["loss"]
            assert got == pytest.approx(expected, rel=1e-11)
        assert model.evaluate(x, y, sample_weight=np.ones(13))["loss"] == pytest.approx(
            F.cross_entropy(z, torch.tensor(y), weight=t_weight, ignore_index=IGNORE).item(),
            rel=1e-12)


def _torch_sgd(model, batches, lr):
    """SGD on the model's Dense weights in torch float64: ``batches`` of (x, y, w, loss_fn)."""
    W, b = (torch.tensor(a, requires_grad=True) for a in model.get_weights())
    opt = torch.optim.SGD([W, b], lr=lr)
    for xb, yb, wb, loss_fn in batches:
        opt.zero_grad()
        loss_fn(torch.tensor(xb) @ W + b, torch.tensor(yb), torch.tensor(wb)).backward()
        opt.step()
    return [W.detach().numpy(), b.detach().numpy()]


def _keras_ce(z, y, w):
    return (F.cross_entropy(z, y, reduction="none") * w).mean()


def test_sgd_steps_match_torch_with_shuffled_minibatches(backend):
    """Shuffled minibatches carry each example's weight with it: the steps are torch's on
    fit's permutation (the model's shuffle stream), the last batch shorter."""
    x, w = _data(n=11)
    y = np.random.default_rng(3).integers(0, 4, 11)
    model = _dense(backend, "cross_entropy", 4, lr=0.5)
    order = np.random.default_rng([model.seed, 0x5F17]).permutation(11)
    batches = [(x[i], y[i], w[i], _keras_ce) for i in np.split(order, [4, 8])]
    expected = _torch_sgd(model, batches, lr=0.5)
    history = _fit(model, x, y, sample_weight=w, batch_size=4, shuffle=True)
    for mine, theirs in zip(model.get_weights(), expected):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-14)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("per_position", [False, True])
def test_temporal_weights_with_ignored_positions_match_torch(per_position, backend):
    """A class per position (batch, length, classes): weights (batch,) cover every position
    of an example, (batch, length) one each (Keras's temporal weights); ignored positions
    stay out of the sum and of the count."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 3, 5))
    y = rng.integers(0, 4, (6, 3))
    y[0, 1] = y[4, 2] = IGNORE
    w = rng.uniform(0, 2, (6, 3) if per_position else 6)
    model = _dense(backend, fe.losses.CrossEntropy(ignore_index=IGNORE), 4, lr=0.3,
                   shape=(3, 5))

    def loss_fn(z, t, wt):
        each = F.cross_entropy(z.reshape(-1, 4), t.reshape(-1), ignore_index=IGNORE,
                               reduction="none")
        full = wt if wt.ndim == 2 else wt[:, None].expand(-1, 3)
        return (each * full.reshape(-1)).sum() / (t != IGNORE).sum()

    z = _logits(model, x)
    got = model.evaluate(x, y, sample_weight=w)["loss"]
    assert got == pytest.approx(loss_fn(torch.tensor(z), torch.tensor(y),
                                        torch.tensor(w)).item(), rel=1e-12)
    expected = _torch_sgd(model, [(x, y, w, loss_fn)], lr=0.3)
    _fit(model, x, y, sample_weight=w, batch_size=6)
    for mine, theirs in zip(model.get_weights(), expected):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_integer_weights_are_repeated_examples(loss, backend):
    """Full-batch SGD: weights w on n examples (sum(w l) / n) is the data with example i
    repeated w_i times (mean over m = sum(w)) at the learning rate scaled by m / n, and the
    weighted loss is m / n times the repeated data's."""
    x, _ = _data(n=7)
    w = np.array([2, 0, 1, 3, 1, 2, 1])
    rng = np.random.default_rng(5)
    y = rng.normal(size=(7, 3)) if loss == "mse" else rng.integers(0, 3, 7)
    m, n = w.sum(), len(x)
    weighted = _dense(backend, loss, 3, lr=0.2)
    repeated = _dense(backend, loss, 3, lr=0.2 * m / n)
    xr, yr = np.repeat(x, w, axis=0), np.repeat(y, w, axis=0)
    assert weighted.evaluate(x, y, sample_weight=w)["loss"] == pytest.approx(
        m / n * repeated.evaluate(xr, yr)["loss"], rel=1e-12)
    _fit(weighted, x, y, sample_weight=w, batch_size=n, epochs=3)
    _fit(repeated, xr, yr, batch_size=m, epochs=3)
    for a, b in zip(weighted.get_weights(), repeated.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


def _cw_cases():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 3, 12)
    table = np.array([1.0, 4.0, 0.5])
    return {  # loss, units, activation, y, class_weight, the weights it means
        "labels": ("cross_entropy", 3, None, labels, {1: 4.0, 2: 0.5}, table[labels]),
        "one_hot": ("categorical_crossentropy", 3, "softmax", np.eye(3)[labels],
                    {0: 1.0, 1: 4.0, 2: 0.5}, table[labels]),
        "binary": ("binary_crossentropy", 1, "sigmoid", (labels[:, None] == 1) * 1.0,
                   {1: 6.0}, np.where(labels == 1, 6.0, 1.0)),
    }


@pytest.mark.parametrize("case", ["labels", "one_hot", "binary"])
def test_class_weight_is_the_sample_weight_of_each_label(case, backend):
    """class_weight trains exactly as the sample weights it maps the labels to (a class the
    dict leaves out weighs 1, Keras 3), weighted metrics included."""
    loss, units, activation, y, class_weight, weights = _cw_cases()[case]
    x = np.random.default_rng(7).normal(size=(12, 5))
    runs = []
    for kwargs in ({"class_weight": class_weight}, {"sample_weight": weights}):
        model = _dense(backend, loss, units, lr=0.3, activation=activation,
                       weighted_metrics=["accuracy"])
        history = _fit(model, x, y, batch_size=5, epochs=2, **kwargs)
        runs.append((model.get_weights(), history.history))
    (w1, h1), (w2, h2) = runs
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    assert h1["loss"] == h2["loss"] and h1["accuracy"] == h2["accuracy"]


def test_class_weight_per_position():
    """Labels per position get a weight per position from class_weight (Keras would take a
    (batch, length) integer array for one-hot rows and argmax it)."""
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(5, 3, 4)), rng.integers(0, 3, (5, 3))
    runs = []
    for kwargs in ({"class_weight": {0: 2.0, 2: 0.0}},
                   {"sample_weight": np.array([2.0, 1.0, 0.0])[y]}):
        model = _dense("numpy", "cross_entropy", 3, lr=0.3, shape=(3, 4))
        _fit(model, x, y, batch_size=5, **kwargs)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_weighted_metrics_are_numpys_weighted_means(backend):
    """``metrics`` are never weighted; ``weighted_metrics`` are sum(w v) / sum(w) at any
    batch size (labels not ignored only), reported as weighted_<name> beside a plain one."""
    x, w = _data(n=13)
    y = np.random.default_rng(9).integers(0, 4, 13)
    y[[1, 8]] = IGNORE
    w[[0, 5]] = 0.0
    model = _dense(backend, fe.losses.CrossEntropy(ignore_index=IGNORE), 4,
                   metrics=["accuracy"], weighted_metrics=["accuracy", "top_2_accuracy"])
    assert model.metrics_names == ["loss", "accuracy", "weighted_accuracy",
                                   "top_2_accuracy"]
    z = _logits(model, x)
    kept = y != IGNORE
    hit = (z.argmax(1) == y) & kept
    above = (z > z[np.arange(13), np.where(kept, y, 0)][:, None]).sum(1)
    top2 = (above < 2) & kept
    for batch_size in (1, 4, 256):
        got = model.evaluate(x, y, batch_size=batch_size, sample_weight=w)
        assert got["accuracy"] == pytest.approx(hit.sum() / kept.sum())
        assert got["weighted_accuracy"] == pytest.approx((w * hit).sum() / (w * kept).sum())
        assert got["top_2_accuracy"] == pytest.approx((w * top2).sum() / (w * kept).sum())
    plain = model.evaluate(x, y)  # without weights a weighted metric is the plain one
    assert plain["weighted_accuracy"] == pytest.approx(plain["accuracy"])


def test_weighted_regression_and_binary_metrics(backend):
    rng = np.random.default_rng(10)
    x, w = _data(n=9)
    y = rng.integers(0, 2, (9, 3)) * 1.0
    model = _dense(backend, "binary_cross_entropy", 3,
                   weighted_metrics=["binary_accuracy", "mae", "mse"])
    z = _logits(model, x)
    got = model.evaluate(x, y, batch_size=4, sample_weight=w)
    assert got["binary_accuracy"] == pytest.approx(
        (w * ((z > 0) == (y > 0.5)).mean(1)).sum() / w.sum())
    assert got["mae"] == pytest.approx((w * np.abs(z - y).mean(1)).sum() / w.sum())
    assert got["mse"] == pytest.approx((w * ((z - y) ** 2).mean(1)).sum() / w.sum())


def test_validation_weights_split_and_given():
    """validation_data=(x, y, w) is evaluated weighted; validation_split splits the sample
    weights with x and y; class_weight weighs training only (Keras)."""
    x, w = _data(n=12)
    y = np.random.default_rng(11).integers(0, 4, 12)
    model = _dense("numpy", "cross_entropy", 4, lr=0.0, weighted_metrics=["accuracy"])
    history = _fit(model, x, y, validation_data=(x[:5], y[:5], w[:5]))
    expected = model.evaluate(x[:5], y[:5], sample_weight=w[:5])
    assert history.history["val_loss"][0] == pytest.approx(expected["loss"])
    assert history.history["val_accuracy"][0] == pytest.approx(expected["accuracy"])
    history = _fit(model, x, y, sample_weight=w, validation_split=0.25)
    held_out = model.evaluate(x[9:], y[9:], sample_weight=w[9:])
    trained = model.evaluate(x[:9], y[:9], sample_weight=w[:9])
    assert history.history["val_loss"][0] == pytest.approx(held_out["loss"])
    assert history.history["loss"][0] == pytest.approx(trained["loss"])
    history = _fit(model, x, y, class_weight={0: 3.0}, validation_split=0.25)
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(x[9:], y[9:])["loss"])


def test_weights_of_one_train_as_no_weights():
    x, _ = _data(n=10)
    y = np.random.default_rng(12).integers(0, 4, 10)
    models = [_dense("numpy", "cross_entropy", 4, lr=0.5) for _ in range(2)]
    _fit(models[0], x, y, batch_size=3, epochs=2)
    _fit(models[1], x, y, batch_size=3, epochs=2, sample_weight=np.ones(10))
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    assert "_weights_cache" not in models[0].__dict__  # the plain fit built nothing more


class _NoTerms(fe.losses.Loss):
    name = "no_terms"

    def _build(self, outputs, targets):
        return fe.losses.MeanSquaredError()(outputs, targets)

    def target(self, outputs, name="y"):
        return fe.losses.MeanSquaredError().target(outputs, name)


BAD = [
    ({"sample_weight": np.ones(10)}, "fit: sample_weight has 10 entries (shape (10,)), but "
                                     "x and y have 11 examples"),
    ({"sample_weight": np.ones((11, 4))}, "fit: sample_weight has shape (11, 4), but the "
                                          "loss cross_entropy has values of shape (11,)"),
    ({"sample_weight": np.r_[np.ones(10), -1.0]}, "fit: sample_weight holds -1 at row 10; "
                                                   "weights must be >= 0"),
    ({"sample_weight": np.r_[np.ones(10), np.nan]}, "fit: sample_weight holds NaN at row 10"),
    ({"sample_weight": np.zeros(11)}, "fit: every sample_weight of the examples the loss "
                                      "scores is 0"),
    ({"sample_weight": np.array(["a"] * 11)}, "fit: sample_weight must be numbers"),
    ({"class_weight": {4: 2.0}}, "fit: class_weight has the key 4, which is not a class: the "
                                 "model's output (batch, 4) scores 4 classes, 0 to 3"),
    ({"class_weight": {"1": 2.0}}, "fit: class_weight has the key '1', which is not a class"),
    ({"class_weight": {1: -2.0}}, "fit: class_weight[1] is -2.0; a class weight is a finite "
                                  "number >= 0"),
    ({"class_weight": [1.0, 2.0]}, "fit: class_weight must be a dict {class: weight}"),
    ({"class_weight": {1: 2.0}, "sample_weight": np.ones(11)},
     "fit: pass sample_weight or class_weight, not both"),
    ({"validation_data": (np.zeros((3, 5)), np.zeros(3, int), np.ones(2))},
     "fit (validation_data): the sample weights (validation_data[2]) has 2 entries"),
]


@pytest.mark.parametrize("kwargs, message", BAD, ids=range(len(BAD)))
def test_bad_weights_name_the_argument_and_change_nothing(kwargs, message):
    x, _ = _data()
    y = np.random.default_rng(13).integers(0, 4, 11)
    model = _dense("numpy", "cross_entropy", 4, lr=0.5)
    before = model.get_weights()
    with pytest.raises(UserInputError) as err:
        _fit(model, x, y, **kwargs)
    assert message in str(err.value)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weights_with_a_loss_that_cannot_take_them():
    x, w = _data()
    y = np.random.default_rng(14).normal(size=(11, 2))
    model = _dense("numpy", "mse", 2)
    with pytest.raises(UserInputError, match="class_weight needs class labels, and the loss "
                                             "mse takes targets"):
        _fit(model, x, y, class_weight={0: 1.0})
    model = _dense("numpy", _NoTerms(), 2)
    before = model.get_weights()
    with pytest.raises(UserInputError, match="fit: sample_weight given, but loss 'no_terms' "
                                             "cannot take sample weights"):
        _fit(model, x, y, sample_weight=w)
    with pytest.raises(UserInputError, match="evaluate: sample_weight given"):
        model.evaluate(x, y, sample_weight=w)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_saved_model_keeps_weighted_metrics(tmp_path):
    model = _dense("numpy", "cross_entropy", 4, metrics=["accuracy"],
                   weighted_metrics=["accuracy"])
    model.save(tmp_path / "m.npz")
    loaded = fe.load_model(tmp_path / "m.npz")
    assert loaded.metrics_names == ["loss", "accuracy", "weighted_accuracy"]
    x, w = _data()
    y = np.random.default_rng(15).integers(0, 4, 11)
    assert loaded.evaluate(x, y, sample_weight=w) == pytest.approx(
        model.evaluate(x, y, sample_weight=w))


def test_each_part_of_a_validation_split_must_weigh_something():
    """The weights are checked on the training part too: class weights of 0 on every label
    left for training is nothing to train on, though the whole data weighs something."""
    x, w = _data(n=12)
    y = np.r_[np.zeros(9, int), np.ones(3, int)]
    model = _dense("numpy", "cross_entropy", 4)
    with pytest.raises(UserInputError, match=r"fit \(the first 9 examples, for training\): "
                                             "every class_weight of the examples"):
        _fit(model, x, y, class_weight={0: 0.0}, validation_split=0.25)
    w[9:] = 0.0
    with pytest.raises(UserInputError, match=r"fit \(the last 3 examples, held out by "
                                             r"validation_split\): every sample_weight"):
        _fit(model, x, y, sample_weight=w, validation_split=0.25)
