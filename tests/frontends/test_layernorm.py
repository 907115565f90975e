"""``LayerNorm`` against ``torch.nn.LayerNorm``: outputs, input and parameter gradients (and
finite differences) over the last one or two dims, the same result in training and
inference, a float32 model staying float32, training steps inside ``fit``, config and
errors."""

import numpy as np
import pytest
import torch

import frontends as fe
import symgraph as sg
from frontends import layers as L


@pytest.fixture
def rng():
    return np.random.default_rng(11)


@pytest.mark.parametrize("shape, dims", [((6, 5), 1), ((3, 4, 5), 1), ((3, 4, 5), 2)])
def test_values_and_gradients_match_torch(backend, rng, shape, dims):
    x = fe.Input(shape[1:], "float64")
    layer = L.LayerNorm(eps=1e-4, dims=dims)
    out = layer(x)
    gamma = rng.uniform(0.5, 2.0, shape[-dims:])
    beta = rng.normal(size=shape[-dims:])
    layer.gamma.set_value(gamma)
    layer.beta.set_value(beta)
    X = rng.normal(size=shape) * 3 + 1
    C = rng.normal(size=shape)  # every output entry matters to the gradient
    cost = sg.sum(out * C)
    f = sg.function([x], [out, *sg.grad(cost, [x, layer.gamma, layer.beta])], backend=backend)
    got = f(X)

    xt = torch.tensor(X, requires_grad=True)
    ln = torch.nn.LayerNorm(shape[-dims:], eps=1e-4, dtype=torch.float64)
    with torch.no_grad():
        ln.weight.copy_(torch.tensor(gamma))
        ln.bias.copy_(torch.tensor(beta))
    yt = ln(xt)
    grads = torch.autograd.grad((yt * torch.tensor(C)).sum(), [xt, ln.weight, ln.bias])
    for name, a, b in zip(["out", "dx", "dgamma", "dbeta"], got, [yt, *grads]):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
    # each example's normalised values: mean 0, (biased) variance 1 / (1 + eps / var)
    axes = tuple(range(len(shape) - dims, len(shape)))
    x_hat = (got[0] - beta) / gamma
    np.testing.assert_allclose(x_hat.mean(axis=axes), 0, atol=1e-12)


def test_gradient_matches_finite_differences(rng):
    x = sg.tensor("x", (4, 3, 5))
    layer = L.LayerNorm(dims=2)
    out = layer(x)
    layer.gamma.set_value(rng.uniform(0.5, 2.0, (3, 5)))
    C = rng.normal(size=(4, 3, 5))

    def fn(xv, g, b):
        [o] = sg.clone_replace([out], {x: xv, layer.gamma: g, layer.beta: b})
        return sg.sum(o * C)

    sg.check_grad(fn, [rng.normal(size=(4, 3, 5)), layer.gamma.get_value(),
                       rng.normal(size=(3, 5))])


def test_a_float32_model_trains_and_predicts_as_torch(rng):
    """Dense - LayerNorm - GELU - Dense, three SGD steps through fit: torch's weights."""
    model = fe.Sequential([L.Dense(6), L.LayerNorm(), L.GELU(), L.Dense(3)], input_shape=(4,),
                          seed=2)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(0.5))
    X = rng.normal(size=(12, 4)).astype(np.float32)
    y = rng.integers(0, 3, 12)
    W1, b1, g, be, W2, b2 = (torch.tensor(w, requires_grad=True) for w in model.get_weights())
    assert all(w.dtype == torch.float32 for w in (W1, g, W2))
    opt = torch.optim.SGD([W1, b1, g, be, W2, b2], lr=0.5)
    for start in range(0, 12, 4):
        opt.zero_grad()
        h = torch.nn.functional.layer_norm(torch.tensor(X[start:start + 4]) @ W1 + b1, (6,),
                                           g, be, eps=1e-5)
        z = torch.nn.functional.gelu(h) @ W2 + b2
        torch.nn.functional.cross_entropy(z, torch.tensor(y[start:start + 4])).backward()
        opt.step()
    model.fit(X, y, batch_size=4, epochs=1, shuffle=False, progress=False, verbose=False)
    for mine, theirs in zip(model.get_weights(), (W1, b1, g, be, W2, b2)):
        assert mine.dtype == np.float32
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=2e-5, atol=2e-6)
    # no batch statistics: a single example predicts what it does inside a batch
    np.testing.assert_allclose(model.predict(X[:1]), model.predict(X)[:1], rtol=1e-6)


def test_config_round_trip_and_errors():
    layer = L.LayerNorm(eps=1e-3, dims=2, name="ln")
    config = layer.get_config()
    assert config == {"type": "LayerNorm", "eps": 1e-3, "dims": 2, "name": "ln"}
    assert L.get("LayerNorm")(**{k: v for k, v in config.items() if k != "type"}).dims == 2
    with pytest.raises(ValueError, match="LayerNorm: eps must be a finite number > 0"):
        L.LayerNorm(eps=0)
    with pytest.raises(ValueError, match="LayerNorm: dims must be an integer >= 1"):
        L.LayerNorm(dims=0)
    with pytest.raises(ValueError, match=r"needs a batch dim before the 2 normalised"):
        L.LayerNorm(dims=2)(fe.Input((5,)))
    with pytest.raises(ValueError, match="must be fixed sizes"):
        L.LayerNorm()(sg.tensor("x", ("batch", "features")))


def test_automatic_names_of_the_new_activation_layers():
    assert L.SiLU().ensure_name(set()) == "silu_1"
    assert L.GELU().ensure_name(set()) == "gelu_1"
    assert L.LayerNorm().ensure_name(set()) == "layer_norm_1"
