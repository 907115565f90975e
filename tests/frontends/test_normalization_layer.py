"""``Normalization`` (Keras's input standardisation with fixed statistics): values against
numpy's formula and Keras's documented example, the kept axes, statistics kept through
fit, seeding and model files, the errors (never adapted: nothing changes), and
``symgraph train`` adapting a spec's first-layer Normalization so the saved model takes
raw inputs."""

import numpy as np
import pytest

import frontends as fe
import symgraph as sg
from frontends import layers as L
from frontends.cli import main
from frontends.errors import UserInputError


def _standardized(X, axes):
    """numpy's formula: mean and biased std over ``axes``, a constant feature unscaled."""
    mean = X.mean(axis=axes, keepdims=True)
    std = X.std(axis=axes, keepdims=True)
    return (X - mean) / np.where(std <= 1e-8, 1.0, std)


@pytest.mark.parametrize("shape, axis, axes", [
    ((40, 5), -1, (0,)),                 # one mean and variance per feature
    ((40, 3, 4), -1, (0, 1)),            # per last-axis index, shared over axis 1
    ((40, 3, 4), (1, 2), (0,)),          # per element
    ((40, 3, 4), None, (0, 1, 2)),       # one for all
])
def test_adapted_values_are_the_standardized_inputs(backend, shape, axis, axes):
    rng = np.random.default_rng(3)
    X = rng.normal(2.0, 3.0, size=shape)
    X[..., 0] = 5.0 if axis is not None else X[..., 0]  # a constant feature: unscaled
    x = fe.Input(shape[1:], "float64")
    layer = L.Normalization(axis=axis)
    out = layer(x)
    layer.adapt(X)
    f = sg.function([x], out, backend=backend)
    np.testing.assert_allclose(f(X), _standardized(X, axes), rtol=1e-12, atol=1e-12)
    # statistics of the training data, applied to new data
    Xn = rng.normal(size=shape)
    want = (Xn - X.mean(axis=axes, keepdims=True)) / np.where(
        X.std(axis=axes, keepdims=True) <= 1e-8, 1.0, X.std(axis=axes, keepdims=True))
    np.testing.assert_allclose(f(Xn), want, rtol=1e-12, atol=1e-12)


def test_keras_documented_example():
    # keras.layers.Normalization(axis=None) adapted on 1..5, applied to [1, 2, 3]
    model = fe.Sequential([L.Normalization(axis=None)], input_shape=(1,))
    model.layers[0].adapt(np.arange(1.0, 6.0)[:, None])
    got = model.predict(np.array([[1.0], [2.0], [3.0]], np.float32)).ravel()
    np.testing.assert_allclose(got, [-1.4142135, -0.70710677, 0.0], rtol=1e-6, atol=1e-7)


def test_given_statistics_broadcast_and_the_gradient_reaches_the_input(backend):
    x = fe.Input((3,), "float64")
    layer = L.Normalization(mean=[1.0, 2.0, 3.0], variance=4.0)
    out = layer(x)
    X = np.array([[1.0, 4.0, -1.0]])
    f = sg.function([x], [out, sg.grad(sg.sum(out), x)], backend=backend)
    value, grad = f(X)
    np.testing.assert_allclose(value, [[0.0, 1.0, -2.0]])
    np.testing.assert_allclose(grad, [[0.5, 0.5, 0.5]])  # d/dx (x - m) / 2
    assert layer.trainable_weights == [] and len(layer.weights) == 2


def _model(seed=0):
    model = fe.Sequential([L.Normalization(), L.Dense(3)], input_shape=(4,), seed=seed)
    model.compile(loss="cross_entropy", optimizer="adam", backend="numpy")
    return model


