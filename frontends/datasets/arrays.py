"""Your own arrays as a data set: a spec file's ``data: {name: npz, path: my_data.npz}``.

Why: ``symgraph train my.yaml`` trained only on the embedded digits; a user's model wants
the user's data. The file is numpy's ``.npz`` (``np.savez(path, x=X, y=y)``), read with
``allow_pickle=False``: arrays ``x`` (examples along the first axis) and ``y`` (labels or
targets), and optionally ``x_test`` and ``y_test``; without them ``test_split`` of the
examples are held out (``test_split`` is ignored when the file has them). Splits are fixed
(a hash of each example's index, stratified by class when ``y`` holds integer labels and
every class is large enough to give a share), so a spec gives the same split anywhere.
Integer ``x`` stays integer (token ids for ``Embedding``) unless ``standardize`` is asked.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from frontends.datasets.core import Dataset, DatasetError, standardize, stratified_split

__all__ = ["SPLIT_SEED", "load_npz_dataset"]

#: the key of the fixed test and validation splits' hash
SPLIT_SEED = 20261203


def load_npz_dataset(path: str = "", standardize: bool = False, validation_split: float = 0.0,
                     test_split: float = 0.2) -> Dataset:
    """The arrays of ``path`` as a ``Dataset`` (see the module docstring). ``standardize``
    scales ``x`` with the statistics of the final training part."""
    x, y, test = _read(path)
    classes = y.dtype.kind in "iub"
    if test is None:
        if test_split <= 0:
            raise DatasetError(f"{path} holds no x_test/y_test, and test_split is 0: there "
                               "would be no test set", "test_split")
        (x, y), test = _split(x, y, test_split, classes, SPLIT_SEED, "test_split")
    validation = None
    if validation_split > 0:
        (x, y), validation = _split(x, y, validation_split, classes, SPLIT_SEED + 1,
                                    "validation_split")
    if standardize:
        parts = _standardize(x, test[0], *([validation[0]] if validation else []))
        x, test = parts[0], (parts[1], test[1])
        if validation:
            validation = (parts[2], validation[1])
    labels = [y, test[1]] + ([validation[1]] if validation else [])
    num_classes = int(max(part.max(initial=0) for part in labels)) + 1 if classes else 0
    return Dataset("npz", (x, y), validation, test, num_classes=num_classes,
                   input_shape=tuple(x.shape[1:]))


_standardize = standardize  # the option of the same name shadows it


def _read(path: str):
    """``x``, ``y`` and ``(x_test, y_test)`` or None, checked: examples along the first axis,
    as many labels as examples."""
    if not path:
        raise DatasetError("path: the .npz file to train on is required (np.savez(path, x=X, "
                           "y=y))", "path")
    try:
        with open(os.path.expanduser(path), "rb") as fh:
            magic = fh.read(6)
    except OSError as err:
        raise DatasetError(f"path: cannot read {path} as an .npz file: {err}", "path") from None
    if not magic.startswith((b"PK", b"\x93NUMPY")):
        # np.load takes anything else for a pickle and says so, with allow_pickle as the cure
        raise DatasetError(f"path: cannot read {path} as an .npz file: it is not a zip of "
                           "arrays (a CSV or text file? read it with np.loadtxt and write "
                           "np.savez(path, x=X, y=y))", "path")
    try:
        loaded = np.load(os.path.expanduser(path), allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DatasetError(f"path: cannot read {path} as an .npz file: {err}", "path") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy: one array, no x and y
        raise DatasetError(f"path: {path} is one array (.npy), not an .npz of x and y; "
                           "write np.savez(path, x=X, y=y)", "path")
    with loaded as npz:
        arrays = {key: npz[key] for key in npz.files}
    for key in ("x", "y"):
        if key not in arrays:
            raise DatasetError(f"{path} has no array {key!r} (it holds "
                               f"{', '.join(sorted(arrays)) or 'none'}; write it with "
                               "np.savez(path, x=X, y=y))", "path")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DatasetError(f"{path}: x_test and y_test go together; it holds only one", "path")
    pairs = [("x", "y")] + ([("x_test", "y_test")] if "x_test" in arrays else [])
    for xk, yk in pairs:
        x, y = arrays[xk], arrays[yk]
        if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
            raise DatasetError(f"{path}: {xk} {x.shape} and {yk} {y.shape} must hold the same "
                               "number of examples along their first axis", "path")
        if len(x) == 0:
            raise DatasetError(f"{path}: {xk} holds no examples", "path")
        for key, a in ((xk, x), (yk, y)):
            if a.dtype.kind not in "iubf":
                raise DatasetError(f"{path}: {key} must hold numbers, got dtype {a.dtype}",
                                   "path")
            # the file's rows, checked before a split renumbers them (or scaling spreads
            # one NaN over every row)
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                rows = np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(axis=1))
                raise DatasetError(
                    f"{path}: {key} holds NaN or inf in row {rows[0]}"
                    + (f" (and {len(rows) - 1} more rows)" if len(rows) > 1 else ""), "path")
    test = (arrays["x_test"], arrays["y_test"]) if "x_test" in arrays else None
    for key in ("x", "y") if test else ():  # (standardize said "array 1 has feature shape")
        a, b = arrays[key], arrays[f"{key}_test"]
        if a.shape[1:] != b.shape[1:]:
            raise DatasetError(f"{path}: {key}_test {b.shape} holds examples of shape "
                               f"{b.shape[1:]}, {key} {a.shape} of shape {a.shape[1:]}",
                               "path")
    return arrays["x"], arrays["y"], test


def _split(x, y, fraction: float, classes: bool, seed: int, key: str):
    """((x, y) kept, (x, y) held out): ``fraction`` of each class (or of all the examples,
    for real-valued targets) held out, by a fixed hash of the index."""
    keep = held = ()
    if classes and y.ndim == 1:
        keep, held = stratified_split(y, fraction, seed)
    if len(keep) == 0 or len(held) == 0:  # classes too small to hold a share each out
        keep, held = stratified_split(np.zeros(len(y), np.int8), fraction, seed)
    if len(keep) == 0 or len(held) == 0:
        raise DatasetError(f"{key}={fraction} of {len(y)} examples leaves an empty part", key)
    return (x[keep], y[keep]), (x[held], y[held])
