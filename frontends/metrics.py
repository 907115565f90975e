"""Metrics reported during training: accuracy, top-k accuracy, binary accuracy, and for
regression the mean absolute and squared errors (``"mae"``, ``"mse"``).

``Model.compile(metrics=[...])`` builds each metric's graph next to the loss
(same outputs, same targets) so the compiled step returns it with the loss;
``fit`` and ``evaluate`` report it under ``metric.name``. A metric is a
scalar, the mean over the batch (of a 0/1 score per example), in the
outputs' float dtype; it has no gradient and is never differentiated.
Under a loss's ``ignore_index`` the label metrics (accuracy, top-k) are
the mean over the examples whose label is not ignored, as the loss is. They take
integer labels, or the one-hot (soft) rows ``categorical_crossentropy`` takes, whose
largest class is the label (Keras's ``categorical_accuracy``); with a class per position
(outputs (batch, ..., classes)) they score every position.
``compile(weighted_metrics=...)`` builds them with fit's and evaluate's sample weights too:
Keras's weighted mean ``sum(w v) / sum(w)`` (``frontends.weighting``); ``metrics`` are never
weighted (as Keras's). A padding mask on the model's output (``mask``) leaves the padded
positions out of both, as Keras 3's ``MeanMetricWrapper`` weighs by ``sample_weight * mask``.

Outputs are logits (the last layer's pre-activation), as for the losses; a model whose
last layer is a softmax (sigmoid, for binary accuracy) is read through it, as the
probability-taking losses read it: thresholds and ties are the logits' (a confident float32
softmax rounds every other class to exactly 0, a tie that made top-k count them all). The
error metrics score the outputs as they are (a sigmoid autoencoder's pixels).

>>> acc = metrics.get("top_3_accuracy")(logits, y)
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import symgraph as sg
from frontends import weighting
from frontends.config import ConfigValue, number, resolve
from frontends.errors import UserInputError
from frontends.loss_checks import (
    _activation_input,
    _as_variable,
    _check_class_scores,
    _check_same_shape,
    _is_float,
    _label_scores,
    _rows,
)

__all__ = ["Accuracy", "BinaryAccuracy", "MeanAbsoluteError", "MeanSquaredError", "Metric",
           "TopKAccuracy", "get"]


class Metric(ConfigValue):
    """``metric(outputs, targets)``: scalar mean over the batch, in the outputs' dtype."""

    kind = "metric"
    name: str = ""
    #: scores integer class labels, so a loss's ``ignore_index`` applies to it
    labels: bool = False
    #: the output activation read through to its logits (``losses._activation_input``); None:
    #: the outputs as they are
    activation: str | None = "softmax"

    def __call__(self, outputs: sg.Variable, targets: sg.Variable,
                 ignore_index: int | None = None,
                 sample_weight: sg.Variable | None = None,
                 mask: sg.Variable | None = None) -> sg.Variable:
        """The metric of a batch (a graph node; compile it with the loss); a label metric
        given ``ignore_index`` averages over the examples whose label is not that value
        (NaN for a batch with none: ``fit`` and ``evaluate`` give such a batch no weight).
        ``sample_weight`` (batch,) or per position makes it Keras's weighted mean
        ``sum(w v) / sum(w)`` (``compile(weighted_metrics=...)``); ``mask`` (batch, length),
        the outputs' padding mask, multiplies the weights as 0/1 (Keras 3's
        ``MeanMetricWrapper.update_state``)."""
        outputs, targets = _as_variable(outputs, self.name), _as_variable(targets, self.name)
        w = _weights(sample_weight, mask, outputs, self.name)
        below = _activation_input(outputs, self.activation)
        if below is not None:
            outputs = below
        if not _is_float(outputs.dtype):
            raise TypeError(f"{self.name}: the model's outputs must be floats (logits), got "
                            f"{outputs.dtype.name}")
        if self.labels and targets.ndim >= 2 and _is_float(targets.dtype) and \
                targets.ndim == outputs.ndim and outputs.shape[-1] != 1:
            # one-hot (or soft) rows, as categorical_crossentropy takes: their largest
            # class is the label (Keras's categorical_accuracy)
            _check_same_shape(self.name, outputs, targets)
            targets = sg.argmax(targets, axis=-1)
        if self.labels and outputs.ndim > 2:  # a class per position: every position scored
            _check_class_scores(self.name, outputs, targets, positions=True)
            if w is not None:
                w = weighting.to_rows(w, targets, self.name)
            outputs, targets = _rows(outputs, targets)
        if ignore_index is None or not self.labels:
            correct = sg.cast(self._correct(outputs, targets), outputs.dtype)
            return sg.mean(correct) if w is None else \
                weighting.weighted_mean(correct, w, self.name)
        kept = sg.not_equal(targets, ignore_index)
        # an ignored label is scored as class 0 (it may be out of range), then not counted
        correct = self._correct(outputs, sg.where(kept, targets, 0))
        hits = sg.cast(sg.logical_and(correct, kept), outputs.dtype)
        if w is not None:  # an ignored label weighs 0
            kept_weights = weighting.expand(w, hits, self.name) * sg.cast(kept, outputs.dtype)
            return weighting.weighted_mean(hits, kept_weights, self.name)
        return sg.sum(hits) / sg.sum(sg.cast(kept, outputs.dtype))

    def _correct(self, outputs: sg.Variable, targets: sg.Variable) -> sg.Variable:
        """A boolean per example (per element for binary accuracy): counted as correct."""
        raise NotImplementedError

    def get_config(self) -> dict:
        """``{"type": ..., <constructor arguments>}``; ``get(config)`` rebuilds the metric."""
        return {"type": self.name}


