"""Losses built from graph ops (``sg.nn.cross_entropy``, ``binary_cross_entropy``, ``mse``):
composites, so they need no rules of their own and fuse like any elementwise tree."""

from __future__ import annotations

import numpy as np

from symgraph import shapes as sh
from symgraph.dispatch import ops
from symgraph.graph import Variable, as_variable, constant
from symgraph.ops.arguments import argument_error

__all__ = ["binary_cross_entropy", "cross_entropy", "mse"]


_REDUCTIONS = ("mean", "sum", "none")


def cross_entropy(logits, labels, reduction: str = "mean", label_smoothing: float = 0.0,
                  ignore_index: int | None = None, weight=None) -> Variable:
    """Softmax cross-entropy of ``logits`` (batch, classes) and integer ``labels`` (batch,),
    as ``torch.nn.functional.cross_entropy``.

    * ``reduction``: ``"mean"`` over the examples (the non-ignored ones), ``"sum"``, or
      ``"none"`` (one loss per example, 0 for an ignored one).
    * ``label_smoothing`` in ``[0, 1]``: the target is ``(1 - s) one_hot + s / classes``.
    * ``ignore_index``: examples with that label contribute nothing; with ``"mean"`` the
      sum is divided by the number of the others, so a batch where every example is
      ignored gives NaN (0 / 0), as torch does.
    * ``weight``: one weight per class (an array or a (classes,) Variable), as torch's: an
      example's loss is ``-sum_c w[c] target[c] log p[c]`` (``w[y] * -log p[y]`` without
      smoothing) and ``"mean"`` divides the sum by ``sum w[y]`` over the examples kept, so
      the weights rebalance classes without rescaling the loss.

    A label outside ``[0, classes)`` that is not ``ignore_index`` raises ``IndexError`` at
    call time naming the labels, the value and its position (the ``one_hot`` check; ignored
    labels are mapped to class 0 before it and masked out after), and the call changes no
    shared variable.

    >>> loss = sg.nn.cross_entropy(z, y, label_smoothing=0.1, ignore_index=-100)
    """
    logits, labels = as_variable(logits), as_variable(labels)
    depth = _check_cross_entropy(logits, labels, reduction, label_smoothing, ignore_index)
    if weight is not None:
        weight = _class_weights(weight, logits, labels, depth)
    keep = None
    limits = np.iinfo(labels.dtype)
    if ignore_index is not None and limits.min <= ignore_index <= limits.max:
        keep = ops.not_equal(labels, int(ignore_index))
        mapped = ops.where(keep, labels, 0)
        mapped.name = labels.name  # the range check names the user's labels
        labels = mapped
    one_hot = target = ops.one_hot(labels, depth, logits.dtype)
    if label_smoothing:
        target = target * (1.0 - float(label_smoothing)) + float(label_smoothing) / depth
    if weight is not None:
        target = target * weight
    # the negated losses, -mean(sum(target * logp)), leaving out the classes of target 0
    # rather than multiplying them by 0: a masked class's logit is -inf, and 0 * -inf is
    # NaN where torch (which picks log p[y]) is finite. One select in the fused loop, in
    # place of the product by the one-hot; smoothing leaves no class at 0 (torch: inf).
    # Weighted, the select follows the one-hot, not the target: a class weight of 0 is a
    # target of 0 whose derivative in that weight (-log p[y]) is not 0
    logp = ops.log_softmax(logits)
    labelled = ops.where(ops.not_equal(one_hot, 0), logp, 0)
    if label_smoothing:
        terms = target * logp
    elif target is one_hot:
        terms = labelled
    else:
        terms = target * labelled
    picked = ops.sum(terms, axis=1)
    if keep is not None:
        picked = ops.where(keep, picked, 0)
    if reduction == "none":
        return -picked
    if reduction == "sum":
        return -ops.sum(picked)
    if weight is not None:  # torch: the weighted sum over the sum of the labels' weights
        label_weights = ops.sum(one_hot * weight, axis=1)
        if keep is not None:
            label_weights = ops.where(keep, label_weights, 0)
        total = ops.sum(label_weights)
        # labels of weight 0 only: NaN, as torch, but a zero gradient (torch's is NaN, which
        # would ruin every parameter), as for a minibatch whose labels are all ignored
        some = ops.greater(total, 0)
        mean = -ops.sum(picked) / ops.where(some, total, 1)
        return ops.where(some, mean, np.array(np.nan, logits.dtype))
    if keep is None:
        return -ops.mean(picked)
    return -ops.sum(picked) / ops.sum(ops.cast(keep, logits.dtype))


