"""Per-example weights on the host: ``fit``'s and ``evaluate``'s ``sample_weight`` and
``fit``'s ``class_weight``, as Keras 3 takes them.

* The weights are checked on the user's whole arrays before the first step (length, shape,
  NaN/inf, negative values, a class_weight key that is no class): a mistake names the
  argument and its shapes and changes no parameter.
* They are a third array beside x and y, sliced and shuffled with them into the
  compiled step's minibatches (``f.epoch``): the weighted training and test functions
  (``functions``) take them as an input. They are compiled once per model and weight rank
  on first use, so a model fit without weights runs exactly the program ``compile`` built.
* Semantics (``frontends.weighting``): the loss is Keras's ``sum(w l) / N``; ``metrics``
  are never weighted, ``weighted_metrics`` are ``sum(w v) / sum(w)`` (Keras's split); a
  ``class_weight`` dict becomes the weight of each example's (each position's) label,
  classes it leaves out weigh 1 (Keras 3); with ``sample_weight`` it is refused (Keras 3).
  A padding mask on the model's output multiplies the weights of the loss and of every
  metric as 0/1 (``frontends.figures``).
* Epoch figures average the per-batch values weighted so that they are the figure over the
  whole data at any batch size (``batch_weights``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

import symgraph as sg
from frontends import losses
from frontends.data_checks import _position, check_finite
from frontends.errors import UserInputError, UserInputTypeError
from frontends.figures import figures

__all__ = ["batch_weights", "class_table", "class_weights", "checked", "function", "weighted_means",
           "weighted_names", "weighted_sums"]


def weighted_names(model) -> list[str]:
    """The names ``weighted_metrics`` report under: their own, or ``weighted_<name>`` when a
    plain metric has that name (Keras's rule)."""
    plain = {m.name for m in model.metrics}
    return [f"weighted_{m.name}" if m.name in plain else m.name
            for m in getattr(model, "weighted_metrics", ())]


def _cache(model) -> dict:
    """What is built for weights, for the functions ``compile`` made last (a new compile
    starts afresh; a failed one restores its predecessor, whose cache still fits)."""
    cache = model.__dict__.get("_weights_cache")
    if cache is None or cache["for"] is not model.train_function:
        cache = model.__dict__["_weights_cache"] = {"for": model.train_function}
    return cache


def _units(model, what: str, label: str) -> tuple:
    """The shape of the loss's values before its mean, (batch, ...): a weight covers one
    example or one position of these."""
    cache = _cache(model)
    if "units" not in cache:
        try:
            terms, _ = model.loss.terms(model.train_output, model.target)
        except TypeError as err:
            raise UserInputError(f"{what}: {label} given, but {err}") from None
        cache["units"] = tuple(terms.shape)
    return cache["units"]


def _shapes(n: int, fixed: tuple) -> str:
    return " or ".join(str((n, *fixed[:k])) for k in range(len(fixed) + 1))


def checked(model, y: np.ndarray, weights, what: str, label: str = "sample_weight"
            ) -> np.ndarray:
    """``weights`` as an array of the model's float dtype, checked against the targets
    ``y``: one per example (n,), or per position of the loss's values (n, length) -- a
    column (n, 1) is read as (n,), as Keras does -- finite, >= 0, and not 0 on every
    label the loss scores (there would be nothing to train on or report)."""
    n = len(y)
    units = _units(model, what, label)
    fixed = tuple(int(d) for d in units[1:])
    array = np.asarray(weights)
    if array.dtype.kind not in "biuf":
        got = ("Python objects (dtype object)" if array.dtype.kind == "O" else
               f"strings ({array.dtype.name}: {weights!r})" if array.dtype.kind in "US"
               else array.dtype.name)  # (a str's dtype name alone read "got str256")
        raise UserInputTypeError(f"{what}: {label} must be numbers, one per example, got "
                                 f"{got}")
    if array.ndim == 0 or len(array) != n:
        got = "a scalar" if array.ndim == 0 else f"{len(array)} entries (shape {array.shape})"
        raise UserInputError(f"{what}: {label} has {got}, but x and y have {n} examples")
    if array.ndim == 2 and array.shape[1] == 1 and fixed[:1] != (1,):
        array = array[:, 0]
    if array.ndim - 1 > len(fixed) or array.shape[1:] != fixed[:array.ndim - 1]:
        raise UserInputError(
            f"{what}: {label} has shape {array.shape}, but the loss {model.loss.name} has "
            f"values of shape {(n, *fixed)} for targets of shape {y.shape}: a weight per "
            f"example or per position takes the shape {_shapes(n, fixed)}")
    dtype = model.train_output.dtype
    check_finite(what, label, array, dtype)
    if array.size and array.min() < 0:
        index = tuple(int(i) for i in np.argwhere(array < 0)[0])
        raise UserInputError(f"{what}: {label} holds {array[index]:g} at {_position(index)}; "
                             "weights must be >= 0")
    scored = model.loss.example_weights(y) if n else None
    spread = array.reshape(array.shape + (1,) * (y.ndim - array.ndim)) if scored is not None \
        else array
    if n and not ((spread * (1.0 if scored is None else scored)) > 0).any():
        raise UserInputError(f"{what}: every {label} of the examples the loss scores is 0, "
                             "so there is nothing to train on or report")
    return array.astype(dtype, copy=False)


def _classes(model, what: str) -> int:
    """How many classes the loss's targets are labels of: integer labels, one-hot rows or a
    binary cross-entropy's 0/1 column (2); else a UserInputError for class_weight."""
    loss, output = model.loss, model.output
    classes = loss.label_classes(output)
    if classes is not None:
        return classes
    if isinstance(loss, losses.CrossEntropy):  # one-hot or soft rows
        return int(output.shape[-1])
    if isinstance(loss, losses.BinaryCrossEntropy) and (output.ndim == 1
                                                         or output.shape[-1] == 1):
        return 2
    raise UserInputError(
        f"{what}: class_weight needs class labels, and the loss {loss.name} takes targets of "
        f"shape {sg.shapes.format_shape(model.target.shape)} that are not classes; weigh "
        "the examples with sample_weight instead")


def class_table(model, class_weight, what: str = "fit") -> np.ndarray:
    """The weight of each class from ``class_weight`` ({class: weight}); a class the dict
    leaves out weighs 1 (Keras 3); a key that is no class of the model is an error."""
    if not isinstance(class_weight, Mapping):
        raise UserInputTypeError(f"{what}: class_weight must be a dict {{class: weight}}, "
                                 f"e.g. {{0: 1.0, 1: 5.0}}, got {type(class_weight).__name__}")
    classes = _classes(model, what)
    table = np.ones(classes)
    for key, value in class_weight.items():
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)) \
                or not 0 <= key < classes:
            raise UserInputError(
                f"{what}: class_weight has the key {key!r}, which is not a class: the "
                f"model's output {sg.shapes.format_shape(model.output.shape)} scores "
                f"{classes} classes, 0 to {classes - 1}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not math.isfinite(number) or number < 0:
            raise UserInputError(f"{what}: class_weight[{key}] is {value!r}; a class weight "
                                 "is a finite number >= 0")
        table[int(key)] = number
    return table


def class_weights(model, y: np.ndarray, class_weight, what: str = "fit") -> np.ndarray:
    """The sample weights ``class_weight`` gives ``y``'s labels (``class_table``): integer
    labels, one-hot rows (their argmax) or a binary cross-entropy's 0/1 column, rounded;
    labels per position get a weight per position."""
    table = class_table(model, class_weight, what)
    loss, labels = model.loss, y
    if loss.label_classes(model.output) is None:
        if isinstance(loss, losses.CrossEntropy):
            labels = np.argmax(y, axis=-1)
        else:  # a binary cross-entropy's 0/1 targets
            labels = np.round(y if model.output.ndim == 1 else y[..., 0]).astype(np.int64)
    ignore = getattr(loss, "ignore_index", None)
    if ignore is not None:  # an ignored label is not scored: any weight will do
        labels = np.where(labels == ignore, 0, labels)
    return table[labels]


def function(model, kind: str, rank: int) -> sg.Function:
    """The weighted ``"train"`` or ``"test"`` step for weights of ``rank`` (1: per example),
    compiled on first use: the loss and ``weighted_metrics`` take the weights, the plain
    metrics do not. The training step differentiates the weighted loss and swaps its
    gradients into the optimizer's update expressions (``clone_replace``), so both steps
    share every parameter and every optimizer state variable."""
    cache = _cache(model)
    key = (kind, rank)
    if key in cache:
        return cache[key]
    units = _units(model, "fit" if kind == "train" else "evaluate", "sample_weight")
    output = model.train_output if kind == "train" else model.inference_output
    weights = sg.tensor("sample_weight", units[:rank], output.dtype)
    outputs = [v for part in figures(model, output, weights) for v in part]
    loss = outputs[0]
    updates: dict = {}
    if kind == "train":
        _, grads, updates = model.train_graph
        if grads:  # the parameters compile differentiated (fit refuses a change since)
            variables = list(updates)
            rebuilt = sg.clone_replace(
                [updates[v] for v in variables],
                replace=dict(zip(grads, sg.grad(loss, model.trainable_weights))))
            updates = dict(zip(variables, rebuilt))
    cache[key] = sg.function(model.inputs + [model.target, weights], outputs,
                             updates=updates, backend=model.backend,
                             name=f"{kind}_weighted", flush_denormals=model.flush_denormals)
    return cache[key]


def _per_batch(values: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    per_row = np.asarray(values, np.float64).reshape(n, -1).sum(axis=1)
    return np.add.reduceat(per_row, starts)


def batch_weights(model, y: np.ndarray, batch_size: int,
                  weights: np.ndarray | None = None, steps=None) -> np.ndarray:
    """The weight of each minibatch of ``y`` (``batch_size`` long, the last maybe shorter)
    when an epoch's per-batch values are averaged: one row per output of the compiled
    functions (the loss, the metrics, the weighted metrics). A batch weighs its example
    count, or, for the loss, the sum of ``loss.example_weights`` (labels not ignored, or
    their class weights: what its mean divides by, sample weights or not), for the label
    metrics under ``ignore_index`` its count of labels not ignored, and for a weighted
    metric its total sample weight (on the labels not ignored) -- each value is a mean
    over exactly those, so the average is the figure over the whole data whatever the
    batch size (weighing by batch size gave 1.93 for 1.72 at batch 8, and NaN when one
    batch had only ignored labels). A model whose output carries a padding mask returns
    those weights itself, after its figures in ``steps`` (``frontends.figures``): only the
    graph knows which positions are padding."""
    count = len(model.metrics_names)
    if steps is not None and len(steps) > count:
        return np.stack([np.asarray(s, np.float64).reshape(-1) for s in steps[count:]])
    n = len(y)
    starts = np.arange(0, n, batch_size)
    sizes = np.diff(np.append(starts, n)).astype(np.float64)
    loss_weights = None if n == 0 else model.loss.example_weights(y)
    ignore = model.loss.ignore_index
    kept = None if ignore is None or n == 0 else (y != ignore)
    plain = [sizes if kept is None or not m.labels else _per_batch(kept, starts, n)
             for m in model.metrics]
    weighted = []
    for m in model.weighted_metrics:
        if weights is None:
            weighted.append(sizes if kept is None or not m.labels
                            else _per_batch(kept, starts, n))
        elif kept is None or not m.labels:
            weighted.append(_per_batch(weights, starts, n))
        else:  # the weights spread over the labels, those ignored left out
            spread = weights.reshape(weights.shape + (1,) * (kept.ndim - weights.ndim))
            weighted.append(_per_batch(spread * kept, starts, n))
    first = sizes if loss_weights is None else _per_batch(loss_weights, starts, n)
    return np.stack([first] + plain + weighted)


def weighted_sums(steps, weights: np.ndarray) -> np.ndarray:
    """``sum(weight * value)`` per output over the batches of ``steps``; a batch of weight 0
    is left out (its value is NaN: every label in it ignored, or of weight 0)."""
    return np.array([float(np.dot(np.where(w > 0, np.asarray(v, np.float64).reshape(-1), 0.0),
                                  w)) for v, w in zip(steps, weights)])


def weighted_means(sums: np.ndarray, weights: np.ndarray) -> list[float]:
    return [float(t / w) if w > 0 else math.nan for t, w in zip(sums, weights)]
