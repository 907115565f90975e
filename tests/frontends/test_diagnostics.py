"""Diagnostics: the probe's gradients and statistics against numpy on a tiny model, the
optimizer's update evaluated but never applied, bit-identical training with and without the
callback, the records in the History, and the errors."""

import json

import numpy as np
import pytest

import frontends as fe
from frontends.callbacks import Diagnostics
from frontends.diagnostics import HISTOGRAM_BINS, Probe

L = fe.layers
LAMBDA = 0.01  # the L2 coefficient of the tiny model


def _tiny(backend, optimizer=None, activation="relu"):
    """Dense(4->3, activation) + Dense(3->2), float64; unit 2 of the first layer is dead
    (zero weights, bias -1) and unit 1 is active for some examples only."""
    model = fe.Sequential([L.Dense(3, activation=activation), L.Dense(2)], input_shape=(4,),
                          dtype="float64", seed=0)
    W1 = np.array([[1.0, 0.5, 0.0], [-0.5, 1.0, 0.0], [0.3, -0.2, 0.0], [0.1, 0.4, 0.0]])
    b1 = np.array([0.2, -0.3, -1.0])
    W2 = np.array([[0.7, -0.4], [0.2, 0.9], [0.5, 0.5]])
    b2 = np.array([0.05, -0.05])
    model.set_weights([W1, b1, W2, b2])
    model.compile(loss="cross_entropy", optimizer=optimizer or fe.optimizers.SGD(lr=0.1),
                  regularizer=fe.regularizers.L2(LAMBDA), backend=backend)
    return model


def _data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)), rng.integers(0, 2, n)


def _numpy_forward_backward(weights, X, y, activation="relu"):
    """Activations and gradients of mean cross-entropy + LAMBDA * sum(W^2), closed form."""
    W1, b1, W2, b2 = weights
    pre = X @ W1 + b1
    if activation == "relu":
        h, dh_dpre = np.maximum(pre, 0), (pre > 0).astype(float)
    elif activation == "sigmoid":
        h = 1 / (1 + np.exp(-pre))
        dh_dpre = h * (1 - h)
    else:
        h = np.tanh(pre)
        dh_dpre = 1 - h * h
    z = h @ W2 + b2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(2)[y]) / len(X)
    dpre = (dz @ W2.T) * dh_dpre
    grads = [X.T @ dpre + 2 * LAMBDA * W1, dpre.sum(0), h.T @ dz + 2 * LAMBDA * W2, dz.sum(0)]
    return h, z, grads


