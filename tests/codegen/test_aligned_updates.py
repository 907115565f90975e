"""Every array of ``ALIGN_FROM`` bytes or more the llvm backend hands a shared variable is 64-byte
aligned (``symgraph.storage``): in-place and double-buffered updates, the native epoch, and the
values a failed call restores; the values themselves are the numpy backend's."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
from symgraph.storage import ALIGN_FROM, is_aligned


def _model(backend: str, **kw):
    """A step with an in-place SGD update (w), a swap (a, b: double-buffered, each reads the
    other's old value) and an elementwise update (c), plus its variables."""
    rng = np.random.default_rng(3)
    w = sg.shared(rng.standard_normal((33, 170)).astype(np.float32), name="w")
    a = sg.shared(rng.standard_normal((50, 90)).astype(np.float32), name="a")
    b = sg.shared(rng.standard_normal((50, 90)).astype(np.float32), name="b")
    c = sg.shared(rng.standard_normal(4099).astype(np.float32), name="c")
    assert min(v.get_value().nbytes for v in (w, a, b, c)) >= ALIGN_FROM
    x = sg.tensor("x", shape=("n", 33), dtype="float32")
    loss = ((x @ w) ** 2).mean() + (a * b).sum() + (c * c).sum()
    gw, gc = sg.grad(loss, [w, c])
    updates = {w: w - np.float32(0.01) * gw, a: b, b: a + np.float32(1.0),
               c: c * np.float32(0.5) - gc}
    f = sg.function([x], loss, updates=updates, backend=backend, **kw)
    return f, (w, a, b, c)


def _data(n: int = 24) -> np.ndarray:
    return np.random.default_rng(4).standard_normal((n, 33)).astype(np.float32)


def test_updated_values_stay_aligned_and_equal_the_reference():
    f, shared = _model("llvm")
    ref, ref_shared = _model("numpy")
    x = _data()
    for _ in range(3):
        np.testing.assert_allclose(f(x), ref(x), rtol=1e-5)
        for v, r in zip(shared, ref_shared):
            assert is_aligned(v._value), v.name
            np.testing.assert_allclose(v.get_value(), r.get_value(), rtol=1e-5, atol=1e-6)


def test_epoch_leaves_aligned_values():
    for shuffle in (None, 7):
        f, shared = _model("llvm")
        ref, ref_shared = _model("numpy")
        x = _data(40)
        got = f.epoch(x, batch_size=8, shuffle=shuffle)
        want = ref.epoch(x, batch_size=8, shuffle=shuffle)
        np.testing.assert_allclose(got, want, rtol=1e-5)
        for v, r in zip(shared, ref_shared):
            assert is_aligned(v._value), (shuffle, v.name)
            np.testing.assert_allclose(v.get_value(), r.get_value(), rtol=1e-5, atol=1e-6)


def test_failed_call_restores_aligned_values():
    f, shared = _model("llvm", check_finite=True)
    before = [v.get_value() for v in shared]
    bad = _data()
    bad[3, 4] = np.nan
    with pytest.raises(sg.NonFiniteError):
        f(bad)
    for v, old in zip(shared, before):
        assert is_aligned(v._value), v.name
        np.testing.assert_array_equal(v.get_value(), old)