def _class_weights(weight, logits: Variable, labels: Variable, depth: int) -> Variable:
    """``weight`` as a (classes,) Variable in the logits' dtype; a constant one must be
    finite and >= 0 with a positive entry (else the mean is 0/0 or has no meaning)."""
    def fail(kind: type, message: str) -> Exception:
        return argument_error("cross_entropy", kind(message), [logits, labels])

    if not isinstance(weight, Variable):
        values = np.asarray(weight)
        if values.dtype.kind not in "iuf" or isinstance(weight, (dict, set, str)):
            raise fail(TypeError, f"weight must be numbers (one per class), got {weight!r}")
        if values.shape != (depth,):
            raise fail(sh.ShapeError, f"weight must have one entry per class, ({depth},), "
                                      f"got {values.shape}")
        if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() <= 0:
            raise fail(ValueError, f"weight must be finite and >= 0 with one > 0, got "
                                   f"{values.tolist()}")
        return constant(values.astype(logits.dtype))
    if weight.dtype.kind != "f":
        raise fail(TypeError, f"weight must be float, got {weight.dtype.name}")
    if weight.ndim != 1 or sh.dims_equal(weight.shape[0], depth) is False:
        raise fail(sh.ShapeError, f"weight must have one entry per class, ({depth},), got "
                                  f"{sh.format_shape(weight.shape)}")
    return ops.cast(weight, logits.dtype) if weight.dtype != logits.dtype else weight


def _check_cross_entropy(logits: Variable, labels: Variable, reduction: str,
                         label_smoothing, ignore_index) -> int:
    """The arguments of :func:`cross_entropy`, checked while building: a mistake names the
    function, the inputs' types and the user's line (not an internal op's shapes); returns
    the number of classes."""
    def fail(kind: type, message: str) -> Exception:
        return argument_error("cross_entropy", kind(message), [logits, labels])

    if logits.ndim != 2:
        raise fail(ValueError, f"logits must be (batch, classes), got "
                               f"{sh.format_shape(logits.shape)}")
    if labels.dtype.kind not in "iu":
        raise fail(TypeError, f"labels must be integer class indices, got "
                              f"{labels.dtype.name} (one-hot rows? pass their argmax)")
    if labels.ndim != 1:
        raise fail(ValueError, f"labels must be (batch,), got {sh.format_shape(labels.shape)}")
    if sh.dims_equal(logits.shape[0], labels.shape[0]) is False:
        raise fail(sh.ShapeError, f"logits have {logits.shape[0]} examples, labels "
                                  f"{labels.shape[0]}")
    if reduction not in _REDUCTIONS:
        raise fail(ValueError, f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if (isinstance(label_smoothing, bool)
            or not isinstance(label_smoothing, (int, float, np.integer, np.floating))
            or not 0.0 <= label_smoothing <= 1.0):
        raise fail(ValueError, f"label_smoothing must be a number in [0, 1], "
                               f"got {label_smoothing!r}")
    if ignore_index is not None and (isinstance(ignore_index, bool)
                                     or not isinstance(ignore_index, (int, np.integer))):
        raise fail(TypeError, f"ignore_index must be an int or None, got {ignore_index!r}")
    depth = logits.shape[1]
    if not isinstance(depth, int):
        raise fail(ValueError, "the number of classes must be a fixed dim")
    return depth


def _same_shape(function: str, a: Variable, b: Variable, names: str) -> None:
    """``a`` and ``b`` of one shape (as torch's losses require), or ``b`` a scalar: a
    (batch,) target against (batch, 1) outputs would broadcast to (batch, batch) and
    average the wrong thing."""
    if b.ndim == 0:
        return
    if a.ndim != b.ndim or any(sh.dims_equal(x, y) is False for x, y in zip(a.shape, b.shape)):
        raise argument_error(function, sh.ShapeError(
            f"{names} must have one shape, got {sh.format_shape(a.shape)} and "
            f"{sh.format_shape(b.shape)}"), [a, b])


def binary_cross_entropy(logits, targets) -> Variable:
    """Mean binary cross-entropy from logits: ``softplus(z) - y z`` (never saturates wrongly).
    ``targets`` have the logits' shape (a mismatch is an error, as in torch) or are one
    number."""
    logits = as_variable(logits)
    targets = as_variable(targets)
    _same_shape("binary_cross_entropy", logits, targets, "logits and targets")
    if targets.dtype != logits.dtype:
        targets = ops.cast(targets, logits.dtype)
    return ops.mean(ops.softplus(logits) - targets * logits)


def mse(predictions, targets) -> Variable:
    """Mean squared error, in the predictions' dtype (like the other losses)."""
    predictions = as_variable(predictions)
    return ops.mean(ops.square(predictions - ops.cast(targets, predictions.dtype)))
