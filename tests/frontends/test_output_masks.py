"""A padding mask that reaches the model's output weighs the loss and the metrics, as Keras
3's (``frontends.figures``): a tagger (Embedding(mask_zero) -> Dense or LSTM per position)
against numpy's closed forms on its forward pass (the masked mean loss, accuracy, top-k,
with per-example and temporal sample weights, class weights, ignore_index), torch float64
(an LSTM tagger's loss and gradient as CrossEntropyLoss(ignore_index) with the padded labels
ignored), identities (an all-True mask is the unmasked loss; labels and logits at padded
positions change no figure and no gradient), and the errors of a mask that does not fit."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _torch_rnn import torch_grads_in_keras_layout, torch_module

import frontends as fe
import symgraph as sg
from frontends.callbacks import Diagnostics
from frontends.errors import UserInputError
from frontends.layers.base import inference_substitute
from symgraph import shapes as sh

L = fe.layers
N, T, VOCAB, CLASSES, IGNORE = 9, 6, 12, 4, -100


def _data(seed=0, pre=False):
    """Ids padded with 0 (post-padding, or pre-padding too), the last example padding only
    (alone in the last batch of 4: a batch with no position holding data), and labels that
    are real classes at the padded positions too."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, N)
    lengths[-1] = 0
    ids = np.where(np.arange(T) < lengths[:, None], rng.integers(1, VOCAB, (N, T)), 0)
    if pre:
        ids[1] = np.roll(ids[1], T - lengths[1])
    return rng, ids, rng.integers(0, CLASSES, (N, T))


def _tagger(backend, mask_zero=True, loss="cross_entropy", lr=0.0, **compile_args):
    model = fe.Sequential([L.Embedding(VOCAB, 5, dtype="float64", mask_zero=mask_zero),
                           L.Dense(7, activation="tanh"), L.Dense(CLASSES)],
                          input_shape=(T,), dtype="int64", seed=0)
    model.compile(loss=loss, optimizer=fe.optimizers.SGD(lr), backend=backend,
                  **compile_args)
    return model


def _forward(model, ids):
    """The tagger's logits in numpy from its weights."""
    table, W1, b1, W2, b2 = model.get_weights()
    return np.tanh(table[ids] @ W1 + b1) @ W2 + b2


def _losses(z, y):
    z = z - z.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.take_along_axis(log_p, y[..., None], -1)[..., 0]


def _fit(model, ids, y, **kwargs):
    return model.fit(ids, y, shuffle=False, progress=False, verbose=False, **kwargs).history


@pytest.mark.parametrize("weights", [None, "example", "temporal"])
def test_evaluate_is_the_masked_mean_over_positions(backend, weights):
    """evaluate (batches of 4, the last all padding): the loss sum(w l m) / sum(m), accuracy
    and top-2 sum(c m) / sum(m), the weighted accuracy sum(w c m) / sum(w m), as Keras 3's
    apply_mask; the unmasked figures differ, so the padding is really left out."""
    rng, ids, y = _data()
    model = _tagger(backend, metrics=["accuracy", "top_2_accuracy"],
                    weighted_metrics=["accuracy"])
    w = {None: None, "example": rng.uniform(0.2, 2.0, N),
         "temporal": rng.uniform(0.2, 2.0, (N, T))}[weights]
    got = model.evaluate(ids, y, batch_size=4, sample_weight=w)

    z, m = _forward(model, ids), ids != 0
    full = np.ones((N, T)) if w is None else np.broadcast_to(
        w if w.ndim == 2 else w[:, None], (N, T))
    losses, correct = _losses(z, y), z.argmax(-1) == y
    top2 = (z > np.take_along_axis(z, y[..., None], -1)).sum(-1) < 2
    want = {"loss": (full * losses * m).sum() / m.sum(),
            "accuracy": (correct * m).sum() / m.sum(),
            "top_2_accuracy": (top2 * m).sum() / m.sum(),
            "weighted_accuracy": (full * correct * m).sum() / (full * m).sum()}
    assert got.keys() == want.keys()
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-12, err_msg=name)
    assert abs((full * losses).mean() - want["loss"]) > 1e-3  # (the padding weighs)
    assert abs(correct.mean() - want["accuracy"]) > 1e-3


