"""``SimpleRNN``, ``LSTM``, ``GRU`` against ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (float64,
batch_first): the last state and the whole sequence, gradients in the input and in every
weight (Keras layouts mapped to torch's), finite differences, a float32 model trained
through ``fit``, the initialisers (orthogonal recurrent kernel, LSTM's forget bias), config
and errors."""

import numpy as np
import pytest
import torch
from _torch_rnn import torch_grads_in_keras_layout, torch_module

import frontends as fe
import symgraph as sg
from frontends import initializers
from frontends import layers as L

B, T, F, H = 3, 5, 4, 6


@pytest.fixture
def rng():
    return np.random.default_rng(17)


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_values_and_gradients_match_torch(kind, return_sequences, backend, rng):
    x = fe.Input((T, F), "float64")
    layer = getattr(L, kind)(H, return_sequences=return_sequences, bias_init=0.0)
    out = layer(x)
    for w in layer.weights:  # nonzero biases everywhere, recurrent bias included
        w.set_value(rng.normal(scale=0.5, size=w.get_value().shape))
    X = rng.normal(size=(B, T, F))
    C = rng.normal(size=(B, T, H) if return_sequences else (B, H))
    cost = sg.sum(out * C)
    f = sg.function([x], [out, *sg.grad(cost, [x, *layer.weights])], backend=backend)
    got = f(X)

    mod = torch_module(kind, [w.get_value() for w in layer.weights])
    xt = torch.tensor(X, requires_grad=True)
    seq = mod(xt)[0]
    want = seq if return_sequences else seq[:, -1]
    (want * torch.tensor(C)).sum().backward()
    np.testing.assert_allclose(got[0], want.detach().numpy(), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(got[1], xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, a, b in zip(["kernel", "recurrent", "bias"], got[2:],
                          torch_grads_in_keras_layout(kind, mod)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_one_step_sequences_match_torch_and_train(kind, rng):
    """T = 1: the state starts at zero, so U gets a zero gradient (torch's too) -- but it is
    in the graph, and a model with the layer compiles and trains."""
    x = fe.Input((1, F), "float64")
    layer = getattr(L, kind)(H)
    out = layer(x)
    for w in layer.weights:
        w.set_value(rng.normal(scale=0.5, size=w.get_value().shape))
    X = rng.normal(size=(B, 1, F))
    C = rng.normal(size=(B, H))
    got = sg.function([x], [out, *sg.grad(sg.sum(out * C), layer.weights)])(X)
    mod = torch_module(kind, [w.get_value() for w in layer.weights])
    (mod(torch.tensor(X))[0][:, -1] * torch.tensor(C)).sum().backward()
    np.testing.assert_allclose(got[0], mod(torch.tensor(X))[0][:, -1].detach().numpy(),
                               rtol=1e-11)
    for a, b in zip(got[1:], torch_grads_in_keras_layout(kind, mod)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert not got[2].any()  # U's gradient
    model = fe.Sequential([getattr(L, kind)(3), L.Dense(2)], input_shape=(1, F), seed=0)
    model.compile(loss="cross_entropy", optimizer="sgd")
    model.fit(rng.normal(size=(6, 1, F)).astype(np.float32), np.arange(6) % 2, epochs=1,
              progress=False, verbose=False)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_gradients_match_finite_differences(kind, rng):
    x = sg.tensor("x", (2, 3, F))
    layer = getattr(L, kind)(3)
    out = layer(x)
    C = rng.normal(size=(2, 3))

    def fn(xv, *ws):
        [o] = sg.clone_replace([out], {x: xv, **dict(zip(layer.weights, ws))})
        return sg.sum(o * C)

    sg.check_grad(fn, [rng.normal(size=(2, 3, F))] + [
        rng.normal(scale=0.5, size=w.get_value().shape) for w in layer.weights])


def test_a_float32_lstm_model_trains_as_torch(rng):
    """LSTM - Dense on sequences, three Adam steps through fit against torch."""
    model = fe.Sequential([L.LSTM(H), L.Dense(2)], input_shape=(T, F), seed=4)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(0.05))
    X = rng.normal(size=(12, T, F)).astype(np.float32)
    y = rng.integers(0, 2, 12)
    kernel, recurrent, bias, Wd, bd = model.get_weights()
    lstm = torch_module("LSTM", [kernel, recurrent, bias]).float()
    dense = [torch.tensor(Wd, requires_grad=True), torch.tensor(bd, requires_grad=True)]
    params = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, *dense]
    opt = torch.optim.Adam(params, lr=0.05)  # bias_hh stays 0: not ours to train
    for start in range(0, 12, 4):
        opt.zero_grad()
        h = lstm(torch.tensor(X[start:start + 4]))[0][:, -1]
        torch.nn.functional.cross_entropy(h @ dense[0] + dense[1],
                                          torch.tensor(y[start:start + 4])).backward()
        opt.step()
    model.fit(X, y, batch_size=4, epochs=1, shuffle=False, progress=False, verbose=False)
    got = model.get_weights()
    assert all(w.dtype == np.float32 for w in got)
    want = [lstm.weight_ih_l0.detach().numpy().T, lstm.weight_hh_l0.detach().numpy().T,
            lstm.bias_ih_l0.detach().numpy(), *(d.detach().numpy() for d in dense)]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_initial_weights_orthogonal_recurrence_and_forget_bias():
    lstm = L.LSTM(H)
    lstm(fe.Input((T, F)))
    U = lstm.U.get_value().astype(np.float64)
    assert U.shape == (H, 4 * H)
    np.testing.assert_allclose(U @ U.T, np.eye(H), atol=1e-6)  # orthonormal rows
    bias = lstm.b.get_value()
    assert (bias[H:2 * H] == 1).all() and (np.delete(bias, np.s_[H:2 * H]) == 0).all()
    assert (L.LSTM(H, unit_forget_bias=False)(fe.Input((T, F))).owner is not None)
    square = initializers.get({"type": "orthogonal", "gain": 2.0})((5, 5), 5, 5,
                                                                   np.random.default_rng(0),
                                                                   "float64")
    np.testing.assert_allclose(square.T @ square, 4 * np.eye(5), atol=1e-12)
    gru = L.GRU(H)
    gru(fe.Input((T, F)))
    assert gru.b.get_value().shape == (2, 3 * H)


def test_config_round_trip_and_errors():
    for layer in (L.SimpleRNN(4, activation="relu", return_sequences=True, name="r"),
                  L.LSTM(8, unit_forget_bias=False), L.GRU(3, recurrent_init="glorot_uniform")):
        config = layer.get_config()
        rebuilt = L.get(config["type"])(**{k: v for k, v in config.items() if k != "type"})
        assert rebuilt.get_config() == config
    with pytest.raises(ValueError, match=r"LSTM takes \(batch, time, features\)"):
        L.LSTM(4)(fe.Input((5,)))
    with pytest.raises(ValueError, match="fixed number of time steps"):
        L.GRU(4)(sg.tensor("x", ("batch", "time", 3)))
    with pytest.raises(ValueError, match="GRU: units must be an integer >= 1"):
        L.GRU(0)
    with pytest.raises(TypeError, match="return_sequences must be True or False"):
        L.SimpleRNN(3, return_sequences="yes")


def test_the_example_spec_is_the_example_model():
    """examples/digits_rnn.yaml (symgraph train) and examples/digits_rnn.py: one model, one
    optimizer (AdamW with the same exclusions, a cosine over the same 30 epochs)."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "examples"
    spec = importlib.util.spec_from_file_location("digits_rnn", root / "digits_rnn.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    model, cfg = fe.load_spec(root / "digits_rnn.yaml")
    built = example.build("LSTM", 64, seed=0)
    assert [layer.get_config() for layer in model.layers] == \
        [layer.get_config() for layer in built.layers]
    for a, b in zip(model.get_weights(), built.get_weights()):
        np.testing.assert_array_equal(a, b)
    opt = cfg["compile"]["optimizer"]
    steps_per_epoch = -(-1438 // cfg["fit"]["batch_size"])
    assert opt["schedule"] == {"type": "Cosine", "steps": cfg["fit"]["epochs"] * steps_per_epoch,
                               "warmup": steps_per_epoch}
    assert opt["exclude"] == ["b", "gamma", "beta"] and opt["type"] == "AdamW"


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_concat_matches_torch(kind, return_sequences, backend, rng):
    """concat is torch's bidirectional layout: the sequence as torch's output; the last
    state as torch's final states h_n of both directions."""
    x = fe.Input((T, F), "float64")
    layer = L.Bidirectional(getattr(L, kind)(H, return_sequences=return_sequences))
    out = layer(x)
    for w in layer.weights:
        w.set_value(rng.normal(scale=0.5, size=w.get_value().shape))
    X = rng.normal(size=(B, T, F))
    C = rng.normal(size=tuple(int(d) if isinstance(d, int) else B for d in out.shape))
    got = sg.function([x], [out, sg.grad(sg.sum(out * C), x)], backend=backend)(X)
    values = [w.get_value() for w in layer.weights]
    mod = torch_module(kind, values[:3], values[3:])
    xt = torch.tensor(X, requires_grad=True)
    seq, h_n = mod(xt)
    h_n = h_n[0] if kind == "LSTM" else h_n
    want = seq if return_sequences else torch.cat([h_n[0], h_n[1]], dim=-1)
    (want * torch.tensor(C)).sum().backward()
    np.testing.assert_allclose(got[0], want.detach().numpy(), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(got[1], xt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("merge, op", [("sum", np.add), ("mul", np.multiply),
                                       ("ave", lambda a, b: (a + b) / 2)])
def test_bidirectional_merges_the_two_directions(merge, op, rng):
    x = fe.Input((T, F), "float64")
    both = L.Bidirectional(L.GRU(H, return_sequences=True), merge=merge)
    out = both(x)
    X = rng.normal(size=(B, T, F))
    got = sg.function([x], out)(X)
    # the two directions run alone: a GRU with each direction's weights
    fwd, bwd = L.GRU(H, return_sequences=True), L.GRU(H, return_sequences=True)
    a, b = fwd(x), bwd(x)
    for layer, values in ((fwd, both.weights[:3]), (bwd, both.weights[3:])):
        for w, v in zip(layer.weights, values):
            w.set_value(v.get_value())
    ahead, behind = sg.function([x], [a, b])(X), sg.function([x], b)(X[:, ::-1])
    np.testing.assert_allclose(got, op(ahead[0], behind[:, ::-1]), rtol=1e-12)


def test_bidirectional_trains_saves_and_loads(tmp_path, rng):
    model = fe.Sequential([L.Bidirectional(L.LSTM(4, return_sequences=True)),
                           L.Bidirectional(L.GRU(3), merge="sum"), L.Dense(2)],
                          input_shape=(T, F), seed=3)
    model.compile(loss="cross_entropy", optimizer="adam")
    assert [w.name for w in model.weights][:3] == [f"bidirectional_1_forward/{n}"
                                                   for n in ("W", "U", "b")]
    X = rng.normal(size=(8, T, F)).astype(np.float32)
    y = np.arange(8) % 2
    model.fit(X, y, epochs=2, batch_size=4, progress=False, verbose=False)
    model.save(tmp_path / "m.npz")
    loaded = fe.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    for m in (model, loaded):
        m.fit(X, y, epochs=1, batch_size=4, shuffle=False, progress=False, verbose=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bidirectional_errors():
    with pytest.raises(TypeError, match="wraps a SimpleRNN, LSTM or GRU layer, got Dense"):
        L.Bidirectional(L.Dense(3))
    with pytest.raises(ValueError, match=r"merge must be one of \['ave', 'concat'"):
        L.Bidirectional(L.LSTM(3), merge="max")
    used = L.LSTM(3)
    used(fe.Input((T, F)))
    with pytest.raises(ValueError, match="needs a layer not yet used"):
        L.Bidirectional(used)
    spec = L.Bidirectional(layer={"type": "GRU", "units": 3}, merge="ave")
    assert isinstance(spec.layer, L.GRU) and spec.get_config()["layer"]["units"] == 3


def test_bidirectional_from_a_config_names_what_it_cannot_wrap():
    with pytest.raises(TypeError, match=r"got \{'type': 'Dense', \.\.\.\}"):
        L.Bidirectional(layer={"type": "Dense", "units": 3})


def test_a_functional_model_with_bidirectional_saves_and_loads(tmp_path, rng):
    """load_model passed the list of inputs to any layer with a truthy ``merge`` attribute
    (meant for Add / Concatenate): Bidirectional's ``merge`` is its mode name, so a
    functional model with one was refused as 'a damaged architecture entry'."""
    x = fe.Input((T, F))
    out = L.Dense(2)(L.Bidirectional(L.GRU(H), merge="sum")(x))
    model = fe.Model(x, out, seed=0)
    model.save(tmp_path / "m.npz")
    loaded = fe.load_model(tmp_path / "m.npz")
    X = rng.normal(size=(3, T, F)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_bidirectional_takes_a_function_activation_and_an_initializer_instance(rng):
    """The backward copy came from get_config, which refuses a function (a model file cannot
    hold one) and turns an Initializer instance into a name only the registry knows:
    arguments the wrapped layer itself accepts."""

    class Half(initializers.Initializer):  # not in the registry
        def sample(self, shape, fan_in, fan_out, rng):
            return np.full(shape, 0.5)

    x = fe.Input((T, F), "float64")
    layer = L.Bidirectional(L.SimpleRNN(H, activation=lambda z: sg.tanh(z), init=Half(),
                                        return_sequences=True))
    out = layer(x)
    values = [w.get_value() for w in layer.weights]
    assert (values[0] == 0.5).all() and (values[3] == 0.5).all()  # both directions' W
    X = rng.normal(size=(B, T, F))
    mod = torch_module("SimpleRNN", values[:3], values[3:])
    np.testing.assert_allclose(sg.function([x], out)(X),
                               mod(torch.tensor(X))[0].detach().numpy(), rtol=1e-12)


def test_argument_errors_name_the_layer():
    with pytest.raises(TypeError, match="LSTM: unit_forget_bias must be True or False"):
        L.LSTM(3, unit_forget_bias="False")  # bool("False") is True
    with pytest.raises(ValueError, match="Bidirectional: merge must be one of"):
        L.Bidirectional(L.LSTM(3), merge=["concat"])  # was: unhashable type: 'list'
    with pytest.raises(ValueError, match="GRU needs at least one time step"):
        # was: index 0 is out of bounds (from the first step); fe.Input refuses a 0 dim
        L.GRU(3)(sg.tensor("x", ("batch", 0, F)))
