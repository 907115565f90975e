"""Row kernels on both cores (codegen/lower_rows.py): softmax, log_softmax, logsumexp and their
gradients' sums by rows or tiles, sums over leading axes by column ranges.

Oracles: the same graph compiled with ``SYMGRAPH_THREADS=1`` (the serial kernel: the split
one must give its bits, since each row runs the same code), the numpy reference backend (tight
tolerances; bit for bit for sums over leading axes, which both add in input order), and the
kernels' ``parallel`` flag (a split kernel calls the runtime: every test below checks it, so
each fails where rows are not split). ``SYMGRAPH_THREADS_MIN`` = 4096 keeps sizes small: the
softmax kernels then split from 4096 * SOFTMAX_FACTOR (1,024) elements, the sums from
4096 * SUM_FACTOR (16,384).
"""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
from codegen import lower_rows
from codegen.native import parallel

pytestmark = pytest.mark.skipif(not parallel.available(),
                                reason="numpy's BLAS is not a pthreads OpenBLAS")

MIN = 4096
SOFTMAX_MIN = int(MIN * lower_rows.SOFTMAX_FACTOR)
SUM_MIN = int(MIN * lower_rows.SUM_FACTOR)
NEG_INF = -np.inf


@pytest.fixture(autouse=True)
def _small_threshold(cache_env, monkeypatch):
    """A cache of the test's own, and splits from ``MIN`` elements."""
    monkeypatch.setenv("SYMGRAPH_THREADS_MIN", str(MIN))
    yield


@pytest.fixture
def compile_both(monkeypatch):
    """``compile_both(build)``: (split, serial, numpy) functions of ``build()``'s
    (inputs, outputs), compiled with split loops, with ``SYMGRAPH_THREADS=1``, and on the
    reference backend."""
    def build_all(build, **kw):
        out = []
        for threads in ("2", "1"):
            monkeypatch.setenv("SYMGRAPH_THREADS", threads)
            ins, outs = build()
            out.append(sg.function(ins, outs, backend="llvm", **kw))
        ins, outs = build()
        out.append(sg.function(ins, outs, backend="numpy", **kw))
        return out
    return build_all


def split_count(f) -> int:
    return sum(bool(k.parallel) for k in f.kernels)


def assert_same_bits(a, b) -> None:
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y, equal_nan=True), np.argwhere(
            ~((x == y) | (np.isnan(x) & np.isnan(y))))[:5]


def assert_close(a, b, dtype, scale: float = 1.0) -> None:
    """Equal to the reference's values within rounding: ``scale`` is the size of what was
    summed (a term's magnitude times the square root of their count), for sums that cancel."""
    tol = {"float32": 1e-5, "float64": 1e-13}[np.dtype(dtype).name]
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol * scale)


def scores(shape, dtype, seed=0, masked=True) -> np.ndarray:
    """Random logits with -inf entries (a causal-mask pattern on the last two axes) and, when
    ``masked``, one line entirely -inf (softmax: NaN; log_softmax: NaN; logsumexp: -inf)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    if masked and x.ndim >= 2 and x.shape[-1] > 1:
        rows, cols = np.indices(x.shape[-2:])
        x[..., cols > rows + 2] = NEG_INF
        x.reshape(-1, x.shape[-1])[1] = NEG_INF
    return x


OPS = {"softmax": lambda x, a: sg.nn.softmax(x, axis=a),
       "log_softmax": lambda x, a: sg.nn.log_softmax(x, axis=a),
       "logsumexp": lambda x, a: sg.logsumexp(x, axis=a)}

# (shape, axis, split?): the three loop forms of lower_softmax on both sides of the threshold
FORMS = [
    ((8, 60), 1, False),  # 480 elements: below SOFTMAX_MIN
    ((4096, 10), 1, True),  # short rows, unrolled (the row loop is the vectorised one)
    ((70, 5, 9), 1, True),  # short rows along a middle axis: 630 rows of 5
    ((6, 4, 33, 33), 3, True),  # lines along the innermost axis (33: vector + remainder)
    ((3, 700, 5), 1, True),  # lines along a middle axis with a short tail (no tiles)
    ((300, 70), 0, True),  # tiles: the reduced axis leading, 2 tiles of 64 and 6
    ((5, 40, 90), 1, True),  # tiles times positions of the outer axis
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,axis,split", FORMS)
@pytest.mark.parametrize("op", sorted(OPS))
def test_softmax_forms_split_give_serial_bits(op, shape, axis, split, dtype, compile_both):
    def build():
        x = sg.tensor("x", shape=shape, dtype=dtype)
        return [x], [OPS[op](x, axis)]

    f_split, f_serial, f_numpy = compile_both(build)
    assert split_count(f_split) == int(split) and split_count(f_serial) == 0
    x = scores(shape, dtype)
    got = f_split(x)
    assert_same_bits(got, f_serial(x))
    assert_close(got, f_numpy(x), dtype)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradient_sums_split_by_rows(log, dtype, compile_both):
    """softmax/log_softmax and the gradient of ``sum(y * g)``: the forward kernel and the
    gradient split -- log_softmax's row sum (``sum(g, axis, keepdims)``) and the
    elementwise kernel after it, softmax's one ``softmax_grad`` kernel."""
    shape = (4, 3, 40, 40)

    def build():
        x = sg.tensor("x", shape=shape, dtype=dtype)
        g = sg.tensor("g", shape=shape, dtype=dtype)
        y = (sg.nn.log_softmax if log else sg.nn.softmax)(x, axis=-1)
        return [x, g], [y, sg.grad(sg.sum(y * g), [x])[0]]

    f_split, f_serial, f_numpy = compile_both(build)
    assert split_count(f_split) == (3 if log else 2) and split_count(f_serial) == 0
    x = scores(shape, dtype, masked=False)
    x[..., 0, 5:] = NEG_INF  # causal-like -inf entries (finite gradients)
    g = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    got = f_split(x, g)
    assert_same_bits(got, f_serial(x, g))
    assert_close(got, f_numpy(x, g), dtype)


