"""Plain vs L2 vs dropout vs batch norm on a small digits training set.

With only ``--train`` (300) training images a 64-256-256-10 ReLU network
fits them perfectly within a few epochs and then its validation loss climbs:
it overfits. The same network (same seed, same initial weights) is trained
four ways — plain, with an L2 penalty on the kernels, with dropout after each
hidden layer, with batch normalisation after each hidden layer — and the
validation loss per epoch is printed as a table (and drawn to a PNG when
matplotlib is installed). The summary gives each variant's best and final
validation cross-entropy (the penalty left out, so L2 is compared fairly),
its final training loss, and the size of its kernels.

    python examples/regularization.py [--epochs 60] [--train 300] [--png regularization.png]
"""

from __future__ import annotations

import argparse

import numpy as np

import frontends as fe

VARIANTS = ("plain", "L2", "dropout", "batchnorm")


def build(variant: str, hidden: int, seed: int) -> fe.Sequential:
    layers = []
    for _ in range(2):
        layers.append(fe.layers.Dense(hidden, activation=None if variant == "batchnorm"
                                      else "relu"))
        if variant == "batchnorm":   # normalise the pre-activations, then rectify
            layers += [fe.layers.BatchNorm(), fe.layers.ReLU()]
        if variant == "dropout":
            layers.append(fe.layers.Dropout(0.5))
    layers.append(fe.layers.Dense(10))
    return fe.Sequential(layers, input_shape=(64,), seed=seed)


def kernel_norm(model: fe.Model) -> float:
    """Frobenius norm of all the kernels together (what L2 penalises)."""
    return float(np.sqrt(sum(np.sum(np.square(w.get_value(), dtype=np.float64))
                             for w in model.regularizable_weights)))


class ValidationCrossEntropy(fe.Callback):
    """Validation cross-entropy *without* the penalty, from ``predict`` and numpy.

    ``val_loss`` is the training objective on the validation set, so for the L2 variant it
    includes ``l2 ||W||^2``; comparing variants needs the data term alone.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray):
        self.X, self.y, self.values = X, y, []

    def on_epoch_end(self, epoch, logs):
        z = self.model.predict(self.X).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        self.values.append(float(-np.mean(log_p[np.arange(len(self.y)), self.y])))


def train_all(args) -> tuple[dict[str, fe.History], dict[str, list[float]], dict[str, float]]:
    (X, y), (Xv, yv) = fe.datasets.load_digits()
    order = np.random.default_rng(args.seed).permutation(len(X))[:args.train]
    X, y = X[order], y[order]
    X, Xv = fe.datasets.standardize(X, Xv)
    histories, curves, norms = {}, {}, {}
    for variant in VARIANTS:
        model = build(variant, args.hidden, args.seed)
        model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(lr=args.lr),
                      regularizer=fe.regularizers.L2(args.l2) if variant == "L2" else None,
                      metrics=["accuracy"], backend=args.backend)
        xent = ValidationCrossEntropy(Xv, yv)
        histories[variant] = model.fit(X, y, batch_size=args.batch_size, epochs=args.epochs,
                                       validation_data=(Xv, yv), callbacks=[xent],
                                       verbose=False, progress=False)
        curves[variant] = xent.values
        norms[variant] = kernel_norm(model)
    return histories, curves, norms


def plot(histories: dict[str, fe.History], curves: dict[str, list[float]], path: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for variant, history in histories.items():
        epochs = [e + 1 for e in history.epoch]
        line, = ax.plot(epochs, curves[variant], label=f"{variant} validation")
        ax.plot(epochs, history.history["loss"], ls=":", color=line.get_color(),
                label=f"{variant} training")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_title("digits, small training set: validation (solid) and training (dotted) loss")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot: {path}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--train", type=int, default=300, help="training examples used")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--l2", type=float, default=1e-4, help="L2 coefficient (decay 2 l2)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=None, help="print every k-th epoch")
    parser.add_argument("--png", default="regularization.png", help="'' for no plot")
    parser.add_argument("--backend", default=None, help="numpy (reference) or llvm")
    args = parser.parse_args(argv)

    histories, curves, norms = train_all(args)
    every = args.every or max(1, args.epochs // 15)
    print(f"validation cross-entropy per epoch ({args.train} training examples, "
          f"359 validation):")
    print(f"{'epoch':>6}" + "".join(f"{v:>12}" for v in VARIANTS))
    for e in range(len(curves["plain"])):
        if (e + 1) % every == 0 or e == 0 or e == args.epochs - 1:
            print(f"{e + 1:>6}" + "".join(f"{curves[v][e]:>12.4f}" for v in VARIANTS))
    # without a penalty, val_loss is the same cross-entropy: the numpy recomputation agrees
    agree = max(abs(a - b) for v in VARIANTS if v != "L2"
                for a, b in zip(curves[v], histories[v].history["val_loss"]))
    print(f"numpy cross-entropy vs fit's val_loss (variants without a penalty): max diff "
          f"{agree:.1e}")
    print(f"\n{'variant':<10}{'best val':>10}{'at epoch':>10}{'final val':>11}"
          f"{'final train':>13}{'val acc':>9}{'|W|':>8}")
    for v in VARIANTS:
        h, c = histories[v].history, curves[v]
        best = int(np.argmin(c))
        print(f"{v:<10}{c[best]:>10.4f}{best + 1:>10}{c[-1]:>11.4f}{h['loss'][-1]:>13.4f}"
              f"{h['val_accuracy'][-1]:>9.4f}{norms[v]:>8.2f}")
    print("(final train: the training objective, including the L2 penalty for L2)")
    if args.png:
        plot(histories, curves, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
