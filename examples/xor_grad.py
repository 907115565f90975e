"""XOR, the classic test a linear model cannot pass (Goodfellow et al., section 6.1).

Builds a 2-8-1 tanh network and its binary cross-entropy loss, adds the
gradient nodes to the same graph with ``sg.grad``, prints the gradient graph,
checks it against finite differences, and trains with plain SGD through
``sg.function(..., updates=...)`` until every point is classified right.

    python examples/xor_grad.py [--backend numpy|llvm] [--quiet]
"""

from __future__ import annotations

import argparse

import numpy as np

import symgraph as sg

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
Y = np.array([0, 1, 1, 0], dtype=np.float64)


def init_params(hidden: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    bound = np.sqrt(6.0 / (2 + hidden))  # Glorot uniform
    return {
        "W1": rng.uniform(-bound, bound, (2, hidden)),
        "b1": np.zeros(hidden),
        "w2": rng.uniform(-bound, bound, (hidden,)),
        "b2": np.zeros(()),
    }


def forward(x, W1, b1, w2, b2):
    """Logits of the network: ``w2 . tanh(x W1 + b1) + b2``."""
    return sg.tanh(x @ W1 + b1) @ w2 + b2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="numpy (reference) or llvm")
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--max-steps", type=int, default=5000)
    parser.add_argument("--quiet", action="store_true", help="skip printing the graphs")
    args = parser.parse_args(argv)

    values = init_params()
    params = {name: sg.shared(v, name=name) for name, v in values.items()}
    x = sg.tensor("x", shape=("batch", 2))
    y = sg.tensor("y", shape=("batch",))
    logits = forward(x, *params.values())
    loss = sg.nn.binary_cross_entropy(logits, y)
    loss.name = "loss"
    grads = sg.grad(loss, list(params.values()))

    if not args.quiet:
        print("The loss (pprint):")
        print(sg.pprint(loss))
        print("\nIts gradient w.r.t. W1, nodes added to the same graph by sg.grad (pprint):")
        print(sg.pprint(grads[0]))
        print("\nGradient graph (debugprint):")
        print(sg.debugprint(grads))

    # finite differences agree with the symbolic gradient (float64, worst entry reported)
    err = sg.check_grad(lambda *p: sg.nn.binary_cross_entropy(forward(X, *p), Y),
                        list(values.values()))
    print(f"\ngradient check: worst relative error {err:.2e}")

    accuracy = sg.mean(sg.cast(sg.equal(logits > 0, y > 0.5), "float64"))
    step = sg.function([x, y], [loss, accuracy], backend=args.backend,
                       updates={p: p - args.lr * g for p, g in zip(params.values(), grads)})
    for i in range(1, args.max_steps + 1):
        loss_value, acc = step(X, Y)
        done = acc == 1.0 and loss_value < 0.1
        if i % 25 == 0 or done:
            print(f"step {i:5d}  loss {loss_value:.4f}  accuracy {acc:.2f}")
        if done:
            break
    predict = sg.function([x], logits > 0, backend=args.backend)
    errors = int(np.sum(predict(X) != (Y > 0.5)))
    print(f"training errors: {errors} of {len(X)}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
