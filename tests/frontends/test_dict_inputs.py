"""Inputs as a dict keyed by the model's input names (Keras's ``fit({"a": A, "b": B}, y)``):
matched by name whatever the dict's order, for fit, evaluate and predict; a missing or
unknown name, or inputs sharing one, is an error naming it. Oracle: numpy on the weights."""

import numpy as np
import pytest

import frontends as fe
from frontends.errors import UserInputError


def _model(names=("a", "b")):
    a, b = (fe.Input((3,), "float64", name) for name in names)
    ha = fe.layers.Dense(4, activation="tanh")(a)
    hb = fe.layers.Dense(4)(b)  # the same shape as a's: a swap would not fail on shapes
    model = fe.Model([a, b], fe.layers.Dense(2)(fe.layers.Concatenate()([ha, hb])), seed=0)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(0.1),
                  metrics=["accuracy"])
    return model


def _numpy_forward(model, a, b):
    Wa, ba, Wb, bb, W, c = model.get_weights()
    return np.concatenate([np.tanh(a @ Wa + ba), b @ Wb + bb], axis=1) @ W + c


def _data(n=20):
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, 3)), rng.normal(size=(n, 3)), rng.integers(0, 2, n)


def test_a_dict_is_matched_by_input_name():
    model = _model()
    a, b, y = _data()
    by_name = {"b": b, "a": a}  # not the inputs' order
    np.testing.assert_allclose(model.predict(by_name), _numpy_forward(model, a, b),
                               rtol=1e-12)
    logits = _numpy_forward(model, a, b)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = -log_p[np.arange(len(y)), y].mean()
    assert model.evaluate(by_name, y, batch_size=6)["loss"] == pytest.approx(expected,
                                                                              rel=1e-12)
    history = model.fit(by_name, y, epochs=2, validation_data=(by_name, y), verbose=False)
    assert len(history.history["val_loss"]) == 2
    twin = _model()  # the same run given lists
    twin.fit([a, b], y, epochs=2, validation_data=([a, b], y), verbose=False)
    for got, want in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_dict_mistakes_name_the_input():
    model = _model()
    a, b, y = _data()
    before = model.get_weights()
    with pytest.raises(UserInputError, match="no entry for input 'b'.*'a', 'b'"):
        model.fit({"a": a}, y, verbose=False)
    with pytest.raises(UserInputError, match="key 'c', which names no input"):
        model.predict({"a": a, "b": b, "c": b})
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(UserInputError, match="share the name 'x'"):
        _model(names=("x", "x")).predict({"x": a})
