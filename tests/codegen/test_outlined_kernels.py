"""A step of more than OUTLINE_KERNELS kernels keeps them as functions of their own
(``noinline``: LLVM's optimisation of hundreds of kernels inlined into one function grew
faster than linearly); smaller steps inline them.  Either way the values are the numpy
reference's, forward, gradients and updates."""

from __future__ import annotations

import re

import numpy as np
import pytest

import symgraph as sg
from codegen.entry import SEGMENT_KERNELS
from codegen.lower import OUTLINE_KERNELS
from codegen.native import jit


def _rnn(steps):
    """A hand-unrolled tanh RNN and an SGD update of its weights."""
    rng = np.random.default_rng(steps)
    x = sg.tensor("x", (steps, "batch", 6), "float64")
    wih = sg.shared(rng.normal(size=(5, 6)) * 0.3, name="wih")
    whh = sg.shared(rng.normal(size=(5, 5)) * 0.3, name="whh")
    h = sg.zeros_like(x[0] @ wih.T)
    for t in range(steps):
        h = sg.tanh(x[t] @ wih.T + h @ whh.T)
    loss = sg.sum(h * h)
    grads = sg.grad(loss, [wih, whh])
    return x, loss, grads, {p: p - 0.1 * g for p, g in zip((wih, whh), grads)}, rng


def _kernel_attributes(f) -> tuple[set[str], set[str]]:
    """The attribute groups of the kernels defined in the entry's module (where they could
    be inlined), and of the kernels as the profiling twin (one module) defines them."""
    entry_module = f.llvm_ir(optimized=False).split(jit.PART_MARK)[0]
    pattern = r"define (?:internal |weak_odr )?i32 @k_[0-9a-f]+\(.*\) (#\d)"
    return (set(re.findall(pattern, entry_module)),
            {a for text in f.program._functions for a in re.findall(pattern, text)})


def test_many_kernels_are_outlined_and_compute_the_reference():
    for steps, outlined in ((2, False), (12, True)):
        x, loss, grads, updates, rng = _rnn(steps)
        data = rng.normal(size=(steps, 4, 6))
        got_f = sg.function([x], [loss, *grads], backend="llvm")
        assert (len(got_f.kernels) > OUTLINE_KERNELS) == outlined
        with_entry, twin = _kernel_attributes(got_f)
        # outlined: no kernel where the entry could inline it, and noinline in the twin
        assert twin == {"#2" if outlined else "#0"} and with_entry <= {"#0"}
        assert not (outlined and with_entry)
        want = sg.function([x], [loss, *grads], backend="numpy")(data)
        for g, w in zip(got_f(data), want):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    # the update step of the outlined program: SGD on both weights, as the reference says
    want_loss, *want_grads = sg.function([x], [loss, *grads], backend="numpy")(data)
    before = [p.get_value() for p in updates]
    step = sg.function([x], loss, updates=updates, backend="llvm")
    assert np.isclose(step(data), want_loss, rtol=1e-12)
    for p, b, g in zip(updates, before, want_grads):
        np.testing.assert_allclose(p.get_value(), b - 0.1 * g, rtol=1e-12, atol=1e-12)


def test_a_long_step_calls_its_kernels_in_segments_and_reports_the_failing_one():
    """Above SEGMENT_KERNELS kernels ``sg_step`` calls segment functions; the values are the
    reference's, a kernel that fails in a later segment is reported as itself, and the
    profile times every kernel."""
    steps = 12
    x, loss, grads, _, rng = _rnn(steps)
    idx = sg.tensor("idx", (3,), "int64")
    late = grads[0][:, idx]  # indexes a gradient: a kernel near the end of the step
    outputs = [loss, sg.sum(late * late)]
    f = sg.function([x, idx], outputs, backend="llvm")
    assert len(f.kernels) > SEGMENT_KERNELS
    ir = f.llvm_ir(optimized=False)
    assert re.search(r"define internal i32 @sg_step_s1\(", ir)
    failing = [n for n, k in enumerate(f.kernels) if any(nd.op.name == "take" for nd in k.nodes)]
    assert failing and failing[0] >= SEGMENT_KERNELS
    data = rng.normal(size=(steps, 4, 6))
    want = sg.function([x, idx], outputs, backend="numpy")(data, np.array([0, 4, 1]))
    for g, w in zip(f(data, np.array([0, 4, 1])), want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    with pytest.raises(IndexError, match=r"index 7 of 'idx'(.|\n)*late = grads\[0\]\[:, idx\]"):
        f(data, np.array([0, 7, 1]))
    # the profiling twin is segmented the same way: each kernel's cycles land in its own slot
    rows = f.profile(data, np.array([0, 4, 1]), n=3)
    assert sorted(r["kernel"] for r in rows) == sorted(k.name for k in f.kernels)
    assert all(r["seconds"] > 0 for r in rows)
