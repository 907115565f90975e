"""``sg.nn.gelu``, ``silu``, ``elu`` and ``log_sigmoid`` against torch (float64), both backends.

Values, first derivatives (``sg.grad`` of ``sum(f(x) * w)`` vs torch autograd) and second
derivatives (``sg.grad`` of ``grad . v`` vs torch's double backward) on points that
include 0, large magnitudes (where a naive formula overflows: ``exp(800)``) and float32.
"""

import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import symgraph as sg

POINTS = np.array([-800.0, -40.0, -5.0, -1.5, -0.3, 0.0, 1e-8, 0.2, 1.0, 2.5, 7.0, 40.0, 800.0])

CASES = {
    "gelu": (sg.nn.gelu, F.gelu),
    "silu": (sg.nn.silu, F.silu),
    "elu": (sg.nn.elu, F.elu),
    "elu_alpha": (lambda x: sg.nn.elu(x, alpha=0.4), lambda x: F.elu(x, alpha=0.4)),
    "log_sigmoid": (sg.nn.log_sigmoid, F.logsigmoid),
}


def _torch_derivatives(torch_fn, x, w, v):
    """torch's value, gradient of sum(f(x) w) and gradient of (that gradient . v)."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = torch_fn(xt)
    (g,) = torch.autograd.grad((y * torch.tensor(w)).sum(), xt, create_graph=True)
    (h,) = torch.autograd.grad((g * torch.tensor(v)).sum(), xt)
    return y.detach().numpy(), g.detach().numpy(), h.numpy()


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_gradient_and_second_derivative_match_torch(name, backend):
    sg_fn, torch_fn = CASES[name]
    rng = np.random.default_rng(0)
    w, v = rng.uniform(0.5, 1.5, POINTS.shape), rng.uniform(0.5, 1.5, POINTS.shape)
    x = sg.tensor("x", POINTS.shape)
    y = sg_fn(x)
    g = sg.grad(sg.sum(y * w), x)
    h = sg.grad(sg.sum(g * v), x)
    got = sg.function([x], [y, g, h], backend=backend)(POINTS)
    expected = _torch_derivatives(torch_fn, POINTS, w, v)
    for what, a, b in zip(("value", "gradient", "second derivative"), got, expected):
        assert np.all(np.isfinite(a)), (what, a)
        # atol: in the far tails both sides round 1 - sigmoid(40) (4e-18) differently
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-16, err_msg=what)


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_stays_float32(name, backend):
    sg_fn, torch_fn = CASES[name]
    xv = np.linspace(-6, 6, 25, dtype=np.float32)
    x = sg.tensor("x", xv.shape, dtype="float32")
    y = sg_fn(x)
    assert y.dtype == np.float32
    got = sg.function([x], y, backend=backend)(xv)
    assert got.dtype == np.float32
    expected = torch_fn(torch.tensor(xv, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=2e-7)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_keeps_its_relative_precision_in_the_negative_tail(backend, dtype):
    """gelu(x) for x from -9 to -3 is 1e-18 to 4e-3: computed as ``1 + erf`` it cancels
    (float32 gelu(-5) was 17% off on an AVX-512 host, and torch's float64 gelu is 0 below
    -8.3), so the oracle is mpmath at 50 digits."""
    xv = np.linspace(-9, -3, 61).astype(dtype)
    x = sg.tensor("x", xv.shape, dtype=dtype)
    got = sg.function([x], sg.nn.gelu(x), backend=backend)(xv)
    with mpmath.workdps(50):
        want = np.array([float(v * mpmath.ncdf(v)) for v in map(mpmath.mpf, xv.tolist())])
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-13)


def test_symbolic_batch_fuses_into_one_loop():
    # a composite is an elementwise tree: on llvm its forward is a single kernel
    x = sg.tensor("x", ("n", 3))
    y = sg.nn.silu(sg.nn.elu(x)) + sg.nn.log_sigmoid(x) * sg.nn.gelu(x)
    f = sg.function([x], y, backend="llvm")
    xv = np.linspace(-3, 3, 12).reshape(4, 3)
    t = torch.tensor(xv)
    expected = F.silu(F.elu(t)) + F.logsigmoid(t) * F.gelu(t)
    np.testing.assert_allclose(f(xv), expected.numpy(), rtol=1e-12)
    assert len(f.kernels) == 1


def test_integer_input_is_computed_in_float64(backend):
    xv = np.array([-2, 0, 3])
    x = sg.tensor("x", (3,), dtype="int64")
    got = sg.function([x], sg.nn.silu(x), backend=backend)(xv)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, F.silu(torch.tensor(xv, dtype=torch.float64)).numpy())


def test_elu_alpha_must_be_a_number():
    with pytest.raises(TypeError, match="alpha"):
        sg.nn.elu(sg.tensor("x", (2,)), alpha="1")
