"""Graphs with long chains of elementwise nodes compile: code generation walks inline chains
recursively, and one of 330+ (in an unrolled LSTM's gradient, a sum of one product per step)
overflowed Python's recursion limit; ``codegen.fusion.MAX_INLINE_DEPTH`` cuts them."""

import numpy as np

import symgraph as sg


def test_a_chain_of_a_thousand_elementwise_nodes(backend):
    x = sg.tensor("x", (3, 5))
    acc = x
    for _ in range(500):
        acc = acc * 0.999 + x
    x0 = np.arange(15.0).reshape(3, 5)
    want = x0.copy()
    for _ in range(500):
        want = want * 0.999 + x0
    np.testing.assert_allclose(sg.function([x], acc, backend=backend)(x0), want, rtol=1e-12)

