"""``Conv2D``, ``MaxPool2D``, ``AvgPool2D``, ``GlobalAvgPool2D`` (and ``Reshape``/``Flatten``
around them): values against torch (float64), gradients against finite differences, weight
shapes and initial scales, names, errors, spec files and the model file round trip."""

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import frontends as fe
import symgraph as sg
from frontends import layers as L
from frontends.layers.conv import same_padding


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def _run(layer, X, backend):
    x = sg.tensor("x", ("n", *X.shape[1:]), X.dtype.name)
    return sg.function([x], layer(x), backend=backend)(X)


def _torch_conv(layer, X, pads):
    W = torch.tensor(layer.W.get_value(), dtype=torch.float64)
    b = None if layer.b is None else torch.tensor(layer.b.get_value(), dtype=torch.float64)
    x = F.pad(torch.tensor(X, dtype=torch.float64), (*pads[1], *pads[0]))
    return F.conv2d(x, W, b, stride=layer._stride, dilation=layer._dilation,
                    groups=layer.groups)


CONVS = [
    dict(filters=4, kernel_size=3),
    dict(filters=4, kernel_size=3, padding="same", activation="relu"),
    dict(filters=6, kernel_size=(3, 2), stride=2, padding="same"),    # odd pad at the far side
    dict(filters=4, kernel_size=(2, 3), stride=(2, 1), padding=(1, 0), use_bias=False),
    dict(filters=4, kernel_size=3, dilation=2, padding="same", activation="tanh"),
    dict(filters=6, kernel_size=3, groups=3, padding=1),
]


@pytest.mark.parametrize("config", CONVS, ids=str)
def test_conv2d_matches_torch(config, backend, rng):
    X = rng.normal(size=(2, 3, 7, 6))
    layer = L.Conv2D(**config)
    got = _run(layer, X, backend)
    pads = layer.pads(7, 6)
    z = _torch_conv(layer, X, pads)
    act = {"relu": torch.relu, "tanh": torch.tanh}.get(config.get("activation"), lambda t: t)
    expected = act(z).numpy()
    assert got.shape == expected.shape == (2, config["filters"], *layer.output_shape[2:])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_same_padding_is_keras_output_size():
    # ceil(n / stride) outputs; stride 1 keeps the size
    for n, k, s, d in [(8, 3, 1, 1), (7, 3, 2, 1), (8, 3, 2, 1), (6, 2, 3, 1), (9, 3, 1, 2)]:
        lo, hi = same_padding(n, k, s, d)
        assert hi - lo in (0, 1)
        assert (n + lo + hi - d * (k - 1) - 1) // s + 1 == -(-n // s)


def test_conv2d_gradient_wrt_input_weights_and_bias(rng):
    layer = L.Conv2D(3, (3, 2), stride=(2, 1), padding="same", activation="tanh")
    X = rng.normal(size=(2, 2, 5, 4))
    x = sg.tensor("x", X.shape)
    out = layer(x)
    c = rng.normal(size=out.shape)
    params = layer.trainable_weights

    def fn(*args):
        [o] = sg.clone_replace([out], dict(zip([x, *params], args)))
        return sg.sum(o * c)

    assert sg.check_grad(fn, [X] + [p.get_value().astype("float64") for p in params])


@pytest.mark.parametrize("layer, torch_fn", [
    (lambda: L.MaxPool2D(2), lambda t: F.max_pool2d(t, 2)),
    (lambda: L.MaxPool2D((3, 2), stride=(2, 1)), lambda t: F.max_pool2d(t, (3, 2), (2, 1))),
    (lambda: L.AvgPool2D(2), lambda t: F.avg_pool2d(t, 2)),
    (lambda: L.AvgPool2D(3, stride=1), lambda t: F.avg_pool2d(t, 3, 1)),
    (lambda: L.GlobalAvgPool2D(), lambda t: t.mean(dim=(2, 3))),
], ids=["max2", "max3x2", "avg2", "avg3s1", "global"])
def test_pooling_matches_torch_values_and_gradients(layer, torch_fn, backend, rng):
    X = rng.normal(size=(2, 3, 7, 6))
    made = layer()
    x = sg.tensor("x", ("n", 3, 7, 6))
    out = made(x)
    c = rng.normal(size=(2, *out.shape[1:]))
    got, g = sg.function([x], [out, sg.grad(sg.sum(out * c), x)], backend=backend)(X)
    xt = torch.tensor(X, requires_grad=True)
    yt = torch_fn(xt)
    (gt,) = torch.autograd.grad((yt * torch.tensor(c)).sum(), xt)
    np.testing.assert_allclose(got, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g, gt.numpy(), rtol=1e-12, atol=1e-14)
    assert made.count_params() == 0


