"""The main job in Python: an MLP on the embedded digits, trained, saved and reloaded.

Standardises the 8x8 digits with training statistics, trains a
64-256-128-10 ReLU network with Adam, dropout, a validation split and early
stopping (the best epoch's parameters are restored), prints the test accuracy,
saves the model to one ``.npz`` file, reloads it with ``fe.load_model`` and
checks the reloaded model predicts exactly what the trained one does.

    python examples/digits_mlp.py [--epochs 100] [--backend numpy|llvm] [--save model.npz]
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

import frontends as fe


def build(hidden: tuple[int, ...], dropout: float, seed: int) -> fe.Sequential:
    """Dense ReLU layers (bias 0.1 keeps ReLUs alive), dropout after each, 10 logits."""
    layers = []
    for units in hidden:
        layers.append(fe.layers.Dense(units, activation="relu", bias_init=0.1))
        if dropout:
            layers.append(fe.layers.Dropout(dropout))
    layers.append(fe.layers.Dense(10))
    return fe.Sequential(layers, input_shape=(64,), seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=10, help="early stopping patience")
    parser.add_argument("--hidden", default="256,128", help="hidden layer sizes")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default=None, help="numpy (reference) or llvm")
    parser.add_argument("--save", default=None, help="model file (default: a temporary file)")
    parser.add_argument("--verbose", action="store_true", help="one line per epoch")
    args = parser.parse_args(argv)

    (X, y), (Xt, yt) = fe.datasets.load_digits()
    X, Xt = fe.datasets.standardize(X, Xt)
    # the file is ordered by writer; permute so the validation split is a random sample
    order = np.random.default_rng(args.seed).permutation(len(X))
    X, y = X[order], y[order]
    model = build(tuple(int(h) for h in args.hidden.split(",")), args.dropout, args.seed)
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(lr=args.lr),
                  metrics=["accuracy"], backend=args.backend)
    model.summary()
    # validation: the last 15% of the (permuted) training set; the test set stays unseen
    history = model.fit(X, y, batch_size=args.batch_size, epochs=args.epochs,
                        validation_split=0.15, early_stopping=args.patience,
                        verbose=args.verbose)
    val = history.history["val_loss"]
    best = int(np.argmin(val))
    print(f"trained {len(history.epoch)} epochs; best val_loss {val[best]:.4f} at epoch "
          f"{best + 1} (val_accuracy {history.history['val_accuracy'][best]:.4f}), restored")
    test = model.evaluate(Xt, yt)
    print(f"test loss {test['loss']:.4f}  test accuracy {test['accuracy']:.4f} "
          f"({round(test['accuracy'] * len(yt))} of {len(yt)})")

    predictions = model.predict(Xt)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.save or os.path.join(tmp, "digits_mlp.npz")
        model.save(path)
        size = os.path.getsize(path)
        reloaded = fe.load_model(path)
        again = reloaded.predict(Xt)
    same = bool(np.array_equal(predictions, again))
    labels_agree = float(np.mean(np.argmax(again, axis=1) == yt))
    print(f"saved {size} bytes; reloaded with fe.load_model: predictions identical {same}, "
          f"accuracy {labels_agree:.4f}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
