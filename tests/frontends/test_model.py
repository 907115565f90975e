"""Model and Sequential: graphs, weights, compile, evaluate/predict against independent oracles
(a hand-written symgraph network, numpy forward passes)."""

import json
import re

import numpy as np
import pytest

import frontends as fe
import symgraph as sg

L = fe.layers


def _data(n=96, d=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype("float32")
    y = (X[:, :k].argmax(1)).astype("int64")
    return X, y


def _mlp(seed=0, dtype="float32"):
    return fe.Sequential([L.Dense(16, activation="relu"), L.Dense(3)], input_shape=(8,),
                         dtype=dtype, seed=seed)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_one_epoch_of_sgd_equals_the_network_written_by_hand(backend):
    X, y = _data(n=100)
    model = _mlp()
    W1, b1, W2, b2 = [sg.shared(w, name=f"hand{i}") for i, w in enumerate(model.get_weights())]
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(lr=0.1), backend=backend)
    model.fit(X, y, batch_size=16, epochs=1, shuffle=False, progress=False, verbose=False)

    x = sg.tensor("x", ("batch", 8), "float32")
    t = sg.tensor("t", ("batch",), "int64")
    loss = sg.nn.cross_entropy(sg.nn.relu(x @ W1 + b1) @ W2 + b2, t)
    params = [W1, b1, W2, b2]
    lr = sg.shared(np.float32(0.1), name="lr")
    grads = sg.grad(loss, params)
    step = sg.function([x, t], loss, updates={p: p - lr * g for p, g in zip(params, grads)},
                       backend=backend)
    step.epoch(X, y, batch_size=16)
    for mine, theirs in zip(model.get_weights(), [p.get_value() for p in params]):
        np.testing.assert_array_equal(mine, theirs)  # bit for bit: the same graph, same steps


def test_weights_named_by_layer_in_keras_order_and_set_weights_is_all_or_nothing():
    model = fe.Sequential([L.Dense(4, name="hidden"), L.BatchNorm(), L.Dense(2)],
                          input_shape=(3,), seed=1)
    names = [w.name for w in model.weights]
    assert names == ["hidden/W", "hidden/b", "batch_norm_1/gamma", "batch_norm_1/beta",
                     "batch_norm_1/running_mean", "batch_norm_1/running_var", "dense_1/W",
                     "dense_1/b"]
    ws = model.get_weights()
    assert [w.shape for w in ws] == [(3, 4), (4,), (4,), (4,), (4,), (4,), (4, 2), (2,)]
    before = model.get_weights()
    bad = [w + 1 for w in ws]
    bad[-1] = np.zeros(5, "float32")
    with pytest.raises(ValueError, match=r"dense_1/b has shape \(2,\), got \(5,\)"):
        model.set_weights(bad)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # nothing changed
    with pytest.raises(ValueError, match="8 weights, got 2"):
        model.set_weights(ws[:2])
    model.set_weights([w * 0 + 2 for w in ws])
    assert all((w == 2).all() for w in model.get_weights())


def test_same_seed_same_model_and_regularisable_weights_are_kernels():
    a, b, c = _mlp(seed=3), _mlp(seed=3), _mlp(seed=4)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
    assert [w.name for w in a.regularizable_weights] == ["dense_1/W", "dense_2/W"]


def _forward_numpy(ws, X):
    W1, b1, g, be, rm, rv, W2, b2 = ws
    h = np.maximum(X @ W1 + b1, 0)
    h = g * (h - rm) / np.sqrt(rv + 1e-3) + be
    return h @ W2 + b2


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_predict_is_inference_mode_and_evaluate_averages_over_examples(backend):
    X, y = _data(n=70)
    model = fe.Sequential([L.Dense(16, activation="relu"), L.Dropout(0.5), L.BatchNorm(),
                           L.Dense(3)], input_shape=(8,), seed=0)
    model.compile(loss="cross_entropy", optimizer="adam", metrics=["accuracy"],
                  backend=backend)
    model.fit(X, y, batch_size=16, epochs=2, progress=False, verbose=False)
    ws = model.get_weights()
    assert not np.allclose(ws[4], 0)  # running mean moved during training
    expected = _forward_numpy([w.astype(np.float64) for w in ws], X.astype(np.float64))
    np.testing.assert_allclose(model.predict(X, batch_size=32), expected, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(model.predict(X, batch_size=7), expected, rtol=2e-4, atol=2e-5)
    logits = expected
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    result = model.evaluate(X, y, batch_size=32)  # batches of 32, 32, 6: weighted by size
    assert result["loss"] == pytest.approx(-logp[np.arange(70), y].mean(), rel=1e-4)
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == y).mean(), abs=1e-6)


