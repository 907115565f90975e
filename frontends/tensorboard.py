"""TensorBoard logging for ``fit``: the ``TensorBoard`` callback (``symgraph[tensorboard]``).

Learning curves, the learning rate and histograms of the weights and their
gradients, written as TensorBoard event files by ``tensorboardX`` (a small
writer: numpy + protobuf), so ``tensorboard --logdir LOG_DIR`` shows a run
while it trains.

Layout, as Keras's callback, plus one directory per run so repeated runs never
write into each other's files::

    LOG_DIR/<run>/train         loss, metrics, learning rate, time, histograms
    LOG_DIR/<run>/validation    the val_* values (only when there are any)

``<run>`` is the local start time of the callback's first ``fit``
(``20261201-045600``, with ``-2``, ``-3``... if that directory exists); a later
``fit`` with the same callback (``initial_epoch=``) continues the same run.

Tags (Keras's, so TensorBoard overlays training and validation curves of a tag):

* ``epoch_<key>`` for every value ``fit`` logs: ``loss`` and each metric in
  ``train``, ``val_<key>`` as ``epoch_<key>`` in ``validation``, ``epoch_time``
  (seconds) in ``train``;
* ``epoch_learning_rate``: the effective learning rate the optimizer holds after
  the epoch (the rate of the next step: in-graph schedules evaluated at the
  step count, host-side ones such as ``ReduceOnPlateau`` after their epoch hook);
* ``weights/<weight name>`` histograms of every model weight and
  ``gradients/<weight name>`` histograms of each trainable weight's gradient
  on a fixed probe batch of the training data (``frontends.diagnostics.Probe``),
  every ``histogram_every`` epochs from the first.

The step of every value is the epoch, 0-based as ``History.epoch``.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

import symgraph as sg
from frontends.callback_base import Callback
from frontends.diagnostics import Probe

INSTALL_HINT = "pip install 'symgraph[tensorboard]'"


def _summary_writer_class():
    """tensorboardX's ``SummaryWriter``, or an ImportError saying how to install it."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError as err:
        raise ImportError(f"TensorBoard logging needs the tensorboardX package: {INSTALL_HINT}"
                          ) from err
    return SummaryWriter


class TensorBoard(Callback):
    """Write the epoch's logged values, learning rate and weight/gradient histograms as
    TensorBoard event files under ``log_dir/<run>/{train,validation}``.

    ``histograms=False`` writes scalars only; ``histogram_every=k`` writes histograms
    every ``k``-th epoch (epochs 0, k, 2k, ...: histograms cost a copy of every weight
    and a gradient evaluation). Needs tensorboardX: without it the constructor raises
    ImportError with the install command.

    >>> model.fit(X, y, epochs=20, validation_data=(Xv, yv),
    ...           callbacks=[fe.callbacks.TensorBoard("logs")])
    >>> # then: tensorboard --logdir logs
    """

    def __init__(self, log_dir: str | os.PathLike, *, histograms: bool = True,
                 histogram_every: int = 1):
        if not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(log_dir):
            raise TypeError(f"TensorBoard: log_dir must be a directory path, got {log_dir!r}")
        if os.path.exists(log_dir) and not os.path.isdir(log_dir):
            raise ValueError(f"TensorBoard: log_dir {os.fspath(log_dir)!r} is a file, not a "
                             "directory")
        if not isinstance(histograms, (bool, np.bool_)):
            raise TypeError(f"TensorBoard: histograms must be True or False, got {histograms!r}")
        if (isinstance(histogram_every, (bool, np.bool_))
                or not isinstance(histogram_every, (int, np.integer)) or histogram_every < 1):
            raise ValueError(f"TensorBoard: histogram_every must be a positive integer (every "
                             f"how many epochs), got {histogram_every!r}")
        self._writer_class = _summary_writer_class()  # fail now, not after the first epoch
        self.log_dir = os.fspath(log_dir)
        self.histograms = bool(histograms)
        self.histogram_every = int(histogram_every)
        #: ``log_dir/<run>``, chosen when training first starts
        self.run_dir: str | None = None
        self._writers: dict[str, object] = {}
        self._files_opened = 0
        self._learning_rate = None
        self._probe = None

    # -- fit's hooks
    def on_train_begin(self, logs):
        if self.run_dir is None:
            self.run_dir = _new_run_dir(self.log_dir)
        self._learning_rate = _learning_rate_function(self.model)
        self._probe = None  # built on first use, from this fit's training data

    def on_epoch_end(self, epoch, logs):
        for key, value in logs.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue  # another callback's note that is not a number (History skips it)
            split, name = (("validation", key[4:]) if key.startswith("val_")
                           else ("train", key))
            self._writer(split).add_scalar(f"epoch_{name}", value, epoch)
        if self._learning_rate is not None:
            self._writer("train").add_scalar("epoch_learning_rate",
                                             float(self._learning_rate()), epoch)
        if self.histograms and epoch % self.histogram_every == 0:
            self._write_histograms(epoch)
        for writer in self._writers.values():  # a live TensorBoard sees every finished epoch
            writer.flush()

    def on_train_end(self, logs):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
        self._probe = None

    # -- parts
    def _writer(self, split: str):
        if split not in self._writers:
            # tensorboardX names a file by the second it was opened and truncates an existing
            # one: a later fit's file needs its own name, sorting after the earlier ones
            self._files_opened += 1
            self._writers[split] = self._writer_class(
                os.path.join(self.run_dir, split), filename_suffix=f".{self._files_opened:03d}")
        return self._writers[split]

    def _write_histograms(self, epoch: int) -> None:
        writer = self._writer("train")
        for weight in self.model.weights:
            _histogram(writer, f"weights/{weight.name}", weight.get_value(), epoch)
        for name, gradient in self._gradients().items():
            _histogram(writer, f"gradients/{name}", gradient, epoch)

    def _gradients(self) -> dict[str, np.ndarray]:
        """Each trainable weight's gradient on the probe batch (no parameter changes)."""
        if not self.model.trainable_weights:
            return {}
        if self._probe is None:
            data = getattr(self, "training_data", None)
            if data is None:
                return {}
            self._probe = Probe(self.model, *data)
        return self._probe.gradients()


def _new_run_dir(log_dir: str) -> str:
    """``log_dir/<start time>``, created here; a suffix when that run exists already."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(log_dir, exist_ok=True)
    for attempt in range(1, 1000):
        path = os.path.join(log_dir, stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            os.mkdir(path)  # atomic: two callbacks started in the same second get two runs
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"TensorBoard: {log_dir} already holds 999 runs named {stamp}*")


def _learning_rate_function(model):
    """A no-argument function returning the optimizer's current effective learning rate,
    or None when there is none (a model without trainable weights builds no optimizer
    state)."""
    optimizer = getattr(model, "optimizer", None)
    effective = getattr(optimizer, "effective_lr", None)
    if effective is None:
        return None
    # the in-graph schedule's expression of the lr and step-count shared variables,
    # evaluated by the numpy reference: nothing to compile
    return sg.function([], effective, backend="numpy")


def _histogram(writer, tag: str, values: np.ndarray, step: int) -> None:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = np.isfinite(values)
    if not finite.all():
        warnings.warn(f"TensorBoard: {tag} has {int((~finite).sum())} non-finite entries "
                      f"of {values.size} at epoch {step}; the histogram shows the finite ones",
                      RuntimeWarning, stacklevel=3)
        values = values[finite]
    if values.size:
        writer.add_histogram(tag, values, step)
