"""codegen.native.contention (opt-in, SYMGRAPH_ADAPTIVE_THREADS=1): each plan of a program
that uses OpenBLAS's threads picks one thread or OpenBLAS's count by the measured time of its
calls.  The policy runs against a fake
clock and steps whose cost depends on the OpenBLAS thread count actually set while they run;
the wiring against real compiled steps (values equal either way, the process's thread count
restored after every call)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import symgraph as sg
from codegen.native import blas, contention

MS = 1_000_000


@pytest.fixture
def two_threads():
    """OpenBLAS at two threads for the test, the process's count restored after it."""
    before = blas.get_num_threads()
    blas.set_num_threads(2)
    yield
    blas.set_num_threads(before)


class FakeStep:
    """A step that costs ``cost[threads]`` ns of the fake clock, ``threads`` being the
    OpenBLAS thread count while it runs."""

    def __init__(self, cost: dict[int, int]):
        self.now, self.cost, self.seen = 0, cost, []

    def clock(self) -> int:
        return self.now

    def __call__(self, *args):
        threads = blas.get_num_threads()
        self.seen.append(threads)
        self.now += self.cost[min(threads, 2)]
        return None

    def idle(self, seconds: float) -> None:
        self.now += int(seconds * 1e9)


def _calls(gov, step, n, gap=0.0):
    call = gov.wrap(step)
    for _ in range(n):
        call()
        step.idle(gap)


def test_contention_switches_to_one_thread_at_once_and_back_when_it_ends(two_threads):
    step = FakeStep({2: 2 * MS, 1: 3 * MS})
    gov = contention.Governor(clock=step.clock)
    _calls(gov, step, 20, gap=0.01)
    assert not gov.single and set(step.seen[:12]) == {2}  # (a probe of one thread lost)
    step.cost[2] = 40 * MS  # another process took the second core
    _calls(gov, step, 2, gap=0.01)
    assert gov.single and gov.switches == 1  # two slow calls in a row
    step.seen.clear()
    _calls(gov, step, 50, gap=0.005)
    assert step.seen.count(1) >= 46 and gov.single  # probes of two threads lost
    assert blas.get_num_threads() == 2  # restored after every call
    step.cost[2] = 2 * MS  # the core is free again
    _calls(gov, step, 400, gap=0.01)  # long enough for the probe interval to come round
    assert not gov.single and gov.switches == 2
    assert step.seen[-5:] == [2] * 5


def test_one_thread_is_chosen_when_it_is_simply_faster(two_threads):
    """Gemms too small to split: no slow streak, but the probe finds one thread faster."""
    step = FakeStep({2: 5 * MS, 1: 3 * MS})
    gov = contention.Governor(clock=step.clock)
    _calls(gov, step, 200, gap=0.01)
    assert gov.single and gov.switches == 1
    assert step.seen[-20:].count(1) >= 18


def test_one_slow_call_is_not_contention(two_threads):
    step = FakeStep({2: 2 * MS, 1: 4 * MS})
    gov = contention.Governor(clock=step.clock)
    _calls(gov, step, 10)
    step.cost[2] = 50 * MS
    _calls(gov, step, 1)
    step.cost[2] = 2 * MS
    _calls(gov, step, 10)
    assert not gov.single and gov.switches == 0


def test_single_thread_blocks_nest_and_restore_the_count_across_threads(two_threads):
    barrier = threading.Barrier(4)
    seen = []

    def worker():
        with contention.single_thread():
            barrier.wait()
            seen.append(blas.get_num_threads())
            barrier.wait()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [1] * 4 and blas.get_num_threads() == 2


def _gemm_step():
    rng = np.random.default_rng(0)
    x = sg.tensor("x", ("b", 64), "float64")
    w = sg.shared(rng.standard_normal((64, 32)), name="w")
    loss = sg.sum(sg.tanh(x @ w))
    f = sg.function([x], loss, updates={w: w - 0.01 * sg.grad(loss, w)}, backend="llvm")
    return f, w, rng.standard_normal((128, 64))


def _governors(f):
    return [run.plan.extra["governor"] for run in f.program._cache.values()]


def test_compiled_steps_give_the_same_values_on_either_count(two_threads, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_ADAPTIVE_THREADS", "1")
    f, w, x = _gemm_step()
    g, v, _ = _gemm_step()
    assert f.program.threaded and g.program.threaded
    want = [f(x) for _ in range(4)]
    got = [g(x)]  # (the first call makes the plan and its governor)
    for gov in _governors(g):
        gov.single, gov.probe_at = True, 2 ** 62  # one thread from now on, no probes
    seen = []
    for _ in range(3):
        got.append(g(x))
        seen.append(blas.get_num_threads())
    assert seen == [2, 2, 2]  # restored after each call
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(v.get_value(), w.get_value())
    assert all(gov.single for gov in _governors(g))


def test_the_epoch_loop_runs_through_the_plans_governor(two_threads, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_ADAPTIVE_THREADS", "1")
    f, w, x = _gemm_step()
    g, v, _ = _gemm_step()
    data = np.random.default_rng(1).standard_normal((512, 64))
    f(data[:128])
    g(data[:128])
    for gov in _governors(g):
        gov.single, gov.probe_at = True, 2 ** 62
    calls = []
    original = contention.single_thread.__enter__

    def counting(self):
        calls.append(1)
        return original(self)

    contention.single_thread.__enter__ = counting
    try:
        a, b = f.epoch(data, batch_size=128), g.epoch(data, batch_size=128)
    finally:
        contention.single_thread.__enter__ = original
    assert calls == [1]  # g's epoch, on one thread; f's on OpenBLAS's count
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(v.get_value(), w.get_value())


def test_governors_are_opt_in_and_only_for_programs_with_blas_or_split_loops(monkeypatch):
    """Off by default: OpenBLAS's count is process-wide and its products' last bits depend
    on it, so a timing-driven choice would make results depend on the machine's load."""
    monkeypatch.delenv("SYMGRAPH_ADAPTIVE_THREADS", raising=False)
    f, _, x = _gemm_step()
    assert not f.program.threaded
    f(x)
    assert "governor" not in next(iter(f.program._cache.values())).plan.extra
    monkeypatch.setenv("SYMGRAPH_ADAPTIVE_THREADS", "1")
    v = sg.tensor("x", (4, 3), "float32")
    assert not sg.function([v], sg.exp(v) + 1, backend="llvm").program.threaded
    assert _gemm_step()[0].program.threaded


def test_epoch_probes_are_one_call_and_cost_little_on_an_idle_machine(two_threads):
    """fit's epoch calls (~0.1-0.25 s each): a probe is one call, and probes that lose are
    spaced by PROBE_SPACING times their duration: under 3% of the time on the slower count
    (every 0.5-8 s it would have been ~9%)."""
    step = FakeStep({2: 56 * 2 * MS, 1: 56 * 4 * MS})  # one epoch call of 56 steps
    gov = contention.Governor(clock=step.clock)
    run = lambda: gov.run(step, steps=56)  # noqa: E731
    while step.now < 120 * 10 ** 9:  # two minutes of training
        run()
    single_time = step.seen.count(1) * step.cost[1]
    assert 1 <= step.seen.count(1) and single_time < 0.03 * step.now
    assert not gov.single and gov.switches == 0
