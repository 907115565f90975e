"""A training step while another process keeps one core busy (codegen/native/contention.py).

Each configuration runs in a fresh process: W1-SGD (bench/workloads.py) called ``--calls``
times one by one, then ``f.epoch`` over 56 minibatches, and a small convnet step (the review's
worst case: one gemm per image row tile). A busy-loop process (``while True: pass``) runs
beside the ``busy`` rows; ``idle`` rows have the machine to themselves. Rows print the median
and the 90th percentile per step, and the ratio of the median to the ``idle, adaptive`` row
measured in the same run (the baseline). Configurations:

* ``adaptive``: ``SYMGRAPH_ADAPTIVE_THREADS=1`` (the governor falls back to one OpenBLAS
  thread under load);
* ``fixed``: the default (OpenBLAS's threads whatever the load);
* ``1 thread``: ``OPENBLAS_NUM_THREADS=1``.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/contention.py [--calls 300]

Not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import symgraph as sg
import workloads as wk

calls = int(sys.argv[2])
p = wk.make_problem("W1")
f = wk.build_sg_step(p, "sgd", "llvm")
X, y = p["X"], p["y"]
for _ in range(5):
    f(X, y)
ts = []
for _ in range(calls):
    t0 = time.perf_counter(); f(X, y); ts.append(time.perf_counter() - t0)
rng = np.random.default_rng(0)
Xe = rng.standard_normal((56 * len(X), X.shape[1])).astype(X.dtype)
ye = rng.integers(0, 10, len(Xe)).astype(y.dtype)
es = []
for _ in range(max(3, calls // 60)):
    t0 = time.perf_counter()
    f.epoch(Xe, ye, batch_size=len(X))
    es.append((time.perf_counter() - t0) / 56)
x = sg.tensor("x", ("batch", 16, 32, 32), "float32")
w = sg.shared(rng.standard_normal((32, 16, 3, 3)).astype("float32") * 0.1, name="w")
loss = sg.mean(sg.nn.relu(sg.nn.conv2d(x, w, padding=1)))
g = sg.function([x], loss, updates={w: w - np.float32(0.01) * sg.grad(loss, w)})
xc = rng.standard_normal((32, 16, 32, 32)).astype("float32")
for _ in range(3):
    g(xc)
cs = []
for _ in range(max(5, calls // 20)):
    t0 = time.perf_counter(); g(xc); cs.append(time.perf_counter() - t0)
print(json.dumps({"step": ts, "epoch": es, "conv": cs}))
"""

CONFIGS = {"adaptive": {"SYMGRAPH_ADAPTIVE_THREADS": "1"}, "fixed": {},
           "1 thread": {"OPENBLAS_NUM_THREADS": "1"}}


def _quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run(config: str, busy: bool, calls: int, cache: str) -> dict[str, list[float]]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SYMGRAPH_ADAPTIVE_THREADS", "OPENBLAS_NUM_THREADS")}
    env.update(SYMGRAPH_CACHE_DIR=cache, **CONFIGS[config])
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "bench"), str(calls)],
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sg-contention-") as cache:
        run("adaptive", False, 10, cache)  # fill the compile cache: no row pays a compile
        rows = {(c, b): run(c, b, args.calls, cache) for b in (False, True) for c in CONFIGS}
    base = rows[("adaptive", False)]
    print(f"{'':22s}" + "".join(f"{k:>34s}" for k in ("W1-SGD step", "W1 f.epoch per step",
                                                        "conv step")))
    print(f"{'':22s}" + "".join(
        f"{'median ms':>12s}{'p90 ms':>10s}{'x base':>12s}" for _ in range(3)))
    for (config, busy), got in rows.items():
        cells = "".join(f"{1e3 * _quantile(got[k], 0.5):12.3f}{1e3 * _quantile(got[k], 0.9):10.3f}"
                        f"{_quantile(got[k], 0.5) / _quantile(base[k], 0.5):12.2f}"
                        for k in ("step", "epoch", "conv"))
        print(f"{('busy, ' if busy else 'idle, ') + config:22s}{cells}")


if __name__ == "__main__":
    main()
