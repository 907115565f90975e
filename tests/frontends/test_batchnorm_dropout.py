"""The two layers whose training and inference differ: ``BatchNorm`` (batch statistics with
the gradient through them, Keras-convention running averages, running statistics at
inference; against numpy, finite differences and ``torch.nn.functional.batch_norm``) and
``Dropout`` (drop rate, inverted scaling, a fresh mask per call, the same mask forward and
backward, reproducible from the model seed, the identity at inference)."""

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import frontends as fe
import symgraph as sg
from frontends import layers as L
from symgraph.ops.elemwise import dropout_uniform

EPS, MOMENTUM = 1e-3, 0.99  # Keras's defaults, which BatchNorm documents


@pytest.fixture
def rng():
    return np.random.default_rng(11)


# --------------------------------------------------------------------------- batch norm oracles


def _unit_shape(ndim, axis):
    shape = [1] * ndim
    shape[axis] = -1
    return shape


def bn_train_numpy(X, gamma, beta, running_mean, running_var, axis=1):
    """Training-mode output and the running statistics after the step (Keras convention:
    ``running = 0.99 running + 0.01 batch``, the biased batch variance)."""
    axes = tuple(a for a in range(X.ndim) if a != axis)
    shape = _unit_shape(X.ndim, axis)
    mean, var = X.mean(axis=axes), X.var(axis=axes)  # np.var is the biased variance
    out = (gamma.reshape(shape) * (X - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + EPS)
           + beta.reshape(shape))
    return (out, MOMENTUM * running_mean + (1 - MOMENTUM) * mean,
            MOMENTUM * running_var + (1 - MOMENTUM) * var)


def bn_inference_numpy(X, gamma, beta, running_mean, running_var, axis=1):
    shape = _unit_shape(X.ndim, axis)
    return (gamma.reshape(shape) * (X - running_mean.reshape(shape))
            / np.sqrt(running_var.reshape(shape) + EPS) + beta.reshape(shape))


def bn_train_torch(X, gamma, beta, running_mean, running_var):
    """torch's training step, translated to the Keras convention explicitly.

    torch's ``momentum`` is the weight of the *batch* statistic (so 0.01 here), and it
    updates ``running_var`` with the UNBIASED batch variance: ``rv_t = 0.99 rv + 0.01 s^2
    m / (m - 1)`` with ``m`` values per unit. Ours uses ``s^2``, so ours is
    ``0.99 rv + (rv_t - 0.99 rv) (m - 1) / m``."""
    rm = torch.tensor(running_mean, dtype=torch.float64)
    rv = torch.tensor(running_var, dtype=torch.float64)
    out = F.batch_norm(torch.tensor(X, dtype=torch.float64), rm, rv,
                       torch.tensor(gamma, dtype=torch.float64),
                       torch.tensor(beta, dtype=torch.float64), training=True,
                       momentum=1 - MOMENTUM, eps=EPS)
    m = X.size // X.shape[1]
    old = MOMENTUM * np.asarray(running_var, np.float64)
    keras_rv = old + (rv.numpy() - old) * (m - 1) / m
    return out.numpy(), rm.numpy(), keras_rv


def bn_inference_torch(X, gamma, beta, running_mean, running_var):
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    return F.batch_norm(t(X), t(running_mean), t(running_var), t(gamma), t(beta),
                        training=False, eps=EPS).numpy()


# --------------------------------------------------------------------------- batch norm


@pytest.mark.parametrize("shape, axis", [((5, 3), 1), ((4, 2, 3, 2), 1), ((3, 2, 3), -1)],
                         ids=["features", "nchw", "last_axis"])
def test_batchnorm_training_gradient_flows_through_batch_mean_and_variance(rng, shape, axis):
    x = sg.tensor("x", shape, "float64")
    layer = L.BatchNorm(axis=axis)
    out = layer(x)
    units = shape[axis]
    layer.gamma.set_value(rng.uniform(0.5, 2.0, units))
    layer.beta.set_value(rng.normal(size=units))
    c = rng.normal(size=shape)

    def fn(xv, gamma, beta):
        [o] = sg.clone_replace([out], {x: xv, layer.gamma: gamma, layer.beta: beta})
        return sg.sum(o * c)

    sg.check_grad(fn, [rng.normal(size=shape) * 2 + 1, layer.gamma.get_value(),
                       layer.beta.get_value()], rtol=1e-5, atol=1e-7)


