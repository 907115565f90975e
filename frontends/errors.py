"""The frontends' own error types for mistakes in what a user passes in.

``fit``, ``evaluate`` and ``predict`` check their data and arguments before
anything runs; what they reject is a ``UserInputError`` (a ``ValueError``), or a
``UserInputTypeError`` (also a ``TypeError``) for a dtype that cannot be cast.
The ``symgraph`` command reports these in one line (exit status 2), and
``TrainingDiverged`` (a loss that became NaN or inf: a learning rate too high) in
one line with status 1; every other exception goes through as a traceback: those
are bugs, not the user's mistakes.
"""

from __future__ import annotations

__all__ = ["TrainingDiverged", "UserInputError", "UserInputTypeError"]


class UserInputError(ValueError):
    """Data or an argument that cannot be used with this model; the message says which
    array (or argument), what was expected and what was given."""


class UserInputTypeError(UserInputError, TypeError):
    """An array whose dtype does not cast (``same_kind``) to the model's input dtype."""


class TrainingDiverged(FloatingPointError):
    """``fit``'s training loss became NaN or inf in epoch ``epoch`` (0-based); when
    ``restored``, the variables the step updates are back at that epoch's start."""

    def __init__(self, message: str, epoch: int, restored: bool = True):
        super().__init__(message)
        self.epoch, self.restored = epoch, restored
