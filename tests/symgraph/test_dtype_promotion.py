"""Dtypes of mixed operands and of Python numbers, against numpy 2 itself (NEP 50: Python
numbers are weak), on both backends. Cases a review of 18,332 generated ones found
refused although numpy defines them."""

import numpy as np
import pytest

import symgraph as sg
from symgraph.graph import dtype_name

M = np.array([True, False, True])
X = np.array([0.5, 2.0, -1.0], np.float32)
I8 = np.array([100, -7, -128], np.int8)
U8 = np.array([0, 200, 255], np.uint8)


def _check(backend, build, ref):
    m, x = sg.tensor("m", (3,), "bool"), sg.tensor("x", (3,), "float32")
    i8, u8 = sg.tensor("i8", (3,), "int8"), sg.tensor("u8", (3,), "uint8")
    out = build(m, x, i8, u8)
    expected = ref(M, X, I8, U8)
    value = sg.function([m, x, i8, u8], out, backend=backend)(M, X, I8, U8)
    assert out.dtype == expected.dtype and value.dtype == expected.dtype
    np.testing.assert_allclose(value, expected, rtol=1e-15)


@pytest.mark.parametrize("expr", [
    lambda m, x, i8, u8: 1 - m,
    lambda m, x, i8, u8: x - m,
    lambda m, x, i8, u8: m - x,
    lambda m, x, i8, u8: i8 - m,
    lambda m, x, i8, u8: m - 1.5,
], ids=["1-m", "x-m", "m-x", "i8-m", "m-1.5"])
def test_subtracting_a_bool_from_a_number_or_a_number_from_a_bool(expr, backend):
    """Any bool operand made sub refuse ('not defined for booleans (as in numpy)'); numpy
    refuses only a bool result: bool - bool."""
    _check(backend, expr, expr)


def test_bool_minus_bool_and_negating_a_bool_stay_refused():
    m = sg.tensor("m", (3,), "bool")
    for build in (lambda: m - m, lambda: -m, lambda: sg.sign(m), lambda: m - True):
        with pytest.raises(TypeError, match="not defined for booleans"):
            build()


@pytest.mark.parametrize("build, ref", [
    (lambda m, x, i8, u8: u8 > -1, lambda m, x, i8, u8: u8 > -1),
    (lambda m, x, i8, u8: i8 == 300, lambda m, x, i8, u8: i8 == 300),
    (lambda m, x, i8, u8: i8 < -129, lambda m, x, i8, u8: i8 < -129),
    (lambda m, x, i8, u8: u8 >= 256, lambda m, x, i8, u8: u8 >= 256),
    (lambda m, x, i8, u8: i8 / 300, lambda m, x, i8, u8: i8 / 300),
    (lambda m, x, i8, u8: sg.clip(i8, 0, 300), lambda m, x, i8, u8: np.clip(i8, 0, 300)),
    (lambda m, x, i8, u8: sg.clip(u8, -1, 100), lambda m, x, i8, u8: np.clip(u8, -1, 100)),
], ids=["u8>-1", "i8==300", "i8<-129", "u8>=256", "i8/300", "clip-i8", "clip-u8"])
def test_a_python_int_out_of_a_narrow_dtype_range_where_numpy_takes_it(build, ref, backend):
    """Comparisons, true division and clip bounds with an int out of int8/uint8's range
    raised OverflowError; numpy 2 compares the values."""
    _check(backend, build, ref)


def test_arithmetic_with_an_int_out_of_range_still_overflows_as_in_numpy():
    i8, u8 = sg.tensor("i8", (3,), "int8"), sg.tensor("u8", (3,), "uint8")
    for build in (lambda: i8 + 300, lambda: u8 * -1, lambda: sg.where(u8 > 0, u8, -1)):
        with pytest.raises(OverflowError, match="out of bounds"):
            build()