def test_batchnorm_sum_of_outputs_has_zero_input_gradient(rng):
    # sum over the batch of x_hat is 0 for any x, so d sum(bn(x)) / dx = 0 exactly in theory;
    # treating the batch statistics as constants would give gamma / sqrt(var + eps) instead
    x = sg.tensor("x", (6, 3), "float64")
    layer = L.BatchNorm()
    g = sg.function([x], sg.grad(sg.sum(layer(x)), x), backend="numpy")(
        rng.normal(size=(6, 3)) * 3)
    np.testing.assert_allclose(g, 0.0, atol=1e-12)


def test_batchnorm_training_step_matches_numpy_and_torch(backend, rng):
    x = fe.Input((4,), "float64")
    layer = L.BatchNorm()
    out = layer(x)
    gamma, beta = rng.uniform(0.5, 2.0, 4), rng.normal(size=4)
    rm0, rv0 = rng.normal(size=4), rng.uniform(0.5, 2.0, 4)
    for var, value in zip(layer.weights, (gamma, beta, rm0, rv0)):
        var.set_value(value)
    assert set(layer.state_updates) == {layer.running_mean, layer.running_var}
    step = sg.function([x], out, updates=layer.state_updates, backend=backend)
    X = rng.normal(size=(8, 4)) * 3 + 1
    value = step(X)
    rm, rv = layer.running_mean.get_value(), layer.running_var.get_value()

    expected, erm, erv = bn_train_numpy(X, gamma, beta, rm0, rv0)
    np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm, erm, rtol=1e-12)
    np.testing.assert_allclose(rv, erv, rtol=1e-12)
    t_out, t_rm, t_rv = bn_train_torch(X, gamma, beta, rm0, rv0)
    np.testing.assert_allclose(value, t_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm, t_rm, rtol=1e-12)
    np.testing.assert_allclose(rv, t_rv, rtol=1e-12)
    # the gamma and beta weights are untouched by the step; only the running statistics move
    np.testing.assert_array_equal(layer.gamma.get_value(), gamma)


def _three_training_steps(model, batches, targets, backend):
    model.compile(loss="mse", optimizer=fe.optimizers.SGD(lr=0.05), backend=backend)
    for X, Y in zip(batches, targets):
        model.train_function(X, Y)


