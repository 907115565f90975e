"""Where does the generated small-matrix loop (codegen/small_gemm.py ``small_gemm``) beat
OpenBLAS?  A sweep of static ``(m, n, k)``, operand transposes and both float dtypes, each
product compiled through each route -- forced through the loop and forced through BLAS -- in
graphs of one and of ``REPS`` independent products, timed per call in the same process,
interleaved.  A kernel's time is the difference of the two graphs over ``REPS - 1``: the
call, the checks and the output's allocation drop out (the older "net of an empty call"
kept an allocation the empty call did not make).  Printed per shape: us per product for
each route and their ratio loop / BLAS (below 1: the loop wins).  ``fold`` rows time the
folded SGD update ``W - lr * (A^T @ G)`` (gemm with beta = 1 versus the loop's epilogue).

    python bench/small_matmul.py [--dtypes float32,float64] [--quick] [--shapes 32x32x64,...]
        [--kinds NN,TN,NT] [--no-dot]

The crossover ``SMALL_GEMM_WORK`` in small_gemm.py comes from this table (``m*n*k`` where
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
from codegen import small_gemm  # noqa: E402
from codegen.native import jit  # noqa: E402

SWEEP = [(m, n, k) for m in (8, 32, 64, 128) for n in (10, 32, 64) for k in (10, 32, 64, 128)]
QUICK = [(32, 32, 64), (32, 10, 32), (64, 32, 32), (32, 32, 32), (64, 64, 64), (128, 64, 64),
         (128, 128, 64), (128, 64, 128), (128, 128, 128)]
#: the W2 MLP (64-32-10, batch 32): forward, input-gradient and folded weight-gradient shapes
W2 = [("NN", 32, 32, 64), ("NN", 32, 10, 32), ("NT", 32, 32, 10), ("fold", 32, 10, 32),
      ("fold", 64, 32, 32)]


#: products per graph of the long build: a kernel's time is (long - short) / (REPS - 1), so
#: the call, the argument checks and the output's allocation drop out
REPS = 9


def _build(kind: str, m: int, n: int, k: int, dt: str, route: str, reps: int):
    """A compiled function of ``reps`` independent products of ``kind`` (each with its own
    A, one shared B) lowered through ``route`` (loop/blas), and its arguments.  Products
    return one element each (``fold``: update a weight of their own), so every route returns
    the same scalar and the kernels alone differ."""
    # (the program key covers the forced threshold: registry.changed_tunables; a cache dir
    # per route still keeps the two routes' files apart)
    os.environ["SYMGRAPH_CACHE_DIR"] = os.path.join(_CACHE, route)
    saved = dict(small_gemm.SMALL_GEMM_WORK), small_gemm.SMALL_GEMM_DOT_WORK
    forced = {"loop": 1 << 62, "blas": 0}[route]
    for key in small_gemm.SMALL_GEMM_WORK:
        small_gemm.SMALL_GEMM_WORK[key] = forced
    small_gemm.SMALL_GEMM_DOT_WORK = forced
    try:
        rng = np.random.default_rng(0)
        ta, tb = kind in ("TN", "fold"), kind == "NT"
        ash, bsh = ((k, m) if ta else (m, k)), ((n, k) if tb else (k, n))
        b = sg.tensor("b", bsh, dt)
        As = [sg.tensor(f"a{r}", ash, dt) for r in range(reps)]
        args = [rng.standard_normal(ash).astype(dt) for _ in As] + [
            rng.standard_normal(bsh).astype(dt)]
        if kind == "fold":
            lr = sg.shared(np.asarray(1e-9, dt), name="lr")
            ws = [sg.shared(rng.standard_normal((m, n)).astype(dt), name=f"w{r}")
                  for r in range(reps)]
            f = sg.function(As + [b], [], {w: w - lr * (a.T @ b) for w, a in zip(ws, As)},
                            backend="llvm")
        else:
            products = [(a.T if ta else a) @ (b.T if tb else b) for a in As]
            picked = [c[r % m, r % n] for r, c in enumerate(products)]
            f = sg.function(As + [b], sum(picked[1:], start=picked[0]), backend="llvm")
        return f, args
    finally:
        small_gemm.SMALL_GEMM_WORK.update(saved[0])
        small_gemm.SMALL_GEMM_DOT_WORK = saved[1]


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
    ap.add_argument("--kinds", default="NN,TN,NT", help="operand layouts of the sweep")
    ap.add_argument("--seconds", type=float, default=0.06, help="timing per build and shape")
    ap.add_argument("--no-dot", action="store_true",
                    help="B transposed takes the register tiles, never the dot-product form")
    opt = ap.parse_args()
    if opt.no_dot:
        small_gemm.SMALL_GEMM_DOT.clear()
    shapes = ([tuple(int(x) for x in s.split("x")) for s in opt.shapes.split(",")]
              if opt.shapes else QUICK if opt.quick else SWEEP)
    cases = [(kind, *s) for s in shapes for kind in opt.kinds.split(",")] + (
        [] if opt.shapes else W2)
    regs = jit.vector_registers()
    print(f"host: {regs} vector registers, tiles {small_gemm.SMALL_GEMM_TILES[regs]}, "
          f"dot-product tiles (B transposed, float32, k >= {small_gemm.SMALL_GEMM_DOT_MIN_K}): "
          f"{small_gemm.SMALL_GEMM_DOT.get(regs)}")
    print(f"{'dtype':8} {'kind':5} {'m':>4} {'n':>4} {'k':>4} {'m*n*k':>8} {'loop us':>8} "
          f"{'blas us':>8} {'ratio':>6}  GFMA/s loop")
    for dt in opt.dtypes.split(","):
        for kind, m, n, k in cases:
            built = {(r, reps): _build(kind, m, n, k, dt, r, reps)
                     for r in ("loop", "blas") for reps in (1, REPS)}
            if kind != "fold":  # the two routes agree before anything is timed
                np.testing.assert_allclose(built["loop", REPS][0](*built["loop", REPS][1]),
                                           built["blas", REPS][0](*built["blas", REPS][1]),
                                           rtol=1e-4, atol=1e-4 * k * REPS)
            t = {key: [] for key in built}
            for _ in range(3):  # interleaved repeats; the minimum of each build
                for key, (f, args) in built.items():
                    t[key].append(_time(f, args, opt.seconds))
            loop, blas = ((min(t[r, REPS]) - min(t[r, 1])) / (REPS - 1) for r in ("loop", "blas"))
            ratio = max(loop, 1e-3) / max(blas, 1e-3)
            print(f"{dt:8} {kind:5} {m:4} {n:4} {k:4} {m * n * k:8} {loop:8.2f} {blas:8.2f} "
                  f"{ratio:6.2f}  {m * n * k / max(loop, 1e-3) / 1e3:6.1f}", flush=True)


if __name__ == "__main__":
    main()
