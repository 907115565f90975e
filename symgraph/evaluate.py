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
    kept = cause is not None and isinstance(cause, _KEPT_TYPES)
    if cause is not None and not kept:  # the exception's own type says it otherwise
        problem = f"{type(cause).__name__}: {problem}"
    message = f"{node.op.name}{scope}: {problem}; input shapes {shapes}{where}{tag}"
    return _kept_error(cause, message) if kept else EvaluationError(message)


def _kept_error(cause: Exception, message: str) -> Exception:
    """``cause``'s own type with ``message``: a subclass too (a ShapeError is a ValueError
    the llvm backend raises as such: wrapped in a RuntimeError here, ``except ValueError``
    caught it on one backend only), or the kept type it derives from when its constructor
    takes more than a message."""
    try:
        return type(cause)(message)
    except Exception:
        base = next(t for t in _KEPT_TYPES if isinstance(cause, t))
        return base(message)


def evaluate(outputs: Sequence[Variable], values: dict[Variable, np.ndarray],
             bindings: dict, flush_denormals: bool = False) -> list[np.ndarray]:
    """Values of ``outputs`` given values for the graph's inputs and shared variables;
    with ``flush_denormals``, subnormal floats in those values and in every op's results
    read as zero (the CPU's denormals-are-zero and flush-to-zero modes, op by op)."""
    order = toposort(outputs)
    env = _flushed_env(values, order) if flush_denormals else dict(values)
    for node in order:
        _perform(node, env, bindings, flush_denormals)
    # a shared variable or constant that is itself an output: its value as held (only an
    # op reads it flushed, as the CPU's DAZ mode does)
    return [_value_of(var, env if var.owner is not None or var in values else {})
            for var in outputs]


def _flushed_env(values: dict, order: Sequence[Apply]) -> dict:
    """``values`` and the shared variables' and constants' values the nodes of ``order``
    read, each with its subnormal entries zeroed (``flush_subnormals``)."""
    env = {var: flush_subnormals(value) for var, value in values.items()}
    for node in order:
        for var in node.inputs:
            if var not in env and isinstance(var, (Constant, SharedVariable)):
                env[var] = flush_subnormals(_value_of(var, env))
    return env


_TINY = {np.dtype(t): np.finfo(t).tiny for t in (np.float32, np.float64)}


def flush_subnormals(value: np.ndarray) -> np.ndarray:
    """``value`` with its subnormal entries replaced by zeros of their sign (a copy where
    there are any); anything but a float array unchanged.  Runs after every op of a flushing
    function, so the usual case (no zero, no subnormal) is one comparison (model.fit's numpy
    backend with flushing took 2x the kept time before)."""
    value = np.asarray(value)
    tiny = _TINY.get(value.dtype)
    if tiny is None:
        if value.dtype.kind != "f":
            return value
        tiny = np.finfo(value.dtype).tiny
    magnitude = np.abs(value)
    small = magnitude < tiny  # subnormal or zero
    if not small.any():
        return value
    subnormal = small & (magnitude != 0)
    if not subnormal.any():
        return value
    return np.where(subnormal, np.copysign(np.zeros((), value.dtype), value), value)


def _perform(node: Apply, env: dict, bindings: dict, flush_denormals: bool = False) -> None:
    """Run one node on the values in ``env`` and store its checked results there (their
    subnormals zeroed with ``flush_denormals``)."""
    args = [_value_of(inp, env) for inp in node.inputs]
    ctx = NodeContext(node, bindings)
    try:
        with np.errstate(over="ignore", under="ignore"):
            results = node.op.perform(args, ctx)
    except Exception as err:  # numpy's errors, reported against the node
        raise _node_error(node, args, str(err), err) from err
    for var, result in zip(node.outputs, results):
        result = np.asarray(result)
        if result.dtype != var.dtype:
            raise _node_error(node, args, f"produced {result.dtype.name}, expected "
                              f"{var.dtype.name} (op bug)")
        problem = sh.bind_shape(var.shape, result.shape, bindings)
        if problem:
            raise _node_error(node, args, f"output shape: {problem}")
        env[var] = flush_subnormals(result) if flush_denormals else result


