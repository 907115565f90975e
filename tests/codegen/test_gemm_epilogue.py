"""A gemm and the elementwise kernels that read its result, one kernel block by block of rows
(codegen/epilogue_plan.py chooses the pairs, codegen/lower_epilogue.py writes them).

Oracles: the numpy reference backend (float sums' rounding apart), the same graph compiled
with ``SYMGRAPH_THREADS=1`` (the split kernel must give the serial one's bits: each block is
the same code), and the program's analysis (which gemms were paired: each test fails where a
pair is missing or made where it must not be).
"""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
from codegen import epilogue_plan
from codegen.native import parallel

TOL = {"float32": dict(rtol=2e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-14)}


@pytest.fixture(autouse=True)
def _own_cache(cache_env):
    yield


def adam_step(dtype: str, m: int, n: int, backend: str, seed: int = 0):
    """One Adam step of a weight ``W (m, n)`` whose gradient is ``x.T @ dy`` over a batch
    known at call time: (function, the shared W, m, v)."""
    rng = np.random.default_rng(seed)
    x = sg.tensor("x", shape=("batch", m), dtype=dtype)
    dy = sg.tensor("dy", shape=("batch", n), dtype=dtype)
    W = sg.shared(rng.standard_normal((m, n)).astype(dtype), name="W")
    mom = sg.shared(rng.standard_normal((m, n)).astype(dtype) * 0.1, name="m")
    vel = sg.shared(rng.random((m, n)).astype(dtype) + 0.5, name="v")
    g = x.T @ dy
    m1 = np.dtype(dtype).type(0.9) * mom + np.dtype(dtype).type(0.1) * g
    v1 = np.dtype(dtype).type(0.999) * vel + np.dtype(dtype).type(0.001) * g * g
    W1 = W - np.dtype(dtype).type(0.01) * m1 / (sg.sqrt(v1) + np.dtype(dtype).type(1e-8))
    f = sg.function([x, dy], [], updates={mom: m1, vel: v1, W: W1}, backend=backend)
    return f, (W, mom, vel)


def run(f, shared, batches) -> list[np.ndarray]:
    for x, dy in batches:
        f(x, dy)
    return [s.get_value() for s in shared]


def batches(dtype: str, m: int, n: int, k: int, steps: int = 3):
    rng = np.random.default_rng(1)
    return [(rng.standard_normal((k, m)).astype(dtype), rng.standard_normal((k, n)).astype(dtype))
            for _ in range(steps)]


def paired(f) -> list[tuple]:
    return [(g.shape, len(group)) for g, group in f.program.analysis.epilogues.items()]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m, n, k", [(128, 128, 32), (200, 80, 7), (200, 80, 0)])
def test_adam_update_is_the_epilogue_of_its_gradient_gemm(dtype, m, n, k):
    """m = 200 is not a multiple of the block's rows, n = 80 not of a vector's lanes; an
    empty batch makes the gradient zeros (the blocks sum nothing)."""
    f, shared = adam_step(dtype, m, n, "llvm")
    ref, ref_shared = adam_step(dtype, m, n, "numpy")
    assert paired(f) == [((m, n), 3)]
    data = batches(dtype, m, n, k)
    for got, want in zip(run(f, shared, data), run(ref, ref_shared, data)):
        np.testing.assert_allclose(got, want, **TOL[dtype])


def test_split_blocks_give_the_serial_bits(monkeypatch):
    out = []
    for threads in ("2", "1"):
        monkeypatch.setenv("SYMGRAPH_THREADS", threads)
        f, shared = adam_step("float32", 200, 80, "llvm")
        assert paired(f) == [((200, 80), 3)]
        out.append((run(f, shared, batches("float32", 200, 80, 24)),
                    sum(bool(kern.parallel) for kern in f.kernels)))
    (split, nsplit), (serial, nserial) = out
    assert nserial == 0 and nsplit == (1 if parallel.available() else 0)
    for a, b in zip(split, serial):
        np.testing.assert_array_equal(a, b)


def test_a_batch_too_big_for_the_blocks_goes_through_blas():
    """A right operand over EPILOGUE_PANEL_BYTES at run time: one BLAS call, then the
    blocks run the update only (the same function, another batch size)."""
    m, n = 128, 128
    big = epilogue_plan.EPILOGUE_PANEL_BYTES // (n * 4) + 5
    f, shared = adam_step("float32", m, n, "llvm")
    ref, ref_shared = adam_step("float32", m, n, "numpy")
    assert paired(f) == [((m, n), 3)]
    data = batches("float32", m, n, big, steps=1) + batches("float32", m, n, 16, steps=1)
    for got, want in zip(run(f, shared, data), run(ref, ref_shared, data)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def build_broadcast(backend: str):
    """A static product ``a @ b`` (neither transposed) whose reader also reads a row
    broadcast over the rows: the epilogue's nest is rows, then columns."""
    rng = np.random.default_rng(2)
    a = sg.tensor("a", shape=(200, 64), dtype="float64")
    b = sg.tensor("b", shape=(64, 80), dtype="float64")
    W = sg.shared(rng.standard_normal((200, 80)), name="W")
    s = sg.shared(rng.standard_normal(80), name="s")
    f = sg.function([a, b], [], updates={W: 0.5 * W + sg.tanh(a @ b) * s}, backend=backend)
    return f, W


def test_an_epilogue_reading_a_broadcast_row():
    (f, W), (ref, W_ref) = build_broadcast("llvm"), build_broadcast("numpy")
    assert paired(f) == [((200, 80), 1)]
    rng = np.random.default_rng(3)
    for _ in range(2):
        a, b = rng.standard_normal((200, 64)), rng.standard_normal((64, 80))
        f(a, b)
        ref(a, b)
    np.testing.assert_allclose(W.get_value(), W_ref.get_value(), rtol=1e-12, atol=1e-12)


def build_unpairable(backend: str, kind: str):
    """``W <- 0.9 W + tanh(x.T @ W)`` (``"target"``): the update writes W in place, which
    the gemm reads (all of it, for every block); ``W <- 0.9 W + tanh(x.T @ y)`` with the
    product also an output (``"output"``): its buffer must hold the product, not be
    consumed block by block.  Neither may be paired."""
    rng = np.random.default_rng(4)
    x = sg.tensor("x", shape=(96, 96), dtype="float32")
    y = sg.tensor("y", shape=(96, 128), dtype="float32")
    W = sg.shared(rng.standard_normal((96, 128)).astype("float32"), name="W")
    g = x.T @ (W if kind == "target" else y)
    f = sg.function([x, y] if kind == "output" else [x], [g] if kind == "output" else [],
                    updates={W: np.float32(0.9) * W + sg.tanh(g)}, backend=backend)
    return f, W


@pytest.mark.parametrize("kind", ["target", "output"])
def test_no_pair_where_blocks_would_read_updated_values(kind):
    (f, W), (ref, W_ref) = (build_unpairable(b, kind) for b in ("llvm", "numpy"))
    assert paired(f) == []
    rng = np.random.default_rng(5)
    args = [rng.standard_normal((96, 96)).astype("float32")]
    if kind == "output":
        args.append(rng.standard_normal((96, 128)).astype("float32"))
    for _ in range(2):
        got, want = f(*args), ref(*args)
        if kind == "output":
            np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(W.get_value(), W_ref.get_value(), rtol=1e-5, atol=1e-5)

