"""``sg.function(..., flush_denormals=True)``: subnormal floats read and written as zero, on
both backends (the CPU's FTZ/DAZ modes in the llvm step, op-by-op zeroing in the numpy
reference), and the caller's own arithmetic untouched after any call.

Oracle: numpy's result with its subnormal entries replaced by zeros of their sign, written
out here (``_flushed``), and numpy's own arithmetic after the call.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg


def _flushed(a: np.ndarray) -> np.ndarray:
    tiny = (np.abs(a) < np.finfo(a.dtype).tiny) & (a != 0)
    return np.where(tiny, np.copysign(np.zeros((), a.dtype), a), a)


def _subnormal(dtype) -> np.ndarray:
    """Values around the subnormal range of ``dtype``: subnormal, normal, zero, signs."""
    tiny = np.finfo(dtype).tiny
    return np.array([tiny / 8, -tiny / 3, tiny * 4, 0.0, -0.0, 1.0, -tiny / 1000], dtype)


def _numpy_keeps_subnormals(dtype) -> bool:
    tiny = np.finfo(dtype).tiny
    return np.asarray(tiny, dtype) / dtype(4) != 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_subnormal_inputs_and_results_read_as_zero(backend, dtype):
    x = sg.tensor("x", (7,), np.dtype(dtype).name)
    X = _subnormal(dtype)
    big, small = dtype(2.0 ** 40), dtype(2.0 ** -10)
    outs = [x * big, x * small, sg.exp(x * 0 - dtype(np.log(np.finfo(dtype).tiny) + 3))]
    for flush in (False, True):
        f = sg.function([x], outs, backend=backend, flush_denormals=flush)
        got = f(X)
        with np.errstate(all="ignore"):
            # DAZ: a subnormal input is 0 before the product; FTZ: a subnormal result is 0
            inputs = _flushed(X) if flush else X
            want = [inputs * big, inputs * small,
                    np.exp(inputs * 0 - dtype(np.log(np.finfo(dtype).tiny) + 3))]
        for g, w in zip(got, want):
            w = _flushed(w) if flush else w
            assert g.dtype == dtype
            np.testing.assert_allclose(g, w, rtol=4 * np.finfo(dtype).eps, atol=0)
            np.testing.assert_array_equal(np.signbit(g), np.signbit(w))
        if not flush:  # the kept case does make subnormals: the flushed one is a real test
            assert (got[1] != 0).sum() > (_flushed(got[1]) != 0).sum()
        assert _numpy_keeps_subnormals(dtype)  # the caller's modes are back after the call


@pytest.mark.parametrize("flush", [False, True])
def test_a_subnormal_constant_reads_as_zero_when_flushing(backend, flush):
    """x * c with c = tiny/4 (a float32 subnormal) and x = 2**30: kept, the product is a
    normal number; flushed, c reads as zero (DAZ), on both backends."""
    tiny = np.finfo(np.float32).tiny
    c = np.float32(tiny / 4)
    x = sg.tensor("x", (3,), "float32")
    f = sg.function([x], x * sg.constant(c), backend=backend, flush_denormals=flush)
    X = np.full(3, 2.0 ** 30, np.float32)
    np.testing.assert_array_equal(f(X), X * (np.float32(0) if flush else c))


def test_a_failed_call_restores_the_callers_modes(backend):
    """A call refused inside the step (an index out of range) still leaves numpy's own
    arithmetic with its subnormals."""
    x = sg.tensor("x", (3,), "float32")
    i = sg.tensor("i", (), "int64")
    f = sg.function([x, i], x[i] * np.float32(0.5), backend=backend, flush_denormals=True)
    assert f(np.ones(3, np.float32), 1) == np.float32(0.5)
    with pytest.raises(IndexError):
        f(np.ones(3, np.float32), 7)
    assert _numpy_keeps_subnormals(np.float32)


def test_an_epoch_of_updates_flushes_like_the_reference():
    """An update that shrinks a parameter into the subnormal range: flushed, the parameter
    becomes 0 at the step where numpy's value turns subnormal, in ``f.epoch`` (the llvm
    native loop) as in the numpy backend's loop; kept, it is numpy's subnormal value."""
    tiny = np.finfo(np.float32).tiny
    start = np.array([tiny * 64, 1.0, -tiny * 8], np.float32)
    data = np.ones((8, 3), np.float32)
    results = {}
    for flush in (False, True):
        for backend in ("numpy", "llvm"):
            w = sg.shared(start.copy(), name="w")
            x = sg.tensor("x", ("batch", 3), "float32")
            loss = sg.sum(w * sg.sum(x, axis=0))
            f = sg.function([x], loss, updates={w: w * np.float32(0.25)}, backend=backend,
                            flush_denormals=flush)
            f.epoch(data, batch_size=2)  # four steps: w * 0.25 ** 4
            results[flush, backend] = w.get_value()
    want_kept = start * np.float32(0.25) ** 4
    for backend in ("numpy", "llvm"):
        np.testing.assert_array_equal(results[False, backend], want_kept)
        np.testing.assert_array_equal(results[True, backend], _flushed(want_kept))
    assert results[False, "llvm"][0] != 0 and results[True, "llvm"][0] == 0


def test_profile_runs_the_flushing_step(backend):
    x = sg.tensor("x", (64,), "float32")
    f = sg.function([x], sg.sum(x * np.float32(1e-30)), backend=backend, flush_denormals=True)
    X = np.full(64, 1e-10, np.float32)
    assert f(X) == 0  # each product (1e-40) is flushed before the sum
    assert f.profile(X, n=3)


def test_flush_denormals_takes_a_bool():
    x = sg.tensor("x", (2,))
    with pytest.raises(TypeError, match="flush_denormals must be True or False, got 'yes'"):
        sg.function([x], x + 1, flush_denormals="yes")


def test_the_option_is_part_of_the_program_cache_key(tmp_path, monkeypatch):
    """Two functions of one graph, flushed and kept, in a fresh cache: each gets its own
    program (the second is not the first's code from the cache)."""
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    x = sg.tensor("x", (4,), "float32")
    X = _subnormal(np.float32)[:4]
    kept = sg.function([x], x * np.float32(2.0), backend="llvm")(X)
    flushed = sg.function([x], x * np.float32(2.0), backend="llvm", flush_denormals=True)(X)
    np.testing.assert_array_equal(kept, X * np.float32(2.0))
    np.testing.assert_array_equal(flushed, _flushed(_flushed(X) * np.float32(2.0)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_subnormal_shared_values_and_constants_read_as_zero(backend, dtype):
    """DAZ reads every operand as the CPU sees it: a parameter's or a constant's subnormal
    entries too, not only the inputs' (the numpy reference multiplied them as they were)."""
    start = _subnormal(dtype)
    w = sg.shared(start.copy(), name="w")
    c = start[::-1].copy()
    x = sg.tensor("x", (7,), np.dtype(dtype).name)
    big = np.full(7, 2.0 ** 60, dtype)
    f = sg.function([x], [w * x, x * c], backend=backend, flush_denormals=True)
    got = f(big)
    with np.errstate(all="ignore"):
        want = [_flushed(_flushed(start) * big), _flushed(big * _flushed(c))]
    for g, v in zip(got, want):
        np.testing.assert_array_equal(g, v)
        np.testing.assert_array_equal(np.signbit(g), np.signbit(v))
    np.testing.assert_array_equal(w.get_value(), start)  # read as zero, not written so


def test_check_finite_names_the_node_a_flushed_value_made_infinite(backend):
    """A product flushed to zero, then its log: -inf.  The NaN/Inf debugger replays the call
    with the function's flushing, so it names the log (not 'a backend bug': the replay
    without it kept the subnormal product and its finite log)."""
    tiny = np.finfo(np.float32).tiny
    x = sg.tensor("x", (3,), "float32")
    y = sg.log(x * np.float32(2.0 ** -10))
    f = sg.function([x], y * 2, backend=backend, flush_denormals=True, check_finite=True)
    X = np.array([tiny * 4, 1.0, 2.0], np.float32)
    with np.errstate(all="ignore"):
        assert np.isneginf(np.log(_flushed(X * np.float32(2.0 ** -10)))[0])
    with pytest.raises(sg.NonFiniteError) as info:
        f(X)
    assert "backend bug" not in str(info.value)
    assert info.value.node is not None and info.value.node.op.name == "log"


_LIBM = {"log": np.log, "log2": np.log2, "log10": np.log10, "log1p": np.log1p,
         "sin": np.sin, "tanh": np.tanh, "arctan": np.arctan, "arcsinh": np.arcsinh}


@pytest.mark.parametrize("name", sorted(_LIBM))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_math_functions_read_subnormal_arguments_as_zero(backend, name, dtype):
    """libm's functions (and libmvec's) find a subnormal argument by its bits, which DAZ does
    not change: llvm's flushed log of tiny/8 was -103.97 in float32 (-745.13 in float64) and
    NaN for -tiny/8, where the argument read as zero gives -inf."""
    x = sg.tensor("x", (28,), np.dtype(dtype).name)
    X = np.tile(_subnormal(dtype), 4)
    got = sg.function([x], getattr(sg, name)(x), backend=backend, flush_denormals=True)(X)
    with np.errstate(all="ignore"):
        want = _flushed(_LIBM[name](_flushed(X)))
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps, atol=0)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