@pytest.mark.parametrize("input_shape", [(3,), (2, 3, 2)], ids=["features", "nchw"])
def test_batchnorm_running_statistics_after_three_compiled_steps_and_predict(
        backend, rng, input_shape):
    model = fe.Sequential([L.BatchNorm(axis=1)], input_shape=input_shape, seed=0)
    layer = model.layers[0]
    units = input_shape[0]
    gamma0, beta0 = np.ones(units), np.zeros(units)
    np.testing.assert_array_equal(layer.gamma.get_value(), gamma0)  # Keras's defaults
    np.testing.assert_array_equal(layer.running_var.get_value(), np.ones(units))
    batches = [(rng.normal(size=(6, *input_shape)) * (k + 1) + k).astype(np.float32)
               for k in range(3)]
    targets = [rng.normal(size=(6, *input_shape)).astype(np.float32) for _ in range(3)]
    _three_training_steps(model, batches, targets, backend)

    rm, rv = np.zeros(units), np.ones(units)
    t_rm, t_rv = rm.copy(), rv.copy()
    for X in batches:
        # BatchNorm is the first layer: the statistics depend on the inputs only, not on
        # the SGD steps on gamma and beta
        _, rm, rv = bn_train_numpy(X.astype(np.float64), gamma0, beta0, rm, rv)
        _, t_rm, t_rv = bn_train_torch(X, gamma0, beta0, t_rm, t_rv)
    got_rm, got_rv = layer.running_mean.get_value(), layer.running_var.get_value()
    assert got_rm.dtype == np.float32
    np.testing.assert_allclose(got_rm, rm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_rv, rv, rtol=1e-5)
    np.testing.assert_allclose(got_rm, t_rm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_rv, t_rv, rtol=1e-5)

    # inference: the running statistics (not the batch's), and the trained gamma and beta
    gamma, beta = layer.gamma.get_value(), layer.beta.get_value()
    assert not np.allclose(gamma, 1.0)  # SGD moved them: a real check of which are used
    Xt = rng.normal(size=(5, *input_shape)).astype(np.float32) * 2
    predicted = model.predict(Xt)
    np.testing.assert_allclose(predicted, bn_inference_numpy(Xt, gamma, beta, got_rm, got_rv),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(predicted, bn_inference_torch(Xt, gamma, beta, got_rm, got_rv),
                               rtol=1e-5, atol=1e-5)
    batch_stats = bn_train_numpy(Xt.astype(np.float64), gamma, beta, rm, rv)[0]
    assert not np.allclose(predicted, batch_stats, atol=1e-2)


def test_fit_updates_the_running_statistics_after_every_minibatch(backend, rng):
    model = fe.Sequential([L.BatchNorm()], input_shape=(3,), dtype="float64", seed=0)
    model.compile(loss="mse", optimizer=fe.optimizers.SGD(lr=0.1), backend=backend)
    X, Y = rng.normal(size=(10, 3)) * 2 + 1, rng.normal(size=(10, 3))
    model.fit(X, Y, epochs=2, batch_size=4, shuffle=False, progress=False, verbose=False)
    rm, rv = np.zeros(3), np.ones(3)
    for _ in range(2):
        for i in range(0, 10, 4):  # the last batch of 2 is a step too
            _, rm, rv = bn_train_numpy(X[i:i + 4], np.ones(3), np.zeros(3), rm, rv)
    layer = model.layers[0]
    np.testing.assert_allclose(layer.running_mean.get_value(), rm, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(layer.running_var.get_value(), rv, rtol=1e-12)


def test_batchnorm_training_output_on_nchw_matches_torch(backend, rng):
    x = fe.Input((3, 2, 2), "float64")
    layer = L.BatchNorm(axis=1)
    out = layer(x)
    gamma, beta = rng.uniform(0.5, 2.0, 3), rng.normal(size=3)
    layer.gamma.set_value(gamma)
    layer.beta.set_value(beta)
    X = rng.normal(size=(4, 3, 2, 2)) * 2
    value = sg.function([x], out, backend=backend)(X)
    t_out, _, _ = bn_train_torch(X, gamma, beta, np.zeros(3), np.ones(3))
    np.testing.assert_allclose(value, t_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(value, bn_train_numpy(X, gamma, beta, 0, 1)[0], rtol=1e-12,
                               atol=1e-12)


def test_batchnorm_momentum_argument(rng):
    x = fe.Input((2,), "float64")
    layer = L.BatchNorm(momentum=0.9, eps=0.01)
    layer(x)
    X = rng.normal(size=(5, 2))
    sg.function([x], [], updates=layer.state_updates, backend="numpy")(X)
    np.testing.assert_allclose(layer.running_mean.get_value(), 0.1 * X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var.get_value(), 0.9 + 0.1 * X.var(0),
                               rtol=1e-12)


def test_batchnorm_rejects_bad_axes_and_inputs():
    with pytest.raises(ValueError, match="bn_batch.*non-batch"):
        L.BatchNorm(axis=0, name="bn_batch")(fe.Input((3,)))
    with pytest.raises(ValueError, match="bn_range.*axis 3"):
        L.BatchNorm(axis=3, name="bn_range")(fe.Input((3,)))  # used to wrap to axis 1
    with pytest.raises(ValueError, match="bn_vec.*BatchNorm needs"):
        L.BatchNorm(name="bn_vec")(sg.tensor("v", ("batch",), "float32"))
    with pytest.raises(ValueError, match="bn_sym.*fixed"):
        L.BatchNorm(name="bn_sym")(sg.tensor("z", ("batch", "n"), "float32"))
    with pytest.raises(ValueError, match="BatchNorm: eps"):
        L.BatchNorm(eps=-1.0)


def test_batchnorm_before_a_no_op_dropout_stays_in_the_model(rng):
    # Dropout(0) used to take over the batch-norm output: batch norm left the model and the
    # inference graph normalised with the batch's statistics
    model = fe.Sequential([L.BatchNorm(), L.Dropout(0.0)], input_shape=(3,), dtype="float64")
    assert [layer.name for layer in model.layers] == ["batch_norm_1", "dropout_1"]
    layer = model.layers[0]
    layer.running_mean.set_value(np.array([1.0, -1.0, 0.5]))
    layer.running_var.set_value(np.array([4.0, 0.25, 1.0]))
    X = rng.normal(size=(4, 3))
    np.testing.assert_allclose(
        model.predict(X), bn_inference_numpy(X, np.ones(3), np.zeros(3),
                                             layer.running_mean.get_value(),
                                             layer.running_var.get_value()), rtol=1e-12)


# --------------------------------------------------------------------------- dropout


def _dropout_model(rate, n, seed=0, dtype="float64"):
    model = fe.Sequential([L.Dropout(rate)], input_shape=(n,), dtype=dtype, seed=seed)
    return model, model.layers[0]


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8])
def test_dropout_drops_a_fraction_rate_and_scales_the_rest_exactly(backend, rng, rate):
    n = 20000
    model, _ = _dropout_model(rate, n)
    X = rng.uniform(0.5, 1.5, size=(1, n))  # no zeros of its own
    out = sg.function(model.inputs, model.output, backend=backend)(X)
    dropped = out == 0
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(dropped.mean() - rate) < 5 * sigma
    np.testing.assert_array_equal(out[~dropped], X[~dropped] * (1.0 / (1.0 - rate)))


def test_dropout_float32_scaling_is_exact(backend, rng):
    model, _ = _dropout_model(0.3, 1000, dtype="float32")
    X = rng.uniform(0.5, 1.5, size=(2, 1000)).astype(np.float32)
    out = sg.function(model.inputs, model.output, backend=backend)(X)
    assert out.dtype == np.float32
    kept = out != 0
    np.testing.assert_array_equal(out[kept], X[kept] * np.float32(1.0 / 0.7))


def test_dropout_mask_changes_between_calls_and_the_counter_advances(backend):
    model, layer = _dropout_model(0.5, 64)
    f = sg.function(model.inputs, model.output, backend=backend)
    start = layer.counter.get_value()
    X = np.ones((4, 64))
    masks = [f(X) != 0 for _ in range(3)]
    assert layer.counter.get_value() == start + 3
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])
    assert not np.array_equal(masks[0][0], masks[0][1])  # rows differ within one batch too


