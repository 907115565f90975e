"""``frontends.layers``: each layer's gradient w.r.t. its input and its parameters against
finite differences, its forward value against numpy (and torch where torch has the layer),
layer and weight naming, name scopes on forward and gradient nodes, and the errors bad
arguments and shapes raise. Batch norm and dropout have their own file."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import frontends as fe
import symgraph as sg
from frontends import layers as L
from frontends.layers.activations import ACTIVATIONS
from symgraph.graph import toposort


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def check_layer_grad(layer, *values, rng, weights=None):
    """``sg.check_grad`` of ``sum(c * layer(x))`` w.r.t. every float input and every trainable
    weight of ``layer``. ``c`` is a fixed random array, so every output entry matters (a plain
    sum of a softmax would have a zero gradient). Integer inputs enter as constants; the
    weights are first set from ``weights`` (by parameter name), then substituted by
    check_grad's float64 arguments with ``clone_replace``."""
    inputs = [sg.tensor(f"in{i}", v.shape, v.dtype.name) if v.dtype.kind == "f"
              else sg.constant(v) for i, v in enumerate(values)]
    out = layer(inputs) if isinstance(layer, L.Add) else layer(inputs[0])
    params = layer.trainable_weights
    for p in params:
        short = p.name.split("/")[-1]
        if weights and short in weights:
            p.set_value(np.asarray(weights[short], p.dtype))
    c = rng.normal(size=tuple(out.shape))
    floats = [(var, v) for var, v in zip(inputs, values) if v.dtype.kind == "f"]

    def fn(*args):
        replace = dict(zip([var for var, _ in floats], args))
        replace.update(zip(params, args[len(floats):]))
        [o] = sg.clone_replace([out], replace)
        return sg.sum(o * c)

    args = [v for _, v in floats] + [p.get_value() for p in params]
    assert args, "nothing to check"
    return sg.check_grad(fn, args)


def away_from(values, kinks, margin=0.05):
    return all(np.min(np.abs(np.asarray(values) - k)) > margin for k in kinks)


def draw_until(rng, draw, accept, tries=200):
    for _ in range(tries):
        sample = draw(rng)
        if accept(*sample):
            return sample
    raise AssertionError("no sample away from the kinks")  # pragma: no cover


# --------------------------------------------------------------------------- gradients

KINKS = {"relu": [0.0], "leaky_relu": [0.0], "abs": [0.0], "hard_tanh": [-1.0, 1.0]}


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_dense_gradient_wrt_input_weights_and_bias(activation, rng):
    kinks = KINKS.get(activation, [])
    x, W, b = draw_until(
        rng, lambda r: (r.normal(size=(3, 4)), r.normal(size=(4, 3)), r.normal(size=3)),
        lambda x, W, b: away_from(x @ W + b, kinks))
    check_layer_grad(L.Dense(3, activation=activation), x, rng=rng, weights={"W": W, "b": b})


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 2, 3, 4)])
def test_dense_on_more_dims_gradient(shape, rng):
    check_layer_grad(L.Dense(3, activation="tanh"), rng.normal(size=shape), rng=rng,
                     weights={"b": rng.normal(size=3)})


def test_dense_without_bias_gradient(rng):
    layer = L.Dense(2, activation="tanh", use_bias=False)
    check_layer_grad(layer, rng.normal(size=(3, 4)), rng=rng)
    assert layer.b is None and [w.name.split("/")[1] for w in layer.weights] == ["W"]


def test_prelu_gradient_wrt_input_and_slope(rng):
    x = draw_until(rng, lambda r: (r.normal(size=(4, 3)),), lambda x: away_from(x, [0.0]))[0]
    layer = L.PReLU()
    check_layer_grad(layer, x, rng=rng, weights={"alpha": rng.uniform(0.1, 0.5, 3)})
    assert [w.name.split("/")[1] for w in layer.trainable_weights] == ["alpha"]


def test_elu_gradient(rng):
    x = draw_until(rng, lambda r: (r.normal(size=(4, 3)),), lambda x: away_from(x, [0.0]))[0]
    check_layer_grad(L.ELU(alpha=0.7), x, rng=rng)


@pytest.mark.parametrize("make", [lambda: L.LeakyReLU(0.2), L.ReLU, L.Tanh, L.Sigmoid,
                                  L.Softplus, L.HardTanh, L.Abs, L.Cos,
                                  lambda: L.Softmax(axis=0), lambda: L.Activation("elu")],
                         ids=["leaky_relu", "relu", "tanh", "sigmoid", "softplus", "hard_tanh",
                              "abs", "cos", "softmax0", "activation_elu"])