@pytest.mark.parametrize("batch", [1, 2, 50])
def test_symbolic_batch_decided_at_run_time(batch, compile_both):
    """(batch, 4, 8, 16): compiled to split (a batch of LIKELY_DIM would be big); at run
    time a batch of 1 (512 elements) runs serially, the softmaxes split from 2, the sum from
    32 (SUM_MIN); all give the serial kernel's bits."""
    def build():
        x = sg.tensor("x", shape=("batch", 4, 8, 16), dtype="float32")
        return [x], [sg.nn.softmax(x, axis=-1), sg.nn.log_softmax(x, axis=-1),
                     sg.sum(x * 3, axis=-1)]

    f_split, f_serial, f_numpy = compile_both(build)
    assert split_count(f_split) == 3 and split_count(f_serial) == 0
    x = scores((batch, 4, 8, 16), "float32")
    got = f_split(x)
    assert_same_bits(got, f_serial(x))
    assert_close(got, f_numpy(x), "float32")


@pytest.mark.parametrize("perm,axis", [((1, 0, 2), 2), ((1, 0, 2), 1), ((2, 0, 1), 2),
                                        ((1, 0, 2), 0), ((1, 0), 1)])
def test_transposed_inputs(perm, axis, compile_both):
    """A transposed input is read through permuted indices inside the row kernel (a view, not
    a buffer): the rows are then several loops (not one flat index), the item index divided
    back into each; the lines, short rows and tiles forms."""
    shape = (40, 30, 20)[:len(perm)]

    def build():
        x = sg.tensor("x", shape=shape, dtype="float32")
        y = sg.transpose(x, perm)
        return [x], [sg.nn.softmax(y, axis=axis), sg.nn.log_softmax(y * 1, axis=axis)]

    f_split, f_serial, f_numpy = compile_both(build)
    assert [k.parallel for k in f_split.kernels if "softmax" in str(k)] == [True, True]
    assert split_count(f_serial) == 0
    x = scores(shape, "float32", masked=False)
    got = f_split(x)
    assert_same_bits(got, f_serial(x))
    assert_close(got, f_numpy(x), "float32")


# (shape, axes, split?, numpy's bits?) of sums
SUMS = [
    ((100, 160), 0, False, True),  # 16,000 elements: below SUM_MIN
    ((300, 512), 0, False, True),  # a bias gradient: 2 KB rows, under COLUMN_SPLIT_BYTES
    ((20, 30, 96), (0, 1), False, True),  # (batch, steps, features): likewise
    ((6, 64, 256), 0, True, True),  # rows of 64 KB (128 KB float64): column ranges
    ((16, 48, 8, 8), (0, 2, 3), True, False),  # NCHW over (0, 2, 3): channel ranges
    ((300, 70), 1, True, False),  # row sums
    ((6, 7000), 1, True, False),  # rows longer than SUM_BLOCK (float32: blocked)
    ((16, 1024), 1, True, False),  # 16,384 elements: SUM_MIN
    ((16, 40, 40), 1, False, False),  # two loops over kept axes: serial
]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
@pytest.mark.parametrize("shape,axes,split,exact", SUMS)
def test_sums_split_give_serial_bits(shape, axes, split, exact, dtype, keepdims, compile_both):
    def build():
        x = sg.tensor("x", shape=shape, dtype=dtype)
        return [x], [sg.sum(x, axis=axes, keepdims=keepdims),
                     sg.max(x, axis=axes, keepdims=keepdims)]

    f_split, f_serial, f_numpy = compile_both(build)
    assert split_count(f_split) == 2 * int(split) and split_count(f_serial) == 0
    x = (np.random.default_rng(4).standard_normal(shape) * 100).astype(dtype)
    got = f_split(x)
    assert_same_bits(got, f_serial(x))
    want = f_numpy(x)
    if exact or dtype == "int32":  # leading axes: both add rows in input order
        assert_same_bits(got, want)
    else:  # (float32 sums of 7,000 terms: the error scales with the terms' size)
        tol = {"float32": 1e-5, "float64": 1e-13}[dtype]
        scale = np.abs(x).max() * np.sqrt(x.size / got[0].size)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)