@pytest.mark.parametrize("init, groups", [("glorot_uniform", 1), ("glorot_uniform", 4),
                                         ("glorot_uniform", 8), ("he_normal", 2)])
def test_weights_shapes_fans_and_scale(init, groups):
    # Keras's and torch's fans for a convolution: the receptive field times the input
    # channels of a group (fan_in) or every filter (fan_out, whatever the groups)
    model = fe.Sequential([L.Conv2D(64, (5, 3), init=init, groups=groups, name="c")],
                          input_shape=(8, 9, 9), seed=0)
    layer = model.layers[0]
    W, b = layer.W.get_value(), layer.b.get_value()
    assert W.shape == (64, 8 // groups, 5, 3) and b.shape == (64,)
    assert W.dtype == np.float32 and layer.W.name == "c/W" and not b.any()
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(W.shape))
    if init == "glorot_uniform":
        bound = np.sqrt(6 / (fan_in + fan_out))
        assert np.abs(W).max() <= bound and np.abs(W).max() > 0.95 * bound
    else:  # He: std sqrt(2 / fan_in) (the truncated draw is rescaled to it, as Keras)
        assert abs(W.std() / np.sqrt(2 / fan_in) - 1) < 0.05
    assert layer.regularizable_weights == [layer.W]


def test_default_names_read_as_keras():
    model = fe.Sequential([L.Conv2D(2, 3), L.MaxPool2D(), L.Conv2D(2, 1), L.AvgPool2D(1),
                           L.GlobalAvgPool2D()], input_shape=(1, 6, 6), seed=0)
    assert [layer.name for layer in model.layers] == [
        "conv2d_1", "max_pool2d_1", "conv2d_2", "avg_pool2d_1", "global_avg_pool2d_1"]


def test_a_convnet_on_flat_images_and_flatten_in_torch_order(backend, rng):
    # (n, 64) -> Reshape (1, 8, 8) -> conv -> Flatten: torch's C, H, W order
    model = fe.Sequential([L.Reshape((1, 8, 8)), L.Conv2D(3, 3, padding="same"), L.Flatten()],
                          input_shape=(64,), dtype="float64", seed=0)
    X = rng.normal(size=(4, 64))
    got = sg.function(model.inputs, model.output, backend=backend)(X)
    conv = model.layers[1]
    expected = _torch_conv(conv, X.reshape(4, 1, 8, 8), conv.pads(8, 8)).reshape(4, -1)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-12, atol=1e-12)
    assert model.layers[-1].output_shape == ("batch", 3 * 64) or got.shape == (4, 192)


@pytest.mark.parametrize("make, words", [
    (lambda: L.Conv2D(4, 3), "takes (batch, channels, height, width)"),
    (lambda: L.MaxPool2D(2), "Reshape((channels, height, width)) first"),
    (lambda: L.GlobalAvgPool2D(), "GlobalAvgPool2D takes"),
])
def test_flat_input_is_an_error_naming_the_layer(make, words):
    with pytest.raises(ValueError, match=r"layer \w+: .*" if "(" not in words else None) as info:
        make()(sg.tensor("x", ("n", 64)))
    assert words in str(info.value)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(filters=0, kernel_size=3), ValueError, "filters must be an integer >= 1"),
    (dict(filters=4, kernel_size=(3, 3, 3)), ValueError, "kernel_size must be an int or a pair"),
    (dict(filters=4, kernel_size=3, padding="full"), ValueError, "padding must be 'valid'"),
    (dict(filters=4, kernel_size=3, groups=3), ValueError, "divisible by groups"),
    (dict(filters=4, kernel_size=3, stride=0), ValueError, "stride must be an integer >= 1"),
    (dict(filters=4, kernel_size=3, activation="nope"), ValueError, "unknown activation"),
])
def test_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        L.Conv2D(**kwargs)


def test_channels_not_divisible_by_groups():
    with pytest.raises(ValueError, match="3 input channels are not divisible by groups=2"):
        L.Conv2D(4, 3, groups=2)(sg.tensor("x", ("n", 3, 5, 5)))


