"""Concatenations and stacks of many same-shape pieces: one loop over their pointers.

``codegen.lowerings._join_table`` replaces one loop nest per piece with a loop over a stack
array of the pieces' pointers once there are ``JOIN_TABLE_PIECES`` of them (an unrolled
RNN's gradient joins one piece per time step).  Oracles: numpy's ``concatenate``/``stack``
for values, the numpy reference backend for gradients; each test also checks, in the
unoptimised IR, whether the table was taken, so the path under test is the one run.
"""

import re

import numpy as np
import pytest

import symgraph as sg
from codegen.lowerings import JOIN_TABLE_PIECES

N = JOIN_TABLE_PIECES + 1


def tables(f) -> list[int]:
    """Sizes of the pointer tables in ``f``'s unoptimised IR."""
    return [int(n) for n in re.findall(r"= alloca \[(\d+) x ptr\]", f.llvm_ir(optimized=False))]


def values(shape, dtype, rng):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind == "i":
        return rng.integers(-100, 100, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "bool"])
def test_concatenate_of_inputs(axis, dtype):
    rng = np.random.default_rng(0)
    xs = [sg.tensor(f"x{i}", (3, 2, 5), dtype=dtype) for i in range(N)]
    f = sg.function(xs, sg.concatenate(xs, axis=axis))
    assert tables(f) == [N]
    arrays = [values((3, 2, 5), dtype, rng) for _ in range(N)]
    got = f(*arrays)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, np.concatenate(arrays, axis=axis))


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack_of_inputs(axis):
    rng = np.random.default_rng(1)
    xs = [sg.tensor(f"x{i}", (4, 3)) for i in range(N)]
    f = sg.function(xs, sg.stack(xs, axis=axis))
    assert tables(f) == [N]
    arrays = [values((4, 3), "float64", rng) for _ in range(N)]
    np.testing.assert_array_equal(f(*arrays), np.stack(arrays, axis=axis))


def test_symbolic_batch_one_function_for_every_size():
    """Pieces with a symbolic dim every call binds share offsets: each batch size works."""
    rng = np.random.default_rng(2)
    xs = [sg.tensor(f"x{i}", ("batch", 3), dtype="float32") for i in range(N)]
    f = sg.function(xs, [sg.concatenate(xs, axis=0), sg.concatenate(xs, axis=1),
                         sg.stack(xs, axis=1)])
    assert tables(f) == [N, N, N]
    for batch in (1, 5, 0, 17):
        arrays = [values((batch, 3), "float32", rng) for _ in range(N)]
        rows, cols, stacked = f(*arrays)
        np.testing.assert_array_equal(rows, np.concatenate(arrays, axis=0))
        np.testing.assert_array_equal(cols, np.concatenate(arrays, axis=1))
        np.testing.assert_array_equal(stacked, np.stack(arrays, axis=1))


def test_pieces_of_every_memory_kind():
    """Inputs, shared variables, constants, one input repeated, a reshaped view and results
    computed in kernels of their own (they are outputs too) in one table."""
    rng = np.random.default_rng(3)
    a, b = sg.tensor("a", (2, 6)), sg.tensor("b", (12,))
    w = sg.shared(rng.standard_normal((2, 6)), name="w")
    c = rng.standard_normal((2, 6))
    computed = [sg.exp(a) + i for i in range(3)]
    pieces = [a, w, sg.constant(c), a, b.reshape((2, 6)), *computed, a * w]
    f = sg.function([a, b], [sg.concatenate(pieces, axis=1), *computed, pieces[-1]])
    assert tables(f) == [len(pieces)]
    av, bv = rng.standard_normal((2, 6)), rng.standard_normal(12)
    got = f(av, bv)[0]
    expected = [av, w.get_value(), c, av, bv.reshape(2, 6), *(np.exp(av) + i for i in range(3)),
                av * w.get_value()]
    np.testing.assert_allclose(got, np.concatenate(expected, axis=1), rtol=1e-15)


def test_fewer_pieces_or_mixed_shapes_keep_a_nest_per_piece():
    rng = np.random.default_rng(4)
    few = [sg.tensor(f"x{i}", (2, 3)) for i in range(JOIN_TABLE_PIECES - 1)]
    mixed = [sg.tensor(f"y{i}", (2, 3 + i % 2)) for i in range(N)]
    views = [x.T for x in few] + [few[0].T] * 2  # read through their indices, not memory
    f = sg.function(few + mixed, [sg.concatenate(few, axis=1), sg.concatenate(mixed, axis=1),
                                  sg.concatenate(views, axis=0)])
    assert tables(f) == []
    fv = [rng.standard_normal((2, 3)) for _ in few]
    mv = [rng.standard_normal((2, 3 + i % 2)) for i in range(N)]
    got = f(*fv, *mv)
    np.testing.assert_array_equal(got[0], np.concatenate(fv, axis=1))
    np.testing.assert_array_equal(got[1], np.concatenate(mv, axis=1))
    np.testing.assert_array_equal(got[2], np.concatenate([v.T for v in fv] + [fv[0].T] * 2))


def test_gradient_of_time_steps_joined_as_in_an_unrolled_rnn():
    """x[:, t] for every t, a step each, joined along time: the gradient joins T pieces (the
    LSTM case), compared with the numpy reference backend."""
    rng = np.random.default_rng(5)
    T = 2 * N
    x = sg.tensor("x", ("batch", T, 4), dtype="float32")
    W = sg.shared(rng.standard_normal((4, 4)).astype("float32"), name="W")
    z = x @ W
    h = sg.zeros_like(z[:, 0])
    outs = []
    for t in range(T):
        h = sg.tanh(z[:, t] + h * 0.5)
        outs.append(h)
    loss = (sg.stack(outs, axis=1) ** 2).sum()
    grads = sg.grad(loss, [x, W])
    llvm = sg.function([x], [loss, *grads], backend="llvm")
    ref = sg.function([x], [loss, *grads], backend="numpy")
    assert len(tables(llvm)) >= 2  # the forward stack and the gradient's join
    xv = rng.standard_normal((3, T, 4)).astype("float32")
    for got, expected in zip(llvm(xv), ref(xv)):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
