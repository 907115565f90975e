"""Newton's method from the same graph: ``sg.hessian`` against gradient descent.

Logistic regression separating two digit classes (3 vs 8, standardised
features plus a constant 1 for the bias) with a small ridge ``lam/2 ||w||^2``
(the two classes are almost separable; the ridge keeps the minimum finite and
the Hessian well conditioned). One graph gives the loss, its gradient
(``sg.grad``) and its Hessian (``sg.hessian``: ``grad`` of ``grad``, ordinary
graph nodes); one ``sg.function`` computes all three. Newton steps
``w <- w - H^{-1} g`` and gradient descent with step ``1 / L`` (``L`` the
largest Hessian eigenvalue bound, ``||X||_2^2 / 4n + lam``) run until the loss
is within ``--tol`` of the optimum; the script prints how many steps each
needed. The symbolic Hessian is checked against the closed form
``X^T diag(p (1 - p)) X / n + lam I``.

    python examples/newton.py [--classes 3,8] [--tol 1e-8] [--max-gd-steps 20000]
"""

from __future__ import annotations

import argparse

import numpy as np

import frontends as fe
import symgraph as sg


def two_classes(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Digits ``a`` (label 0) and ``b`` (label 1) of the training set, standardised, with a
    trailing column of ones (the bias is then one more weight), float64."""
    (X, y), _ = fe.datasets.load_digits()
    keep = (y == a) | (y == b)
    [Xs] = fe.datasets.standardize(X[keep])
    ones = np.ones((len(Xs), 1))
    return np.hstack([Xs.astype(np.float64), ones]), (y[keep] == b).astype(np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", default="3,8", help="the two digits, e.g. 3,8")
    parser.add_argument("--ridge", type=float, default=1e-2, help="lam in lam/2 ||w||^2")
    parser.add_argument("--tol", type=float, default=1e-8, help="loss - optimum to reach")
    parser.add_argument("--max-gd-steps", type=int, default=20000)
    parser.add_argument("--backend", default=None, help="numpy (reference) or llvm")
    args = parser.parse_args(argv)
    a, b = (int(c) for c in args.classes.split(","))
    X, y = two_classes(a, b)
    n, d = X.shape

    w = sg.shared(np.zeros(d), name="w")
    x_in = sg.tensor("x", shape=("n", d), dtype="float64")
    y_in = sg.tensor("y", shape=("n",), dtype="float64")
    loss = sg.nn.binary_cross_entropy(x_in @ w, y_in) + 0.5 * args.ridge * sg.sum(w * w)
    g = sg.grad(loss, w)
    H = sg.hessian(loss, w)           # (d, d): second order from the same graph
    loss_grad_hess = sg.function([x_in, y_in], [loss, g, H], backend=args.backend)
    loss_grad = sg.function([x_in, y_in], [loss, g], backend=args.backend)
    print(f"logistic regression, digits {a} vs {b}: {n} examples, {d} weights "
          f"(64 pixels + bias), ridge {args.ridge}")

    # the symbolic Hessian against the closed form, at a point where p is not constant
    w.set_value(np.random.default_rng(0).normal(0, 0.1, d))
    _, g0, H0 = loss_grad_hess(X, y)
    p = 1 / (1 + np.exp(-X @ w.get_value()))
    H_closed = (X * (p * (1 - p))[:, None]).T @ X / n + args.ridge * np.eye(d)
    g_closed = X.T @ (p - y) / n + args.ridge * w.get_value()
    hess_err = float(np.max(np.abs(H0 - H_closed)))
    grad_err = float(np.max(np.abs(g0 - g_closed)))
    print(f"sg.hessian vs X^T diag(p(1-p)) X / n + lam I: max abs diff {hess_err:.2e}; "
          f"sg.grad vs X^T (p - y) / n + lam w: {grad_err:.2e}")

    # Newton from w = 0, to convergence: its last loss is the optimum
    w.set_value(np.zeros(d))
    newton_losses = []
    for _ in range(50):
        value, gv, Hv = loss_grad_hess(X, y)
        newton_losses.append(float(value))
        if np.max(np.abs(gv)) < 1e-12:
            break
        w.set_value(w.get_value() - np.linalg.solve(Hv, gv))
    optimum = newton_losses[-1]
    newton_steps = next(i for i, v in enumerate(newton_losses) if v - optimum <= args.tol)
    print("\nNewton (w <- w - H^-1 g), loss per step: "
          + ", ".join(f"{v:.6f}" for v in newton_losses[:newton_steps + 1]))

    # gradient descent with the classic safe step 1/L (L bounds every Hessian eigenvalue)
    lipschitz = np.linalg.norm(X, 2) ** 2 / (4 * n) + args.ridge
    w.set_value(np.zeros(d))
    gd_steps, value = None, None
    for step in range(args.max_gd_steps + 1):
        value, gv = loss_grad(X, y)
        if value - optimum <= args.tol:
            gd_steps = step
            break
        w.set_value(w.get_value() - gv / lipschitz)
    print(f"gradient descent (step 1/L = {1 / lipschitz:.3f}): loss {float(value):.6f} after "
          f"{step} steps")

    print(f"\nsteps to reach loss within {args.tol:g} of the optimum {optimum:.8f}:")
    print(f"  Newton:           {newton_steps}")
    print(f"  gradient descent: {gd_steps if gd_steps is not None else f'> {args.max_gd_steps}'}")
    return 0 if hess_err < 1e-9 and grad_err < 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
