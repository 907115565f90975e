"""Large outputs are written into an array of their own per call and returned without the
copy out of the arena (that copy made memory-bound functions ~2x numpy). The table slot the
step reads the address from goes back to the arena after every call, so nothing else (an
epoch, a profile, a refused or failing call, the next call) writes into an array the user
holds."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import run_fresh

import symgraph as sg
from codegen import plans

N = 256  # (256, 256) float32: 256 KiB, above plans.FRESH_OUTPUT_BYTES


def _function():
    x, y = sg.tensor("x", ("b", N), "float32"), sg.tensor("y", ("b", N), "float32")
    W = sg.shared(np.zeros(N, np.float32), name="W")
    outs = [x + y, (x * y).sum(), sg.reshape(x - y, (-1,)), W + 0.0]
    return sg.function([x, y], outs, updates={W: W + x.mean(0)}, backend="llvm"), W


def test_large_outputs_are_fresh_arrays_that_later_calls_leave_alone():
    assert N * N * 4 >= plans.FRESH_OUTPUT_BYTES
    f, W = _function()
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((N, N)).astype(np.float32) for _ in range(2))
    first = f(a, b)
    kept = [np.array(o, copy=True) for o in first]
    plan = next(iter(f.program._cache.values())).plan
    assert len(plan.extra["fresh"]) == 2  # x + y and the reshape; not the small ones
    second = f(b, a)
    kept += [np.array(o, copy=True) for o in second]
    assert not np.shares_memory(first[0], second[0])
    np.testing.assert_allclose(second[0], b + a)
    np.testing.assert_allclose(second[2], (b - a).ravel())
    f.epoch(np.concatenate([a, b]), np.concatenate([b, a]), batch_size=N)
    f.profile(a, b, n=2)
    with pytest.raises(TypeError):
        f(a.astype(np.complex64), b)  # refused before anything ran
    with pytest.raises(ValueError):
        f(a, b[:, :3])
    for o, k in zip(first + second, kept):  # nothing wrote into the arrays the user holds
        np.testing.assert_array_equal(o, k)
    np.testing.assert_allclose(first[0], a + b)
    np.testing.assert_allclose(first[1], (a * b).sum(), rtol=1e-4)
    np.testing.assert_allclose(first[2], (a - b).ravel())


def test_small_outputs_are_still_copied_out_of_the_arena():
    f, _ = _function()
    a = np.ones((3, N), np.float32)
    out = f(a, 2 * a)
    plan = next(iter(f.program._cache.values())).plan
    assert plan.extra["fresh"] == []  # (3, 256) float32 is below the threshold
    again = f(a, 4 * a)
    assert not np.shares_memory(out[0], again[0])
    np.testing.assert_array_equal(out[0], 3 * a)
    np.testing.assert_array_equal(again[0], 5 * a)


def test_a_program_from_the_disk_cache_returns_fresh_outputs_too(tmp_path):
    """The slot that holds an output's address is rebuilt from the cached metadata."""
    script = f"""
import numpy as np, symgraph as sg
x = sg.tensor("x", ("b", {N}), "float32")
f = sg.function([x], [x * 2.0, x.sum()], backend="llvm")
a = np.arange({N * N}, dtype=np.float32).reshape({N}, {N})
r1, r2 = f(a)[0], f(a + 1)[0]
ok = np.array_equal(r1, a * 2) and np.array_equal(r2, (a + 1) * 2) and not np.shares_memory(r1, r2)
print(f.compile_stats["cache_level"], ok)
"""
    assert run_fresh(script, tmp_path / "cache") == "ir True"
    assert run_fresh(script, tmp_path / "cache") == "program True"