def test_statistics_survive_fit_reseeding_and_a_model_file(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(10.0, 2.0, size=(32, 4)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    model = _model()
    model.layers[0].adapt(X)
    mean = model.layers[0].mean.get_value().copy()
    np.testing.assert_allclose(mean, X.astype(np.float64).mean(0), rtol=1e-6)
    model.fit(X, y, epochs=2, verbose=False, progress=False)
    model.initialize(5)  # weights redrawn; statistics are not draws
    np.testing.assert_array_equal(model.layers[0].mean.get_value(), mean)
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = fe.load_model(path)
    assert loaded.layers[0].adapted
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_a_model_never_adapted_refuses_to_run_and_changes_nothing():
    model = _model()
    before = model.get_weights()
    X, y = np.ones((8, 4), np.float32), np.zeros(8, np.int64)
    for call in (lambda: model.fit(X, y, verbose=False, progress=False),
                 lambda: model.predict(X), lambda: model.evaluate(X, y)):
        with pytest.raises(UserInputError, match=r"layer normalization_1 has no statistics "
                                                 r"yet: call its adapt"):
            call()
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)  # (NaN statistics compare equal to themselves)


@pytest.mark.parametrize("make, match", [
    (lambda: L.Normalization(mean=1.0), "give both mean and variance"),
    (lambda: L.Normalization(mean=0.0, variance=-1.0), "variance must be >= 0"),
    (lambda: L.Normalization(mean=[0.0, np.nan], variance=1.0), "mean must be finite"),
    (lambda: L.Normalization(mean="0", variance=1.0), "mean must be finite"),
    (lambda: L.Normalization(axis=1.5), "axis must be an integer"),
    (lambda: L.Normalization(axis=[]), "axis is an int, a non-empty list or None"),
    (lambda: fe.Sequential([L.Normalization(axis=0)], input_shape=(4,)),
     "axis 0 is not a non-batch axis"),
    (lambda: fe.Sequential([L.Normalization(mean=[1.0, 2.0], variance=1.0)],
                           input_shape=(3,)),
     r"mean of shape \(2,\) does not broadcast to the statistics' shape \(3,\)"),
    (lambda: L.Normalization().adapt(np.ones((3, 4))), "adapt needs the layer in a model"),
    (lambda: _model().layers[0].adapt(np.ones((3, 5))), r"adapt takes the layer's inputs, "
                                                        r"shape \(batch, 4\), got \(3, 5\)"),
    (lambda: _model().layers[0].adapt(np.full((3, 4), np.inf)), "only finite values"),
    # per last-axis index: a wrong size along axis 1 is still the wrong data
    (lambda: fe.Sequential([L.Normalization()], input_shape=(3, 4)).layers[0].adapt(
        np.ones((2, 5, 4))), r"shape \(batch, 3, 4\), got \(2, 5, 4\)"),
])
def test_errors(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


SPEC = """\
model:
  input_shape: [64]
  layers:
    - {type: Normalization}
    - {type: Dense, units: 10}
compile: {loss: cross_entropy, optimizer: {type: Adam, lr: 0.01}, metrics: [accuracy]}
data: {name: digits, standardize: false}
fit: {batch_size: 64, epochs: 3}
"""


def test_train_adapts_a_first_layer_normalization_and_the_model_file_takes_raw_inputs(
        tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    out = capsys.readouterr().out
    printed = float(out.split("accuracy ")[1].split()[0])
    model = fe.load_model(tmp_path / "run" / "model.npz")
    data = fe.datasets.load("digits")
    (X, _), (Xt, yt) = data.train, data.test  # raw pixels 0..16
    np.testing.assert_allclose(model.layers[0].mean.get_value(),
                               X.astype(np.float64).mean(0), rtol=1e-5)
    assert model.evaluate(Xt, yt)["accuracy"] == pytest.approx(printed, abs=5e-5)
    assert printed > 0.8
    assert "model.npz takes standardized inputs" not in out


def test_train_with_standardized_data_says_the_model_file_wants_standardized_inputs(
        tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.replace("- {type: Normalization}\n    ", "")
                    .replace("standardize: false", "standardize: true")
                    .replace("epochs: 3", "epochs: 1"))
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert "model.npz takes standardized inputs" in capsys.readouterr().out


def test_a_tuple_axis_goes_through_a_model_file(tmp_path):
    X = np.random.default_rng(1).normal(size=(6, 2, 3)).astype(np.float32)
    model = fe.Sequential([L.Normalization(axis=(1, 2)), L.Flatten(), L.Dense(2)],
                          input_shape=(2, 3))
    model.layers[0].adapt(X)
    model.save(tmp_path / "m.npz")
    loaded = fe.load_model(tmp_path / "m.npz")
    assert loaded.layers[0].get_config()["axis"] in ((1, 2), [1, 2])
    assert loaded.layers[0].mean.get_value().shape == (2, 3)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
