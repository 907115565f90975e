"""The direct weight gradient's row of partial sums (codegen.lower_conv.ROW_BYTES): an
output row longer than it (or of a symbolic length) is swept in chunks, so a long 1-d
convolution keeps a small stack frame -- a row-sized ``alloca`` put megabytes on the stack
and crashed the process -- and the chunked sums agree with torch (forward and both
gradients, float32 and float64, static and symbolic lengths)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import run_fresh

import symgraph as sg
from codegen import lower_conv

# a thread with a 1 MiB stack runs weight gradients whose output rows hold 2 MiB (float64):
# depthwise (the direct loops) and a dense conv (the gemm route with a malloc'd tile, whose
# kernel also holds the direct loops as its fallback); torch is the oracle
_LONG_ROWS = r"""
import json, threading
import numpy as np
import torch
import torch.nn.functional as F
import symgraph as sg

length = 1 << 18
rng = np.random.default_rng(0)
errors = []

def check(shape, channels, groups, symbolic):
    x = sg.tensor("x", ("n", channels, "l") if symbolic else shape)
    w = sg.tensor("w", (channels, channels // groups, 3))
    y = sg.nn.conv1d(x, w, padding=1, groups=groups)
    f = sg.function([x, w], sg.grad(sg.sum(y * y), w), backend="llvm")
    xv, wv = rng.normal(size=shape), rng.normal(size=(channels, channels // groups, 3))
    got = []
    thread = threading.Thread(target=lambda: got.append(f(xv, wv)))
    thread.start()
    thread.join()
    tw = torch.tensor(wv, requires_grad=True)
    (F.conv1d(torch.tensor(xv), tw, padding=1, groups=groups) ** 2).sum().backward()
    want = tw.grad.numpy()
    errors.append(float(np.abs(got[0] - want).max() / np.abs(want).max()))

threading.stack_size(1 << 20)
check((1, 2, length), 2, 2, False)
check((1, 2, length), 2, 2, True)
check((1, 4, length), 4, 1, False)
print(json.dumps(errors))
"""


def test_long_rows_keep_the_stack_frame_small(tmp_path):
    errors = json.loads(run_fresh(_LONG_ROWS, tmp_path, timeout=300))
    assert len(errors) == 3 and max(errors) < 1e-12, errors


@pytest.fixture
def short_rows(monkeypatch):
    """A row of 3 float64 or 6 float32 partial sums (a registered tunable: part of the
    program key)."""
    monkeypatch.setattr(lower_conv, "ROW_BYTES", 24)


# N, C, H, W, kernel, stride, padding, dilation: depthwise, so the direct loops
CASES = [
    (2, 3, 5, 17, (3, 3), 1, 1, 1),
    (1, 2, 4, 31, (2, 5), (1, 3), (0, 2), (1, 2)),
    (3, 4, 6, 7, (3, 1), 2, (1, 0), 1),   # rows of 4 outputs: one chunk and a short one
    (2, 1, 1, 33, (1, 4), 1, (0, 5), 3),  # positions that land in the padding only
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("symbolic", [False, True])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_chunked_rows_match_torch(case, symbolic, dtype, short_rows):
    n, c, h, w, kernel, stride, padding, dilation = case
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=c)
    rng = np.random.default_rng(h * 100 + w)
    xv, wv = rng.normal(size=(n, c, h, w)), rng.normal(size=(c, 1, *kernel))
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (xv, wv))
    ty = F.conv2d(tx, tw, **kw)
    r = rng.normal(size=tuple(ty.shape))
    want = [ty.detach().numpy(), *torch.autograd.grad((ty * torch.tensor(r)).sum(), [tx, tw])]
    x = sg.tensor("x", ("n", c, "h", "w") if symbolic else (n, c, h, w), dtype)
    wt = sg.tensor("w", wv.shape, dtype)
    y = sg.nn.conv2d(x, wt, **kw)
    rt = sg.tensor("r", ("a", "b", "c", "d") if symbolic else r.shape, dtype)
    f = sg.function([x, wt, rt], [y, *sg.grad(sg.sum(y * rt), [x, wt])], backend="llvm")
    assert not any(info.blas for info in f.kernels)  # the direct loops throughout
    got = f(*(a.astype(dtype) for a in (xv, wv, r)))
    tol = 1e-5 if dtype == "float32" else 1e-12
    for k, (g, e) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, np.asarray(e), rtol=tol, atol=tol, err_msg=f"output {k}")
