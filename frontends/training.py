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
An epoch whose loss becomes NaN or inf raises ``TrainingDiverged`` with every
variable the step updates (parameters, optimizer state) back at the epoch's
start: one copy of them is kept per epoch for that, up to ``UNDO_BYTES``.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from frontends.callbacks import Callback, EarlyStopping, History, ModelCheckpoint
from frontends.config import flag, integer, suggest
from frontends.data_checks import check_scored
from frontends.errors import TrainingDiverged, UserInputError
from frontends.sample_weights import (
    batch_weights,
    checked,
    class_weights,
    function,
    weighted_means,
    weighted_sums,
)
from frontends.saving import folder_problem

TARGET_CHUNK_SECONDS = 0.25
#: the most bytes of parameters and optimizer state fit copies at each epoch's start, to undo
#: an epoch whose loss becomes NaN or inf; a bigger model is not copied (the copy would
#: double its memory), its diverged epoch stays, and the error says so
UNDO_BYTES = 512 << 20


def fit(model, x, y, *, batch_size: int = 32, epochs: int = 1, validation_data=None,
        validation_split: float = 0.0, shuffle: bool = True, sample_weight=None,
        class_weight: Mapping | None = None, early_stopping: int | None = None,
        callbacks: Sequence[Callback] | None = (), progress: bool = True, verbose: bool = True,
        initial_epoch: int = 0) -> History:
    """Train ``model`` on ``(x, y)``; returns a ``History`` of per-epoch loss and metrics.

    * ``x``: an array, a list of arrays in the order of the model's inputs, or a dict
      keyed by the inputs' names (as Keras's; so is ``validation_data``'s ``xv``).
    * ``validation_data=(xv, yv)`` or ``(xv, yv, wv)`` or ``validation_split`` (the last
      fraction of the examples and of ``sample_weight``, before shuffling, as Keras) is
      evaluated after every epoch (``val_*``).
    * ``sample_weight`` (n,), or per position (n, length) for a class per position: the
      loss is Keras's ``sum(w l) / N`` and ``compile(weighted_metrics=...)`` are weighted
      means (``frontends.sample_weights``); ``class_weight={class: weight}`` weighs each
      label (classes left out weigh 1), training only, not with ``sample_weight``.
    * ``shuffle`` permutes the examples every epoch with a stream from the model seed.
    * ``early_stopping=patience`` stops after ``patience`` epochs without improvement of
      ``val_loss`` (``loss`` without validation data) and restores the best parameters
      (``EarlyStopping(patience=...)``; 0 stops at the first epoch without improvement,
      None or False never stops).
    * ``callbacks``: Keras-style objects (``on_epoch_end(epoch, logs)``, ...; a hook an
      object lacks is skipped); each gets the training arrays (``set_training_data``) before
      ``on_train_begin``, and the returned ``History`` is ``model.history`` while training
      runs (as Keras).
    * Before the first step every array (training and validation) is checked against the
      model -- shapes, dtypes, labels against the classes, NaN/inf -- and so are the counts
      and what early stopping and the schedule monitor: a mistake raises ``UserInputError``
      naming the array and its shape or row, and changes nothing.
    * ``progress``: a tqdm bar when standard error is a terminal; ``verbose`` prints one
      line per epoch otherwise.

    >>> history = model.fit(X, y, batch_size=128, epochs=20, validation_data=(Xv, yv),
    ...                     early_stopping=5)
    """
    model._require_compiled("fit")
    _check_frozen(model)
    # every check comes before the first step: a mistake leaves the parameters as they were
    batch_size = _integer("batch_size", batch_size, 1)
    epochs = _integer("epochs", epochs, 0)
    initial_epoch = _integer("initial_epoch", initial_epoch, 0)
    try:  # shuffle="no" is a mistake, not a truthy value (verbose takes Keras's 0/1/2)
        flag("fit", "shuffle", shuffle)
    except TypeError as err:
        raise UserInputError(str(err)) from None
    callbacks = _callback_list(callbacks)
    if early_stopping is False:  # None, False: off; 0 is a patience
        early_stopping = None
    if early_stopping is not None:
        early_stopping = _integer("early_stopping", early_stopping, 0)
    arrays, validation = _training_and_validation(model, x, y, validation_data,
                                                  validation_split, sample_weight, class_weight)
    n, n_in = len(arrays[0]), len(model.inputs)
    # the weighted steps are compiled now, before any step: a failure changes nothing
    step = (function(model, "train", arrays[-1].ndim) if len(arrays) > n_in + 1
            else model.train_function)
    if validation is not None and len(validation) > n_in + 1:
        function(model, "test", validation[-1].ndim)
    _warn_single_example_batch(model, n, batch_size)

    history = History()
    if early_stopping is not None:
        callbacks.append(EarlyStopping(monitor="val_loss" if validation else "loss",
                                       patience=early_stopping, restore_best_weights=True))
    _check_monitors(model, callbacks, validation is not None)
    # History last, as Keras's callback list puts it: it records what the others add to
    # the logs (a user's callback logging the learning rate or a score)
    callbacks = [*callbacks, history]
    history.params = {"epochs": epochs, "batch_size": batch_size, "samples": n,
                      "validation_samples": 0 if validation is None else len(validation[0])}
    model.history = history
    train_x = arrays[0] if n_in == 1 else arrays[:n_in]
    # duck-typed callbacks (api.md: "on_epoch_end(epoch, logs)") may lack any other hook
    _call(callbacks, "set_model", model)
    _call(callbacks, "set_training_data", train_x, arrays[n_in])
    model.stop_training = False
    bar = _ProgressBar(progress, n)
    # the model's stream goes on from its last fit: fit(epochs=1) in a loop got the same
    # order every epoch. initial_epoch (resuming a loaded model) starts it anew, skipping
    # the epochs done, so the shuffles are an uninterrupted run's
    rng = model._shuffles if initial_epoch == 0 else None
    if rng is None:
        rng = np.random.default_rng([model.seed, 0x5F17])
        for _ in range(initial_epoch):
            rng.permutation(n)
    model._shuffles = rng
    chunk = 8
    most = max(1, -(-n // batch_size))  # batches an epoch: no call needs more
    trained = [var for var, _ in step.updates]
    undo = sum(math.prod(var.shape) * var.dtype.itemsize for var in trained) <= UNDO_BYTES
    gather = _Gather()
    _call(callbacks, "on_train_begin", {})
    try:
        for epoch in range(initial_epoch, epochs):
            _call(callbacks, "on_epoch_begin", epoch, {})
            start = time.perf_counter()
            order = rng.permutation(n) if shuffle else None
            totals = np.zeros(len(model.metrics_names))
            counted = np.zeros(len(model.metrics_names))
            bar.start(epoch, epochs)
            # what a diverged epoch restores
            saved = [var.get_value() for var in trained] if undo else None
            done = 0
            while done < n:
                stop = min(n, done + chunk * batch_size)
                part = slice(done, stop)
                batch = ([a[part] for a in arrays] if order is None
                         else gather.take(arrays, order[part]))
                tick = time.perf_counter()
                with _hold_interrupts():
                    steps = step.epoch(*batch, batch_size=batch_size)
                elapsed = time.perf_counter() - tick
                weights = batch_weights(model, batch[n_in], batch_size,
                                        *batch[n_in + 1:], steps=steps)
                totals += weighted_sums(steps, weights)
                counted += weights.sum(axis=1)
                done = stop
                bar.update(done, weighted_means(totals[:1], counted[:1])[0])
                chunk = _next_chunk(chunk, elapsed, most)
                if not math.isfinite(totals[0]):  # the rest of the epoch cannot recover
                    break
            logs = dict(zip(model.metrics_names, weighted_means(totals, counted)))
            if not math.isfinite(logs["loss"]):
                bar.close()
                for var, value in zip(trained, saved or ()):
                    var.set_value(value)
                if counted[0] == 0:  # (a padding mask on the output False everywhere)
                    raise UserInputError("fit: every position of the training data is padding "
                                         "(the model output's padding mask is False at all of "
                                         "them): there is nothing to train on")
                # on_train_end (below) then puts early stopping's best parameters back
                best = [cb.best_epoch for cb in callbacks if isinstance(cb, EarlyStopping)
                        and cb.restore_best_weights and cb.best_weights is not None]
                restored = (f"; the parameters then restored are epoch {best[-1] + 1}'s, "
                            "early stopping's best" if best else "")
                state = (f"The parameters and the optimizer state are back at the start of "
                         f"epoch {epoch + 1}" if undo else "The parameters hold that epoch's "
                         f"values (a model over {UNDO_BYTES >> 20} MiB is not copied at "
                         "each epoch's start to undo one)")
                raise TrainingDiverged(
                    f"fit: the training loss became {logs['loss']} in epoch {epoch + 1}; "
                    "lower the learning rate (the data itself holds no NaN/inf: fit checked "
                    f"it before training). {state}{restored}", epoch=epoch, restored=undo)
            if validation is not None:
                for name, value in model.evaluate(validation[:n_in], validation[n_in],
                                                  sample_weight=(validation[n_in + 1:]
                                                                 or [None])[0]).items():
                    logs[f"val_{name}"] = value
            logs["time"] = time.perf_counter() - start
            bar.finish(logs)
            if verbose and not bar.enabled:
                print(_epoch_line(epoch, epochs, logs), flush=True)
            model.optimizer.on_epoch_end(epoch, logs)
            _call(callbacks, "on_epoch_end", epoch, logs)
            if model.stop_training:
                break
    finally:
        bar.close()
        _call(callbacks, "on_train_end", {})
    return history


#: what fit calls on a callback (a duck-typed one may have any of them)
HOOKS = ("set_model", "set_training_data", "on_train_begin", "on_epoch_begin",
         "on_epoch_end", "on_train_end")


def _callback_list(callbacks) -> list:
    """``callbacks`` as a list (read once: a generator is read here), each one an object with
    at least one of fit's ``HOOKS``: ``callbacks="tensorboard"`` was read as eleven
    characters, and a function, ``None`` or a Keras callback with only batch hooks was
    skipped, each one silently."""
    if callbacks is None:  # Keras's default
        return []
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
        got = (repr(callbacks) if isinstance(callbacks, (str, bytes, int, float))
               else f"one {type(callbacks).__name__}")
        raise UserInputError(f"fit: callbacks takes a list of callback objects, got {got}"
                             + ("; pass it in a list: callbacks=[...]"
                                if any(hasattr(callbacks, hook) for hook in HOOKS) else ""))
    callbacks = list(callbacks)
    for k, cb in enumerate(callbacks):
        if isinstance(cb, type):  # callbacks=[History]: its hooks would be called unbound
            raise UserInputError(f"fit: callbacks takes callback objects, got the class "
                                 f"{cb.__name__}; pass {cb.__name__}(...)")
        if not any(callable(getattr(cb, hook, None)) for hook in HOOKS):
            hint = (" (a function? wrap it: fe.callbacks.LambdaCallback(on_epoch_end=...))"
                    if callable(cb) else "")
            raise UserInputError(f"fit: callbacks[{k}] is {cb!r}, which has none of the "
                                 f"hooks fit calls ({', '.join(HOOKS)}){hint}")
    return callbacks


def _call(callbacks: list, hook: str, *args) -> None:
    """``hook(*args)`` on every callback that has it."""
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is not None:
            method(*args)


def _check_frozen(model) -> None:
    """The layers' ``trainable`` flags are those ``compile`` built the step for: a layer
    frozen or unfrozen since would otherwise train as before, without a word."""
    updated = model.train_graph[2]  # (the step's updates, by variable)
    for layer in model.layers:
        if (any(var not in updated for var in layer.trainable_weights) if layer.trainable
                else any(var in updated for var in layer.weights)):
            raise UserInputError(
                f"fit: layer {layer.name} was {'un' if layer.trainable else ''}frozen "
                f"(trainable = {layer.trainable}) after compile, which built the training "
                "step; call model.compile(...) again to train with it")


def _integer(name: str, value, low: int, what: str = "fit") -> int:
    """An int argument >= ``low``, as ``config.integer`` takes them (an integral float such
    as 30.0 is fine); 2.5 or True is a mistake to report, not a value to truncate."""
    try:
        return integer(what, name, value, lo=low)
    except (TypeError, ValueError):
        kind = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise UserInputError(f"{what}: {name} must be {kind}, got {value!r}") from None


def _warn_single_example_batch(model, n: int, batch_size: int) -> None:
    """A minibatch of one example through a batch norm whose units hold one value each
    (features, not image channels) normalises every unit to ``beta`` and pulls its
    running variance towards 0: torch refuses such a batch, Keras trains on it; warn."""
    if not (batch_size == 1 or n % batch_size == 1):
        return
    flat = [layer.name for layer in model.layers
            if getattr(layer, "values_per_example", None) == 1]
    if flat:
        where = "every minibatch holds" if batch_size == 1 else "the last minibatch holds"
        warnings.warn(f"fit: {where} 1 example ({n} examples, batch_size {batch_size}): "
                      f"batch norm layer {flat[0]!r} turns it into its beta and pulls its "
                      "running variance towards 0; choose a batch_size that leaves at "
                      "least 2", UserWarning, stacklevel=3)


def evaluate(model, x, y, batch_size: int = 256, sample_weight=None) -> dict[str, float]:
    """``model.evaluate``: the loss and metrics over ``(x, y)`` in inference mode, each the
    figure over the whole data at any batch size; ``sample_weight`` weighs the loss and
    the ``weighted_metrics`` as fit's does."""
    model._require_compiled("evaluate")
    batch_size = _integer("batch_size", batch_size, 1, "evaluate")
    arrays = model._arrays(x, y, "evaluate")
    if len(arrays[0]) == 0:
        raise UserInputError("evaluate: no examples")
    model._check_finite(arrays, "evaluate")  # a NaN row made the loss NaN, not an error
    test, weights = model.test_function, None
    if sample_weight is not None:
        weights = checked(model, arrays[-1], sample_weight, "evaluate")
        test = function(model, "test", weights.ndim)
        arrays.append(weights)
    steps = test.epoch(*arrays, batch_size=batch_size)
    per_batch = batch_weights(model, arrays[len(model.inputs)], batch_size, weights, steps)
    means = weighted_means(weighted_sums(steps, per_batch), per_batch.sum(axis=1))
    return dict(zip(model.metrics_names, means))


def _training_and_validation(model, x, y, validation_data, validation_split: float,
                             sample_weight=None, class_weight=None
                             ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """The training arrays and the validation arrays (or None), every one checked against
    the model (shapes, dtypes, labels, NaN/inf) on the user's whole arrays, so rows in
    messages are the user's rows: the inputs, the targets, then the sample weights if
    any (``class_weight``'s, for training only, as Keras)."""
    arrays = model._arrays(x, y, "fit")
    model._check_finite(arrays, "fit")
    total = len(arrays[0])
    if sample_weight is not None and class_weight is not None:
        raise UserInputError("fit: pass sample_weight or class_weight, not both (Keras "
                             "refuses both too); to combine them, multiply the class "
                             "weights of y's labels into sample_weight")
    weights, label = None, "class_weight" if class_weight is not None else "sample_weight"
    if class_weight is not None:
        weights = class_weights(model, arrays[-1], class_weight)
    if weights is not None or sample_weight is not None:  # shape, NaN, sign
        weights = checked(model, arrays[-1], sample_weight if weights is None else weights,
                          "fit", label)
    validation = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise UserInputError("fit: validation_data is (x, y) or (x, y, sample_weight)")
        what = "fit (validation_data)"
        validation = model._arrays(*validation_data[:2], what)
        model._check_finite(validation, what)
        if len(validation[0]) == 0:
            raise UserInputError("fit: validation_data has no examples")
        if len(validation_data) == 3 and validation_data[2] is not None:
            validation.append(checked(model, validation[-1], validation_data[2], what,
                                      "the sample weights (validation_data[2])"))
    elif validation_split:
        if not 0.0 < validation_split < 1.0:
            raise UserInputError(f"fit: validation_split must be in (0, 1), got "
                                 f"{validation_split}")
        held_out = int(round(total * validation_split))
        if held_out == 0:
            raise UserInputError(
                f"fit: validation_split={validation_split} of {total} examples rounds to 0 "
                "validation examples; use a larger split, or validation_data=(x, y)")
        cut = total - held_out
        validation = [a[cut:] for a in arrays]
        arrays = [a[:cut] for a in arrays]
        if cut == 0:
            raise UserInputError(f"fit: validation_split={validation_split} of {total} "
                                 "examples leaves no training examples")
        n_in = len(model.inputs)
        check_scored(f"fit (the first {cut} examples, for training)", model.loss, arrays[n_in])
        check_scored(f"fit (the last {held_out} examples, held out by validation_split="
                     f"{validation_split})", model.loss, validation[n_in])
        if weights is not None:  # split with x and y, each part weighing something
            if sample_weight is not None:  # (class weights weigh training only, as Keras)
                validation.append(checked(model, validation[n_in], weights[cut:], f"fit (the "
                                          f"last {held_out} examples, held out by "
                                          "validation_split)"))
            weights = checked(model, arrays[n_in], weights[:cut], f"fit (the first {cut} "
                              "examples, for training)", label)
    if weights is not None:
        arrays.append(weights)
    if len(arrays[0]) == 0:
        raise UserInputError("fit: no training examples")
    return arrays, validation


def _check_monitors(model, callbacks: list, validated: bool) -> None:
    """What the schedule, early stopping and best-only checkpoints watch will be logged:
    checked before training, not found missing after the first epoch.  A watcher after a
    callback of the user's own is left alone: that callback may add the key to the logs."""
    logged = list(model.metrics_names) + ["time"]
    if validated:
        logged += [f"val_{name}" for name in model.metrics_names]
    watchers = [(f"the learning-rate schedule ({type(model.optimizer.schedule).__name__})",
                 getattr(model.optimizer.schedule, "monitor", None))]
    for cb in callbacks:
        if isinstance(cb, ModelCheckpoint):
            # a path naming a value that is not logged failed only after the first epoch
            # had changed the weights: filled in now with stand-ins of the logged values
            path = cb.path_for(0, dict.fromkeys(logged, 0.0))
            problem = folder_problem(os.path.dirname(os.path.abspath(path)))
            if problem:
                raise UserInputError(f"fit: ModelCheckpoint cannot write {cb.path!r}: "
                                     f"{problem}")
        if isinstance(cb, EarlyStopping) or (isinstance(cb, ModelCheckpoint)
                                             and cb.save_best_only):
            watchers.append((type(cb).__name__, cb.monitor))
        elif not type(cb).__module__.startswith("frontends."):
            break  # a user's callback: what it logs is only known once it runs
    for who, monitor in watchers:
        if not isinstance(monitor, str) or monitor in logged:
            continue
        if monitor.startswith("val_") and monitor[4:] in logged and not validated:
            raise UserInputError(f"fit: {who} watches {monitor!r}, which needs "
                                 "validation_data or validation_split")
        raise UserInputError(f"fit: {who} watches {monitor!r}, which is not logged"
                             f"{suggest(monitor, logged)}; logged: {', '.join(logged)}")


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


def _next_chunk(chunk: int, elapsed: float, most: int) -> int:
    """Batches per native call so one call takes about ``TARGET_CHUNK_SECONDS``, at most
    ``most`` (an epoch's): an uncapped count of a small data set's quick epochs grew 4x a
    call and overflowed a float after ~500 epochs."""
    if elapsed <= 0:
        return min(most, chunk * 2)
    ideal = chunk * TARGET_CHUNK_SECONDS / elapsed
    return int(max(1, min(most, chunk * 4, ideal)))


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
