"""Up-front checks of the arrays ``fit``, ``evaluate`` and ``predict`` are given.

The compiled functions check every call too, but only the minibatch in hand:
a wrong feature dim would be reported with an internal batch's shape, and a bad
label or a NaN found mid-epoch comes after updates were applied. These checks
run on the user's whole arrays before the first step, so a mistake names the
user's array, its shape and row, and leaves every parameter as it was. Each is
one cheap pass (a sum or a min/max); the exact, slower search for the culprit
runs only once something is known to be wrong.

>>> check_input("fit", model.inputs[0], X)        # rank, fixed dims, dtype
>>> check_finite("fit", "input 'x'", X)           # NaN/inf, naming the row and column
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

import symgraph as sg
from frontends.errors import UserInputError, UserInputTypeError
from symgraph.graph import toposort

__all__ = ["check_finite", "check_input", "check_labels", "check_scored", "check_target",
           "inputs_by_name", "without_pads"]


def inputs_by_name(what: str, inputs: list[sg.Variable], x: Mapping) -> list:
    """The arrays of a dict keyed by the model's input names (Keras's
    ``fit({"title": T, "body": B}, y)``) in the order of the inputs; a name missing from
    the dict, a key that names no input, or inputs sharing a name is an error.

    >>> inputs_by_name("fit", model.inputs, {"b": B, "a": A})   # [A, B]
    """
    names = [var.name for var in inputs]
    shared = sorted({name for name in names if names.count(name) > 1})
    if shared:
        raise UserInputError(f"{what}: the model's inputs share the name {shared[0]!r}, so a "
                             "dict cannot tell them apart; name them (fe.Input(shape, "
                             "name=...)) or pass a list in the order of the inputs")
    unknown = [key for key in x if key not in names]
    missing = [name for name in names if name not in x]
    if unknown or missing:
        problem = (f"has no entry for input {missing[0]!r}" if missing
                   else f"has the key {unknown[0]!r}, which names no input")
        raise UserInputError(f"{what}: the dict of inputs {problem}; the model's inputs are "
                             f"{', '.join(map(repr, names))}, the dict's keys "
                             f"{', '.join(map(repr, x))}")
    return [x[name] for name in names]


def _shape_fits(var: sg.Variable, array: np.ndarray) -> bool:
    """Same rank, and every fixed dim of ``var`` equal to the array's."""
    return array.ndim == var.ndim and all(
        not sg.shapes.is_fixed(d) or d == n for d, n in zip(var.shape, array.shape))


def _dtype_fits(what: str, label: str, var: sg.Variable, array: np.ndarray) -> None:
    """The compiled function's cast rule (``same_kind``), checked on the whole array; an
    integer array cast to a narrower integer input must fit it (int64 ids into int32)."""
    if array.dtype == var.dtype or np.can_cast(array.dtype, var.dtype, "same_kind"):
        if var.dtype.kind in "iu" and array.dtype.kind in "iu" and array.size:
            info = np.iinfo(var.dtype)
            lo, hi = array.min(), array.max()
            if lo < info.min or hi > info.max:
                bad = hi if hi > info.max else lo
                raise UserInputError(f"{what}: {label} is {var.dtype.name}, but its "
                                     f"{array.dtype.name} values reach {bad}, which does not "
                                     "fit")
        return
    got = "Python objects (dtype object)" if array.dtype.kind == "O" else array.dtype.name
    hint = ""
    if var.dtype.kind in "iu" and array.dtype.kind == "f" and np.all(np.mod(array, 1) == 0):
        hint = f" (whole numbers stored as floats? convert: .astype({var.dtype.name!r}))"
    raise UserInputTypeError(f"{what}: {label} must be {var.dtype.name} (or cast to it "
                             f"safely), got {got}{hint}")


def check_input(what: str, var: sg.Variable, array: np.ndarray, label: str | None = None
                ) -> None:
    """``array`` fits the model input ``var``: rank, fixed dims and dtype; ``label`` names
    it (default ``input 'name'``)."""
    label = label or f"input {var.name!r}"
    if array.ndim == 0 and array.dtype.kind == "O":  # np.asarray of a dict, a DataFrame row..
        raise UserInputTypeError(
            f"{what}: {label} takes an array of shape "
            f"{sg.shapes.format_shape(var.shape)}, got a {type(array.item()).__name__} "
            "(a model of several inputs takes a list of arrays, in model.inputs' order, or "
            "a dict keyed by their names)")
    if not _shape_fits(var, array):
        raise UserInputError(f"{what}: {label} expects shape "
                             f"{sg.shapes.format_shape(var.shape)}, got {array.shape}")
    _dtype_fits(what, label, var, array)


