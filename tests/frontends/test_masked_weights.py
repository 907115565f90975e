"""Padding masks and sample weights together: a tagger (Embedding(mask_zero) ->
TransformerEncoder -> Dense per position) under cross_entropy's ignore_index, with
fractional per-example and temporal weights, against numpy's closed forms."""

import numpy as np
import pytest

import frontends as fe

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
