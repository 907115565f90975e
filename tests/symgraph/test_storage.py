"""``symgraph.storage``: aligned arrays, and shared variables that hold one from
``ALIGN_FROM`` bytes on."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import misaligned

import symgraph as sg
from symgraph import storage
from symgraph.storage import ALIGN_FROM, aligned_empty, is_aligned

BIG = (ALIGN_FROM // 4 + 3,)  # float32 elements just over the threshold


@pytest.mark.parametrize("shape", [(), (1,), (3,), (17, 5), (784, 512), (2, 3, 7)])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
def test_aligned_empty_is_aligned_contiguous_and_of_its_shape(shape, dtype):
    a = aligned_empty(shape, dtype)
    assert a.shape == shape and a.dtype == np.dtype(dtype)
    assert a.flags.c_contiguous and a.flags.writeable and is_aligned(a)
    z = aligned_empty(shape, dtype, zeroed=True)
    np.testing.assert_array_equal(z, np.zeros(shape, dtype))


@pytest.mark.parametrize("shape", [(3,), (17, 5), BIG, (300, 70)])
def test_empty_aligns_from_the_threshold(shape):
    a = storage.empty(shape, "float32")
    assert a.shape == shape and a.dtype == np.float32 and a.flags.c_contiguous
    if a.nbytes >= ALIGN_FROM:
        assert is_aligned(a)


def test_copy_matches_numpy_copy_and_cast():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((90, 140))  # 100 KB: aligned
    for source, dtype in [(x, None), (x, "float32"), (x[:, ::3], None), (x.T, "float32"),
                          (np.arange(12).reshape(3, 4), "float64"), (3.5, None),
                          (x[:4, :4], None)]:
        got = storage.copy(source, dtype)
        want = np.array(source, dtype=dtype)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        assert got.flags.c_contiguous and not np.shares_memory(got, source)
        if got.nbytes >= ALIGN_FROM:
            assert is_aligned(got)


def test_shared_variable_storage_is_aligned_from_misaligned_sources():
    rng = np.random.default_rng(1)
    sources = [misaligned(rng.standard_normal(s).astype(np.float32), by)
               for s, by in [((784, 512), 16), (BIG, 32), ((100, 50), 48)]]
    for src in sources:
        v = sg.shared(src)
        assert is_aligned(v._value)
        np.testing.assert_array_equal(v.get_value(), src)
        src_new = misaligned(src + 1, 48)
        v.set_value(src_new)
        assert is_aligned(v._value)
        np.testing.assert_array_equal(v.get_value(), src_new)
    w = sg.shared(np.zeros(BIG, np.float32))
    w.set_value(misaligned(np.arange(BIG[0], dtype=np.float64), 16))  # cast, still aligned
    assert w.get_value().dtype == np.float32 and is_aligned(w._value)
    np.testing.assert_array_equal(w.get_value(), np.arange(BIG[0], dtype=np.float32))
    small = sg.shared(misaligned(np.arange(10.0)))  # a plain private copy
    np.testing.assert_array_equal(small.get_value(), np.arange(10.0))
    assert small._value.flags.c_contiguous and small._value.flags.owndata
