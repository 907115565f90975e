"""``Conv1D``, ``MaxPool1D``, ``AvgPool1D``, ``GlobalAvgPool1D``: values against torch's
1-d functions (float64), gradients against finite differences and torch, torch's weight
shapes, a float32 model trained through ``fit`` against torch, config and errors."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import frontends as fe
import symgraph as sg
from frontends import layers as L


@pytest.fixture
def rng():
    return np.random.default_rng(5)


def _run(layer, X, backend):
    x = sg.tensor("x", ("n", *X.shape[1:]), X.dtype.name)
    return sg.function([x], layer(x), backend=backend)(X)


CONVS = [
    dict(filters=4, kernel_size=3),
    dict(filters=4, kernel_size=3, padding="same", activation="relu"),
    dict(filters=6, kernel_size=4, stride=2, padding="same"),  # odd pad on the far side
    dict(filters=4, kernel_size=2, stride=3, padding=1, use_bias=False),
    dict(filters=4, kernel_size=3, dilation=2, padding="same", activation="tanh"),
    dict(filters=6, kernel_size=3, groups=3, padding=1),
]


@pytest.mark.parametrize("config", CONVS, ids=str)
def test_conv1d_matches_torch(config, backend, rng):
    X = rng.normal(size=(2, 3, 11))
    layer = L.Conv1D(**config)
    got = _run(layer, X, backend)
    W = torch.tensor(layer.W.get_value())
    assert W.shape == (config["filters"], 3 // config.get("groups", 1),
                       config["kernel_size"])  # torch.nn.Conv1d's weight shape
    b = None if layer.b is None else torch.tensor(layer.b.get_value())
    x = F.pad(torch.tensor(X), layer.pads(11))
    z = F.conv1d(x, W, b, stride=layer.stride, dilation=layer.dilation, groups=layer.groups)
    act = {"relu": torch.relu, "tanh": torch.tanh}.get(config.get("activation"), lambda t: t)
    expected = act(z).numpy()
    if config.get("padding") == "same":
        assert expected.shape[2] == -(-11 // layer.stride)  # Keras's ceil(L / stride)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make, torch_fn", [
    (lambda: L.MaxPool1D(2), lambda t: F.max_pool1d(t, 2)),
    (lambda: L.MaxPool1D(3, stride=2), lambda t: F.max_pool1d(t, 3, stride=2)),
    (lambda: L.AvgPool1D(3), lambda t: F.avg_pool1d(t, 3)),
    (lambda: L.AvgPool1D(2, stride=1), lambda t: F.avg_pool1d(t, 2, stride=1)),
    (lambda: L.GlobalAvgPool1D(), lambda t: t.mean(dim=2)),
    (lambda: L.GlobalAvgPool1D("channels_last"), lambda t: t.mean(dim=1)),
])
def test_pooling_values_and_gradients_match_torch(make, torch_fn, backend, rng):
    X = rng.normal(size=(2, 3, 10))
    C = None
    x = sg.tensor("x", X.shape)
    out = make()(x)
    C = rng.normal(size=tuple(out.shape))
    got, g = sg.function([x], [out, sg.grad(sg.sum(out * C), x)], backend=backend)(X)
    xt = torch.tensor(X, requires_grad=True)
    yt = torch_fn(xt)
    (gt,) = torch.autograd.grad((yt * torch.tensor(C)).sum(), xt)
    np.testing.assert_allclose(got, yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(g, gt.numpy(), rtol=1e-12, atol=1e-14)


def test_conv1d_gradients_match_finite_differences(rng):
    x = sg.tensor("x", (2, 4, 9))
    layer = L.Conv1D(3, 4, stride=2, padding="same", groups=1)
    out = layer(x)
    C = rng.normal(size=tuple(out.shape))

    def fn(xv, W, b):
        [o] = sg.clone_replace([out], {x: xv, layer.W: W, layer.b: b})
        return sg.sum(o * C)

    sg.check_grad(fn, [rng.normal(size=(2, 4, 9)), layer.W.get_value(),
                       rng.normal(size=3)])


def test_a_float32_sequence_model_trains_as_torch(rng):
    """Conv1D - MaxPool1D - GlobalAvgPool1D - Dense, two SGD steps through fit."""
    model = fe.Sequential([L.Conv1D(5, 3, padding="same", activation="relu"), L.MaxPool1D(2),
                           L.GlobalAvgPool1D(), L.Dense(3)], input_shape=(2, 12), seed=1)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(0.2))
    X = rng.normal(size=(8, 2, 12)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    params = [torch.tensor(w, requires_grad=True) for w in model.get_weights()]
    Wc, bc, Wd, bd = params
    opt = torch.optim.SGD(params, lr=0.2)
    for start in (0, 4):
        opt.zero_grad()
        h = torch.relu(F.conv1d(torch.tensor(X[start:start + 4]), Wc, bc, padding=1))
        z = F.max_pool1d(h, 2).mean(dim=2) @ Wd + bd
        F.cross_entropy(z, torch.tensor(y[start:start + 4])).backward()
        opt.step()
    model.fit(X, y, batch_size=4, epochs=1, shuffle=False, progress=False, verbose=False)
    for mine, theirs in zip(model.get_weights(), params):
        assert mine.dtype == np.float32
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_config_round_trip_and_errors():
    layer = L.Conv1D(8, 5, stride=2, padding="same", activation="relu", name="c")
    config = layer.get_config()
    rebuilt = L.get("Conv1D")(**{k: v for k, v in config.items() if k != "type"})
    assert rebuilt.get_config() == config
    assert L.MaxPool1D(3, stride=1).get_config() == {"type": "MaxPool1D", "pool_size": 3,
                                                     "stride": 1, "name": None}
    with pytest.raises(ValueError, match="Conv1D: padding must be 'valid', 'same' or an int"):
        L.Conv1D(4, 3, padding="full")
    with pytest.raises(ValueError, match=r"Conv1D: filters \(5\) must be divisible by groups"):
        L.Conv1D(5, 3, groups=2)
    with pytest.raises(ValueError, match=r"takes \(batch, channels, length\)"):
        L.Conv1D(4, 3)(fe.Input((3, 4, 5)))
    with pytest.raises(ValueError, match=r"takes \(batch, channels, length\)"):
        L.MaxPool1D(2)(fe.Input((6,)))
    with pytest.raises(ValueError, match=r"pool_size 5 is bigger than the sequence length 4"):
        L.AvgPool1D(5)(fe.Input((3, 4)))


def test_a_kernel_bigger_than_the_input_names_the_layer_as_conv2d_does():
    """sg.nn.conv1d re-raises its argument errors through ``argument_error``, which dropped
    the layer's name that Op.make_node adds (Conv2D's error had it)."""
    with pytest.raises(sg.ShapeError, match=r"^conv1d in conv1d_1: kernel 5 .* bigger than "
                                            r"the padded input 4"):
        fe.Sequential([fe.layers.Conv1D(2, 5)], input_shape=(1, 4))


def test_embedding_into_sequence_layers_warns_and_permute_fixes_it(tmp_path):
    """An Embedding's (batch, length, dim) straight into a 1-d layer (NCL, as torch) would
    run along the vector components (a Keras user's layout): a warning naming
    Permute((2, 1)); with it, GlobalAvgPool1D is the mean over the tokens."""
    with pytest.warns(UserWarning, match=r"GlobalAvgPool1D takes \(batch, channels, length\).*"
                                         r"Embedding.*Permute\(\(2, 1\)\)"):
        fe.Sequential([L.Embedding(30, 4), L.GlobalAvgPool1D()], input_shape=(6,),
                      dtype="int64")
    with pytest.warns(UserWarning, match="Conv1D takes"):
        fe.Sequential([L.Embedding(30, 4), L.Conv1D(3, 2)], input_shape=(6,), dtype="int64")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = fe.Sequential([L.Embedding(30, 4), L.Permute((2, 1)), L.GlobalAvgPool1D()],
                              input_shape=(6,), dtype="int64", seed=0)
    ids = np.random.default_rng(0).integers(0, 30, (5, 6))
    table = model.layers[0].table.get_value()
    np.testing.assert_allclose(model.predict(ids), table[ids].mean(axis=1), rtol=1e-6)
    model.compile(loss="mse", optimizer="sgd")
    model.save(tmp_path / "m.npz")  # the layer's config round-trips
    np.testing.assert_allclose(fe.load_model(tmp_path / "m.npz").predict(ids),
                               model.predict(ids), rtol=0)
    # or Keras's layout: the mean over the tokens of (batch, length, dim), no Permute
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        last = fe.Sequential([L.Embedding(30, 4), L.GlobalAvgPool1D("channels_last")],
                             input_shape=(6,), dtype="int64", seed=0)
    last.set_weights(model.get_weights())
    np.testing.assert_allclose(last.predict(ids), table[ids].mean(axis=1), rtol=1e-6)
    last.compile(loss="mse", optimizer="sgd")
    last.save(tmp_path / "last.npz")
    assert fe.load_model(tmp_path / "last.npz").layers[1].data_format == "channels_last"
    with pytest.raises(ValueError, match="data_format must be 'channels_first'"):
        L.GlobalAvgPool1D("NLC")


@pytest.mark.parametrize("dims, shape, message", [
    ((1, 1), (6,), "must order the axes 1..2"),
    ((0, 1), (6,), "must order the axes 1..2"),
    ("ab", (6,), "dims must be a sequence of integers"),
    ((2, 1), (6,), r"Permute\(2, 1\) takes inputs of 3 dims"),
])
def test_permute_refuses_what_is_not_a_permutation_of_the_axes(dims, shape, message):
    with pytest.raises(ValueError, match=message):
        fe.Sequential([L.Permute(dims)], input_shape=shape)


def test_permute_orders_axes_as_keras():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    model = fe.Sequential([L.Permute((3, 1, 2))], input_shape=(3, 4, 5))
    np.testing.assert_array_equal(model.predict(x), np.transpose(x, (0, 3, 1, 2)))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_pool_with_mask_value_averages_the_real_positions(data_format, backend):
    """Padded texts (ids 0 after each text's end) through Embedding(padding_idx=0): the mean
    over each text's own tokens, as numpy computes it, whatever the padding's length (the
    plain mean shrank with it); a text of padding only gives zeros; finite differences for
    the gradient through the masked mean."""
    rng = np.random.default_rng(3)
    ids = rng.integers(1, 30, (5, 7))
    lengths = np.array([7, 3, 1, 0, 5])
    ids[np.arange(7) >= lengths[:, None]] = 0
    layers = [L.Embedding(30, 4, padding_idx=0)]
    if data_format == "channels_first":
        layers.append(L.Permute((2, 1)))
    model = fe.Sequential(layers + [L.GlobalAvgPool1D(data_format, mask_value=0)],
                          input_shape=(7,), dtype="int64", seed=0)
    table = model.layers[0].table.get_value().astype(np.float64)
    want = np.array([table[row[:n]].mean(axis=0) if n else np.zeros(4)
                     for row, n in zip(ids, lengths)])
    got = sg.function(model.inputs, model.output, backend=backend)(ids)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    pool = L.GlobalAvgPool1D("channels_last", mask_value=0.0)
    X = rng.normal(size=(3, 5, 2))
    X[0, 3:] = 0.0  # two padded positions
    C = rng.normal(size=(3, 2))
    x = sg.tensor("x", X.shape)
    out = pool(x)
    keep = (X != 0).any(axis=2, keepdims=True)  # the padding stays padding when perturbed
    sg.check_grad(lambda v: sg.sum(sg.clone_replace([out], {x: v * keep})[0] * C), [X])
