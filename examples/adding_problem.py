"""The adding problem with variable lengths: an LSTM reads padded sequences of different lengths.

Hochreiter & Schmidhuber's (1997) long-memory test: each step holds a value drawn from
U(0, 1) and a marker; two steps are marked, and the target is the sum of their values. Here
every sequence has its own length (from ``--min-length`` to ``--length``), zero-padded at
the end to one array; ``LSTM(mask_value=0)`` treats a step of all zeros as padding (a real
step's value is never exactly 0), so each sequence is read as if it stood alone. Predicting
the mean (1.0) gives an MSE of 1/6; a model that finds and adds the two marked values goes
far below that.

Because padding is skipped, a sequence gets the same prediction however it is padded: the
script checks that padding at the start instead of the end changes nothing (an LSTM without
``mask_value`` reads the zeros as data and changes its answer).

    python examples/adding_problem.py [--length 20] [--epochs 30] [--units 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import frontends as fe


def make_data(n: int, length: int, min_length: int, rng: np.random.Generator):
    """(sequences (n, length, 2) zero-padded at the end, targets (n, 1), lengths (n,))."""
    lengths = rng.integers(min_length, length + 1, n)
    X = np.zeros((n, length, 2), np.float32)
    y = np.zeros((n, 1), np.float32)
    for i, steps in enumerate(lengths):
        values = rng.uniform(1e-3, 1.0, steps)  # never 0: an all-zero step is padding
        first, second = rng.choice(steps, 2, replace=False)
        X[i, :steps, 0] = values
        X[i, [first, second], 1] = 1.0
        y[i, 0] = values[first] + values[second]
    return X, y, lengths


def pad_at_start(X: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The same sequences with their padding moved before their first step."""
    out = np.zeros_like(X)
    for i, steps in enumerate(lengths):
        out[i, X.shape[1] - steps:] = X[i, :steps]
    return out


def build(length: int, units: int, masked: bool, seed: int) -> fe.Sequential:
    L = fe.layers
    model = fe.Sequential([L.LSTM(units, mask_value=0.0 if masked else None), L.Dense(1)],
                          input_shape=(length, 2), seed=seed,
                          name="adding_masked" if masked else "adding_unmasked")
    model.compile(loss="mse", optimizer=fe.optimizers.Adam(3e-3))
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=20, help="the longest sequence")
    parser.add_argument("--min-length", type=int, default=8)
    parser.add_argument("--train", type=int, default=8000, help="training sequences")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    X, y, _ = make_data(args.train, args.length, args.min_length, rng)
    X_test, y_test, lengths = make_data(1000, args.length, args.min_length, rng)
    baseline = float(np.mean((y_test - 1.0) ** 2))
    print(f"sequences of {args.min_length}-{args.length} steps, {args.train} for training; "
          f"predicting 1.0 gives test mse {baseline:.4f}")

    models = {}
    for masked in (True, False):
        model = build(args.length, args.units, masked, args.seed)
        t0 = time.perf_counter()
        history = model.fit(X, y, batch_size=64, epochs=args.epochs, progress=False,
                            verbose=False)
        mse = float(np.mean((model.predict(X_test) - y_test) ** 2))
        label = "LSTM(mask_value=0)" if masked else "LSTM, no mask     "
        print(f"{label}: test mse {mse:.4f} ({mse / baseline:.3f} of the baseline) after "
              f"{len(history.history['loss'])} epochs, {time.perf_counter() - t0:.1f} s")
        models[masked] = model

    moved = pad_at_start(X_test, lengths)
    for masked, model in models.items():
        diff = float(np.max(np.abs(model.predict(moved) - model.predict(X_test))))
        print(f"padding moved to the start, {'masked' if masked else 'unmasked'}: "
              f"predictions change by at most {diff:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
