"""What "no gradient" means, at the IR layer: typed sentinels and the errors of ``grad``.

Why here and not in ``grad``: ops' ``bprop`` rules return ``DISCONNECTED`` and the graph
raises ``GradNotImplementedError``; both sit below ``grad`` in the import order
(graph -> ops -> grad), so the values they share live in this leaf module.
"""

from __future__ import annotations

__all__ = ["DISCONNECTED", "DisconnectedInputError", "GradNotImplementedError", "Undefined",
           "UndefinedGradError"]


class GradNotImplementedError(NotImplementedError):
    """An op on the path has no gradient rule."""


class DisconnectedInputError(ValueError):
    """A ``wrt`` variable the cost does not depend on (differentiably)."""


class UndefinedGradError(ValueError):
    """The derivative w.r.t. a requested variable is undefined."""


class _Disconnected:
    """No differentiable path: the gradient is structurally absent (a typed zero)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self):
        return "DISCONNECTED"


DISCONNECTED = _Disconnected()


class Undefined:
    """The derivative exists as a path but has no value (e.g. w.r.t. a discrete choice)."""

    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self):
        return f"Undefined({self.reason!r})"
