"""``frontends.data_checks``: the up-front checks name the user's row and column, and the
cheap path (one sum) neither misses a bad value nor cries wolf on large finite ones."""

import re

import numpy as np
import pytest

import frontends as fe
import symgraph as sg
from frontends import data_checks
from frontends.errors import UserInputError, UserInputTypeError


def test_large_finite_values_that_overflow_the_sum_are_not_an_error():
    big = np.full((4, 3), 3e38, "float32")  # the float32 sum overflows; every value is finite
    data_checks.check_finite("fit", "input 'x'", big)
    data_checks.check_finite("fit", "y", np.array([1, 2, 3]))  # integers: nothing to check


@pytest.mark.parametrize("index, value, where", [
    ((7,), np.nan, "NaN at row 7"),
    ((2, 1, 3, 0), -np.inf, "-inf at row 2, index (1, 3, 0)"),
])
def test_the_first_non_finite_value_is_named_with_how_many_more(index, value, where):
    array = np.zeros((10, 2, 4, 3) if len(index) == 4 else (10,), "float64")
    array[index] = value
    array[9] = np.inf
    with pytest.raises(UserInputError, match=rf"^fit: input 'x' holds {re.escape(where)} "
                                             r"\(and \d+ more non-finite values?\)"):
        data_checks.check_finite("fit", "input 'x'", array)


def test_input_checks_fixed_dims_rank_and_dtype():
    x = sg.tensor("x", ("batch", 2, 3), "float32")
    data_checks.check_input("fit", x, np.zeros((5, 2, 3), "float64"))  # same_kind cast: fine
    with pytest.raises(UserInputError, match=r"expects shape \(batch, 2, 3\), got \(5, 3, 2\)"):
        data_checks.check_input("fit", x, np.zeros((5, 3, 2)))
    with pytest.raises(UserInputTypeError, match="must be float32.*got complex128"):
        data_checks.check_input("fit", x, np.zeros((5, 2, 3), complex))
    ids = sg.tensor("ids", ("batch",), "int64")
    with pytest.raises(TypeError, match=r"got float64 \(whole numbers stored as floats\? "
                                        r"convert: \.astype\('int64'\)\)"):
        data_checks.check_input("fit", ids, np.array([1.0, 2.0]))


def test_a_dict_for_an_input_is_named_as_a_dict_not_a_shape():
    # np.asarray({...}) is a 0-d object array: "expects shape (batch, 8), got ()" blamed
    # the shape
    model = fe.Sequential([fe.layers.Dense(2)], input_shape=(8,))
    with pytest.raises(TypeError, match=r"takes an array of shape \(batch, 8\), got a "
                                        r"dict \(a model of several inputs"):
        data_checks.check_input("fit", model.inputs[0], np.asarray({"x": np.zeros((4, 8))}))
    # the model takes a dict keyed by its input names (test_dict_inputs.py), not any dict
    with pytest.raises(UserInputError, match="no entry for input 'x'.*keys 'images'"):
        model.predict({"images": np.zeros((4, 8))})
    assert model.predict({"x": np.zeros((4, 8))}).shape == (4, 2)


def test_a_finite_value_beyond_the_models_float32_range_is_named():
    """1e39 is finite in float64 but inf once cast to a float32 model's dtype: reported at
    its row and column like a NaN, before any step (fit then trained into NaN weights)."""
    x = np.zeros((6, 3))
    x[4, 1] = -1e39
    data_checks.check_finite("fit", "input 'x'", x)  # no model dtype: finite is fine
    data_checks.check_finite("fit", "input 'x'", x, "float64")
    with pytest.raises(UserInputError, match=r"^fit: input 'x' holds -1e\+39 at row 4, "
                                             r"column 1, beyond the range of the model's "
                                             r"float32"):
        data_checks.check_finite("fit", "input 'x'", x, "float32")
    import frontends as fe

    model = fe.Sequential([fe.layers.Dense(3)], input_shape=(3,), seed=0)
    model.compile(optimizer="sgd")
    before = model.get_weights()
    with pytest.raises(UserInputError, match="beyond the range"):
        model.fit(x, np.zeros(6, int), batch_size=2, progress=False, verbose=False)
    assert all((a == b).all() for a, b in zip(before, model.get_weights()))


def _binary_model():
    model = fe.Sequential([fe.layers.Dense(1)], input_shape=(3,), seed=0)
    model.compile(loss="binary_cross_entropy", optimizer="sgd", metrics=["binary_accuracy"])
    return model


@pytest.mark.parametrize("value", [2.0, -1.0])
def test_binary_cross_entropy_targets_outside_0_1_are_refused_before_training(value):
    """softplus(z) - y z has no lower bound for y outside [0, 1]: targets {0, 2} trained the
    reported loss from 1.4 down to -22 instead of failing."""
    model = _binary_model()
    X = np.ones((8, 3), np.float32)
    y = np.zeros((8, 1), np.float32)
    y[5, 0] = value
    before = model.get_weights()
    for call in (lambda: model.fit(X, y, epochs=1, progress=False, verbose=False),
                 lambda: model.evaluate(X, y)):
        with pytest.raises(fe.UserInputError, match=rf"y holds {value:g} at row 5, column 0, "
                           r"but binary_cross_entropy takes targets from 0 to 1"):
            call()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    y[5, 0] = 0.3  # soft targets stay allowed
    model.fit(X, y, epochs=1, progress=False, verbose=False)


def test_evaluate_names_a_nan_input_instead_of_reporting_a_nan_loss():
    model = _binary_model()
    X = np.ones((6, 3), np.float32)
    X[4, 2] = np.nan
    with pytest.raises(fe.UserInputError, match=r"evaluate: input .* holds NaN at row 4, "
                                               r"column 2"):
        model.evaluate(X, np.zeros((6, 1), np.float32))


@pytest.mark.parametrize("what", ["evaluate", "predict"])
def test_a_refused_evaluate_or_predict_does_not_say_nothing_was_trained(what):
    model = _binary_model()
    run = model.predict if what == "predict" else (
        lambda a: model.evaluate(a, np.zeros((6, 1), np.float32)))
    done = "evaluated" if what == "evaluate" else "predicted"
    X = np.ones((6, 3), np.float32)
    X[1, 0] = np.inf
    with pytest.raises(fe.UserInputError) as info:
        run(X)
    assert f"holds inf at row 1, column 0; nothing was {done}: remove or impute" in str(
        info.value)
    assert "trained" not in str(info.value)
    big = np.ones((6, 3))
    big[1, 0] = 1e39  # beyond the model's float32
    with pytest.raises(fe.UserInputError, match=f"nothing was {done}: rescale or clip"):
        run(big)


def test_a_refused_profile_says_nothing_was_profiled():
    """profile's targets out of range ended "nothing was trained" (the message's default)."""
    model = fe.Sequential([fe.layers.Dense(1)], input_shape=(3,), seed=0)
    model.compile(loss="binary_cross_entropy")
    X, y = np.zeros((4, 3), np.float32), np.full((4, 1), 2.0, np.float32)
    with pytest.raises(UserInputError, match=r"^profile: y holds 2 .*; nothing was profiled$"):
        model.profile(X, y)