def test_training_loss_and_gradient_match_torch_ignore_index(backend):
    """An LSTM tagger (post-padded, so torch's unpacked LSTM computes the same outputs at
    the positions holding data): fit's first loss and one SGD step's update are torch's
    CrossEntropyLoss(ignore_index) with the padded labels ignored -- while our labels there
    are real classes -- and the masked accuracy is torch's on the kept labels."""
    _, ids, y = _data(seed=1)
    model = fe.Sequential([L.Embedding(VOCAB, 5, dtype="float64", mask_zero=True),
                           L.LSTM(6, return_sequences=True), L.Dense(CLASSES)],
                          input_shape=(T,), dtype="int64", seed=0)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(1.0), metrics=["accuracy"],
                  backend=backend)
    before = model.get_weights()
    table, W, U, b, Wd, bd = (torch.tensor(a, requires_grad=True) if i in (0, 4, 5) else a
                              for i, a in enumerate(before))
    lstm = torch_module("LSTM", [W, U, b])
    logits = lstm(table[torch.tensor(ids)])[0] @ Wd + bd
    labels = torch.tensor(np.where(ids == 0, IGNORE, y))
    loss = torch.nn.CrossEntropyLoss(ignore_index=IGNORE)(logits.reshape(-1, CLASSES),
                                                         labels.reshape(-1))
    loss.backward()
    kept = labels != IGNORE
    accuracy = ((logits.argmax(-1) == labels) & kept).sum().item() / kept.sum().item()

    history = _fit(model, ids, y, batch_size=N)
    np.testing.assert_allclose(history["loss"][0], loss.item(), rtol=1e-12)
    np.testing.assert_allclose(history["accuracy"][0], accuracy, rtol=1e-12)
    grads = [table.grad.numpy(), *torch_grads_in_keras_layout("LSTM", lstm),
             Wd.grad.numpy(), bd.grad.numpy()]
    for name, old, new, g in zip("table W U b Wd bd".split(), before, model.get_weights(),
                                 grads):
        np.testing.assert_allclose(old - new, g, rtol=1e-9, atol=1e-13, err_msg=name)
    assert np.abs(grads[0][0]).max() == 0 and np.abs(grads[0]).max() > 0  # (padding: none)


def test_an_all_true_mask_is_the_unmasked_loss(backend):
    """No id 0: the mask is all True, and the loss, the metrics and the training step are
    the model's without mask_zero (same seed, same weights)."""
    _, ids, y = _data()
    ids = np.where(ids == 0, 3, ids)
    masked, plain = (_tagger(backend, mask_zero=flag, lr=0.5, metrics=["accuracy"])
                     for flag in (True, False))
    assert len(masked.test_function.outputs) == 4 and len(plain.test_function.outputs) == 2
    a, b = masked.evaluate(ids, y, batch_size=4), plain.evaluate(ids, y, batch_size=4)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-14, err_msg=name)
    ha, hb = _fit(masked, ids, y, batch_size=N), _fit(plain, ids, y, batch_size=N)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-14)
    for u, v in zip(masked.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-13, atol=1e-15)


def test_labels_and_logits_at_padded_positions_change_nothing(backend):
    """Other labels at the padded positions, and another padding row of the embedding table
    (other logits there): the same loss, metrics, sample-weighted figures and SGD update,
    bit for bit; the logits there did change."""
    rng, ids, y = _data(pre=True)
    w = rng.uniform(0.2, 2.0, N)
    y2 = np.where(ids == 0, (y + 1) % CLASSES, y)
    runs = []
    for labels, row in ((y, None), (y2, rng.normal(size=5) * 3)):
        model = _tagger(backend, lr=0.5, metrics=["accuracy"], weighted_metrics=["accuracy"])
        if row is not None:
            table = model.get_weights()[0]
            table[0] = row
            model.set_weights([table] + model.get_weights()[1:])
        figures = model.evaluate(ids, labels, batch_size=4, sample_weight=w)
        logits = model.predict(ids)
        _fit(model, ids, labels, batch_size=4, sample_weight=w)
        runs.append((figures, logits, model.get_weights()))
    (f1, z1, w1), (f2, z2, w2) = runs
    assert f1 == f2
    pad = ids == 0
    assert np.array_equal(z1[~pad], z2[~pad]) and np.abs(z1[pad] - z2[pad]).min() > 1e-6
    assert np.array_equal(w1[0][1:], w2[0][1:])  # (the padding rows differ by choice)
    for u, v in zip(w1[1:], w2[1:]):
        assert np.array_equal(u, v)


