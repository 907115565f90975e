"""Keras-style callbacks: hooks ``fit`` calls around epochs (``History``, ``EarlyStopping``).

A callback sees the model (``self.model``) and the epoch's ``logs`` (loss,
metrics, ``val_*``, ``time``); setting ``model.stop_training = True`` ends
training after the current epoch.
"""

from __future__ import annotations

import json
import math

import numpy as np


class Callback:
    """Base class: override the hooks you need."""

    model = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs: dict) -> None: pass
    def on_epoch_begin(self, epoch: int, logs: dict) -> None: pass
    def on_epoch_end(self, epoch: int, logs: dict) -> None: pass
    def on_train_end(self, logs: dict) -> None: pass


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None):
        for name, fn in (("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end)):
            if fn is not None:
                setattr(self, name, fn)


class History(Callback):
    """Per-epoch lists of every logged value: ``history.history["val_loss"]``."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict = {}

    def on_epoch_end(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def to_json(self) -> str:
        return json.dumps({"epoch": self.epoch, "params": self.params, **self.history},
                          indent=1)

    def to_csv(self) -> str:
        keys = list(self.history)
        lines = [",".join(["epoch", *keys])]
        for i, epoch in enumerate(self.epoch):
            lines.append(",".join([str(epoch + 1)] + [repr(self.history[k][i]) for k in keys]))
        return "\n".join(lines) + "\n"

    def plot(self, path) -> None:
        """Learning curves (loss and each metric, training and validation) to an image file;
        needs matplotlib (``pip install 'symgraph[plot]'``)."""
        from frontends.plotting import plot_history
        plot_history(self, path)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs and
    restore the parameters of the best epoch (background.md section 3)."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = True):
        if patience < 1:
            raise ValueError(f"EarlyStopping: patience must be >= 1, got {patience}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode is 'min', 'max' or 'auto', got {mode!r}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.mode, self.restore_best_weights = mode, restore_best_weights

    def on_train_begin(self, logs):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None
        self.best_weights = None
        self.wait = 0
        self.stopped_epoch = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs):
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, which is not logged; "
                           f"logged: {', '.join(logs)}")
        value = logs[self.monitor]
        if np.isfinite(value) and self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
