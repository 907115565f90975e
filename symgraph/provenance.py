"""Where a node comes from: the user's source line, the name scope, the ``grad`` call.

Why a module of its own: ``Apply`` (in ``graph``) reads these when it is built, ``grad``
sets the gradient tag, the model API opens name scopes and registers its package as
internal; none of that needs the IR classes, so it sits below ``graph`` and ``graph``
re-exports it. State is thread-local, so two threads building graphs do not mix tags.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import sys
import threading
from dataclasses import dataclass

__all__ = ["Site", "at_site", "current_scope", "grad_tag", "name_scope",
           "register_internal_package", "user_site"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_INTERNAL_DIRS = (_PACKAGE_DIR,)


# --------------------------------------------------------------------------- creation site


@dataclass(frozen=True)
class Site:
    """Where the user created a node: the first frame outside symgraph."""

    filename: str
    lineno: int

    @property
    def line(self) -> str:
        return linecache.getline(self.filename, self.lineno).strip()

    def __str__(self) -> str:
        text = self.line
        return f'File "{self.filename}", line {self.lineno}' + (f": {text}" if text else "")


def register_internal_package(path: str) -> None:
    """Frames under ``path`` are skipped when finding the user's line (frontends use it)."""
    global _INTERNAL_DIRS
    _INTERNAL_DIRS = (*_INTERNAL_DIRS, os.path.dirname(os.path.abspath(path)))


def user_site() -> Site | None:
    """The innermost :func:`at_site`'s site, else the first frame outside symgraph (and the
    packages registered as internal)."""
    site = getattr(_site_state, "site", None)
    if site is not None:
        return site
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_INTERNAL_DIRS):
            return Site(filename, frame.f_lineno)
        frame = frame.f_back
    return None


_site_state = threading.local()


@contextlib.contextmanager
def at_site(site: Site | None):
    """Nodes built inside this block record ``site`` as where the user made them (``None``:
    no change). For graphs a user describes in another file than Python: a spec file's
    layer is built by the command line's code, but its user wrote the spec's line."""
    previous = getattr(_site_state, "site", None)
    if site is not None:
        _site_state.site = site
    try:
        yield
    finally:
        _site_state.site = previous


# --------------------------------------------------------------------------- grad tagging

_tag_state = threading.local()


@contextlib.contextmanager
def grad_tag(forward_node, grad_call: object):
    """Nodes built inside this block are tagged as made by ``forward_node``'s bprop.

    ``forward_node`` is the forward ``Apply`` (or None), ``grad_call`` the ``grad`` call.
    """
    previous = getattr(_tag_state, "tag", None)
    _tag_state.tag = (forward_node, grad_call)
    try:
        yield
    finally:
        _tag_state.tag = previous


def current_tag() -> tuple | None:
    """``(forward node, grad call)`` of the innermost ``grad_tag`` block, or None."""
    return getattr(_tag_state, "tag", None)


# --------------------------------------------------------------------------- name scopes


@contextlib.contextmanager
def name_scope(name: str):
    """Nodes built inside this block record ``name`` as their ``scope`` (nested: ``a/b``).

    Layers of the model API wrap their graph-building in their own name, so
    printed graphs, pictures and errors read as the model does.

    >>> with sg.name_scope("dense_1"):
    ...     h = x @ W + b            # h.owner.scope == "dense_1"
    """
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"a name scope is a non-empty string without '/', got {name!r}")
    previous = getattr(_tag_state, "scope", None)
    _tag_state.scope = name if previous is None else f"{previous}/{name}"
    try:
        yield _tag_state.scope
    finally:
        _tag_state.scope = previous


def current_scope() -> str | None:
    """The innermost active ``name_scope`` (``"outer/inner"``), or None."""
    return getattr(_tag_state, "scope", None)
