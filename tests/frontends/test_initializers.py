"""``frontends.initializers``: sample statistics against the closed forms (bounds, standard
deviations, the two-sigma truncation), ``get`` from names, numbers and config dicts, and the
reproducibility contract of a model's weights (one stream per layer from the model seed)."""

import math

import numpy as np
import pytest

import frontends as fe
from frontends import initializers as inits
from frontends import layers as L

FAN_IN, FAN_OUT = 300, 200
SHAPE = (FAN_IN, FAN_OUT)  # 60000 draws: sample statistics to well under 1%
N = FAN_IN * FAN_OUT
TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


def draw(init, shape=SHAPE, fan_in=FAN_IN, fan_out=FAN_OUT, seed=0, dtype="float64"):
    return inits.get(init)(shape, fan_in, fan_out, np.random.default_rng(seed), dtype)


def assert_uniform(w, bound):
    """``w`` looks like U[-bound, bound]: inside, reaching both ends, mean 0, variance
    bound^2 / 3 (tolerances are 5 standard errors)."""
    n = w.size
    assert np.abs(w).max() <= bound
    assert w.max() > bound * (1 - 20 / n) and w.min() < -bound * (1 - 20 / n)
    assert abs(w.mean()) < 5 * bound / math.sqrt(3 * n)
    var = bound ** 2 / 3
    assert abs(np.mean(w ** 2) - var) < 5 * math.sqrt(4 * bound ** 4 / 45 / n)


def assert_truncated_normal(w, std):
    """``w`` is a normal truncated at two of its own sigmas, rescaled to std ``std``."""
    sigma = std / TRUNC_STD  # the untruncated normal's std
    n = w.size
    assert np.abs(w).max() <= 2 * sigma
    assert np.abs(w).max() > 1.98 * sigma  # truncated at two sigma, not before
    assert abs(w.mean()) < 5 * std / math.sqrt(n)
    # the sample std within 5 standard errors (kurtosis of the truncated normal < 3)
    assert abs(w.std() - std) < 5 * std / math.sqrt(2 * n)
    # shape: P(|z| < 1 | |z| < 2) = (2 Phi(1) - 1) / (2 Phi(2) - 1) = 0.7152
    inside = (2 * _phi(1) - 1) / (2 * _phi(2) - 1)
    frac = np.mean(np.abs(w) < sigma)
    assert abs(frac - inside) < 5 * math.sqrt(inside * (1 - inside) / n)


