"""Shared helpers for the symgraph tests: oracles, gradient checks, hypothesis strategies.

Import from a test in this directory with ``from helpers import ...`` (pytest puts the
test's directory on ``sys.path``). Everything here is backend-agnostic: graphs are
compiled with ``sg.function(..., backend=backend)`` using the ``backend`` fixture.

* ``inputs_like(arrays)`` / ``run_graph(fn, arrays, backend)``: build one ``sg.tensor``
  per array (same shape and dtype), apply ``fn``, compile and call.
* ``fd_grad(f, x, eps)``: central finite differences in float64 (gradient or Jacobian) of
  a numpy function or a compiled ``sg.function`` of one array, through
  ``symgraph.check.finite_differences`` (the one implementation; use it directly for
  several arguments).
* ``assert_grad_matches(fn, arrays, backend)``: ``sg.grad`` vs finite differences.
* ``assert_close(actual, expected)``: dtype-aware ``assert_allclose`` (float32 is looser).
* strategies: ``broadcast_shape_pairs()``, ``shapes()``, ``float_arrays(shape, ...)``,
  ``seeds``; ``random_array(rng, shape, lo, hi)``, ``away_from(x, points, margin)``.
* ``FIXTURE_SETTINGS``: the loaded hypothesis profile, plus permission to use the
  (function-scoped, parametrised) ``backend`` fixture inside ``@given`` tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import symgraph as sg
from symgraph.check import finite_differences

__all__ = [
    "FIXTURE_SETTINGS", "assert_close", "assert_grad_matches", "away_from",
    "broadcast_shape_pairs", "fd_grad", "float_arrays", "inputs_like", "random_array",
    "run_graph", "seeds", "shapes", "tolerance",
]

# The ``backend`` fixture is function-scoped but holds only a string: reusing it across
# hypothesis examples is safe. Inherits the profile loaded by tests/conftest.py.
FIXTURE_SETTINGS = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)


# --------------------------------------------------------------------------- building / running


def inputs_like(arrays: Sequence[np.ndarray], prefix: str = "x") -> list[sg.Variable]:
    """One ``sg.tensor`` per array, with the array's (fixed) shape and dtype."""
    return [sg.tensor(f"{prefix}{i}", np.shape(a), np.asarray(a).dtype.name)
            for i, a in enumerate(arrays)]


def run_graph(fn: Callable, arrays: Sequence, backend: str):
    """``fn(*tensors)`` (a Variable or a list) compiled on ``backend``, called on ``arrays``."""
    arrays = [np.asarray(a) for a in arrays]
    xs = inputs_like(arrays)
    out = fn(*xs)
    return sg.function(xs, out, backend=backend)(*arrays)


# --------------------------------------------------------------------------- finite differences


