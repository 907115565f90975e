"""A recurrent net on the embedded 8x8 digits: each image read as a sequence of its 8 rows.

The images come flat (n, 64); ``Reshape((8, 8))`` makes them (n, time=8, features=8), the
rows top to bottom. An LSTM (or GRU, ``--cell``) reads them, LayerNorm normalises its last
state, and a Dense layer scores the 10 classes. AdamW with a cosine schedule (a linear
warm-up over the first epoch) trains it; the biases and LayerNorm's scale and shift are
not decayed. The whole training step -- the unrolled recurrence, its backward pass
through time and the update -- is one native function.

    python examples/digits_rnn.py [--cell LSTM|GRU] [--units 64] [--epochs 30]
    symgraph train examples/digits_rnn.yaml     # the same model from a spec file
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import frontends as fe


def build(cell: str, units: int, seed: int) -> fe.Sequential:
    L = fe.layers
    return fe.Sequential([
        L.Reshape((8, 8)),          # 64 pixels -> 8 rows of 8
        getattr(L, cell)(units),    # the last state: (batch, units)
        L.LayerNorm(),
        L.Dense(10),
    ], input_shape=(64,), seed=seed, name=f"digits_{cell.lower()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="LSTM", choices=["LSTM", "GRU", "SimpleRNN"])
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    (X, y), (Xt, yt) = fe.datasets.load_digits()
    X, Xt = fe.datasets.standardize(X, Xt)
    X, Xt = X.astype(np.float32), Xt.astype(np.float32)
    steps_per_epoch = -(-len(X) // args.batch_size)
    schedule = fe.schedules.Cosine(steps=args.epochs * steps_per_epoch,
                                   warmup=steps_per_epoch)
    model = build(args.cell, args.units, args.seed)
    start = time.perf_counter()
    model.compile(loss="cross_entropy", metrics=["accuracy"],
                  optimizer=fe.optimizers.AdamW(lr=args.lr, weight_decay=args.weight_decay,
                                                exclude=["b", "gamma", "beta"],
                                                schedule=schedule))
    compiled = time.perf_counter() - start
    model.summary()
    start = time.perf_counter()
    history = model.fit(X, y, batch_size=args.batch_size, epochs=args.epochs, progress=False,
                        verbose=False)
    seconds = time.perf_counter() - start
    result = model.evaluate(Xt, yt)
    print(f"compiled in {compiled:.1f} s; trained {args.epochs} epochs in {seconds:.1f} s; "
          f"final training loss {history.history['loss'][-1]:.4f}")
    print(f"test accuracy: {100 * result['accuracy']:.2f}% of {len(Xt)} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