class Accuracy(Metric):
    """Fraction of examples whose largest logit is at the integer label.

    Outputs (batch, classes), labels (batch,). Ties go to the first maximal
    class (``argmax``, as numpy and Keras), so an all-equal row is correct
    only for label 0. A single output column with 0/1 targets of its shape (a binary
    classifier's) is scored as :class:`BinaryAccuracy` scores it, still under the name
    ``accuracy``: what Keras's ``metrics=["accuracy"]`` does beside a binary loss.
    """

    name = "accuracy"
    labels = True

    def __call__(self, outputs, targets, ignore_index=None, sample_weight=None, mask=None):
        outputs, targets = _as_variable(outputs, self.name), _as_variable(targets, self.name)
        if outputs.ndim >= 2 and outputs.shape[-1] == 1 and targets.ndim == outputs.ndim:
            return BinaryAccuracy()(outputs, targets, sample_weight=sample_weight, mask=mask)
        return super().__call__(outputs, targets, ignore_index, sample_weight, mask)

    def _correct(self, outputs, targets):
        _check_class_scores(self.name, outputs, targets)
        return sg.equal(sg.argmax(outputs, axis=1), targets)


class TopKAccuracy(Metric):
    """Fraction of examples whose label's logit is among the ``k`` largest.

    Ties are resolved in the label's favour: a label is correct when fewer
    than ``k`` logits are *strictly* greater than its own (so all-equal logits
    count as correct, as ``tf.math.in_top_k`` does, whereas ``torch.topk``
    would break the tie by position). A NaN label logit is never correct.
    ``k >= classes`` is an error when the metric is built (``compile``): every example
    would count as correct, a 1.0 that says nothing.
    """

    labels = True

    def __init__(self, k: int = 5):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"TopKAccuracy: k must be an int >= 1, got {k!r}")
        self.k = k

    @property
    def name(self) -> str:
        return f"top_{self.k}_accuracy"

    def _correct(self, outputs, targets):
        classes = _check_class_scores(self.name, outputs, targets)
        if self.k >= classes:
            raise UserInputError(f"{self.name}: k = {self.k} but the model's outputs score "
                                 f"{classes} classes, so every example would count as correct; "
                                 f"use k < {classes} (top_1 is accuracy)")
        label_logit = _label_scores(outputs, targets)
        above = sg.sum(sg.cast(outputs > label_logit, "int64"), axis=1)
        not_nan = sg.equal(label_logit[:, 0], label_logit[:, 0])
        return sg.logical_and(above < self.k, not_nan)

    def get_config(self):
        return {"type": "top_k_accuracy", "k": self.k}


