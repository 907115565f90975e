"""Gradient checking: ``sg.grad`` against central finite differences in float64.

``finite_differences`` is the one implementation of central differences in the project:
``check_grad`` and the test suites' oracles (tests/symgraph/helpers.py) use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from symgraph.function import function
from symgraph.grad import grad
from symgraph.graph import Variable, tensor

__all__ = ["GradientCheckError", "check_grad", "finite_differences"]


class GradientCheckError(AssertionError):
    """The symbolic and numerical gradients disagree; the message shows the worst entry."""


def finite_differences(f: Callable, arrays: Sequence, eps: float = 1e-6,
                       wrt: Sequence[int] | None = None) -> list[np.ndarray]:
    """Central differences ``(f(a+eps) - f(a-eps)) / 2 eps`` of ``f(*arrays)`` per argument.

    ``f`` may be a numpy function or a compiled ``sg.function``, scalar or array valued:
    the derivative w.r.t. ``arrays[k]`` has shape ``f(...).shape + arrays[k].shape`` (the
    gradient for a scalar ``f``, the Jacobian otherwise). Every array is perturbed in
    float64 (copies: the caller's arrays are untouched); ``wrt`` picks the argument
    indices (default: all).

    >>> finite_differences(lambda a: np.sum(a ** 2), [np.array([1.0, 2.0])])
    [array([2., 4.])]
    """
    # C order: ``reshape(-1)`` below must be a view (a transposed argument kept its Fortran
    # order, the reshape copied, and no perturbation reached ``f``: every difference was 0)
    arrays = [np.array(a, dtype=np.float64, order="C") for a in arrays]
    picked = range(len(arrays)) if wrt is None else wrt
    result = []
    for k in picked:
        flat = arrays[k].reshape(-1)  # a view: writing it perturbs arrays[k]
        columns = []
        for i in range(flat.size):
            saved = flat[i]
            flat[i] = saved + eps
            up = np.asarray(f(*arrays), dtype=np.float64)
            flat[i] = saved - eps
            down = np.asarray(f(*arrays), dtype=np.float64)
            flat[i] = saved
            columns.append((up - down) / (2 * eps))
        if columns:
            stacked = np.stack(columns, axis=-1)
            result.append(stacked.reshape(stacked.shape[:-1] + arrays[k].shape))
        else:  # an empty argument: only the output's shape is needed
            result.append(np.zeros(np.shape(f(*arrays)) + arrays[k].shape))
    return result


def check_grad(fn: Callable, values: Sequence, *, eps: float = 1e-6, rtol: float = 1e-5,
               atol: float = 1e-7, backend: str = "numpy") -> float:
    """Compare ``grad(fn(*vars), vars)`` with ``(f(x+eps) - f(x-eps)) / 2 eps``.

    ``fn`` takes one symbolic variable per value and returns a scalar. Every
    value is checked in float64. Returns the largest relative error; raises
    ``GradientCheckError`` naming the argument and index of the worst entry.

    >>> check_grad(lambda x: sg.sum(sg.tanh(x) ** 2), [np.random.randn(3, 4)])
    """
    arrays = [np.array(v, dtype=np.float64) for v in values]
    variables = [tensor(f"arg{i}", a.shape, "float64") for i, a in enumerate(arrays)]
    cost = fn(*variables)
    if not isinstance(cost, Variable):
        raise TypeError("check_grad: fn must return a symgraph Variable (a scalar built from "
                        f"its arguments), got {type(cost).__name__}")
    if cost.ndim != 0:
        raise ValueError(f"check_grad: fn must return a scalar, got shape {cost.shape}")
    grads = grad(cost, variables)
    f_cost = function(variables, cost, backend=backend)
    f_grad = function(variables, grads, backend=backend)
    symbolic = f_grad(*arrays)

    worst = (0.0, None)
    for k, (a, g) in enumerate(zip(arrays, symbolic)):
        # one argument at a time: a wrong gradient is reported before the rest is computed
        numeric = finite_differences(f_cost, arrays, eps, wrt=[k])[0]
        g = np.asarray(g)
        with np.errstate(invalid="ignore"):  # inf - inf
            err = np.abs(g - numeric)
            bound = atol + rtol * np.abs(numeric)
            # a NaN or inf on one side only is the worst entry (a NaN compares false: it
            # passed); equal non-finite values on both sides (NaN and NaN, inf and inf) agree
            agree = (err <= bound) | (g == numeric) | (np.isnan(g) & np.isnan(numeric))
            excess = np.where(agree, -np.inf, np.where(np.isfinite(err), err - bound, np.inf))
            rel = np.where(agree & ~np.isfinite(err), 0.0,
                           err / np.maximum(np.abs(numeric), atol / rtol))
        if err.size and not agree.all():
            i = int(np.argmax(excess))
            index = np.unravel_index(i, a.shape) if a.ndim else ()
            raise GradientCheckError(
                f"gradient of argument {k} at index {tuple(int(j) for j in index)}: "
                f"symbolic {np.asarray(g).reshape(-1)[i]!r}, finite differences "
                f"{numeric.reshape(-1)[i]!r} (abs error {err.reshape(-1)[i]:.3g})")
        if rel.size and rel.max() > worst[0]:
            worst = (float(rel.max()), k)
    return worst[0]