def test_dropout_masks_are_the_same_on_both_backends():
    # the numpy evaluator is the reference for the compiled hash; both start from the seed
    X = np.ones((3, 50))
    outs = []
    for backend in ("numpy", "llvm"):
        model, _ = _dropout_model(0.4, 50, seed=5)
        f = sg.function(model.inputs, model.output, backend=backend)
        outs.append([f(X) for _ in range(2)])
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    # and it is the documented hash of (layer seed, counter, index)
    model, layer = _dropout_model(0.4, 50, seed=5)
    keep = dropout_uniform(zlib.crc32(b"dropout_1"), int(layer.counter.get_value()),
                           (3, 50)) < 0.6
    np.testing.assert_array_equal(outs[0][0] != 0, keep)


def test_dropout_is_the_identity_at_inference(backend, rng):
    model, _ = _dropout_model(0.5, 8)
    assert model.inference_output is model.inputs[0]
    X = rng.normal(size=(5, 8))
    f = sg.function(model.inputs, model.inference_output, backend=backend)
    np.testing.assert_array_equal(f(X), X)
    np.testing.assert_array_equal(f(X), X)  # and every time
    np.testing.assert_array_equal(model.predict(X), X)


def test_dropout_in_a_model_is_off_for_predict(backend, rng):
    model = fe.Sequential([L.Dense(6, activation="tanh"), L.Dropout(0.5), L.Dense(2)],
                          input_shape=(3,), dtype="float64", seed=1)
    W1, b1, W2, b2 = model.get_weights()
    X = rng.normal(size=(4, 3))
    model.compile(loss="mse", optimizer=fe.optimizers.SGD(lr=0.0), backend=backend)
    np.testing.assert_allclose(model.predict(X), np.tanh(X @ W1 + b1) @ W2 + b2, rtol=1e-12)
    train_out = sg.function(model.inputs, model.output, backend=backend)(X)
    assert not np.allclose(train_out, np.tanh(X @ W1 + b1) @ W2 + b2)  # dropout is on there