def test_activation_layer_gradients(make, rng):
    x = draw_until(rng, lambda r: (r.normal(size=(3, 4)),),
                   lambda x: away_from(x, [-1.0, 0.0, 1.0]))[0]
    check_layer_grad(make(), x, rng=rng)


def test_maxout_gradient_wrt_input_and_pieces(rng):
    units, pieces = 2, 3

    def clear_winner(x, W, b):
        z = np.sort((x @ W + b).reshape(len(x), units, pieces), axis=2)
        return np.min(z[..., -1] - z[..., -2]) > 0.05  # no ties: max is differentiable

    x, W, b = draw_until(rng, lambda r: (r.normal(size=(3, 4)), r.normal(size=(4, 6)),
                                         r.normal(size=6)), clear_winner)
    check_layer_grad(L.Maxout(units, pieces), x, rng=rng, weights={"W": W, "b": b})


def test_rbf_gradient_wrt_input_centres_and_widths(rng):
    x = rng.normal(size=(3, 4))
    centres = x[[0, 1]] + 0.5 * rng.normal(size=(2, 4))  # near the data: outputs not ~0
    check_layer_grad(L.RBF(2), x, rng=rng,
                     weights={"centers": centres, "s": np.array([1.5, 2.5])})


def test_embedding_table_gradient_with_repeated_ids(rng):
    ids = np.array([[0, 2, 2], [3, 0, 2]])
    layer = L.Embedding(5, 2, dtype="float64")
    check_layer_grad(layer, ids, rng=rng)
    # and the value: each used row gathers the output weights of all its occurrences
    x = sg.constant(ids)
    out = layer(x)
    c = rng.normal(size=(2, 3, 2))
    g = sg.function([], sg.grad(sg.sum(out * c), layer.table), backend="numpy")()
    expected = np.zeros((5, 2))
    np.add.at(expected, ids, c)
    np.testing.assert_allclose(g, expected, rtol=1e-12)
    assert not g[[1, 4]].any()


def test_flatten_and_reshape_gradients(rng):
    check_layer_grad(L.Flatten(), rng.normal(size=(2, 3, 2)), rng=rng)
    check_layer_grad(L.Reshape([-1, 2]), rng.normal(size=(2, 6)), rng=rng)
    check_layer_grad(L.Reshape([3, 2]), rng.normal(size=(2, 2, 3)), rng=rng)


def test_add_and_concatenate_gradients_wrt_every_input(rng):
    a, b, c = (rng.normal(size=(2, 3)) for _ in range(3))
    check_layer_grad(L.Add(), a, b, c, rng=rng)
    check_layer_grad(L.Concatenate(), a, rng.normal(size=(2, 2)), rng=rng)
    check_layer_grad(L.Concatenate(axis=0), a, b, rng=rng)


# --------------------------------------------------------------------------- forward values


def _softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


NUMPY_ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(z)),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "softplus": lambda z: np.log1p(np.exp(z)),
    "hard_tanh": lambda z: np.clip(z, -1.0, 1.0),
    "abs": np.abs,
    "cos": np.cos,
    "softmax": _softmax,
    "gelu": lambda z: 0.5 * z * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0))),
    "silu": lambda z: z / (1.0 + np.exp(-z)),
    "swish": lambda z: z / (1.0 + np.exp(-z)),
}


def test_dense_with_every_activation_matches_numpy(backend, rng):
    assert set(NUMPY_ACTIVATIONS) == set(ACTIVATIONS)
    names = sorted(ACTIVATIONS)
    x = fe.Input((4,), "float64")
    layers = [L.Dense(3, activation=a, bias_init=0.1) for a in names]
    outs = [layer(x) for layer in layers]
    for layer in layers:
        layer.b.set_value(rng.normal(size=3))
        layer.W.set_value(2 * layer.W.get_value())
    X = rng.normal(size=(5, 4)) * 2
    values = sg.function([x], outs, backend=backend)(X)
    for name, layer, value in zip(names, layers, values):
        z = X @ layer.W.get_value() + layer.b.get_value()
        np.testing.assert_allclose(value, NUMPY_ACTIVATIONS[name](z), rtol=1e-12, atol=1e-14,
                                   err_msg=name)


