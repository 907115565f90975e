"""Training losses: objects that turn a model's output and its targets into a scalar cost.

``Model.compile(loss=...)`` takes a name, a config dict or a ``Loss``; it asks
the loss for the targets' graph input (``loss.target(outputs)``), builds
``loss(outputs, targets)`` and differentiates it with ``sg.grad``. Every loss
is a composition of stable symgraph ops (log-softmax, softplus, ...) so it
stays finite and differentiable (twice) for extreme logits, and it checks the
shapes it is given while the graph is built: a (batch, 1) output against
(batch,) targets would otherwise broadcast to (batch, batch) and train on
nonsense without a word.

Every loss is the mean over the batch; see each class for what is summed or
averaged within one example (Keras' and PyTorch's conventions, noted where
they differ).

>>> loss = losses.get("cross_entropy")
>>> y = loss.target(logits)                 # ("batch",) int64 graph input
>>> cost = loss(logits, y)                   # scalar, logits' dtype
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

import symgraph as sg
from frontends import weighting
from frontends.config import ConfigValue, flag, number, resolve
from frontends.loss_checks import (
    _as_variable,
    _check_class_outputs,
    _check_class_scores,
    _check_same_shape,
    _dims_clash,
    _is_float,
    _label_scores,
    _label_target,
    _logits,
    _rows,
)
from symgraph import shapes as sh

__all__ = ["BinaryCrossEntropy", "CrossEntropy", "GaussianNLL", "Hinge", "Loss",
           "MeanAbsoluteError", "MeanSquaredError", "get"]


class Loss(ConfigValue):
    """A training loss: ``loss(outputs, targets)`` is a scalar, the mean over the batch.

    Subclasses set ``name`` (the string ``get`` knows them by), implement
    ``_build`` (after the shared argument checks) and ``target``, and list
    their constructor arguments in ``get_config`` (which also gives ``repr``,
    ``==`` and ``hash``).
    """

    kind = "loss"
    name: str = ""
    #: (low, high) every target must lie in, checked on the data before training; None: any
    target_range: tuple[float, float] | None = None

    def __call__(self, outputs: sg.Variable, targets: sg.Variable,
                 sample_weight: sg.Variable | None = None,
                 mask: sg.Variable | None = None) -> sg.Variable:
        """The scalar loss (in ``outputs``' dtype) of a batch of outputs against targets;
        ``sample_weight`` (batch,) or per position: Keras's ``sum(w l) / N``; ``mask``, the
        outputs' padding mask (batch, length): the padded positions left out of the values
        and of ``N``, as Keras 3's ``Loss.__call__`` (``frontends.weighting``)."""
        if sample_weight is None and mask is None:
            outputs, targets = self._outputs(outputs), _as_variable(targets, self.name)
            return self._build(outputs, targets)
        return self.parts(outputs, targets, sample_weight, mask)[0]

    def parts(self, outputs: sg.Variable, targets: sg.Variable,
              sample_weight: sg.Variable | None = None, mask: sg.Variable | None = None
              ) -> tuple[sg.Variable, sg.Variable]:
        """The loss of ``__call__`` built from ``terms``, and what its mean divides by (the
        count of positions, or of labels not ignored, holding data): ``fit`` weighs each
        batch's loss by it, so an epoch's loss is the mean over all its positions."""
        outputs, targets = self._outputs(outputs), _as_variable(targets, self.name)
        weights = None if sample_weight is None else _as_variable(sample_weight, self.name)
        terms, counts = self.terms(outputs, targets)
        return weighting.weighted_loss(terms, counts, weights, self.name,
                                       None if mask is None else _as_variable(mask, self.name))

    def terms(self, outputs: sg.Variable, targets: sg.Variable
              ) -> tuple[sg.Variable, sg.Variable | None]:
        """The loss before its mean: values per example (batch,) or per position (batch,
        ...), and what each counts in the count the mean divides by, of their shape (None:
        1 each; ``ignore_index``: 0 at an ignored label). Sample weights and a padding mask
        multiply these values; a loss without them cannot take either."""
        raise TypeError(f"loss {self.name or type(self).__name__!r} cannot take sample "
                        "weights or a padding mask: it defines no per-example values "
                        "(Loss.terms)")

    def _outputs(self, outputs) -> sg.Variable:
        outputs = _as_variable(outputs, self.name)
        if not _is_float(outputs.dtype):
            raise TypeError(f"{self.name}: the model's outputs must be floats, "
                            f"got {outputs.dtype.name}")
        return outputs

    def _build(self, outputs: sg.Variable, targets: sg.Variable) -> sg.Variable:
        raise NotImplementedError

    def target(self, outputs: sg.Variable, name: str = "y") -> sg.Variable:
        """A new graph input for the targets, shaped for this loss given the model's output."""
        raise NotImplementedError

    def label_classes(self, outputs: sg.Variable) -> int | None:
        """How many classes integer labels index (their valid range is ``[0, classes)``),
        or None for a loss without class labels; ``fit`` checks the labels against it."""
        return None

    #: a label value the loss skips (not range-checked); None: every label counts
    ignore_index: int | None = None

    def example_weights(self, y: np.ndarray) -> np.ndarray | None:
        """What each target (each label) weighs in the loss's mean, when that is not one
        per example (class weights, ``ignore_index``): a float64 array shaped like ``y``,
        or None. ``fit`` and ``evaluate`` average minibatch losses with these sums."""
        if self.ignore_index is None:
            return None
        return (np.asarray(y) != self.ignore_index).astype(np.float64)

    def get_config(self) -> dict:
        """``{"type": name, <constructor arguments>}``; ``get(config)`` rebuilds the loss."""
        return {"type": self.name}


# --------------------------------------------------------------------------- the losses


class CrossEntropy(Loss):
    """Softmax cross-entropy from logits (batch, classes) and integer labels (batch,).

    ``mean_i [logsumexp(z_i) - z_i[y_i]]``, through ``sg.nn.cross_entropy``
    (log-softmax with a max shift: finite for any finite logits). Equals
    ``torch.nn.functional.cross_entropy`` and Keras'
    ``SparseCategoricalCrossentropy(from_logits=True)``. ``label_smoothing`` and
    ``ignore_index`` as torch's (the mean is over the examples not ignored); ``weight``, one
    number per class, as torch's ``weight``: an example weighs its label's weight, and the
    mean is over those weights (to rebalance classes, e.g. ``N / (classes * count_c)``).

    A class per position -- outputs (batch, ..., classes), labels (batch, ...): a language
    model's next tokens, a tagger's tags -- is the same mean over every position (not
    ignored), as torch's ``cross_entropy`` on the flattened positions and Keras's sparse
    cross-entropy (``ignore_index`` skips labels; a padding mask on the model's output
    skips the padded positions, as Keras's: ``frontends.figures``).

    ``from_logits=False`` (what the Keras names ``sparse_categorical_crossentropy`` and
    ``categorical_crossentropy`` give) takes probabilities: the output of a softmax layer,
    read through its logits, as Keras does; a model whose output is anything else is
    refused when the loss is built.

    ``targets="probabilities"`` (what ``categorical_crossentropy`` gives, as in Keras)
    takes one-hot or soft targets of the outputs' shape (batch, [...,] classes), as torch's
    ``cross_entropy`` given class probabilities: ``mean_i -sum_c w_c t_ic log p_ic``, the
    mean over the examples (torch's rule for probabilities, weights or not); label
    smoothing mixes ``t`` with the uniform distribution first. ``ignore_index`` has no
    meaning there and is refused.
    """

    name = "cross_entropy"

    def __init__(self, label_smoothing: float = 0.0, ignore_index: int | None = None,
                 from_logits: bool = True, weight: Sequence[float] | None = None,
                 targets: str = "labels"):
        self.label_smoothing = number("CrossEntropy", "label_smoothing", label_smoothing,
                                      hi=1.0)
        if ignore_index is not None and (isinstance(ignore_index, bool)
                                         or not isinstance(ignore_index, (int, np.integer))):
            raise TypeError(f"CrossEntropy: ignore_index must be an int or None, got "
                            f"{ignore_index!r}")
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.from_logits = flag("CrossEntropy", "from_logits", from_logits)
        self.weight = None if weight is None else _class_weights(weight)
        if targets not in ("labels", "probabilities"):
            raise ValueError(f"CrossEntropy: targets must be 'labels' (integer class labels) "
                             f"or 'probabilities' (one-hot or soft rows), got {targets!r}")
        self.targets = targets
        if targets == "probabilities":
            if self.ignore_index is not None:
                raise ValueError("CrossEntropy: ignore_index applies to integer labels, not "
                                 "to targets='probabilities' (give a row of zeros instead)")
            self.target_range = (0.0, 1.0)

    def _checked(self, outputs, targets) -> int:
        """The shape and dtype checks of targets against outputs; -> classes."""
        if self.targets == "probabilities":
            _check_same_shape(self.name, outputs, targets)
            _check_class_outputs(self.name, outputs, positions=True)
            if not _is_float(targets.dtype):
                raise TypeError(f"{self.name}: targets='probabilities' takes float rows (one-hot "
                                f"or soft), got {targets.dtype.name}")
        else:
            _check_class_scores(self.name, outputs, targets, positions=True)
        classes = outputs.shape[-1]
        if self.weight is not None and len(self.weight) != classes:
            raise ValueError(f"CrossEntropy: weight has {len(self.weight)} entries, the model "
                             f"scores {classes} classes")
        return classes

    def _build(self, outputs, targets):
        classes = self._checked(outputs, targets)
        if self.targets == "probabilities":
            return self._soft(_logits(self, outputs, "softmax"), targets, classes)
        logits, targets = _rows(_logits(self, outputs, "softmax"), targets)
        return sg.nn.cross_entropy(logits, targets,
                                   label_smoothing=self.label_smoothing,
                                   ignore_index=self.ignore_index,
                                   weight=None if self.weight is None else np.array(self.weight))

    def _soft(self, logits: sg.Variable, targets: sg.Variable, classes: int) -> sg.Variable:
        return -sg.mean(self._soft_sums(logits, targets, classes))

    def _soft_sums(self, logits: sg.Variable, targets: sg.Variable, classes: int
                   ) -> sg.Variable:
        """``sum_c w_c t_c log p_c`` per row (batch, ...): minus each row's loss."""
        t = sg.cast(targets, logits.dtype)
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + self.label_smoothing / classes
        if self.weight is not None:
            t = t * np.array(self.weight, logits.dtype)
        return sg.sum(t * sg.nn.log_softmax(logits, axis=-1), axis=-1)

    def terms(self, outputs, targets):
        classes = self._checked(outputs, targets)
        logits = _logits(self, outputs, "softmax")
        if self.targets == "probabilities":  # torch's mean over the rows, weights or not
            return -self._soft_sums(logits, targets, classes), None
        weight = None if self.weight is None else np.array(self.weight, logits.dtype)
        rows, labels = _rows(logits, targets)
        values = sg.nn.cross_entropy(rows, labels, reduction="none",
                                     label_smoothing=self.label_smoothing,
                                     ignore_index=self.ignore_index, weight=weight)
        if targets.ndim > 1:  # back to a value per position, which weights broadcast over
            values = sg.reshape(values, (-1, *targets.shape[1:]))
        if self.ignore_index is None and weight is None:
            return values, None
        # what the unweighted mean divides by: the labels kept, or their class weights
        kept = None if self.ignore_index is None else sg.not_equal(targets, self.ignore_index)
        counted = (sg.cast(kept, logits.dtype) if weight is None else sg.sum(
            sg.nn.one_hot(targets if kept is None else sg.where(kept, targets, 0), classes,
                       logits.dtype) * weight, axis=-1))
        if weight is not None and kept is not None:
            counted = sg.where(kept, counted, 0)
        return values, counted

    def example_weights(self, y):
        if self.weight is None or self.targets == "probabilities":
            return super().example_weights(y)
        y = np.asarray(y)
        keep = np.ones(y.shape, bool) if self.ignore_index is None else y != self.ignore_index
        return np.where(keep, np.array(self.weight)[np.where(keep, y, 0)], 0.0)

    def target(self, outputs, name="y"):
        if self.targets == "probabilities":
            outputs = self._outputs(outputs)
            _check_class_outputs(self.name, outputs, positions=True)
            return sg.tensor(name, shape=outputs.shape, dtype=outputs.dtype)
        return _label_target(self.name, self._outputs(outputs), name, positions=True)

    def label_classes(self, outputs):
        if self.targets == "probabilities":
            return None
        return _check_class_outputs(self.name, outputs, positions=True)

    def get_config(self):
        config = {"type": self.name}
        if self.targets != "labels":
            config["targets"] = self.targets
        if self.label_smoothing:
            config["label_smoothing"] = self.label_smoothing
        if self.ignore_index is not None:
            config["ignore_index"] = self.ignore_index
        if not self.from_logits:
            config["from_logits"] = False
        if self.weight is not None:
            config["weight"] = list(self.weight)
        return config


def _class_weights(weight) -> tuple[float, ...]:
    """CrossEntropy's ``weight``: finite numbers >= 0, at least one > 0."""
    if isinstance(weight, (Mapping, set, frozenset, str)):
        raise TypeError(f"CrossEntropy: weight must be a list of numbers, one per class in "
                        f"class order, got {weight!r} (a Keras class_weight dict "
                        "{0: 1.0, 1: 5.0} is [1.0, 5.0])")
    try:
        values = tuple(number("CrossEntropy", "weight", w) for w in weight)
    except TypeError:
        raise TypeError(f"CrossEntropy: weight must be a list of numbers, one per class, got "
                        f"{weight!r}") from None
    if not values or max(values) <= 0:
        raise ValueError(f"CrossEntropy: weight needs an entry > 0, got {list(values)}")
    return values


class _SameShapeLoss(Loss):
    """Elementwise losses: the targets have the outputs' shape and dtype (no broadcasting:
    ``(batch, 1)`` against ``(batch,)`` would silently become ``(batch, batch)``)."""

    def _build(self, outputs, targets):
        _check_same_shape(self.name, outputs, targets)
        return self._elementwise(outputs, targets)

    def _elementwise(self, outputs: sg.Variable, targets: sg.Variable) -> sg.Variable:
        raise NotImplementedError

    def _values(self, outputs: sg.Variable, targets: sg.Variable) -> sg.Variable:
        """The elementwise values ``_elementwise`` averages."""
        raise NotImplementedError

    def terms(self, outputs, targets):
        """Keras's: the values averaged over the last axis (one per example of (batch, k)
        outputs, one per position of (batch, length, k))."""
        _check_same_shape(self.name, outputs, targets)
        values = self._values(outputs, sg.cast(targets, outputs.dtype))
        return (sg.mean(values, axis=-1) if values.ndim > 1 else values), None

    def target(self, outputs, name="y"):
        outputs = self._outputs(outputs)
        return sg.tensor(name, shape=outputs.shape, dtype=outputs.dtype)


class BinaryCrossEntropy(_SameShapeLoss):
    """Sigmoid cross-entropy from logits; targets in [0, 1] with the outputs' shape.

    ``mean over all elements of softplus(z) - y z`` (= ``-y log s(z) - (1-y)
    log(1 - s(z))`` without ever computing ``log(0)``), as
    ``torch.nn.functional.binary_cross_entropy_with_logits``. Targets are cast
    to the outputs' dtype; soft targets are allowed.

    ``from_logits=False`` (the Keras name ``binary_crossentropy``) takes probabilities: a
    sigmoid layer's output, read through its logits (as Keras); other outputs are refused.
    """

    name = "binary_cross_entropy"
    target_range = (0.0, 1.0)

    def __init__(self, from_logits: bool = True):
        self.from_logits = flag("BinaryCrossEntropy", "from_logits", from_logits)

    def _elementwise(self, outputs, targets):
        return sg.nn.binary_cross_entropy(_logits(self, outputs, "sigmoid"), targets)

    def _values(self, outputs, targets):
        logits = _logits(self, outputs, "sigmoid")
        return sg.nn.softplus(logits) - targets * logits

    def get_config(self):
        return {"type": self.name} if self.from_logits else {"type": self.name,
                                                             "from_logits": False}


class MeanSquaredError(_SameShapeLoss):
    """Mean over all elements of ``(outputs - targets)^2`` (Keras and torch ``mse_loss``)."""

    name = "mse"

    def _elementwise(self, outputs, targets):
        return sg.nn.mse(outputs, targets)

    def _values(self, outputs, targets):
        return sg.square(outputs - targets)


class MeanAbsoluteError(_SameShapeLoss):
    """Mean over all elements of ``|outputs - targets|`` (torch ``l1_loss``).

    The gradient at an exact fit is 0 (the subgradient ``sign(0)``).
    """

    name = "mae"

    def _elementwise(self, outputs, targets):
        return sg.mean(sg.abs(outputs - sg.cast(targets, outputs.dtype)))

    def _values(self, outputs, targets):
        return sg.abs(outputs - targets)


class Hinge(Loss):
    """Multiclass SVM hinge loss (Weston-Watkins, as in cs231n), integer labels.

    ``mean_i sum_{j != y_i} max(0, s_ij - s_i,y_i + margin)``. The sum over
    classes is *not* divided by the number of classes, whereas
    ``torch.nn.functional.multi_margin_loss`` divides by it (ours = torch's
    times ``classes``). At a kink (a margin exactly met) the gradient is 0.
    """

    name = "hinge"

    def __init__(self, margin: float = 1.0):
        self.margin = number("Hinge", "margin", margin)

    def _build(self, outputs, targets):
        return sg.mean(self.terms(outputs, targets)[0])

    def terms(self, outputs, targets):
        _check_class_scores(self.name, outputs, targets)
        correct = _label_scores(outputs, targets)
        margins = sg.nn.relu(outputs - correct + self.margin)
        # the j == y term is max(0, margin) = margin for every example: subtract it exactly
        # rather than masking, so no label-shaped mask is needed on top of the gather
        return sg.sum(margins, axis=1) - self.margin, None

    def target(self, outputs, name="y"):
        return _label_target(self.name, self._outputs(outputs), name)

    def label_classes(self, outputs):
        return _check_class_outputs(self.name, outputs)

    def get_config(self):
        return {"type": self.name, "margin": self.margin}


class GaussianNLL(Loss):
    """Gaussian negative log-likelihood with a learned variance (heteroscedastic regression).

    Convention: the model's output has ``2k`` columns; the first ``k`` are the
    mean ``mu``, the last ``k`` the *log*-variance ``v`` (any real number, so
    the last layer needs no positivity constraint). Targets are (batch, k).

    ``loss = mean_i sum_k 0.5 (v_ik + (y_ik - mu_ik)^2 exp(-v_ik) + log(2 pi))``:
    the full negative log-density, summed over the ``k`` outputs of one
    example and averaged over the batch. ``torch.nn.functional.gaussian_nll_loss``
    differs in three ways: it takes the variance ``exp(v)``, drops the
    ``log(2 pi)`` term unless ``full=True``, and (``reduction="mean"``)
    averages over the ``k`` outputs too (ours = torch's, full, times ``k``).

    ``min_log_var`` (default None: the exact formula) clamps the log-variance
    from below in the forward pass only, so the value is torch's with
    ``eps = exp(min_log_var)``; the gradient passes through as if unclamped
    (straight-through, in ``v``: torch's passes through in the variance, a factor
    ``exp(v - min_log_var)`` apart on clamped entries), so a collapsing variance
    can still recover. Without it, ``exp(-v)`` overflows once ``v`` is below
    about -88 (float32) or -709 (float64).
    """

    name = "gaussian_nll"

    def __init__(self, min_log_var: float | None = None):
        if min_log_var is not None:
            min_log_var = number("GaussianNLL", "min_log_var", min_log_var, lo=None)
        self.min_log_var = min_log_var

    def _mean_columns(self, outputs) -> int:
        if outputs.ndim != 2:
            raise sh.ShapeError(f"{self.name}: the model's outputs must be (batch, 2k): k means "
                                f"then k log-variances, got shape "
                                f"{sh.format_shape(outputs.shape)}")
        width = outputs.shape[1]
        if not sh.is_fixed(width) or width % 2 or width == 0:
            raise sh.ShapeError(
                f"{self.name}: the model's outputs need a fixed, even, non-zero number of "
                f"columns (k means then k log-variances), got {sh.format_dim(width)}")
        return width // 2

    def _build(self, outputs, targets):
        return sg.mean(self.terms(outputs, targets)[0])

    def terms(self, outputs, targets):
        k = self._mean_columns(outputs)
        if targets.ndim != 2 or _dims_clash(targets.shape[0], outputs.shape[0]) or _dims_clash(
                targets.shape[1], k):
            raise sh.ShapeError(
                f"{self.name}: targets must be (batch, {k}) for outputs "
                f"{sh.format_shape(outputs.shape)} (k = {k} means, {k} log-variances), got "
                f"{sh.format_shape(targets.shape)}")
        targets = sg.cast(targets, outputs.dtype)
        mean, log_var = outputs[:, :k], outputs[:, k:]
        if self.min_log_var is not None:
            clamped = sg.maximum(log_var, self.min_log_var)
            log_var = log_var + sg.stop_gradient(clamped - log_var)
        nll = 0.5 * (log_var + sg.square(targets - mean) * sg.exp(-log_var)
                     + math.log(2 * math.pi))
        return sg.sum(nll, axis=1), None

    def target(self, outputs, name="y"):
        outputs = self._outputs(outputs)
        k = self._mean_columns(outputs)
        return sg.tensor(name, shape=(outputs.shape[0], k), dtype=outputs.dtype)

    def get_config(self):
        return {"type": self.name, "min_log_var": self.min_log_var}


_REGISTRY: dict[str, Callable[..., Loss]] = {
    "cross_entropy": CrossEntropy,
    # the Keras names take a softmax layer's probabilities, and targets as in Keras:
    # one-hot (or soft) rows for categorical_crossentropy, integer labels for the sparse one
    "categorical_crossentropy": functools.partial(CrossEntropy, from_logits=False,
                                                  targets="probabilities"),
    "sparse_categorical_crossentropy": functools.partial(CrossEntropy, from_logits=False),
    "binary_cross_entropy": BinaryCrossEntropy,
    "binary_crossentropy": functools.partial(BinaryCrossEntropy, from_logits=False),
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "hinge": Hinge,
    "gaussian_nll": GaussianNLL,
}
_REGISTRY.update({cls.__name__: cls for cls in (
    CrossEntropy, BinaryCrossEntropy, MeanSquaredError, MeanAbsoluteError, Hinge, GaussianNLL)})


def get(identifier: str | Mapping | Loss) -> Loss:
    """The loss named by ``identifier``: a name (``"mse"``), a config dict or a ``Loss``.

    Unknown names and arguments raise ``ValueError`` listing the valid ones.

    >>> get({"type": "hinge", "margin": 2.0})
    Hinge(margin=2.0)
    """
    return resolve(identifier, _REGISTRY, Loss)
