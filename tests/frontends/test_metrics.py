"""``frontends.metrics``: accuracy, top-k and binary accuracy against numpy (ties included)."""

import numpy as np
import pytest
import torch

import frontends as fe
import symgraph as sg
from frontends import metrics


@pytest.fixture
def rng():
    return np.random.default_rng(2)


def evaluate(metric, outputs, targets, backend, dtype="float64", batch="batch"):
    z = sg.tensor("z", (batch,) + outputs.shape[1:], dtype)
    t = sg.tensor("t", (batch,) + targets.shape[1:], targets.dtype)
    score = metric(z, t)
    assert score.ndim == 0 and score.dtype == np.dtype(dtype)
    return sg.function([z, t], score, backend=backend)(outputs.astype(dtype), targets)


def tied_logits(rng, shape):
    # small integers: most rows have ties, some at the maximum
    return rng.integers(0, 4, size=shape).astype(float)


def test_accuracy_matches_numpy_with_ties_to_the_first_maximum(backend, rng):
    z, labels = tied_logits(rng, (40, 5)), rng.integers(0, 5, 40)
    expected = np.mean(np.argmax(z, axis=1) == labels)
    assert any(np.sum(row == row.max()) > 1 for row in z)  # the data does contain ties
    assert evaluate(metrics.Accuracy(), z, labels, backend) == pytest.approx(expected)
    # an all-equal row is correct for label 0 only
    flat = np.zeros((2, 3))
    assert evaluate(metrics.Accuracy(), flat, np.array([0, 1]), backend) == 0.5


def test_accuracy_float32_stays_float32(backend, rng):
    z, labels = rng.normal(size=(16, 4)), rng.integers(0, 4, 16)
    value = evaluate(metrics.Accuracy(), z, labels, backend, dtype="float32")
    assert value.dtype == np.float32
    assert value == pytest.approx(np.mean(np.argmax(z, axis=1) == labels))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_top_k_accuracy_matches_numpy_with_ties_for_the_label(backend, rng, k):
    # oracle: correct iff the label's logit is >= the k-th largest logit of its row
    z, labels = tied_logits(rng, (40, 5)), rng.integers(0, 5, 40)
    kth_largest = -np.sort(-z, axis=1)[:, k - 1]
    expected = np.mean(z[np.arange(40), labels] >= kth_largest)
    assert evaluate(metrics.TopKAccuracy(k), z, labels, backend) == pytest.approx(expected)


def test_top_k_accuracy_without_ties_matches_torch_topk(backend, rng):
    z, labels = rng.normal(size=(30, 6)), rng.integers(0, 6, 30)
    top = torch.topk(torch.tensor(z), 3, dim=1).indices.numpy()
    expected = np.mean([labels[i] in top[i] for i in range(30)])
    assert evaluate(metrics.get("top_3_accuracy"), z, labels, backend) == pytest.approx(expected)


def test_top_1_accuracy_is_accuracy_without_ties(backend, rng):
    z, labels = rng.normal(size=(30, 4)), rng.integers(0, 4, 30)
    assert (evaluate(metrics.TopKAccuracy(1), z, labels, backend)
            == evaluate(metrics.Accuracy(), z, labels, backend))


def test_top_k_counts_a_nan_label_logit_as_wrong(backend):
    z = np.array([[np.nan, 1.0, 2.0, 0.0], [3.0, 1.0, 2.0, 0.0]])  # k < classes
    assert evaluate(metrics.TopKAccuracy(3), z, np.array([0, 0]), backend) == 0.5


def test_top_k_with_unknown_batch_dim_and_infinite_logits(backend):
    # the unknown-batch path picks the label's logit with a mask; -inf elsewhere must not NaN
    z = np.array([[-np.inf, 0.0, 1.0], [5.0, -np.inf, -np.inf], [0.0, 1.0, 2.0]])
    labels = np.array([1, 0, 0])
    assert evaluate(metrics.TopKAccuracy(2), z, labels, backend, batch=None) == pytest.approx(
        2 / 3)


def test_top_k_label_out_of_range_raises(backend):
    z, t = sg.tensor("z", ("batch", 3)), sg.tensor("t", ("batch",), "int64")
    f = sg.function([z, t], metrics.TopKAccuracy(2)(z, t), backend=backend)
    with pytest.raises(IndexError):
        f(np.zeros((2, 3)), np.array([1, 5]))