def fd_grad(f: Callable, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of ``f(x)`` w.r.t. one array: the gradient of a scalar ``f``,
    the Jacobian (shape ``f(x).shape + x.shape``) of an array-valued one."""
    return finite_differences(f, [x], eps)[0]


def tolerance(dtype) -> dict:
    """``rtol``/``atol`` for comparing results of ``dtype`` with a float64 oracle."""
    if np.dtype(dtype) == np.float32:
        return {"rtol": 2e-5, "atol": 1e-6}
    return {"rtol": 1e-10, "atol": 1e-12}


def assert_close(actual, expected, dtype=None, **tol) -> None:
    """``assert_allclose`` with tolerances for ``dtype`` (default: ``actual``'s dtype)."""
    actual = np.asarray(actual)
    opts = tolerance(dtype or (actual.dtype if actual.dtype.kind == "f" else np.float64))
    opts.update(tol)
    np.testing.assert_allclose(actual, expected, **opts)


def assert_grad_matches(fn: Callable, arrays: Sequence, backend: str, *, eps: float = 1e-6,
                        rtol: float = 1e-6, atol: float = 1e-8, wrt: Sequence[int] | None = None
                        ) -> list[np.ndarray]:
    """``sg.grad(fn(*vars), vars)`` on ``backend`` equals finite differences (float64).

    ``fn`` takes one float64 tensor per array and returns a scalar; ``wrt`` picks the
    argument indices to differentiate (default: all). Returns the symbolic gradients.
    """
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    xs = inputs_like(arrays)
    cost = fn(*xs)
    assert cost.ndim == 0, f"fn must return a scalar, got shape {cost.shape}"
    picked = list(range(len(xs))) if wrt is None else list(wrt)
    grads = sg.grad(cost, [xs[k] for k in picked])
    symbolic = sg.function(xs, grads, backend=backend)(*arrays)
    f_cost = sg.function(xs, cost, backend=backend)
    numeric = finite_differences(f_cost, arrays, eps, wrt=picked)
    for k, got, expected in zip(picked, symbolic, numeric):
        assert np.shape(got) == arrays[k].shape, (k, np.shape(got), arrays[k].shape)
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of argument {k}")
    return [np.asarray(s) for s in symbolic]


# --------------------------------------------------------------------------- data


def random_array(rng: np.random.Generator, shape, lo: float = -2.0, hi: float = 2.0,
                 dtype="float64") -> np.ndarray:
    """Uniform values in ``[lo, hi)`` of ``shape`` and ``dtype``."""
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def away_from(x: np.ndarray, points: Sequence[float] = (0.0,), margin: float = 0.1
              ) -> np.ndarray:
    """``x`` with every entry within ``margin`` of a point pushed to ``point +- 2*margin``."""
    x = np.array(x, copy=True)
    for p in points:
        near = np.abs(x - p) < margin
        x[near] = np.where(x[near] >= p, p + 2 * margin, p - 2 * margin)
    return x


# --------------------------------------------------------------------------- strategies

seeds = st.integers(0, 2**32 - 1)


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
    """Array shapes (size-1 sides included)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcast_shape_pairs(min_dims: int = 0, max_dims: int = 3, min_side: int = 1,
                          max_side: int = 4):
    """``(shape_a, shape_b)`` that broadcast together: size-1 and missing leading dims."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=min_dims, max_dims=max_dims, min_side=min_side,
        max_side=max_side).map(lambda b: tuple(b.input_shapes))


def float_arrays(shape, lo: float = -2.0, hi: float = 2.0, dtype="float64"):
    """Arrays of ``shape`` (a tuple or a shape strategy) with finite values in ``[lo, hi]``."""
    width = 32 if np.dtype(dtype) == np.float32 else 64
    elements = st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=width,
                         allow_subnormal=False)
    return hnp.arrays(np.dtype(dtype), shape, elements=elements)


def misaligned(a: np.ndarray, by: int = 16) -> np.ndarray:
    """A C-contiguous copy of ``a`` whose data starts ``by`` bytes past a 64-byte boundary
    (what numpy's allocator often hands out)."""
    raw = np.empty(a.nbytes + 128, np.uint8)
    start = (-raw.ctypes.data) % 64 + by
    out = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert out.ctypes.data % 64 == by
    return out


#: the integer and boolean dtypes narrower than 64 bits that symgraph has (it has no
#: uint16, uint32 or uint64: ``graph.SUPPORTED_DTYPES``)
NARROW_INTEGERS = ["int8", "int16", "int32", "uint8", "bool"]


def overflowing(dtype: str, shape: tuple, seed: int = 0) -> np.ndarray:
    """Entries in the top half of ``dtype``'s range (a sum or product of any two wraps in
    it), signed ones with a few negatives; booleans mostly True."""
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.8
    info = np.iinfo(dtype)
    x = rng.integers(info.max // 2, info.max, shape, endpoint=True)
    if info.min < 0:
        x = np.where(rng.random(shape) < 0.2, -x, x)
    return x.astype(dtype)
