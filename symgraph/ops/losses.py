"""Losses built from graph ops (``sg.nn.cross_entropy``, ``binary_cross_entropy``, ``mse``):
composites, so they need no rules of their own and fuse like any elementwise tree."""

from __future__ import annotations

from symgraph.dispatch import ops
from symgraph.graph import Variable, as_variable

__all__ = ["binary_cross_entropy", "cross_entropy", "mse"]


def cross_entropy(logits, labels) -> Variable:
    """Mean softmax cross-entropy of ``logits`` (batch, classes) and integer ``labels``."""
    logits, labels = as_variable(logits), as_variable(labels)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (batch, classes), got {logits.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: labels must be integers, got {labels.dtype.name}")
    depth = logits.shape[1]
    if not isinstance(depth, int):
        raise ValueError("cross_entropy: the number of classes must be a fixed dim")
    picked = ops.one_hot(labels, depth, logits.dtype) * ops.log_softmax(logits)
    return -ops.mean(ops.sum(picked, axis=1))


def binary_cross_entropy(logits, targets) -> Variable:
    """Mean binary cross-entropy from logits: ``softplus(z) - y z`` (never saturates wrongly)."""
    logits = as_variable(logits)
    targets = as_variable(targets)
    if targets.dtype != logits.dtype:
        targets = ops.cast(targets, logits.dtype)
    return ops.mean(ops.softplus(logits) - targets * logits)


def mse(predictions, targets) -> Variable:
    """Mean squared error, in the predictions' dtype (like the other losses)."""
    predictions = as_variable(predictions)
    return ops.mean(ops.square(predictions - ops.cast(targets, predictions.dtype)))
