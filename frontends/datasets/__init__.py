"""Data sets shipped inside the package, so the main job and the tests run offline.

One ships: the UCI optical handwritten digits (8x8 images, 10 classes; see
``LICENSE_digits.txt`` for its origin, licence and how ``digits.npz`` was made).
``load_digits`` gives a fixed stratified train/test split that is the same on every
machine; ``standardize`` scales features with training statistics only; ``load`` is the
by-name dispatcher the spec files' ``data`` section goes through (``load("digits",
standardize=True, validation_split=0.1)``). ``npz`` (:mod:`frontends.datasets.arrays`)
reads a user's own arrays from a file.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib import resources

import numpy as np

from frontends.datasets.arrays import load_npz_dataset
from frontends.datasets.core import Dataset, DatasetError, standardize
from frontends.datasets.core import stratified_split as _stratified_split

__all__ = ["Dataset", "DatasetError", "DATASETS", "load", "load_digits", "load_npz_dataset",
           "options", "standardize"]

#: Fraction of each class held out as the test set by ``load_digits``.
DIGITS_TEST_FRACTION = 0.2
# The key of the split hash below. Changing it (or the hash) changes the published split.
_DIGITS_SPLIT_SEED = 20240901


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as stored: images uint8 (1797, 64) in 0..16, labels uint8."""
    # importlib.resources: works from a source checkout, a wheel or a zip; allow_pickle=False
    # because an .npz can carry pickled objects and we only ever stored plain arrays.
    with resources.files(__name__).joinpath("digits.npz").open("rb") as fh:
        with np.load(fh, allow_pickle=False) as npz:
            return npz["images"], npz["labels"]


_XY = tuple[np.ndarray, np.ndarray]


def load_digits(split: bool = True) -> tuple[_XY, _XY] | _XY:
    """The embedded UCI digits: ``((X_train, y_train), (X_test, y_test))``, or ``(X, y)``.

    ``X`` is float32 ``(n, 64)`` with the raw pixel counts 0..16 (scale it with
    ``standardize``), ``y`` int64 in 0..9. The split is a fixed stratified 80/20
    (1,438 / 359 images) so that reported test accuracies are comparable across
    runs and machines; ``split=False`` returns all 1,797 images in file order.

    >>> (X, y), (Xt, yt) = load_digits()
    >>> X.shape, Xt.shape
    ((1438, 64), (359, 64))
    """
    images, labels = _read_digits()
    X, y = images.astype(np.float32), labels.astype(np.int64)
    if not split:
        return X, y
    train, test = _stratified_split(y, DIGITS_TEST_FRACTION, _DIGITS_SPLIT_SEED)
    return (X[train], y[train]), (X[test], y[test])


_standardize = standardize  # the loaders' option of the same name shadows it


def _load_digits_dataset(standardize: bool = False, validation_split: float = 0.0) -> Dataset:
    """The digits as a ``Dataset``: ``validation_split`` of the training part (stratified,
    fixed) becomes the validation set; ``standardize`` uses the remaining training
    part's statistics for all three parts."""
    (X, y), test = load_digits()
    validation = None
    if validation_split > 0:
        keep, held = _stratified_split(y, validation_split, _DIGITS_SPLIT_SEED + 1)
        if len(keep) == 0 or len(held) == 0:
            raise DatasetError(f"validation_split={validation_split} leaves an empty part",
                               "validation_split")
        (X, y), validation = (X[keep], y[keep]), (X[held], y[held])
    if standardize:
        parts = [X, test[0]] + ([validation[0]] if validation else [])
        scaled = _standardize(*parts)
        X, test = scaled[0], (scaled[1], test[1])
        if validation:
            validation = (scaled[2], validation[1])
    return Dataset("digits", (X, y), validation, test, num_classes=10, input_shape=(64,))


#: Loaders by name. Each one's keyword arguments (with annotations and defaults) are
#: the options the spec files' ``data`` section accepts for it.
DATASETS: dict[str, Callable[..., Dataset]] = {"digits": _load_digits_dataset,
                                               "npz": load_npz_dataset}


def options(name: str, **opts) -> dict:
    """The options of data set ``name`` checked and with defaults filled, without loading.

    Spec files call this so a bad ``data`` section fails before any training.
    Raises ``DatasetError`` (a ``ValueError``) whose ``key`` names the bad option.
    """
    loader = _loader(name)
    params = inspect.signature(loader).parameters
    for key in opts:
        if key not in params:
            raise DatasetError(f"unknown option {key!r} for data set {name!r}; valid: "
                               f"{', '.join(params)}", key)
    checked = {k: p.default for k, p in params.items()}
    for key, value in opts.items():
        default = params[key].default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise DatasetError(f"{key}: expected true or false, got {value!r}", key)
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DatasetError(f"{key}: expected a number, got {value!r}", key)
            value = float(value)
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise DatasetError(f"{key}: expected a string, got {value!r}", key)
        checked[key] = value
    for key in ("validation_split", "test_split"):
        split = checked.get(key)
        if split is not None and not 0.0 <= split < 1.0:
            raise DatasetError(f"{key}: expected a fraction in [0, 1), got {split!r}", key)
    return checked


def _loader(name: str) -> Callable[..., Dataset]:
    if not isinstance(name, str) or name not in DATASETS:
        raise DatasetError(f"unknown data set {name!r}; available: {', '.join(DATASETS)}")
    return DATASETS[name]


def load(name: str, **opts) -> Dataset:
    """Load the embedded data set ``name`` with its options (no network, ever).

    >>> ds = load("digits", standardize=True, validation_split=0.1)
    >>> ds.train[0].shape[1], ds.validation is not None
    (64, True)
    """
    return _loader(name)(**options(name, **opts))
