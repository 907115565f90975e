"""Background-load-aware timing for a noisy shared machine (same method as shared/bench/peers.py).

Other processes share this 2-core machine. Calls are timed in chunks of about ``chunk_s``; for
each chunk the cores used by *other* processes are measured (machine-wide busy time from
``/proc/stat`` minus this process's own rusage). Only chunks whose background load is below
``bg_thresh`` are kept ("clean"); if the wall budget runs out, the least-loaded dirty chunks fill
up the rest and the ``clean`` fraction of the row says so. The reported figure is the median.
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

_HZ = os.sysconf("SC_CLK_TCK")


@dataclass
class TimingConfig:
    """Knobs shared by every measurement of one process."""

    target_s: float = 0.5      # clean timed seconds per measurement
    max_wait_s: float = 15.0   # wall budget per measurement to find quiet chunks
    bg_thresh: float = 0.3     # max cores used by other processes in a clean chunk
    chunk_s: float = 0.2
    min_reps: int = 15
    warmup: int = 3
    quiet_wait_s: float = 8.0  # max wait for a quiet machine before each measurement


def _cpu_busy_s() -> float:
    """Machine-wide busy CPU seconds (all cores) from /proc/stat."""
    with open("/proc/stat") as fh:
        v = list(map(int, fh.readline().split()[1:]))
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / _HZ


def _self_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


class LoadMeter:
    """Context manager: ``.bg`` = CPU cores used by OTHER processes during the window."""

    bg: float = 0.0

    def __enter__(self) -> LoadMeter:
        self._busy, self._self, self._wall = _cpu_busy_s(), _self_cpu_s(), perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        dw = max(perf_counter() - self._wall, 1e-9)
        other = (_cpu_busy_s() - self._busy) - (_self_cpu_s() - self._self)
        self.bg = max(0.0, other / dw)


def wait_quiet(cfg: TimingConfig, window: float = 0.3) -> float:
    """Sleep until other processes use < ``bg_thresh`` cores (or the wait budget is spent)."""
    t_end = perf_counter() + cfg.quiet_wait_s
    while True:
        with LoadMeter() as lm:
            time.sleep(window)
        if lm.bg < cfg.bg_thresh or perf_counter() > t_end:
            return lm.bg


def timed_clean(call: Callable[[], Any], cfg: TimingConfig, *, min_reps: int | None = None,
                target_s: float | None = None, max_reps: int = 20000
                ) -> tuple[list[float], float, float]:
    """Time ``call()`` repeatedly in chunks; returns (sorted seconds, mean bg, clean fraction)."""
    min_reps = cfg.min_reps if min_reps is None else min_reps
    target_s = cfg.target_s if target_s is None else target_s
    t0 = perf_counter()
    call()
    est = max(perf_counter() - t0, 1e-7)
    n = int(min(max_reps, max(min_reps, target_s / est)))
    k = max(1, min(n, int(cfg.chunk_s / est)))
    clean: list[tuple[float, list[float]]] = []
    dirty: list[tuple[float, list[float]]] = []
    nclean = 0
    t_end = perf_counter() + cfg.max_wait_s
    while nclean < n and perf_counter() < t_end:
        ts = []
        with LoadMeter() as lm:
            for _ in range(k):
                t0 = perf_counter()
                call()
                ts.append(perf_counter() - t0)
        if lm.bg < cfg.bg_thresh:
            clean.append((lm.bg, ts))
            nclean += len(ts)
        else:
            dirty.append((lm.bg, ts))
            time.sleep(min(0.3, 2 * cfg.chunk_s))  # back off while the machine is busy
    used, got = list(clean), nclean
    for bg, ts in sorted(dirty, key=lambda c: c[0]):
        if got >= n:
            break
        used.append((bg, ts))
        got += len(ts)
    times = sorted(t for _, ts in used for t in ts)
    w = max(sum(len(ts) for _, ts in used), 1)
    bg = sum(b * len(ts) for b, ts in used) / w
    return times, bg, nclean / w


def measure(call: Callable[[], Any], cfg: TimingConfig, *, min_reps: int | None = None,
            target_s: float | None = None) -> dict[str, Any]:
    """First and second call timed separately, then warm-up, then the clean median.

    Returns a row fragment: ``first_ms second_ms med_ms min_ms p10_ms p90_ms n bg clean``
    plus ``r1``/``r2`` (results of the first two calls, for loss checks; not JSON).
    """
    gc.collect()
    wait_quiet(cfg)
    t0 = perf_counter()
    r1 = call()
    first = perf_counter() - t0
    t0 = perf_counter()
    r2 = call()
    second = perf_counter() - t0
    for _ in range(cfg.warmup):
        call()
    ts, bg, clean = timed_clean(call, cfg, min_reps=min_reps, target_s=target_s)
    n = len(ts)
    return dict(first_ms=first * 1e3, second_ms=second * 1e3,
                med_ms=statistics.median(ts) * 1e3, min_ms=ts[0] * 1e3,
                p10_ms=ts[int(0.1 * (n - 1))] * 1e3, p90_ms=ts[int(0.9 * (n - 1))] * 1e3,
                n=n, bg=bg, clean=clean, r1=r1, r2=r2)


def interleaved_ratio(a: Callable[[], Any], b: Callable[[], Any], cfg: TimingConfig, *,
                      rounds: int = 15, chunk_s: float = 0.05, settle_s: float = 0.0
                      ) -> dict[str, Any]:
    """``a``'s time over ``b``'s, measured in alternating chunks of one process.

    Why: a baseline timed in another process, minutes apart, sees another machine (this one
    switches between a fast and a slow mode for everything); alternating chunks see the same.
    ``settle_s`` > 0 runs the call untimed for that long before each chunk: for two frameworks
    with thread pools of their own, so the other's workers, still spinning after its chunk
    (OpenBLAS's spin lasts ~0.1 s), have stopped when the timed calls start. (Sleeping instead
    is not neutral: after 0.15 s idle, jax.jit's W1 step took 3-5 ms for its next ~15 calls
    against 2 ms, while symgraph's was at speed from its second call.)
    Returns ``ratio`` (median of the per-round ratios of chunk medians), its ``lo``/``hi``
    (the min and max round), ``a_ms``/``b_ms`` (medians over all clean chunks), ``rounds``.
    """
    for _ in range(3):
        a()
        b()
    est = {}
    for name, call in (("a", a), ("b", b)):
        t0 = perf_counter()
        for _ in range(3):
            call()
        est[name] = max((perf_counter() - t0) / 3, 1e-7)
    wait_quiet(cfg)
    ratios, times = [], {"a": [], "b": []}
    t_end = perf_counter() + cfg.max_wait_s + rounds * 4 * chunk_s
    while len(ratios) < rounds and perf_counter() < t_end:
        chunk, clean = {}, True
        for name, call in (("a", a), ("b", b)):
            ts = []
            t_settled = perf_counter() + settle_s
            while perf_counter() < t_settled:
                call()
            with LoadMeter() as lm:
                for _ in range(max(1, int(chunk_s / est[name]))):
                    t0 = perf_counter()
                    call()
                    ts.append(perf_counter() - t0)
            chunk[name] = sorted(ts)
            clean = clean and lm.bg < cfg.bg_thresh
        if clean:
            med = {k: v[len(v) // 2] for k, v in chunk.items()}
            ratios.append(med["a"] / med["b"])
            for k, v in chunk.items():
                times[k] += v
    if not ratios:
        return {}
    ratios.sort()
    a_all, b_all = sorted(times["a"]), sorted(times["b"])
    return dict(ratio=ratios[len(ratios) // 2], lo=ratios[0], hi=ratios[-1],
                a_ms=a_all[len(a_all) // 2] * 1e3, b_ms=b_all[len(b_all) // 2] * 1e3,
                rounds=len(ratios))