def test_functional_model_with_two_inputs_and_a_residual():
    a, b = fe.Input((4,), name="a"), fe.Input((4,), name="b")
    h = L.Dense(4, activation="tanh")(a)
    s = L.Add()([h, b])
    out = L.Dense(2)(L.Concatenate()([s, a]))
    model = fe.Model([a, b], out, seed=5)
    assert [layer.kind for layer in model.layers] == ["Dense", "Add", "Concatenate", "Dense"]
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(10, 4)), rng.normal(size=(10, 4))
    W1, b1, W2, b2 = model.get_weights()
    s_np = np.tanh(A @ W1 + b1) + B
    expected = np.concatenate([s_np, A], 1) @ W2 + b2
    np.testing.assert_allclose(model.predict([A.astype("float32"), B.astype("float32")]),
                               expected, rtol=1e-5, atol=1e-5)
    model.compile(loss="mse", optimizer=fe.optimizers.SGD(lr=0.05))
    target = rng.normal(size=(10, 2)).astype("float32")
    first = model.evaluate([A, B], target)["loss"]
    model.fit([A, B], target, batch_size=5, epochs=20, progress=False, verbose=False)
    assert model.evaluate([A, B], target)["loss"] < 0.5 * first


def test_nodes_carry_layer_scopes_through_grad():
    model = _mlp()
    model.compile(loss="cross_entropy", optimizer="sgd")
    outputs, grads, _ = model.train_graph
    nodes = sg.graph.toposort(outputs + grads)
    scopes = {n.scope for n in nodes}
    assert {"dense_1", "dense_2"} <= scopes
    grad_scopes = {n.scope for n in nodes if n.grad_call is not None}
    assert {"dense_1", "dense_2"} <= grad_scopes


def test_summary_counts_parameters():
    model = fe.Sequential([L.Dense(5), L.BatchNorm(), L.Dense(2)], input_shape=(3,), seed=0)
    text = model.summary(print_fn=None)
    assert "dense_1 (Dense)" in text and "(batch, 5)" in text
    total = sum(w.size for w in model.get_weights())
    assert f"Total params: {total:,}" in text
    assert "Non-trainable params: 10" in text  # running mean and variance of 5 units
    model.compile(loss="cross_entropy", optimizer="sgd")
    assert "gradient nodes" in model.summary(print_fn=None)


def test_model_errors_name_the_problem():
    layer = L.Dense(3)
    fe.Sequential([layer], input_shape=(2,))
    with pytest.raises(ValueError, match="already belongs"):
        fe.Sequential([layer], input_shape=(2,))
    model = _mlp()
    with pytest.raises(RuntimeError, match="compile the model first"):
        model.evaluate(*_data())
    x = fe.Input((3,))
    other = fe.Input((3,), name="other")
    with pytest.raises(ValueError, match="needs input 'other'"):
        fe.Model([x], L.Add()([L.Dense(3)(x), other]))


def test_predict_of_no_examples_and_a_model_without_trainable_weights():
    model = fe.Sequential([L.Dense(2)], input_shape=(3,))
    assert model.predict(np.zeros((0, 3), "float32")).shape == (0, 2)
    fixed = fe.Sequential([L.Dropout(0.5)], input_shape=(3,), seed=0)
    fixed.compile(loss="mse")
    X = np.ones((4, 3), "float32")
    assert fixed.evaluate(X, X) == {"loss": 0.0}  # inference: dropout off
    # training: every unit is 0 or 2, so every squared error is exactly 1
    assert fixed.fit(X, X, progress=False, verbose=False).history["loss"] == [1.0]


