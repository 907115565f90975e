"""sg.nn.conv2d, conv1d, max_pool2d, avg_pool2d and global average pooling against torch
(float64): values, first-order gradients, second order (grad of grad . v) over strides,
paddings (int, pair, "same"), dilations, groups, odd sizes, bias; both backends; bad
shapes raise while building, naming the op and the shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import fd_grad

import symgraph as sg

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")


def _torch_run(torch_fn, arrays, second_order: bool, weights, vs):
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = torch_fn(*ts)
    cost = (torch.sin(out) * torch.tensor(weights)).sum()
    grads = torch.autograd.grad(cost, ts, create_graph=second_order)
    result = [out.detach().numpy(), *(g.detach().numpy() for g in grads)]
    if second_order:
        dot = sum((g * torch.tensor(v)).sum() for g, v in zip(grads, vs))
        result += [h.detach().numpy() for h in torch.autograd.grad(dot, ts)]
    return result


def check_vs_torch(sg_fn, torch_fn, arrays, backend, *, second_order=False, dtype="float64",
                   seed=0):
    """Value, gradients of ``sum(sin(out) * r)`` and (``second_order``) the gradient of
    ``sum_i <grad_i, v_i>``, on ``backend``, against torch float64."""
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    xs = [sg.tensor(f"a{i}", a.shape, dtype) for i, a in enumerate(arrays)]
    out = sg_fn(*xs)
    weights = rng.normal(size=out.shape)
    cost = sg.sum(sg.sin(out) * weights.astype(dtype))
    grads = sg.grad(cost, xs)
    outputs = [out, *grads]
    vs = [rng.normal(size=a.shape) for a in arrays]
    if second_order:
        dot = sum(sg.sum(g * v.astype(dtype)) for g, v in zip(grads, vs))
        outputs += sg.grad(dot, xs)
    got = sg.function(xs, outputs, backend=backend)(*arrays)
    expected = _torch_run(torch_fn, [a.astype(np.float64) for a in arrays], second_order,
                          weights, vs)
    tol = {"rtol": 2e-4, "atol": 2e-5} if dtype == "float32" else {"rtol": 1e-9, "atol": 1e-10}
    for k, (g, e) in enumerate(zip(got, expected)):
        assert np.asarray(g).dtype == np.dtype(dtype), k
        np.testing.assert_allclose(g, e, err_msg=f"output {k}", **tol)


# N, C, H, W, F, kernel, stride, padding, dilation, groups, bias
CONV2D_CASES = [
    (2, 3, 7, 6, 4, (3, 3), 1, 0, 1, 1, True),
    (2, 3, 8, 9, 5, (3, 2), 2, 1, 1, 1, False),
    (1, 4, 9, 7, 6, (2, 3), (2, 1), (1, 2), (1, 2), 2, True),
    (2, 4, 6, 6, 4, (3, 3), 1, "same", 1, 4, True),        # depthwise
    (2, 6, 5, 8, 12, (3, 3), 1, "same", 2, 6, False),      # depthwise, multiplier 2
    (1, 2, 6, 7, 3, (2, 4), 1, "same", (2, 1), 1, True),    # even kernel: asymmetric pad
    (3, 1, 5, 5, 2, (5, 5), 3, 2, 1, 1, True),             # kernel = input, odd stride
    (1, 8, 4, 4, 16, (1, 1), 1, 0, 1, 1, True),            # pointwise
    (2, 2, 7, 7, 4, (3, 3), (3, 2), 0, 1, 2, False),
]


@pytest.mark.parametrize("case", CONV2D_CASES, ids=str)
def test_conv2d_matches_torch(case, backend):
    n, c, h, w, f, (kh, kw), stride, padding, dilation, groups, bias = case
    rng = np.random.default_rng(1)
    arrays = [rng.normal(size=(n, c, h, w)), rng.normal(size=(f, c // groups, kh, kw))]
    if bias:
        arrays.append(rng.normal(size=f))
    kw_args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    check_vs_torch(lambda *a: sg.nn.conv2d(*a, **kw_args),
                   lambda *a: F.conv2d(*a, **kw_args), arrays, backend)


def test_conv2d_float32(backend):
    rng = np.random.default_rng(2)
    arrays = [rng.normal(size=(2, 3, 9, 8)), rng.normal(size=(5, 3, 3, 3)), rng.normal(size=5)]
    check_vs_torch(lambda *a: sg.nn.conv2d(*a, padding=1, stride=2),
                   lambda *a: F.conv2d(*a, padding=1, stride=2), arrays, backend,
                   dtype="float32")


def test_conv2d_wide_channels(backend):
    """Enough channels for the gemm route of the LLVM backend."""
    rng = np.random.default_rng(3)
    arrays = [rng.normal(size=(3, 16, 10, 9)), rng.normal(size=(32, 16, 3, 3)),
              rng.normal(size=32)]
    check_vs_torch(lambda *a: sg.nn.conv2d(*a, padding=1), lambda *a: F.conv2d(*a, padding=1),
                   arrays, backend)
    check_vs_torch(lambda *a: sg.nn.conv2d(*a, stride=2, dilation=2, groups=2),
                   lambda *a: F.conv2d(*a, stride=2, dilation=2, groups=2),
                   [arrays[0], arrays[1][:, :8], arrays[2]], backend)


@pytest.mark.parametrize("case", [(1, 1, 0, 1, True), (2, 3, 2, 1, False), (1, 3, "same", 2, True),
                                  (3, 2, 1, 2, True)], ids=str)
def test_conv1d_matches_torch(case, backend):
    stride, k, padding, dilation, bias = case
    rng = np.random.default_rng(4)
    arrays = [rng.normal(size=(2, 3, 11)), rng.normal(size=(4, 3, k))]
    if bias:
        arrays.append(rng.normal(size=4))
    kw_args = dict(stride=stride, padding=padding, dilation=dilation)
    check_vs_torch(lambda *a: sg.nn.conv1d(*a, **kw_args),
                   lambda *a: F.conv1d(*a, **kw_args), arrays, backend)


@pytest.mark.parametrize("case", [
    (2, 3, 1, 1, True), ((3, 2), 1, 0, 2, False), (3, 2, (1, 0), 1, True), (2, 1, 1, 2, False)],
    ids=str)
def test_conv2d_second_order(case, backend):
    """grad of (grad . v) through Conv2D, Conv2DInputGrad and Conv2DWeightGrad."""
    kernel, stride, padding, dilation, bias = case
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    rng = np.random.default_rng(5)
    groups = 2 if bias else 1
    arrays = [rng.normal(size=(2, 4, 6, 7)), rng.normal(size=(4, 4 // groups, kh, kw))]
    if bias:
        arrays.append(rng.normal(size=4))
    kw_args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    check_vs_torch(lambda *a: sg.nn.conv2d(*a, **kw_args),
                   lambda *a: F.conv2d(*a, **kw_args), arrays, backend, second_order=True)


def test_depthwise_second_order(backend):
    """Depthwise (one filter per group: the LLVM backend's direct loops) to second order."""
    rng = np.random.default_rng(14)
    arrays = [rng.normal(size=(2, 3, 6, 5)), rng.normal(size=(3, 1, 3, 2)), rng.normal(size=3)]
    kw_args = dict(stride=(1, 2), padding=(1, 0), dilation=(2, 1), groups=3)
    check_vs_torch(lambda *a: sg.nn.conv2d(*a, **kw_args),
                   lambda *a: F.conv2d(*a, **kw_args), arrays, backend, second_order=True)


def test_conv2d_second_order_vs_finite_differences(backend):
    rng = np.random.default_rng(6)
    x0, w0, v = rng.normal(size=(1, 2, 5, 5)), rng.normal(size=(3, 2, 3, 3)), None
    x, w = sg.tensor("x", x0.shape), sg.tensor("w", w0.shape)
    gx = sg.grad(sg.sum(sg.tanh(sg.nn.conv2d(x, w, stride=2, padding=1))), x)
    v = rng.normal(size=x0.shape)
    hv = sg.grad(sg.sum(gx * v), w)
    got = sg.function([x, w], hv, backend=backend)(x0, w0)
    first = sg.function([x, w], sg.sum(gx * v), backend=backend)
    np.testing.assert_allclose(got, fd_grad(lambda a: first(x0, a), w0), rtol=1e-6, atol=1e-8)


def _pool_input(rng, shape, ties: bool):
    if ties:  # few distinct values: windows hold repeated maxima
        return rng.integers(-2, 3, size=shape).astype(np.float64)
    return rng.normal(size=shape)


POOL_CASES = [  # shape, kernel, stride, padding, ties
    ((2, 3, 6, 6), 2, None, 0, False),
    ((2, 3, 7, 5), 3, 2, 1, True),
    ((1, 2, 9, 8), (3, 2), (2, 1), (1, 1), True),
    ((2, 1, 5, 7), (2, 3), 1, (1, 0), False),
    ((1, 2, 8, 8), 4, 2, 2, True),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_matches_torch(case, kind, backend):
    shape, kernel, stride, padding, ties = case
    x = _pool_input(np.random.default_rng(7), shape, ties)
    sg_fn = getattr(sg.nn, f"{kind}_pool2d")
    torch_fn = getattr(F, f"{kind}_pool2d")
    check_vs_torch(lambda a: sg_fn(a, kernel, stride, padding),
                   lambda a: torch_fn(a, kernel, stride, padding), [x], backend)


@pytest.mark.parametrize("case", POOL_CASES[1:4], ids=str)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_second_order(case, kind, backend):
    shape, kernel, stride, padding, ties = case
    x = _pool_input(np.random.default_rng(8), shape, ties)
    sg_fn = getattr(sg.nn, f"{kind}_pool2d")
    torch_fn = getattr(F, f"{kind}_pool2d")
    check_vs_torch(lambda a: sg_fn(a, kernel, stride, padding),
                   lambda a: torch_fn(a, kernel, stride, padding), [x], backend,
                   second_order=True)


def test_max_pool_grad_of_grad_ops(backend):
    """The gradient ops' own gradients: MaxPool2DGrad in its upstream gradient is the
    gather at the arg-max (its adjoint), in x zero; vs finite differences."""
    rng = np.random.default_rng(9)
    x0 = rng.normal(size=(1, 2, 5, 6))
    g0 = rng.normal(size=(1, 2, 3, 4))
    v = rng.normal(size=x0.shape)
    x, g = sg.tensor("x", x0.shape), sg.tensor("g", g0.shape)
    (gx,) = sg.grad(sg.sum(sg.nn.max_pool2d(x, 2, 2, 1) * g), [x])
    dot = sg.sum(gx * v)
    hg, hx = sg.grad(dot, [g, x])
    f = sg.function([x, g], [hg, hx, dot], backend=backend)
    got_g, got_x, _ = f(x0, g0)
    np.testing.assert_allclose(got_g, fd_grad(lambda a: f(x0, a)[2], g0), atol=1e-8)
    np.testing.assert_allclose(got_x, 0.0)
    # and the gather's own gradient (third order) is the scatter again
    (h3,) = sg.grad(sg.sum(hg * g0), [x], disconnected="zero")
    np.testing.assert_allclose(sg.function([x, g], h3, backend=backend)(x0, g0), 0.0)


def test_avg_pool_grad_of_grad_op(backend):
    rng = np.random.default_rng(10)
    x0, g0 = rng.normal(size=(2, 1, 5, 5)), rng.normal(size=(2, 1, 3, 3))
    v = rng.normal(size=x0.shape)
    x, g = sg.tensor("x", x0.shape), sg.tensor("g", g0.shape)
    (gx,) = sg.grad(sg.sum(sg.nn.avg_pool2d(x, 3, 2, 1) * g), [x])
    dot = sg.sum(gx * v)
    f = sg.function([x, g], [sg.grad(dot, g), dot], backend=backend)
    got, _ = f(x0, g0)
    np.testing.assert_allclose(got, fd_grad(lambda a: f(x0, a)[1], g0), atol=1e-8)


def test_global_average_pool(backend):
    rng = np.random.default_rng(11)
    check_vs_torch(lambda a: sg.mean(a, axis=(2, 3)), lambda a: a.mean(dim=(2, 3)),
                   [rng.normal(size=(3, 4, 5, 6))], backend, second_order=True)


def test_symbolic_batch(backend):
    """One compiled function serves every batch size; spatial sizes stay static."""
    rng = np.random.default_rng(12)
    w0, b0 = rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4)
    x = sg.tensor("x", ("batch", 2, 8, 8))
    w, b = sg.shared(w0, "w"), sg.shared(b0, "b")
    y = sg.nn.max_pool2d(sg.nn.relu(sg.nn.conv2d(x, w, b, padding="same")), 2)
    assert y.shape[1:] == (4, 4, 4)
    cost = sg.mean(sg.nn.avg_pool2d(y, 2, 1, 1))
    f = sg.function([x], [y, *sg.grad(cost, [w, b])], backend=backend)
    for n in (1, 5):
        x0 = rng.normal(size=(n, 2, 8, 8))
        tx = torch.tensor(x0)
        tw = torch.tensor(w0, requires_grad=True)
        tb = torch.tensor(b0, requires_grad=True)
        ty = F.max_pool2d(F.relu(F.conv2d(tx, tw, tb, padding="same")), 2)
        F.avg_pool2d(ty, 2, 1, 1).mean().backward()
        for got, expected in zip(f(x0), [ty.detach(), tw.grad, tb.grad]):
            np.testing.assert_allclose(got, expected.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("build, words", [
    (lambda: sg.nn.conv2d(sg.tensor("x", (1, 3, 5, 5)), sg.tensor("w", (4, 2, 3, 3))),
     ["conv2d", "input channels 3", "(1, 3, 5, 5)", "(4, 2, 3, 3)"]),
    (lambda: sg.nn.conv2d(sg.tensor("x", (1, 4, 5, 5)), sg.tensor("w", (3, 2, 3, 3)),
                          groups=2), ["conv2d", "groups=2", "3 filters", "(3, 2, 3, 3)"]),
    (lambda: sg.nn.conv2d(sg.tensor("x", (1, 3, 5, 5)), sg.tensor("w", (4, 1, 3, 3)),
                          groups=2), ["conv2d", "groups=2", "3 input channels"]),
    (lambda: sg.nn.conv2d(sg.tensor("x", (1, 1, 4, 4)), sg.tensor("w", (1, 1, 6, 3)),
                          padding=0), ["conv2d", "bigger than the padded input", "(1, 1, 6, 3)"]),
    (lambda: sg.nn.conv2d(sg.tensor("x", (1, 1, 4, 4)), sg.tensor("w", (1, 1, 3, 3)),
                          dilation=3), ["conv2d", "dilated extent 7", "(1, 1, 4, 4)"]),
    (lambda: sg.nn.conv2d(sg.tensor("x", (1, 2, 4, 4)), sg.tensor("w", (3, 2, 3, 3)),
                          sg.tensor("b", (4,))), ["conv2d", "bias must be (3,)", "(4,)"]),
    (lambda: sg.nn.conv2d(sg.tensor("x", (1, 2, 4)), sg.tensor("w", (3, 2, 3, 3))),
     ["conv2d", "4 dims"]),
    # conv1d speaks of its own 3-d arrays, not the unit-height conv2d it builds
    (lambda: sg.nn.conv1d(sg.tensor("x", (1, 2, 4)), sg.tensor("w", (3, 3, 3))),
     ["conv1d: input channels 2", "(1, 2, 4)", "(3, 3, 3)"]),
    (lambda: sg.nn.conv1d(sg.tensor("x", (1, 2, 4)), sg.tensor("w", (3, 2, 7))),
     ["conv1d: kernel 7", "bigger than the padded input 4", "(1, 2, 4)", "(3, 2, 7)"]),
    (lambda: sg.nn.conv1d(sg.tensor("x", (1, 3, 4)), sg.tensor("w", (4, 3, 3)), groups=2),
     ["conv1d: groups=2", "3 input channels"]),
    (lambda: sg.nn.conv1d(sg.tensor("x", (1, 2, 4), "float32"), sg.tensor("w", (3, 2, 3))),
     ["conv1d: input and weight dtypes differ", "float32(1, 2, 4)"]),
    (lambda: sg.nn.conv1d(sg.tensor("x", (1, 2, 9)), sg.tensor("w", (3, 2, 3)), stride=2,
                          padding="same"),
     ["conv1d: padding='same' needs stride 1", "got stride 2"]),
    (lambda: sg.nn.conv1d(sg.tensor("x", (1, 2, 9)), sg.tensor("w", (3, 2, 3)),
                          padding="full"), ["conv1d: padding must be an int >= 0", "'full'"]),
    (lambda: sg.nn.conv1d(sg.tensor("x", (1, 2, 9)), sg.tensor("w", (3, 2, "k"))),
     ["conv1d: the weight must be (F, C/groups, k)", "(3, 2, k)"]),
    (lambda: sg.nn.max_pool2d(sg.tensor("x", (1, 2, 2, 2)), 3),
     ["max_pool2d", "bigger than the padded input", "(1, 2, 2, 2)"]),
    (lambda: sg.nn.avg_pool2d(sg.tensor("x", (1, 2, 6, 6)), 2, padding=2),
     ["avg_pool2d", "more than half the kernel"]),
])
def test_bad_shapes_raise_at_build_time(build, words):
    with pytest.raises((ValueError, TypeError)) as err:
        build()
    for word in words:
        assert word in str(err.value), (word, str(err.value))
    assert "test_ops_conv.py" in str(err.value)  # the user's line


@pytest.mark.parametrize("call, words", [
    (lambda x, w: sg.nn.conv2d(x, w, padding="full"), ["padding", "'full'"]),
    (lambda x, w: sg.nn.conv2d(x, w, stride=2, padding="same"), ["stride 1"]),
    (lambda x, w: sg.nn.conv2d(x, w, stride=0), ["stride", ">= 1"]),
    (lambda x, w: sg.nn.conv2d(x, w, groups=0), ["groups"]),
    (lambda x, w: sg.nn.max_pool2d(x, (2, 2, 2)), ["kernel_size"]),
    # a float where an int or a pair goes: the op and the argument, not "not iterable"
    (lambda x, w: sg.nn.conv2d(x, w, padding=1.0), ["conv2d", "padding", "1.0"]),
    (lambda x, w: sg.nn.conv2d(x, w, stride=2.0), ["conv2d", "stride", "2.0"]),
    (lambda x, w: sg.nn.max_pool2d(x, 2.0), ["max_pool2d", "kernel_size", "2.0"]),
])
def test_bad_arguments_raise(call, words):
    x, w = sg.tensor("x", (1, 2, 6, 6)), sg.tensor("w", (3, 2, 3, 3))
    with pytest.raises(ValueError) as err:
        call(x, w)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("tile_bytes", [2048, 1 << 20])
def test_llvm_gemm_route_tiles_rows(tile_bytes, monkeypatch):
    """The gemm route (BLAS kernels) with one im2col tile per image and with several tiles
    of output rows (a last short one) agrees with torch, forward and both gradients."""
    from codegen import lower_conv  # lazy: the LLVM backend's knob, only for this test

    monkeypatch.setattr(lower_conv, "TILE_BYTES", tile_bytes)
    rng = np.random.default_rng(13)
    batch = 2 if tile_bytes < 4096 else 3  # another graph: not the other case's program
    arrays = [rng.normal(size=(batch, 8, 11, 7)), rng.normal(size=(8, 4, 3, 2))]
    kw_args = dict(stride=(2, 1), padding=(2, 1), dilation=(1, 2), groups=2)
    check_vs_torch(lambda *a: sg.nn.conv2d(*a, **kw_args),
                   lambda *a: F.conv2d(*a, **kw_args), arrays, "llvm", second_order=True)
    x, w = sg.tensor("x", (batch, 8, 11, 7)), sg.tensor("w", (8, 4, 3, 2))
    y = sg.nn.conv2d(x, w, **kw_args)
    f = sg.function([x, w], [y, *sg.grad(sg.sum(y * y), [x, w])])
    assert sum(info.blas for info in f.kernels) == 3


@pytest.mark.parametrize("groups, w_shape, words", [
    (1, (5, 5, 3, 3), "input channels 3 != weight channels 5 x groups 1"),
    (2, (3, 1, 3, 3), "groups=2 does not divide the 3 filters"),
])
def test_symbolic_channel_mismatch_is_worded_alike_on_both_backends(groups, w_shape, words):
    """Channels known only at run time: the numpy backend checks them as the build-time
    rule and llvm's run-time shapes do (it reported einsum's or reshape's own error)."""
    x, w = sg.tensor("x", (1, "c", 5, 5)), sg.tensor("w", ("f", "cg", 3, 3))
    y = sg.nn.conv2d(x, w, groups=groups)
    g = sg.grad(sg.sum(y), x)
    for backend in ("numpy", "llvm"):
        for out in (y, g):
            with pytest.raises(Exception) as err:  # (the backends' classes differ)
                sg.function([x, w], out, backend=backend)(np.ones((1, 3, 5, 5)),
                                                           np.ones(w_shape))
            assert words in str(err.value), (backend, str(err.value))


def _conv_grad_ops():
    from symgraph.ops.conv import Conv2D, Conv2DInputGrad, Conv2DWeightGrad
    geometry = ((3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    return Conv2D(*geometry), Conv2DInputGrad(*geometry), Conv2DWeightGrad(*geometry)


@pytest.mark.parametrize("which, g_shape, dtype, words", [
    (which, *case) for which in ("input", "weight") for case in [
        ((2, 4, 6, 5), "float64", "output gradient shape (2, 4, 6, 5) != the convolution's "
                                  "output shape (2, 4, 6, 6)"),
        ((3, 4, 6, 6), "float64", "(3, 4, 6, 6) != the convolution's output shape (2, 4, 6, "),
        ((2, 4, 6, 6), "float32", "dtype float32 is not the operands' float64")]
] + [("input", (2, 5, 6, 6), "float64",
      "(2, 5, 6, 6) != the convolution's output shape (2, 4, 6, 6)")])
def test_hand_built_conv_gradients_check_the_incoming_gradient(which, g_shape, dtype, words):
    """The gradient ops built by hand with a gradient of the wrong shape or dtype are refused
    while building (a kernel would read past the gradient's buffer); the weight gradient
    takes its filter count from the gradient."""
    _, input_grad, weight_grad = _conv_grad_ops()
    x, w = sg.tensor("x", (2, 3, 6, 6)), sg.tensor("w", (4, 3, 3, 3))
    g = sg.tensor("g", g_shape, dtype)
    with pytest.raises((ValueError, TypeError)) as err:
        input_grad(g, w, x) if which == "input" else weight_grad(x, g)
    assert words in str(err.value), str(err.value)
    assert "test_ops_conv.py" in str(err.value)  # the user's line


def test_conv_gradient_batch_mismatch_at_run_time(backend):
    """Batches known only at run time: a gradient of another batch than the input's is
    refused by both backends, naming the shapes; the right one computes torch's value."""
    _, input_grad, weight_grad = _conv_grad_ops()
    rng = np.random.default_rng(14)
    x, w = sg.tensor("x", ("n", 3, 6, 6)), sg.tensor("w", (4, 3, 3, 3))
    g = sg.tensor("g", ("m", 4, 6, 6))
    f = sg.function([x, w, g], [input_grad(g, w, x), weight_grad(x, g)], backend=backend)
    x0, w0 = rng.normal(size=(2, 3, 6, 6)), rng.normal(size=(4, 3, 3, 3))
    with pytest.raises(Exception) as err:  # (the backends' classes differ)
        f(x0, w0, rng.normal(size=(3, 4, 6, 6)))
    assert "(3, 4, 6, 6) != the convolution's output shape (2, 4, 6, 6)" in str(err.value)
    g0 = rng.normal(size=(2, 4, 6, 6))
    tx, tw = torch.tensor(x0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    (F.conv2d(tx, tw, padding=1) * torch.tensor(g0)).sum().backward()
    got_x, got_w = f(x0, w0, g0)
    np.testing.assert_allclose(got_x, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_w, tw.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("images", [1, 2])
def test_numpy_reference_in_chunks_of_images(images, monkeypatch):
    """The numpy reference builds the windows of a few images at a time (``PATCH_BYTES``):
    convolution, both pools, to second order, with a last short chunk, still torch's."""
    from symgraph.ops import conv

    rng = np.random.default_rng(15)
    x = rng.normal(size=(5, 4, 7, 6))
    w = rng.normal(size=(6, 2, 3, 3))
    per_image = 4 * 7 * 6 * 9 * 8  # the largest windows here: the conv's, stride 1, "same"
    monkeypatch.setattr(conv, "PATCH_BYTES", images * per_image)
    assert len(conv.Conv2D((3, 3), (1, 1), ((1, 1), (1, 1)), groups=2).chunks(x.shape)) \
        == -(-5 // images)
    kw_args = dict(padding=1, groups=2)
    check_vs_torch(lambda *a: sg.nn.conv2d(*a, **kw_args),
                   lambda *a: F.conv2d(*a, **kw_args), [x, w], "numpy", second_order=True)
    for ours, theirs in ((sg.nn.max_pool2d, F.max_pool2d), (sg.nn.avg_pool2d, F.avg_pool2d)):
        check_vs_torch(lambda a, pool=ours: pool(a, 3, 2, 1),
                       lambda a, pool=theirs: pool(a, 3, 2, 1), [x], "numpy", second_order=True)


def test_numpy_reference_windows_bounded(monkeypatch):
    """What the chunks are for: the reference's peak memory for a convolution, a pool and
    their gradients stays under the size of the whole batch's windows."""
    import tracemalloc

    from symgraph.ops import conv

    per_image = 8 * 16 * 16 * 9 * 8  # windows of one (8, 16, 16) image, 3x3, "same"
    monkeypatch.setattr(conv, "PATCH_BYTES", per_image)
    rng = np.random.default_rng(16)
    x0, w0 = rng.normal(size=(32, 8, 16, 16)), rng.normal(size=(8, 8, 3, 3))
    x, w = sg.tensor("x", x0.shape), sg.tensor("w", w0.shape)
    y = sg.nn.max_pool2d(sg.nn.conv2d(x, w, padding=1), 2)
    f = sg.function([x, w], [y, *sg.grad(sg.sum(y * y), [x, w])], backend="numpy")
    tracemalloc.start()
    try:
        f(x0, w0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the whole batch's windows at once peaked at 16.5 MB here, in chunks of an image 2.5 MB
    assert peak < 32 * per_image, (peak, 32 * per_image)
