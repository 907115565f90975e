"""Where does the generated small-matrix loop (codegen/lower_blas.py ``_small_gemm``) beat
OpenBLAS?  A sweep of static ``(m, n, k)``, operand transposes and both float dtypes, each
product compiled twice -- forced through the loop and forced through BLAS -- and timed per
call in the same process, interleaved; printed per shape: us per call for each route, the
call overhead of a compiled function that does nothing but read the same inputs, and the
ratio loop / BLAS of the net times (below 1: the loop wins).  ``fold`` rows time the folded
SGD update ``W - lr * (A^T @ G)`` (gemm with beta = 1 versus the loop's epilogue).

    python bench/small_matmul.py [--dtypes float32,float64] [--quick] [--shapes 32x32x64,...]

The crossover ``SMALL_GEMM_WORK`` in lower_blas.py comes from this table (``m*n*k`` where
the ratio crosses 1).  Not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
_CACHE = tempfile.mkdtemp(prefix="sg-small-mm-")

import symgraph as sg  # noqa: E402
from codegen import lower_blas  # noqa: E402
from codegen.native import cache  # noqa: E402

SWEEP = [(m, n, k) for m in (8, 32, 64, 128) for n in (10, 32, 64) for k in (10, 32, 64, 128)]
QUICK = [(32, 32, 64), (32, 10, 32), (64, 32, 32), (32, 32, 32), (64, 64, 64), (128, 64, 64),
         (128, 128, 64), (128, 64, 128), (128, 128, 128)]
#: the W2 MLP (64-32-10, batch 32): forward, input-gradient and folded weight-gradient shapes
W2 = [("NN", 32, 32, 64), ("NN", 32, 10, 32), ("NT", 32, 32, 10), ("fold", 32, 10, 32),
      ("fold", 64, 32, 32)]


def _build(kind: str, m: int, n: int, k: int, dt: str, route: str):
    """The compiled function and its arguments, lowered through ``route`` (loop/blas/none)."""
    # the threshold is not part of the program key: one disk cache per route, no memory hits
    os.environ["SYMGRAPH_CACHE_DIR"] = os.path.join(_CACHE, route)
    cache._programs.clear()
    saved = dict(lower_blas.SMALL_GEMM_WORK)
    for key in lower_blas.SMALL_GEMM_WORK:
        lower_blas.SMALL_GEMM_WORK[key] = {"loop": 1 << 62, "blas": 0}.get(route, 0)
    try:
        rng = np.random.default_rng(0)
        ta, tb = kind in ("TN", "fold"), kind == "NT"
        ash, bsh = ((k, m) if ta else (m, k)), ((n, k) if tb else (k, n))
        a, b = sg.tensor("a", ash, dt), sg.tensor("b", bsh, dt)
        args = (rng.standard_normal(ash).astype(dt), rng.standard_normal(bsh).astype(dt))
        if kind == "fold":
            w = sg.shared(rng.standard_normal((m, n)).astype(dt), name="w")
            lr = sg.shared(np.asarray(1e-9, dt), name="lr")
            g = a.T @ b
            f = (sg.function([a, b], a[0, 0] + b[0, 0], backend="llvm") if route == "none"
                 else sg.function([a, b], [], {w: w - lr * g}, backend="llvm"))
        else:
            out = (a.T if ta else a) @ (b.T if tb else b)
            f = sg.function([a, b], a[0, 0] + b[0, 0] if route == "none" else out,
                            backend="llvm")
        f(*args)  # compiles (lazily) while the route is forced
        return f, args
    finally:
        lower_blas.SMALL_GEMM_WORK.update(saved)


def _time(f, args, seconds: float) -> float:
    """Minimum over chunks of the mean us per call."""
    f(*args)
    n, best, end = 50, float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        for _ in range(n):
            f(*args)
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--quick", action="store_true", help="a few shapes, NN/TN/NT")
    ap.add_argument("--shapes", default="", help="m x n x k list, e.g. 32x32x64,64x64x64")
    ap.add_argument("--seconds", type=float, default=0.06, help="timing per route and shape")
    opt = ap.parse_args()
    shapes = ([tuple(int(x) for x in s.split("x")) for s in opt.shapes.split(",")]
              if opt.shapes else QUICK if opt.quick else SWEEP)
    cases = [(kind, *s) for s in shapes for kind in ("NN", "TN", "NT")] + W2
    print(f"{'dtype':8} {'kind':5} {'m':>4} {'n':>4} {'k':>4} {'m*n*k':>8} {'loop us':>8} "
          f"{'blas us':>8} {'call us':>8} {'net ratio':>9}  GFMA/s loop")
    for dt in opt.dtypes.split(","):
        for kind, m, n, k in cases:
            built = {r: _build(kind, m, n, k, dt, r) for r in ("loop", "blas", "none")}
            ref = None
            for route in ("loop", "blas"):  # the two routes agree before anything is timed
                f, args = built[route]
                if kind != "fold":
                    got = f(*args)
                    ref = got if ref is None else ref
                    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * k)
            t = {r: [] for r in built}
            for _ in range(3):  # interleaved repeats; the minimum of each route
                for r, (f, args) in built.items():
                    t[r].append(_time(f, args, opt.seconds))
            loop, blas, call = (min(t[r]) for r in ("loop", "blas", "none"))
            net = max(loop - call, 1e-3) / max(blas - call, 1e-3)
            gfma = m * n * k / max(loop - call, 1e-3) / 1e3
            print(f"{dt:8} {kind:5} {m:4} {n:4} {k:4} {m * n * k:8} {loop:8.2f} {blas:8.2f} "
                  f"{call:8.2f} {net:9.2f}  {gfma:6.1f}", flush=True)


if __name__ == "__main__":
    main()