def test_layer_output_gives_a_feature_extractor():
    model = fe.Sequential([L.Dense(4, activation="tanh"), L.Dense(2)], input_shape=(3,), seed=0)
    before = model.get_weights()
    features = fe.Model(model.inputs, model.layers[0].output, seed=1)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # a second model on the same layers resets nothing
    X = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    W, b = model.get_weights()[:2]
    np.testing.assert_allclose(features.predict(X), np.tanh(X @ W + b), rtol=1e-5, atol=1e-6)
    assert features.weights == model.weights[:2]  # the same shared variables


def test_label_column_hint_is_ravel_and_one_hot_hint_is_argmax():
    X, y = _data(n=30)
    model = _mlp()
    model.compile(loss="cross_entropy", optimizer="sgd")
    with pytest.raises(ValueError, match=r"got y of shape \(30, 1\) \(a column of labels\? "
                                         r"pass y\.ravel\(\)\)$"):
        model.fit(X, y[:, None], progress=False)
    with pytest.raises(ValueError, match=r"got y of shape \(30, 3\) \(one-hot rows\? pass the "
                                         r"class indices: y\.argmax\(1\), or use a loss that "
                                         r"takes rows: "
                                         r"CrossEntropy\(targets='probabilities'\)\)$"):
        model.fit(X, np.eye(3)[y], progress=False)
    regression = _mlp()
    regression.compile(loss="mse", optimizer="sgd")
    with pytest.raises(ValueError, match=r"mse takes targets of shape \(batch, 3\).*integer "
                                         r"class labels\? use a loss that takes labels: "
                                         r"'cross_entropy'"):
        regression.fit(X, y, progress=False)
    one = fe.Sequential([L.Dense(1)], input_shape=(X.shape[1],))
    one.compile(loss="mse", optimizer="sgd")
    with pytest.raises(ValueError, match=r"got y of shape \(30,\) \(one target per example\? "
                                         r"pass a column: y\[:, None\]\)$"):
        one.fit(X, y.astype(np.float32), progress=False)
    one.fit(X, y.astype(np.float32)[:, None], progress=False, verbose=False)  # as it says
    # 0/1 integer labels for one sigmoid output: the column, not "integer class labels?"
    binary = fe.Sequential([L.Dense(1)], input_shape=(8,), seed=0)
    binary.compile(loss="binary_cross_entropy", optimizer="sgd")
    with pytest.raises(ValueError, match=r"got y of shape \(30,\) \(one target per example\? "
                                         r"pass a column: y\[:, None\]\)$"):
        binary.fit(X, (y > 0).astype(np.int64), progress=False)


def test_predict_and_evaluate_check_fixed_dims_and_labels_on_the_users_arrays():
    X, y = _data(n=300)  # more than one 256-example batch: the message names the user's shape
    model = _mlp()
    model.compile(loss="cross_entropy", optimizer="sgd")
    with pytest.raises(fe.errors.UserInputError,
                       match=r"^predict: input 'x' expects shape \(batch, 8\), got \(300, 7\)$"):
        model.predict(X[:, :7])
    with pytest.raises(fe.errors.UserInputError,
                       match=r"^evaluate: input 'x' expects shape \(batch, 8\), got \(300, 7\)$"):
        model.evaluate(X[:, :7], y)
    y_bad = y.copy()
    y_bad[290] = 3
    with pytest.raises(fe.errors.UserInputError,
                       match=r"^evaluate: label 3 at row 290 of y is out of range.*"
                             r"labels must be in \[0, 3\); y's labels span \[0, 3\]$"):
        model.evaluate(X, y_bad)
    with pytest.raises(fe.errors.UserInputTypeError, match="input 'x' must be float32"):
        model.predict(X.astype(str))
    # NaN/inf (or a float64 beyond float32) in predict's input: an error naming the row, as
    # in evaluate, not rows of NaN out
    for bad, words in ((np.inf, "inf"), (1e39, "1e+39")):
        X64 = X.astype(np.float64)
        X64[123, 4] = bad
        with pytest.raises(fe.errors.UserInputError, match=r"^predict: input 'x'.*row 123, "
                                                           r"column 4") as err:
            model.predict(X64)
        assert words in str(err.value), str(err.value)


