#!/usr/bin/env python
"""``fit`` throughput: symgraph's ``model.fit`` (llvm, numpy) against a PyTorch loop and Keras.

The issue's workload: a 784-256-10 ReLU MLP, softmax cross-entropy from logits,
plain SGD (``--lr``, default 0.1), batch 128, float32, on synthetic data
(``default_rng(0)``: 60,000 x 784 standard normal, integer labels in 0..9),
the examples shuffled every epoch by every framework. Each framework runs in
its own subprocess: one warm-up epoch (compiles, caches, page faults), then
``--epochs`` timed epochs; the figure is the median epoch's examples per
second, and every ratio compares numbers measured in this same run (absolute
times across runs mean nothing on this shared, noisy machine).

* ``llvm``   ``model.fit`` with ``compile(..., backend="llvm")``; this process also
             profiles where ``fit``'s time goes (see below);
* ``numpy``  ``model.fit`` with ``backend="numpy"`` (the reference evaluator);
* ``torch``  a hand-written PyTorch CPU loop (index a batch, zero_grad, forward, loss,
             backward, step), ``torch.set_num_threads(2)``;
* ``keras``  Keras 3 on JAX (``model.fit``), run with ``--keras-python``, an interpreter of a
             separate venv (``pip install keras jax``; never a project dependency); skipped
             with a note when that interpreter is missing.

Profile of the llvm ``fit`` epoch (medians over the same timed epochs): time inside
``train_function.epoch`` calls vs ``fit``'s own Python around them, the chunk sizes fit
chose, the shuffle copy alone, ``train_function.epoch`` on the whole epoch in one call
(shuffled and in order), and a Python loop of single ``train_function`` steps.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/fit.py [--epochs 5]
        [--only llvm,numpy,torch,keras] [--keras-python /work/bench-venv/bin/python]
        [--examples 60000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _p in (str(BENCH), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import numpy as np  # noqa: E402
from timing import LoadMeter, TimingConfig, wait_quiet  # noqa: E402  (stdlib only: Keras venv)

SECTIONS = ("llvm", "numpy", "torch", "keras")
LABELS = {"llvm": "symgraph fit (llvm)", "numpy": "symgraph fit (numpy)",
          "torch": "PyTorch loop", "keras": "Keras 3 on JAX fit"}
DEFAULT_KERAS_PYTHON = "/work/bench-venv/bin/python"
IN, HIDDEN, CLASSES, BATCH = 784, 256, 10, 128
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(SECTIONS), help="sections: llvm,numpy,torch,keras")
    ap.add_argument("--epochs", type=int, default=5, help="timed epochs after the warm-up one")
    ap.add_argument("--examples", type=int, default=60000)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--keras-python", default=DEFAULT_KERAS_PYTHON,
                    help="interpreter of a venv with keras and jax (skipped if missing)")
    ap.add_argument("--no-profile", action="store_true", help="skip the llvm fit profile")
    ap.add_argument("--json", default=None, help="write every row to this file")
    ap.add_argument("--timeout-s", type=float, default=1800.0, help="per-section time limit")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.examples < BATCH:
        ap.error(f"--epochs must be >= 1 and --examples >= {BATCH}")
    return args


def make_data(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic problem every framework trains on (same bits in every process)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, IN), dtype=np.float32)
    y = rng.integers(0, CLASSES, n).astype(np.int64)
    return X, y


def timed_epochs(run_epoch, epochs: int) -> dict[str, Any]:
    """Warm-up epoch, then ``epochs`` timed ones; each epoch's seconds and background load.

    Before each timed epoch it waits (up to a few seconds) for other processes to go quiet;
    an epoch during which they used >= 0.3 cores counts as not clean (``clean`` fraction).
    """
    quiet = TimingConfig(quiet_wait_s=5.0)
    t0 = time.perf_counter()
    run_epoch()
    warm = time.perf_counter() - t0
    seconds, loads = [], []
    for _ in range(epochs):
        wait_quiet(quiet)
        with LoadMeter() as meter:
            t0 = time.perf_counter()
            loss = run_epoch()
            seconds.append(time.perf_counter() - t0)
        loads.append(meter.bg)
    return dict(warmup_s=warm, epoch_s=seconds, bg=loads, median_s=statistics.median(seconds),
                clean=sum(b < quiet.bg_thresh for b in loads) / len(loads),
                last_loss=None if loss is None else float(loss))


def blas_info() -> dict[str, Any]:
    """This process's BLAS (threadpoolctl if installed, else codegen.native.blas) and
    thread counts."""
    info: dict[str, Any] = {}
    try:
        import threadpoolctl
        info["threadpoolctl"] = [
            {k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for d in threadpoolctl.threadpool_info()]
    except ImportError:
        try:
            from codegen.native.blas import blas_info as cg_blas_info
            info["codegen.native.blas"] = cg_blas_info()
        except Exception as e:  # the Keras venv has neither
            info["error"] = f"{type(e).__name__}: {e}"
    return info


# ============================================================================ workers
def run_symgraph(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    import frontends as fe

    X, y = make_data(args.examples)
    model = fe.Sequential([fe.layers.Dense(HIDDEN, activation="relu"),
                           fe.layers.Dense(CLASSES)], input_shape=(IN,), seed=0)
    t0 = time.perf_counter()
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.SGD(lr=args.lr),
                  backend=backend)
    compile_s = time.perf_counter() - t0
    step = model.train_function
    calls: list[tuple[int, float]] = []

    class Recorder:
        """Stands in for ``model.train_function``: times each chunk ``fit`` hands it."""

        def epoch(self, *arrays, **kwargs):
            t = time.perf_counter()
            out = step.epoch(*arrays, **kwargs)
            calls.append((len(arrays[0]), time.perf_counter() - t))
            return out

    model.train_function = Recorder()
    per_epoch: list[list[tuple[int, float]]] = []

    def fit_epoch():
        calls.clear()
        h = model.fit(X, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=False,
                      progress=False)
        per_epoch.append(list(calls))
        return h.history["loss"][-1]

    row = dict(section=backend, compile_s=compile_s, **timed_epochs(fit_epoch, args.epochs))
    timed = per_epoch[1:]
    inside = [sum(t for _, t in c) for c in timed]
    row["chunks"] = dict(
        inside_epoch_calls_s=statistics.median(inside),
        outside_s=statistics.median(e - i for e, i in zip(row["epoch_s"], inside)),
        calls_per_epoch=statistics.median(len(c) for c in timed),
        chunk_examples=sorted({n for c in timed for n, _ in c}))
    model.train_function = step
    if backend == "llvm" and not args.no_profile:
        row["profile"] = profile_llvm(step, X, y, args.epochs)
    return row


def profile_llvm(step, X: np.ndarray, y: np.ndarray, reps: int) -> dict[str, float]:
    """Where an llvm epoch's time goes, each piece timed alone (median seconds per epoch)."""
    n = len(X)
    rng = np.random.default_rng(1)

    def shuffle_copy():
        order = rng.permutation(n)
        X[order], y[order]

    def one_call_shuffled():
        order = rng.permutation(n)
        return step.epoch(X[order], y[order], batch_size=BATCH)[0][-1]

    def one_call_in_order():
        return step.epoch(X, y, batch_size=BATCH)[0][-1]

    def python_loop():
        loss = None
        for i in range(0, n, BATCH):
            loss = step(X[i:i + BATCH], y[i:i + BATCH])
        return loss[0]

    out = {}
    for name, fn in (("shuffle_copy_s", shuffle_copy),
                     ("epoch_one_call_shuffled_s", one_call_shuffled),
                     ("epoch_one_call_in_order_s", one_call_in_order),
                     ("python_loop_of_steps_s", python_loop)):
        out[name] = timed_epochs(fn, max(3, reps))["median_s"]
    return out