def _convnet(seed=0):
    return fe.Sequential([
        L.Reshape((1, 8, 8)),
        L.Conv2D(4, 3, padding="same", activation="relu", init="he_normal"),
        L.Conv2D(6, (3, 2), stride=2, padding="same"),
        L.MaxPool2D(2, stride=1), L.AvgPool2D((1, 2)), L.GlobalAvgPool2D(), L.Dropout(0.2),
        L.Dense(3)], input_shape=(64,), seed=seed)


def test_model_file_round_trip(tmp_path, rng):
    X = rng.normal(size=(24, 64)).astype("float32")
    y = rng.integers(0, 3, 24)
    model = _convnet()
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(lr=0.01), backend="numpy")
    model.fit(X, y, batch_size=8, epochs=1, progress=False, verbose=False)
    model.save(tmp_path / "cnn.npz")
    loaded = fe.load_model(tmp_path / "cnn.npz", compile=False)
    assert [layer.get_config() for layer in loaded.layers] == \
        [layer.get_config() for layer in model.layers]
    assert loaded.layers[2].get_config()["kernel_size"] == [3, 2]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    loaded.compile(loss="cross_entropy", backend="numpy")
    np.testing.assert_array_equal(model.predict(X), loaded.predict(X))


def test_spec_file_builds_the_same_layers(tmp_path):
    spec = tmp_path / "cnn.yaml"
    spec.write_text("""
model:
  input_shape: [64]
  seed: 0
  layers:
    - {type: Reshape, shape: [1, 8, 8]}
    - {type: Conv2D, filters: 4, kernel_size: 3, padding: same, activation: relu,
       init: he_normal}
    - {type: Conv2D, filters: 6, kernel_size: [3, 2], stride: 2, padding: same}
    - {type: MaxPool2D, pool_size: 2, stride: 1}
    - {type: AvgPool2D, pool_size: [1, 2]}
    - {type: GlobalAvgPool2D}
    - {type: Dropout, rate: 0.2}
    - {type: Dense, units: 3}
""")
    model, _ = fe.load_spec(spec)
    expected = _convnet()
    assert [layer.get_config() for layer in model.layers] == \
        [layer.get_config() for layer in expected.layers]
    for a, b in zip(model.get_weights(), expected.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_spec_file_error_names_the_key(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("model:\n  input_shape: [1, 8, 8]\n  layers:\n"
                    "    - {type: Conv2D, filters: 4, kernal_size: 3}\n")
    with pytest.raises(fe.spec.SpecError, match="kernal_size"):
        fe.load_spec(spec)


def test_the_example_spec_is_the_example_model():
    # examples/digits_cnn.yaml (symgraph train) and examples/digits_cnn.py build one model
    root = Path(__file__).resolve().parents[2] / "examples"
    spec = importlib.util.spec_from_file_location("digits_cnn", root / "digits_cnn.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    model, cfg = fe.load_spec(root / "digits_cnn.yaml")
    built = example.build((16, 32, 64), 0.3, seed=0)
    assert [layer.get_config() for layer in model.layers] == \
        [layer.get_config() for layer in built.layers]
    for a, b in zip(model.get_weights(), built.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert cfg["fit"]["epochs"] * 45 == cfg["compile"]["optimizer"]["schedule"]["steps"]


def test_channels_last_images_warn_and_permute_fixes_them(rng):
    """(batch, 32, 32, 3) into Conv2D (NCHW, as torch) would be 32 channels of 32x3 images,
    silently: a warning (once per layer) naming Permute((3, 1, 2)); with it, the layer
    computes torch's conv of the channels-first images."""
    with pytest.warns(UserWarning, match=r"looks like channels-last images \(3 channels of "
                                         r"32x32\).*Permute\(\(3, 1, 2\)\)") as caught:
        fe.Sequential([L.Reshape((32, 32, 3)), L.Conv2D(4, 3)], input_shape=(3072,))
    assert len([w for w in caught if "channels-last" in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = fe.Sequential([L.Reshape((8, 8, 3)), L.Permute((3, 1, 2)), L.Conv2D(4, 3)],
                              input_shape=(192,), seed=0)
        fe.Sequential([L.Conv2D(4, 3)], input_shape=(3, 8, 8))  # channels first: quiet
    x = rng.normal(size=(2, 192)).astype(np.float32)
    W, b = (w.get_value() for w in model.layers[2].weights)
    want = F.conv2d(torch.tensor(x.reshape(2, 8, 8, 3)).permute(0, 3, 1, 2), torch.tensor(W),
                    torch.tensor(b)).numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-5, atol=1e-5)
