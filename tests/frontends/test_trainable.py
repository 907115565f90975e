"""``layer.trainable = False`` (Keras's fine-tuning idiom) freezes a layer: its weights get
no update, a frozen BatchNorm runs on its running statistics and keeps them (Keras's rule),
the flag survives a model file, and ``fit`` refuses a flag changed after ``compile``.
Oracle: torch with the same weights, the frozen parameters ``requires_grad=False`` (and the
frozen batch norm in ``eval()`` mode)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import frontends as fe
from frontends.errors import UserInputError


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)), rng.integers(0, 3, n)


def _mlp(batch_norm=False):
    layers = [fe.layers.Dense(6, activation="tanh")]
    layers += [fe.layers.BatchNorm()] if batch_norm else []
    return fe.Sequential(layers + [fe.layers.Dense(3)], input_shape=(5,), dtype="float64",
                         seed=0)


def _torch_step(weights, x, y, lr, batch_norm=False):
    """One SGD step of the same MLP in torch with its first layer (and batch norm) frozen:
    the loss and the weights after the step, in our order."""
    t = [torch.tensor(w, requires_grad=i >= len(weights) - 2) for i, w in enumerate(weights)]
    h = torch.tanh(torch.tensor(x) @ t[0] + t[1])
    if batch_norm:  # frozen: eval mode, running statistics, parameters fixed
        gamma, beta, mean, var = t[2:6]
        h = (h - mean) / torch.sqrt(var + 1e-3) * gamma + beta
    loss = torch.nn.functional.cross_entropy(h @ t[-2] + t[-1], torch.tensor(y))
    loss.backward()
    after = [w.detach().numpy() - (lr * w.grad.numpy() if w.requires_grad else 0) for w in t]
    return loss.item(), after


@pytest.mark.parametrize("batch_norm", [False, True])
def test_frozen_layers_match_torch(batch_norm):
    model = _mlp(batch_norm)
    x, y = _data()
    if batch_norm:  # running statistics that differ from the batch's, so using them shows
        weights = model.get_weights()
        weights[4], weights[5] = np.full(6, 0.3), np.full(6, 2.0)
        model.set_weights(weights)
    for layer in model.layers[:-1]:
        layer.trainable = False
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(0.5))
    before = model.get_weights()
    expected_loss, expected = _torch_step(before, x, y, 0.5, batch_norm)
    [loss] = model.train_function(x, y)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    for got, old in zip(model.get_weights()[:-2], before[:-2]):  # frozen: bit for bit
        np.testing.assert_array_equal(got, old)
    assert sum(w.get_value().size for w in model.trainable_weights) == 6 * 3 + 3


def test_frozen_layer_is_kept_by_a_model_file(tmp_path):
    model = _mlp()
    model.layers[0].trainable = False
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(0.1))
    model.save(tmp_path / "m.npz")
    loaded = fe.load_model(tmp_path / "m.npz")
    assert [layer.trainable for layer in loaded.layers] == [False, True]
    frozen = loaded.get_weights()[:2]
    x, y = _data()
    loaded.fit(x, y, epochs=2, batch_size=8, verbose=False)
    for got, old in zip(loaded.get_weights()[:2], frozen):
        np.testing.assert_array_equal(got, old)
    assert not np.array_equal(loaded.get_weights()[2], model.get_weights()[2])


def test_flag_changed_after_compile_is_refused():
    model = _mlp()
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(0.1))
    before = model.get_weights()
    model.layers[0].trainable = False
    x, y = _data()
    with pytest.raises(UserInputError, match=r"dense_1 was frozen .*compile\(...\) again"):
        model.fit(x, y, verbose=False)
    for got, old in zip(model.get_weights(), before):  # nothing trained
        np.testing.assert_array_equal(got, old)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(0.1))
    model.fit(x, y, verbose=False)
    np.testing.assert_array_equal(model.get_weights()[0], before[0])
    model.layers[0].trainable = True
    with pytest.raises(UserInputError, match="dense_1 was unfrozen"):
        model.fit(x, y, verbose=False)


def test_trainable_takes_a_bool():
    with pytest.raises(TypeError, match="trainable must be True or False"):
        fe.layers.Dense(3).trainable = "no"


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_batch_norm_after_a_frozen_one_averages_what_it_normalises(backend):
    """A trainable BatchNorm after a frozen one: its running statistics move towards the
    batch statistics of its actual input, the frozen layer normalising by its running
    statistics (they moved towards those of the graph with the frozen layer still in
    training mode). Oracle: the forward pass in numpy."""
    layers = fe.layers
    model = fe.Sequential([layers.Dense(6), layers.BatchNorm(), layers.Dense(4),
                           layers.BatchNorm(), layers.Dense(3)], input_shape=(5,),
                          dtype="float64", seed=0)
    weights = model.get_weights()
    weights[4], weights[5] = np.full(6, 0.5), np.full(6, 3.0)  # far from the batch's
    model.set_weights(weights)
    model.layers[1].trainable = False
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(0.1), backend=backend)
    W1, b1, gamma1, beta1, mean1, var1, W2, b2 = weights[:8]
    mean2, var2 = weights[10], weights[11]
    x, y = _data(16)
    h = (x @ W1 + b1 - mean1) / np.sqrt(var1 + 1e-3) * gamma1 + beta1
    z = h @ W2 + b2
    model.train_function(x, y)
    after = model.get_weights()
    np.testing.assert_allclose(after[10], 0.99 * mean2 + 0.01 * z.mean(0), rtol=1e-12)
    np.testing.assert_allclose(after[11], 0.99 * var2 + 0.01 * z.var(0), rtol=1e-12)
    np.testing.assert_array_equal(after[4], weights[4])  # the frozen statistics are kept
    np.testing.assert_array_equal(after[5], weights[5])