def test_python_ints_take_an_integer_inputs_dtype_when_they_fit(backend):
    """``f(5)`` or ``f([1, 2])`` for a uint8 input was refused as an int64 array that does
    not cast same_kind; an empty list (numpy: float64) was refused for an integer input."""
    u = sg.tensor("u", (None,), "uint8")
    s = sg.tensor("s", (), "uint8")
    f = sg.function([u], u * 2, backend=backend)
    g = sg.function([s], s + 1, backend=backend)
    np.testing.assert_array_equal(f([1, 2, 100]), np.array([2, 4, 200], np.uint8))
    assert f([]).dtype == np.uint8 and f([]).shape == (0,)
    assert g(5) == 6 and np.asarray(g(5)).dtype == np.uint8
    for bad in ([1, -1], [300], np.array([1, 2]), [1.5]):  # arrays keep same_kind
        with pytest.raises(TypeError, match="input 'u' is uint8"):
            f(bad)


def test_and_or_xor_invert_on_masks_as_numpy(backend):
    """``(x > 0) & (x < 1)`` raised Python's TypeError (no ``__and__``): numpy's &, |, ^ and
    ~ on bool arrays are the logical ops."""
    x, m = sg.tensor("x", (5,)), sg.tensor("m", (5,), "bool")
    xv = np.array([-1.0, 0.2, 0.5, 2.0, 0.9])
    mv = np.array([True, False, True, False, False])

    def build(x, m):
        return [(x > 0) & (x < 1), m | ~m, m ^ (x > 0), True & m, m | False, ~(x > 0.5)]
    outs = build(x, m)
    values = sg.function([x, m], outs, backend=backend)(xv, mv)
    for out, value, expected in zip(outs, values, build(xv, mv)):
        assert out.dtype == value.dtype == expected.dtype == np.bool_
        np.testing.assert_array_equal(value, expected)


def test_bitwise_operators_on_numbers_are_refused_clearly():
    i, x = sg.tensor("i", (5,), "int32"), sg.tensor("x", (5,))
    for build in (lambda: i & i, lambda: ~i, lambda: (x > 0) & 1, lambda: x | (x > 0)):
        with pytest.raises(TypeError, match="defined for bool tensors"):
            build()


def test_einsum_with_a_mask_casts_it_as_numpy(backend):
    """A bool operand reached matmul, which refused it naming matmul; numpy reads it as 0 and
    1 in the other operand's dtype."""
    a, m = sg.tensor("a", (3, 4), "float32"), sg.tensor("m", (3, 4), "bool")
    av = np.arange(12, dtype=np.float32).reshape(3, 4)
    mv = av % 3 == 0
    specs = ["ij,ij->", "ij,kj->ik"]
    f = sg.function([a, m], [sg.einsum(s, a, m) for s in specs], backend=backend)
    for value, spec in zip(f(av, mv), specs):
        expected = np.einsum(spec, av, mv)
        assert value.dtype == expected.dtype
        np.testing.assert_allclose(value, expected)
    with pytest.raises(TypeError, match="einsum: only boolean operands"):
        sg.einsum("ij,ij->", m, m)


@pytest.mark.parametrize("first_record", [True, False])
def test_dtype_name_is_numpys_name_in_any_order(first_record):
    """``graph.dtype_name`` memoises ``dtype.name``: dtypes that compare equal under different
    names (a record and a void of one layout) each keep their own, in either order."""
    record = np.dtype((np.record, [("a", "f4")]))
    void = np.dtype([("a", "f4")])
    assert record == void and record.name != void.name
    dtypes = [record, void] if first_record else [void, record]
    dtypes += [np.dtype(n) for n in ("float32", "float64", "int64", "int8", "uint8", "bool")]
    dtypes += [np.dtype(">f4"), np.dtype("f4", metadata={"unit": "m"}), np.dtype("U3")]
    for _ in range(2):  # the second pass reads the memo
        assert [dtype_name(d) for d in dtypes] == [d.name for d in dtypes]


I64 = np.array([2**63 - 1, -2**63, 5], np.int64)


