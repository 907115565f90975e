"""The checks and helpers the losses and the metrics share: shapes of outputs against
targets (no silent broadcasting), class scores and labels, the positions flattened into
rows, and the logits below a softmax or sigmoid output layer."""

from __future__ import annotations

import warnings

import numpy as np

import symgraph as sg
from frontends.errors import UserInputError
from symgraph import shapes as sh
from symgraph.ops.nn import Softmax


def _as_variable(x, who: str) -> sg.Variable:
    if isinstance(x, sg.Variable):
        return x
    if isinstance(x, (np.ndarray, np.generic, int, float, list, tuple)):
        return sg.constant(np.asarray(x))
    raise TypeError(f"{who}: expected a symgraph Variable or an array, got {type(x).__name__}")


def _is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def _dims_clash(a, b) -> bool:
    """Two dims that cannot be the same length, or that would silently broadcast."""
    if sh.dims_equal(a, b) is False:
        return True
    # only a static 1 broadcasts: 1 against anything not known to be 1 would broadcast
    return (a == 1) != (b == 1) and a is not None and b is not None


def _check_same_shape(who: str, outputs: sg.Variable, targets: sg.Variable) -> None:
    """Elementwise losses: targets must have exactly the outputs' shape (no broadcasting)."""
    if targets.ndim != outputs.ndim or any(
            _dims_clash(a, b) for a, b in zip(outputs.shape, targets.shape)):
        raise sh.ShapeError(
            f"{who}: targets of shape {sh.format_shape(targets.shape)} do not match the "
            f"model's outputs {sh.format_shape(outputs.shape)}; they must have the same shape "
            "(broadcasting one against the other would average the wrong pairs)")


def _check_class_outputs(who: str, outputs: sg.Variable, positions: bool = False) -> int:
    """Class scores must be (batch, classes), or with ``positions`` (batch, ..., classes): a
    class per position of a sequence (a language model's next tokens, tags), with a fixed
    class count; -> classes."""
    if outputs.ndim != 2 and not (positions and outputs.ndim > 2):
        raise sh.ShapeError(f"{who}: the model's outputs must be (batch, classes)"
                            + (" or (batch, ..., classes)" if positions else "")
                            + f", got shape {sh.format_shape(outputs.shape)}")
    classes = outputs.shape[-1]
    if not sh.is_fixed(classes):
        raise sh.ShapeError(f"{who}: the number of classes (outputs' last dim) must be a "
                            f"fixed int, got {sh.format_dim(classes)}")
    return classes


def _check_class_scores(who: str, outputs: sg.Variable, labels: sg.Variable,
                        positions: bool = False) -> int:
    """Outputs (batch, classes) with a fixed class count, integer labels (batch,) -- or with
    ``positions`` (batch, ..., classes) and labels (batch, ...); -> classes."""
    classes = _check_class_outputs(who, outputs, positions)
    if labels.dtype.kind not in "iu":
        binary = outputs.ndim == 2 and outputs.shape[1] == 1
        hint = ("0/1 targets of one output column: binary_cross_entropy and binary_accuracy"
                if binary else "one-hot targets: take their argmax")
        raise TypeError(f"{who}: targets must be integer class labels, got "
                        f"{labels.dtype.name} ({hint})")
    if labels.ndim != outputs.ndim - 1 or any(
            _dims_clash(a, b) for a, b in zip(outputs.shape[:-1], labels.shape)):
        raise sh.ShapeError(
            f"{who}: labels must be {sh.format_shape(outputs.shape[:-1])} matching outputs "
            f"{sh.format_shape(outputs.shape)}, got shape {sh.format_shape(labels.shape)}")
    return classes


def _rows(scores: sg.Variable, labels: sg.Variable) -> tuple[sg.Variable, sg.Variable]:
    """Scores (batch, ..., classes) and labels (batch, ...) as (positions, classes) and
    (positions,): every position a row, as the 2-d losses and metrics read them."""
    if scores.ndim <= 2:
        return scores, labels
    return sg.reshape(scores, (-1, scores.shape[-1])), sg.reshape(labels, (-1,))


def _label_scores(scores: sg.Variable, labels: sg.Variable) -> sg.Variable:
    """``scores[i, labels[i]]`` as a (batch, 1) column.

    With a known batch dim this is integer-array indexing, whose run-time
    bounds check rejects a label >= classes. With an unknown batch dim
    (``arange`` needs a length) it is a masked row sum, where an out-of-range
    label picks nothing (0) — name the batch dim to get the check.
    """
    if scores.shape[0] is not None:
        picked = scores[sg.arange(scores.shape[0]), labels]
        return sg.expand_dims(picked, 1)
    mask = sg.equal(sg.expand_dims(labels, 1), sg.arange(scores.shape[1], labels.dtype))
    # where, not mask * scores: 0 * inf would be NaN for an infinite score elsewhere in the row
    return sg.sum(sg.where(mask, scores, 0), axis=1, keepdims=True)


def _label_target(who: str, outputs: sg.Variable, name: str,
                  positions: bool = False) -> sg.Variable:
    _check_class_outputs(who, outputs, positions)
    return sg.tensor(name, shape=tuple(outputs.shape[:-1]), dtype="int64")


def _activation_input(outputs: sg.Variable, kind: str) -> sg.Variable | None:
    """The logits ``outputs`` was computed from, when its node is a softmax over the last
    axis (``kind="softmax"``) or a sigmoid; else None."""
    node = outputs.owner
    if node is None:
        return None
    if kind == "softmax" and isinstance(node.op, Softmax) and node.op.axis == outputs.ndim - 1:
        return node.inputs[0]
    if kind == "sigmoid" and getattr(node.op, "name", None) == "sigmoid":
        return node.inputs[0]
    return None


_KERAS_NAMES = {"softmax": "'sparse_categorical_crossentropy' and 'categorical_crossentropy'",
                "sigmoid": "'binary_crossentropy'"}


def _logits(loss, outputs: sg.Variable, kind: str) -> sg.Variable:
    """What a cross-entropy of ``kind`` (softmax or sigmoid) reads as logits.

    ``from_logits``: the outputs, with a warning (once per loss) when they come out of
    that very activation: a softmax of softmaxes trains, badly, and reports a wrong loss.
    Otherwise the outputs must come out of a softmax (sigmoid) layer, whose own input is
    read, exactly, as Keras does; any other output is refused when the loss is built.
    (Reading arbitrary outputs as probabilities, clipped as Keras does, trained a model
    whose last layer gave logits to 0.6% accuracy on digits.)"""
    below = _activation_input(outputs, kind)
    if loss.from_logits:
        if below is not None and not getattr(loss, "_warned", False):
            loss._warned = True
            warnings.warn(f"loss {loss.name!r} takes logits, but the model's output is a "
                          f"{kind}: the loss applies its own {kind} on top. Drop the "
                          f"output layer's {kind} activation, or pass from_logits=False",
                          UserWarning, stacklevel=4)
        return outputs
    if below is None:
        raise UserInputError(
            f"loss {loss.name!r} with from_logits=False (what {_KERAS_NAMES[kind]} mean, "
            f"as in Keras) takes the probabilities of a {kind} output layer, and the "
            f"model's output is not one: for logits use loss={loss.name!r}, or give the "
            f"last layer activation={kind!r}")
    return below
