"""Python's cyclic garbage collector paused while a graph is differentiated or compiled.

Why: building, rewriting and lowering a large graph allocates hundreds of thousands of
objects that live until the compile ends, and each full collection walks all of them: the
collections grew faster than the graph (an LSTM unrolled over 200 steps: 6-7 s to compile with
the collector running, 4-5 s paused; over 100: 2.9-3.1 s against 2.5-2.7 s).  The
garbage a compile leaves (replaced nodes, IR text) is collected after it, as usual.

Pauses nest and may overlap between threads: the collector comes back when the last one
ends, and only if it was running when the first began.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

__all__ = ["gc_paused", "without_gc"]

_lock = threading.Lock()
_depth = 0
_restore = False  # the collector ran when the outermost pause began

F = TypeVar("F", bound=Callable)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Run the body with the cyclic collector off (see the module docstring)."""
    global _depth, _restore
    with _lock:
        if _depth == 0:
            _restore = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _restore:
                gc.enable()


def without_gc(fn: F) -> F:
    """``fn`` run inside :func:`gc_paused`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with gc_paused():
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def _after_fork_in_child() -> None:
    # a fork from another thread mid-compile: that compile does not exist in the child
    global _lock, _depth, _restore
    _lock = threading.Lock()
    if _depth and _restore:
        gc.enable()
    _depth, _restore = 0, False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