@pytest.mark.parametrize("build", [
    lambda v: v < 2**63, lambda v: v <= 2**70, lambda v: v > -2**63 - 1,
    lambda v: v >= 2**64, lambda v: v / 2**70, lambda v: v / -2**64,
], ids=["<2**63", "<=2**70", ">-2**63-1", ">=2**64", "/2**70", "/-2**64"])
@pytest.mark.parametrize("dtype", ["int64", "int8"])
def test_a_python_int_beyond_int64_in_a_comparison_or_true_division(build, dtype, backend):
    """numpy 2 compares with and divides by a Python int of any size (``x < 2**63`` is
    all True); building the int64 constant raised a raw OverflowError ("Python int too
    large to convert to C long")."""
    values = I64.astype(dtype)
    v = sg.tensor("v", (3,), dtype)
    expected = build(values)
    out = build(v)
    got = sg.function([v], out, backend=backend)(values)
    assert out.dtype == expected.dtype and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name, value", [("equal", 2**64), ("not_equal", -2**70),
                                         ("equal", 2**63), ("not_equal", 2**63)])
def test_equality_with_a_python_int_beyond_int64(name, value, backend):
    v = sg.tensor("v", (3,), "int64")
    expected = getattr(np, name)(I64, value)
    out = getattr(sg, name)(v, value)
    got = sg.function([v], out, backend=backend)(I64)
    assert out.dtype == expected.dtype and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_a_python_int_beyond_int64_still_overflows_where_numpy_does():
    v = sg.tensor("v", (3,), "int64")
    for build in (lambda: v + 2**64, lambda: v * -2**70, lambda: v ** 2**70):
        with pytest.raises(OverflowError):
            build()


@pytest.mark.parametrize("lo, hi", [(None, 1.0), (0, None), (None, None), (None, 300),
                                    (-5, None)])
@pytest.mark.parametrize("values", [X, I8, U8], ids=["float32", "int8", "uint8"])
def test_clip_with_one_bound_none_as_numpy(values, lo, hi, backend):
    """``np.clip(x, None, hi)`` leaves that side unbounded; ``sg.clip`` raised "dtype object
    is not supported"."""
    v = sg.tensor("v", (3,), values.dtype.name)
    data = values.copy()
    if values.dtype.kind == "f":
        data[1] = np.nan
    expected = np.clip(data, lo, hi)
    out = sg.clip(v, lo, hi)
    got = sg.function([v], out, backend=backend)(data)
    assert out.dtype == expected.dtype and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)



@pytest.mark.parametrize("lo", [1000.5, np.int16(300), np.float32(200.0)],
                         ids=["float", "int16", "float32"])
def test_clip_of_int8_with_no_upper_bound_keeps_a_lower_bound_beyond_int8(lo, backend):
    """The open side's limit is the result's dtype's, not x's: with x's (int8: 127) a lower
    bound above it was capped there: np.clip(int8, 1000.5, None) is 1000.5, sg gave 127."""
    v = sg.tensor("v", (3,), "int8")
    expected = np.clip(I8, lo, None)
    got = sg.function([v], sg.clip(v, lo, None), backend=backend)(I8)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_clip_with_no_upper_bound_and_a_wider_bound_variable(backend):
    v, lo = sg.tensor("v", (3,), "int8"), sg.tensor("lo", (3,), "int16")
    bounds = np.array([300, -300, 200], np.int16)
    got = sg.function([v, lo], sg.clip(v, lo, None), backend=backend)(I8, bounds)
    np.testing.assert_array_equal(got, np.clip(I8, bounds, None))  # [300, I8[1], 200]
    b = sg.tensor("b", (3,), "bool")
    flags = np.array([True, False, True])
    np.testing.assert_array_equal(  # np.clip(bool, 2, None): [2, 2, 2], not True's 1
        sg.function([b], sg.clip(b, 2, None), backend=backend)(flags), np.clip(flags, 2, None))

def test_square_of_a_bool_is_int8_as_numpy(backend):
    """``np.square`` of a bool is int8 (numpy has no bool square loop); ``sg.square`` kept
    bool."""
    m = sg.tensor("m", (3,), "bool")
    out = sg.square(m) + sg.square(m)
    expected = np.square(M) + np.square(M)
    got = sg.function([m], out, backend=backend)(M)
    assert out.dtype == expected.dtype and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
