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