def run_torch(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    Xn, yn = make_data(args.examples)
    X, y = torch.from_numpy(Xn), torch.from_numpy(yn)
    model = torch.nn.Sequential(torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(),
                                torch.nn.Linear(HIDDEN, CLASSES))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    n = len(X)

    def epoch():
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, BATCH):
            idx = order[i:i + BATCH]
            xb, yb = X[idx], y[idx]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        return total / n

    row = dict(section="torch", **timed_epochs(epoch, args.epochs))
    config = torch.__config__.show()
    blas = [part.strip() for line in config.splitlines() for part in line.split(",")
            if "BLAS_INFO" in part or "USE_MKLDNN" in part]
    row["framework"] = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                        "config": blas}
    return row


def run_keras(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import jax
    import keras

    keras.utils.set_random_seed(0)
    X, y = make_data(args.examples)
    model = keras.Sequential([keras.Input((IN,)), keras.layers.Dense(HIDDEN, activation="relu"),
                              keras.layers.Dense(CLASSES)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=args.lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def epoch():
        h = model.fit(X, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
        return h.history["loss"][-1]

    row = dict(section="keras", **timed_epochs(epoch, args.epochs))
    row["framework"] = {"keras": keras.__version__, "jax": jax.__version__,
                        "backend": keras.backend.backend(),
                        "devices": [str(d) for d in jax.devices()]}
    return row


def worker_main(args: argparse.Namespace) -> int:
    runners = {"llvm": lambda: run_symgraph(args, "llvm"),
               "numpy": lambda: run_symgraph(args, "numpy"),
               "torch": lambda: run_torch(args), "keras": lambda: run_keras(args)}
    row = runners[args.worker]()
    # torch brings its own BLAS (reported from torch.__config__); numpy's is not what it uses
    row["blas"] = blas_info() if args.worker != "torch" else {}
    row["examples"] = args.examples
    with open(args.out, "w") as fh:
        json.dump(row, fh, default=float)
    return 0


# ============================================================================ orchestration
def run_section(section: str, args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    python = sys.executable
    if section == "keras":
        if not os.path.exists(args.keras_python):
            return dict(section=section, status=f"skipped: no interpreter {args.keras_python} "
                        "(python -m venv /work/bench-venv && /work/bench-venv/bin/pip install "
                        "keras jax)")
        python = args.keras_python
    out = os.path.join(tmp, f"{section}.json")
    cmd = [python, str(Path(__file__).resolve()), "--worker", section, "--out", out,
           "--epochs", str(args.epochs), "--examples", str(args.examples), "--lr", str(args.lr)]
    if args.no_profile:
        cmd.append("--no-profile")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), str(BENCH)] + ([os.environ["PYTHONPATH"]] if "PYTHONPATH" in os.environ
                                   else []))}
    print(f"[{section}] {python}", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout_s,
                              env=env)
    except subprocess.TimeoutExpired:
        return dict(section=section, status="timed out")
    print(f"  ({time.perf_counter() - t0:.1f} s, exit {proc.returncode})", flush=True)
    if proc.returncode != 0 or not os.path.exists(out):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return dict(section=section, status=f"failed (exit {proc.returncode}): "
                    + " / ".join(tail)[-300:])
    with open(out) as fh:
        row = json.load(fh)
    row["status"] = "ok"
    row["examples_per_s"] = row["examples"] / row["median_s"]
    return row


def report(rows: list[dict[str, Any]]) -> str:
    lines = []
    torch_rate = next((r["examples_per_s"] for r in rows
                       if r["section"] == "torch" and r["status"] == "ok"), None)
    lines.append(f"\n{'framework':<22}{'examples/s':>12}{'vs PyTorch':>12}{'epoch s':>9}"
                 f"{'p10..p90 s':>14}{'clean':>7}{'warm-up s':>10}{'last loss':>10}")
    for r in rows:
        name = LABELS[r["section"]]
        if r["status"] != "ok":
            lines.append(f"{name:<22}{r['status']}")
            continue
        ts = sorted(r["epoch_s"])
        spread = f"{ts[int(0.1 * (len(ts) - 1))]:.2f}..{ts[int(0.9 * (len(ts) - 1))]:.2f}"
        ratio = f"{r['examples_per_s'] / torch_rate:.2f}x" if torch_rate else "n/a"
        lines.append(f"{name:<22}{r['examples_per_s']:>12,.0f}{ratio:>12}{r['median_s']:>9.3f}"
                     f"{spread:>14}{r['clean']:>7.0%}{r['warmup_s']:>10.2f}"
                     f"{r['last_loss']:>10.4f}")
    llvm = next((r for r in rows if r["section"] == "llvm" and r["status"] == "ok"), None)
    if llvm and torch_rate:
        ratio = llvm["examples_per_s"] / torch_rate
        lines.append(f"\ntarget: llvm fit >= 2x the PyTorch loop: {ratio:.2f}x -> "
                     f"{'PASS' if ratio >= 2 else 'MISS'}")
    for r in rows:
        if r.get("status") == "ok" and "chunks" in r:
            c = r["chunks"]
            lines.append(f"\n{LABELS[r['section']]}: median epoch {r['median_s']:.3f} s = "
                         f"{c['inside_epoch_calls_s']:.3f} s in train_function.epoch "
                         f"({c['calls_per_epoch']:.0f} calls, chunks of "
                         f"{', '.join(map(str, c['chunk_examples'][:6]))}"
                         f"{', ...' if len(c['chunk_examples']) > 6 else ''} examples) + "
                         f"{c['outside_s']:.3f} s in fit's Python around them; "
                         f"compile {r['compile_s']:.2f} s")
        if r.get("status") == "ok" and "profile" in r:
            p = r["profile"]
            n = r["examples"]
            lines.append("  the pieces alone (median s per epoch; examples/s):")
            for key, what in (("shuffle_copy_s", "permutation + X[order], y[order] copy"),
                              ("epoch_one_call_shuffled_s", "shuffle copy + f.epoch, one call"),
                              ("epoch_one_call_in_order_s", "f.epoch on the data in order, "
                                                            "one call"),
                              ("python_loop_of_steps_s", "Python loop of f(xb, yb) steps")):
                lines.append(f"    {what:<42}{p[key]:>8.3f} s  {n / p[key]:>10,.0f}")
    lines.append("\nBLAS / threads per process:")
    for r in rows:
        if r.get("status") == "ok":
            extra = f"  {r['framework']}" if "framework" in r else ""
            lines.append(f"  {r['section']:<6} {json.dumps(r['blas'])}{extra}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    set_env = [k for k in OPENBLAS_ENV if k in os.environ]
    if set_env:
        print(f"warning: {', '.join(set_env)} set: OpenBLAS may not use its best kernel; run "
              "with env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE", flush=True)
    print(f"fit throughput: {IN}-{HIDDEN}-{CLASSES} ReLU MLP, softmax cross-entropy, SGD lr "
          f"{args.lr}, batch {BATCH}, float32, {args.examples} synthetic examples, shuffled; "
          f"1 warm-up + {args.epochs} timed epochs per framework", flush=True)
    sections = [s for s in args.only.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown section(s) {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_section(s, args, tmp) for s in sections]
    print(report(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