def test_binary_accuracy_thresholds_logits_at_zero(backend, rng):
    z = rng.normal(size=(20, 3))
    targets = (rng.uniform(size=(20, 3)) > 0.5).astype(float)
    expected = np.mean((z > 0) == (targets > 0.5))
    assert evaluate(metrics.BinaryAccuracy(), z, targets, backend) == pytest.approx(expected)
    # probability > 0.5 is the same decision as logit > 0
    p = torch.sigmoid(torch.tensor(z)).numpy()
    assert expected == np.mean((p > 0.5) == (targets > 0.5))


def test_binary_accuracy_threshold_soft_and_bool_targets(backend, rng):
    z = rng.normal(size=(20, 2))
    soft = np.clip(rng.normal(0.5, 0.4, (20, 2)), 0, 1)
    expected = np.mean((z > 0.3) == (soft > 0.5))
    assert evaluate(metrics.BinaryAccuracy(0.3), z, soft, backend) == pytest.approx(expected)
    flags = soft > 0.5
    assert evaluate(metrics.BinaryAccuracy(0.3), z, flags, backend) == pytest.approx(expected)
    ints = flags.astype(np.int64)
    assert evaluate(metrics.BinaryAccuracy(0.3), z, ints, backend) == pytest.approx(expected)


def test_accuracy_of_one_output_column_is_binary_accuracy_as_in_keras(backend):
    """metrics=["accuracy"] beside a binary loss (one logit or sigmoid column, 0/1 targets of
    its shape) scores the thresholded outputs, as Keras does; it was refused, with a hint."""
    import frontends as fe

    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 4))
    y = (X[:, :1] + 0.5 * rng.normal(size=(50, 1)) > 0).astype(np.float64)
    for activation, loss in ((None, "binary_cross_entropy"), ("sigmoid", "binary_crossentropy")):
        model = fe.Sequential([fe.layers.Dense(1, activation=activation)], input_shape=(4,),
                              dtype="float64", seed=0)
        model.compile(loss=loss, metrics=["accuracy"], backend=backend)
        model.fit(X, y, epochs=3, progress=False, verbose=False)
        W, b = model.get_weights()
        expected = np.mean((X @ W + b > 0) == (y > 0.5))
        assert model.evaluate(X, y, batch_size=7)["accuracy"] == pytest.approx(expected)
        assert model.metrics_names == ["loss", "accuracy"]


def test_metrics_reject_bad_inputs():
    z = sg.tensor("z", ("batch", 4))
    with pytest.raises(TypeError, match="integer class labels"):
        metrics.Accuracy()(z, sg.tensor("t", ("batch",)))
    with pytest.raises(ValueError, match=r"labels must be \(batch,\)"):
        metrics.TopKAccuracy(2)(z, sg.tensor("t", ("batch", 1), "int64"))
    with pytest.raises(ValueError, match=r"\(batch, classes\)"):
        metrics.Accuracy()(sg.tensor("v", ("batch",)), sg.tensor("t", ("batch",), "int64"))
    with pytest.raises(TypeError, match="must be floats"):
        metrics.Accuracy()(sg.tensor("zi", ("batch", 4), "int64"),
                           sg.tensor("t", ("batch",), "int64"))
    with pytest.raises(ValueError, match="same shape"):
        metrics.BinaryAccuracy()(sg.tensor("z1", ("batch", 1)), sg.tensor("t", ("batch",)))
    for k in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="k must be an int >= 1"):
            metrics.TopKAccuracy(k)


def test_names():
    assert metrics.Accuracy().name == "accuracy"
    assert metrics.TopKAccuracy(3).name == "top_3_accuracy"
    assert metrics.TopKAccuracy().name == "top_5_accuracy"
    assert metrics.BinaryAccuracy().name == "binary_accuracy"


@pytest.mark.parametrize("metric", [metrics.Accuracy(), metrics.TopKAccuracy(7),
                                    metrics.BinaryAccuracy(threshold=-0.5)])
def test_config_round_trip(metric):
    config = metric.get_config()
    rebuilt = metrics.get(config)
    assert type(rebuilt) is type(metric) and rebuilt.get_config() == config
    by_name = metrics.get(metric.name)  # the name carries k, not a threshold
    assert type(by_name) is type(metric) and getattr(by_name, "k", 0) == getattr(metric, "k", 0)


