"""The one cast rule a value meets on its way into the graph: a function's input array and a
shared variable's ``set_value`` alike.

numpy's ``same_kind`` casts allow int64 -> int32 and wrap what does not fit: an id of 2**40
stored as 0, uint64 labels of 2**64 - 1 read as index -1. The caller checks ``same_kind``;
this module finds the value such a cast would wrap, so it can be refused by name.

>>> wrapped_value(np.array([1, 2**40]), np.dtype("int32"))
1099511627776
"""

from __future__ import annotations

import numpy as np

__all__ = ["wrapped_value"]


def wrapped_value(array: np.ndarray, dtype: np.dtype):
    """The first of ``array``'s extremes that an integer cast to integer ``dtype`` would wrap,
    else None (also for float or bool arrays or dtypes, and empty arrays)."""
    if array.dtype.kind not in "iu" or dtype.kind not in "iu" or not array.size:
        return None
    info, lo, hi = np.iinfo(dtype), array.min(), array.max()
    return lo if lo < info.min else hi if hi > info.max else None
