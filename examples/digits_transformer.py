"""A small transformer encoder on the embedded 8x8 digits: each image read as a sequence of
its 8 rows, the rows attending to each other.

``Reshape((8, 8))`` makes the flat images (n, 64) sequences of 8 rows of 8 pixels; a Dense
layer on that 3-d input projects every row to ``--dim`` features (one weight matrix for all
rows), PositionEmbedding adds a learned vector per row so attention can tell the rows
apart, and ``--blocks`` encoder blocks follow: multi-head self-attention and a two-layer
feed-forward net, each with a residual connection (``Add``) and LayerNorm after it, as in
"Attention Is All You Need". The 8 rows' features are flattened into the classifier. AdamW
with a cosine schedule trains it; the whole step, attention's backward pass included, is
one native function.

    python examples/digits_transformer.py [--dim 32] [--heads 4] [--blocks 2] [--epochs 30]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import frontends as fe


def build(dim: int, heads: int, blocks: int, seed: int) -> fe.Model:
    L = fe.layers
    pixels = fe.Input((64,), "float32", name="pixels")
    h = L.Dense(dim)(L.Reshape((8, 8))(pixels))    # (batch, 8 rows, dim)
    h = L.PositionEmbedding()(h)
    for _ in range(blocks):
        h = L.LayerNorm()(L.Add()([h, L.MultiHeadAttention(heads)(h)]))
        feed_forward = L.Dense(dim)(L.Dense(2 * dim, activation="gelu")(h))
        h = L.LayerNorm()(L.Add()([h, feed_forward]))
    return fe.Model([pixels], L.Dense(10)(L.Flatten()(h)), seed=seed, name="digits_transformer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    (X, y), (Xt, yt) = fe.datasets.load_digits()
    X, Xt = fe.datasets.standardize(X, Xt)
    X, Xt = X.astype(np.float32), Xt.astype(np.float32)
    steps_per_epoch = -(-len(X) // args.batch_size)
    schedule = fe.schedules.Cosine(steps=args.epochs * steps_per_epoch,
                                   warmup=steps_per_epoch)
    model = build(args.dim, args.heads, args.blocks, args.seed)
    start = time.perf_counter()
    no_decay = ["b", "bq", "bk", "bv", "bo", "gamma", "beta", "table"]  # biases, norms, positions
    model.compile(loss="cross_entropy", metrics=["accuracy"],
                  optimizer=fe.optimizers.AdamW(lr=args.lr, weight_decay=0.01, exclude=no_decay,
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
