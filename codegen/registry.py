"""The LLVM backend's knowledge of each op class: one :class:`Lowering` record per class.

Why one record: fusion (which variables are computed inside a consumer's loop), grouping,
the in-place planner and the lowering all ask the same questions about an op; before, each
kept its own ``isinstance`` tuple.  A record is registered next to the op's lowering
(:mod:`codegen.lower_elementwise`, :mod:`codegen.lowerings`, :mod:`codegen.lower_blas`) with
:func:`register_lowering`; backend-neutral facts (which inputs give only their shape, which
ops alias their input's bytes, how big an output is for concrete inputs) are methods of the
op classes themselves (``symgraph/ops``), read here through :func:`shape_only` and
:func:`aliases_input` so an op that does not define them gets the neutral answer.

Warm starts: the analysis of a graph needs only the records' flags, and a program loaded from
the program cache needs nothing else of the lowering; importing the lowering modules just to
register them cost ~3 ms of a ~25 ms warm start.  So the flags of the package's own records
are kept in a *facts snapshot* (:func:`codegen.native.cache.store_facts`, keyed by the
compiler's source fingerprint), written once the lowering modules are imported and read by
:func:`facts` while they are not.  :func:`lowering` (the rules themselves) always imports them
first (:func:`load_lowerings`), so a rule from the snapshot is never called.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from typing import NamedTuple

from symgraph.graph import Constant, dtype_name

from .dtypes import MEM_TYPE
from .kernel_info import node_error
from .native import cache, vecmath

__all__ = ["LOWERINGS", "Lowering", "aliases_input", "changed_tunables", "check_lowerable",
           "facts", "load_lowerings", "lowering", "register_lowering", "register_tunables",
           "shape_only"]


class Lowering(NamedTuple):
    """How the LLVM backend computes one op class, and what fusion may do with it (a
    NamedTuple: the frozen dataclass of these fields cost ~0.7 ms of every process
    that imports the backend)."""

    #: ``(kernel, node) -> None``: writes a buffered result (its own kernel); None for ops
    #: that are computed by an elementwise loop over ``inline``
    kernel: Callable | None = None
    #: ``(kernel, node, index) -> Value``: the value at one index, inside any loop
    inline: Callable | None = None
    #: an inline op cheap enough to recompute wherever it is read (sizes, aranges, one-hots)
    cheap: bool = False
    #: the op's loop evaluates a whole elementwise tree of inputs per element: "output" or
    #: "input" (reductions: the loop runs over input 0's shape); None when it does not.
    #: "output" also promises that each input is read at the index the op writes: kernel
    #: grouping and in-place updates rely on it (a flip or roll must not claim it)
    fuses: str | None = None
    #: reads its inputs element by element (through ``Kernel.value_at``), so an input may be
    #: an inline value or a transposing view
    value_consumer: bool = False
    #: a transposing view: read through permuted indices by value consumers (``inline``),
    #: never computed into a loop of its own unless a consumer needs memory
    view: bool = False
    #: its inline value at an index depends only on the flat position (a flat loop works)
    flat: bool = False
    #: 2-d matrix operands may be transposed views (read as a BLAS transpose flag)
    transposed_operands: bool = False
    #: stacks of matrices may be any permuting view whose matrices are strided blocks of its
    #: source (:func:`codegen.fusion.strided_matrices`: a leading dimension and a transpose
    #: flag per operand, an offset per matrix)
    strided_operands: bool = False
    #: checks values at run time (index bounds, labels): a call may fail in its kernel
    fallible: bool = False
    #: ``(kernel, node) -> None`` run before the main loop of any kernel computing the node
    precheck: Callable | None = None


#: op class -> its lowering (exact classes: a subclass is a different op)
LOWERINGS: dict[type, Lowering] = {}


def register_lowering(op_class: type, record: Lowering) -> None:
    """Make ``record`` the LLVM lowering of ``op_class`` (one per class)."""
    if record.kernel is None and record.inline is None:
        raise ValueError(f"lowering of {op_class.__name__}: give kernel or inline")
    LOWERINGS[op_class] = record


def lowering(op) -> Lowering | None:
    """The record of ``op``'s class, or None (an op the backend cannot compile)."""
    if not _loaded:
        load_lowerings()
    return LOWERINGS.get(type(op))


_NONE = Lowering(kernel=lambda k, node: None)


def facts(op) -> Lowering:
    """Like :func:`lowering`, with all flags off for an op without a record; only the flags
    are meant to be read (before the lowering modules are imported, the rules are
    stand-ins from the facts snapshot)."""
    cls = type(op)
    rec = LOWERINGS.get(cls)
    if rec is None and not _loaded:
        rec = _snapshot_record(cls)
        if rec is None:
            load_lowerings()
            rec = LOWERINGS.get(cls)
    return _NONE if rec is None else rec


def known(op) -> bool:
    """Does ``op``'s class have a lowering (from the facts snapshot while it can tell)?"""
    return facts(op) is not _NONE


# --------------------------------------------------------------------------- facts snapshot
#: the module whose import registers every lowering of the package (it imports the lowering
#: modules): named, not imported, because the registry must not depend on what registers
#: into it (as ``symgraph.backends`` names its backends)
PROVIDER = "codegen.lower"
#: has :data:`PROVIDER` been imported?
_loaded = False
#: one thread imports the provider at a time (another compiling thread waits, then finds the
#: records); reentrant in case the import itself asks for a record
_load_lock = threading.RLock()
#: class name -> record with stand-in rules, read from the snapshot (None: not read yet)
_snapshot: dict[str, Lowering] | None = None
#: the flags of a record, in snapshot order
_FLAGS = ("cheap", "fuses", "value_consumer", "view", "flat", "transposed_operands",
          "strided_operands", "fallible")
