"""A rewrite rule that fails: the default warns and compiles without it, the test suite's
setting (``SYMGRAPH_RULE_ERRORS=raise``, tests/conftest.py) raises."""

import warnings

import numpy as np
import pytest

import symgraph as sg
from symgraph.graph import toposort
from symgraph.rewrites import RuleErrorWarning, rewrite_graph
from symgraph.rewrites.pipeline import rule_errors
from symgraph.rewrites.rules import RULES


def broken(node):
    raise TypeError("a symbolic Variable has no truth value")


def retyped(node):
    """Returns a float32 variable for a float64 node: a rule bug of the other kind."""
    return sg.ops.cast(node.inputs[0], "float32")


def ops_of(outputs):
    return [node.op.name for node in toposort(outputs)]


def test_the_test_suite_raises():
    """The rest of the suite relies on this: without it a rule's bug would only warn."""
    assert rule_errors() == "raise"


def test_a_raising_rule_warns_once_and_is_counted(monkeypatch):
    monkeypatch.setenv("SYMGRAPH_RULE_ERRORS", "warn")
    monkeypatch.setitem(RULES, "neg", [broken])
    x = sg.tensor("x", (3,))
    with pytest.warns(RuleErrorWarning, match=r"rule broken failed .*TypeError: a symbolic") as got:
        new, report = rewrite_graph([sg.ops.neg(-x)])
    assert len([w for w in got if w.category is RuleErrorWarning]) == 1  # two nodes, one warning
    assert ops_of(new) == ["neg", "neg"] and report.skipped == {"broken: TypeError": 2}
    assert "broken: TypeError x2" in str(report)


@pytest.mark.parametrize("policy", ["warn", "raise"])
def test_a_result_of_another_type_is_not_used_nor_an_error(monkeypatch, policy):
    """The walker checks a rule's result type, and rules rely on it (0 - x -> -x, where a
    (1,) zero widened a scalar x): counted in skipped, neither a warning nor an error."""
    monkeypatch.setenv("SYMGRAPH_RULE_ERRORS", policy)
    monkeypatch.setitem(RULES, "neg", [retyped])
    x = sg.tensor("x", (3,), "float64")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new, report = rewrite_graph([-x])
    assert ops_of(new) == ["neg"] and new[0].dtype == np.float64
    assert report.skipped == {"retyped: type differs": 1}


def test_the_raise_policy_raises_naming_the_rule(monkeypatch):
    monkeypatch.setenv("SYMGRAPH_RULE_ERRORS", "raise")
    monkeypatch.setitem(RULES, "neg", [broken])
    x = sg.tensor("x", (3,), "float64")
    with pytest.raises(TypeError, match="truth value") as info:
        rewrite_graph([-x])
    assert any("rule broken" in note for note in info.value.__notes__)


def test_a_compiled_function_is_right_without_the_failed_rule(monkeypatch, backend):
    """The node a rule failed on is computed as written: -(-x) and -x*y against numpy."""
    monkeypatch.setenv("SYMGRAPH_RULE_ERRORS", "warn")
    monkeypatch.setitem(RULES, "neg", [broken])
    x, y = sg.tensor("x", (4,)), sg.tensor("y", (4,))
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        f = sg.function([x, y], [sg.ops.neg(-x), -x * y], backend=backend)
    assert any(w.category is RuleErrorWarning for w in got)
    X, Y = np.array([1.5, -2.0, 0.0, 3.0]), np.array([2.0, 0.5, -1.0, 4.0])
    a, b = f(X, Y)
    np.testing.assert_array_equal(a, X)
    np.testing.assert_array_equal(b, -X * Y)


def test_an_unknown_policy_is_refused(monkeypatch):
    monkeypatch.setenv("SYMGRAPH_RULE_ERRORS", "ignore")
    with pytest.raises(ValueError, match="SYMGRAPH_RULE_ERRORS='ignore'"):
        rewrite_graph([sg.tensor("x", (3,)) + 1.0])
