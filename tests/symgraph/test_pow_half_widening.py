"""``x ** 0.5`` whose power widens the base (an int base, a float32 base against a float64
exponent): numpy computes it as the sqrt of the widened base, as it does in one dtype, so
the llvm backend must not call C's ``pow`` there either (+0 at -0, inf at -inf, and the
vector pow's last bit: ``3 ** 0.5`` one ulp off).

Oracle: numpy's own ``x ** e`` on the same arrays.
"""

import numpy as np
import pytest

import symgraph as sg
from symgraph.graph import toposort


def _assert_numpy_power(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    number = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[number]), np.signbit(want[number]))


@pytest.mark.parametrize("base, exponent", [
    ("float32", np.float64(0.5)),
    ("float32", np.full((1,), 0.5)),
    ("int64", 0.5),
    ("int32", np.float32(0.5)),
    ("uint8", 0.5),
])
def test_widening_square_root_is_numpys(backend, base, exponent):
    x = sg.tensor("x", (64,), base)
    if np.dtype(base).kind == "f":
        X = np.linspace(-4, 300, 64).astype(base)
        X[:6] = [-0.0, 0.0, -np.inf, np.inf, np.nan, 3.0]
    else:
        X = np.arange(64).astype(base) * 3
    with np.errstate(invalid="ignore"):
        want = X ** exponent
        got = sg.function([x], x ** exponent, backend=backend)(X)
    _assert_numpy_power(got, want)


def test_widening_square_root_has_no_pow_and_its_gradients_are_sqrts():
    """The rewritten graph calls no pow; d/dx sum(x ** 0.5) = 0.5 x ** -0.5 and the second
    derivative -0.25 x ** -1.5, in the exponent's dtype, on both backends."""
    x = sg.tensor("x", (5,), "float32")
    out = x ** np.float64(0.5)
    f = sg.function([x], out, backend="numpy")
    assert "pow" not in [node.op.name for node in toposort(f.graph_outputs)]
    g = sg.grad(sg.sum(out), x)
    h = sg.grad(sg.sum(g), x)
    X = np.array([0.25, 1.0, 2.0, 9.0, 1e4], np.float32)
    wide = X.astype(np.float64)
    for backend in ("numpy", "llvm"):
        gv, hv = sg.function([x], [g, h], backend=backend)(X)
        np.testing.assert_allclose(gv, 0.5 * wide ** -0.5, rtol=1e-6)
        np.testing.assert_allclose(hv, -0.25 * wide ** -1.5, rtol=1e-6)
