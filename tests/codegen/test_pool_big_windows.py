"""Max pools whose windows have more than codegen.lower_pool.UNROLL_TAPS taps scan them with
loops instead of one unrolled select per tap (whose compile grew to 77 s for a 56x56 global
max pool): the IR stays small, and forward, gradient and the gradient's gradient (the
gather) follow torch's first-maximum rule -- ties, NaN, -inf windows, padding, strides --
against torch, and against the numpy reference with every window scanned."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import symgraph as sg
from codegen import lower_pool


def _graph(shape, kernel, stride, padding, dtype="float64"):
    """(x, r, v) -> pooled, its gradient for cotangent r, and the gradient of <grad, v>
    in r (MaxPool2DGather of v)."""
    x = sg.tensor("x", shape, dtype)
    y = sg.nn.max_pool2d(x, kernel, stride, padding)
    r, v = sg.tensor("r", y.shape, dtype), sg.tensor("v", shape, dtype)
    gx = sg.grad(sg.sum(y * r), x)
    return [x, r, v], [y, gx, sg.grad(sg.sum(gx * v), r)]


def _inputs(shape, out_shape, rng):
    x = np.round(rng.normal(size=shape))  # many ties
    x[0, 0, :3, :3] = -np.inf
    x[-1, -1, 1, 2] = x[-1, -1, 2, 1] = np.nan
    return x, rng.normal(size=out_shape), rng.normal(size=shape)


# N, C, H, W, kernel, stride, padding
CASES = [
    ((2, 3, 32, 32), 32, None, 0),           # a global max pool
    ((2, 2, 23, 19), (9, 10), (4, 3), (4, 5)),
    ((1, 4, 17, 30), (12, 7), 2, (6, 3)),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_big_windows_match_torch(case):
    shape, kernel, stride, padding = case
    ins, outs = _graph(shape, kernel, stride, padding)
    f = sg.function(ins, outs, backend="llvm")
    assert len(f.llvm_ir(optimized=False).splitlines()) < 2000  # unrolled: 56k for 32x32
    rng = np.random.default_rng(sum(shape))
    tx = torch.zeros(shape, dtype=torch.float64)
    x, r, v = _inputs(shape, tuple(F.max_pool2d(tx, kernel, stride, padding).shape), rng)
    tx = torch.tensor(x, requires_grad=True)
    tr = torch.tensor(r, requires_grad=True)
    ty = F.max_pool2d(tx, kernel, stride, padding)
    (gx,) = torch.autograd.grad((ty * tr).sum(), tx, create_graph=True)
    (gr,) = torch.autograd.grad((gx * torch.tensor(v)).sum(), tr)
    for k, (got, want) in enumerate(zip(f(x, r, v), [ty, gx, gr])):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-12, atol=1e-12,
                                   err_msg=f"output {k}")


@pytest.fixture
def scan_every_window(monkeypatch):
    """Every window scanned by loops (a registered tunable: part of the program key)."""
    monkeypatch.setattr(lower_pool, "UNROLL_TAPS", 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", [((3, 2, 7, 9), 3, 2, 1), ((2, 3, 8, 8), 2, None, 0),
                                  ((2, 2, 6, 9), (1, 3), (1, 3), 0),
                                  ((1, 3, 9, 7), (3, 2), 1, (1, 1))], ids=str)
def test_scanned_windows_equal_the_numpy_reference(case, dtype, scan_every_window):
    shape, kernel, stride, padding = case
    ins, outs = _graph(shape, kernel, stride, padding, dtype)
    x, r, v = (a.astype(dtype) for a in _inputs(shape, outs[0].shape,
                                                  np.random.default_rng(len(case))))
    want = sg.function(ins, outs, backend="numpy")(x, r, v)
    got = sg.function(ins, outs, backend="llvm")(x, r, v)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(g, w, err_msg=f"output {k}")
