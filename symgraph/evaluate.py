"""The reference evaluator: runs a graph node by node with each op's numpy ``perform``.

It is the oracle for the compiled backend, so it favours checking over speed:
every node's result is checked against the node's static type (dtype and
shape, binding symbolic dims as they appear), and a failure names the op, the
input shapes and the user's line that created the node.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from symgraph import shapes as sh
from symgraph.graph import Apply, Constant, SharedVariable, Variable, toposort


class EvaluationError(RuntimeError):
    """A node failed at run time; the message names the op, shapes and the user's line."""


class NodeContext:
    """What ``Op.perform`` may ask about the current call: symbol bindings, output dtype."""

    __slots__ = ("node", "bindings")

    def __init__(self, node: Apply, bindings: dict):
        self.node = node
        self.bindings = bindings

    @property
    def out_dtype(self) -> np.dtype:
        return self.node.outputs[0].dtype

    def resolve(self, dim) -> int:
        return sh.resolve_dim(dim, self.bindings)


# errors a user can act on keep their type (an out-of-bounds index stays an IndexError)
_KEPT_TYPES = (ValueError, IndexError, TypeError, ZeroDivisionError, FloatingPointError)


def _node_error(node: Apply, values: Sequence, problem: str,
                cause: Exception | None = None) -> Exception:
    shapes = ", ".join(str(np.shape(v)) for v in values)
    where = f"\n  created at {node.site}" if node.site else ""
    tag = ""
    if node.grad_of is not None:
        tag = f"\n  (gradient node made by the bprop of {node.grad_of.op.name}"
        tag += f" created at {node.grad_of.site})" if node.grad_of.site else ")"
    scope = f" in {node.scope}" if node.scope else ""
    message = f"{node.op.name}{scope}: {problem}; input shapes {shapes}{where}{tag}"
    if cause is not None and type(cause) in _KEPT_TYPES:
        return type(cause)(message)
    return EvaluationError(message)


def evaluate(outputs: Sequence[Variable], values: dict[Variable, np.ndarray],
             bindings: dict) -> list[np.ndarray]:
    """Values of ``outputs`` given values for the graph's inputs and shared variables."""
    env: dict[Variable, np.ndarray] = dict(values)
    for node in toposort(outputs):
        args = [_value_of(inp, env) for inp in node.inputs]
        ctx = NodeContext(node, bindings)
        try:
            with np.errstate(over="ignore", under="ignore"):
                results = node.op.perform(args, ctx)
        except Exception as err:  # numpy's errors, reported against the node
            raise _node_error(node, args, f"{type(err).__name__}: {err}", err) from err
        for var, result in zip(node.outputs, results):
            result = np.asarray(result)
            if result.dtype != var.dtype:
                raise _node_error(node, args, f"produced {result.dtype.name}, expected "
                                  f"{var.dtype.name} (op bug)")
            problem = sh.bind_shape(var.shape, result.shape, bindings)
            if problem:
                raise _node_error(node, args, f"output shape: {problem}")
            env[var] = result
    return [_value_of(var, env) for var in outputs]


def _value_of(var: Variable, env: dict) -> np.ndarray:
    if var in env:
        return env[var]
    if isinstance(var, Constant):
        return var.value
    if isinstance(var, SharedVariable):
        return var._value
    raise EvaluationError(f"no value for {var!r}: it is not an input of the function")
