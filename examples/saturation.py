"""Why cross-entropy, not squared error, on a sigmoid or softmax output (Goodfellow et al. 6.2.2).

A saturated output unit has a vanishing derivative. Mean squared error on
``sigmoid(z)`` / ``softmax(z)`` multiplies the error by that derivative, so
from a *confidently wrong* start (large logits favouring a wrong class) its
gradient is nearly zero and learning crawls. Cross-entropy from logits has
the gradient ``p - y`` with respect to the logits: the log undoes the
exponential, the gradient is large exactly when the answer is wrong, and
learning is fast.

Two problems, each trained both ways from the same badly saturated
initialisation (the least-squares classifier's weights negated and scaled up,
so most logits are large and wrong), with the same full-batch SGD:

* binary: digits 3 vs 8, one sigmoid output — binary cross-entropy from
  logits vs mse of ``sigmoid(z)`` against 0/1;
* 10 classes: all digits, a softmax output — cross-entropy from logits vs mse
  of ``softmax(z)`` against one-hot targets.

It prints the gradient norm at the start and the loss and accuracy over the
steps for each.

    python examples/saturation.py [--steps 200] [--lr 0.5] [--scale 20]
"""

from __future__ import annotations

import argparse

import numpy as np

import frontends as fe
import symgraph as sg


class Curve(fe.Callback):
    """Loss and accuracy after 0, 1, 2, ... full-batch steps.

    ``loss[s]``: the loss fit logged for step ``s + 1``, computed before its update, i.e.
    after ``s`` steps. ``accuracy[s]``: from ``predict`` after ``s`` steps (numpy decides:
    argmax of the scores, or the sigmoid output / logit against its threshold).
    """

    def __init__(self, X: np.ndarray, labels: np.ndarray, threshold: float | None):
        self.X, self.labels, self.threshold = X, labels, threshold
        self.loss, self.accuracy = [], []

    def _accuracy(self) -> float:
        out = self.model.predict(self.X)
        guess = out.argmax(axis=1) if self.threshold is None else out[:, 0] > self.threshold
        return float(np.mean(guess == self.labels))

    def on_train_begin(self, logs):
        self.accuracy.append(self._accuracy())

    def on_epoch_end(self, epoch, logs):
        self.loss.append(logs["loss"])
        self.accuracy.append(self._accuracy())


def gradient_norm(model: fe.Model, X: np.ndarray, T: np.ndarray) -> float:
    """Norm of the loss gradient w.r.t. every weight at the current weights.

    ``model.train_graph`` holds the gradient nodes ``compile`` built; compiling them on
    their own (no updates) reads the gradient without taking a step.
    """
    _, grads, _ = model.train_graph
    values = sg.function(model.inputs + [model.target], grads, backend=model.backend)(X, T)
    return float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in values)))


def saturated_init(X: np.ndarray, targets: np.ndarray, scale: float) -> list[np.ndarray]:
    """The least-squares linear classifier, negated and scaled: large, confident, wrong logits.

    ``targets`` are (n, k) in {0, 1}; the returned [kernel, bias] give logits of typical
    size ``scale`` with the wrong sign/ranking.
    """
    A = np.hstack([X, np.ones((len(X), 1))]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(A, targets - targets.mean(axis=0), rcond=None)
    z = A @ coef
    coef *= -scale / np.abs(z).mean()
    return [coef[:-1].astype(np.float32), coef[-1].astype(np.float32)]


def run(name: str, X, labels, output: str, args) -> dict[str, Curve]:
    """Train the cross-entropy and the mse model from the same start; print their curves."""
    classes = 1 if output == "sigmoid" else int(labels.max()) + 1
    onehot = (labels[:, None] == np.arange(classes)).astype(np.float32) if classes > 1 \
        else labels[:, None].astype(np.float32)
    init = saturated_init(X, onehot, args.scale)
    curves, grads = {}, {}
    for loss in ("cross-entropy", "mse"):
        activation = output if loss == "mse" else None  # cross-entropy takes the logits
        model = fe.Sequential([fe.layers.Dense(classes, activation=activation)],
                              input_shape=(X.shape[1],), seed=args.seed)
        if output == "sigmoid":
            loss_arg = "binary_cross_entropy" if loss == "cross-entropy" else "mse"
            threshold = 0.0 if loss == "cross-entropy" else 0.5   # logit 0 = probability 1/2
            targets = onehot
        else:
            loss_arg = "cross_entropy" if loss == "cross-entropy" else "mse"
            threshold = None
            targets = labels if loss == "cross-entropy" else onehot
        model.compile(loss=loss_arg, optimizer=fe.optimizers.SGD(lr=args.lr),
                      backend=args.backend)
        model.set_weights(init)
        grads[loss] = gradient_norm(model, X, targets)
        curves[loss] = Curve(X, labels, threshold)
        model.fit(X, targets, batch_size=len(X), epochs=args.steps, shuffle=False,
                  callbacks=[curves[loss]], verbose=False, progress=False)
    print(f"\n{name}: {len(X)} examples, {output} output, start: logits ~{args.scale:g} "
          "and wrong")
    print(f"gradient norm at the start: cross-entropy {grads['cross-entropy']:.3g}, "
          f"mse {grads['mse']:.3g}  (ratio {grads['cross-entropy'] / grads['mse']:.0f}x)")
    print(f"{'steps':>6}{'xent loss':>12}{'xent acc':>10}{'mse loss':>12}{'mse acc':>10}")
    shown = sorted({0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, args.steps - 1})
    for step in (s for s in shown if s < args.steps):
        ce, se = curves["cross-entropy"], curves["mse"]
        print(f"{step:>6}{ce.loss[step]:>12.4f}{ce.accuracy[step]:>10.3f}"
              f"{se.loss[step]:>12.5f}{se.accuracy[step]:>10.3f}")
    print(f"accuracy after {args.steps} steps: cross-entropy "
          f"{curves['cross-entropy'].accuracy[-1]:.3f}, mse {curves['mse'].accuracy[-1]:.3f}")
    return curves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="full-batch SGD steps")
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--scale", type=float, default=20.0, help="typical |logit| at the start")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default=None, help="numpy (reference) or llvm")
    args = parser.parse_args(argv)

    (X, y), _ = fe.datasets.load_digits()
    [X] = fe.datasets.standardize(X)
    pair = (y == 3) | (y == 8)
    run("digits 3 vs 8", X[pair], (y[pair] == 8).astype(np.int64), "sigmoid", args)
    run("digits, 10 classes", X, y, "softmax", args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
