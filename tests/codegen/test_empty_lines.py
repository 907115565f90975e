"""Kernels over lines of length 0 write nothing: ``topk(x, 0)`` kept its heap in the (empty)
output line and wrote slot 0 of it, corrupting whatever followed (a segfault, depending on
the buffer layout).  Run in a new process, so a crash fails the test instead of the run."""

from __future__ import annotations

import json

import numpy as np
from _helpers import run_fresh

SCRIPT = """
import json, numpy as np, symgraph as sg
x = sg.tensor("x", (5, 5), "float64")
values, indices = sg.topk(sg.flip(x * x, 1), 0, axis=1)
grad = sg.grad(sg.sum(values) + sg.sum(x), x)
X = np.random.default_rng(0).standard_normal((5, 5))
out = {}
for backend in ("numpy", "llvm"):
    f = sg.function([x], [values, indices, grad], backend=backend)
    v, i, g = f(X)
    out[backend] = [list(v.shape), list(i.shape), str(i.dtype), g.tolist()]
print(json.dumps(out))
"""


def test_topk_of_zero_writes_nothing(tmp_path):
    got = json.loads(run_fresh(SCRIPT, tmp_path / "cache"))
    assert got["llvm"] == got["numpy"]
    assert got["llvm"][:3] == [[5, 0], [5, 0], "int64"]
    np.testing.assert_array_equal(got["llvm"][3], np.ones((5, 5)))