def test_dense_float32_matches_numpy(backend, rng):
    model = fe.Sequential([L.Dense(3, activation="tanh", bias_init=0.1)], input_shape=(4,),
                          seed=3)
    W, b = model.get_weights()
    assert W.dtype == b.dtype == np.float32 and np.all(b == np.float32(0.1))
    X = rng.normal(size=(6, 4)).astype(np.float32)
    out = sg.function(model.inputs, model.output, backend=backend)(X)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.tanh(X.astype(np.float64) @ W + b), rtol=1e-5,
                               atol=1e-6)


def test_dense_on_a_sequence_is_torchs_linear_at_every_position(backend, rng):
    """Dense on (batch, time, features), for a symbolic batch, forward and one SGD step
    against torch's ``Linear`` (which applies to the last dim)."""
    model = fe.Sequential([L.Dense(3, activation="tanh", bias_init=0.1), L.Dense(2)],
                          input_shape=(5, 4), dtype="float64", seed=1)
    assert model.output.shape[1:] == (5, 2)
    X, Y = rng.normal(size=(7, 5, 4)), rng.normal(size=(7, 5, 2))
    ref = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(),
                              torch.nn.Linear(3, 2)).double()
    with torch.no_grad():
        for linear, (W, b) in zip(ref[::2], zip(*[iter(model.get_weights())] * 2)):
            linear.weight.copy_(torch.from_numpy(W.T))
            linear.bias.copy_(torch.from_numpy(b))
    model.compile(loss="mse", optimizer=fe.optimizers.SGD(lr=0.5), backend=backend)
    np.testing.assert_allclose(model.predict(X[:3]), ref(torch.from_numpy(X[:3])).detach(),
                               rtol=1e-12, atol=1e-14)
    loss = F.mse_loss(ref(torch.from_numpy(X)), torch.from_numpy(Y))
    loss.backward()
    assert model.fit(X, Y, batch_size=7, shuffle=False, progress=False,
                     verbose=False).history["loss"][0] == pytest.approx(loss.item(), rel=1e-12)
    with torch.no_grad():
        for p in ref.parameters():
            p -= 0.5 * p.grad
    expected = [p.detach().numpy() for p in ref.parameters()]
    expected = [expected[0].T, expected[1], expected[2].T, expected[3]]
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_activation_layers_match_torch(backend, rng):
    x = fe.Input((5,), "float64")
    layers = {"elu": L.ELU(alpha=0.7), "leaky": L.LeakyReLU(0.2), "softplus": L.Softplus(),
              "hard_tanh": L.HardTanh(), "relu": L.ReLU(), "sigmoid": L.Sigmoid(),
              "tanh": L.Tanh(), "abs": L.Abs(), "cos": L.Cos(), "softmax": L.Softmax(),
              "act_relu": L.Activation("relu"), "gelu": L.GELU(), "silu": L.SiLU(),
              "act_swish": L.Activation("swish")}
    f = sg.function([x], [layer(x) for layer in layers.values()], backend=backend)
    X = rng.normal(size=(4, 5)) * 2
    got = dict(zip(layers, f(X)))
    t = torch.from_numpy(X)
    expected = {"elu": F.elu(t, alpha=0.7), "leaky": F.leaky_relu(t, 0.2),
                "softplus": F.softplus(t), "hard_tanh": F.hardtanh(t), "relu": F.relu(t),
                "sigmoid": torch.sigmoid(t), "tanh": torch.tanh(t), "abs": t.abs(),
                "cos": t.cos(), "softmax": F.softmax(t, dim=-1), "act_relu": F.relu(t),
                "gelu": F.gelu(t), "silu": F.silu(t), "act_swish": F.silu(t)}
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value.numpy(), rtol=1e-12, atol=1e-14,
                                   err_msg=name)
    np.testing.assert_allclose(got["elu"], np.where(X > 0, X, 0.7 * np.expm1(X)), rtol=1e-12)


def test_softmax_layer_over_a_middle_axis_matches_torch(backend, rng):
    x = fe.Input((3, 4), "float64")
    X = rng.normal(size=(2, 3, 4)) * 3
    out = sg.function([x], L.Softmax(axis=1)(x), backend=backend)(X)
    np.testing.assert_allclose(out, F.softmax(torch.from_numpy(X), dim=1).numpy(), rtol=1e-12)
    np.testing.assert_allclose(out, _softmax(X, axis=1), rtol=1e-12)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-12)


