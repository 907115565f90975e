"""Python's cyclic garbage collector paused while a graph is differentiated or compiled.

Why: building, rewriting and lowering a large graph allocates hundreds of thousands of
objects that live until the compile ends, and each full collection walks all of them: the
collections grew faster than the graph (an LSTM unrolled over 200 steps: 6-7 s to compile with
the collector running, 4-5 s paused; over 100: 2.9-3.1 s against 2.5-2.7 s).  The
garbage a compile leaves (replaced nodes, IR text) is collected after it, as usual.

Pauses nest and may overlap between threads: the collector comes back when the last one
ends, and only if it was running when the first began.  The pause is process-wide, so while
one thread compiles, other threads run without cyclic collection too; a ``gc.disable()`` made
during a pause is undone when the pause ends.  A forked child keeps only its own thread's
pauses.
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
_depth: dict[int, int] = {}  # thread ident -> its pauses now open
_restore = False  # the collector ran when the first open pause began

F = TypeVar("F", bound=Callable)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Run the body with the cyclic collector off (see the module docstring)."""
    global _restore
    me = threading.get_ident()
    with _lock:
        if not _depth:
            _restore = gc.isenabled()
        gc.disable()
        _depth[me] = _depth.get(me, 0) + 1
    try:
        yield
    finally:
        with _lock:
            left = _depth.get(me, 0) - 1  # (a forked child starts with no open pause)
            if left <= 0 and _depth.keys() <= {me} and _restore:  # no other thread's
                gc.enable()  # first: an interrupt after it leaves the collector on
            if left > 0:
                _depth[me] = left
            else:
                _depth.pop(me, None)


def without_gc(fn: F) -> F:
    """``fn`` run inside :func:`gc_paused`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with gc_paused():
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def _before_fork() -> None:
    _lock.acquire()  # no pause is half begun or half ended in the child


def _after_fork_in_parent() -> None:
    _lock.release()


def _after_fork_in_child() -> None:
    # only the forking thread lives on: other threads' pauses will never end here
    global _lock, _restore
    _lock = threading.Lock()
    mine = _depth.get(threading.get_ident(), 0)
    _depth.clear()
    if mine:
        _depth[threading.get_ident()] = mine
    elif _restore:
        gc.enable()
        _restore = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
