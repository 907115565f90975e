"""Keras-style callbacks: hooks ``fit`` calls around epochs (``History``, ``EarlyStopping``,
``ModelCheckpoint``, ``Diagnostics``).

A callback sees the model (``self.model``), the arrays it trains on
(``self.training_data``, after any validation split) and the epoch's ``logs``
(loss, metrics, ``val_*``, ``time``); setting ``model.stop_training = True``
ends training after the current epoch. ``fit`` keeps its ``History`` as
``model.history``, where ``Diagnostics`` records per-layer statistics.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from frontends.callback_base import Callback
from frontends.config import flag, integer, number
from frontends.diagnostics import Probe
from frontends.errors import UserInputError
from frontends.plotting import plot_diagnostics, plot_history
from frontends.tensorboard import TensorBoard

__all__ = ["Callback", "Diagnostics", "EarlyStopping", "History", "LambdaCallback",
           "ModelCheckpoint", "TensorBoard"]


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None):
        for name, fn in (("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end)):
            if fn is not None:
                if not callable(fn):  # else fit trains a whole epoch, then fails calling it
                    raise TypeError(f"LambdaCallback: {name} must be a function, got {fn!r}")
                setattr(self, name, fn)


class History(Callback):
    """Per-epoch lists of every logged value: ``history.history["val_loss"]``."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict = {}
        #: ``Diagnostics``' records: ``diagnostics[layer][stat]``, one entry per probed epoch
        self.diagnostics: dict[str, dict[str, list]] = {}
        #: the epochs (0-based) those entries belong to
        self.diagnostics_epoch: list[int] = []

    def record_diagnostics(self, epoch: int, stats: dict[str, dict]) -> None:
        """Append one probe's statistics (``Probe.stats()``) as epoch ``epoch``."""
        self.diagnostics_epoch.append(int(epoch))
        for layer, values in stats.items():
            for stat, value in values.items():
                self.diagnostics.setdefault(layer, {}).setdefault(stat, []).append(value)

    def on_epoch_end(self, epoch, logs):
        self.epoch.append(epoch)
        done = len(self.epoch) - 1
        for key, value in logs.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue  # a callback's note that is not a number: nothing to plot
            # a key another callback logs only in some epochs: NaN where it is missing, so
            # every list stays aligned with ``epoch`` (and to_csv's rows)
            values = self.history.setdefault(key, [math.nan] * done)
            values.append(value)
        for values in self.history.values():
            if len(values) == done:
                values.append(math.nan)

    def to_json(self) -> str:
        # nan or inf (a validation loss that overflowed) is not JSON either: null
        record = {"epoch": self.epoch, "params": self.params,
                  **{key: [_json_value(v) for v in values]
                     for key, values in self.history.items()}}
        if self.diagnostics_epoch:
            record["diagnostics_epoch"] = self.diagnostics_epoch
            # nan (zero weights' update ratio) is not JSON: null
            record["diagnostics"] = {
                layer: {stat: [_json_value(v) for v in values] for stat, values in stats.items()}
                for layer, stats in self.diagnostics.items()}
        return json.dumps(record, indent=1)

    def to_csv(self) -> str:
        keys = list(self.history)
        lines = [",".join(["epoch", *keys])]
        for i, epoch in enumerate(self.epoch):
            lines.append(",".join([str(epoch + 1)] + [repr(self.history[k][i]) for k in keys]))
        return "\n".join(lines) + "\n"

    def plot(self, path) -> None:
        """Learning curves (loss and each metric, training and validation) to an image file;
        needs matplotlib (``pip install 'symgraph[plot]'``)."""
        plot_history(self, path)

    def plot_diagnostics(self, path) -> None:
        """The ``Diagnostics`` records as one picture: weight and gradient norms, the
        update/weight ratio against the healthy band around 1e-3, dead and saturated
        fractions, and the last probed epoch's activation histograms per layer."""
        plot_diagnostics(self, path)


def _json_value(value):
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return float(array) if math.isfinite(array) else None
    return [float(v) if math.isfinite(v) else None for v in array.tolist()]


def _check_monitor(owner: str, monitor) -> None:
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"{owner}: monitor must be a logged key such as 'val_loss', got "
                        f"{monitor!r}")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs and
    restore the parameters of the best epoch (background.md section 3). ``patience=0``
    stops at the first epoch that does not improve, as 1 does (Keras's 0 and 1 do the same,
    except that Keras never stops after the first epoch: here, with either, a first epoch
    whose value is NaN or inf stops at once, as training that diverged will not recover)."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = True):
        patience = integer("EarlyStopping", "patience", patience, lo=0)
        _check_monitor("EarlyStopping", monitor)
        # a negative min_delta made worse values count as improvements (Keras takes its
        # absolute value), NaN none: both a mistake to report, as ReduceOnPlateau does
        min_delta = number("EarlyStopping", "min_delta", min_delta)
        restore_best_weights = flag("EarlyStopping", "restore_best_weights",
                                    restore_best_weights)
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