def test_prelu_matches_numpy_and_torch(backend, rng):
    x = fe.Input((3,), "float64")
    layer = L.PReLU(alpha_init=0.3)
    out = layer(x)
    assert np.all(layer.alpha.get_value() == 0.3)
    alpha = np.array([0.1, -0.4, 0.7])
    layer.alpha.set_value(alpha)
    X = rng.normal(size=(5, 3))
    value = sg.function([x], out, backend=backend)(X)
    np.testing.assert_allclose(value, np.where(X > 0, X, alpha * X), rtol=1e-13)
    expected = F.prelu(torch.from_numpy(X), torch.from_numpy(alpha)).numpy()
    np.testing.assert_allclose(value, expected, rtol=1e-13)


def test_maxout_is_the_max_over_each_units_pieces(backend, rng):
    units, pieces = 3, 4
    x = fe.Input((5,), "float64")
    layer = L.Maxout(units, pieces)
    out = layer(x)
    assert layer.W.get_value().shape == (5, units * pieces) and out.shape[1] == units
    layer.b.set_value(rng.normal(size=units * pieces))
    X = rng.normal(size=(6, 5))
    value = sg.function([x], out, backend=backend)(X)
    z = X @ layer.W.get_value() + layer.b.get_value()
    # unit j's pieces are columns j*pieces .. j*pieces + pieces-1
    expected = np.stack([z[:, j * pieces:(j + 1) * pieces].max(axis=1) for j in range(units)],
                        axis=1)
    np.testing.assert_allclose(value, expected, rtol=1e-13)
    np.testing.assert_allclose(value, z.reshape(6, units, pieces).max(axis=2), rtol=1e-13)


