"""Padding masks and sample weights together: a tagger (Embedding(mask_zero) ->
TransformerEncoder -> Dense per position) under cross_entropy's ignore_index, with
fractional per-example and temporal weights, against numpy's closed forms."""

import numpy as np
import pytest

import frontends as fe
from frontends.errors import UserInputError

L = fe.layers
N, T, VOCAB, CLASSES, IGNORE = 13, 7, 12, 3, -100


def _tagged(seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, N)
    lengths[3] = 0  # an example of padding only
    ids = np.where(np.arange(T) < lengths[:, None], rng.integers(1, VOCAB, (N, T)), 0)
    y = np.where(ids == 0, IGNORE, rng.integers(0, CLASSES, (N, T)))
    return rng, ids, y


def _tagger(backend):
    model = fe.Sequential([L.Embedding(VOCAB, 8, mask_zero=True), L.TransformerEncoder(2, 16),
                           L.Dense(CLASSES)], input_shape=(T,), dtype="int64", seed=0)
    model.compile(loss=fe.losses.CrossEntropy(ignore_index=IGNORE),
                  optimizer=fe.optimizers.SGD(0.1), weighted_metrics=["accuracy"],
                  backend=backend)
    return model


@pytest.mark.parametrize("temporal", [False, True])
def test_tagger_weighted_accuracy_takes_fractional_weights(backend, temporal):
    """A weighted accuracy per position is sum(w hit) / sum(w) over the labels kept, at any
    batch size: the weights were cast to the labels' int64 (0.7 read as 0), which gave 3/7
    for 0.4295 and NaN for batches whose weights were all below 1."""
    rng, ids, y = _tagged()
    model = _tagger(backend)
    weights = rng.uniform(0.0, 2.0, (N, T) if temporal else N)
    kept = y != IGNORE
    hits = (model.predict(ids).argmax(-1) == y) & kept
    spread = weights if temporal else weights[:, None]
    want = (spread * hits).sum() / (spread * kept).sum()
    for batch_size in (1, 4, N):
        got = model.evaluate(ids, y, batch_size=batch_size, sample_weight=weights)
        np.testing.assert_allclose(got["accuracy"], want, rtol=1e-5, err_msg=str(batch_size))


def test_string_weights_are_named_as_strings():
    """sample_weight="balanced" (scikit-learn's spelling) said "got str256", numpy's dtype
    name; the message names the string."""
    _, ids, y = _tagged()
    model = _tagger("numpy")
    before = model.get_weights()
    with pytest.raises(TypeError, match=r"sample_weight must be numbers.*got strings "
                                        r"\(str\d+: 'balanced'\)"):
        model.fit(ids, y, sample_weight="balanced", progress=False, verbose=False)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def _float_padded(pad):
    rng, ids, _ = _tagged()
    x = rng.normal(size=(N, T, 3))
    x[ids == 0] = pad
    return rng, x, rng.integers(0, 2, N)


@pytest.mark.parametrize("first", ["Masking", "LSTM"])
def test_inf_pads_train_as_zero_pads(backend, first):
    """Masking(np.inf) (or LSTM(mask_value=np.inf)) on inf-padded steps: fit, evaluate and
    predict refused the inf the layer exists to take ("x holds inf"). Now they give what
    mask_value=0 gives on zero-padded steps, weighted fit included; a NaN or an inf in a
    step of data is still refused."""
    models = []
    for pad in (np.inf, 0.0):
        layers = ([L.Masking(pad), L.LSTM(4)] if first == "Masking"
                  else [L.LSTM(4, mask_value=pad)])
        model = fe.Sequential([*layers, L.Dense(2)], input_shape=(T, 3), dtype="float64",
                              seed=0)
        model.compile(optimizer=fe.optimizers.SGD(0.1), weighted_metrics=["accuracy"],
                      backend=backend)
        rng, x, y = _float_padded(pad)
        weights = rng.uniform(0.0, 2.0, N)
        history = model.fit(x, y, sample_weight=weights, batch_size=4, epochs=2,
                            validation_data=(x, y, weights), progress=False,
                            verbose=False).history
        models.append((model, x, y, history))
    (inf_model, x_inf, y, h_inf), (zero_model, x_zero, _, h_zero) = models
    for key in ("loss", "val_loss", "accuracy"):
        np.testing.assert_allclose(h_inf[key], h_zero[key], rtol=1e-12, err_msg=key)
    np.testing.assert_allclose(inf_model.predict(x_inf), zero_model.predict(x_zero),
                               rtol=1e-12)
    for bad in (np.nan, np.inf):
        x = x_inf.copy()
        x[0, 0, 0] = bad  # (one feature of a step of data)
        with pytest.raises(UserInputError, match="holds (NaN|inf) at row 0, index"):
            inf_model.evaluate(x, y)


def test_inf_pads_still_refused_where_a_layer_would_compute_with_them():
    """An input read by a layer without the inf mask_value (a Dense beside the Masking)
    keeps the check: the inf would reach its arithmetic."""
    x = fe.Input((T, 3))
    masked = L.GlobalAvgPool1D(data_format="channels_last")(L.Masking(np.inf)(x))
    direct = L.GlobalAvgPool1D(data_format="channels_last")(L.Dense(3)(x))
    model = fe.Model(x, L.Dense(2)(L.Concatenate()([masked, direct])))
    model.compile(optimizer="sgd")
    _, x_inf, y = _float_padded(np.inf)
    with pytest.raises(UserInputError, match="holds inf"):
        model.predict(x_inf)