class BinaryAccuracy(Metric):
    """Fraction of elements whose thresholded logit matches the 0/1 target.

    Outputs are logits, so the prediction is 1 where ``logit > threshold``
    (default 0.0, i.e. probability > 0.5). A target counts as 1 where it is
    > 0.5, so soft or smoothed targets are rounded rather than never matching.
    Targets have the outputs' shape; the mean is over all elements.
    """

    name = "binary_accuracy"
    activation = "sigmoid"

    def __init__(self, threshold: float = 0.0):
        self.threshold = number("BinaryAccuracy", "threshold", threshold, lo=None)

    def _correct(self, outputs, targets):
        _check_same_shape(self.name, outputs, targets)
        if targets.dtype.kind == "b":
            positive = targets
        else:
            positive = targets > 0.5
        return sg.equal(outputs > self.threshold, positive)

    def get_config(self):
        return {"type": self.name, "threshold": self.threshold}


class _ErrorMetric(Metric):
    """Regression metrics: the mean over all elements of an error of the outputs against
    targets of their shape (no broadcasting), the outputs read as they are."""

    activation = None

    def __call__(self, outputs, targets, ignore_index=None, sample_weight=None, mask=None):
        outputs, targets = _as_variable(outputs, self.name), _as_variable(targets, self.name)
        if not _is_float(outputs.dtype):
            raise TypeError(f"{self.name}: the model's outputs must be floats, got "
                            f"{outputs.dtype.name}")
        _check_same_shape(self.name, outputs, targets)
        error = self._error(outputs - sg.cast(targets, outputs.dtype))
        w = _weights(sample_weight, mask, outputs, self.name)
        return sg.mean(error) if w is None else weighting.weighted_mean(error, w, self.name)

    def _error(self, difference: sg.Variable) -> sg.Variable:
        raise NotImplementedError


class MeanAbsoluteError(_ErrorMetric):
    """Mean over all elements of ``|outputs - targets|`` (Keras's ``"mae"``)."""

    name = "mae"

    def _error(self, difference):
        return sg.abs(difference)


class MeanSquaredError(_ErrorMetric):
    """Mean over all elements of ``(outputs - targets)^2`` (Keras's ``"mse"``)."""

    name = "mse"

    def _error(self, difference):
        return sg.square(difference)


def _weights(sample_weight, mask, outputs: sg.Variable, who: str) -> sg.Variable | None:
    """The sample weights times the padding mask (either may be None), in the outputs'
    float dtype."""
    w = None if sample_weight is None else _as_variable(sample_weight, who)
    dtype = outputs.dtype if _is_float(outputs.dtype) else "float64"
    return weighting.combine(w, None if mask is None else _as_variable(mask, who), dtype, who)


_TOP_K = re.compile(r"top_(\d+)_accuracy")

_REGISTRY = {
    "accuracy": Accuracy, "acc": Accuracy, "Accuracy": Accuracy,
    "top_k_accuracy": TopKAccuracy, "TopKAccuracy": TopKAccuracy,
    "binary_accuracy": BinaryAccuracy, "BinaryAccuracy": BinaryAccuracy,
    # Keras's names; logged as "mae" and "mse" whichever is given
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "MeanAbsoluteError": MeanAbsoluteError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "MeanSquaredError": MeanSquaredError,
}


def get(identifier: str | Mapping | Metric) -> Metric:
    """The metric named by ``identifier``: a name, a config dict or a ``Metric``.

    Names: ``"accuracy"``, ``"binary_accuracy"``, ``"top_k_accuracy"`` (k=5),
    ``"top_<k>_accuracy"`` for any k (``"top_3_accuracy"``), ``"mae"`` and ``"mse"``. Unknown
    names and arguments raise ``ValueError`` listing the valid ones.
    """
    if isinstance(identifier, str):
        match = _TOP_K.fullmatch(identifier)
        if match:
            return TopKAccuracy(int(match.group(1)))
    return resolve(identifier, _REGISTRY, Metric)


def get_all(identifiers) -> list[Metric]:
    """``get`` of each of ``identifiers`` (None: no metrics); two that report under one name
    (``["mae", "mean_absolute_error"]``) are refused: the history would hold one of them
    under that name and silently drop the other."""
    if isinstance(identifiers, (str, Mapping, Metric)):  # one metric, not its characters
        identifiers = [identifiers]
    found = [get(m) for m in (identifiers or [])]
    names = [m.name for m in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"metrics: {twice[0]!r} is given twice (the names "
                         f"{[i if isinstance(i, str) else type(i).__name__ for i in identifiers]}"
                         f" report as {names})")
    return found