def test_gradients_and_norms_match_numpy(backend):
    X, y = _data()
    model = _tiny(backend)
    probe = Probe(model, X, y, size=16)
    weights = model.get_weights()
    h, z, expected = _numpy_forward_backward(weights, X[:16], y[:16])
    grads = probe.gradients()
    assert list(grads) == ["dense_1/W", "dense_1/b", "dense_2/W", "dense_2/b"]
    for got, want in zip(grads.values(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)

    stats = probe.stats()
    assert set(stats) == {"dense_1", "dense_2"}
    for layer, params in (("dense_1", (0, 1)), ("dense_2", (2, 3))):
        for short, i in zip(("W", "b"), params):
            s = stats[layer]
            assert s[f"weight_norm/{short}"] == pytest.approx(np.linalg.norm(weights[i]))
            assert s[f"grad_norm/{short}"] == pytest.approx(np.linalg.norm(expected[i]))
            # plain SGD: the update is -lr * g
            assert s[f"update_ratio/{short}"] == pytest.approx(
                0.1 * np.linalg.norm(expected[i]) / np.linalg.norm(weights[i]))
    # unit 2 is zero for every example; unit 1 only for some
    assert (h[:, 2] == 0).all() and (h[:, 1] == 0).any() and (h[:, 1] > 0).any()
    assert stats["dense_1"]["dead_fraction"] == pytest.approx(1 / 3)
    assert "dead_fraction" not in stats["dense_2"]  # a linear layer
    assert "saturated_fraction" not in stats["dense_1"]
    for layer, acts in (("dense_1", h), ("dense_2", z)):
        counts, edges = stats[layer]["histogram"], stats[layer]["histogram_edges"]
        assert counts.shape == (HISTOGRAM_BINS,) and edges.shape == (HISTOGRAM_BINS + 1,)
        assert edges[0] == acts.min() and edges[-1] == acts.max()
        np.testing.assert_allclose(edges, np.linspace(acts.min(), acts.max(), HISTOGRAM_BINS + 1))
        np.testing.assert_array_equal(counts, np.histogram(acts, bins=edges)[0])
        assert counts.sum() == acts.size


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_saturated_fraction_matches_numpy(activation):
    X, y = _data(30, seed=3)
    X *= 4.0  # push many pre-activations into the tails
    model = _tiny("numpy", activation=activation)
    stats = Probe(model, X, y).stats()
    h, _, _ = _numpy_forward_backward(model.get_weights(), X, y, activation)
    tails = ((h < 0.01) | (h > 0.99)) if activation == "sigmoid" else (np.abs(h) > 0.99)
    assert 0 < tails.mean() < 1
    assert stats["dense_1"]["saturated_fraction"] == pytest.approx(tails.mean())
    assert "dead_fraction" not in stats["dense_1"]


def test_adam_update_ratio_is_the_next_step_evaluated_not_applied(backend):
    X, y = _data(40, seed=1)
    model = _tiny(backend, fe.optimizers.Adam(lr=0.01))
    model.fit(X, y, batch_size=8, epochs=2, shuffle=False, progress=False, verbose=False)
    opt = model.optimizer
    state = {v.name: v.get_value() for v in opt.variables()}
    before = [v.get_value() for v in model.weights + opt.variables()]
    probe = Probe(model, X, y, size=12)
    stats = probe.stats()
    grads = probe.gradients()
    t = state[f"{opt.name}/iterations"] + 1
    for var in model.trainable_weights:
        layer, short = var.name.split("/")
        g, w = grads[var.name], var.get_value()
        m = 0.9 * state[f"{opt.name}/{var.name}/m"] + 0.1 * g
        v = 0.999 * state[f"{opt.name}/{var.name}/v"] + 0.001 * g * g
        step = 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        assert stats[layer][f"update_ratio/{short}"] == pytest.approx(
            np.linalg.norm(step) / np.linalg.norm(w), rel=1e-9)
    after = [v.get_value() for v in model.weights + opt.variables()]
    for a, b in zip(before, after):  # nothing applied: weights, moments, step counter
        np.testing.assert_array_equal(a, b)


def _dropout_model(backend):
    model = fe.Sequential([L.Dense(8, activation="relu"), L.Dropout(0.5), L.BatchNorm(),
                           L.Dense(3)], input_shape=(5,), seed=4)
    model.compile(optimizer=fe.optimizers.Adam(lr=0.01), backend=backend)
    return model


def test_training_is_bit_identical_with_and_without_diagnostics(backend):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(64, 5)).astype("float32")
    y = rng.integers(0, 3, 64)
    plain, probed = _dropout_model(backend), _dropout_model(backend)
    kwargs = dict(batch_size=16, epochs=3, progress=False, verbose=False)
    h0 = plain.fit(X, y, **kwargs)
    diag = Diagnostics(probe_size=32)
    h1 = probed.fit(X, y, callbacks=[diag], **kwargs)
    assert diag.probe.function.updates == []
    state = lambda m: (m.get_weights() + [v.get_value() for v in m.optimizer.variables()]  # noqa: E731
                       + [la.counter.get_value() for la in m.layers if hasattr(la, "counter")])
    for a, b in zip(state(plain), state(probed), strict=True):
        np.testing.assert_array_equal(a, b)
    assert h0.history["loss"] == h1.history["loss"]
    # the probe's inference graph: dropout off, batch norm on its running statistics
    assert "batch_norm_1" in h1.diagnostics and "dropout_1" not in h1.diagnostics


def test_probe_reads_no_dropout_counter_and_changes_no_shared_variable():
    X, y = np.ones((10, 5), "float32"), np.zeros(10, "int64")
    model = _dropout_model("numpy")
    shared = model.weights + model.optimizer.variables() + [model.layers[1].counter]
    before = [v.get_value() for v in shared]
    probe = Probe(model, X, y)
    probe.stats()
    probe.gradients()
    assert model.layers[1].counter not in probe.function.shared
    for var, value in zip(shared, before):
        np.testing.assert_array_equal(var.get_value(), value)


