#!/usr/bin/env python
"""Stacks of matrix products (``BatchedMatMul``): split across the cores against the serial
loop, and against ``torch.bmm``, in one process.

For each stack shape (matrices, T, d) and attention's three layouts -- ``QK^T`` (T, d) @
(d, T) with B transposed, ``PV`` (T, T) @ (T, d), ``P^T dO`` with A transposed -- float32:

* ``split`` the default program (codegen/lower_blas.py ``_split_batch``: the matrices shared
  out between OpenBLAS's threads, each a generated 512-bit ``small_gemm`` on AVX-512);
* ``serial`` the same graph compiled with ``SPLIT_MATMUL_WORK = 0`` (what came before: a gemm
  per matrix, or the serial small loops for tiny ones);
* ``torch.bmm`` on the same arrays (2 threads);

timed in alternating chunks (``bench/timing.py``), printed as ms and the ratios split / serial
and split / torch.  The table in ``lower_blas.py``'s ``SPLIT_MATMUL_*`` comments comes from
this.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/batched_matmul.py
        [--shapes 128x128x16,128x128x32,...] [--rounds 7]

Benchmarks are not tests: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _p in (str(BENCH), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

os.environ.setdefault("SYMGRAPH_CACHE_DIR", tempfile.mkdtemp(prefix="sg-bmm-bench-"))

import numpy as np  # noqa: E402
import timing  # noqa: E402
import torch  # noqa: E402

import symgraph as sg  # noqa: E402
from codegen import lower_blas  # noqa: E402

SHAPES = "128x128x16,128x128x32,64x128x64,32x256x32,16x256x64,256x32x16"
#: layout -> (A stored, B stored, A transposed?, B transposed?) for T positions and d features
LAYOUTS = {"QK^T": (("T", "d"), ("T", "d"), False, True),
           "PV": (("T", "T"), ("T", "d"), False, False),
           "P^T dO": (("T", "T"), ("T", "d"), True, False)}


def _compile(a_shape, b_shape, ta: bool, tb: bool, split: bool):
    """The product compiled with the split on or off (a tunable: its own program key)."""
    saved = lower_blas.SPLIT_MATMUL_WORK
    lower_blas.SPLIT_MATMUL_WORK = saved if split else 0
    try:
        a = sg.tensor("a", a_shape, "float32")
        b = sg.tensor("b", b_shape, "float32")
        swap = (0, 2, 1)
        return sg.function([a, b], sg.matmul(sg.transpose(a, swap) if ta else a,
                                             sg.transpose(b, swap) if tb else b),
                           backend="llvm")
    finally:
        lower_blas.SPLIT_MATMUL_WORK = saved


def run(count: int, steps: int, dim: int, layout: str, rounds: int,
        cfg: timing.TimingConfig) -> dict:
    size = {"T": steps, "d": dim}
    a_mat, b_mat, ta, tb = LAYOUTS[layout]
    a_shape = (count,) + tuple(size[s] for s in a_mat)
    b_shape = (count,) + tuple(size[s] for s in b_mat)
    rng = np.random.default_rng(0)
    A = rng.standard_normal(a_shape).astype(np.float32)
    B = rng.standard_normal(b_shape).astype(np.float32)
    split, serial = (_compile(a_shape, b_shape, ta, tb, on) for on in (True, False))
    At, Bt = torch.from_numpy(A), torch.from_numpy(B)
    At, Bt = (At.transpose(1, 2) if ta else At), (Bt.transpose(1, 2) if tb else Bt)
    want = torch.bmm(At, Bt).numpy()
    for f in (split, serial):
        np.testing.assert_allclose(f(A, B), want, rtol=1e-4, atol=1e-3 * max(steps, dim))
    vs_serial = timing.interleaved_ratio(lambda: split(A, B), lambda: serial(A, B), cfg,
                                         rounds=rounds)
    vs_torch = timing.interleaved_ratio(lambda: split(A, B), lambda: torch.bmm(At, Bt), cfg,
                                        rounds=rounds, settle_s=0.15)
    return dict(split_ms=vs_serial.get("a_ms"), serial_ms=vs_serial.get("b_ms"),
                torch_ms=vs_torch.get("b_ms"), vs_serial=vs_serial.get("ratio"),
                vs_torch=vs_torch.get("ratio"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default=SHAPES, help="matrices x T x d, comma-separated")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    cfg = timing.TimingConfig()
    print(f"{'stack':>14} {'layout':>7} {'split ms':>9} {'serial ms':>10} {'torch ms':>9} "
          f"{'/serial':>8} {'/torch':>7}")
    for shape in args.shapes.split(","):
        count, steps, dim = (int(v) for v in shape.split("x"))
        for layout in LAYOUTS:
            r = run(count, steps, dim, layout, args.rounds, cfg)
            if r["vs_serial"] is None or r["vs_torch"] is None:
                print(f"{shape:>14} {layout:>7}  (no quiet chunks)")
                continue
            print(f"{shape:>14} {layout:>7} {r['split_ms']:>9.3f} {r['serial_ms']:>10.3f} "
                  f"{r['torch_ms']:>9.3f} {r['vs_serial']:>8.2f} {r['vs_torch']:>7.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
