"""The ``Callback`` base class: the hooks ``fit`` calls around training and epochs.

Its own module so that callbacks living elsewhere (``frontends.tensorboard``) can subclass it
while ``frontends.callbacks`` re-exports them all without an import cycle.
"""

from __future__ import annotations


class Callback:
    """Base class: override the hooks you need."""

    model = None
    #: ``(x, y)``: the arrays ``fit`` trains on (after a validation split), or ``None``
    training_data = None

    def set_model(self, model) -> None:
        self.model = model

    def set_training_data(self, x, y) -> None:
        """Called by ``fit`` before ``on_train_begin``: the raw ``x`` (an array, or a list of
        arrays for a model with several inputs) and ``y`` the model trains on."""
        self.training_data = (x, y)

    def on_train_begin(self, logs: dict) -> None: pass
    def on_epoch_begin(self, epoch: int, logs: dict) -> None: pass
    def on_epoch_end(self, epoch: int, logs: dict) -> None: pass
    def on_train_end(self, logs: dict) -> None: pass
