"""A digits autoencoder (64 -> 32 -> 8 -> 32 -> 64): the targets are the inputs.

The pixels are scaled to [0, 1] (``X / 16``) and read as Bernoulli
probabilities; the decoder outputs logits and the loss is binary
cross-entropy from logits against the pixels themselves, so training is just
``model.fit(X01, X01)``. The 8-unit bottleneck has to summarise each image.
The script prints the test reconstruction error (binary cross-entropy and the
mean squared error of ``sigmoid(logits)``) against the baseline that ignores
the input and always outputs the mean training image.

    python examples/autoencoder.py [--epochs 200] [--code 8] [--backend numpy|llvm]
"""

from __future__ import annotations

import argparse

import numpy as np

import frontends as fe


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


def bce(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities (clipped away from 0 and 1)."""
    p = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(targets * np.log(p) + (1 - targets) * np.log1p(-p)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--code", type=int, default=8, help="bottleneck units")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default=None, help="numpy (reference) or llvm")
    args = parser.parse_args(argv)

    (X, _), (Xt, _) = fe.datasets.load_digits()
    X01, Xt01 = X / 16.0, Xt / 16.0
    model = fe.Sequential([
        fe.layers.Dense(32, activation="relu", bias_init=0.1),
        fe.layers.Dense(args.code, activation="relu", bias_init=0.1),   # the code
        fe.layers.Dense(32, activation="relu", bias_init=0.1),
        fe.layers.Dense(64),                                            # pixel logits
    ], input_shape=(64,), seed=args.seed)
    model.compile(loss="binary_cross_entropy", optimizer=fe.optimizers.Adam(lr=args.lr),
                  backend=args.backend)
    history = model.fit(X01, X01, batch_size=args.batch_size, epochs=args.epochs,
                        validation_data=(Xt01, Xt01), early_stopping=10, verbose=False)
    print(f"64-32-{args.code}-32-64 autoencoder, binary cross-entropy from logits: "
          f"{len(history.epoch)} epochs, training loss {history.history['loss'][0]:.4f} -> "
          f"{min(history.history['loss']):.4f}")

    reconstruction = sigmoid(model.predict(Xt01).astype(np.float64))
    mean_image = np.broadcast_to(X01.mean(axis=0), Xt01.shape)
    rows = [("autoencoder", reconstruction), ("mean training image", mean_image)]
    print(f"\n{'test reconstruction':<22}{'binary xent':>12}{'mse':>10}")
    errors = {}
    for name, p in rows:
        errors[name] = (bce(p, Xt01), float(np.mean((p - Xt01) ** 2)))
        print(f"{name:<22}{errors[name][0]:>12.4f}{errors[name][1]:>10.4f}")
    # the model's own loss on the test set is the same binary cross-entropy, from logits
    print(f"model.evaluate on the test set: loss {model.evaluate(Xt01, Xt01)['loss']:.4f}")
    ratio = errors["autoencoder"][1] / errors["mean training image"][1]
    print(f"mse relative to the mean-image baseline: {ratio:.3f}")
    return 0 if ratio < 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