# --------------------------------------------------------------------------- NaN/Inf debugger


class NonFiniteError(FloatingPointError):
    """A call of a ``check_finite`` function produced NaN or Inf (no parameter changed).

    The message names where the first non-finite value came from, found by re-running the
    call node by node on this evaluator: ``node`` (the first node that produced a non-finite
    value from finite inputs; for a non-finite input, the node where it enters), ``variable``
    (that value, or the non-finite input / shared variable / constant), ``bad`` (the outputs
    and updates that came out non-finite) and ``step`` (the minibatch of ``f.epoch``, else
    None).
    """

    def __init__(self, message: str, *, node: Apply | None = None,
                 variable: Variable | None = None, bad: Sequence[str] = ()):
        super().__init__(message)
        self.node = node
        self.variable = variable
        self.bad = list(bad)
        self.step: int | None = None


def is_finite(value) -> bool:
    """True when ``value`` has no NaN or Inf (integers and booleans always)."""
    array = np.asarray(value)
    if array.dtype.kind not in "fc":
        return True
    if array.size > 4096:  # a sum is finite only if every element is (no temporary array)
        with np.errstate(all="ignore"):
            if np.isfinite(np.add.reduce(array, axis=None)):
                return True
    return bool(np.isfinite(array).all())


def trace_nonfinite(targets: Sequence[tuple[str, Variable]], values: dict[Variable, np.ndarray],
                    bindings: dict, flush_denormals: bool = False) -> NonFiniteError:
    """Re-run the graph of ``targets`` ((label, variable) pairs: a call's outputs and update
    expressions) node by node and explain where its NaN/Inf came from.

    The culprit is the earliest (in evaluation order) *source* of non-finite values that
    reaches a non-finite target through non-finite values only: a node whose inputs are all
    finite, or a non-finite leaf (input, shared variable, constant).  A NaN that a ``where``
    masks, or that no target sees, is not blamed.  ``flush_denormals``: the replay computes
    as the function did (``evaluate``'s option).
    """
    order = toposort([var for _, var in targets])
    env = _flushed_env(values, order) if flush_denormals else dict(values)
    failure = None
    with np.errstate(all="ignore"):
        for node in order:
            try:
                _perform(node, env, bindings, flush_denormals)
            except Exception as err:  # noqa: BLE001  (a later node failed on a NaN: say so)
                failure = err
                break
    bad = [(label, var) for label, var in targets
           if (var in env or var.owner is None) and not is_finite(_value_of(var, env))]
    if not bad and failure is not None:  # stopped by what a NaN did (an index, a shape)
        bad = [(f"the replay, which then failed: {failure}", v) for node in order
               for v in node.outputs if v in env and not is_finite(env[v])][-1:]
    if not bad:
        stopped = f"; the replay stopped: {failure}" if failure is not None else ""
        return NonFiniteError(
            "non-finite values in " + ", ".join(label for label, _ in targets)
            + " from the compiled code, but the reference evaluator (backend='numpy') "
            f"computes them finite: a backend bug{stopped}",
            bad=[label for label, _ in targets])
    position = {node: n for n, node in enumerate(order)}

    def rank(var: Variable) -> int:
        if var.owner is not None:
            return position.get(var.owner, len(order))
        return min((position[n] for n in order if var in n.inputs), default=-1)

    culprit = min(_sources([var for _, var in bad], env), key=rank)
    return _explain(culprit, env, order, [label for label, _ in bad])


