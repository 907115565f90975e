"""Casts between float and integer dtypes: the llvm lowering against numpy's ``astype``.

Oracle: numpy (and, for float -> uint8, torch, which agrees in range).  In range (after
truncation toward zero) every cast is exact on both backends.  Out of range, C leaves
float -> int undefined and numpy warns; the llvm backend reproduces what numpy does on x86-64
(``codegen.irgen.ScalarBuilder._float_to_int``), and the tests only ask that such casts run
and give an array of the right dtype.
"""

import warnings

import numpy as np
import pytest
import torch

import symgraph as sg

FLOATS = ["float32", "float64"]
#: every integer dtype symgraph supports (symgraph.graph.SUPPORTED_DTYPES); uint8 is the only
#: unsigned one
INTS = ["uint8", "int8", "int16", "int32", "int64"]


def _in_range(dtype: str) -> np.ndarray:
    """Values whose truncation fits ``dtype``, with the edges and fractions either side."""
    info = np.iinfo(dtype)
    lo, hi = float(max(info.min, -2.0 ** 40)), float(min(info.max, 2.0 ** 40))
    values = [0.0, 0.25, 0.999, 1.0, 1.5, 7.9, 126.9, 127.0, 127.5, 128.0, 200.7, 254.99,
              -0.25, -0.999, -1.0, -1.5, -127.5, -128.0, -128.9, 32767.5, -32768.9,
              2.0 ** 31 - 1, -(2.0 ** 31), 2.0 ** 33 + 0.5, -(2.0 ** 33) - 0.5,
              lo, hi, lo + 0.5, hi - 0.5]
    values = np.array(values)
    # truncation toward zero stays inside [min, max]
    return values[(np.trunc(values) >= info.min) & (np.trunc(values) <= info.max)]


def _cast(backend: str, values: np.ndarray, dtype: str) -> np.ndarray:
    x = sg.tensor("x", values.shape, dtype=values.dtype.name)
    return sg.function([x], sg.cast(x, dtype), backend=backend)(values)


def test_float_to_uint8_above_127_is_not_saturated(backend):
    # the reported case: llvm gave [127, 127]
    got = _cast(backend, np.array([128.0, 200.7]), "uint8")
    np.testing.assert_array_equal(got, [128, 200])
    np.testing.assert_array_equal(got, torch.tensor([128.0, 200.7]).to(torch.uint8).numpy())


@pytest.mark.parametrize("src", FLOATS)
@pytest.mark.parametrize("dst", INTS)
def test_float_to_int_in_range_matches_numpy(src, dst, backend):
    values = _in_range(dst).astype(src)
    # float32 rounding may push an edge value out of range: keep what still fits
    info = np.iinfo(dst)
    values = values[(np.trunc(values.astype(np.float64)) >= info.min)
                    & (np.trunc(values.astype(np.float64)) <= info.max)]
    got = _cast(backend, values, dst)
    assert got.dtype == np.dtype(dst)
    np.testing.assert_array_equal(got, values.astype(dst))


@pytest.mark.parametrize("src", FLOATS)
def test_float_to_uint8_every_value_in_range(src, backend):
    values = (np.arange(0, 256 * 4) / 4).astype(src)  # 0, 0.25, ..., 255.75
    np.testing.assert_array_equal(_cast(backend, values, "uint8"), values.astype("uint8"))


@pytest.mark.parametrize("src", INTS + ["bool"])
@pytest.mark.parametrize("dst", FLOATS)
def test_int_to_float_matches_numpy(src, dst, backend):
    if src == "bool":
        values = np.array([True, False, True])
    else:
        info = np.iinfo(src)
        values = np.array(sorted({info.min, info.min + 1, -1 if info.min else 0, 0, 1, 127,
                                  info.max - 1, info.max}), dtype=src)
    got = _cast(backend, values, dst)
    assert got.dtype == np.dtype(dst)
    np.testing.assert_array_equal(got, values.astype(dst))


def test_uint8_arithmetic_round_trip(backend):
    # uint8 values above 127 through float and back (an image pipeline's normalisation)
    x = sg.tensor("x", (5,), dtype="uint8")
    y = sg.cast(sg.cast(x, "float32") * 0.5 + 100.0, "uint8")
    xv = np.array([0, 127, 128, 200, 255], dtype="uint8")
    got = sg.function([x], y, backend=backend)(xv)
    np.testing.assert_array_equal(got, (xv.astype("float32") * 0.5 + 100.0).astype("uint8"))


@pytest.mark.parametrize("src", FLOATS)
@pytest.mark.parametrize("dst", INTS)
def test_float_to_int_out_of_range_runs(src, dst, backend):
    # undefined in C, a warning in numpy: it must run and keep the dtype, nothing more
    values = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 3e9, -3e9, 300.5, -300.5],
                      dtype=src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = _cast(backend, values, dst)
    assert got.dtype == np.dtype(dst) and got.shape == values.shape
