"""Variable-length sequences: recurrent layers' ``mask_value`` against torch's packed
sequences (``pack_padded_sequence``), ``Embedding(padding_idx=...)`` against
``torch.nn.Embedding``'s, and a padded text model trained through ``fit`` against torch."""

import numpy as np
import pytest
import torch
from _torch_rnn import torch_grads_in_keras_layout, torch_module
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import frontends as fe
import symgraph as sg
from frontends import layers as L

B, T, F, H = 4, 6, 3, 5
LENGTHS = [6, 2, 4, 1]


@pytest.fixture
def rng():
    return np.random.default_rng(29)


def _padded(rng, lengths=LENGTHS, pad=0.0):
    """(B, T, F) normal data, each example ``pad`` after its length."""
    X = rng.normal(size=(len(lengths), T, F))
    for i, n in enumerate(lengths):
        X[i, n:] = pad
    return X


def _randomise(layer, rng):
    for w in layer.weights:  # nonzero biases everywhere, recurrent bias included
        w.set_value(rng.normal(scale=0.5, size=w.get_value().shape))


def _torch_packed(mod, X, return_sequences):
    """torch's result on the packed batch: the padded sequence (zeros after each length), or
    the final states h_n (both directions side by side when bidirectional)."""
    xt = torch.tensor(X, requires_grad=True)
    packed = pack_padded_sequence(xt, torch.tensor(LENGTHS), batch_first=True,
                                  enforce_sorted=False)
    seq, h_n = mod(packed)
    h_n = h_n[0] if isinstance(h_n, tuple) else h_n  # LSTM: (h, c)
    if return_sequences:
        return xt, pad_packed_sequence(seq, batch_first=True, total_length=T)[0]
    return xt, torch.cat(list(h_n), dim=-1)


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_masked_steps_match_torchs_packed_sequences(kind, return_sequences, backend, rng):
    x = fe.Input((T, F), "float64")
    layer = getattr(L, kind)(H, return_sequences=return_sequences, mask_value=0.0)
    out = layer(x)
    _randomise(layer, rng)
    X = _padded(rng)
    C = rng.normal(size=(B, T, H) if return_sequences else (B, H))
    f = sg.function([x], [out, *sg.grad(sg.sum(out * C), [x, *layer.weights])],
                    backend=backend)
    got = f(X)

    mod = torch_module(kind, [w.get_value() for w in layer.weights])
    xt, want = _torch_packed(mod, X, return_sequences)
    (want * torch.tensor(C)).sum().backward()
    np.testing.assert_allclose(got[0], want.detach().numpy(), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(got[1], xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert not got[1][1, 2:].any()  # nothing flows into the padding
    for name, a, b in zip(["kernel", "recurrent", "bias"], got[2:],
                          torch_grads_in_keras_layout(kind, mod)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_masked_matches_torchs_packed_sequences(kind, return_sequences,
                                                               backend, rng):
    """The backward half starts at each sequence's own end, as torch's packed reverse run."""
    x = fe.Input((T, F), "float64")
    layer = L.Bidirectional(getattr(L, kind)(H, return_sequences=return_sequences,
                                             mask_value=0.0))
    out = layer(x)
    _randomise(layer, rng)
    X = _padded(rng)
    C = rng.normal(size=(B, T, 2 * H) if return_sequences else (B, 2 * H))
    got = sg.function([x], [out, sg.grad(sg.sum(out * C), x)], backend=backend)(X)
    values = [w.get_value() for w in layer.weights]
    xt, want = _torch_packed(torch_module(kind, values[:3], values[3:]), X, return_sequences)
    (want * torch.tensor(C)).sum().backward()
    np.testing.assert_allclose(got[0], want.detach().numpy(), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(got[1], xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_padding_anywhere_gives_the_unpadded_sequences_result(rng):
    """Pre-padding, padding in the middle and a nonzero mask value: each example's last state
    is torch's on its data steps alone; an example of padding only keeps the zero state."""
    x = fe.Input((T, F), "float64")
    layer = L.GRU(H, mask_value=-1.0)
    out = layer(x)
    _randomise(layer, rng)
    X = rng.normal(size=(4, T, F))
    data = [np.arange(T)[2:], np.array([0, 1, 4, 5]), np.array([3]), np.array([], int)]
    for i, steps in enumerate(data):
        X[i, np.setdiff1d(np.arange(T), steps)] = -1.0
    got = sg.function([x], out)(X)
    mod = torch_module("GRU", [w.get_value() for w in layer.weights])
    for i, steps in enumerate(data[:3]):
        want = mod(torch.tensor(X[i:i + 1, steps]))[0][0, -1].detach().numpy()
        np.testing.assert_allclose(got[i], want, rtol=1e-11, atol=1e-13)
    assert not got[3].any()


def test_embedding_padding_idx_matches_torch(backend, rng):
    ids = sg.tensor("ids", ("batch", T), "int64")
    emb = L.Embedding(7, F, padding_idx=-1, dtype="float64")  # -1: the last id, as torch
    out = emb(ids)
    assert emb.padding_idx == 6 and not emb.table.get_value()[6].any()  # torch's zero row
    emb.table.set_value(rng.normal(size=(7, F)))  # padding's row too: it must not matter
    tokens = rng.integers(0, 7, size=(B, T))
    tokens[:, -2:] = 6
    C = rng.normal(size=(B, T, F))
    got = sg.function([ids], [out, sg.grad(sg.sum(out * C), emb.table)], backend=backend)(tokens)
    table = torch.tensor(emb.table.get_value(), requires_grad=True)
    want = torch.nn.functional.embedding(torch.tensor(tokens), table, padding_idx=6)
    with torch.no_grad():
        want[torch.tensor(tokens) == 6] = 0.0  # torch reads the row; ours is zero by definition
    (want * torch.tensor(C)).sum().backward()
    np.testing.assert_allclose(got[0], want.detach().numpy(), rtol=1e-15)
    np.testing.assert_allclose(got[1], table.grad.numpy(), rtol=1e-12, atol=1e-15)
    assert not got[1][6].any()


def test_a_padded_text_model_trains_as_torch(rng):
    """Embedding(padding_idx=0) - LSTM(mask_value=0) - Dense, three Adam steps through fit,
    against torch's Embedding(padding_idx=0), a packed LSTM and a Linear."""
    model = fe.Sequential([L.Embedding(9, F, padding_idx=0), L.LSTM(H, mask_value=0.0),
                           L.Dense(2)], input_shape=(T,), dtype="int64", seed=2)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(0.05))
    lengths = rng.integers(1, T + 1, 12)
    tokens = np.where(np.arange(T) < lengths[:, None], rng.integers(1, 9, (12, T)), 0)
    y = rng.integers(0, 2, 12)
    table, kernel, recurrent, bias, Wd, bd = model.get_weights()
    emb = torch.nn.Embedding(9, F, padding_idx=0, _weight=torch.tensor(table))
    lstm = torch_module("LSTM", [kernel, recurrent, bias]).float()
    dense = [torch.tensor(Wd, requires_grad=True), torch.tensor(bd, requires_grad=True)]
    params = [emb.weight, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, *dense]
    opt = torch.optim.Adam(params, lr=0.05)  # bias_hh stays 0: not ours to train
    for start in range(0, 12, 4):
        opt.zero_grad()
        batch = slice(start, start + 4)
        packed = pack_padded_sequence(emb(torch.tensor(tokens[batch])),
                                      torch.tensor(lengths[batch]), batch_first=True,
                                      enforce_sorted=False)
        h = lstm(packed)[1][0][0]
        torch.nn.functional.cross_entropy(h @ dense[0] + dense[1],
                                          torch.tensor(y[batch])).backward()
        opt.step()
    model.fit(tokens, y, batch_size=4, epochs=1, shuffle=False, progress=False, verbose=False)
    want = [emb.weight.detach().numpy(), lstm.weight_ih_l0.detach().numpy().T,
            lstm.weight_hh_l0.detach().numpy().T, lstm.bias_ih_l0.detach().numpy(),
            *(d.detach().numpy() for d in dense)]
    for a, b in zip(model.get_weights(), want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert not model.get_weights()[0][0].any()  # the padding row never moved


def test_config_round_trip_and_errors():
    for layer in (L.LSTM(4, mask_value=0.0), L.SimpleRNN(3, mask_value=-1, name="r"),
                  L.Bidirectional(L.GRU(3, mask_value=0.5)), L.Embedding(5, 2, padding_idx=0)):
        config = layer.get_config()
        rebuilt = L.get(config["type"])(**{k: v for k, v in config.items() if k != "type"})
        assert rebuilt.get_config() == config
    assert L.SimpleRNN(3, mask_value=-1).mask_value == -1.0
    assert L.GRU(3).get_config()["mask_value"] is None
    with pytest.raises(ValueError, match="LSTM: mask_value cannot be NaN"):
        L.LSTM(3, mask_value=float("nan"))
    with pytest.raises(TypeError, match="GRU: mask_value must be a number"):
        L.GRU(3, mask_value=True)
    with pytest.raises(ValueError, match="padding_idx must be an id below n=5, got 5"):
        L.Embedding(5, 2, padding_idx=5)
    with pytest.raises(ValueError, match=r"padding_idx must be an integer >= -5, got -6"):
        L.Embedding(5, 2, padding_idx=-6)


@pytest.mark.parametrize("pad", [np.inf, 3e38])
def test_a_pad_value_that_overflows_gives_finite_gradients(pad, backend, rng):
    """Padded steps read zeros: a pad of inf (or one whose product overflows float32) made
    x @ W NaN at those steps, which the forward where dropped but the backward pass spread
    into every weight. The result is the zero-padded one."""
    x = fe.Input((T, F))
    layer = L.LSTM(H, mask_value=pad)
    out = layer(x)
    _randomise(layer, rng)
    X = _padded(rng).astype(np.float32)
    f = sg.function([x], [out, *sg.grad(sg.sum(out), [x, *layer.weights])], backend=backend)
    got = f(np.where(X == 0, np.float32(pad), X))
    zero = L.LSTM(H, mask_value=0.0)
    want_out = zero(x)
    for w, v in zip(zero.weights, layer.weights):
        w.set_value(v.get_value())
    want = sg.function([x], [want_out, *sg.grad(sg.sum(want_out), [x, *zero.weights])],
                       backend=backend)(X)
    for a, b in zip(got, want):
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_padding_idx_no_id_of_the_dtype_can_take_is_no_padding(backend):
    """uint8 ids with padding_idx 999 (or -1 of 1000 rows): nothing is padding."""
    for dtype, padding_idx in (("uint8", -1), ("int8", 150)):
        ids = sg.tensor("ids", ("batch", 3), dtype)
        emb = L.Embedding(1000, 2, padding_idx=padding_idx, dtype="float64")
        tokens = np.array([[0, 5, 100]], dtype)
        got = sg.function([ids], emb(ids), backend=backend)(tokens)
        np.testing.assert_array_equal(got, emb.table.get_value()[tokens.astype(np.int64)])


def test_a_negative_id_of_the_padding_row_is_padding_too(backend):
    """Ids index as numpy's: -1 reads row n-1. With padding_idx=-1 (row n-1), id -1 was not
    masked: it read the row and gave it gradient, so a step made the 'padding' non-zero."""
    ids = sg.tensor("ids", ("batch", 3), "int64")
    emb = L.Embedding(4, 2, padding_idx=-1, dtype="float64")
    out = emb(ids)
    emb.table.set_value(np.arange(8.0).reshape(4, 2))
    got, grad = sg.function([ids], [out, sg.grad(sg.sum(out), emb.table)],
                            backend=backend)(np.array([[3, -1, 0]]))
    np.testing.assert_array_equal(got, [[[0, 0], [0, 0], [0, 1]]])
    np.testing.assert_array_equal(grad, [[1, 1], [0, 0], [0, 0], [0, 0]])


@pytest.mark.parametrize("dtype, pad", [("int64", 0.5), ("uint8", -1)])
def test_integer_inputs_compare_with_the_mask_value_itself(dtype, pad, backend, rng):
    """mask_value was cast to the input's dtype: 0.5 became 0 (steps of zeros were padding)
    and -1 of uint8 raised an OverflowError. No integer step equals these values: the result
    is the unmasked recurrence (torch on the same numbers)."""
    x = fe.Input((T, F), dtype)
    layer = L.SimpleRNN(H, return_sequences=True, mask_value=pad)
    out = layer(x)
    _randomise(layer, rng)
    X = rng.integers(0, 3, size=(B, T, F)).astype(dtype)
    X[:, 2:4] = 0  # steps of zeros
    got = sg.function([x], out, backend=backend)(X)
    mod = torch_module("SimpleRNN", [w.get_value().astype(np.float64) for w in layer.weights])
    want = mod(torch.tensor(X.astype(np.float64)))[0].detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_mask_value_float32_cannot_hold_matches_no_float32_step(backend, rng):
    """mask_value=1e300 was cast to float32's inf, so a step of infs counted as padding (its
    output the carried state). No float32 value equals 1e300: the output is the unmasked
    layer's, inf step and all."""
    x = fe.Input((T, F), "float32")
    layer, plain = (L.SimpleRNN(H, return_sequences=True, mask_value=v) for v in (1e300, None))
    out, want_out = layer(x), plain(x)
    _randomise(layer, rng)
    for w, v in zip(plain.weights, layer.weights):
        w.set_value(v.get_value())
    X = rng.normal(size=(B, T, F)).astype(np.float32)
    X[0, 2] = np.inf  # every feature of one step
    with np.errstate(invalid="ignore"):  # (numpy's matmul warns of inf * 0)
        got = sg.function([x], out, backend=backend)(X)
        want = sg.function([x], want_out, backend=backend)(X)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
