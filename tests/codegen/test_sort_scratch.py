"""Argsort lines longer than MERGE_CAP (codegen.lower_scan): merge-sorted in one scratch that
the kernel takes from ``malloc`` per call, heap-sorted in place when ``malloc`` returns NULL.
Both against numpy's stable argsort; the allocation is watched by pointing the JIT's
``malloc`` at a Python function in a fresh process."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import run_fresh

import symgraph as sg
from codegen.lower_scan import MERGE_CAP


def _keys(shape, seed):
    x = np.random.default_rng(seed).integers(0, 500, shape).astype(np.float64)
    x[..., ::9] = np.nan
    x[0, : shape[-1] // 2] = np.arange(shape[-1] // 2)[::-1]  # a long reversed run
    return x


@pytest.mark.parametrize("symbolic", [False, True])
def test_long_lines_sort_stably(symbolic):
    x = _keys((3, 2 * MERGE_CAP + 77), 0)
    v = sg.tensor("x", (3, "n") if symbolic else x.shape)
    f = sg.function([v], [sg.argsort(v), sg.sort(v)], backend="llvm")
    idx, values = f(x)
    np.testing.assert_array_equal(idx, np.argsort(x, -1, kind="stable"))
    np.testing.assert_array_equal(values, np.sort(x, -1))
    if symbolic:  # the same function on short lines (the stack scratch)
        short = _keys((3, 1000), 1)
        np.testing.assert_array_equal(f(short)[0], np.argsort(short, -1, kind="stable"))


_WATCHED = r"""
import ctypes, json
import numpy as np
import symgraph as sg
from codegen.native.jit import add_symbol

FAIL = {fail}
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
sizes = []

@ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_size_t)
def watched(size):
    sizes.append(size)
    return None if FAIL else libc.malloc(size)

add_symbol("malloc", ctypes.cast(watched, ctypes.c_void_p).value)
n = {n}
x = np.random.default_rng(2).integers(0, 300, (4, n)).astype(np.float32)
x[1, ::7] = np.nan
v = sg.tensor("x", (4, "n"))
got = sg.function([v], sg.argsort(v), backend="llvm")(x)
ok = bool((got == np.argsort(x, -1, kind="stable")).all())
print(json.dumps({{"ok": ok, "sizes": sizes}}))
"""


@pytest.mark.parametrize("fail", [False, True])
def test_one_allocation_per_call_and_heap_sort_without_one(fail, tmp_path):
    import json

    n = MERGE_CAP + 500
    out = json.loads(run_fresh(_WATCHED.format(fail=fail, n=n), tmp_path))
    assert out["ok"]
    assert out["sizes"] == [16 * n]  # 2n int64, once for the four lines