def test_diagnostics_records_into_history_not_logs():
    X, y = _data(48, seed=5)
    model = _tiny("numpy")
    history = model.fit(X, y, batch_size=8, epochs=4, callbacks=[Diagnostics(every=2,
                        probe_size=16)], progress=False, verbose=False)
    assert history.diagnostics_epoch == [1, 3]
    assert set(history.history) == {"loss", "time"}
    record = history.diagnostics["dense_1"]
    assert all(len(v) == 2 for v in record.values())
    # the last record is the probe of the final parameters
    fresh = Probe(model, X, y, size=16).stats()
    for layer, stats in fresh.items():
        for stat, value in stats.items():
            np.testing.assert_array_equal(history.diagnostics[layer][stat][-1], value)
    loaded = json.loads(history.to_json())
    assert loaded["diagnostics_epoch"] == [1, 3]
    assert loaded["diagnostics"]["dense_1"]["dead_fraction"] == record["dead_fraction"]
    assert loaded["diagnostics"]["dense_1"]["histogram"][1] == record["histogram"][1].tolist()
    assert "diagnostics" not in json.loads(model.fit(X, y, epochs=1, progress=False,
                                                     verbose=False).to_json())


def test_zero_weights_give_nan_ratio_and_json_null():
    X, y = _data(16)
    model = _tiny("numpy")
    W1, _, W2, b2 = model.get_weights()
    model.set_weights([W1, np.zeros(3), W2, b2])
    history = model.fit(X, y, epochs=1, batch_size=16, callbacks=[Diagnostics()],
                        progress=False, verbose=False)
    stats = Probe(model, X, y).stats()  # after one SGD step the bias is no longer zero
    assert np.isfinite(stats["dense_1"]["update_ratio/b"])
    model.set_weights([W1, np.zeros(3), W2, b2])
    assert np.isnan(Probe(model, X, y).stats()["dense_1"]["update_ratio/b"])
    history.diagnostics["dense_1"]["update_ratio/b"][0] = float("nan")
    assert json.loads(history.to_json())["diagnostics"]["dense_1"]["update_ratio/b"] == [None]


def test_callbacks_get_the_training_arrays_after_the_validation_split():
    X, y = _data(40)
    seen = {}

    class Look(fe.Callback):
        def on_train_begin(self, logs):
            seen["data"] = self.training_data
            seen["history"] = self.model.history

    model = _tiny("numpy")
    history = model.fit(X, y, epochs=1, validation_split=0.25, callbacks=[Look()],
                        progress=False, verbose=False)
    x_seen, y_seen = seen["data"]
    np.testing.assert_array_equal(x_seen, X[:30])
    np.testing.assert_array_equal(y_seen, y[:30])
    assert seen["history"] is history
    assert fe.Callback().training_data is None


def test_probe_size_is_the_first_examples_and_compiles_once():
    X, y = _data(50)
    model = _tiny("numpy")
    diag = Diagnostics(probe_size=300)
    model.fit(X, y, epochs=1, callbacks=[diag], progress=False, verbose=False)
    probe = diag.probe
    assert probe.size == 50
    np.testing.assert_array_equal(probe.batch[0], X)
    model.fit(X, y, epochs=1, callbacks=[diag], progress=False, verbose=False)
    assert diag.probe is probe  # same data: the compiled probe is kept
    model.fit(X[::-1], y[::-1], epochs=1, callbacks=[diag], progress=False, verbose=False)
    assert diag.probe is not probe


def test_errors():
    X, y = _data(10)
    raw = fe.Sequential([L.Dense(2)], input_shape=(4,))
    with pytest.raises(RuntimeError, match="compile the model first"):
        Probe(raw, X, y)
    model = _tiny("numpy")
    with pytest.raises(ValueError, match="size must be a positive integer"):
        Probe(model, X, y, size=0)
    with pytest.raises(ValueError, match="x has 10 examples, y has 3"):
        Probe(model, X, y[:3])
    for bad in ({"every": 0}, {"probe_size": 2.5}, {"every": True}):
        with pytest.raises(ValueError, match="Diagnostics: .* must be a positive integer"):
            Diagnostics(**bad)
    lone = Diagnostics()
    lone.set_model(model)
    with pytest.raises(RuntimeError, match="no training data"):
        lone.on_train_begin({})


