"""Errors in ``sg.function``'s updates name the variable, the shapes and the user's line."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import symgraph as sg


def here() -> int:
    """The caller's line number."""
    return inspect.currentframe().f_back.f_lineno


def test_a_wrong_shaped_update_names_the_line_that_built_the_new_value():
    W = sg.shared(np.ones((3, 2), "float32"), name="W")
    x = sg.tensor("x", ("batch", 3), "float32")
    new_W, line = W.T - 0.1, here()  # (2, 3): a transposed update, a common slip
    with pytest.raises(ValueError) as err:
        sg.function([x], (x @ W).sum(), updates={W: new_W})
    text = str(err.value)
    assert "'W'" in text and "(2, 3)" in text and "(3, 2)" in text
    assert f'{__file__}", line {line}: new_W, line = W.T - 0.1' in text, text
    assert W.get_value().shape == (3, 2)


def test_an_update_of_a_non_shared_variable_names_the_users_line():
    x = sg.tensor("x", (3,), "float64")
    new_x, line = x + 1, here()
    with pytest.raises(TypeError) as err:
        sg.function([x], x.sum(), updates={x: new_x})
    assert f", line {line}: new_x, line = x + 1" in str(err.value), str(err.value)


def test_an_update_that_is_not_a_graph_names_the_call():
    v = sg.shared(np.zeros(2), name="v")
    with pytest.raises(ValueError) as err:
        line = here(); sg.function([], v.sum(), updates={v: np.zeros(3)})  # noqa: E702
    assert "'v'" in str(err.value) and "(3,)" in str(err.value) and "(2,)" in str(err.value)
    assert f", line {line}: line = here(); sg.function(" in str(err.value), str(err.value)