def _sources(bad: list[Variable], env: dict) -> list[Variable]:
    """Non-finite variables reached backwards from ``bad`` through non-finite values whose
    own inputs are all finite (or that have no inputs)."""
    sources, seen, stack = [], set(), list(bad)
    finite: dict[Variable, bool] = {}

    def is_finite_var(x: Variable) -> bool:
        if x not in finite:
            finite[x] = is_finite(_value_of(x, env))
        return finite[x]
    while stack:
        var = stack.pop()
        if var in seen:
            continue
        seen.add(var)
        node = var.owner
        if node is None:
            sources.append(var)
            continue
        upstream = [x for x in node.inputs if not is_finite_var(x)]
        if upstream:
            stack.extend(upstream)
        else:
            sources.append(var)
    return sources


def _count(array: np.ndarray) -> str:
    """``"2 nan, 1 inf (first at index (0, 3))"``."""
    array = np.asarray(array)
    nan, pos, neg = (int(np.count_nonzero(m)) for m in
                     (np.isnan(array), np.isposinf(array), np.isneginf(array)))
    parts = [f"{n} {name}" for n, name in ((nan, "nan"), (pos, "+inf"), (neg, "-inf")) if n]
    first = np.argwhere(~np.isfinite(array))
    where = f" (first at index {tuple(int(i) for i in first[0])})" if array.ndim else ""
    return ", ".join(parts) + f" of {array.size}" + where


def _range(array: np.ndarray) -> str:
    """Shape, dtype and [min, max] of the finite part; the non-finite count if any."""
    array = np.asarray(array)
    head = f"{array.dtype.name} {tuple(array.shape)}"
    if array.size == 0:
        return head + " (empty)"
    if array.dtype.kind == "b":
        return head + f" ({int(np.count_nonzero(array))} true)"
    finite = array[np.isfinite(array)] if array.dtype.kind in "fc" else array
    span = (f" range [{finite.min()}, {finite.max()}]" if finite.size else
            " no finite value")
    if finite.size == array.size:
        return head + span
    return head + span + "; NON-FINITE: " + _count(array)


def _label(var: Variable) -> str:
    if var.name:
        return repr(var.name)
    if var.owner is not None:
        return f"the {var.owner.op.name} value"
    return f"a {var.role}"


def _site(node: Apply) -> str:
    text = ""
    if node.site:
        text += f"\n  created at {node.site}"
    if node.grad_of is not None:
        forward = node.grad_of
        scope = f" in {forward.scope}" if forward.scope else ""
        at = f" created at {forward.site}" if forward.site else ""
        text += (f"\n  a gradient node, made by the bprop of {forward.op.name}{scope}{at}")
    return text


def _explain(var: Variable, env: dict, order: list[Apply], labels: list[str]
             ) -> NonFiniteError:
    value = _value_of(var, env)
    reached = "\n  it made non-finite: " + ", ".join(labels)
    if var.owner is None:  # a non-finite leaf: say where it enters the graph
        entry = next((node for node in order if var in node.inputs), None)
        leaf = f"{var.role} {var.name!r}" if var.name else f"a {var.role}"
        message = f"{leaf} holds non-finite values: {_count(value)}"
        if entry is not None:
            scope = f" in {entry.scope}" if entry.scope else ""
            message += (f"\n  it enters the graph at {entry.op.name}{scope}{_site(entry)}"
                        f"{_inputs(entry, env)}")
        return NonFiniteError(message + reached, node=entry, variable=var, bad=labels)
    node = var.owner
    scope = f" in {node.scope}" if node.scope else ""
    message = (f"{node.op.name}{scope} produced non-finite values from finite inputs: "
               f"{_count(value)}{_site(node)}{_inputs(node, env)}")
    return NonFiniteError(message + reached, node=node, variable=var, bad=labels)


def _inputs(node: Apply, env: dict) -> str:
    return "\n  inputs:" + "".join(f"\n    {k}: {_label(x)} {_range(_value_of(x, env))}"
                                   for k, x in enumerate(node.inputs))


def _value_of(var: Variable, env: dict) -> np.ndarray:
    if var in env:
        return env[var]
    if isinstance(var, Constant):
        return var.value
    if isinstance(var, SharedVariable):
        return var._value
    raise EvaluationError(f"no value for {var!r}: it is not an input of the function")
