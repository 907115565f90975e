"""exp by input range: symgraph's llvm loop vs numpy's np.exp, interleaved in one run.

Why: libmvec's vector exp leaves its fast path for |x| past ~87 (float32) / ~708 (float64)
and calls scalar exp for the whole vector; a trained classifier's softmax lives there.
codegen.irgen.ScalarBuilder._exp splits those lanes; this prints what each range costs.
Far below the range (-inf: a causal attention mask) the result is 0 without an underflowing
product, whose microcode assist made those lanes ~10x the fast path's cost.

    python bench/exp_range.py [--n 65536] [--reps 300]
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np

import symgraph as sg

RANGES = {
    "float32": [(-20, 0), (-86, -80), (-87.5, -87.2), (-90, -87.5), (-120, -100), (-300, -120),
                (-np.inf, -np.inf), (87.5, 90)],
    "float64": [(-20, 0), (-700, -690), (-740, -709), (-800, -750), (-np.inf, -np.inf),
                (709.5, 720)],
}


def _best(fn, reps: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t) / reps)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1 << 16)
    ap.add_argument("--reps", type=int, default=300)
    args = ap.parse_args()
    print(f"{'dtype':8s} {'range':>16s} {'sg ns/elt':>10s} {'np ns/elt':>10s} {'sg/np':>6s}")
    for dtype, ranges in RANGES.items():
        x = sg.tensor("x", shape=("n",), dtype=dtype)
        f = sg.function([x], sg.exp(x), backend="llvm")
        for lo, hi in ranges:
            a = (np.full(args.n, lo) if lo == hi else
                 np.random.default_rng(0).uniform(lo, hi, args.n)).astype(dtype)
            out = np.empty_like(a)
            f(a)
            with np.errstate(all="ignore"):
                t_sg = _best(functools.partial(f, a), args.reps)
                t_np = _best(functools.partial(np.exp, a, out=out), args.reps)
            per = 1e9 / args.n
            print(f"{dtype:8s} {f'[{lo}, {hi}]':>16s} {t_sg * per:10.2f} {t_np * per:10.2f} "
                  f"{t_sg / t_np:6.2f}")


if __name__ == "__main__":
    main()
