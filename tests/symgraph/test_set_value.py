"""set_value refuses what the variable cannot hold, as a function's input check does, and
leaves the old value in place."""

import numpy as np
import pytest

import symgraph as sg


@pytest.mark.parametrize("dtype, value", [("int32", 2**40), ("int32", -2**31 - 1),
                                          ("int16", 40000), ("int8", -129)])
def test_an_integer_that_would_wrap_is_refused_and_the_value_kept(dtype, value):
    # int64 -> int32 is a same_kind cast, which numpy wraps: 2**40 was stored as 0
    v = sg.shared(np.array([1, 2], dtype), name="ids")
    with pytest.raises(ValueError, match=rf"shared variable 'ids' is {dtype}; its int64 "
                                         rf"value {value} does not fit"):
        v.set_value(np.array([0, value]))
    np.testing.assert_array_equal(v.get_value(), np.array([1, 2], dtype))
    assert v.get_value().dtype == dtype


def test_integers_that_fit_a_narrower_variable_are_stored():
    v = sg.shared(np.array([1, 2], "int32"), name="ids")
    v.set_value(np.array([-2**31, 2**31 - 1]))  # int64 values at int32's limits
    np.testing.assert_array_equal(v.get_value(), [-2**31, 2**31 - 1])


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_an_input_and_set_value_refuse_the_same_value_alike(backend):
    i = sg.tensor("i", (2,), dtype="int32")
    v = sg.shared(np.zeros(2, "int32"), name="v")
    f = sg.function([i], i.sum(), updates={v: v + i}, backend=backend)
    big = np.array([0, 2**40])
    with pytest.raises(ValueError, match=r"input 'i' is int32; its int64 value 1099511627776 "
                                         r"does not fit"):
        f(big)
    with pytest.raises(ValueError, match=r"shared variable 'v' is int32; its int64 value "
                                         r"1099511627776 does not fit"):
        v.set_value(big)
    np.testing.assert_array_equal(v.get_value(), [0, 0])
