"""Convolutions on the direct route (depthwise, symbolic spatial sizes) with a NaN or inf
weight or output gradient: the zero padding still multiplies them (0 * inf is NaN), as in
torch and the numpy backend -- the direct loops skip padded taps, so they add those products
apart (codegen.lower_conv._Taps.padded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import symgraph as sg


def _torch(x, w, r, padding, groups):
    tx, tw = torch.tensor(x), torch.tensor(w, requires_grad=True)
    y = F.conv2d(tx, tw, padding=padding, groups=groups)
    (gw,) = torch.autograd.grad((y * torch.tensor(r)).sum(), tw)
    return y.detach().numpy(), gw.numpy()


@pytest.mark.parametrize("groups, symbolic", [(3, False), (3, True), (1, True)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_and_gradients_reach_the_border(groups, symbolic, bad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 6))
    w = rng.standard_normal((3, 3 // groups, 3, 3))
    r = rng.standard_normal((2, 3, 5, 6))
    w[1, 0, 0, 2] = bad  # a corner tap: it reaches the padding along the top and right
    r[0, 2, 4, 0] = bad  # a border output: some taps there read the padding
    shape = ("n", 3, "h", "w") if symbolic else x.shape
    xv, wv, rv = sg.tensor("x", shape), sg.tensor("w", w.shape), sg.tensor("r", shape)
    y = sg.nn.conv2d(xv, wv, padding=1, groups=groups)
    outs = [y, sg.grad(sg.sum(y * rv), wv)]
    w_ok = np.where(np.isfinite(w), w, 0.5)  # the weight gradient with finite weights
    with np.errstate(invalid="ignore"):
        want_y, _ = _torch(x, w, r, 1, groups)
        _, want_gw = _torch(x, w_ok, r, 1, groups)
        for backend in ("llvm", "numpy"):
            f = sg.function([xv, wv, rv], outs, backend=backend)
            got_y, _ = f(x, w, r)
            _, got_gw = f(x, w_ok, r)
            np.testing.assert_allclose(got_y, want_y, rtol=1e-12, equal_nan=True)
            np.testing.assert_allclose(got_gw, want_gw, rtol=1e-12, equal_nan=True)
    assert np.isnan(want_y).any() and np.isnan(want_gw).any()  # the cases do reach NaN