def test_rbf_matches_numpy_and_torch_cdist(backend, rng):
    x = fe.Input((4,), "float64")
    layer = L.RBF(3)
    out = layer(x)
    # default width sqrt(n) (n = 4 inputs), centres U[-0.05, 0.05]
    np.testing.assert_array_equal(layer.s.get_value(), np.full(3, 2.0))
    assert np.abs(layer.centers.get_value()).max() <= 0.05
    X = rng.normal(size=(5, 4))
    centres, s = X[[0, 2, 4]] + 0.3 * rng.normal(size=(3, 4)), np.array([0.8, 1.5, 3.0])
    layer.centers.set_value(centres)
    layer.s.set_value(s)
    value = sg.function([x], out, backend=backend)(X)
    d2 = ((X[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1)
    np.testing.assert_allclose(value, np.exp(-d2 / s ** 2), rtol=1e-12, atol=1e-15)
    cd = torch.cdist(torch.from_numpy(X), torch.from_numpy(centres)).numpy()
    np.testing.assert_allclose(value, np.exp(-cd ** 2 / s ** 2), rtol=1e-9, atol=1e-15)
    assert value.min() > 1e-6  # not a comparison of zeros


def test_rbf_width_argument(rng):
    x = fe.Input((4,), "float64")
    layer = L.RBF(2, width=0.5)
    layer(x)
    np.testing.assert_array_equal(layer.s.get_value(), [0.5, 0.5])


def test_embedding_matches_numpy_and_torch(backend, rng):
    ids = fe.Input((3,), dtype="int64")
    layer = L.Embedding(6, 4)
    out = layer(ids)
    table = layer.table.get_value()
    assert table.dtype == np.float32 and out.shape[1:] == (3, 4)
    assert 0 < np.abs(table).max() <= 0.05  # Keras's U[-0.05, 0.05]
    id_values = np.array([[0, 5, 5], [2, 0, 1]])
    value = sg.function([ids], out, backend=backend)(id_values)
    np.testing.assert_array_equal(value, table[id_values])
    torch_value = F.embedding(torch.from_numpy(id_values), torch.from_numpy(table)).numpy()
    np.testing.assert_array_equal(value, torch_value)


def test_flatten_reshape_add_concatenate_values(backend, rng):
    x = fe.Input((2, 3, 4), "float64")
    flat = L.Flatten()(x)
    shaped = L.Reshape([-1, 6])(x)
    shaped2 = L.Reshape((3, 8))(x)
    a, b = fe.Input((3,), "float64", name="a"), fe.Input((3,), "float64", name="b")
    added = L.Add()([a, b, a])
    cat = L.Concatenate()([a, b])
    cat0 = L.Concatenate(axis=0)([a, b])
    assert flat.shape[0] == x.shape[0] and flat.shape[1:] == (24,)
    assert shaped.shape[0] == x.shape[0] and shaped.shape[1:] == (4, 6)
    assert cat.shape[1:] == (6,)
    X = rng.normal(size=(2, 2, 3, 4))
    A, B = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    f = sg.function([x, a, b], [flat, shaped, shaped2, added, cat, cat0], backend=backend)
    vflat, vshaped, vshaped2, vadded, vcat, vcat0 = f(X, A, B)
    np.testing.assert_array_equal(vflat, X.reshape(2, 24))
    np.testing.assert_array_equal(vshaped, X.reshape(2, 4, 6))
    np.testing.assert_array_equal(vshaped2, X.reshape(2, 3, 8))
    np.testing.assert_allclose(vadded, A + B + A, rtol=1e-15)
    np.testing.assert_array_equal(vcat, np.concatenate([A, B], axis=1))
    np.testing.assert_array_equal(vcat0, np.concatenate([A, B], axis=0))


def test_reshape_with_minus_one_on_a_fixed_batch(rng):
    # a fixed batch dim used to give reshape two -1s
    x = sg.tensor("x", (4, 6), "float64")
    out = L.Reshape([-1, 2])(x)
    assert out.shape == (4, 3, 2)
    X = rng.normal(size=(4, 6))
    np.testing.assert_array_equal(sg.function([x], out, backend="numpy")(X), X.reshape(4, 3, 2))


def test_reshape_checks_each_example_not_the_whole_batch():
    # (batch, 5, 6) -> (-1, 7) would "work" for a batch of 7; it is wrong for every example
    with pytest.raises(ValueError, match=r"reshape_bad.*cannot reshape.*\(batch, 7\)"):
        L.Reshape([7], name="reshape_bad")(fe.Input((5, 6)))
    with pytest.raises(ValueError, match="reshape_4d.*cannot reshape"):
        L.Reshape([-1, 4], name="reshape_4d")(fe.Input((5, 6)))
    with pytest.raises(ValueError, match="reshape_sym.*fixed"):
        L.Reshape([-1, 2], name="reshape_sym")(sg.tensor("z", ("batch", "n"), "float32"))


def test_layers_that_add_no_op_keep_the_previous_layer_in_the_model(backend, rng):
    # Flatten of a matrix and a linear Activation return their input unchanged; they used to
    # tag the Dense output as theirs, so Dense and its weights vanished from the model
    model = fe.Sequential([L.Dense(3), L.Flatten(), L.Activation("linear"), L.Reshape([3])],
                          input_shape=(4,), dtype="float64", seed=0)
    assert [layer.name for layer in model.layers] == ["dense_1", "flatten_1", "activation_1",
                                                      "reshape_1"]
    assert [w.name for w in model.weights] == ["dense_1/W", "dense_1/b"]
    assert model.output.owner.scope == "reshape_1"
    X = rng.normal(size=(2, 4))
    W, b = model.get_weights()
    np.testing.assert_allclose(sg.function(model.inputs, model.output, backend=backend)(X),
                               X @ W + b, rtol=1e-13)


# --------------------------------------------------------------------------- naming and scopes


def test_sequential_names_layers_per_model_and_weights_by_layer():
    def make():
        return fe.Sequential([L.Dense(3, activation="relu"), L.Dropout(0.1), L.Dense(2),
                              L.PReLU(), L.BatchNorm()], input_shape=(4,), seed=0)

    for model in (make(), make()):  # per model: the second starts from 1 again
        assert [layer.name for layer in model.layers] == [
            "dense_1", "dropout_1", "dense_2", "p_re_lu_1", "batch_norm_1"]
        assert [w.name for w in model.weights] == [
            "dense_1/W", "dense_1/b", "dense_2/W", "dense_2/b", "p_re_lu_1/alpha",
            "batch_norm_1/gamma", "batch_norm_1/beta", "batch_norm_1/running_mean",
            "batch_norm_1/running_var"]
        assert [w.name for w in model.trainable_weights] == [
            "dense_1/W", "dense_1/b", "dense_2/W", "dense_2/b", "p_re_lu_1/alpha",
            "batch_norm_1/gamma", "batch_norm_1/beta"]
        assert [w.name for w in model.regularizable_weights] == ["dense_1/W", "dense_2/W"]


def test_user_names_are_kept_and_automatic_names_avoid_them():
    model = fe.Sequential([L.Dense(3, name="dense_1"), L.Dense(3), L.Dense(2, name="out")],
                          input_shape=(4,))
    assert [layer.name for layer in model.layers] == ["dense_1", "dense_2", "out"]
    assert model.layers[2].W.name == "out/W"
    with pytest.raises(ValueError, match="name"):
        L.Dense(3, name="a/b")
    with pytest.raises(ValueError, match="name"):
        L.Dense(3, name="")


def _nodes_of_call(x, out):
    before = set(map(id, toposort([x])))
    return [n for n in toposort([out]) if id(n) not in before]


@pytest.mark.parametrize("make", [lambda: L.Dense(3, activation="softmax"), L.PReLU,
                                  lambda: L.Maxout(2, 2), lambda: L.RBF(2), L.BatchNorm,
                                  lambda: L.Dropout(0.3), lambda: L.Reshape([2, 2]),
                                  lambda: L.ELU(0.5)],
                         ids=["dense", "prelu", "maxout", "rbf", "batch_norm", "dropout",
                              "reshape", "elu"])
def test_every_node_of_a_layer_call_and_of_its_gradient_carries_the_layer_scope(make):
    x = fe.Input((4,), "float64")
    h = sg.tanh(x)  # a node of no layer: scope None
    layer = make()
    out = layer(h)
    nodes = _nodes_of_call(h, out)
    assert nodes and {n.scope for n in nodes} == {layer.name}
    assert h.owner.scope is None
    wrt = [h] + layer.trainable_weights
    grads = sg.grad(sg.sum(out * np.arange(1.0, 1.0 + np.prod(out.shape[1:]))
                           .reshape(out.shape[1:])), wrt)
    made_by_layer = [n for n in toposort(grads)
                     if n.grad_call is not None and n.grad_of is not None
                     and n.grad_of.scope == layer.name]
    assert made_by_layer, "the layer's ops contributed no gradient nodes"
    assert {n.scope for n in made_by_layer} == {layer.name}


def test_merge_layers_scope_their_nodes():
    a, b = fe.Input((3,), "float64", name="a"), fe.Input((3,), "float64", name="b")
    for layer in (L.Add(), L.Concatenate()):
        out = layer([a, b])
        assert out.owner.scope == layer.name and out.layer is layer


# --------------------------------------------------------------------------- errors


def test_dense_rejects_inputs_it_cannot_use():
    with pytest.raises(ValueError, match=r"dense_1d.*\(batch, \.\.\., features\)"):
        L.Dense(3, name="dense_1d")(sg.tensor("v", (6,), "float32"))
    with pytest.raises(ValueError, match="dense_sym.*fixed size"):
        L.Dense(3, name="dense_sym")(sg.tensor("z", ("batch", "n"), "float32"))
    with pytest.raises(TypeError, match="symgraph Variables"):
        L.Dense(3)(np.ones((2, 3)))


@pytest.mark.parametrize("make, match", [
    (lambda: L.Dense(0), "Dense: units"),
    (lambda: L.Dense(2.5), "Dense: units"),
    (lambda: L.Dense(True), "Dense: units"),
    (lambda: L.Dense(3, activation="mish"), "unknown activation 'mish'"),
    (lambda: L.Dropout(1.5), r"Dropout: rate must be in \[0, 1\)"),
    (lambda: L.Dropout(1.0), "Dropout: rate"),
    (lambda: L.Dropout(-0.1), "Dropout: rate"),
    (lambda: L.BatchNorm(momentum=1.0), "BatchNorm: momentum"),
    (lambda: L.BatchNorm(eps=0.0), "BatchNorm: eps"),
    (lambda: L.Maxout(2.5), "Maxout: units"),
    (lambda: L.Maxout(3, pieces=0), "Maxout: pieces"),
    (lambda: L.RBF(0), "RBF: units"),
    (lambda: L.RBF(3, width=-1.0), "RBF: width"),
    (lambda: L.Embedding(0, 3), "Embedding: n"),
    (lambda: L.Embedding(4, 2.5), "Embedding: dim"),
    (lambda: L.Embedding(4, 2, dtype="int32"), "Embedding: dtype"),
    (lambda: L.Reshape([-1, -1]), "Reshape: shape"),
    (lambda: L.Reshape([0, 3]), "Reshape: shape"),
    (lambda: L.Reshape([1.5]), "Reshape: shape"),
    (lambda: L.Activation("nope"), "unknown activation"),
])
def test_bad_constructor_arguments_raise_value_error_naming_the_layer(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_layers_needing_a_matrix_or_ids_say_so():
    with pytest.raises(ValueError, match=r"maxout_x.*Maxout takes \(batch, features\)"):
        L.Maxout(2, name="maxout_x")(fe.Input((3, 4)))
    with pytest.raises(ValueError, match=r"rbf_x.*RBF takes \(batch, features\)"):
        L.RBF(2, name="rbf_x")(fe.Input((3, 4)))
    with pytest.raises(TypeError, match="emb_x.*integer ids"):
        L.Embedding(4, 2, name="emb_x")(fe.Input((3,)))
    with pytest.raises(ValueError, match="two tensors"):
        L.Add()([fe.Input((3,))])


def test_embedding_out_of_range_id_raises_at_call_time(backend):
    ids = fe.Input((2,), dtype="int64")
    f = sg.function([ids], L.Embedding(3, 2)(ids), backend=backend)
    with pytest.raises(IndexError):
        f(np.array([[0, 3]]))


def test_layer_registry():
    assert L.get("Dense") is L.Dense and L.get("BatchNorm") is L.BatchNorm
    assert set(L.LAYERS) >= {"Dense", "Dropout", "PReLU", "Maxout", "RBF", "Embedding"}
    with pytest.raises(ValueError, match="unknown layer type 'Conv9D'"):
        L.get("Conv9D")


def test_a_layer_belongs_to_one_sequential_model():
    dense = L.Dense(2)
    fe.Sequential([dense], input_shape=(3,))
    with pytest.raises(ValueError, match="already belongs"):
        fe.Sequential([dense], input_shape=(3,))


@pytest.mark.parametrize("make, torch_fn", [
    (lambda: L.ELU(alpha=0.7), lambda t: F.elu(t, 0.7)),
    (lambda: L.Activation("elu"), F.elu),
    (lambda: L.PReLU(alpha_init=0.3), lambda t: F.prelu(t, torch.tensor([0.3] * 3,
                                                                      dtype=t.dtype))),
])
def test_elu_and_prelu_gradients_at_zero_are_one_sided_as_torch(make, torch_fn, backend):
    """At x = 0 the gradient is the left one (alpha; 1 for the smooth default ELU), as
    torch's and background.md's one-sided rule: a min(x, 0) had split it in half."""
    x = fe.Input((3,), "float64")
    f = sg.function([x], sg.grad(sg.sum(make()(x)), x), backend=backend)
    X = np.array([[-1.0, 0.0, 1.0]])
    t = torch.tensor(X, requires_grad=True)
    torch_fn(t).sum().backward()
    np.testing.assert_allclose(f(X), t.grad.numpy(), rtol=1e-12)


def test_prelu_on_images_learns_one_slope_per_channel():
    """After a convolution (NCHW) the slopes are per channel, as torch's
    PReLU(num_parameters=C): values and the slopes' gradient against torch."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 4, 5, 6))
    alpha = rng.uniform(0.1, 0.5, 4)
    w = rng.normal(size=x.shape)
    layer = L.PReLU()
    v = sg.tensor("x", (None, 4, 5, 6), "float64")
    out = layer(v, training=True)
    assert layer.alpha.get_value().shape == (4,)
    layer.alpha.set_value(alpha)
    g = sg.grad(sg.sum(out * w), layer.alpha)
    got, got_g = sg.function([v], [out, g])(x)
    t = torch.nn.PReLU(num_parameters=4).double()
    with torch.no_grad():
        t.weight.copy_(torch.tensor(alpha))
    want = t(torch.tensor(x))
    (want * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(got_g, t.weight.grad.numpy(), rtol=1e-12)


def test_prelu_on_sequences_keeps_one_slope_per_feature():
    """(batch, steps, features), e.g. after an Embedding: a slope per feature, as before
    the per-channel rule for images (a saved model of that shape still loads)."""
    layer = L.PReLU(alpha_init=0.2)
    v = sg.tensor("x", (None, 5, 4), "float64")
    out = layer(v, training=True)
    assert layer.alpha.get_value().shape == (4,)
    x = np.random.default_rng(1).normal(size=(2, 5, 4))
    np.testing.assert_allclose(sg.function([v], out)(x), np.where(x > 0, x, 0.2 * x))


@pytest.mark.parametrize("make, message", [
    (lambda: fe.layers.BatchNorm(momentum="0.9"), "BatchNorm: momentum must be a number"),
    (lambda: fe.layers.BatchNorm(momentum=1.0), r"BatchNorm: momentum must be .* < 1.0"),
    (lambda: fe.layers.BatchNorm(eps=float("inf")), "BatchNorm: eps must be a finite number"),
    (lambda: fe.layers.BatchNorm(eps=0.0), r"BatchNorm: eps must be a finite number > 0"),
    (lambda: fe.layers.BatchNorm(axis=1.5), "BatchNorm: axis must be an integer, got 1.5"),
    (lambda: fe.layers.BatchNorm(axis=True), "BatchNorm: axis must be an integer, got True"),
    (lambda: fe.layers.Dense(3, use_bias="false"), "Dense: use_bias must be True or False"),
    (lambda: fe.layers.Conv2D(2, 3, use_bias=0), "Conv2D: use_bias must be True or False"),
    (lambda: fe.layers.Conv1D(2, 3, use_bias="no"), "Conv1D: use_bias must be True or False"),
    (lambda: fe.regularizers.L2(-0.1), r"L2: l must be a finite number >= 0"),
    (lambda: fe.regularizers.L1("0.1"), "L1: l must be a number"),
    (lambda: fe.layers.Dense(3, activation="Relu"),
     r"Dense: unknown activation 'Relu' \(did you mean 'relu'\?\)"),
    (lambda: fe.layers.SimpleRNN(3, activation="rleu"), r"SimpleRNN: unknown activation 'rleu'"),
    (lambda: fe.layers.LeakyReLU("x"), "LeakyReLU: alpha must be a number"),
    (lambda: fe.layers.ELU(float("nan")), "ELU: alpha must be a finite number"),
    (lambda: fe.layers.PReLU(alpha_init=float("nan")), "PReLU: alpha_init must be a finite"),
    (lambda: fe.layers.RBF(3, width=float("inf")), "RBF: width must be a finite number > 0"),
    (lambda: fe.layers.Softmax(axis="x"), "Softmax: axis must be an integer, got 'x'"),
    (lambda: fe.layers.Dropout("0.5"), r"Dropout: rate must be a number in \[0, 1\), got '0.5'"),
    (lambda: fe.layers.Dropout(None), r"Dropout: rate must be a number in \[0, 1\), got None"),
])
def test_arguments_a_config_could_get_wrong_are_refused(make, message):
    """Before, bare float()/int()/bool() took them: use_bias="false" kept the bias
    (bool("false") is True), eps=inf collapsed every BatchNorm output to beta, axis=1.5 was
    axis 1; L2's error named an argument "l2" the user never wrote."""
    with pytest.raises((TypeError, ValueError), match=message):
        make()


def test_hard_tanh_gradient_at_its_kinks_is_torchs(backend):
    """Built on clip, whose gradient is 1 on the closed interval, hard_tanh had gradient 1
    at exactly +-1; torch's hardtanh has 0 there (the KINKS above skip these points)."""
    points = np.array([-np.inf, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, np.inf, np.nan])
    x = sg.tensor("x", (10,), "float64")
    y = sg.nn.hard_tanh(x)
    value, grad = sg.function([x], [y, sg.grad(sg.sum(y), x)], backend=backend)(points)
    xt = torch.tensor(points, requires_grad=True)
    want = F.hardtanh(xt)
    want.sum().backward()
    np.testing.assert_array_equal(value, want.detach().numpy())
    np.testing.assert_array_equal(grad[:-1], xt.grad.numpy()[:-1])  # NaN's gradient: either


def test_rbf_gradient_near_a_centre_in_float32(backend):
    """||x - c||^2 computed as |x|^2 - 2 x.c + |c|^2 cancels near a centre and rounded to
    <= 0, where maximum(d2, 0) passed no (or half the) gradient: 0 against 1.1e-3."""
    c = np.full((1, 8), 3.0, np.float32)
    layer = L.RBF(1, width=1.0)
    x = sg.tensor("x", (1, 8), "float32")
    y = layer(x)
    layer.centers.set_value(c)
    f = sg.function([x], sg.grad(sg.sum(y), x), backend=backend)
    for offset in (1e-3, 1e-4, 1e-5):
        point = c.copy()
        point[0, 0] += offset
        d = point.astype(np.float64) - c
        want = -2.0 * d * np.exp(-(d * d).sum())
        np.testing.assert_allclose(f(point), want, rtol=0.02, atol=1e-9)


def test_rbf_of_an_input_whose_square_overflows_is_zero_not_nan(backend):
    layer = L.RBF(2, width=1.0)
    x = sg.tensor("x", (1, 3), "float32")
    y = layer(x)
    got = sg.function([x], y, backend=backend)(np.array([[3e19, 0, 0]], np.float32))
    np.testing.assert_array_equal(got, [[0.0, 0.0]])
