"""XOR with the model API: a 2-8-1 ReLU network learns it, and its hidden layer shows why.

A linear model cannot fit XOR (Goodfellow et al., section 6.1). A ReLU hidden
layer ``h = relu(W^T x + c)`` maps the four points to a representation in
which the output unit, a *linear* classifier ``w^T h + b``, separates them.
This script

1. trains ``fe.Sequential([Dense(8, relu), Dense(1)])`` with binary
   cross-entropy from logits until all four points are right, and prints the
   predictions, the learned hidden representation of each point and the
   margin of the linear output on it (all positive = linearly separable);
2. sets the textbook solution (background.md: ``W = [[1,1],[1,1]]``,
   ``c = [0,-1]``, ``w = [1,-2]``, ``b = 0``) on a 2-2-1 model with
   ``model.set_weights`` and shows it fits XOR *exactly* (mean squared error 0).

    python examples/xor.py [--hidden 8] [--epochs 500] [--backend numpy|llvm]
"""

from __future__ import annotations

import argparse

import numpy as np

import frontends as fe
import symgraph as sg

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
Y = np.array([0, 1, 1, 0], dtype=np.float32)

TEXTBOOK = [np.array([[1, 1], [1, 1]], np.float32), np.array([0, -1], np.float32),
            np.array([[1], [-2]], np.float32), np.array([0], np.float32)]


def hidden_function(model: fe.Model, backend: str | None) -> sg.Function:
    """``x -> relu(W^T x + c)``: the first layer's output node, compiled on its own.

    A layer's output (``layer.output``) is an ordinary graph node over the model's
    shared weights, so the hidden representation is one ``sg.function`` away.
    """
    return sg.function(model.inputs, model.layers[0].output, backend=backend)


def show_points(title: str, h: np.ndarray, logits: np.ndarray) -> float:
    """Print each point's hidden vector and logit; return the smallest margin (y' z, y' = +-1)."""
    signs = 2 * Y - 1
    margins = signs * logits
    print(title)
    for x, y, hv, z, m in zip(X, Y, h, logits, margins):
        vec = " ".join(f"{v:5.2f}" for v in hv)
        print(f"  x = {x.astype(int)}  target {int(y)}  h = [{vec}]  score {z:+.3f}  "
              f"margin {m:+.3f}")
    return float(margins.min())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=8, help="hidden ReLU units")
    parser.add_argument("--epochs", type=int, default=500, help="full-batch Adam steps at most")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default=None, help="numpy (reference) or llvm")
    args = parser.parse_args(argv)

    # 1. learn it: bias 0.1 keeps the ReLUs alive at the start (background.md)
    model = fe.Sequential([fe.layers.Dense(args.hidden, activation="relu", bias_init=0.1),
                           fe.layers.Dense(1)], input_shape=(2,), seed=args.seed)
    model.compile(loss="binary_cross_entropy", optimizer=fe.optimizers.Adam(lr=args.lr),
                  metrics=["binary_accuracy"], backend=args.backend)
    Y1 = Y[:, None]

    class StopWhenSolved(fe.Callback):
        def on_epoch_end(self, epoch, logs):
            if logs["binary_accuracy"] == 1.0 and logs["loss"] < 0.05:
                self.model.stop_training = True

    history = model.fit(X, Y1, batch_size=4, epochs=args.epochs, shuffle=False,
                        callbacks=[StopWhenSolved()], verbose=False, progress=False)
    result = model.evaluate(X, Y1)
    logits = model.predict(X)[:, 0]
    predictions = (logits > 0).astype(int)
    errors = int(np.sum(predictions != Y))
    print(f"2-{args.hidden}-1 ReLU net, binary cross-entropy from logits, Adam lr {args.lr}: "
          f"{len(history.epoch)} full-batch steps")
    print(f"loss {result['loss']:.4f}, predictions {predictions.tolist()} "
          f"(targets {Y.astype(int).tolist()})")
    print(f"training errors: {errors} of {len(X)}")
    h = hidden_function(model, args.backend)(X)
    W, c = model.get_weights()[:2]
    same = bool(np.allclose(h, np.maximum(X @ W + c, 0), rtol=1e-5, atol=1e-6))
    print(f"h from the graph equals relu(x W + c) from get_weights (numpy): {same}")
    margin = show_points("learned hidden representation h = relu(W^T x + c) "
                         "and the linear output w.h + b on it:", h, logits)
    separable = margin > 0
    print(f"linearly separable in h: {'yes' if separable else 'no'} "
          f"(smallest margin {margin:+.3f})")

    # 2. the textbook exact solution, on a 2-2-1 net with a linear output and mse
    exact = fe.Sequential([fe.layers.Dense(2, activation="relu"), fe.layers.Dense(1)],
                          input_shape=(2,), seed=args.seed)
    exact.compile(loss="mse", optimizer="sgd", backend=args.backend)
    exact.set_weights(TEXTBOOK)
    out = exact.predict(X)[:, 0]
    mse = exact.evaluate(X, Y1)["loss"]
    print("\ntextbook solution W=[[1,1],[1,1]], c=[0,-1], w=[1,-2], b=0 set with set_weights:")
    show_points("  hidden representation ((0,1) and (1,0) merge; score = w.h + b - 1/2):",
                hidden_function(exact, args.backend)(X), out - 0.5)
    print(f"textbook outputs {out.tolist()}, mse {mse:.6g}")
    exact_fit = bool(np.array_equal(out, Y)) and mse == 0.0
    print(f"textbook solution fits exactly: {'yes' if exact_fit else 'no'}")
    return 0 if errors == 0 and separable and exact_fit and same else 1


if __name__ == "__main__":
    raise SystemExit(main())