def test_negative_seed_is_a_clear_error():
    with pytest.raises(fe.errors.UserInputError, match="seed must be a non-negative integer, "
                                                       "got -5"):
        _mlp(seed=-5)
    with pytest.raises(fe.errors.UserInputError, match="got -1"):
        _mlp().initialize(-1)


def test_a_failed_compile_leaves_the_model_as_it_was():
    """Recompiling with a metric that does not fit (top-5 of 3 classes) keeps the compiled
    step, its metrics and its optimizer; a first compile that fails leaves it uncompiled."""
    X, y = _data()
    model = _mlp()
    model.compile(loss="cross_entropy", optimizer="sgd", metrics=["accuracy"])
    train, optimizer = model.train_function, model.optimizer
    with pytest.raises(ValueError, match="top_5_accuracy"):
        model.compile(loss="cross_entropy", optimizer="adam", metrics=["top_5_accuracy"])
    assert model.metrics_names == ["loss", "accuracy"]
    assert model.train_function is train and model.optimizer is optimizer
    history = model.fit(X, y, epochs=1, progress=False, verbose=False)
    assert set(history.history) == {"loss", "accuracy", "time"}
    fresh = _mlp()
    with pytest.raises(ValueError, match="top_5_accuracy"):
        fresh.compile(loss="cross_entropy", metrics=["top_5_accuracy"])
    assert not fresh.compiled
    with pytest.raises(RuntimeError, match="compile"):
        fresh.fit(X, y, epochs=1)


