"""Storage of shared variables: C-contiguous arrays whose data starts on a 64-byte boundary.

Why: a shared variable's array is what a compiled step reads and updates in place, one
64-byte vector (an AVX-512 register, a cache line) at a time. numpy only promises 16-byte
alignment, so in general every such vector spans two cache lines and costs two accesses.
Measured on the W1 MLP (784-512-256-10, batch 128), the same step with its parameters and
Adam moments aligned against misaligned by 16 bytes, same process, alternating chunks:
Adam 0.875-0.96x the time, SGD 0.95-0.97x; the memory-bound update loops gain the most, and
more in the machine's slow mode. Huge pages for them gained nothing on top (1.01x).

Small arrays are the exception: W2's step (64-32-10, arrays up to 8 KiB) ran 1.00x and 0.99x
aligned, while an aligned copy costs ~1 us more than ``ndarray.copy()`` in Python (an
allocation and an address lookup), paid on paths that copy per call (an epoch's private
copies of its in-place variables). So arrays under :data:`ALIGN_FROM` bytes are plain copies.

Every array a shared variable adopts is made here: at construction and ``set_value``, and by
the llvm backend for each update it adopts or restores. The numpy backend's fresh results
are adopted as they are (its speed does not depend on it; a copy per update would).
Alignment is a matter of speed only: compiled code accepts any array numpy calls aligned.
Call them qualified (``storage.copy``, ``storage.empty``): the names say what, the module how.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np

__all__ = ["ALIGN", "ALIGN_FROM", "address", "aligned_empty", "copy", "empty", "is_aligned"]

#: bytes: one cache line, one AVX-512 vector
ALIGN = 64
#: arrays of at least this many bytes are aligned by :func:`copy` and :func:`empty`
ALIGN_FROM = 16 * 1024


def aligned_empty(shape: tuple[int, ...], dtype, *, zeroed: bool = False) -> np.ndarray:
    """A C-contiguous array of ``shape`` and ``dtype`` starting on an :data:`ALIGN` boundary
    (uninitialised unless ``zeroed``), whatever its size."""
    dtype = np.dtype(dtype)
    raw = (np.zeros if zeroed else np.empty)(math.prod(shape) * dtype.itemsize + ALIGN,
                                             np.uint8)
    return np.ndarray(shape, dtype, raw, -address(raw) % ALIGN)


def empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised C-contiguous array for a value: aligned from :data:`ALIGN_FROM`
    bytes on."""
    dtype = np.dtype(dtype)
    if math.prod(shape) * dtype.itemsize < ALIGN_FROM:
        return np.empty(shape, dtype)
    return aligned_empty(shape, dtype)


def copy(array, dtype=None) -> np.ndarray:
    """A private, C-contiguous copy of ``array`` for a value (cast to ``dtype`` if given, as
    ``np.array(array, dtype=dtype)`` casts), aligned from :data:`ALIGN_FROM` bytes on."""
    array = np.asarray(array)
    dtype = array.dtype if dtype is None else np.dtype(dtype)
    if array.size * dtype.itemsize < ALIGN_FROM:
        if dtype is array.dtype:  # (ndarray.copy, C order: ~0.5 us less than np.array's)
            return array.copy()
        return np.array(array, dtype=dtype, copy=True, order="C")
    out = aligned_empty(array.shape, dtype)
    out[...] = array
    return out


def is_aligned(array: np.ndarray) -> bool:
    """Does ``array``'s data start on an :data:`ALIGN` boundary?"""
    return address(array) % ALIGN == 0


def address(a: np.ndarray) -> int:
    """The data pointer of ``a``: ``ctypes.addressof`` of its buffer (~0.3 us) where numpy's
    ``a.ctypes.data`` costs ~1.2 us (read-only, empty or non-contiguous arrays, which export
    no such buffer, take ``a.ctypes.data``)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data
