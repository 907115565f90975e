"""fit checks its callbacks before the first step: one it cannot call is a mistake to name,
not an object to skip (a string, a function, a single callback outside a list)."""

import numpy as np
import pytest

import frontends as fe


def _model_and_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype("float32")
    y = (X[:, 0] > 0).astype("int64")
    model = fe.Sequential([fe.layers.Dense(2)], input_shape=(4,), seed=0)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(lr=0.1), backend="numpy")
    return model, X, y


def _state(model):
    return [v.get_value() for v in model.train_function.shared]


@pytest.mark.parametrize("callbacks, message", [
    ("tensorboard", "callbacks takes a list of callback objects, got 'tensorboard'"),
    (fe.callbacks.EarlyStopping(monitor="loss"),
     r"got one EarlyStopping; pass it in a list: callbacks=\[...\]"),
    ([fe.callbacks.History(), print],
     r"callbacks\[1\] is <built-in function print>, which has none of the hooks fit calls "
     r".*LambdaCallback\(on_epoch_end=...\)"),
    ([None], r"callbacks\[0\] is None, which has none of the hooks fit calls"),
])
def test_a_callback_fit_cannot_call_is_an_error_before_training(callbacks, message):
    model, X, y = _model_and_data()
    before = _state(model)
    with pytest.raises(fe.UserInputError, match=message):
        model.fit(X, y, epochs=2, callbacks=callbacks, progress=False, verbose=False)
    assert all(np.array_equal(a, b) for a, b in zip(before, _state(model)))
    assert getattr(model, "history", None) is None  # fit stopped before it began


def test_callbacks_none_is_no_callbacks():
    model, X, y = _model_and_data()
    history = model.fit(X, y, epochs=2, callbacks=None, progress=False, verbose=False)
    assert len(history.history["loss"]) == 2