class ModelCheckpoint(Callback):
    """Save the model (``model.save``: configuration, weights, optimizer state, so
    ``fe.load_model`` resumes training) after every epoch, or, with ``save_best_only``,
    after each epoch that improves ``monitor``. ``path`` may name the epoch (1-based) and
    logged values, as Keras's: ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``. A write replaces
    the file atomically, so a crash never leaves a damaged checkpoint.

    >>> model.fit(X, y, validation_split=0.1, epochs=50,
    ...           callbacks=[fe.callbacks.ModelCheckpoint("best.npz", save_best_only=True)])
    """

    def __init__(self, path, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto"):
        _check_monitor("ModelCheckpoint", monitor)
        save_best_only = flag("ModelCheckpoint", "save_best_only", save_best_only)
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"ModelCheckpoint: mode is 'min', 'max' or 'auto', got {mode!r}")
        self.path, self.monitor, self.mode = os.fspath(path), monitor, mode
        self.save_best_only = bool(save_best_only)
        #: the best value saved so far, kept across fits (as Keras's): a later fit's worse
        #: first epoch must not replace the best file
        self.best: float = math.inf if mode == "min" else -math.inf
        #: the paths written, in order
        self.saved: list[str] = []

    def path_for(self, epoch: int, logs: dict) -> str:
        """The path of epoch ``epoch``'s (0-based) file: ``path`` filled in from ``logs``."""
        try:
            return self.path.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError, TypeError) as err:
            raise UserInputError(f"ModelCheckpoint: cannot fill in the path {self.path!r} "
                                 f"({err!r}); it may use {{epoch}} and the logged values: "
                                 f"{', '.join(logs)}") from None

    def on_epoch_end(self, epoch, logs):
        if self.save_best_only:
            if self.monitor not in logs:
                raise KeyError(f"ModelCheckpoint monitors {self.monitor!r}, which is not "
                               f"logged; logged: {', '.join(logs)}")
            value = logs[self.monitor]
            better = value < self.best if self.mode == "min" else value > self.best
            if not (np.isfinite(value) and better):
                return
            self.best = value
        path = self.path_for(epoch, logs)
        folder = os.path.dirname(path)
        if folder:  # "ckpts/e{epoch}.npz": made when first written, as Keras does
            os.makedirs(folder, exist_ok=True)
        self.model.save(path)
        self.saved.append(path)


class Diagnostics(Callback):
    """Per-layer training health after every ``every``-th epoch, into ``model.history``.

    Weight and gradient norms, the update/weight ratio (healthy about 1e-3), the
    fractions of dead ReLU and saturated sigmoid/tanh units and activation
    histograms, from ONE compiled probe function on the first ``probe_size``
    training examples (``frontends.diagnostics.Probe``; see its module for the
    definitions). The probe reads and never writes model state: training is the
    same, bit for bit, with or without this callback.

    >>> history = model.fit(X, y, epochs=20, callbacks=[fe.callbacks.Diagnostics()])
    >>> history.diagnostics["dense_1"]["update_ratio/W"]      # one value per epoch
    >>> history.plot_diagnostics("diag.png")
    """

    def __init__(self, every: int = 1, probe_size: int = 256):
        for name, value in (("every", every), ("probe_size", probe_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Diagnostics: {name} must be a positive integer, got "
                                 f"{value!r}")
        self.every, self.probe_size = int(every), int(probe_size)
        self.probe = None

    def on_train_begin(self, logs):
        if self.training_data is None:
            raise RuntimeError("Diagnostics: no training data; fit passes it "
                               "(set_training_data(x, y)) before training begins")
        history = getattr(self.model, "history", None)
        if not isinstance(history, History):
            raise RuntimeError("Diagnostics: the model has no History (model.history); run "
                               "it as a callback of model.fit")
        self.history = history
        x, y = self.training_data
        if not self._probe_fits(x, y):  # a second fit on the same data keeps the compiled probe
            self.probe = Probe(self.model, x, y, size=self.probe_size)

    def _probe_fits(self, x, y) -> bool:
        probe = self.probe
        if probe is None or probe.train_function is not self.model.train_function:
            return False  # another model, or this one compiled again (a new optimizer)
        arrays = self.model._arrays(x, y, "Diagnostics")
        return (len(arrays[0]) >= probe.size
                and all(np.array_equal(a[:probe.size], b) for a, b in zip(arrays, probe.batch)))

    def on_epoch_end(self, epoch, logs):
        if (epoch + 1) % self.every == 0:
            self.history.record_diagnostics(epoch, self.probe.stats())
