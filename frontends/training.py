"""``fit``: the training loop around the compiled step.

Each epoch runs through ``model.train_function.epoch`` — a whole chunk of
minibatches in ONE native call, forward + backward + update fused — sized so
the progress bar still moves about every quarter second. Between chunks
Python only slices the (shuffled) data and accumulates the step losses. After
each epoch: validation in inference mode, callbacks, the optimizer's host-side
schedule hooks (reduce-on-plateau), early stopping.

Ctrl-C never leaves half an update: SIGINT is held while a chunk runs and
raised as ``KeyboardInterrupt`` right after it, when every parameter is the
result of whole steps (and early stopping's best parameters are restored).
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence

import numpy as np

from frontends.callbacks import Callback, EarlyStopping, History

TARGET_CHUNK_SECONDS = 0.25


def fit(model, x, y, *, batch_size: int = 32, epochs: int = 1, validation_data=None,
        validation_split: float = 0.0, shuffle: bool = True, early_stopping: int | None = None,
        callbacks: Sequence[Callback] = (), progress: bool = True, verbose: bool = True,
        initial_epoch: int = 0) -> History:
    """Train ``model`` on ``(x, y)``; returns a ``History`` of per-epoch loss and metrics.

    * ``validation_data=(xv, yv)`` or ``validation_split`` (the last fraction of the
      examples, before shuffling, as Keras) is evaluated after every epoch (``val_*``).
    * ``shuffle`` permutes the examples every epoch with a stream from the model seed.
    * ``early_stopping=patience`` stops after ``patience`` epochs without improvement of
      ``val_loss`` (``loss`` without validation data) and restores the best parameters.
    * ``callbacks``: Keras-style objects (``on_epoch_end(epoch, logs)``, ...); each gets the
      training arrays (``set_training_data``) before ``on_train_begin``, and the returned
      ``History`` is ``model.history`` while training runs (as Keras).
    * ``progress``: a tqdm bar when standard error is a terminal; ``verbose`` prints one
      line per epoch otherwise.

    >>> history = model.fit(X, y, batch_size=128, epochs=20, validation_data=(Xv, yv),
    ...                     early_stopping=5)
    """
    model._require_compiled("fit")
    arrays = model._arrays(x, y, "fit")
    if isinstance(batch_size, bool) or int(batch_size) <= 0:
        raise ValueError(f"fit: batch_size must be a positive integer, got {batch_size!r}")
    if int(epochs) < 0:
        raise ValueError(f"fit: epochs must be >= 0, got {epochs}")
    batch_size, epochs = int(batch_size), int(epochs)
    if validation_data is None and validation_split:
        if not 0.0 < validation_split < 1.0:
            raise ValueError(f"fit: validation_split must be in (0, 1), got {validation_split}")
        cut = len(arrays[0]) - int(round(len(arrays[0]) * validation_split))
        validation = [a[cut:] for a in arrays]
        arrays = [a[:cut] for a in arrays]
    elif validation_data is not None:
        if len(validation_data) != 2:
            raise ValueError("fit: validation_data is (x, y)")
        validation = model._arrays(*validation_data, "fit (validation_data)")
    else:
        validation = None
    n = len(arrays[0])
    if n == 0:
        raise ValueError("fit: no training examples")
    monitor = getattr(model.optimizer.schedule, "monitor", None)
    if validation is None and isinstance(monitor, str) and monitor.startswith("val_"):
        raise ValueError(f"fit: the learning-rate schedule watches {monitor!r}, which needs "
                         "validation_data or validation_split")

    history = History()
    callbacks = list(callbacks)
    if early_stopping:
        callbacks.append(EarlyStopping(monitor="val_loss" if validation else "loss",
                                       patience=int(early_stopping), restore_best_weights=True))
    callbacks = [history, *callbacks]
    history.params = {"epochs": epochs, "batch_size": batch_size, "samples": n,
                      "validation_samples": 0 if validation is None else len(validation[0])}
    model.history = history
    train_x = arrays[0] if len(arrays) == 2 else arrays[:-1]
    for cb in callbacks:
        cb.set_model(model)
        if hasattr(cb, "set_training_data"):  # duck-typed callbacks may not have it
            cb.set_training_data(train_x, arrays[-1])
    model.stop_training = False
    bar = _ProgressBar(progress, n)
    rng = np.random.default_rng([model.seed, 0x5F17])
    for _ in range(initial_epoch):  # resume: the same shuffles as an uninterrupted run
        rng.permutation(n)
    chunk = 8
    gather = _Gather()
    for cb in callbacks:
        cb.on_train_begin({})
    try:
        for epoch in range(initial_epoch, epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch, {})
            start = time.perf_counter()
            order = rng.permutation(n) if shuffle else None
            totals = np.zeros(len(model.metrics_names))
            bar.start(epoch, epochs)
            done = 0
            while done < n:
                stop = min(n, done + chunk * batch_size)
                part = slice(done, stop)
                batch = ([a[part] for a in arrays] if order is None
                         else gather.take(arrays, order[part]))
                tick = time.perf_counter()
                with _hold_interrupts():
                    steps = model.train_function.epoch(*batch, batch_size=batch_size)
                elapsed = time.perf_counter() - tick
                sizes = np.array([min(batch_size, stop - done - i)
                                  for i in range(0, stop - done, batch_size)], np.float64)
                totals += [float(np.dot(np.asarray(v, np.float64).reshape(-1), sizes))
                           for v in steps]
                done = stop
                bar.update(done, totals[0] / done)
                chunk = _next_chunk(chunk, elapsed)
            logs = {name: float(t / n) for name, t in zip(model.metrics_names, totals)}
            if not math.isfinite(logs["loss"]):
                bar.close()
                raise FloatingPointError(
                    f"fit: the training loss became {logs['loss']} in epoch {epoch + 1}; "
                    "lower the learning rate, or check the data for NaN/inf")
            if validation is not None:
                for name, value in model.evaluate(validation[:-1], validation[-1]).items():
                    logs[f"val_{name}"] = value
            logs["time"] = time.perf_counter() - start
            bar.finish(logs)
            if verbose and not bar.enabled:
                print(_epoch_line(epoch, epochs, logs), flush=True)
            model.optimizer.on_epoch_end(epoch, logs)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    finally:
        bar.close()
        for cb in callbacks:
            cb.on_train_end({})
    return history


class _Gather:
    """Shuffled chunks gathered into buffers reused across chunks and epochs: a fresh array
    per chunk costs its page faults every time (a quarter of a 784-256-10 epoch)."""

    def __init__(self):
        self.buffers: list[np.ndarray] = []

    def take(self, arrays: list[np.ndarray], index: np.ndarray) -> list[np.ndarray]:
        m = len(index)
        if not self.buffers or len(self.buffers[0]) < m:
            self.buffers = [np.empty((m, *a.shape[1:]), a.dtype) for a in arrays]
        # mode="clip": the indices are a permutation (always valid); "raise" would buffer the copy
        return [np.take(a, index, axis=0, out=buf[:m], mode="clip")
                for a, buf in zip(arrays, self.buffers)]


def _next_chunk(chunk: int, elapsed: float) -> int:
    """Batches per native call so one call takes about ``TARGET_CHUNK_SECONDS``."""
    if elapsed <= 0:
        return chunk * 2
    ideal = chunk * TARGET_CHUNK_SECONDS / elapsed
    return int(max(1, min(chunk * 4, ideal)))


def _epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    parts = [f"epoch {epoch + 1}/{epochs}"]
    parts += [f"{k} {v:.4f}" for k, v in logs.items() if k != "time"]
    seconds = logs["time"]
    parts.append(f"({seconds * 1000:.0f} ms)" if seconds < 1 else f"({seconds:.1f} s)")
    return "  ".join(parts)


@contextlib.contextmanager
def _hold_interrupts():
    """Hold SIGINT while a native chunk runs, then deliver it to the handler that was there
    (Python's raises KeyboardInterrupt; main thread only).  An ignored SIGINT (a process
    started in the background by a non-interactive shell) stays ignored."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        yield
        return
    received = []

    def hold(signum, frame):
        received.append(signum)

    try:
        previous = signal.signal(signal.SIGINT, hold)
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        if callable(previous):
            previous(signal.SIGINT, None)
        elif previous == signal.SIG_DFL:
            signal.raise_signal(signal.SIGINT)


class _ProgressBar:
    """A tqdm bar per epoch when standard error is a terminal (and ``progress``)."""

    def __init__(self, progress: bool, n: int):
        self.enabled = bool(progress) and sys.stderr.isatty()
        self.n = n
        self.bar = None

    def start(self, epoch: int, epochs: int) -> None:
        if self.enabled:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=self.n, desc=f"epoch {epoch + 1}/{epochs}", unit="ex",
                            leave=True, dynamic_ncols=True, file=sys.stderr)

    def update(self, done: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)

    def finish(self, logs: dict) -> None:
        if self.bar is not None:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "time")
            self.bar.set_postfix_str(shown)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
