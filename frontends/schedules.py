"""Learning-rate schedules for ``frontends.optimizers``.

Two kinds, because a schedule either depends only on the step count or on what
happened during training:

* **in-graph** (``Step``, ``Exponential``, ``InverseTime``, ``Cosine``): the effective
  learning rate is an expression of the optimizer's base-lr shared scalar and
  its ``iterations`` counter, built once into the compiled training step, so
  changing the rate costs no recompilation and no host work per step;
* **host-side** (``ReduceOnPlateau``): the training loop calls
  ``optimizer.on_epoch_end(epoch, logs)`` and the schedule rescales the base-lr
  shared scalar when the monitored value stops improving ("halve the learning
  rate when the validation error stops improving").

Step counts are *optimizer steps* (minibatches), as Keras's ``decay_steps``;
step ``t`` is the number of steps already taken, so the first step uses the
base learning rate. The counter arithmetic is done in float64 on 0-d values
(exact for any realistic count) and only the final factor is cast to the
learning rate's dtype, so a float32 model's elementwise updates stay float32.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import symgraph as sg
from frontends.config import Configurable, integer, number, resolve

if TYPE_CHECKING:  # pragma: no cover
    from frontends.optimizers import Optimizer

__all__ = ["Schedule", "Step", "Exponential", "InverseTime", "Cosine", "ReduceOnPlateau",
           "get"]


class Schedule(Configurable):
    """Base class: the identity schedule (the base learning rate at every step).

    Subclasses override ``__call__`` (in-graph) and/or ``on_epoch_end`` (host-side), and
    ``get_config``. Compared by identity: a host-side schedule carries training history.
    """

    kind = "schedule"

    def __call__(self, lr: sg.Variable, iterations: sg.Variable) -> sg.Variable:
        """The effective learning rate of the step after ``iterations`` steps, as a graph
        expression in ``lr``'s dtype (0-d)."""
        return lr

    def on_epoch_end(self, optimizer: Optimizer, epoch: int, logs: dict[str, float]) -> None:
        """Host-side hook, called once per epoch by the training loop; default: nothing."""

    def get_state(self) -> dict:
        """Host-side training history a saved model keeps (JSON numbers); default: none."""
        return {}

    def set_state(self, state: dict) -> None:
        """Take back what :meth:`get_state` gave (a model file's)."""


def _scaled(lr: sg.Variable, factor64: sg.Variable) -> sg.Variable:
    """``lr * factor`` with the float64 0-d factor cast to the learning rate's dtype."""
    return lr * sg.cast(factor64, lr.dtype)


def _step_ratio(iterations: sg.Variable, steps: float, staircase: bool) -> sg.Variable:
    """``t / steps`` (float64), floored when ``staircase`` (t >= 0, so truncation floors)."""
    ratio = sg.cast(iterations, "float64") / float(steps)
    if staircase:
        ratio = sg.cast(sg.cast(ratio, "int64"), "float64")
    return ratio


class Step(Schedule):
    """Step decay: ``lr * drop ** floor(t / every)``, ``t`` in optimizer steps.

    >>> Adam(lr=1e-3, schedule=Step(drop=0.5, every=1000))   # halve every 1000 minibatches
    """

    def __init__(self, drop: float = 0.5, every: int = 10):
        self.drop = number("Step", "drop", drop, lo_open=True)
        self.every = integer("Step", "every", every)

    def __call__(self, lr, iterations):
        return _scaled(lr, self.drop ** _step_ratio(iterations, self.every, staircase=True))

    def get_config(self):
        return {"type": "Step", "drop": self.drop, "every": self.every}


class Exponential(Schedule):
    """Exponential decay (Keras ``ExponentialDecay``): ``lr * rate ** (t / steps)``;
    with ``staircase=True`` the exponent is ``floor(t / steps)``."""

    def __init__(self, rate: float, steps: int, staircase: bool = False):
        self.rate = number("Exponential", "rate", rate, lo_open=True)
        self.steps = integer("Exponential", "steps", steps)
        self.staircase = bool(staircase)

    def __call__(self, lr, iterations):
        return _scaled(lr, self.rate ** _step_ratio(iterations, self.steps, self.staircase))

    def get_config(self):
        return {"type": "Exponential", "rate": self.rate, "steps": self.steps,
                "staircase": self.staircase}


class InverseTime(Schedule):
    """1/t decay (Keras ``InverseTimeDecay``): ``lr / (1 + rate * t / steps)``;
    with ``staircase=True`` the ratio ``t / steps`` is floored."""

    def __init__(self, rate: float, steps: int = 1, staircase: bool = False):
        self.rate = number("InverseTime", "rate", rate)
        self.steps = integer("InverseTime", "steps", steps)
        self.staircase = bool(staircase)

    def __call__(self, lr, iterations):
        ratio = _step_ratio(iterations, self.steps, self.staircase)
        return _scaled(lr, 1.0 / (1.0 + self.rate * ratio))

    def get_config(self):
        return {"type": "InverseTime", "rate": self.rate, "steps": self.steps,
                "staircase": self.staircase}


