"""What every data set shares: the ``Dataset`` record, its error, fixed hash splits and
standardisation (a module of its own so that each loader can import it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset", "DatasetError", "hash_keys", "standardize", "stratified_split"]


class DatasetError(ValueError):
    """A bad data-set name or option; ``key`` names the option at fault (``None``: the name)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Dataset:
    """What ``load`` returns: ``(X, y)`` pairs for each part; ``validation`` may be ``None``."""

    name: str
    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray] | None
    test: tuple[np.ndarray, np.ndarray]
    num_classes: int
    input_shape: tuple[int, ...]


def hash_keys(n: int, seed: int) -> np.ndarray:
    """A fixed pseudo-random uint64 key per index 0..n-1 (splitmix64 finaliser).

    Pure unsigned 64-bit integer arithmetic (wrap-around is defined), so the keys,
    and every split built on them, are identical on every machine and numpy
    version; ``np.random`` streams carry no such promise across versions.
    """
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def stratified_split(labels: np.ndarray, fraction: float, seed: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out), each sorted: ``round(fraction * n_c)`` of every class held out.

    Within a class the examples are ordered by a fixed hash of their index and the
    first ones are held out, so the choice is random-looking but reproducible.
    """
    keys = hash_keys(len(labels), seed)
    held = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[np.argsort(keys[members], kind="stable")]
        held.append(members[:int(round(fraction * len(members)))])
    held_out = np.sort(np.concatenate(held))
    keep = np.setdiff1d(np.arange(len(labels)), held_out)
    return keep, held_out


def standardize(train: np.ndarray, *others: np.ndarray, eps: float = 1e-8
                ) -> tuple[np.ndarray, ...]:
    """``(a - mean) / std`` per feature for ``train`` and each of ``others``, with the
    statistics of ``train`` alone (using test statistics would leak the test set).

    Features are everything after axis 0. A feature whose training std is
    ``<= eps`` (constant, like the digits' always-blank corner pixels) is divided
    by 1, not by ``eps``: it becomes exactly 0 on the training set, and a test
    value that differs keeps its raw size instead of being blown up by 1/eps into
    a huge input the model never saw. Floating inputs keep their dtype (the
    arithmetic is float64); integer inputs come back float64.

    >>> a, b = standardize(np.array([[0.0], [2.0]]), np.array([[4.0]]))
    >>> a.ravel().tolist(), b.ravel().tolist()
    ([-1.0, 1.0], [3.0])
    """
    arrays = (train, *others)
    arrays = tuple(np.asarray(a) for a in arrays)
    for i, a in enumerate(arrays):
        if a.ndim == 0 or not (np.issubdtype(a.dtype, np.number) and a.dtype.kind != "c"):
            raise TypeError(f"standardize: array {i} must be a real numeric array with a "
                            f"sample axis, got dtype {a.dtype} and shape {a.shape}")
        if a.shape[1:] != arrays[0].shape[1:]:
            raise ValueError(f"standardize: array {i} has feature shape {a.shape[1:]}, "
                             f"the training array {arrays[0].shape[1:]}")
    if len(arrays[0]) == 0:
        raise ValueError("standardize: the training array is empty; no statistics to use")
    ref = arrays[0].astype(np.float64)
    mean = ref.mean(axis=0)
    std = ref.std(axis=0)
    std = np.where(std <= eps, 1.0, std)
    out = []
    for a in arrays:
        dtype = a.dtype if np.issubdtype(a.dtype, np.floating) else np.dtype(np.float64)
        out.append(((a.astype(np.float64) - mean) / std).astype(dtype))
    return tuple(out)
