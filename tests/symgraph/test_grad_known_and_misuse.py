"""``known_grads`` (a gradient given for a variable, as torch's ``grad_outputs``) and the
differentiation API's errors for misuse: each names the function, the variable and the
user's line, never a raw AttributeError."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg

THIS_FILE = "test_grad_known_and_misuse.py"


def test_known_grads_seed_an_intermediate(backend):
    x = sg.tensor("x", (3,))
    y = sg.tanh(x)
    gy = sg.tensor("gy", (3,))
    gx = sg.grad(None, x, known_grads={y: gy})
    xv, gyv = np.array([0.1, -0.5, 2.0]), np.array([1.0, 2.0, -3.0])
    got = sg.function([x, gy], gx, backend=backend)(xv, gyv)
    np.testing.assert_allclose(got, gyv * (1 - np.tanh(xv) ** 2), rtol=1e-12)


def test_known_grads_combine_with_a_cost_and_accept_numbers(backend):
    x = sg.tensor("x", (3,))
    y = x * 3.0
    gx = sg.grad(sg.sum(x**2), x, known_grads={y: np.array([1.0, 0.0, -1.0])})
    xv = np.array([1.0, 2.0, 3.0])
    got = sg.function([x], gx, backend=backend)(xv)
    np.testing.assert_allclose(got, 2 * xv + 3 * np.array([1.0, 0.0, -1.0]))


def test_known_grads_of_the_cost_replace_the_seed_of_ones(backend):
    # as torch.autograd.grad(y, x, grad_outputs=g) and Theano's known_grads: g * tanh'(x);
    # the seed of ones was added to the known gradient, (1 + g) * tanh'(x)
    x, gy = sg.tensor("x", (3,)), sg.tensor("gy", (3,))
    y = sg.tanh(x)
    c = sg.sum(y)
    gx_vec = sg.grad(y, x, known_grads={y: gy})
    gx_scalar = sg.grad(c, x, known_grads={c: 2.0 * sg.sum(gy)})
    xv, gyv = np.array([0.3, -1.2, 2.0]), np.array([1.0, 2.0, 3.0])
    got_vec, got_scalar = sg.function([x, gy], [gx_vec, gx_scalar], backend=backend)(xv, gyv)
    np.testing.assert_allclose(got_vec, gyv * (1 - np.tanh(xv) ** 2), rtol=1e-12)
    np.testing.assert_allclose(got_scalar, 2.0 * gyv.sum() * (1 - np.tanh(xv) ** 2), rtol=1e-12)


def test_a_known_gradient_variable_broadcasts_to_its_variables_shape(backend):
    # a number was filled to the variable's shape, a Variable was not: a 0-d known gradient
    # of a vector gave a 0-d "gradient" of it and crashed a matmul's bprop
    x, W = sg.tensor("x", (3,)), sg.tensor("W", (3, 2))
    y = x @ W
    two = sg.constant(2.0)
    g_self = sg.grad(None, x, known_grads={x: two})
    assert g_self.shape == (3,)
    gx = sg.grad(None, x, known_grads={y: two})
    xv, Wv = np.array([0.5, -1.0, 2.0]), np.arange(6.0).reshape(3, 2)
    got_self, got = sg.function([x, W], [g_self, gx], backend=backend)(xv, Wv)
    np.testing.assert_array_equal(got_self, [2.0, 2.0, 2.0])
    np.testing.assert_allclose(got, Wv @ np.array([2.0, 2.0]))  # d(x @ W . [2, 2])/dx
    with pytest.raises(ValueError, match=rf"known gradient of 'known_y'.*{THIS_FILE}.*\(4,\)"):
        known_y = sg.tanh(x)
        known_y.name = "known_y"
        sg.grad(None, x, known_grads={known_y: sg.constant(np.ones(4))})


def test_non_scalar_cost_needs_its_own_known_gradient():
    # a known gradient of another variable did not make a vector cost's seed explicit: the
    # cost was silently summed (the docs ask for .sum() or the cost's gradient)
    x = sg.tensor("vector_cost_x", (3,))
    y = sg.tanh(x)
    with pytest.raises(ValueError, match=r"scalar.*\(3,\)"):
        sg.grad(y, x, known_grads={x * 2.0: np.ones(3)})


def test_misuse_is_a_clear_error_not_a_raw_traceback():
    # were: "cost must be a float, got int64" (no name, no line); TypeError "'NoneType'
    # object is not iterable"; AttributeError "'numpy.ndarray' object has no attribute
    # 'ndim'/'name'"; AttributeError "'float' object has no attribute 'ndim'"; and hessian
    # of a vector told the user to "pass known_grads", which hessian does not take
    x = sg.tensor("x", (3,))
    count = sg.cast(x, "int64").sum()
    count.name = "int_cost"
    with pytest.raises(TypeError, match=rf"int64 for 'int_cost'.*{THIS_FILE}"):
        sg.grad(count, x)
    with pytest.raises(TypeError, match="wrt must be a symgraph Variable.*NoneType"):
        sg.grad(sg.sum(x), None)
    with pytest.raises(TypeError, match="jacobian: expr must be a symgraph Variable"):
        sg.jacobian(np.ones(3), x)
    with pytest.raises(TypeError, match="hessian: wrt must be symgraph Variables"):
        sg.hessian(sg.sum(x), np.ones(3))
    with pytest.raises(TypeError, match="hvp: wrt must be symgraph Variables"):
        sg.hvp(sg.sum(x), np.ones(3), np.ones(3))
    with pytest.raises(TypeError, match="check_grad: fn must return a symgraph Variable"):
        sg.check_grad(lambda a: 1.0, [np.ones(3)])
    with pytest.raises(ValueError, match=r"hessian: cost must be a scalar.*\(3,\)") as info:
        sg.hessian(x * 2.0, x)
    assert "known_grads" not in str(info.value) and THIS_FILE in str(info.value)


# --------------------------------------------------------------------------- graph structure


def test_an_unnamed_variable_is_named_by_its_expression():
    # were "'matmul'" for any product and "'variable'" for a constant: which of the
    # training step's products or constants was meant, the user could not tell
    x = sg.tensor("x", ("batch", 3))
    W = sg.shared(np.ones((3, 2)), name="W")
    logits = x @ W
    with pytest.raises(ValueError, match="must be a scalar") as info:
        sg.grad(logits, W)
    assert f"for '{sg.pprint(logits)}' (created at" in str(info.value), str(info.value)
    with pytest.raises(sg.DisconnectedInputError) as info:
        sg.grad(logits.sum(), sg.constant(2.0))
    assert "on '2.0' (created at" in str(info.value), str(info.value)
