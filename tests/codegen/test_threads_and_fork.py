"""Calls from several threads, and forks, against a compiled step that writes its updates
in place: a reader never sees a half-updated parameter, and a fork never hangs the child or
the parent. The fork cases run in a fresh interpreter with deadlines (a failure is a hang)."""

from __future__ import annotations

import threading
import time

import numpy as np
from _helpers import run_fresh

import symgraph as sg


def test_get_value_never_returns_a_half_updated_array():
    """numpy releases the GIL while it copies a large array, and the step (holding the GIL)
    wrote W in place in the middle of ``get_value``'s copy: ~1 in 6 copies of a 1M-element W
    held two values."""
    W = sg.shared(np.zeros(1_000_000), name="W")
    x = sg.tensor("x", (3,))
    f = sg.function([x], x.sum(), updates={W: W + 1.0}, backend="llvm")
    stop = threading.Event()

    def calls():
        while not stop.is_set():
            f(np.ones(3))
    thread = threading.Thread(target=calls)
    thread.start()
    copies, torn = 0, []
    try:
        deadline = time.perf_counter() + 1.0
        while time.perf_counter() < deadline or copies < 20:
            value = W.get_value()
            copies += 1
            if value.min() != value.max():
                torn.append((value.min(), value.max()))
    finally:
        stop.set()
        thread.join()
    assert not torn, f"{len(torn)} of {copies} copies were half-updated: {torn[:3]}"
    assert W.get_value().min() > 0  # the calls ran meanwhile


_FORK_PRELUDE = """
import os, sys, threading, time
import numpy as np
import symgraph as sg

def child_result(work, deadline=20.0):
    '''Fork; the child runs work() and exits 0 on success. The parent's verdict: "ok",
    "failed" or "hung" (killed at the deadline).'''
    pid = os.fork()
    if pid == 0:
        try:
            work()
            os._exit(0)
        except BaseException:
            os._exit(1)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "ok" if os.waitstatus_to_exitcode(status) == 0 else "failed"
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return "hung"
"""


def test_a_child_forked_while_another_thread_is_in_a_call_can_call(tmp_path):
    """The child inherited the function's lock held by a thread that does not exist there,
    and waited on it forever."""
    script = _FORK_PRELUDE + """
x = sg.tensor("x", ("n",))
W = sg.shared(np.zeros(3), name="W")
f = sg.function([x], x.sum() + W.sum(), updates={W: W + 1.0}, backend="llvm")
f(np.ones(2))
inside, leave = threading.Event(), threading.Event()

def hold():  # a call in progress: the lock is held, as a call's Python part holds it
    with f._lock:
        inside.set()
        leave.wait()
thread = threading.Thread(target=hold)
thread.start()
inside.wait()

def work():
    assert f(np.ones(4)) == 4.0 + 3.0  # W was 1 at the fork
verdict = child_result(work)
leave.set()
thread.join()
print(verdict)
"""
    assert run_fresh(script, tmp_path / "cache") == "ok"


def test_a_fork_while_another_thread_runs_an_epoch_never_hangs_the_epoch(tmp_path):
    """OpenBLAS shuts its workers down when the process forks; a fork while a native epoch
    loop used them (an update of 300k parameters split over both cores) left that loop
    spinning forever in the parent. A fork now waits for the native loops in progress."""
    script = _FORK_PRELUDE + """
n = 300_000
P = sg.shared(np.zeros(n, np.float32), name="P")
x = sg.tensor("x", ("b", 4), "float32")
f = sg.function([x], x.sum(), updates={P: P * np.float32(0.5) + np.float32(0.5)},
                backend="llvm")
X = np.ones((64, 4), np.float32)
f.epoch(X, batch_size=8)
epochs, stop = [0], threading.Event()

def train():
    while not stop.is_set():
        f.epoch(X, batch_size=8)
        epochs[0] += 1
thread = threading.Thread(target=train, daemon=True)
thread.start()
verdicts = []
for _ in range(4):
    time.sleep(0.05)
    verdicts.append(child_result(lambda: None))
before = epochs[0]
time.sleep(0.5)
progressed = epochs[0] > before
stop.set()
thread.join(10)
print(verdicts, progressed and not thread.is_alive())
"""
    assert run_fresh(script, tmp_path / "cache", timeout=120) == "['ok', 'ok', 'ok', 'ok'] True"