def _phi(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


# --------------------------------------------------------------------------- statistics


def test_glorot_uniform_bound():
    assert_uniform(draw("glorot_uniform"), math.sqrt(6 / (FAN_IN + FAN_OUT)))


def test_he_uniform_bound():
    assert_uniform(draw("he_uniform"), math.sqrt(6 / FAN_IN))


def test_uniform_a():
    assert_uniform(draw({"type": "uniform", "a": 0.3}), 0.3)
    assert_uniform(draw("uniform"), 0.05)  # Keras's default


def test_he_normal_std_and_two_sigma_truncation():
    std = math.sqrt(2 / FAN_IN)
    w = draw("he_normal")
    assert np.abs(w).max() <= 2 * std / TRUNC_STD
    assert_truncated_normal(w, std)


def test_glorot_normal_std_and_truncation():
    assert_truncated_normal(draw("glorot_normal"), math.sqrt(2 / (FAN_IN + FAN_OUT)))


def test_normal_std_is_not_truncated():
    w = draw(inits.Normal(0.2))
    n = w.size
    assert abs(w.std() - 0.2) < 5 * 0.2 / math.sqrt(2 * n)
    assert abs(w.mean()) < 5 * 0.2 / math.sqrt(n)
    assert np.abs(w).max() > 3 * 0.2  # ~160 of 60000 draws lie beyond three sigma
    assert abs(draw("normal").std() - 0.05) < 0.001  # Keras's default


def test_constants():
    np.testing.assert_array_equal(draw("zeros", (3, 4)), np.zeros((3, 4)))
    np.testing.assert_array_equal(draw("ones", (5,)), np.ones(5))
    np.testing.assert_array_equal(draw(inits.Constant(-2.5), (2, 2)), np.full((2, 2), -2.5))
    np.testing.assert_array_equal(draw(0.1, (3,)), np.full(3, 0.1))
    np.testing.assert_array_equal(draw(3, (2,)), np.full(2, 3.0))
    np.testing.assert_array_equal(draw(np.float32(0.5), (2,)), np.full(2, 0.5))


def test_dtype_is_the_requested_one_and_float32_rounds_the_float64_draw():
    for name in ("glorot_uniform", "he_normal", "normal", "uniform", "zeros"):
        w64 = draw(name, (20, 30), seed=4, dtype="float64")
        w32 = draw(name, (20, 30), seed=4, dtype="float32")
        assert w64.dtype == np.float64 and w32.dtype == np.float32
        np.testing.assert_array_equal(w32, w64.astype(np.float32))


def test_fans_below_one_do_not_divide_by_zero():
    w = draw("he_normal", (3,), fan_in=0, fan_out=0)
    assert np.all(np.isfinite(w)) and np.abs(w).max() <= 2 * math.sqrt(2) / TRUNC_STD


# --------------------------------------------------------------------------- get


@pytest.mark.parametrize("name, cls", [
    ("glorot_uniform", inits.GlorotUniform), ("glorot_normal", inits.GlorotNormal),
    ("he_normal", inits.HeNormal), ("he_uniform", inits.HeUniform), ("normal", inits.Normal),
    ("uniform", inits.Uniform), ("zeros", inits.Zeros), ("ones", inits.Ones),
    ("constant", inits.Constant)])
def test_get_by_name_and_config_round_trip(name, cls):
    init = inits.get(name)
    assert type(init) is cls
    again = inits.get(init.get_config())
    assert type(again) is cls and again.get_config() == init.get_config()


def test_get_config_dicts_numbers_and_instances():
    normal = inits.get({"type": "normal", "std": 0.01})
    assert isinstance(normal, inits.Normal) and normal.std == 0.01
    assert normal.get_config() == {"type": "normal", "std": 0.01}
    constant = inits.get(0.1)
    assert isinstance(constant, inits.Constant) and constant.value == 0.1
    assert inits.get(np.float32(0.25)).value == 0.25 and inits.get(np.int64(2)).value == 2.0
    assert inits.get(normal) is normal
    assert repr(normal) == "Normal(std=0.01)"


@pytest.mark.parametrize("identifier, error, match", [
    ("he_uniformm", ValueError,
     r"unknown initialiser 'he_uniformm' \(did you mean 'he_uniform'\?\); valid: .*he_uniform"),
    ("zzz", ValueError, r"unknown initialiser 'zzz'; valid"),  # no near miss, no hint
    ({"type": "nope"}, ValueError, "unknown initialiser 'nope'"),
    ({"std": 0.1}, ValueError, "no 'type' key"),
    ({"type": "normal", "sd": 0.1}, ValueError,
     r"initialiser Normal: unknown argument\(s\) \['sd'\] \(did you mean 'std'\?\); "
     r"valid: \['std'\]"),
    ({"type": "zeros", "value": 1}, ValueError,
     r"initialiser Zeros: unknown argument\(s\) \['value'\]; valid: \[\]"),
    ({"type": "normal", "std": 0.0}, ValueError, "normal: std must be positive"),
    ({"type": "uniform", "a": -1}, ValueError, "uniform: a must be positive"),
    ({"type": "constant", "value": "x"}, ValueError, "constant: value must be a finite number"),
    ({"type": "constant", "value": float("nan")}, ValueError, "constant: value"),
    (True, TypeError, "not an initialiser"),
    ([0.1], TypeError, "not an initialiser"),
    (None, TypeError, "not an initialiser"),
])
def test_get_errors(identifier, error, match):
    with pytest.raises(error, match=match):
        inits.get(identifier)


@pytest.mark.parametrize("make, match", [
    (lambda: L.Dense(3, init="glorot"), "Dense: init: unknown initialiser 'glorot'"),
    (lambda: L.Dense(3, bias_init={"type": "constant", "vale": 1}),
     r"Dense: bias_init: initialiser Constant: unknown argument\(s\) \['vale'\]"),
    (lambda: L.Conv2D(2, 3, init="he_normall"),
     "Conv2D: init: unknown initialiser 'he_normall' \\(did you mean 'he_normal'"),
    (lambda: L.Conv1D(2, 3, bias_init="zero"), "Conv1D: bias_init: .*did you mean 'zeros'"),
    (lambda: L.LSTM(4, recurrent_init="orthogonl"), "LSTM: recurrent_init: .*'orthogonal'"),
    (lambda: L.GRU(4, init="nope"), "GRU: init: unknown initialiser 'nope'"),
    (lambda: L.Embedding(5, 3, init="unifrom"), "Embedding: init: .*did you mean 'uniform'"),
    (lambda: L.Maxout(3, init="glorot"), "Maxout: init: unknown initialiser"),
    (lambda: L.RBF(3, init="glorot"), "RBF: init: unknown initialiser"),
])
def test_a_layer_with_a_bad_initialiser_fails_where_it_is_made_naming_it(make, match):
    # refused by the constructor, before any model builds the layer
    with pytest.raises(ValueError, match=match):
        make()


def test_a_layer_keeps_its_initialiser_as_given_for_its_config():
    layer = L.Dense(3, init={"type": "normal", "std": 0.5}, bias_init=0.1)
    assert layer.get_config()["init"] == {"type": "normal", "std": 0.5}
    assert layer.get_config()["bias_init"] == 0.1


# --------------------------------------------------------------------------- models


def _mlp(seed, dtype="float32", extra=()):
    return fe.Sequential([L.Dense(8, activation="relu", bias_init=0.1), L.Dropout(0.2),
                          L.Dense(5, init="he_normal"), L.PReLU(), L.BatchNorm(),
                          L.Dense(3, init={"type": "normal", "std": 0.5}), *extra],
                         input_shape=(6,), dtype=dtype, seed=seed)


def test_same_seed_gives_bit_identical_weights_and_different_seeds_differ():
    a, b, c = _mlp(0), _mlp(0), _mlp(1)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert wa.dtype == np.float32
        np.testing.assert_array_equal(wa, wb)
    random = ["dense_1/W", "dense_2/W", "dense_3/W"]
    for var, wa, wc in zip(a.weights, a.get_weights(), c.get_weights()):
        if var.name in random:
            assert not np.any(wa == wc), var.name
        else:  # constants do not depend on the seed
            np.testing.assert_array_equal(wa, wc)


def test_each_layer_draws_from_the_model_seed_and_its_index():
    # the documented streams: np.random.default_rng([seed, layer index]) per layer
    model = _mlp(7)
    weights = {v.name: v.get_value() for v in model.weights}
    for index, (name, init, fans) in {0: ("dense_1/W", "glorot_uniform", (6, 8)),
                                      2: ("dense_2/W", "he_normal", (8, 5)),
                                      5: ("dense_3/W", inits.Normal(0.5), (5, 3))}.items():
        rng = np.random.default_rng([7, index])
        expected = inits.get(init)(fans, *fans, rng, "float32")
        np.testing.assert_array_equal(weights[name], expected, err_msg=name)
    np.testing.assert_array_equal(weights["dense_1/b"], np.full(8, np.float32(0.1)))
    np.testing.assert_array_equal(weights["p_re_lu_1/alpha"], np.full(5, np.float32(0.25)))
    np.testing.assert_array_equal(weights["batch_norm_1/gamma"], np.ones(5, np.float32))
    np.testing.assert_array_equal(weights["batch_norm_1/running_var"], np.ones(5, np.float32))


def test_float32_and_float64_models_draw_the_same_numbers():
    w32, w64 = _mlp(3, "float32").get_weights(), _mlp(3, "float64").get_weights()
    for a, b in zip(w32, w64):
        assert a.dtype == np.float32 and b.dtype == np.float64
        np.testing.assert_array_equal(a, b.astype(np.float32))


def test_adding_a_layer_at_the_end_keeps_the_earlier_weights():
    short, longer = _mlp(5), _mlp(5, extra=[L.Dense(2)])
    assert len(longer.weights) == len(short.weights) + 2
    for a, b in zip(short.get_weights(), longer.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_initialize_redraws_from_the_seed():
    model = _mlp(2)
    drawn = model.get_weights()
    model.set_weights([np.zeros_like(w) for w in drawn])
    model.initialize()
    for a, b in zip(drawn, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.initialize(9)
    for a, b in zip(_mlp(9).get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_layers_pass_their_fans_to_the_initialiser():
    # Dense: fan_in = inputs, fan_out = units; Maxout: fan_out = units (not units * pieces)
    model = fe.Sequential([L.Dense(400, init="glorot_uniform"),
                           L.Maxout(50, pieces=4, init="he_uniform"),
                           L.Maxout(30, pieces=5)],
                          input_shape=(100,), seed=0)
    dense, maxout, maxout2 = model.layers
    assert_uniform(dense.W.get_value().astype(np.float64), math.sqrt(6 / (100 + 400)))
    assert_uniform(maxout.W.get_value().astype(np.float64), math.sqrt(6 / 400))
    assert_uniform(maxout2.W.get_value().astype(np.float64), math.sqrt(6 / (50 + 30)))
