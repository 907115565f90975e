#!/usr/bin/env python
"""The cost of ``fe.callbacks.Diagnostics``: an epoch with it as a ratio to a plain epoch.

Workloads, on the embedded digits data (standardised, the last 10% of the
1,438 training examples as validation data, as the main job):

* ``main``  the main job's model (``frontends/datasets/digits_mlp.yaml``): 64-128 ReLU -
            Dropout(0.2) - 64 ReLU - 10, Adam(1e-3), L2(1e-4), batch 32;
* ``wide``  64-512 ReLU - 512 tanh - 10, Adam(1e-3), batch 32 (bigger layers: the probe's
            histograms and norms grow with them, the epoch with the data).

Per workload and backend, two models built the same way, one trained plainly and one with
``Diagnostics(every=1, probe_size=256)``; a timed call is ``model.fit(..., epochs=1)``
(validation, history, callbacks included; the probe is compiled once, on the first fit,
and kept). ``--pairs`` pairs of one plain and one diagnostics epoch run back to back (the
order alternating), each pair under ``bench/timing.py``'s load meter: pairs during which
other processes used more than 0.3 cores are dropped while the budget lasts. The ratio is
the median over pairs of (diagnostics epoch / plain epoch), with its quartiles: both
epochs of a pair see the same machine. Also printed: ``probe.stats()``
alone, and the one-off cost of building and compiling the probe (with a fresh compile
cache: the first run on a machine).

    python bench/diagnostics.py [--pairs 100] [--backends llvm,numpy] [--workloads main,wide]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _p in (str(BENCH), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

# a fresh compile cache: the probe's compile time is that of a first run
_CACHE = tempfile.TemporaryDirectory(prefix="symgraph-bench-diag-")
os.environ["SYMGRAPH_CACHE_DIR"] = _CACHE.name

from timing import LoadMeter, TimingConfig, measure, wait_quiet  # noqa: E402

import frontends as fe  # noqa: E402
from frontends.callbacks import Diagnostics  # noqa: E402
from frontends.diagnostics import Probe  # noqa: E402

L = fe.layers
PROBE_SIZE = 256


def build(workload: str, backend: str):
    if workload == "main":
        layers = [L.Dense(128, activation="relu"), L.Dropout(0.2),
                  L.Dense(64, activation="relu"), L.Dense(10)]
        regularizer = fe.regularizers.L2(1e-4)
    elif workload == "wide":
        layers = [L.Dense(512, activation="relu"), L.Dense(512, activation="tanh"),
                  L.Dense(10)]
        regularizer = None
    else:
        raise SystemExit(f"unknown workload {workload!r}; valid: main, wide")
    model = fe.Sequential(layers, input_shape=(64,), seed=0)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(lr=1e-3),
                  regularizer=regularizer, metrics=["accuracy"], backend=backend)
    return model


def _paired(plain, probed, pairs: int, cfg: TimingConfig):
    """``pairs`` back-to-back (plain epoch, diagnostics epoch) timings, in alternating order;
    a pair counts when the background load during it stayed under ``cfg.bg_thresh`` (or, if
    too few did within the budget, the least loaded). Returns per-epoch ms lists, the
    per-pair ratios and the clean fraction."""
    for _ in range(2):  # warm-up: page faults, caches
        plain(), probed()
    wait_quiet(cfg)
    clean_rows, dirty_rows = [], []
    deadline = time.perf_counter() + cfg.max_wait_s + pairs * 0.5
    i = 0
    while len(clean_rows) < pairs and time.perf_counter() < deadline:
        with LoadMeter() as load:
            first, second = (plain, probed) if i % 2 == 0 else (probed, plain)
            t0 = time.perf_counter()
            first()
            t1 = time.perf_counter()
            second()
            t2 = time.perf_counter()
        a, b = (t1 - t0, t2 - t1) if i % 2 == 0 else (t2 - t1, t1 - t0)
        (clean_rows if load.bg < cfg.bg_thresh else dirty_rows).append((load.bg, a, b))
        i += 1
    rows = clean_rows + sorted(dirty_rows)[:max(0, pairs - len(clean_rows))]
    plain_ms = [a * 1e3 for _, a, _ in rows]
    diag_ms = [b * 1e3 for _, _, b in rows]
    return plain_ms, diag_ms, [b / a for _, a, b in rows], len(clean_rows) / len(rows)


def run(workload: str, backend: str, pairs: int, cfg: TimingConfig) -> dict:
    data = fe.datasets.load("digits", standardize=True)
    X, y = data.train
    fit_args = dict(batch_size=32, epochs=1, validation_split=0.1, progress=False,
                    verbose=False)
    plain, probed = build(workload, backend), build(workload, backend)
    diag = Diagnostics(every=1, probe_size=PROBE_SIZE)

    cut = len(X) - round(0.1 * len(X))  # what fit trains on after validation_split=0.1
    start = time.perf_counter()
    probe = Probe(probed, X[:cut], y[:cut], size=PROBE_SIZE)
    build_s = time.perf_counter() - start
    compile_s = probe.function.compile_seconds
    probed.fit(X, y, callbacks=[diag], **fit_args)  # diag compiles its own probe, kept after

    plain_ms, diag_ms, ratios, clean = _paired(lambda: plain.fit(X, y, **fit_args),
                                               lambda: probed.fit(X, y, callbacks=[diag],
                                                                  **fit_args),
                                               pairs, cfg)
    stats = measure(probe.stats, cfg)
    assert diag.probe is not None and diag.probe.function.updates == []
    quartiles = statistics.quantiles(ratios, n=4)
    return {"workload": workload, "backend": backend,
            "plain_epoch_ms": statistics.median(plain_ms),
            "diagnostics_epoch_ms": statistics.median(diag_ms),
            "ratio": statistics.median(ratios), "ratio_q1": quartiles[0],
            "ratio_q3": quartiles[2], "pairs": len(ratios), "clean": clean,
            "probe_stats_ms": stats["med_ms"], "probe_build_s": build_s,
            "probe_compile_s": compile_s, "train_examples": cut,
            "parameters": plain.count_params()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--backends", default="llvm,numpy")
    parser.add_argument("--workloads", default="main,wide")
    parser.add_argument("--target-s", type=float, default=0.5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    cfg = TimingConfig(target_s=args.target_s, min_reps=5, warmup=1)
    rows = [run(w, b, args.pairs, cfg) for w in args.workloads.split(",")
            for b in args.backends.split(",")]
    print(f"{'workload':9} {'backend':7} {'params':>8} {'plain ms':>9} {'diag ms':>9} "
          f"{'ratio':>6} {'(q1-q3)':>11} {'clean':>6} {'stats() ms':>10} {'probe compile s':>15}")
    for r in rows:
        spread = f"{r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}"
        print(f"{r['workload']:9} {r['backend']:7} {r['parameters']:8d} "
              f"{r['plain_epoch_ms']:9.2f} {r['diagnostics_epoch_ms']:9.2f} {r['ratio']:6.2f} "
              f"{spread:>11} {r['clean']:6.0%} {r['probe_stats_ms']:10.2f} "
              f"{r['probe_compile_s']:15.2f}")
    print(f"(epoch: fit(epochs=1) on {rows[0]['train_examples']} examples, batch 32, with "
          f"validation; probe: {PROBE_SIZE} examples, every epoch; compile once per fit "
          "session, not in the ratio)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
