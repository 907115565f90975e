"""Graph-building functions looked up at call time, so the layers below ``symgraph.ops``
can build graph without importing it.

Why: ``Variable.__add__`` (in ``graph``) and every op's ``bprop`` (in ``ops/*``) build new
nodes with ``add``, ``sum``, ``reshape``...; importing ``symgraph.ops`` for that from
``graph`` or from a sibling op module would make an import cycle. Instead ``symgraph.ops``
registers its public builders here when it is imported (``register``), and callers use
``from symgraph.dispatch import ops`` then ``ops.add(x, y)``: the import graph stays
acyclic (graph -> dispatch <- ops) and a lookup is a plain attribute access.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["ops", "register"]


class _Builders:
    """Namespace of the registered builders; a missing name is a clear error."""

    def __getattr__(self, name: str):  # called only for names not registered
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"symgraph.dispatch: no graph builder {name!r} is registered "
                             "(symgraph.ops registers them when it is imported)")


#: the builders ``symgraph.ops`` registered: ``ops.add``, ``ops.sum``, ``ops.reshape``...
ops = _Builders()


def register(functions: Mapping[str, Callable]) -> None:
    """Make ``functions`` (name -> builder) available as ``dispatch.ops.<name>``."""
    for name, fn in functions.items():
        if not callable(fn):
            raise TypeError(f"dispatch.register: {name!r} is not callable")
        setattr(ops, name, fn)
