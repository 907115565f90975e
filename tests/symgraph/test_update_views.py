"""Outputs that read a shared variable's NEW value through a view (a reshape, a transpose of
a reshape) while the llvm backend writes that update in place: each must see the new value,
as the numpy reference does. Oracle: numpy on the same arrays.
"""

import numpy as np

import symgraph as sg


def test_a_transpose_of_a_reshaped_update_reads_the_new_value(backend):
    """Fused into the update's loop, it read elements of W not yet written (stale)."""
    W0 = np.arange(6.0).reshape(3, 2)
    W = sg.shared(W0.copy(), name="W")
    new = W * 2
    out = sg.function([], sg.transpose(sg.reshape(new, (2, 3)), (1, 0)) * 3,
                      updates={W: new}, backend=backend)()
    np.testing.assert_array_equal(out, (W0 * 2).reshape(2, 3).T * 3)
    np.testing.assert_array_equal(W.get_value(), W0 * 2)


def test_a_scalar_of_a_reshaped_update_reads_the_new_value(backend):
    """A 0-d kernel was hoisted before the update's kernel and read the old W."""
    W0 = np.arange(6.0).reshape(3, 2)
    W = sg.shared(W0.copy(), name="W")
    new = W * 2
    f = sg.function([], sg.sum(sg.reshape(new, (6,))), updates={W: new}, backend=backend)
    assert f() == (W0 * 2).sum()


def test_monitoring_the_new_weights_of_an_sgd_step(backend):
    """max |W_new| over the flattened matrix, beside the step that writes W_new in place (the
    SGD update folded into its gemm): it was max |W_old|."""
    rng = np.random.default_rng(0)
    X, Y, W0 = rng.standard_normal((8, 4)), rng.standard_normal((8, 3)), rng.standard_normal(
        (4, 3))
    W = sg.shared(W0.copy(), name="W")
    x, y = sg.tensor("x", ("batch", 4)), sg.tensor("y", ("batch", 3))
    loss = sg.mean(sg.square(x @ W - y))
    new = W - 0.1 * sg.grad(loss, W)
    f = sg.function([x, y], [loss, sg.max(sg.abs(sg.reshape(new, (-1,))))],
                    updates={W: new}, backend=backend)
    _, biggest = f(X, Y)
    expected = W0 - 0.1 * (2.0 / Y.size) * X.T @ (X @ W0 - Y)
    np.testing.assert_allclose(W.get_value(), expected, rtol=1e-12)
    assert biggest == np.abs(W.get_value()).max()
