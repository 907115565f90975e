"""OpenBLAS's threads or one thread, whichever runs a compiled program faster now.

Why: a compiled step's gemms and split loops (:mod:`codegen.native.parallel`) run on
OpenBLAS's threads, and each ends by waiting for all of them.  When another process keeps a
core busy, OpenBLAS's worker there runs only after that process's time slice while the caller
spins: a step of many such calls (a small convnet's, one gemm per image row tile) took 41 ms
at the median and 184 ms at the 90th percentile, against 11 ms on one thread
(``bench/contention.py``); the first review measured W1's 1.9 ms step at 80-100 ms under a
heavier load.  And some programs are faster on one thread even on an idle machine (that
convnet step: 20 ms on two, 11 on one): their gemms are too small to split.

How: a :class:`Governor` per plan of a program that calls BLAS or split loops times each native
call (or epoch, per step) and keeps the mean of the last :data:`RECENT` calls of the thread
count in use.  Every :data:`PROBE_SECONDS` (doubling up to :data:`PROBE_MAX_SECONDS` while the
choice holds, and at least :data:`PROBE_SPACING` times the last probe's duration apart) it runs
:data:`PROBE_CALLS` calls (or one epoch of :data:`PROBE_STEPS` steps) on the other count and
switches when their mean is 10% lower.  On two threads, :data:`STRIKES` calls in a row slower
than :data:`SLOW_FACTOR` times the fastest (and :data:`SLOW_MARGIN_NS` more) switch at once:
another process just took the core.  One thread is OpenBLAS set to 1 around the call
(:func:`single_thread`) and the count restored after it.

Opt-in (``SYMGRAPH_ADAPTIVE_THREADS=1``), for two reasons a review measured:

* OpenBLAS's thread count is process-wide (``openblas_set_num_threads_local`` is too, in
  pthreads builds), so while a governed call runs on one thread, BLAS calls of other threads
  (numpy's) do as well; and a ``threadpoolctl`` limit entered by another thread during such a
  call can save the 1 and restore it after we restored the count, leaving it at 1.
* OpenBLAS's products on one and on two threads differ in the last bits (2e-15 in float64),
  so a choice made from timings makes results depend on the machine's load: the same call on
  the same data can return other bits, which researchers who compare runs do not expect.

With OpenBLAS at one thread (``OPENBLAS_NUM_THREADS=1``, ``threadpoolctl``) there is nothing
to choose.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable

from . import blas

__all__ = ["Governor", "enabled", "single_thread"]

#: on two threads, a call this many times slower than the fastest ...
SLOW_FACTOR = 4
#: ... and slower by this much (a time slice is milliseconds; jitter of a short step is not)
SLOW_MARGIN_NS = 1_000_000
#: slow calls in a row that switch to one thread at once
STRIKES = 2
#: calls whose mean stands for the thread count in use
RECENT = 8
#: calls on the other thread count per probe (one epoch call of this many steps suffices)
PROBE_CALLS = 2
PROBE_STEPS = 16
PROBE_SECONDS = 0.5
PROBE_MAX_SECONDS = 8.0
#: a lost probe is followed by at least this many times its own duration without one, so
#: probing costs at most ~2% (an epoch call of fit's is ~0.25 s: probing it every 0.5-8 s
#: on the slower count would have cost ~9% of an idle machine's training)
PROBE_SPACING = 50

_lock = threading.Lock()
_depth = 0  # calls running with OpenBLAS held at one thread
_saved = 0  # the thread count to restore when the last of them ends


def _after_fork_in_child() -> None:
    """A child forked while another thread held one thread's block: a new lock, and
    OpenBLAS back at the saved count (no call of the parent's runs in the child)."""
    global _lock, _depth
    _lock = threading.Lock()
    if _depth:
        _depth = 0
        blas.set_num_threads(_saved)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def enabled() -> bool:
    """``SYMGRAPH_ADAPTIVE_THREADS=1`` (read when a program is built; see the docstring)."""
    return os.environ.get("SYMGRAPH_ADAPTIVE_THREADS", "0") == "1"


class single_thread:
    """OpenBLAS at one thread inside the ``with`` block (nested and concurrent blocks
    share one saved count: the first in saves it, the last out restores it)."""

    def __enter__(self) -> None:
        global _depth, _saved
        with _lock:
            if _depth == 0:
                _saved = blas.get_num_threads()
                blas.set_num_threads(1)
            _depth += 1

    def __exit__(self, *exc) -> None:
        global _depth
        with _lock:
            _depth -= 1
            if _depth == 0:
                blas.set_num_threads(_saved)


class Governor:
    """Chooses the thread count of one program's calls (see the module docstring).
    ``clock`` (integer ns) is for tests."""

    def __init__(self, clock: Callable[[], int] = time.perf_counter_ns):
        self.clock = clock
        self.single = False  # the thread count in use: one (True) or OpenBLAS's
        self.recent: deque[int] = deque(maxlen=RECENT)  # ns per step, the count in use
        self.fastest: int | None = None  # of the count in use since it was chosen
        self.strikes = 0
        self.probe: list[int] | None = None  # ns per step of the probe's calls so far
        self.probe_steps = 0  # steps the probe ran so far
        self.probe_spent = 0  # ns the probe took so far
        self.wait = PROBE_SECONDS
        self.probe_at: int | None = None  # clock value of the next probe
        self.switches = 0  # for tests and diagnostics

    def wrap(self, builtin: Callable) -> Callable:
        """``builtin`` (a compiled step) run through :meth:`run`."""
        run = self.run

        def call(*arrays):
            return run(builtin, *arrays)
        return call

    def run(self, fn: Callable, *args, steps: int = 1):
        """``fn(*args)`` (``steps`` training steps: an epoch's native loop) on the chosen
        thread count, or the other one during a probe; its time per step is observed."""
        clock = self.clock
        if self.probe_at is None:  # the first call (page faults, cold caches): not counted
            result = fn(*args)
            self.probe_at = clock() + int(self.wait * 1e9)
            return result
        probing = self.probe is not None or clock() >= self.probe_at
        if self.single != probing:  # one thread: in use, or the one being probed
            with single_thread():
                t0 = clock()
                result = fn(*args)
                spent = clock() - t0
        else:
            t0 = clock()
            result = fn(*args)
            spent = clock() - t0
        if probing:
            self._probed(spent, steps)
        else:
            self._observed(spent // steps)
        return result

    def _observed(self, ns: int) -> None:
        fastest = self.fastest
        if (not self.single and fastest is not None and ns > SLOW_FACTOR * fastest
                and ns - fastest > SLOW_MARGIN_NS):
            self.strikes += 1
            if self.strikes >= STRIKES:
                self._switch(())
            return
        self.strikes = 0
        self.recent.append(ns)
        if fastest is None or ns < fastest:
            self.fastest = ns

    def _probed(self, spent: int, steps: int) -> None:
        probe = self.probe = (self.probe or []) + [spent // steps]
        self.probe_steps += steps
        self.probe_spent += spent
        if len(probe) < PROBE_CALLS and self.probe_steps < PROBE_STEPS:
            return
        total, self.probe, self.probe_steps, self.probe_spent = self.probe_spent, None, 0, 0
        if self.recent and sum(probe) / len(probe) < 0.9 * sum(self.recent) / len(self.recent):
            self._switch(probe)
        else:
            self.wait = min(2 * self.wait, PROBE_MAX_SECONDS)
            self.probe_at = self.clock() + max(int(self.wait * 1e9), PROBE_SPACING * total)

    def _switch(self, seed) -> None:
        self.single = not self.single
        self.recent = deque(seed, maxlen=RECENT)
        self.fastest = min(seed) if seed else None
        self.strikes = 0
        self.switches += 1
        self.wait = PROBE_SECONDS
        self.probe_at = self.clock() + int(self.wait * 1e9)
