#!/usr/bin/env python
"""Transformer training-step benchmark: ``fe.layers.TransformerEncoder`` (llvm) against torch
eager's ``nn.TransformerEncoderLayer``, in one process.

The model: one encoder block (``--heads`` heads, feed-forward 4 x d, relu, post-norm) over
(batch 32, T positions, d features) float32, causal or not, its output flattened into a
Dense(10), softmax cross-entropy, one Adam step (lr 1e-3). Both frameworks start from the
same weights (ours mapped to torch's layout); their first losses are checked to agree.
For each (T, d, causal) it prints:

* ``compile s``: ``model.compile`` plus the first step, with an empty compile cache;
* ``sg ms`` / ``torch ms`` and ``ratio``: the step, timed in alternating chunks of this one
  process (``bench/timing.py``: chunks during which other processes used the machine are
  dropped; each chunk is preceded by 0.15 s of untimed calls so the other framework's
  spinning threads have stopped).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/transformer.py
        [--lengths 32,128] [--dims 64,128] [--heads 4] [--rounds 9]

Measured 2026-12-04 on this 2-core AVX-512 host (both at 2 threads, --rounds 5), the step
as a ratio to torch's (causal in brackets): d=64, T=32 0.58 (0.53); T=128 0.87 (0.86);
d=128, T=32 0.77 (0.72), T=128 0.86 (0.87).  Earlier the same day, before the batched
products over batch x heads ran on both cores and read the heads in place, and before the
softmax and the sums ran on both cores: d=64, T=32 0.59 (0.64), T=128 1.17 (1.07).  Left:
the softmax gradient's two passes, and four copies per step putting heads back in position
order.

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

os.environ.setdefault("SYMGRAPH_CACHE_DIR", tempfile.mkdtemp(prefix="sg-transformer-bench-"))

import numpy as np  # noqa: E402
import timing  # noqa: E402
import torch  # noqa: E402

import frontends as fe  # noqa: E402

BATCH, CLASSES = 32, 10


def _ours(steps: int, dim: int, heads: int, causal: bool) -> fe.Sequential:
    return fe.Sequential([fe.layers.TransformerEncoder(heads, 4 * dim, causal=causal),
                          fe.layers.Flatten(), fe.layers.Dense(CLASSES)],
                         input_shape=(steps, dim), seed=0)


def _torch(model: fe.Sequential, steps: int, dim: int, heads: int):
    """torch's block and head with ``model``'s initial weights."""
    block = torch.nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0,
                                             batch_first=True)
    head = torch.nn.Linear(steps * dim, CLASSES)
    value = {w.name.split("/")[-1] + ("_head" if "dense" in w.name else ""):
             torch.tensor(w.get_value()) for w in model.weights}
    with torch.no_grad():
        attn = block.self_attn
        attn.in_proj_weight.copy_(torch.cat([value["Wq"].T, value["Wk"].T, value["Wv"].T]))
        attn.in_proj_bias.copy_(torch.cat([value["bq"], value["bk"], value["bv"]]))
        attn.out_proj.weight.copy_(value["Wo"].T)
        attn.out_proj.bias.copy_(value["bo"])
        block.linear1.weight.copy_(value["W1"].T)
        block.linear1.bias.copy_(value["b1"])
        block.linear2.weight.copy_(value["W2"].T)
        block.linear2.bias.copy_(value["b2"])
        for i, norm in ((1, block.norm1), (2, block.norm2)):
            norm.weight.copy_(value[f"gamma{i}"])
            norm.bias.copy_(value[f"beta{i}"])
        head.weight.copy_(value["W_head"].T)
        head.bias.copy_(value["b_head"])
    opt = torch.optim.Adam([*block.parameters(), *head.parameters()], lr=1e-3)
    return block, head, opt


def run(steps: int, dim: int, heads: int, causal: bool, rounds: int,
        cfg: timing.TimingConfig) -> dict:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(BATCH, steps, dim)).astype(np.float32)
    y = rng.integers(0, CLASSES, BATCH)
    model = _ours(steps, dim, heads, causal)
    # torch's side first: its first layer in a process costs its own set-up
    block, head, opt = _torch(model, steps, dim, heads)
    t0 = time.perf_counter()
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(1e-3))
    first = float(model.train_function(X, y)[0])
    compile_s = time.perf_counter() - t0
    Xt, yt = torch.tensor(X), torch.tensor(y)
    mask = torch.triu(torch.ones(steps, steps, dtype=torch.bool), 1) if causal else None

    def torch_step():
        opt.zero_grad()
        out = block(Xt, src_mask=mask, is_causal=causal)
        loss = torch.nn.functional.cross_entropy(head(out.flatten(1)), yt)
        loss.backward()
        opt.step()
        return loss.detach()

    torch_first = float(torch_step())
    if not np.isclose(first, torch_first, rtol=1e-4):
        raise SystemExit(f"T={steps} d={dim}: first losses differ: {first} vs {torch_first}")
    got = timing.interleaved_ratio(lambda: model.train_function(X, y), torch_step, cfg,
                                   rounds=rounds, settle_s=0.15)
    return dict(compile_s=compile_s, **got)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", default="32,128")
    ap.add_argument("--dims", default="64,128")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args(argv)
    cfg = timing.TimingConfig()
    print(f"{'T':>4} {'d':>4} {'causal':>6} {'compile s':>10} {'sg ms':>8} {'torch ms':>9} "
          f"{'ratio':>6} {'lo..hi':>12}")
    for steps in (int(t) for t in args.lengths.split(",")):
        for dim in (int(d) for d in args.dims.split(",")):
            for causal in (False, True):
                r = run(steps, dim, args.heads, causal, args.rounds, cfg)
                head = f"{steps:>4} {dim:>4} {str(causal):>6} {r['compile_s']:>10.2f}"
                if "ratio" not in r:
                    print(f"{head}  (no quiet chunks)")
                    continue
                print(f"{head} {r['a_ms']:>8.3f} {r['b_ms']:>9.3f} {r['ratio']:>6.2f} "
                      f"{r['lo']:>5.2f}..{r['hi']:<5.2f}", flush=True)


if __name__ == "__main__":
    main()