def test_float32_histogram_counts_in_the_activations_dtype():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(40, 5)).astype("float32")
    model = fe.Sequential([L.Dense(7, activation="relu"), L.Dense(3)], input_shape=(5,), seed=1)
    model.compile(backend="numpy")
    stats = Probe(model, X, rng.integers(0, 3, 40)).stats()["dense_1"]
    W, b = model.layers[0].W.get_value(), model.layers[0].b.get_value()
    h = np.maximum(X @ W + b, np.float32(0))
    counts, edges = stats["histogram"], stats["histogram_edges"]
    assert counts.dtype == np.int64 and edges.dtype == np.float32
    assert edges[0] == h.min() and edges[-1] == h.max()
    np.testing.assert_array_equal(counts, np.histogram(h, bins=edges)[0])
    assert stats["dead_fraction"] == pytest.approx((h.max(0) <= 0).mean())


@pytest.mark.parametrize("separate_relu", [False, True])
def test_dead_units_of_a_dense_on_sequences_are_its_last_axis(separate_relu):
    """A Dense on (batch, length, features) has its units last, as its weights' columns: a
    unit zero at every position of every example is dead (axis 1, the convolutions'
    channels, was counted instead: a position dead in every unit). So for a ReLU layer
    after it. Oracle: the forward pass in numpy."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(32, 3, 5))
    dense = L.Dense(4, activation=None if separate_relu else "relu")
    layers = [dense, L.ReLU()] if separate_relu else [dense]
    model = fe.Sequential(layers + [L.Flatten(), L.Dense(2)], input_shape=(3, 5),
                          dtype="float64", seed=0)
    weights = model.get_weights()
    weights[0][:, 0], weights[1][0] = 0.0, -1.0  # unit 0: zero at every position
    model.set_weights(weights)
    model.compile(backend="numpy")
    stats = Probe(model, X, rng.integers(0, 2, 32)).stats()[model.layers[len(layers) - 1].name]
    h = np.maximum(X @ weights[0] + weights[1], 0.0)
    assert stats["dead_fraction"] == (h.max(axis=(0, 1)) <= 0).mean() == 0.25


def test_history_json_is_strict_json_when_a_logged_value_is_not_finite():
    """A NaN or inf epoch value (a validation loss that overflowed; EarlyStopping expects
    them) was written as the bare tokens NaN / Infinity, which are not JSON (RFC 8259):
    strict readers (JavaScript's JSON.parse, jq) refuse the history file. Diagnostics'
    values were already written as null."""
    history = fe.callbacks.History()
    history.on_epoch_end(0, {"loss": 0.5, "val_loss": float("nan")})
    history.on_epoch_end(1, {"loss": 0.25, "val_loss": float("inf")})

    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    record = json.loads(history.to_json(), parse_constant=refuse)
    assert record["loss"] == [0.5, 0.25] and record["val_loss"] == [None, None]


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_a_transformer_blocks_output_is_not_read_as_its_activation(activation):
    """TransformerEncoder's activation is its hidden units'; its output is a residual sum
    after LayerNorm (values of either sign, about unit size), not that nonlinearity's. Read
    as one, the block reported 40% of tanh units and 68% of sigmoid units saturated. The
    tanh Dense before it is still scored, against numpy."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(32, 3, 4)) * 3.0
    dense = L.Dense(8, activation="tanh")
    block = L.TransformerEncoder(2, 6, activation=activation)
    model = fe.Sequential([dense, block, L.Flatten(), L.Dense(2)], input_shape=(3, 4),
                          dtype="float64", seed=0)
    model.compile(backend="numpy")
    stats = Probe(model, X, rng.integers(0, 2, 32)).stats()
    W, b = model.get_weights()[:2]
    h = np.tanh(X @ W + b)
    assert 0 < (np.abs(h) > 0.99).mean() < 1
    assert stats[dense.name]["saturated_fraction"] == pytest.approx((np.abs(h) > 0.99).mean())
    assert "saturated_fraction" not in stats[block.name]
    assert "dead_fraction" not in stats[block.name]
    assert stats[block.name]["histogram"].sum() == 32 * 3 * 8  # its output is still drawn


@pytest.mark.parametrize("first", ["Embedding", "PositionEmbedding", "MultiHeadAttention"])
def test_dead_units_after_a_sequence_layer_are_its_last_axis(first):
    """Embedding, PositionEmbedding and the attention layers give (batch, length, features):
    a ReLU layer after one has its units last, as after a Dense on sequences (axis 1, the
    positions, was counted: a feature negative everywhere read as no dead unit). Oracle:
    the layer's output in numpy."""
    rng = np.random.default_rng(8)
    if first == "Embedding":
        X = rng.integers(0, 6, (32, 3))
        layer, shape, dtype = L.Embedding(6, 4, dtype="float64"), (3,), "int64"
    else:
        X = rng.normal(size=(32, 3, 4))
        layer = L.PositionEmbedding() if first == "PositionEmbedding" else \
            L.MultiHeadAttention(2, use_bias=False)
        shape, dtype = (3, 4), "float64"
    model = fe.Sequential([layer, L.ReLU(), L.Flatten(), L.Dense(2)], input_shape=shape,
                          dtype=dtype, seed=0)
    weights = model.get_weights()
    if first == "Embedding":
        weights[0][:, 0] = -1.0  # feature 0 of every id: dead
        h = np.maximum(weights[0][X], 0.0)
    elif first == "PositionEmbedding":
        X[..., 0] = -1.0 - np.abs(X[..., 0])
        weights[0][:, 0] = -0.5
        h = np.maximum(X + weights[0], 0.0)
    else:  # values and output projections the identity: each position a mean of x's
        X[..., 0] = -1.0 - np.abs(X[..., 0])
        weights[2], weights[3] = np.eye(4), np.eye(4)
        Wq, Wk = weights[0], weights[1]
        heads = []
        for cols in (slice(0, 2), slice(2, 4)):
            s = (X @ Wq[:, cols]) @ (X @ Wk[:, cols]).transpose(0, 2, 1) / np.sqrt(2)
            p = np.exp(s - s.max(axis=-1, keepdims=True))
            heads.append((p / p.sum(axis=-1, keepdims=True)) @ X[..., cols])
        h = np.maximum(np.concatenate(heads, axis=-1), 0.0)
    model.set_weights(weights)
    model.compile(backend="numpy")
    stats = Probe(model, X, rng.integers(0, 2, 32)).stats()[model.layers[1].name]
    assert stats["dead_fraction"] == (h.max(axis=(0, 1)) <= 0).mean() == 0.25


def test_dead_units_after_residual_dropout_and_layer_norm_on_sequences():
    """A transformer's pattern, Dense on (batch, length, features) -> Dropout -> Add (the
    residual) -> LayerNorm -> ReLU: the units stay the last axis through the layers that
    keep their input's shape (axis 1, the positions, was counted: a feature dead everywhere
    read as no dead unit). Oracle: the forward pass in numpy."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(32, 3, 4))
    x = fe.Input((3, 4), "float64")
    dense = L.Dense(4)
    h = L.Add()([L.Dropout(0.0)(dense(x)), x])
    norm = L.LayerNorm()
    relu = L.ReLU()
    out = L.Dense(2)(L.Flatten()(relu(norm(h))))
    model = fe.Model([x], out, seed=0)
    gamma, beta = norm.gamma.get_value(), norm.beta.get_value()
    gamma[0], beta[0] = 0.01, -5.0  # feature 0: below zero at every position
    norm.gamma.set_value(gamma)
    norm.beta.set_value(beta)
    W, b = (v.get_value() for v in dense.weights)
    z = X @ W + b + X
    z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-5)
    hidden = np.maximum(gamma * z + beta, 0.0)
    model.compile(backend="numpy")
    stats = Probe(model, X, rng.integers(0, 2, 32)).stats()[relu.name]
    assert stats["dead_fraction"] == (hidden.max(axis=(0, 1)) <= 0).mean() == 0.25
