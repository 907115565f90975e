"""Storage of shared variables: C-contiguous arrays whose data starts on a 64-byte boundary.

Why: a shared variable's array is what a compiled step reads and updates in place, one
64-byte vector (an AVX-512 register, a cache line) at a time. numpy only promises 16-byte
alignment, so in general every such vector spans two cache lines and costs two accesses.
Measured on the W1 MLP (784-512-256-10, batch 128), the same step with its parameters and
Adam moments aligned against misaligned by 16 bytes, same process, alternating chunks:
Adam 0.875-0.96x the time, SGD 0.97x; the memory-bound update loops gain the most, and more
in the machine's slow mode. Huge pages for them gained nothing on top (1.01x).

So every array a shared variable adopts is made here: at construction and ``set_value``,
and by the llvm backend for each update it adopts or restores. The numpy backend's fresh
results are adopted as they are (its speed does not depend on it; a copy per update would).
Alignment is a matter of speed only: compiled code accepts any array numpy calls aligned.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ALIGN", "aligned_copy", "aligned_empty", "is_aligned"]

#: bytes: one cache line, one AVX-512 vector
ALIGN = 64


def aligned_empty(shape: tuple[int, ...], dtype, *, zeroed: bool = False) -> np.ndarray:
    """A C-contiguous array of ``shape`` and ``dtype`` starting on an :data:`ALIGN` boundary
    (uninitialised unless ``zeroed``)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = (np.zeros if zeroed else np.empty)(nbytes + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def aligned_copy(array, dtype=None) -> np.ndarray:
    """A private, aligned, C-contiguous copy of ``array`` (cast to ``dtype`` if given, as
    ``np.array(array, dtype=dtype)`` casts)."""
    array = np.asarray(array)
    out = aligned_empty(array.shape, array.dtype if dtype is None else dtype)
    np.copyto(out, array, casting="unsafe")
    return out


def is_aligned(array: np.ndarray) -> bool:
    """Does ``array``'s data start on an :data:`ALIGN` boundary?"""
    return array.ctypes.data % ALIGN == 0