def _target_hint(target: sg.Variable, y: np.ndarray) -> str:
    """What the user probably meant by targets of the wrong shape: for (batch,) labels of
    (batch, classes) outputs, and as well for a class per position ((batch, length) labels
    of (batch, length, classes) outputs)."""
    if y.ndim == target.ndim + 1 and (target.ndim == 1 or target.dtype.kind in "iu"):
        if y.shape[-1] == 1:
            return (" (a column of labels? pass y.ravel())" if target.ndim == 1 else
                    " (labels with an axis of 1 at the end? pass y[..., 0])")
        axis = 1 if target.ndim == 1 else -1
        return (f" (one-hot rows? pass the class indices: y.argmax({axis}), or use a loss "
                "that takes rows: CrossEntropy(targets='probabilities'))")
    if target.ndim >= 2 and target.shape[-1] == 1 and y.ndim == target.ndim - 1:
        # 0/1 labels included
        return (" (one target per example? pass a column: y[:, None])" if target.ndim == 2
                else " (one target per position? pass y[..., None])")
    if target.dtype.kind in "iu" and y.ndim == target.ndim - 1:
        return (" (one label per example? the model's outputs score a class at every "
                "position: pool or flatten the positions before the last layer, e.g. "
                "GlobalAvgPool1D(data_format='channels_last'))")
    if target.dtype.kind == "f" and y.ndim == target.ndim - 1 and y.dtype.kind in "iub":
        return (" (integer class labels? use a loss that takes labels: 'cross_entropy' on "
                "logits, 'sparse_categorical_crossentropy' after a softmax; or make one-hot "
                "targets: np.eye(classes)[y])")
    return ""


def check_target(what: str, loss_name: str, target: sg.Variable, y: np.ndarray) -> None:
    """``y`` fits the loss's target input: rank, fixed dims (with a hint) and dtype."""
    if not _shape_fits(target, y):
        raise UserInputError(f"{what}: the loss {loss_name} takes targets of shape "
                             f"{sg.shapes.format_shape(target.shape)} ({target.dtype.name}), "
                             f"got y of shape {y.shape}{_target_hint(target, y)}")
    _dtype_fits(what, f"targets {target.name!r}", target, y)


def _position(index: tuple[int, ...]) -> str:
    """``(5,)`` -> ``row 5``; ``(5, 3)`` -> ``row 5, column 3``; deeper: the index."""
    if len(index) == 1:
        return f"row {index[0]}"
    if len(index) == 2:
        return f"row {index[0]}, column {index[1]}"
    return f"row {index[0]}, index {tuple(int(i) for i in index[1:])}"


def _nothing_done(what: str) -> str:
    """What the refused call did not do: predict's NaN was reported as "nothing was
    trained", as if predict trained."""
    if what.startswith("fit") or what in ("training data", "validation data", "test data"):
        return "nothing was trained"
    return {"evaluate": "nothing was evaluated", "predict": "nothing was predicted",
            "profile": "nothing was profiled"}.get(what, "nothing was run")


def check_finite(what: str, label: str, array: np.ndarray, dtype=None) -> None:
    """No NaN or inf in a float array, nor (given the model's ``dtype``) a value that becomes
    inf when cast to it (1e39 into float32): one sum (NaN and inf propagate) and, for a
    narrowing cast, one max |value|; then, only if one fails, the exact search."""
    if array.dtype.kind not in "fc" or array.size == 0:
        return
    limit = None
    if dtype is not None and np.dtype(dtype).kind == "f" and array.dtype.kind == "f":
        narrow = np.finfo(dtype).max
        limit = narrow if narrow < np.finfo(array.dtype).max else None
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(array.sum()) and (limit is None or np.abs(array).max() <= limit):
            return
    bad = np.argwhere(~np.isfinite(array))
    if len(bad) == 0:
        if limit is not None:
            big = np.argwhere(np.abs(array) > limit)
            if len(big):
                index = tuple(int(i) for i in big[0])
                more = f" (and {len(big) - 1} more)" if len(big) > 1 else ""
                raise UserInputError(
                    f"{what}: {label} holds {array[index]:g} at {_position(index)}{more}, "
                    f"beyond the range of the model's {np.dtype(dtype).name} (it would become "
                    f"inf); {_nothing_done(what)}: rescale or clip the data first")
        return  # large finite values overflowed the sum
    index = tuple(int(i) for i in bad[0])
    value = array[index]
    kind = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    more = f" (and {len(bad) - 1} more non-finite values)" if len(bad) > 1 else ""
    raise UserInputError(f"{what}: {label} holds {kind} at {_position(index)}{more}; "
                         f"{_nothing_done(what)}: remove or impute those values first "
                         "(np.isfinite finds them)")