def test_ignore_index_and_class_weight_combine_with_the_mask(backend):
    """A label ignored inside the data and the padding both leave the loss and accuracy
    (Keras's in_mask & out_mask); fit's class_weight (lr 0: the first epoch's figures are
    the initial weights') gives sum(cw[y] l m k) / sum(m k)."""
    rng, ids, y = _data(seed=2)
    y = np.where(rng.random((N, T)) < 0.2, IGNORE, y)
    model = _tagger(backend, loss=fe.losses.CrossEntropy(ignore_index=IGNORE),
                    metrics=["accuracy"])
    z, m = _forward(model, ids), ids != 0
    kept = m & (y != IGNORE)
    safe = np.where(y == IGNORE, 0, y)
    losses, correct = _losses(z, safe), z.argmax(-1) == y
    got = model.evaluate(ids, y, batch_size=4)
    np.testing.assert_allclose(got["loss"], (losses * kept).sum() / kept.sum(), rtol=1e-12)
    np.testing.assert_allclose(got["accuracy"], (correct * kept).sum() / kept.sum(),
                               rtol=1e-12)
    table = np.array([1.0, 3.0, 0.5, 2.0])
    history = _fit(model, ids, y, batch_size=4, class_weight=dict(enumerate(table)))
    np.testing.assert_allclose(history["loss"][0],
                               (table[safe] * losses * kept).sum() / kept.sum(), rtol=1e-12)
    np.testing.assert_allclose(history["accuracy"][0], got["accuracy"], rtol=1e-12)


def test_a_masked_regression_sequence_weighs_mse_and_mae_per_position(backend):
    """Masking(-1) on float steps -> Dense: mse is sum(m mean_k (z - y)^2) / sum(m), the mae
    metric sum(m mean_k |z - y|) / sum(m), though the padded targets are so wild that
    their squared errors overflow to inf (left out by a where: inf * 0 would be NaN)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N, T, 3))
    lengths = rng.integers(1, T + 1, N)
    m = np.arange(T) < lengths[:, None]
    x[~m] = -1.0
    y = np.where(m[..., None], rng.normal(size=(N, T, 2)), 1e300)
    model = fe.Sequential([L.Masking(-1.0), L.Dense(2)], input_shape=(T, 3), dtype="float64",
                          seed=0)
    model.compile(loss="mse", optimizer="sgd", metrics=["mae"], backend=backend)
    W, b = model.get_weights()
    z = np.where(m[..., None], x, 0.0) @ W + b
    got = model.evaluate(x, y, batch_size=4)
    squares = np.where(m[..., None], z - y, 0.0) ** 2
    np.testing.assert_allclose(got["loss"], squares.mean(-1).sum() / m.sum(), rtol=1e-12)
    np.testing.assert_allclose(got["mae"], (np.abs(z - y).mean(-1) * m).sum() / m.sum(),
                               rtol=1e-12)


class _SequenceMSE(fe.losses.MeanSquaredError):
    """A loss with one value per example of a sequence output: no place for a mask."""

    name = "sequence_mse"

    def terms(self, outputs, targets):
        values, _ = super().terms(outputs, targets)
        return sg.mean(values, axis=1), None


class _NoTerms(fe.losses.MeanSquaredError):
    name = "no_terms"

    def terms(self, outputs, targets):
        return fe.losses.Loss.terms(self, outputs, targets)


def test_a_mask_that_does_not_fit_the_loss_names_the_layer_and_shapes():
    model = fe.Sequential([L.Embedding(VOCAB, 4, mask_zero=True), L.Dense(2, name="head")],
                          input_shape=(T,), dtype="int64")
    with pytest.raises(sh.ShapeError, match=r"layer head's output \(batch, 6, 2\) carries a "
                       r"padding mask of shape \(batch, 6\).*sequence_mse gives values of "
                       r"shape \(batch,\)"):
        model.compile(loss=_SequenceMSE())
    with pytest.raises(TypeError, match="layer head's output .* carries a padding mask .*"
                       "no_terms' cannot take sample weights or a padding mask"):
        model.compile(loss=_NoTerms())
    assert not model.compiled  # (a failed compile leaves the model as it was)


def test_training_data_of_padding_only_is_refused_and_changes_nothing():
    _, ids, y = _data()
    model = _tagger("numpy", lr=0.5, regularizer=fe.regularizers.L2(0.1))
    before = model.get_weights()
    with pytest.raises(UserInputError, match="every position of the training data is padding"):
        _fit(model, np.zeros_like(ids), y, batch_size=4)
    for u, v in zip(before, model.get_weights()):
        assert np.array_equal(u, v)


def _torch_masked(name, z, y, real):
    """torch's loss of logits ``z`` (batch, T, 3) over the real positions only."""
    if name in ("labels", "class_weight"):
        weight = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64) \
            if name == "class_weight" else None
        return F.cross_entropy(z.reshape(-1, 3), torch.where(real, y, IGNORE).reshape(-1),
                               weight=weight, ignore_index=IGNORE,
                               label_smoothing=0.0 if weight is None else 0.1)
    if name == "probabilities":
        each = -(y * torch.log_softmax(z, -1)).sum(-1)
    elif name == "binary":
        each = F.binary_cross_entropy_with_logits(z, y, reduction="none").mean(-1)
    else:
        each = {"mse": (z - y) ** 2, "mae": (z - y).abs()}[name].mean(-1)
    return (each * real).sum() / real.sum()