def test_adamw_from_a_config_decays_kernels_only_and_survives_save(tmp_path):
    """One full-batch step: AdamW's kernels are Adam's minus ``lr * wd * W0`` (decoupled
    decay), its excluded biases are Adam's bit for bit; the config (exclude included)
    comes back from the model file and training resumes identically."""
    X, y = _data(n=32)
    models = {}
    for kind in ("adam", "adamw"):
        m = _mlp(seed=4)
        opt = ({"type": "Adam", "lr": 0.01} if kind == "adam" else
               {"type": "AdamW", "lr": 0.01, "weight_decay": 0.5, "exclude": ["b"]})
        m.compile(loss="cross_entropy", optimizer=opt)
        # nonzero biases: a decayed zero bias would equal Adam's and hide a missed exclude
        m.set_weights([w + 0.5 for w in m.get_weights()])
        models[kind] = m
    W0 = models["adam"].get_weights()
    for m in models.values():
        m.fit(X, y, batch_size=32, epochs=1, shuffle=False, progress=False, verbose=False)
    adam, adamw = models["adam"].get_weights(), models["adamw"].get_weights()
    for i, (a, w, w0) in enumerate(zip(adam, adamw, W0)):
        if i % 2:  # biases
            np.testing.assert_array_equal(w, a)
        else:
            np.testing.assert_allclose(w, a - 0.01 * 0.5 * w0, rtol=1e-6, atol=1e-7)
            assert np.abs(w - a).max() > 1e-4
    models["adamw"].save(tmp_path / "m.npz")
    loaded = fe.load_model(tmp_path / "m.npz")
    assert type(loaded.optimizer) is fe.optimizers.AdamW
    assert loaded.optimizer.exclude == ("b",)
    assert loaded.optimizer.get_config() == models["adamw"].optimizer.get_config()
    for m in (models["adamw"], loaded):
        m.fit(X, y, batch_size=32, epochs=1, shuffle=False, progress=False, verbose=False)
    for a, b in zip(models["adamw"].get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_adamw_exclude_naming_no_parameter_is_refused():
    model = _mlp()
    with pytest.raises(ValueError, match=r"exclude names \['bias'\], which match no parameter; "
                                         r"short names here: \['W', 'b'\]"):
        model.compile(loss="cross_entropy",
                      optimizer=fe.optimizers.AdamW(exclude=["bias", "dense_1/W"]))


def test_inputs_of_the_default_name_are_told_apart_in_messages():
    """fe.Input names every input "x" by default: a mistake in the second array says which
    input it is, not just 'x'."""
    x1, x2 = fe.Input((4,)), fe.Input((4,))
    model = fe.Model([x1, x2], L.Dense(2)(L.Concatenate()([x1, x2])), seed=0)
    model.compile(loss="cross_entropy", optimizer="sgd")
    A, y = np.ones((10, 4), np.float32), np.arange(10) % 2
    with pytest.raises(fe.errors.UserInputError,
                       match=r"^fit: input 2 of 2 \('x'\) expects shape \(batch, 4\), "
                             r"got \(10, 3\)$"):
        model.fit([A, A[:, :3]], y, progress=False)
    bad = A.copy()
    bad[2, 2] = np.nan
    with pytest.raises(fe.errors.UserInputError, match=r"^fit: input 2 of 2 \('x'\).*row 2"):
        model.fit([A, bad], y, progress=False)
    with pytest.raises(fe.errors.UserInputError, match=r"^predict: input 1 of 2 \('x'\).*row 2"):
        model.predict([bad, A])


@pytest.mark.parametrize("shape", [(None, 8), (None,), (0,), (-1,), (8.5,), ("n",), (True, 8)])
def test_an_input_shape_that_is_not_fixed_positive_ints_is_a_clear_error(shape):
    """A Keras user's ``input_shape=(None, 8)`` (a variable length) was a raw ``int()``
    TypeError from inside ``Sequential``; 8.5 became 8 and 0 built a model without inputs."""
    with pytest.raises(ValueError, match=r"Sequential: input_shape must be one example's "
                       r"shape, without the batch dim, as positive integers .* got "
                       + re.escape(repr(shape))):
        fe.Sequential([L.Dense(3)], input_shape=shape)
    with pytest.raises(ValueError, match=r"Input: shape must be one example's shape"):
        fe.Input(shape)
    assert fe.Sequential([L.Dense(3)], input_shape=np.int64(4)).input_shape == (4,)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_an_embedding_shared_by_two_inputs_checks_the_ids_of_both_before_training(backend):
    """fit checked ids only against the input of the Embedding's latest call: a bad id in
    the other input failed mid-epoch (an IndexError naming rows of a chunk, not the user's
    row 199) after the steps before it had changed every weight."""
    a, b = fe.Input((3,), "int64", name="a"), fe.Input((3,), "int64", name="b")
    emb = L.Embedding(5, 2, name="emb")
    out = L.Dense(2, name="o")(L.Flatten(name="f")(L.Add(name="add")([emb(a), emb(b)])))
    model = fe.Model([a, b], out, seed=0)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(lr=0.1), backend=backend)
    rng = np.random.default_rng(0)
    A, B, y = rng.integers(0, 5, (200, 3)), rng.integers(0, 5, (200, 3)), rng.integers(0, 2, 200)
    A[199, 0] = 9
    before = model.get_weights()
    with pytest.raises(fe.UserInputError, match="input 'a' holds id 9 at row 199"):
        model.fit([A, B], y, batch_size=4, shuffle=False, progress=False, verbose=False)
    for u, v in zip(before, model.get_weights()):
        np.testing.assert_array_equal(u, v)  # nothing changed
    with pytest.raises(fe.UserInputError, match="input 'a' holds id 9 at row 199"):
        model.predict([A, B])


def test_concatenate_refuses_an_axis_out_of_range_instead_of_wrapping_it():
    """axis % ndim turned axis=3 of 3-d inputs into axis 0, the batch: predict returned
    10 rows for 5 examples (numpy and Keras raise for an axis out of range)."""
    a, b = fe.Input((2, 3), name="a"), fe.Input((2, 3), name="b")
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        L.Concatenate(axis=3)([a, b])
    with pytest.raises(ValueError, match="axis -4 is out of range"):
        L.Concatenate(axis=-4)([a, b])
    assert L.Concatenate(axis=-1)([a, b]).shape[1:] == (2, 6)