def check_range(what: str, label: str, array: np.ndarray, bounds: tuple[float, float],
                owner: str) -> None:
    """Every value within ``bounds`` (NaN passes: ``check_finite`` names it): a binary
    cross-entropy target of 2 or -1 makes a loss with no lower bound, which trains on
    towards -inf instead of failing."""
    lo, hi = bounds
    if array.size == 0 or array.dtype.kind not in "biuf":
        return
    outside = (array < lo) | (array > hi)
    if not outside.any():
        return
    bad = np.argwhere(outside)
    index = tuple(int(i) for i in bad[0])
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    raise UserInputError(f"{what}: {label} holds {array[index]:g} at {_position(index)}{more}, "
                         f"but {owner} takes targets from {lo:g} to {hi:g} (0/1 labels or "
                         f"probabilities); {_nothing_done(what)}")


def check_labels(what: str, y: np.ndarray, classes: int, ignore_index: int | None,
                 output: sg.Variable) -> None:
    """Integer labels in ``[0, classes)`` (or ``ignore_index``, but not all of them): a
    min/max, then, only if one is out of range, the search for the first bad row."""
    if y.size == 0 or y.dtype.kind not in "iub":
        return
    if ignore_index is not None and (y == ignore_index).all():
        raise UserInputError(f"{what}: every label in y is the loss's ignore_index "
                             f"({ignore_index}), so there is nothing to score")
    low, high = y.min(), y.max()
    if low >= 0 and high < classes:
        return
    bad = (y < 0) | (y >= classes)
    if ignore_index is not None:
        bad &= y != ignore_index
    if not bad.any():
        return
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    raise UserInputError(
        f"{what}: label {y[index]} at {_position(index)} of y is out of range: the model's "
        f"output {sg.shapes.format_shape(output.shape)} scores {classes} classes, so labels "
        f"must be in [0, {classes})" + (f" (or {ignore_index}, ignored)" if ignore_index is not None
                                else "") + f"; y's labels span [{low}, {high}]")


def check_ids(what: str, label: str, array: np.ndarray, n: int, layer: str) -> None:
    """Ids for an embedding of ``n`` rows lie in ``[0, n)``: a negative one would read a row
    from the end (numpy's indexing) and a large one stops training midway."""
    if not array.size:
        return
    lo, hi = array.min(), array.max()
    if lo < 0 or hi >= n:
        bad = lo if lo < 0 else hi
        row = int(np.argwhere(array == bad)[0][0])
        raise UserInputError(f"{what}: {label} holds id {bad} at row {row}, but layer "
                             f"{layer} (Embedding) has rows 0..{n - 1}")


def check_scored(what: str, loss, y: np.ndarray) -> None:
    """Some label counts in ``loss`` (not all ignored, not all of class weight 0): a loss
    that is 0/0 on the whole data cannot be trained on or reported."""
    weights = loss.example_weights(y)
    if weights is None or not len(y) or (weights > 0).any():
        return
    ignore = loss.ignore_index
    reason = (f"is the loss's ignore_index ({ignore})" if ignore is not None
              and (y == ignore).all() else "is ignored or has class weight 0 in the loss")
    raise UserInputError(f"{what}: every label in y {reason}, so there is nothing to score")


def without_pads(model, var: sg.Variable | None, array: np.ndarray) -> np.ndarray:
    """``array``, the model input ``var``, for ``check_finite``: the steps whose features
    all equal the infinite ``mask_value`` shared by every layer called directly on ``var``
    (Masking, recurrent, pooling) read as 0. Those layers keep such steps out of their
    values and gradients, so the check, which refused any inf, refused the inf pads that
    ``Masking(np.inf)`` is documented to take. The model gets the array as it is."""
    if var is None or array.dtype.kind != "f" or array.ndim < 3:
        return array
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(array.sum()):
            return array
    values = {getattr(out.layer, "mask_value", None)
              for node in toposort([model.output]) for out in node.outputs
              if getattr(out, "layer", None) is not None
              and getattr(out, "layer_input", None) is var}
    value = values.pop() if len(values) == 1 else None
    if value is None or not np.isinf(value):
        return array
    padded = (array == value).all(axis=-1, keepdims=True)
    return np.where(padded, 0.0, array)
