"""Padding masks (``Embedding(mask_zero=True)``): attention and encoder blocks against torch's
``key_padding_mask`` / ``src_key_padding_mask`` (float64, values and gradients, both
backends, causal or not, a query with no key at all), the recurrent layers and masked
pooling against torch's packed sequences, padding that changes no prediction (Sequential,
functional, dropout on, spec file, saved and loaded), a masked transformer that trains, and
``Masking`` for float steps, and the errors of layers that cannot take a mask."""

import numpy as np
import pytest
import torch
from _torch_rnn import torch_module
from test_attention import FF, HEADS, D, _torch_encoder, _torch_twin
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import frontends as fe
import symgraph as sg
from frontends.spec import SpecError

L = fe.layers
T, VOCAB = 6, 11
# post-padding, pre-padding, padding in the middle, no padding, padding only
IDS = np.array([[3, 5, 2, 0, 0, 0],
                [0, 0, 7, 1, 4, 9],
                [6, 0, 0, 8, 0, 2],
                [1, 2, 3, 4, 5, 10],
                [0, 0, 0, 0, 0, 0]])


def _embedded(rng):
    """Ids -> float64 vectors (a random table) carrying the padding mask of id 0."""
    ids = fe.Input((T,), "int64", name="ids")
    emb = L.Embedding(VOCAB, D, dtype="float64", mask_zero=True)
    h = emb(ids)
    emb.table.set_value(rng.normal(size=(VOCAB, D)))
    return ids, emb, h


def _torch_embedded(emb):
    table = torch.tensor(emb.table.get_value(), requires_grad=True)
    return table, torch.nn.functional.embedding(torch.tensor(IDS), table)


@pytest.mark.parametrize("causal", [False, True])
def test_masked_attention_matches_torchs_key_padding_mask(backend, causal):
    """Every query (padded ones too, as torch computes them) of MultiheadAttention
    (need_weights=False) with key_padding_mask; with causal, the pre-padded example's first
    queries and the all-padding example see no key: zero weights, the output bias, as
    torch's, and finite gradients."""
    rng = np.random.default_rng(11)
    ids, emb, h = _embedded(rng)
    layer = L.MultiHeadAttention(HEADS, causal=causal)
    out = layer(h)
    assert out.sequence_mask is h.sequence_mask  # (positions kept: the mask passes on)
    ref = _torch_twin(layer, rng)
    C = rng.normal(size=(len(IDS), T, D))
    params = [emb.table, layer.Wq, layer.Wk, layer.Wv, layer.Wo, *layer.biases]
    f = sg.function([ids], [out, *sg.grad(sg.sum(out * C), params)], backend=backend)
    got, *grads = f(IDS)

    table, x = _torch_embedded(emb)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
    want = ref(x, x, x, key_padding_mask=torch.tensor(IDS == 0), attn_mask=mask,
               need_weights=False)[0]
    (want * torch.from_numpy(C)).sum().backward()
    assert np.isfinite(want.detach().numpy()).all()
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-11, atol=1e-13)
    bias = layer.biases[3].get_value()
    np.testing.assert_allclose(got[4], np.broadcast_to(bias, (T, D)), rtol=1e-15)
    g_in, g_bias = ref.in_proj_weight.grad.numpy(), ref.in_proj_bias.grad.numpy()
    expected = [table.grad.numpy(), g_in[:D].T, g_in[D:2 * D].T, g_in[2 * D:].T,
                ref.out_proj.weight.grad.numpy().T, g_bias[:D], g_bias[D:2 * D],
                g_bias[2 * D:], ref.out_proj.bias.grad.numpy()]
    for name, a, b in zip("table Wq Wk Wv Wo bq bk bv bo".split(), grads, expected):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("norm_first, causal", [(False, False), (True, True)])