class Cosine(Schedule):
    """Cosine decay with an optional linear warm-up (Keras ``CosineDecay`` with
    ``warmup_steps``, warming up from 0 to the base rate; torch's ``CosineAnnealingLR``
    with ``eta_min = alpha * lr`` for the decay):

    * ``t < warmup``: ``lr * t / warmup`` (so the first step has rate 0, as in Keras and
      Hugging Face's warm-up schedules);
    * after it, with ``s = min(t - warmup, steps)``:
      ``lr * (alpha + (1 - alpha) * (1 + cos(pi * s / steps)) / 2)``, which stays at
      ``alpha * lr`` after ``steps`` decay steps (torch's recursive form would climb back).

    >>> AdamW(lr=3e-4, schedule=Cosine(steps=10_000, warmup=500))
    """

    def __init__(self, steps: int, alpha: float = 0.0, warmup: int = 0):
        self.steps = integer("Cosine", "steps", steps)
        self.alpha = number("Cosine", "alpha", alpha, hi=1.0)
        self.warmup = integer("Cosine", "warmup", warmup, lo=0)

    def __call__(self, lr, iterations):
        t = sg.cast(iterations, "float64")
        s = sg.minimum(sg.maximum(t - float(self.warmup), 0.0), float(self.steps))
        factor = self.alpha + (1.0 - self.alpha) * 0.5 * (
            1.0 + sg.cos(math.pi / self.steps * s))
        if self.warmup:
            factor = sg.where(t < float(self.warmup), t / float(self.warmup), factor)
        return _scaled(lr, factor)

    def get_config(self):
        return {"type": "Cosine", "steps": self.steps, "alpha": self.alpha,
                "warmup": self.warmup}


class ReduceOnPlateau(Schedule):
    """Multiply the learning rate by ``factor`` when ``logs[monitor]`` has not improved for
    ``patience`` epochs (host-side; Keras's ``ReduceLROnPlateau`` counting, so ``patience=2``
    reduces on the second epoch without improvement, and 0 acts as 1).

    Improvement means ``value < best - min_delta`` (``mode="min"``) or
    ``value > best + min_delta`` (``mode="max"``); a NaN never improves. The ``cooldown``
    epochs after a reduction are not counted (as torch's ``ReduceLROnPlateau``; Keras
    skips one fewer). The rate never goes below ``min_lr``. The change goes into the
    optimizer's base-lr shared variable, so the compiled step uses it on its next call
    without recompiling.
    """

    def __init__(self, factor: float = 0.5, patience: int = 2, monitor: str = "val_loss",
                 min_lr: float = 0.0, mode: str = "min", min_delta: float = 0.0,
                 cooldown: int = 0):
        self.factor = number("ReduceOnPlateau", "factor", factor, lo_open=True)
        if self.factor >= 1:
            raise ValueError(f"ReduceOnPlateau: factor must be < 1 (it reduces the rate), "
                             f"got {factor!r}")
        self.patience = integer("ReduceOnPlateau", "patience", patience, lo=0)
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"ReduceOnPlateau: monitor must be a log key such as 'val_loss', "
                            f"got {monitor!r}")
        self.monitor = monitor
        self.min_lr = number("ReduceOnPlateau", "min_lr", min_lr)
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceOnPlateau: mode must be 'min' or 'max', got {mode!r}")
        self.mode = mode
        self.min_delta = number("ReduceOnPlateau", "min_delta", min_delta)
        self.cooldown = integer("ReduceOnPlateau", "cooldown", cooldown, lo=0)
        self.reset()

    def reset(self) -> None:
        """Forget the training history (best value, patience and cooldown counters)."""
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_left = 0

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, optimizer, epoch, logs):
        if self.monitor not in logs:
            raise KeyError(f"ReduceOnPlateau monitors {self.monitor!r}, which is not in the "
                           f"epoch logs (keys: {sorted(logs)}); pass validation data or set "
                           "monitor= to one of them")
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best = value
            self.wait = 0
        else:
            self.wait += 1
        if self.cooldown_left > 0:  # epochs right after a reduction do not count
            self.cooldown_left -= 1
            self.wait = 0
        if self.wait >= max(self.patience, 1):
            old = optimizer.learning_rate
            if old > self.min_lr:
                optimizer.learning_rate = max(old * self.factor, self.min_lr)
            self.cooldown_left = self.cooldown
            self.wait = 0

    def get_state(self) -> dict:
        return {"best": self.best, "wait": self.wait, "cooldown_left": self.cooldown_left}

    def set_state(self, state: dict) -> None:
        self.best = float(state.get("best", self.best))
        self.wait = int(state.get("wait", self.wait))
        self.cooldown_left = int(state.get("cooldown_left", self.cooldown_left))

    def get_config(self):
        return {"type": "ReduceOnPlateau", "factor": self.factor, "patience": self.patience,
                "monitor": self.monitor, "min_lr": self.min_lr, "mode": self.mode,
                "min_delta": self.min_delta, "cooldown": self.cooldown}


_SCHEDULES: dict[str, type[Schedule]] = {
    cls.__name__: cls for cls in (Step, Exponential, InverseTime, Cosine, ReduceOnPlateau)}


def get(identifier: str | Mapping | Schedule) -> Schedule:
    """A schedule from a name (``"step"``, ``"ReduceOnPlateau"``, ``"inverse_time"``; case,
    ``_`` and ``-`` ignored), a config dict (``{"type": "Exponential", "rate": 0.96,
    "steps": 100}``) or an instance. Unknown names and arguments raise ``ValueError``.

    >>> get({"type": "Step", "drop": 0.5, "every": 100})
    Step(drop=0.5, every=100)
    """
    return resolve(identifier, _SCHEDULES, Schedule,
                   normalize=lambda name: name.replace("_", "").replace("-", "").lower())
