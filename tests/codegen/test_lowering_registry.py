"""codegen.registry: one Lowering per op class; a math function named once, in its table row."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import symgraph as sg
from codegen.lower import LoweringError  # importing codegen.lower registers every lowering
from codegen.registry import LOWERINGS
from symgraph.graph import Op
from symgraph.ops import elemwise as ew
from symgraph.ops import indexing, linalg, nn, reduce, structure

THIS_FILE = "test_lowering_registry.py"


@pytest.fixture
def table_row():
    """Add rows to the elementwise table for one test, then remove them."""
    added = []

    def add(name, *args, **kwargs):
        added.append(name)
        return ew.scalar_op(name, *args, **kwargs)
    yield add
    for name in added:
        ew.SCALAR_OPS.pop(name, None)
        ew.ELEMWISE.pop(name, None)


def test_every_op_class_has_one_lowering():
    for module in (ew, indexing, linalg, nn, reduce, structure):
        for cls in vars(module).values():
            if inspect.isclass(cls) and issubclass(cls, Op) and cls.__module__ == module.__name__:
                if not cls.__name__.startswith("_"):
                    assert cls in LOWERINGS, cls.__name__


def test_an_elementwise_op_is_one_table_row(table_row):
    """value, gradient and lowering from one row naming its libm function (atan)."""
    atan = table_row("atan_test", 1, np.arctan, (lambda i, o, g: g / (1 + i[0] * i[0]),),
                     dtype_rule=ew._to_float, math="atan")
    x = sg.tensor("x", ("n",), "float32")
    y = ew.apply(atan, x)
    f = sg.function([x], [y, sg.grad(sg.sum(y), x)], backend="llvm")
    xv = np.linspace(-3, 3, 37, dtype=np.float32)
    value, grad = f(xv)
    np.testing.assert_allclose(value, np.arctan(xv), rtol=1e-6)
    np.testing.assert_allclose(grad, 1 / (1 + xv * xv), rtol=1e-6)


def test_unknown_math_function_is_a_compile_error_naming_op_and_line(table_row):
    bogus = table_row("bogus_test", 1, np.exp, (lambda i, o, g: g,), math="no_such_function")
    x = sg.tensor("x", (4,))
    y = ew.apply(bogus, x)  # the user's line
    with pytest.raises(LoweringError, match="no_such_function") as err:
        sg.function([x], y, backend="llvm")
    assert "bogus_test" in str(err.value) and THIS_FILE in str(err.value)
