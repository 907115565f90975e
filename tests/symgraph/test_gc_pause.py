"""The cyclic collector is off while graphs are differentiated and compiled, and comes back
exactly as it was (nested pauses, pauses overlapping between threads, a fork mid-pause)."""

from __future__ import annotations

import gc
import os
import sys
import threading

import numpy as np
import pytest

import symgraph as sg
from symgraph import gc_pause
from symgraph.gc_pause import gc_paused


@pytest.fixture(autouse=True)
def _collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_nested_pauses_restore_the_collector_once():
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()  # a user's choice survives a pause
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_an_exception_still_restores_it():
    with pytest.raises(ValueError, match="inside"):
        with gc_paused():
            raise ValueError("inside")
    assert gc.isenabled()


def test_overlapping_pauses_in_two_threads():
    inside, release = threading.Event(), threading.Event()

    def other():
        with gc_paused():
            inside.set()
            release.wait(5)

    t = threading.Thread(target=other)
    with gc_paused():
        t.start()
        inside.wait(5)
    assert not gc.isenabled()  # the other thread's pause is still on
    release.set()
    t.join()
    assert gc.isenabled()


def test_differentiating_and_compiling_run_with_the_collector_off(monkeypatch):
    seen = []
    function_module, grad_module = sys.modules["symgraph.function"], sys.modules["symgraph.grad"]
    real_rewrite, real_toposort = function_module.rewrite_graph, grad_module.toposort

    def rewrite(outputs):
        seen.append(("rewrite", gc.isenabled()))
        return real_rewrite(outputs)

    def toposort(outputs):
        seen.append(("grad", gc.isenabled()))
        return real_toposort(outputs)

    monkeypatch.setattr(function_module, "rewrite_graph", rewrite)
    monkeypatch.setattr(grad_module, "toposort", toposort)
    x = sg.tensor("x", (3,), "float64")
    loss = sg.sum(sg.tanh(x) ** 2)
    [g] = sg.grad(loss, [x])
    f = sg.function([x], g, backend="numpy")
    v = np.array([0.1, -0.5, 2.0])
    np.testing.assert_allclose(f(v), 2 * np.tanh(v) * (1 - np.tanh(v) ** 2))
    assert seen and set(seen) == {("grad", False), ("rewrite", False)}
    assert gc.isenabled()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_fork_mid_pause_leaves_the_child_collecting():
    with gc_paused():
        pid = os.fork()
        if pid == 0:  # the child: no compile is running here
            ok = gc.isenabled() and gc_pause._depth == 0
            with gc_paused():
                ok = ok and not gc.isenabled()
            os._exit(0 if ok and gc.isenabled() else 1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert gc.isenabled()
