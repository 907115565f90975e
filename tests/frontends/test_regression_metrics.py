"""The regression metrics ``"mae"`` and ``"mse"`` (Keras's ``metrics=["mae"]``): the mean
absolute and squared errors against numpy, in the graph and as ``fit`` / ``evaluate`` report
them at batch sizes that do not divide the data, on the outputs as they are."""

import numpy as np
import pytest

import frontends as fe
import symgraph as sg
from frontends import metrics


def _data(n=50, seed=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return x, np.stack([x @ [1.0, -2.0, 0.5], np.sin(x[:, 0])], axis=1) + 0.1


@pytest.mark.parametrize("name, error", [("mae", np.abs), ("mse", np.square)])
def test_error_metrics_match_numpy(backend, name, error):
    rng = np.random.default_rng(0)
    outputs, targets = rng.normal(size=(9, 4)), rng.normal(size=(9, 4)).astype("float32")
    z = sg.tensor("z", ("batch", 4), "float64")
    t = sg.tensor("t", ("batch", 4), "float32")
    score = metrics.get(name)(z, t)
    assert score.ndim == 0 and score.dtype == np.float64
    got = sg.function([z, t], score, backend=backend)(outputs, targets)
    assert got == pytest.approx(np.mean(error(outputs - targets.astype(np.float64))), rel=1e-12)


def test_fit_and_evaluate_report_them_over_the_whole_data():
    x, y = _data()
    model = fe.Sequential([fe.layers.Dense(8, activation="tanh"), fe.layers.Dense(2)],
                          input_shape=(3,), dtype="float64", seed=0)
    model.compile(loss="mae", optimizer=fe.optimizers.Adam(0.01),
                  metrics=["mae", "mean_squared_error"])
    history = model.fit(x, y, batch_size=16, epochs=2, validation_data=(x[:20], y[:20]),
                        verbose=False)
    assert {"mae", "mse", "val_mae", "val_mse"} <= set(history.history)
    residual = model.predict(x) - y
    scores = model.evaluate(x, y, batch_size=7)  # 50 = 7 * 7 + 1
    assert scores["mae"] == pytest.approx(np.mean(np.abs(residual)), rel=1e-12)
    assert scores["mse"] == pytest.approx(np.mean(residual ** 2), rel=1e-12)
    assert scores["loss"] == pytest.approx(scores["mae"], rel=1e-12)


def test_a_sigmoid_output_is_scored_as_it_is(tmp_path):
    """An autoencoder's pixels: the error of the probabilities, not of the logits."""
    x, _ = _data()
    pixels = 1 / (1 + np.exp(-x))
    model = fe.Sequential([fe.layers.Dense(3, activation="sigmoid")], input_shape=(3,),
                          dtype="float64", seed=0)
    model.compile(loss="mse", optimizer="sgd", metrics=["mae"])
    mae = np.mean(np.abs(model.predict(pixels) - pixels))
    assert model.evaluate(pixels, pixels)["mae"] == pytest.approx(mae, rel=1e-12)
    model.save(tmp_path / "m.npz")
    loaded = fe.load_model(tmp_path / "m.npz")
    assert loaded.metrics_names == ["loss", "mae"]
    assert loaded.evaluate(pixels, pixels)["mae"] == pytest.approx(mae, rel=1e-12)


def test_targets_of_another_shape_are_refused():
    with pytest.raises(ValueError, match="mae: targets of shape .* do not match"):
        metrics.get("mae")(sg.tensor("z", ("batch", 1)), sg.tensor("t", ("batch",)))
    assert metrics.get({"type": "mse"}) == metrics.MeanSquaredError()
    assert metrics.get("mean_absolute_error").name == "mae"
