#!/usr/bin/env python
"""How close can a W1 Adam step get to the gemm floor? The step against its traffic bound.

Issue 11 asks for W1 Adam <= 1.05x the gemm floor (its 8 gemms through numpy). Adam's own
work is elementwise, and on this machine it is bound by memory, not arithmetic. This script
times, in one process and in alternating rounds, the floor and four W1 steps built by
``bench/workloads.py`` (llvm backend):

* ``sgd``: SGD, whose update the backend folds into the weight gradients' gemms;
* ``mv-bound``: not an optimizer. SGD's folded update, plus two float32 arrays per parameter
  (Adam's ``m`` and ``v``) read and written once, in a loop of their own after the gemms
  (it reads no gradient, so it is no gemm's epilogue). That was the least memory any Adam
  step run after its gemms could move on top of SGD's. Adam no longer runs after them: its
  update of each weight is the epilogue of the weight gradient's gemm (codegen/
  lower_epilogue.py: our own gemm, block by block of rows, each block updated while it is
  in L1), the design this row once said only a gemm of our own could reach, so ``adam``
  may now come out below it;
* ``adam-mul``: Adam with its square root and division replaced by multiplications (same
  memory traffic as Adam, cheap arithmetic);
* ``adam``: the W1 Adam step of ``bench/train_step.py``.

Each round times a chunk of each call (rotating the order) and divides by the floor's chunk
of the same round. The rows print the median over rounds of these ratios, with their min and
max, and each step's median time beyond SGD's. If ``adam-mul`` matches ``adam``, the square
root and division cost nothing.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/adam_bound.py [--rounds 15]

Not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _p in (str(BENCH), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import workloads as wk  # noqa: E402
from parallel import per_call as chunk  # noqa: E402  (median of 5 runs)
from timing import LoadMeter  # noqa: E402

TARGET = 1.05
STEPS = ("sgd", "mv-bound", "adam-mul", "adam")


def calls() -> dict[str, Callable[[], object]]:
    """The floor and one call per step; each step's first loss (before any update, the same
    for all) checked against hand numpy's, and Adam's second against hand numpy's Adam."""
    floor, _ = wk.gemm_floor()
    out: dict[str, Callable[[], object]] = {"floor": floor}
    ref = wk.reference_losses()
    for opt in STEPS:
        p = wk.make_problem("W1")
        f = wk.build_sg_step(p, opt, "llvm")
        X, y = p["X"], p["y"]
        got = [float(f(X, y)), float(f(X, y))]
        want = [ref["W1s"][0], ref["W1a"][1] if opt == "adam" else got[1]]
        if any(abs(a - b) > 1e-4 * abs(b) for a, b in zip(got, want)):
            raise SystemExit(f"{opt}: losses {got} but hand numpy gives {want}")
        out[opt] = lambda f=f, X=X, y=y: f(X, y)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--chunk-s", type=float, default=0.3, help="timed seconds per call per round")
    args = ap.parse_args()
    fns = calls()
    names = list(fns)
    for name in names:  # warm: OpenBLAS's threads, the first calls' page faults
        chunk(fns[name], 0.1)
    times: dict[str, list[float]] = {n: [] for n in names}
    loads = []
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        with LoadMeter() as meter:
            for name in order:
                times[name].append(chunk(fns[name], args.chunk_s))
        loads.append(meter.bg)
    floor = times["floor"]
    sgd_ms = statistics.median(times["sgd"]) * 1e3
    print(f"W1 (784-512-256-10, batch 128): {args.rounds} rounds, background load "
          f"{statistics.median(loads):.2f} cores (max {max(loads):.2f})")
    print(f"  {'call':<10} {'median ms':>10} {'x floor (median [min..max])':>30} "
          f"{'beyond sgd us':>14}")
    for name in names:
        ms = statistics.median(times[name]) * 1e3
        ratios = sorted(t / f for t, f in zip(times[name], floor))
        extra = "" if name in ("floor", "sgd") else f"{(ms - sgd_ms) * 1e3:14.0f}"
        print(f"  {name:<10} {ms:10.4f} {statistics.median(ratios):>18.3f} "
              f"[{ratios[0]:.3f}..{ratios[-1]:.3f}] {extra}")
    bound = statistics.median(t / f for t, f in zip(times["mv-bound"], floor))
    adam = statistics.median(t / f for t, f in zip(times["adam"], floor))
    print(f"  target: adam <= {TARGET}x the floor: adam {adam:.3f}x "
          f"({'PASS' if adam <= TARGET else 'MISS'}); mv-bound {bound:.3f}x")

if __name__ == "__main__":
    main()