def test_a_merge_layer_output_gives_a_feature_extractor():
    """Add/Concatenate left ``layer.output`` None: Model(x, add.output) was a bare
    TypeError ('NoneType' object is not iterable)."""
    x = fe.Input((3,), "float64")
    dense = L.Dense(3, activation="tanh")
    add = L.Add()
    out = L.Dense(2)(add([dense(x), x]))
    fe.Model(x, out, seed=0)
    features = fe.Model(x, add.output)
    X = np.random.default_rng(0).normal(size=(4, 3))
    W, b = dense.W.get_value(), dense.b.get_value()
    np.testing.assert_allclose(features.predict(X), np.tanh(X @ W + b) + X, rtol=1e-12)


def test_two_functional_models_built_the_same_way_train_the_same():
    """Model's rule: two models built the same way from one seed are equal bit for bit.
    Their weights were, but a second build in the same process names its Dropout dropout_2,
    and the masks followed the name: first-epoch losses 1.835 vs 1.770 (Sequential names
    per model and is not affected). The masks now follow the layer's count on its input."""
    def build():
        x = fe.Input((4,), "float64")
        h = L.Dropout(0.3)(L.Dense(5, activation="relu")(x))
        return fe.Model(x, L.Dense(3)(L.Add()([h, L.Dense(5)(x)])), seed=3)

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    first, second = build(), build()
    for m in (first, second):
        m.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(lr=0.1), backend="numpy")
        m.fit(X, y, batch_size=7, epochs=2, shuffle=False, progress=False, verbose=False)
    for u, v in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_two_dropout_branches_of_one_input_draw_different_masks():
    # keyed by their count on the input (dropout@1, dropout@2), not both "the first dropout"
    x = fe.Input((400,), "float64")
    a, b = L.Dropout(0.5)(x), L.Dropout(0.5)(x)
    f = sg.function([x], [a, b], backend="numpy")
    ma, mb = f(np.ones((2, 400)))
    assert set(np.unique(ma)) == {0.0, 2.0} and set(np.unique(mb)) == {0.0, 2.0}
    assert (ma != mb).mean() > 0.3  # independent masks differ in about half the places


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_a_model_flushes_denormals_unless_told_not_to_and_its_file_keeps_the_choice(
        backend, tmp_path):
    """A Dense whose output is subnormal (1 * tiny/8): 0 from a model compiled with the
    default (as Keras on JAX or TensorFlow computes), tiny/8 (numpy's product) with
    flush_denormals=False; a saved model loads with the same choice."""
    tiny = np.finfo(np.float32).tiny
    X = np.ones((2, 1), np.float32)
    for flush in (True, False):
        model = fe.Sequential([L.Dense(1, use_bias=False)], input_shape=(1,))
        model.set_weights([np.full((1, 1), tiny / 8, np.float32)])
        kwargs = {} if flush else {"flush_denormals": False}
        model.compile(loss="mse", optimizer="sgd", backend=backend, **kwargs)
        want = np.zeros((2, 1), np.float32) if flush else X * np.float32(tiny / 8)
        np.testing.assert_array_equal(model.predict(X), want)
        model.save(tmp_path / f"m{flush}.npz")
        again = fe.load_model(tmp_path / f"m{flush}.npz")
        assert again.flush_denormals is flush
        np.testing.assert_array_equal(again.predict(X), want)
    with pytest.raises(TypeError, match="flush_denormals must be True or False, got 1"):
        model.compile(loss="mse", flush_denormals=1)
    # a file written before the option (no key): it trained with subnormals kept, and so
    # does its resumed fit
    old = tmp_path / "old.npz"
    with np.load(tmp_path / "mTrue.npz") as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["symgraph_model"]))
    del header["compile"]["flush_denormals"]
    arrays["symgraph_model"] = np.array(json.dumps(header))
    np.savez_compressed(old, **arrays)
    assert fe.load_model(old).flush_denormals is False