def test_mean_and_symbolic_rows(compile_both):
    """A mean over leading axes divides each range's columns; ("batch", 2048), ("batch", 128)
    and (4, "batch", "n") reductions split at run time (the symbolic row length: plain or
    blocked per row, chosen as the serial kernel does)."""
    def build():
        w = sg.tensor("w", shape=("batch", 2048), dtype="float32")
        x = sg.tensor("x", shape=("batch", 128), dtype="float32")
        y = sg.tensor("y", shape=(4, "batch", "n"), dtype="float32")
        return [w, x, y], [sg.mean(w, axis=0), sg.sum(x, axis=1), sg.sum(y * 2, axis=-1)]

    f_split, f_serial, f_numpy = compile_both(build)
    assert split_count(f_split) == 3 and split_count(f_serial) == 0
    rng = np.random.default_rng(5)
    for rows, n in ((3, 10), (200, 40), (7, 9000), (300, 100)):
        x = rng.standard_normal((rows, 128)).astype(np.float32)
        y = rng.standard_normal((4, rows, n)).astype(np.float32)
        w = rng.standard_normal((rows, 2048)).astype(np.float32)
        got = f_split(w, x, y)
        assert_same_bits(got, f_serial(w, x, y))
        terms = max(np.abs(a).max() * 2 for a in (w, x, y))
        assert_close(got, f_numpy(w, x, y), "float32", terms * np.sqrt(max(n, 2048)))


def test_default_threshold_keeps_small_steps_serial(monkeypatch, cache_env):
    """With the default threshold a (128, 10) softmax and (128, 10) sums stay serial code,
    and so does a (batch, 10) softmax (a batch of LIKELY_DIM would not make an elementwise
    loop split: no split code, nor the runtime's module, for a small classifier); a
    (32, 4, 128, 128) or (batch, 4, 128, 128) softmax and a (64, 64, 32, 32) sum over axis 0
    split, but not a (4096, 512) bias gradient (rows of 2 KB: COLUMN_SPLIT_BYTES)."""
    monkeypatch.delenv("SYMGRAPH_THREADS_MIN")
    monkeypatch.delenv("SYMGRAPH_THREADS", raising=False)

    def splits(shape, fn) -> int:
        x = sg.tensor("x", shape=shape, dtype="float32")
        return split_count(sg.function([x], fn(x)))

    assert splits((128, 10), lambda x: sg.nn.softmax(x, axis=-1)) == 0
    assert splits((128, 10), lambda x: sg.sum(x, axis=0)) == 0
    assert splits(("batch", 10), lambda x: sg.nn.log_softmax(x, axis=-1)) == 0
    assert splits((32, 4, 128, 128), lambda x: sg.nn.softmax(x, axis=-1)) == 1
    assert splits(("batch", 4, 128, 128), lambda x: sg.nn.softmax(x, axis=-1)) == 1
    assert splits((4096, 512), lambda x: sg.sum(x, axis=0)) == 0
    assert splits((64, 64, 32, 32), lambda x: sg.sum(x, axis=0)) == 1


def test_blas_limited_to_one_thread_and_flush_denormals(compile_both):
    """Under threadpoolctl's limit of 1 every row kernel runs on the caller, the same bits;
    with ``flush_denormals`` every chunk flushes: softmax terms exp(-100) (subnormal in
    float32) are 0 in every row, as in the serial kernel and the reference."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    shape = (512, 40)

    def build():
        x = sg.tensor("x", shape=shape, dtype="float32")
        return [x], [sg.nn.softmax(x, axis=-1)]

    f_split, f_serial, f_numpy = compile_both(build, flush_denormals=True)
    assert split_count(f_split) == 1
    x = np.zeros(shape, np.float32)
    x[:, 0] = 100.0  # the other 39 terms: exp(-100) = 3.7e-44, subnormal
    got = f_split(x)
    assert np.count_nonzero(got[0][:, 1:]) == 0
    assert np.count_nonzero(np.exp(np.float32(-100.0))) == 1  # (numpy keeps it: a real test)
    assert_same_bits(got, f_serial(x))
    assert_same_bits(got, f_numpy(x))
    x = scores(shape, "float32")
    with threadpoolctl.threadpool_limits(1):
        assert_same_bits(f_split(x), f_serial(x))
    assert_same_bits(f_split(x), f_serial(x))