_RULES = ("kernel", "inline", "precheck")
_SNAPSHOT_FORMAT = 1


def _stand_in(*args) -> None:
    raise RuntimeError("internal: a lowering rule from the facts snapshot was called "
                       "(codegen.registry.lowering loads the real ones first)")


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def own_record(cls: type, rec: Lowering) -> bool:
    """Are the class and its rules the package's (covered by the source fingerprint)?"""
    rules = [getattr(r, "__module__", "") or "" for r in (rec.kernel, rec.inline, rec.precheck)
             if r is not None]
    return cls.__module__.startswith(("symgraph.", "codegen.")) and \
        all(m.startswith(("symgraph.", "codegen.")) for m in rules)


def _snapshot_record(cls: type) -> Lowering | None:
    global _snapshot
    if _snapshot is None:
        _snapshot = _read_snapshot()
    return _snapshot.get(_class_name(cls))


def _read_snapshot() -> dict[str, Lowering]:
    data = cache.load_facts()
    if not data or data.get("format") != _SNAPSHOT_FORMAT or data.get("flags") != _FLAGS:
        return {}
    records = {}
    for name, (rules, flags) in data.get("records", {}).items():
        stand_ins = {r: _stand_in for r, present in zip(_RULES, rules) if present}
        records[name] = Lowering(**stand_ins, **dict(zip(_FLAGS, flags)))
    return records


def snapshot() -> dict:
    """The facts snapshot of the registered records that are the package's own (a class
    name that is not unique is left out: it would not identify one class)."""
    counts: dict[str, int] = {}
    for cls in LOWERINGS:
        counts[_class_name(cls)] = counts.get(_class_name(cls), 0) + 1
    records = {_class_name(cls): (tuple(getattr(rec, r) is not None for r in _RULES),
                                  tuple(getattr(rec, f) for f in _FLAGS))
               for cls, rec in LOWERINGS.items()
               if counts[_class_name(cls)] == 1 and own_record(cls, rec)}
    return {"format": _SNAPSHOT_FORMAT, "flags": _FLAGS, "records": records}


def load_lowerings() -> None:
    """Import the modules that register the package's lowerings (once), and keep their
    facts snapshot on disk if it is not there yet."""
    global _loaded, _snapshot
    if _loaded:
        return
    with _load_lock:
        if _loaded:
            return
        # records registered before (a user's, for the package's own op classes) stay in
        # force, as they did when the provider was imported with the backend
        earlier = {cls: rec for cls, rec in list(LOWERINGS.items()) if not own_record(cls, rec)}
        importlib.import_module(PROVIDER)
        LOWERINGS.update(earlier)
        if _snapshot is None:
            _snapshot = _read_snapshot()
        if not _snapshot:
            cache.store_facts(snapshot())
        _loaded = True


def check_lowerable(nodes) -> None:
    """Raise ``LoweringError`` for the first of ``nodes`` the backend cannot compile: no
    lowering, a scalar op without a body, a libm function that does not exist, a constant
    of an unsupported dtype."""
    for node in nodes:
        if not known(node.op):
            raise node_error(node, "no lowering for this op")
        sop = getattr(node.op, "scalar_op", None)
        if sop is not None and sop.lower is None:
            raise node_error(node, "the scalar op has no lower()")
        if sop is not None and sop.math is not None:
            try:
                vecmath.register(sop.math, sop.arity)
            except ValueError as err:
                raise node_error(node, str(err)) from None
        for x in node.inputs:
            if isinstance(x, Constant) and dtype_name(x.dtype) not in MEM_TYPE:
                raise node_error(node, f"constant of dtype {dtype_name(x.dtype)}")


def shape_only(op, index: int) -> bool:
    """Does input ``index`` of ``op`` contribute only its shape (``Op.shape_only``)?"""
    return op.shape_only(index)


def aliases_input(op) -> bool:
    """Is ``op``'s output its input's bytes with a new shape (``Op.aliases_input``)?"""
    return op.aliases_input()


#: module name -> (module, names of its settings, their reprs when it registered them)
_TUNABLES: dict[str, tuple] = {}


def register_tunables(module_name: str, names: tuple[str, ...]) -> None:
    """Declare module-level settings of module ``module_name`` that change the code it
    generates (thresholds, tile sizes, loop hints); called as the module is imported, so the
    values recorded are the source's.

    Why: the program cache keys on the compiler's source files (``source_fingerprint``), not
    on values set at run time, so a program compiled while a test or a benchmark had patched
    a setting was later taken for the default one (or the reverse) from memory or disk.
    :func:`changed_tunables` is part of the key: empty while nothing differs from the
    source, which is also all a warm start (that imports no lowering module) can see."""
    module = sys.modules[module_name]
    _TUNABLES[module_name] = (module, names, tuple(repr(getattr(module, n)) for n in names))


def changed_tunables() -> str:
    """``module.NAME=value`` for every registered setting whose value differs from the one
    its module was imported with, ``;``-joined in a stable order (``""`` if none)."""
    parts = []
    for name, (module, names, first) in sorted(_TUNABLES.items()):
        for attr, was in zip(names, first):
            now = repr(getattr(module, attr))
            if now != was:
                parts.append(f"{name}.{attr}={now}")
    return ";".join(parts)