def test_masked_encoder_and_pooling_match_torch(backend, norm_first, causal):
    """Embedding(mask_zero) - PositionEmbedding - TransformerEncoder -
    GlobalAvgPool1D(channels_last) - Dense against torch's TransformerEncoderLayer with
    src_key_padding_mask (train mode: its reference path), a mean over the unpadded
    positions and a Linear: the mask travels through the blocks to the pooling."""
    rng = np.random.default_rng(12)
    ids, emb, h = _embedded(rng)
    positions = L.PositionEmbedding()
    block = L.TransformerEncoder(HEADS, FF, activation="gelu", causal=causal,
                                 norm_first=norm_first)
    pool, head = L.GlobalAvgPool1D(data_format="channels_last"), L.Dense(3)
    encoded = block(positions(h))
    out = head(pool(encoded))
    assert encoded.sequence_mask is not None and out.sequence_mask is None
    ref = _torch_encoder(block, norm_first, "gelu", rng)
    head.b.set_value(rng.normal(size=3))
    C = rng.normal(size=(len(IDS), 3))
    params = [emb.table, positions.table, block.Wk, block.W1, block.norms[0][0], head.W]
    f = sg.function([ids], [out, encoded, *sg.grad(sg.sum(out * C), params)],
                    backend=backend)
    got, got_encoded, *grads = f(IDS)

    table, x = _torch_embedded(emb)
    pos = torch.tensor(positions.table.get_value(), requires_grad=True)
    W, b = (torch.tensor(v.get_value(), requires_grad=True) for v in (head.W, head.b))
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
    padded = torch.tensor(IDS == 0)
    enc = ref(x + pos, src_mask=mask, src_key_padding_mask=padded)
    real = (~padded).double()[:, :, None]
    pooled = (enc * real).sum(1) / real.sum(1).clamp(min=1.0)
    want = pooled @ W + b
    (want * torch.from_numpy(C)).sum().backward()
    np.testing.assert_allclose(got_encoded, enc.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    expected = [table.grad, pos.grad, ref.self_attn.in_proj_weight.grad[D:2 * D].T,
                ref.linear1.weight.grad.T, ref.norm1.weight.grad, W.grad]
    for name, a, e in zip("table positions Wk W1 gamma1 dense".split(), grads, expected):
        np.testing.assert_allclose(a, e.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


def test_masking_marks_padded_steps_of_float_sequences(backend, tmp_path):
    """Masking(-1) on float steps (padding anywhere) - TransformerEncoder - masked mean,
    against torch's encoder layer with src_key_padding_mask on the input with its padded
    steps zeroed, as Keras's Masking outputs: values and the gradient of the input (none
    flows into the padding)."""
    rng = np.random.default_rng(17)
    x = fe.Input((T, D), "float64")
    masking = L.Masking(-1.0)
    block = L.TransformerEncoder(HEADS, FF)
    out = L.GlobalAvgPool1D(data_format="channels_last")(block(masking(x)))
    ref = _torch_encoder(block, False, "relu", rng)
    padded = IDS == 0
    X = rng.normal(size=(len(IDS), T, D))
    X[padded] = -1.0
    C = rng.normal(size=(len(IDS), D))
    got, gx = sg.function([x], [out, sg.grad(sg.sum(out * C), x)], backend=backend)(X)

    xt = torch.tensor(X, requires_grad=True)
    keep = torch.tensor(~padded)
    enc = ref(torch.where(keep[:, :, None], xt, 0.0), src_key_padding_mask=~keep)
    real = keep.double()[:, :, None]
    want = (enc * real).sum(1) / real.sum(1).clamp(min=1.0)
    (want * torch.from_numpy(C)).sum().backward()
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    assert not gx[padded].any()
    model = fe.Model([x], out)  # (weights redrawn from its seed) a model file restores it
    model.compile(backend=backend)
    model.save(tmp_path / "masking.npz")
    loaded = fe.load_model(tmp_path / "masking.npz")
    assert loaded.layers[0].mask_value == -1.0
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    with pytest.raises(TypeError, match="Masking: mask_value must be a number"):
        L.Masking(None)


LENGTHS = [3, 6, 1, 4]


def _post_padded(rng):
    tokens = rng.integers(1, VOCAB, (len(LENGTHS), T))
    return np.where(np.arange(T) < np.array(LENGTHS)[:, None], tokens, 0)


@pytest.mark.parametrize("kind", ["LSTM", "BiGRU"])
def test_recurrent_layers_and_pooling_read_the_propagated_mask(backend, kind):
    """Embedding(mask_zero) - Dense (the padding's vectors nonzero) - LSTM, or a
    Bidirectional GRU with return_sequences (the mask passes on) - masked mean, against
    torch's packed sequences: the last state and every step as torch's, the gradient too."""
    rng = np.random.default_rng(13)
    ids = fe.Input((T,), "int64")
    emb = L.Embedding(VOCAB, 3, dtype="float64", mask_zero=True)
    proj = L.Dense(4, activation="tanh")
    h = proj(emb(ids))
    if kind == "LSTM":
        rnn = L.LSTM(5)
        out = rnn(h)
    else:
        rnn = L.Bidirectional(L.GRU(5, return_sequences=True))
        seq = rnn(h)
        assert seq.sequence_mask is not None
        out = L.GlobalAvgPool1D(data_format="channels_last")(seq)
    for w in [emb.table, proj.b, *rnn.weights]:
        w.set_value(rng.normal(scale=0.5, size=w.get_value().shape))
    tokens = _post_padded(rng)
    C = rng.normal(size=out.shape[1:])
    got, grad = sg.function([ids], [out, sg.grad(sg.sum(out * C), emb.table)],
                            backend=backend)(tokens)

    table = torch.tensor(emb.table.get_value(), requires_grad=True)
    W, b = (torch.tensor(v.get_value()) for v in (proj.W, proj.b))
    x = torch.tanh(torch.nn.functional.embedding(torch.tensor(tokens), table) @ W + b)
    packed = pack_padded_sequence(x, torch.tensor(LENGTHS), batch_first=True,
                                  enforce_sorted=False)
    values = [w.get_value() for w in rnn.weights]
    if kind == "LSTM":
        want = torch_module("LSTM", values)(packed)[1][0][0]
    else:
        seq, _ = torch_module("GRU", values[:3], values[3:])(packed)
        seq = pad_packed_sequence(seq, batch_first=True, total_length=T)[0]
        want = seq.sum(1) / torch.tensor(LENGTHS, dtype=torch.float64)[:, None]
    (want * torch.from_numpy(C)).sum().backward()
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(grad, table.grad.numpy(), rtol=1e-10, atol=1e-12)


def _sequential(length, mask_zero=True, dropout=0.1):
    return fe.Sequential([
        L.Embedding(VOCAB, 16, mask_zero=mask_zero), L.PositionEmbedding(),
        L.TransformerEncoder(2, 32, dropout=dropout, causal=True),
        L.TransformerEncoder(2, 32, dropout=dropout, norm_first=True),
        L.Dropout(0.1), L.LayerNorm(), L.Dense(16, activation="relu"),
        L.GlobalAvgPool1D(data_format="channels_last"), L.Dense(3)],
        input_shape=(length,), dtype="int64", seed=3)


def _functional(length, mask_zero=True, dropout=0.1):
    ids = fe.Input((length,), "int64")
    h = L.PositionEmbedding()(L.Embedding(VOCAB, 16, mask_zero=mask_zero)(ids))
    h = L.LayerNorm()(L.Add()([h, L.MultiHeadAttention(4, dropout=dropout)(h)]))
    h = L.Add()([h, L.Dense(16)(L.Dropout(0.1)(L.Dense(32, activation="gelu")(h)))])
    out = L.Dense(3)(L.Bidirectional(L.GRU(8, dropout=0.1))(L.LayerNorm()(h)))
    return fe.Model([ids], out, seed=3)


def _shorter(model, build, length):
    """``build``'s model of ``length`` positions with ``model``'s weights (the positions'
    table cut to its first ``length`` rows)."""
    short = build(length)
    short.set_weights([w[:length] if name.endswith("/table") and "position" in name else w
                       for name, w in zip([v.name for v in model.weights],
                                          model.get_weights())])
    return short


@pytest.mark.parametrize("build", [_sequential, _functional], ids=["sequential", "functional"])
def test_padding_changes_no_prediction(backend, build, tmp_path):
    """A post-padded example predicts what the unpadded sequence predicts on a model of its
    own length with the same weights (dropout layers on: the inference graph reads the mask
    too), and so does the saved and loaded model; the same weights without mask_zero do not
    (the padding counts)."""
    rng = np.random.default_rng(14)
    model = build(T)
    model.compile(backend=backend)
    tokens = _post_padded(rng)
    got = model.predict(tokens)
    for i, n in enumerate(LENGTHS):
        short = _shorter(model, build, n)
        short.compile(backend=backend)
        np.testing.assert_allclose(got[i], short.predict(tokens[i:i + 1, :n])[0], rtol=1e-5,
                                   atol=1e-6, err_msg=f"example {i} of length {n}")
    model.save(tmp_path / "m.npz")
    loaded = fe.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(tokens), got)
    unmasked = build(T, mask_zero=False)
    unmasked.set_weights(model.get_weights())
    assert not np.allclose(unmasked.predict(tokens)[0], got[0], rtol=1e-3, atol=1e-4)


def test_a_masked_transformer_trains(backend):
    """Is token 1 among a sequence's own tokens? Sequences of 2-12 tokens, padded to 12 with
    0, through fit: the loss falls and the held-out accuracy is far above the 50% base
    rate."""
    rng = np.random.default_rng(15)
    n, length = 768, 12
    lengths = rng.integers(2, length + 1, n)
    tokens = rng.integers(2, VOCAB, (n, length))
    y = rng.integers(0, 2, n)
    where = (rng.random(n) * lengths).astype(int)
    tokens[np.arange(n)[y == 1], where[y == 1]] = 1
    tokens = np.where(np.arange(length) < lengths[:, None], tokens, 0)
    model = fe.Sequential([L.Embedding(VOCAB, 16, mask_zero=True),
                           L.TransformerEncoder(2, 32),
                           L.GlobalAvgPool1D(data_format="channels_last"), L.Dense(2)],
                          input_shape=(length,), dtype="int64", seed=0)
    model.compile(optimizer=fe.optimizers.Adam(lr=3e-3), metrics=["accuracy"],
                  backend=backend)
    history = model.fit(tokens[:640], y[:640], batch_size=32, epochs=12, progress=False,
                        verbose=False).history
    # (measured: 0.567 -> 0.001, held-out accuracy 1.0 on both backends)
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    assert model.evaluate(tokens[640:], y[640:])["accuracy"] > 0.95


def test_a_spec_file_builds_a_masked_transformer(tmp_path):
    """mask_zero in a spec file: the model predicts for padded sequences what the unpadded
    ones give; a layer that cannot take the mask is an error at its line."""
    spec = tmp_path / "text.yaml"
    spec.write_text(f"""
model:
  input_shape: [{T}]
  dtype: int64
  seed: 3
  layers:
    - {{type: Embedding, n: {VOCAB}, dim: 16, mask_zero: true}}
    - {{type: PositionEmbedding}}
    - {{type: TransformerEncoder, num_heads: 2, feedforward: 32, dropout: 0.1, causal: true}}
    - {{type: TransformerEncoder, num_heads: 2, feedforward: 32, dropout: 0.1, norm_first: true}}
    - {{type: Dropout, rate: 0.1}}
    - {{type: LayerNorm}}
    - {{type: Dense, units: 16, activation: relu}}
    - {{type: GlobalAvgPool1D, data_format: channels_last}}
    - {{type: Dense, units: 3}}
""")
    model, _ = fe.load_spec(spec)
    rng = np.random.default_rng(16)
    model.set_weights([rng.normal(scale=0.3, size=w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    tokens = _post_padded(rng)
    got = model.predict(tokens)
    for i, n in enumerate(LENGTHS):
        short = _shorter(model, _sequential, n)
        np.testing.assert_allclose(got[i], short.predict(tokens[i:i + 1, :n])[0], rtol=1e-5,
                                   atol=1e-6)
    spec.write_text(spec.read_text().replace("{type: Dropout, rate: 0.1}", "{type: Flatten}"))
    with pytest.raises(SpecError, match=r"text.yaml:11: model.layers\[4\].*Flatten cannot "
                                           r"take a padding mask"):
        fe.load_spec(spec)


def test_the_example_spec_trains_on_padded_text(tmp_path, capsys):
    """examples/text_transformer.yaml on an npz of padded ids (does word 1 occur among a
    text's 4-64 words?) through `symgraph train`: it learns, and the model file it writes
    keeps the mask (mask_zero, which the other tests show makes padding irrelevant)."""
    import shutil
    from pathlib import Path

    from frontends.cli import main

    root = Path(__file__).resolve().parents[2] / "examples"
    spec = tmp_path / "text_transformer.yaml"
    shutil.copy(root / "text_transformer.yaml", spec)
    rng = np.random.default_rng(18)
    n, length = 800, 64
    lengths = rng.integers(4, length + 1, n)
    ids = rng.integers(2, 10001, (n, length))
    y = rng.integers(0, 2, n)
    ids[np.arange(n)[y == 1], (rng.random(n) * lengths).astype(int)[y == 1]] = 1
    ids = np.where(np.arange(length) < lengths[:, None], ids, 0)
    np.savez(tmp_path / "text.npz", x=ids, y=y)
    assert main(["train", str(spec), "--epochs", "2", "--out", str(tmp_path / "run"),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    loaded = fe.load_model(tmp_path / "run" / "model.npz")
    assert loaded.layers[0].mask_zero
    assert loaded.evaluate(ids, y)["accuracy"] > 0.8, out  # (0.925 measured; half are 1)


def test_layers_that_cannot_take_a_mask_name_themselves():
    def masked():
        return L.Embedding(VOCAB, 8, mask_zero=True)(fe.Input((T,), "int64"))

    refused = [L.Flatten(name="flat"), L.Conv1D(4, 3, name="conv"),
               L.GlobalAvgPool1D(name="pool"), L.LayerNorm(dims=2, name="norm"),
               L.Softmax(axis=1, name="soft"), L.BatchNorm(axis=-1, name="bn"),
               L.Reshape((48,), name="reshape"), L.Permute((2, 1), name="perm")]
    for layer in refused:
        with pytest.raises(ValueError, match=rf"layer {layer.name}: {layer.kind} cannot take "
                                             r"a padding mask.*mask_zero=True"):
            layer(masked())
        assert not layer.weights  # refused before building
    with pytest.raises(ValueError, match="layer cat: Concatenate cannot take a padding mask"):
        L.Concatenate(axis=1, name="cat")([masked(), masked()])
    both = L.Concatenate()([masked(), masked()])  # the features of each position: kept
    assert both.sequence_mask is not None
    single = fe.Input((1,), "int64")[:, 0]  # one id per example: no positions
    with pytest.raises(ValueError, match=r"layer e: mask_zero marks the padding positions of "
                                         r"sequences of ids \(batch, length\)"):
        L.Embedding(VOCAB, 8, mask_zero=True, name="e")(single)
    with pytest.raises(TypeError, match="Embedding: mask_zero must be True or False"):
        L.Embedding(VOCAB, 8, mask_zero=1)
    config = L.Embedding(VOCAB, 8, mask_zero=True).get_config()
    assert config["mask_zero"] is True
    assert L.Embedding(**{k: v for k, v in config.items() if k != "type"}).mask_zero
