"""Batched products reading their operands through views (codegen/fusion.py
``strided_matrices``, codegen/lower_blas.py ``_matrix_operand``): dimshuffles that are not
plain permutations, and what else reads such a view.

Oracles: numpy's matmul and the numpy backend.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg


@pytest.fixture(autouse=True)
def _fresh_cache(cache_env):
    yield


def test_dimshuffle_that_drops_and_adds_an_axis():
    """(3, 1, 5) squeezed, transposed and expanded is one dimshuffle ("x", 2, 0) of as many
    axes as its source: not a permutation (the analysis compared an "x" with axis numbers)."""
    x = sg.tensor("x", (3, 1, 5), "float32")
    y = sg.tensor("y", (1, 3, 4), "float32")
    out = sg.matmul(sg.expand_dims(sg.transpose(sg.squeeze(x, 1)), 0), y)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 1, 5)).astype(np.float32)
    Y = rng.standard_normal((1, 3, 4)).astype(np.float32)
    got = sg.function([x, y], out, backend="llvm")(X, Y)
    np.testing.assert_allclose(got, np.matmul(X[:, 0, :].T[None], Y), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, sg.function([x, y], out, backend="numpy")(X, Y),
                               rtol=1e-5, atol=1e-5)


def _heads(x, perm):
    return sg.transpose(x, perm)


@pytest.mark.parametrize("case", ["batch-axes-permuted", "symbolic-leading-dim", "alias-source",
                                  "other-clients"])
def test_views_on_every_route_equal_numpy(case):
    """Views the split stacks read in place (SPLIT_MATMUL_MINIMUM is passed): batch axes
    permuted too ((2, 0, 1, 3) of a 4-d source), a leading dimension known at run time
    only (a symbolic batch axis between the matrix axes, in the range function), heads of a
    reshape, and a view that an elementwise op and a sum read as well."""
    rng = np.random.default_rng(3)
    if case == "batch-axes-permuted":
        x = sg.tensor("x", (4, 40, 32, 16), "float32")
        y = sg.tensor("y", (32, 24, 16), "float32")
        outs = [sg.matmul(_heads(x, (2, 0, 1, 3)), sg.expand_dims(sg.transpose(y, (0, 2, 1)), 1))]
        args = [rng.standard_normal((4, 40, 32, 16)), rng.standard_normal((32, 24, 16))]
    elif case == "symbolic-leading-dim":
        x = sg.tensor("x", (32, "b", 16), "float32")
        y = sg.tensor("y", (32, "b", 16), "float32")
        outs = [sg.matmul(_heads(x, (1, 0, 2)), _heads(y, (1, 2, 0)))]
        args = [rng.standard_normal((32, 40, 16)), rng.standard_normal((32, 40, 16))]
    elif case == "alias-source":
        x = sg.tensor("x", (40, 32, 64), "float32")
        y = sg.tensor("y", (40, 32, 64), "float32")
        q = _heads(sg.reshape(x, (40, 32, 4, 16)), (0, 2, 1, 3))
        outs = [sg.matmul(q, _heads(sg.reshape(y, (40, 32, 4, 16)), (0, 2, 3, 1)))]
        args = [rng.standard_normal((40, 32, 64)), rng.standard_normal((40, 32, 64))]
    else:
        x = sg.tensor("x", (40, 32, 4, 16), "float32")
        y = sg.tensor("y", (40, 4, 16, 32), "float32")
        q = _heads(x, (0, 2, 1, 3))
        outs = [sg.matmul(q, y), sg.exp(q * 0.1), sg.sum(q, axis=2)]
        args = [rng.standard_normal((40, 32, 4, 16)), rng.standard_normal((40, 4, 16, 32))]
    args = [a.astype(np.float32) for a in args]
    f = sg.function([x, y], outs, backend="llvm")
    product, = [kv for kv in f.kernels if any(n.op.name == "matmul" for n in kv.nodes)]
    assert product.parallel and any(n.op.name == "transpose" for n in product.nodes)
    ref = sg.function([x, y], outs, backend="numpy")
    for got, want in zip(f(*args), ref(*args)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