def test_get_names_and_errors():
    assert metrics.get("accuracy") == metrics.Accuracy()
    assert metrics.get("acc") == metrics.Accuracy()
    assert metrics.get("top_3_accuracy") == metrics.TopKAccuracy(3)
    assert metrics.get("top_k_accuracy") == metrics.TopKAccuracy(5)
    assert metrics.get({"type": "TopKAccuracy", "k": 2}).k == 2
    assert metrics.get("binary_accuracy") == metrics.BinaryAccuracy(0.0)
    m = metrics.BinaryAccuracy()
    assert metrics.get(m) is m
    with pytest.raises(ValueError, match="unknown metric 'precision'.*accuracy"):
        metrics.get("precision")
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        metrics.get("top_0_accuracy")
    with pytest.raises(TypeError, match="a name, a config dict or a Metric"):
        metrics.get(None)


@pytest.mark.parametrize("k", [5, 30])
def test_top_k_of_at_least_the_class_count_is_an_error_not_a_constant_one(k):
    z, t = sg.tensor("z", ("batch", 5)), sg.tensor("t", ("batch",), "int64")
    with pytest.raises(ValueError, match=rf"top_{k}_accuracy: k = {k} but the model's outputs "
                                         r"score 5 classes.*use k < 5"):
        metrics.TopKAccuracy(k)(z, t)
    import frontends as fe
    model = fe.Sequential([fe.layers.Dense(5)], input_shape=(3,), seed=0)
    with pytest.raises(ValueError, match=f"top_{k}_accuracy: k = {k}"):
        model.compile(loss="cross_entropy", optimizer="sgd", metrics=[f"top_{k}_accuracy"])


def test_a_sigmoid_output_model_is_scored_on_its_logits(backend):
    """Keras's usual binary set-up (Dense(1, sigmoid) with binary_crossentropy): binary
    accuracy thresholded the probabilities at 0, so every prediction counted as 1 and the
    metric was the share of positives (0.14 here, against a true 0.98)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype("float32")
    t = (X[:, :1] > 0.8).astype("float32")
    model = fe.Sequential([fe.layers.Dense(1, activation="sigmoid")], input_shape=(5,), seed=0)
    model.compile(loss="binary_crossentropy", optimizer=fe.optimizers.Adam(lr=0.05),
                  metrics=["binary_accuracy"], backend=backend)
    model.fit(X, t, epochs=20, batch_size=32, progress=False, verbose=False)
    want = float(np.mean((model.predict(X) > 0.5) == (t > 0.5)))
    assert want > 0.9
    assert abs(model.evaluate(X, t)["binary_accuracy"] - want) < 1e-6


def test_a_softmax_output_model_is_ranked_on_its_logits(backend):
    """A confident float32 softmax rounds the other classes to exactly 0: ranked on those
    probabilities they all tie with a wrong label, and top-2 counted it correct."""
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(50, 5)) * 400).astype("float32")
    y = rng.integers(0, 6, 50)
    model = fe.Sequential([fe.layers.Dense(6, activation="softmax")], input_shape=(5,), seed=0)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["top_2_accuracy", "accuracy"],
                  backend=backend)
    W, b = model.get_weights()
    logits = torch.tensor(X.astype(np.float64) @ W + b)
    top2 = torch.topk(logits, 2, dim=1).indices.numpy()
    got = model.evaluate(X, y)
    assert abs(got["top_2_accuracy"] - np.mean((top2 == y[:, None]).any(1))) < 1e-6
    assert abs(got["accuracy"] - np.mean(top2[:, 0] == y)) < 1e-6


def test_metric_lists_refuse_two_of_one_name_and_take_one_metric_alone():
    """["mae", "mean_absolute_error"] logged two values under "mae" (one of them lost in
    the history); metrics="accuracy" was read as eight one-letter metrics."""
    import frontends as fe

    model = fe.Sequential([fe.layers.Dense(3)], input_shape=(4,), seed=0)
    with pytest.raises(ValueError, match=r"'mae' is given twice.*report as \['mae', 'mae'\]"):
        model.compile(loss="mse", metrics=["mae", "mean_absolute_error"])
    model.compile(loss="cross_entropy", metrics="accuracy")
    assert model.metrics_names == ["loss", "accuracy"]
    X = np.random.default_rng(0).normal(size=(10, 4))
    y = np.arange(10) % 3
    W, b = model.get_weights()
    assert model.evaluate(X, y)["accuracy"] == pytest.approx(np.mean((X @ W + b).argmax(1) == y))
