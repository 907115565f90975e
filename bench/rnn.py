#!/usr/bin/env python
"""Recurrent training-step benchmark: ``fe.layers.LSTM`` / ``GRU`` (unrolled, llvm) against
torch eager's ``nn.LSTM`` / ``nn.GRU``, in one process.

The model: RNN(32 units) over (batch 32, T steps, 16 features), the last state into a
Dense(10), softmax cross-entropy, one Adam step (lr 1e-3). Both frameworks start from the
same weights (ours mapped to torch's layout); their first losses are checked to agree.
For each cell and T it prints:

* ``compile s``: ``model.compile`` plus the first step, with an empty compile cache (the
  unrolled graph is compiled once per model; the disk cache keeps it);
* ``sg ms`` / ``torch ms`` and ``ratio``: the step, timed in alternating chunks of this one
  process (``bench/timing.py``: chunks during which other processes used the machine are
  dropped; each chunk is preceded by 0.15 s of untimed calls so the other framework's
  spinning threads have stopped).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/rnn.py [--lengths 20,50]
        [--cells LSTM,GRU] [--rounds 9] [--masked]

``--masked``: variable lengths. Each sequence is zero-padded after a length drawn from
[T/2, T]; ours reads them with ``mask_value=0`` (every step still computed, padded ones
kept out by a ``where``), torch through ``pack_padded_sequence`` (padded steps skipped).

Benchmarks are not tests: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _p in (str(BENCH), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

os.environ.setdefault("SYMGRAPH_CACHE_DIR", tempfile.mkdtemp(prefix="sg-rnn-bench-"))

import numpy as np  # noqa: E402
import timing  # noqa: E402
import torch  # noqa: E402

import frontends as fe  # noqa: E402

UNITS, FEATURES, BATCH, CLASSES = 32, 16, 32, 10


def _ours(cell: str, steps: int, masked: bool = False):
    """The model, not yet compiled (its weights exist: torch's copy is made from them)."""
    rnn = getattr(fe.layers, cell)(UNITS, mask_value=0.0 if masked else None)
    return fe.Sequential([rnn, fe.layers.Dense(CLASSES)], input_shape=(steps, FEATURES),
                         seed=0)


def _torch(cell: str, weights: list[np.ndarray]):
    """torch's cell and head with our initial weights (Keras layout -> torch's)."""
    W, U, b, Wd, bd = weights
    rnn = getattr(torch.nn, cell)(FEATURES, UNITS, batch_first=True)
    if cell == "GRU":  # ours z, r, h; torch r, z, n
        def order(a, axis=-1):
            z, r, h = np.split(a, 3, axis=axis)
            return np.concatenate([r, z, h], axis=axis)
        W, U, b_ih, b_hh = order(W), order(U), order(b[0]), order(b[1])
    else:
        b_ih, b_hh = b, np.zeros_like(b)
    with torch.no_grad():
        for name, value in (("weight_ih_l0", W.T), ("weight_hh_l0", U.T),
                            ("bias_ih_l0", b_ih), ("bias_hh_l0", b_hh)):
            getattr(rnn, name).copy_(torch.tensor(np.ascontiguousarray(value)))
    head = torch.nn.Linear(UNITS, CLASSES)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(Wd.T))
        head.bias.copy_(torch.tensor(bd))
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    return rnn, head, opt


def run(cell: str, steps: int, rounds: int, cfg: timing.TimingConfig,
        masked: bool = False) -> dict:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(BATCH, steps, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, BATCH)
    lengths = rng.integers(steps // 2, steps + 1, BATCH) if masked else None
    if masked:
        X[np.arange(steps) >= lengths[:, None]] = 0.0
    model = _ours(cell, steps, masked)
    # torch's side first: its first layer in a process costs ~2 s of torch's own set-up,
    # which the compile time below used to include
    rnn, head, opt = _torch(cell, model.get_weights())
    t0 = time.perf_counter()
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(1e-3))
    first = float(model.train_function(X, y)[0])  # (loss, metrics...)
    compile_s = time.perf_counter() - t0
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def last_state():
        if not masked:
            return rnn(Xt)[0][:, -1]
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            Xt, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
        h_n = rnn(packed)[1]
        return (h_n[0] if cell == "LSTM" else h_n)[0]

    def torch_step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(last_state()), yt)
        loss.backward()
        opt.step()
        return loss.detach()

    torch_first = float(torch_step())
    if not np.isclose(first, torch_first, rtol=1e-4):
        raise SystemExit(f"{cell} T={steps}: first losses differ: {first} vs {torch_first}")
    got = timing.interleaved_ratio(lambda: model.train_function(X, y), torch_step, cfg,
                                   rounds=rounds, settle_s=0.15)
    return dict(cell=cell, steps=steps, compile_s=compile_s, **got)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", default="20,50")
    ap.add_argument("--cells", default="LSTM,GRU")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--masked", action="store_true",
                    help="variable lengths: mask_value=0 against torch's packed sequences")
    args = ap.parse_args(argv)
    cfg = timing.TimingConfig()
    print(f"{'cell':5} {'T':>4} {'compile s':>10} {'sg ms':>8} {'torch ms':>9} "
          f"{'ratio':>6} {'lo..hi':>12}")
    for cell in args.cells.split(","):
        for steps in (int(t) for t in args.lengths.split(",")):
            r = run(cell, steps, args.rounds, cfg, args.masked)
            if "ratio" not in r:
                print(f"{cell:5} {steps:>4} {r['compile_s']:>10.2f}  (no quiet chunks)")
                continue
            print(f"{cell:5} {steps:>4} {r['compile_s']:>10.2f} {r['a_ms']:>8.3f} "
                  f"{r['b_ms']:>9.3f} {r['ratio']:>6.2f} {r['lo']:>5.2f}..{r['hi']:<5.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
