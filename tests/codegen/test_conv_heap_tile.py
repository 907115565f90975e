"""Convolutions whose single output row unfolds to more than the stack tile
(codegen.lower_conv.TILE_BYTES), or whose spatial sizes are symbolic: the gemm route with a
``malloc``'d im2col tile, and the direct loops when ``malloc`` returns NULL -- forward and
both gradients against torch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import run_fresh

import symgraph as sg
from codegen import lower_conv

KW = dict(stride=(2, 1), padding=(2, 1), dilation=(1, 2), groups=2)


def _torch(x, w, r):
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    y = F.conv2d(tx, tw, **KW)
    gx, gw = torch.autograd.grad((y * torch.tensor(r)).sum(), [tx, tw])
    return [y.detach().numpy(), gx.numpy(), gw.numpy()]


def _case(batch):
    rng = np.random.default_rng(batch)
    x, w = rng.normal(size=(batch, 8, 11, 7)), rng.normal(size=(8, 4, 3, 2))
    y = F.conv2d(torch.tensor(x), torch.tensor(w), **KW)
    return x, w, rng.normal(size=tuple(y.shape))


def _sg(x, w, r):
    xv, wv, rv = sg.tensor("x", x.shape), sg.tensor("w", w.shape), sg.tensor("r", r.shape)
    y = sg.nn.conv2d(xv, wv, **KW)
    f = sg.function([xv, wv, rv], [y, *sg.grad(sg.sum(y * rv), [xv, wv])], backend="llvm")
    return f, f(x, w, r)


@pytest.mark.parametrize("heap_bytes", [1, 4096])
def test_rows_too_big_for_the_stack_take_a_heap_tile(heap_bytes, monkeypatch):
    """One row per tile (the heap budget below a row) or several with a short last one."""
    monkeypatch.setattr(lower_conv, "TILE_BYTES", 64)  # no row fits on the stack
    monkeypatch.setattr(lower_conv, "HEAP_TILE_BYTES", heap_bytes)
    x, w, r = _case(2 if heap_bytes == 1 else 3)  # another graph: not the other's program
    f, got = _sg(x, w, r)
    assert sum(info.blas for info in f.kernels) == 3  # all three on the gemm route
    assert "@malloc" in f.llvm_ir(optimized=False).split("define", 1)[1]
    for g, want in zip(got, _torch(x, w, r)):
        np.testing.assert_allclose(g, want, rtol=1e-11, atol=1e-11)


_NO_MALLOC = r"""
import ctypes, json
import numpy as np
import symgraph as sg
from codegen import lower_conv
from codegen.native.jit import add_symbol

lower_conv.TILE_BYTES = 64
calls = []

@ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_size_t)
def no_memory(size):
    calls.append(size)
    return None

add_symbol("malloc", ctypes.cast(no_memory, ctypes.c_void_p).value)
x, w, r = (np.array(a) for a in json.loads({arrays!r}))
xv, wv, rv = sg.tensor("x", x.shape), sg.tensor("w", w.shape), sg.tensor("r", r.shape)
y = sg.nn.conv2d(xv, wv, stride=(2, 1), padding=(2, 1), dilation=(1, 2), groups=2)
f = sg.function([xv, wv, rv], [y, *sg.grad(sg.sum(y * rv), [xv, wv])], backend="llvm")
out = [a.tolist() for a in f(x, w, r)]
print(json.dumps({{"calls": len(calls) > 0, "out": out}}))
"""


def test_without_memory_the_direct_loops_run(tmp_path):
    x, w, r = _case(4)
    arrays = json.dumps([x.tolist(), w.tolist(), r.tolist()])
    out = json.loads(run_fresh(_NO_MALLOC.format(arrays=arrays), tmp_path))
    assert out["calls"]  # malloc was asked, said no
    for g, want in zip(out["out"], _torch(x, w, r)):
        np.testing.assert_allclose(np.array(g), want, rtol=1e-11, atol=1e-11)


def test_symbolic_spatial_sizes_take_the_gemm_route_at_every_size():
    """Spatial sizes known only at run time: the tile is sized per call (one function,
    images from 1x1 output to many tiles of rows), forward and both gradients vs torch."""
    xv = sg.tensor("x", ("n", 8, "h", "w"))
    wv = sg.tensor("w", (8, 4, 3, 2))
    y = sg.nn.conv2d(xv, wv, **KW)
    rv = sg.tensor("r", y.shape)
    f = sg.function([xv, wv, rv], [y, *sg.grad(sg.sum(y * rv), [xv, wv])], backend="llvm")
    assert sum(info.blas for info in f.kernels) == 3
    rng = np.random.default_rng(7)
    for shape in [(2, 8, 11, 7), (1, 8, 1, 2), (3, 8, 40, 33), (2, 8, 300, 5)]:
        x, w = rng.normal(size=shape), rng.normal(size=(8, 4, 3, 2))
        r = rng.normal(size=tuple(F.conv2d(torch.tensor(x), torch.tensor(w), **KW).shape))
        for g, want in zip(f(x, w, r), _torch(x, w, r)):
            np.testing.assert_allclose(g, want, rtol=1e-11, atol=1e-11)
