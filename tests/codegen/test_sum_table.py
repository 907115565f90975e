"""Long chains of sums of same-shape buffers: written term by term through a pointer table.

``codegen.lower_sums`` writes ``((g0 + g1) + g2) + ...`` as ``out = g0 + g1`` and then
``out += g_j`` for each further term, once the chain has ``JOIN_TABLE_PIECES`` terms in
memory.  Oracles: numpy adding the same terms in the same order (the same bits), and the
numpy reference backend for gradients; each test also checks whether the table is in the
unoptimised IR, so the path under test is the one run.
"""

import re

import numpy as np
import pytest

import symgraph as sg
from codegen.lowerings import JOIN_TABLE_PIECES

N = JOIN_TABLE_PIECES + 3


def tables(f) -> list[int]:
    """Sizes of the pointer tables in ``f``'s unoptimised IR."""
    return [int(n) for n in re.findall(r"= alloca \[(\d+) x ptr\]", f.llvm_ir(optimized=False))]


def in_order(arrays):
    total = arrays[0] + arrays[1]
    for a in arrays[2:]:
        total = total + a
    return total


def chain(terms):
    total = terms[0] + terms[1]
    for t in terms[2:]:
        total = total + t
    return total


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(3, 5), (7,), (2, 3, 4), ()])
def test_a_chain_of_inputs_is_summed_term_by_term_to_the_same_bits(dtype, shape):
    rng = np.random.default_rng(0)
    xs = [sg.tensor(f"x{i}", shape, dtype) for i in range(N)]
    f = sg.function(xs, chain(xs))
    assert tables(f) == [N - 2]
    arrays = [(rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4)).astype(dtype)
              for _ in range(N)]
    got = f(*arrays)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, in_order(arrays))


@pytest.mark.parametrize("n", [JOIN_TABLE_PIECES, 10, 14, 18, 20, 34, 100])
@pytest.mark.parametrize("shape", [(), (1,), (2,), (3,), (17,)])
def test_terms_are_added_in_order_whatever_their_count_and_size(n, shape):
    """With one element the loop over the terms is all that is left: vectorised (fadd is
    ``reassoc``) it became a tree reduction that lost 1e16 + 0 + 1 + 1 + ... 's ones."""
    rng = np.random.default_rng(n)
    xs = [sg.tensor(f"x{i}", shape) for i in range(n)]
    f = sg.function(xs, chain(xs))
    assert tables(f) == [n - 2]
    arrays = [np.full(shape, 1e16), np.zeros(shape)] + [np.ones(shape)] * (n - 2)
    np.testing.assert_array_equal(f(*arrays), in_order(arrays))
    for _ in range(5):
        arrays = [rng.standard_normal(shape) * 10.0 ** rng.integers(-8, 9, shape)
                  for _ in range(n)]
        np.testing.assert_array_equal(f(*arrays), in_order(arrays))


def test_terms_of_every_memory_kind_and_one_repeated():
    """Inputs, a shared variable, a constant, a reshaped view, products computed in kernels
    of their own, and one input twice."""
    rng = np.random.default_rng(1)
    a, b = sg.tensor("a", (4, 6)), sg.tensor("b", (24,))
    w = sg.shared(rng.standard_normal((4, 6)), name="w")
    c = rng.standard_normal((4, 6))
    m = sg.tensor("m", (4, 3))
    products = [m @ sg.constant(rng.standard_normal((3, 6))) for _ in range(4)]
    terms = [a, w, sg.constant(c), b.reshape((4, 6)), a, *products]
    f = sg.function([a, b, m], [chain(terms), *products])
    assert tables(f) == [len(terms) - 2]
    av, bv, mv = rng.standard_normal((4, 6)), rng.standard_normal(24), rng.standard_normal((4, 3))
    got, *prods = f(av, bv, mv)
    np.testing.assert_array_equal(got, in_order([av, w.get_value(), c, bv.reshape(4, 6), av,
                                                 *prods]))


def test_an_update_in_place_of_a_term_keeps_the_fused_loop():
    """w <- g0 + g1 + g2 + w + ... updates w's own buffer: writing g0 + g1 there before
    reading w would lose it, so that chain stays one loop (and is right)."""
    rng = np.random.default_rng(2)
    w = sg.shared(rng.standard_normal((5, 4)), name="w")
    gs = [sg.tensor(f"g{i}", (5, 4)) for i in range(N)]
    f = sg.function(gs, [], updates={w: chain([*gs[:3], w, *gs[3:]])})
    assert tables(f) == []
    arrays = [rng.standard_normal((5, 4)) for _ in gs]
    old = w.get_value()
    f(*arrays)
    np.testing.assert_allclose(w.get_value(), in_order([*arrays[:3], old, *arrays[3:]]),
                               rtol=1e-14)


def test_short_symbolic_or_big_chains_keep_the_fused_loop():
    rng = np.random.default_rng(3)
    short = [sg.tensor(f"s{i}", (3, 4)) for i in range(JOIN_TABLE_PIECES - 1)]
    batch = [sg.tensor(f"b{i}", ("n", 4)) for i in range(N)]
    big = [sg.tensor(f"g{i}", (1 << 16,), "float32") for i in range(N)]  # split over cores
    mixed = [sg.tensor(f"m{i}", (3, 4) if i else (1, 4)) for i in range(N)]  # a broadcast
    f = sg.function(short + batch + big + mixed,
                    [chain(short), chain(batch), chain(big), chain(mixed)])
    assert N - 2 not in tables(f)  # (the big chain's parallel loop packs N + 2 pointers)
    sv = [rng.standard_normal((3, 4)) for _ in short]
    bv = [rng.standard_normal((6, 4)) for _ in batch]
    gv = [rng.standard_normal(1 << 16).astype("float32") for _ in big]
    mv = [rng.standard_normal((3, 4) if i else (1, 4)) for i in range(N)]
    got = f(*sv, *bv, *gv, *mv)
    for g, arrays, tol in zip(got, (sv, bv, gv, mv), (1e-14, 1e-14, 1e-6, 1e-14)):
        np.testing.assert_allclose(g, in_order(arrays), rtol=tol, atol=tol)


def test_gradient_of_a_weight_used_at_every_step():
    """An unrolled loop h <- tanh(x_t W + h U): U's gradient sums one product per step,
    compared with the numpy reference backend."""
    rng = np.random.default_rng(4)
    T = N
    x = sg.tensor("x", ("batch", T, 3), "float32")
    W = sg.shared(rng.standard_normal((3, 8)).astype("float32") * 0.5, name="W")
    U = sg.shared(rng.standard_normal((8, 8)).astype("float32") * 0.3, name="U")
    h = sg.tanh(x[:, 0] @ W)
    for t in range(1, T):
        h = sg.tanh(x[:, t] @ W + h @ U)
    loss = (h ** 2).sum()
    grads = sg.grad(loss, [W, U])
    llvm = sg.function([x], [loss, *grads], backend="llvm")
    ref = sg.function([x], [loss, *grads], backend="numpy")
    assert any(n >= JOIN_TABLE_PIECES - 2 for n in tables(llvm))
    xv = rng.standard_normal((4, T, 3)).astype("float32")
    for got, expected in zip(llvm(xv), ref(xv)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