@pytest.mark.parametrize("name, loss", [
    ("labels", fe.losses.CrossEntropy()),
    ("class_weight", fe.losses.CrossEntropy(weight=[0.5, 2.0, 1.0], label_smoothing=0.1)),
    ("probabilities", fe.losses.CrossEntropy(targets="probabilities")),
    ("binary", fe.losses.BinaryCrossEntropy()), ("mse", fe.losses.MeanSquaredError()),
    ("mae", fe.losses.MeanAbsoluteError())])
def test_every_per_position_loss_takes_the_mask_as_torch(backend, name, loss):
    """Each loss given a mask (batch, T) of its (batch, T, k) outputs: value and gradient
    are torch's over the real positions only (cross-entropy: ignore_index at the padding,
    with class weights the mean over theirs); the padded logits get a zero gradient."""
    rng = np.random.default_rng(8)
    shape = (4, T, 3)
    z = rng.normal(size=shape) * 3
    real = np.arange(T) < np.array([6, 2, 0, 3])[:, None]
    if name in ("labels", "class_weight"):
        y = rng.integers(0, 3, shape[:2])
    elif name == "probabilities":
        y = rng.dirichlet(np.ones(3), shape[:2])
    else:
        y = rng.uniform(0, 1, shape) if name == "binary" else rng.normal(size=shape)
    outputs = sg.tensor("z", ("batch", T, 3), "float64")
    targets, mask = loss.target(outputs), sg.tensor("mask", ("batch", T), "bool")
    value = loss(outputs, targets, mask=mask)
    got, grad = sg.function([outputs, targets, mask], [value, sg.grad(value, [outputs])[0]],
                            backend=backend)(z, y, real)
    zt = torch.tensor(z, requires_grad=True)
    want = _torch_masked(name, zt, torch.tensor(y), torch.tensor(real))
    want.backward()
    np.testing.assert_allclose(got, want.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-10, atol=1e-15)
    assert not grad[~real].any() and grad[real].any()


def test_rebuilt_outputs_carry_the_mask(backend):
    """A dropout makes the model rebuild its output for inference: evaluate's loss is still
    the masked mean of predict's logits; Diagnostics rebuilds it again for its probe, with
    the mask, and a rebuild without the mask is refused (its loss would count the padding)."""
    _, ids, y = _data(seed=2)
    model = fe.Sequential([L.Embedding(VOCAB, 5, dtype="float64", mask_zero=True),
                           L.Dropout(0.2), L.Dense(CLASSES)], input_shape=(T,),
                          dtype="int64", seed=0)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(0.1), backend=backend)
    weights = model.get_weights()
    weights[-1] = np.random.default_rng(3).normal(size=CLASSES)  # (padding's logits apart)
    model.set_weights(weights)
    m = ids != 0
    want = (_losses(model.predict(ids), y) * m).sum() / m.sum()
    np.testing.assert_allclose(model.evaluate(ids, y, batch_size=4)["loss"], want, rtol=1e-12)
    assert abs(_losses(model.predict(ids), y).mean() - want) > 1e-3
    history = model.fit(ids, y, batch_size=4, shuffle=False, progress=False, verbose=False,
                        callbacks=[Diagnostics()])
    assert history.diagnostics and np.isfinite(history.history["loss"][0])
    rebuilt = sg.clone_replace([model.output], substitute=inference_substitute)[0]
    with pytest.raises(ValueError, match="carries a padding mask, and this rebuild"):
        model._total_loss(rebuilt)
