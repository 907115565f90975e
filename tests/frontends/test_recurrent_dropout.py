"""Recurrent layers' ``dropout`` (on the inputs) and ``recurrent_dropout`` (on ``h_{t-1}``
before ``@ U``), one mask per sequence for every step (Gal & Ghahramani's variational
dropout, Keras's): values and weight gradients against cells written in torch from the
formulas with the graph's own masks, the masks' shapes, rates and redraws, inference without
them, and Bidirectional's two streams."""

import numpy as np
import pytest
import torch
from _torch_rnn import torch_module

import frontends as fe
import symgraph as sg
from frontends import layers as L
from symgraph.graph import toposort
from symgraph.ops.elemwise import DropoutMask

B, T, F, H = 3, 4, 5, 6


def _masks(out):
    """The DropoutMask nodes' outputs under ``out``: (input mask, recurrent mask), told apart
    by shape."""
    found = {tuple(n.outputs[0].shape[1:]): n.outputs[0] for n in toposort([out])
             if isinstance(n.op, DropoutMask)}
    return found.get((1, F)), found.get((H,))


def _torch_cells(kind, weights, X, mx, mh):
    """The layer's recurrence from its formulas, in torch, with masks ``mx`` (batch, 1, F)
    on the input and ``mh`` (batch, H) on ``h_{t-1}`` where it meets ``U``: the sequence
    of h, and the weights as leaves."""
    W, U, b = (torch.tensor(w, requires_grad=True) for w in weights)
    x = torch.tensor(X * mx)
    h = c = torch.zeros(X.shape[0], H, dtype=torch.float64)
    seq = []
    for t in range(X.shape[1]):
        hu = (h * torch.tensor(mh)) @ U
        if kind == "SimpleRNN":
            h = torch.tanh(x[:, t] @ W + b + hu)
        elif kind == "LSTM":
            i, f, g, o = (x[:, t] @ W + b + hu).split(H, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:  # GRU, reset_after: z, r, h
            zx, rx, nx = (x[:, t] @ W + b[0]).split(H, dim=1)
            zh, rh, nh = (hu + b[1]).split(H, dim=1)
            z, r = torch.sigmoid(zx + zh), torch.sigmoid(rx + rh)
            h = z * h + (1 - z) * torch.tanh(nx + r * nh)
        seq.append(h)
    return torch.stack(seq, dim=1), (W, U, b)


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_dropout_matches_the_recurrence_with_the_graphs_masks(kind, backend):
    rng = np.random.default_rng(5)
    x = fe.Input((T, F), "float64")
    layer = getattr(L, kind)(H, return_sequences=True, dropout=0.3, recurrent_dropout=0.4)
    out = layer(x)
    layer.initialize(np.random.default_rng(1))
    for w in layer.weights:
        w.set_value(rng.normal(scale=0.5, size=w.get_value().shape))
    mask_x, mask_h = _masks(out)
    C = rng.normal(size=(B, T, H))
    f = sg.function([x], [out, mask_x, mask_h, *sg.grad(sg.sum(out * C), layer.weights)],
                    backend=backend)
    X = rng.normal(size=(B, T, F))
    got = f(X)
    mx, mh = got[1], got[2]
    assert set(np.unique(mx)) == {0.0, 1 / 0.7} and set(np.unique(mh)) == {0.0, 1 / 0.6}
    values = [w.get_value() for w in layer.weights]
    # the oracle itself, without masks, is torch's own module
    ones, _ = _torch_cells(kind, values, X, np.ones_like(mx), np.ones_like(mh))
    np.testing.assert_allclose(ones.detach().numpy(),
                               torch_module(kind, values)(torch.tensor(X))[0].detach().numpy(),
                               rtol=1e-12, atol=1e-14)
    want, leaves = _torch_cells(kind, values, X, mx, mh)
    (want * torch.tensor(C)).sum().backward()
    np.testing.assert_allclose(got[0], want.detach().numpy(), rtol=1e-11, atol=1e-13)
    for name, a, b in zip(["W", "U", "b"], got[3:], leaves):
        np.testing.assert_allclose(a, b.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_masks_are_new_every_step_at_their_rates(backend):
    x = fe.Input((T, F))
    layer = L.LSTM(H, dropout=0.25, recurrent_dropout=0.5)
    out = layer(x)
    layer.initialize(np.random.default_rng(0))
    mask_x, mask_h = _masks(out)
    f = sg.function([x], [mask_x, mask_h], backend=backend)
    start = layer.masks.counter.get_value()
    X = np.ones((4000, T, F), np.float32)
    first, second = f(X), f(X)
    assert layer.masks.counter.get_value() == start + 2
    for a, b, rate in zip(first, second, (0.25, 0.5)):
        assert (a != b).any()  # redrawn at the next step
        assert abs((a == 0).mean() - rate) < 0.02  # 3.5 standard deviations at 20k units


def test_inference_runs_without_dropout_and_training_with_it(tmp_path):
    rng = np.random.default_rng(8)
    model = fe.Sequential([L.GRU(H, dropout=0.5, recurrent_dropout=0.5), L.Dense(2)],
                          input_shape=(T, F), seed=1)
    plain = fe.Sequential([L.GRU(H), L.Dense(2)], input_shape=(T, F), seed=1)
    plain.set_weights(model.get_weights())
    X = rng.normal(size=(16, T, F)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(X), plain.predict(X))
    y = np.arange(16) % 2
    for m in (model, plain):
        m.compile(loss="cross_entropy", optimizer="sgd")
        m.fit(X, y, batch_size=8, epochs=1, shuffle=False, progress=False, verbose=False)
    for a, b in zip(model.get_weights(), plain.get_weights()):
        assert not np.allclose(a, b)  # the dropped units trained otherwise
    model.save(tmp_path / "m.npz")
    loaded = fe.load_model(tmp_path / "m.npz")
    assert loaded.layers[0].masks.counter.get_value() == model.layers[0].masks.counter.get_value()
    for m in (model, loaded):
        m.compile(loss="cross_entropy", optimizer="sgd")
        m.fit(X, y, batch_size=8, epochs=1, shuffle=False, progress=False, verbose=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)  # the same masks after loading


def test_bidirectional_directions_draw_their_own_masks():
    x = fe.Input((T, F))
    both = L.Bidirectional(L.LSTM(H, recurrent_dropout=0.5))
    out = both(x)
    both.initialize(np.random.default_rng(2))
    assert both.has_mode and len(both.state) == 2
    masks = [n.outputs[0] for n in toposort([out]) if isinstance(n.op, DropoutMask)]
    forward, backward = sg.function([x], masks)(np.ones((64, T, F), np.float32))
    assert not np.array_equal(forward, backward)


def test_config_round_trip_and_errors():
    for layer in (L.LSTM(4, dropout=0.1, recurrent_dropout=0.2),
                  L.Bidirectional(L.SimpleRNN(3, recurrent_dropout=0.5))):
        config = layer.get_config()
        rebuilt = L.get(config["type"])(**{k: v for k, v in config.items() if k != "type"})
        assert rebuilt.get_config() == config
    assert not L.GRU(3).has_mode and L.GRU(3, dropout=0.1).has_mode
    with pytest.raises(ValueError, match=r"LSTM: dropout must be in \[0, 1\), got 1.0"):
        L.LSTM(3, dropout=1.0)
    with pytest.raises(ValueError, match=r"GRU: recurrent_dropout must be in \[0, 1\)"):
        L.GRU(3, recurrent_dropout=-0.1)