def test_dropout_masks_follow_the_model_seed():
    X = np.ones((2, 200))

    def masks(seed):
        model, _ = _dropout_model(0.5, 200, seed=seed)
        f = sg.function(model.inputs, model.output, backend="numpy")
        return [f(X) for _ in range(3)]

    first, again, other = masks(3), masks(3), masks(4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first, other):
        assert not np.array_equal(a, b)


def test_dropout_backward_uses_the_forward_mask(backend, rng):
    rate = 0.4
    model, _ = _dropout_model(rate, 30)
    x = model.inputs[0]
    c = rng.normal(size=(3, 30))
    out = model.output
    g = sg.grad(sg.sum(out * c), x)
    X = rng.uniform(0.5, 1.5, size=(3, 30))
    for _ in range(2):  # a new mask on the second call, still shared by both passes
        value, grad = sg.function([x], [out, g], backend=backend)(X)
        mask = value / X  # 0 or 1 / (1 - rate), read off the forward output
        assert set(np.round(np.unique(mask), 12)) == {0.0, round(1 / (1 - rate), 12)}
        np.testing.assert_allclose(grad, (value != 0) * c / (1 - rate), rtol=1e-14)


def test_dropout_rejects_integer_input():
    with pytest.raises(TypeError, match="drop_int.*float input"):
        L.Dropout(0.5, name="drop_int")(fe.Input((3,), dtype="int64"))


def test_a_dropout_layer_called_twice_draws_two_different_masks():
    # both calls share the counter; they used to share the seed too, so every call on a
    # tensor of one shape got the identical mask
    x = fe.Input((200,), "float64")
    layer = L.Dropout(0.5)
    model = fe.Model(x, L.Concatenate()([layer(x), layer(x)]), seed=0)
    out = sg.function(model.inputs, model.output, backend="numpy")(np.ones((2, 200)))
    first, second = out[:, :200] != 0, out[:, 200:] != 0
    assert not np.array_equal(first, second)
    assert abs(np.mean(first == second) - 0.5) < 5 * np.sqrt(0.25 / first.size)  # independent
    np.testing.assert_array_equal(model.predict(np.ones((2, 200))), np.ones((2, 400)))


def test_a_batchnorm_layer_called_twice_in_training_mode_is_an_error():
    # the second call's running-statistics update used to replace the first's silently
    x = fe.Input((3,), "float64")
    layer = L.BatchNorm(name="bn_shared")
    layer(x)
    layer(x, training=False)  # inference calls add no update: fine
    with pytest.raises(ValueError, match="bn_shared.*once in training mode"):
        layer(x * 2.0)


def test_fit_warns_when_a_batch_norm_over_features_gets_a_batch_of_one():
    """n % batch_size == 1: the last step normalises a single example (every unit becomes
    beta, running_var shrinks), which torch refuses; images keep H*W values per channel."""
    import warnings

    rng = np.random.default_rng(0)

    def fit(layers, shape, n, batch_size):
        model = fe.Sequential(layers, input_shape=shape, seed=0)
        model.compile(optimizer="sgd")
        x, y = rng.normal(size=(n, *shape)).astype("float32"), rng.integers(0, 2, n)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            model.fit(x, y, batch_size=batch_size, progress=False, verbose=False)
        return [str(w.message) for w in seen if issubclass(w.category, UserWarning)]

    dense = lambda: [fe.layers.Dense(4), fe.layers.BatchNorm(name="bn"), fe.layers.Dense(2)]  # noqa: E731
    got = fit(dense(), (3,), 9, 4)
    assert len(got) == 1 and "the last minibatch holds 1 example" in got[0] and "'bn'" in got[0]
    assert "every minibatch" in fit(dense(), (3,), 5, 1)[0]
    assert fit(dense(), (3,), 8, 4) == []
    conv = [fe.layers.Conv2D(2, 3, padding="same"), fe.layers.BatchNorm(),
            fe.layers.GlobalAvgPool2D(), fe.layers.Dense(2)]
    assert fit(conv, (1, 4, 4), 9, 4) == []
