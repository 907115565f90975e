"""Gradient checking: ``sg.grad`` against central finite differences in float64."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


class GradientCheckError(AssertionError):
    """The symbolic and numerical gradients disagree; the message shows the worst entry."""


def check_grad(fn: Callable, values: Sequence, *, eps: float = 1e-6, rtol: float = 1e-5,
               atol: float = 1e-7, backend: str = "numpy") -> float:
    """Compare ``grad(fn(*vars), vars)`` with ``(f(x+eps) - f(x-eps)) / 2 eps``.

    ``fn`` takes one symbolic variable per value and returns a scalar. Every
    value is checked in float64. Returns the largest relative error; raises
    ``GradientCheckError`` naming the argument and index of the worst entry.

    >>> check_grad(lambda x: sg.sum(sg.tanh(x) ** 2), [np.random.randn(3, 4)])
    """
    from symgraph.function import function
    from symgraph.grad import grad
    from symgraph.graph import tensor

    arrays = [np.array(v, dtype=np.float64) for v in values]
    variables = [tensor(f"arg{i}", a.shape, "float64") for i, a in enumerate(arrays)]
    cost = fn(*variables)
    if cost.ndim != 0:
        raise ValueError(f"check_grad: fn must return a scalar, got shape {cost.shape}")
    grads = grad(cost, variables)
    f_cost = function(variables, cost, backend=backend)
    f_grad = function(variables, grads, backend=backend)
    symbolic = f_grad(*arrays)

    worst = (0.0, None)
    for k, (a, g) in enumerate(zip(arrays, symbolic)):
        numeric = np.zeros_like(a)
        flat = a.reshape(-1)
        for i in range(flat.size):
            saved = flat[i]
            flat[i] = saved + eps
            up = float(f_cost(*arrays))
            flat[i] = saved - eps
            down = float(f_cost(*arrays))
            flat[i] = saved
            numeric.reshape(-1)[i] = (up - down) / (2 * eps)
        err = np.abs(np.asarray(g) - numeric)
        bound = atol + rtol * np.abs(numeric)
        rel = err / np.maximum(np.abs(numeric), atol / rtol)
        if err.size and np.max(err - bound) > 0:
            i = int(np.argmax(err - bound))
            index = np.unravel_index(i, a.shape) if a.ndim else ()
            raise GradientCheckError(
                f"gradient of argument {k} at index {tuple(int(j) for j in index)}: "
                f"symbolic {np.asarray(g).reshape(-1)[i]!r}, finite differences "
                f"{numeric.reshape(-1)[i]!r} (abs error {err.reshape(-1)[i]:.3g})")
        if rel.size and rel.max() > worst[0]:
            worst = (float(rel.max()), k)
    return worst[0]
