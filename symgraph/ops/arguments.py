"""Checking the arguments of the user functions (axes, shapes) with errors that name the
function, its inputs' types and the user's line -- shared by every op family module."""

from __future__ import annotations

from numpy.exceptions import AxisError

from symgraph import shapes as sh
from symgraph.graph import Variable, current_scope, user_site
from symgraph.ops.reduce import normalize_axes

__all__ = ["ARGUMENT_ERRORS", "argument_error", "axes", "axis"]

#: what a bad argument raises (AxisError stays AxisError, as numpy's)
ARGUMENT_ERRORS = (AxisError, TypeError, ValueError)


def argument_error(function: str, err: Exception, inputs) -> Exception:
    """``err`` (same type: AxisError stays AxisError) naming ``function``, the name scope
    it was called in (a model's layer), its inputs' types and the user's line, as
    ``Op.make_node`` does for shape errors."""
    scope = current_scope()
    if scope:
        function = f"{function} in {scope}"
    shown = ", ".join(str(x.type) for x in inputs)
    site = user_site()
    where = f"\n  at {site}" if site is not None else ""
    wrapped = type(err)(f"{function}: {err}; inputs {shown}{where}")
    wrapped.reason = str(err)  # the bare complaint, as Op.make_node keeps it
    return wrapped


def axis(function: str, value, ndim: int, *inputs: Variable, of: str = "an input") -> int:
    """One axis, normalised (negative counts from the end); AxisError names ``function``."""
    try:
        return sh.normalize_axis(value, ndim, of)
    except ARGUMENT_ERRORS as err:
        raise argument_error(function, err, inputs) from None


def axes(function: str, value, x: Variable) -> tuple[int, ...]:
    """An int, a tuple or None (every axis) as sorted normalised axes of ``x``."""
    try:
        return normalize_axes(value, x.ndim)
    except ARGUMENT_ERRORS as err:
        raise argument_error(function, err, [x]) from None
