"""Canonical signature of a compiled graph, and what a program needs besides its object code.

Why: keying the disk cache on the IR text means lowering the graph to IR in every process
before the cache can even be asked — most of a warm start.  Instead :func:`graph_signature`
describes the rewritten graph itself (op keys via ``Op._key()``, types, topology, constants'
bytes, the function's inputs, shared variables and updates) with every variable numbered in a
canonical order (``Analysis.all_nodes``), so equal graphs built in different processes get the
same text.  The cache key adds the compiler's own source (:func:`codegen.native.cache.program_key`),
so changing the lowering invalidates old entries.

On a hit the program still needs what the lowering would have produced besides the code: the
kernels (``f.kernels``: which nodes, which buffers they read, whether they can fail), the
int64 table's slots (functions of the concrete shapes) and the fusion analysis it was
lowered from (:func:`encode_analysis`: a warm start does not analyse again).
:func:`encode_meta` writes them as plain data with canonical variable numbers;
:func:`decode_meta` rebuilds them against the current graph.  A slot is stored only if it
can be rebuilt *exactly* (same function code, same captured values), checked when storing:
anything else (a new kind of slot) just keeps that graph on the lowering path.
"""

from __future__ import annotations

import functools
import hashlib
import os
from typing import Any

import numpy as np

from symgraph.graph import Constant, SharedVariable, Variable

from .fusion import Analysis
from .kernel_info import KernelInfo, ModuleContext, dim_slot, output_slot, zero_slot
from .native import blas, parallel, vecmath
from .registry import LOWERINGS, own_record

__all__ = ["META_FORMAT", "Numbering", "Unsupported", "decode_analysis", "decode_meta",
           "encode_analysis", "encode_meta", "environment_text", "graph_signature"]

#: version of the data written by :func:`encode_meta`
META_FORMAT = 3


class Unsupported(ValueError):
    """The graph (or its lowering) cannot be described canonically: use the lowering path."""


def _canon(value: Any) -> str:
    """Canonical text of an op property (``Op._key()`` element)."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(_canon(v) for v in value) + ")"
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, np.dtype):
        return "dtype:" + value.str
    if isinstance(value, np.generic):
        return f"np:{value.dtype.str}:{value.tobytes().hex()}"
    if isinstance(value, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        return f"nd:{value.dtype.str}:{value.shape}:{digest}"
    if isinstance(value, slice):
        return f"slice({_canon(value.start)},{_canon(value.stop)},{_canon(value.step)})"
    module = type(value).__module__ or ""
    if module.startswith("sympy"):
        if type(value).__name__ == "Symbol":  # (equal symbols print alike: memoised)
            return _symbol_text(value)
        from sympy import srepr

        return "sympy:" + srepr(value)
    raise Unsupported(f"no canonical form for {type(value).__name__}")


@functools.lru_cache(maxsize=4096)
def _symbol_text(value) -> str:
    """``srepr`` of a symbolic dim, once per dim and process: a graph's types name the same
    few dims again and again, and each ``srepr`` took ~10 us (~1 ms of W1's signature).
    Symbols only: other expressions may compare equal and print differently (2 and 2.0)."""
    from sympy import srepr

    return "sympy:" + srepr(value)


_OWN = ("symgraph.", "codegen.")


def _check_own_code(node) -> None:
    """Only the package's own ops and lowerings are covered by the source fingerprint in the
    key; a user-defined op, scalar op or lowering rule could change without it changing."""
    op = node.op
    if not type(op).__module__.startswith(_OWN):
        raise Unsupported(f"op {type(op).__qualname__} is defined outside the package")
    # a record registered in this process (the package's, or the user's for a package op);
    # none registered yet: the package's own will be (and the facts snapshot stays unread)
    rec = LOWERINGS.get(type(op))
    if rec is not None and not own_record(type(op), rec):
        raise Unsupported(f"lowering of {type(op).__qualname__} is defined outside the package")
    sop = getattr(op, "scalar_op", None)
    if sop is not None:
        for fn in (sop.lower, sop.dtype_rule):
            if fn is not None and not getattr(fn, "__module__", "").startswith(_OWN):
                raise Unsupported(f"scalar op {sop.name} is defined outside the package")


def environment_text(split_minimum: int | None, tunables: str) -> str:
    """What else the generated IR depends on: glibc/libmvec (vector maths) and numpy's BLAS
    (symbol scheme, integer width), from how many elements loops run on its threads
    (``split_minimum``: :func:`codegen.native.parallel.split_minimum`, None for never), and
    the lowering's settings changed at run time (``tunables``:
    :func:`codegen.registry.changed_tunables`, read once by the caller, which keeps it)."""
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):
        glibc = "unknown"
    try:
        lib = blas.library()
        blas_text = f"{lib.prefix}|{lib.suffix}|{lib.int_bits}"
    except RuntimeError:
        blas_text = "none"
    return (f"glibc={glibc};libmvec={vecmath._libmvec() is not None};blas={blas_text};"
            f"{parallel.codegen_key(split_minimum)};tunables={tunables}")


def _type_text(var: Variable) -> str:
    return f"{var.dtype.str}{_canon(tuple(var.shape))}"


class Numbering:
    """Canonical numbers of the variables and nodes of a program's graph: ``nodes`` is
    ``toposort`` of its outputs and update expressions (``Analysis.all_nodes``)."""

    def __init__(self, program, nodes: list):
        self.nodes = list(nodes)
        self.variables: list[Variable] = []
        self.index: dict[Variable, int] = {}
        self.node_index = {node: n for n, node in enumerate(self.nodes)}

        def add(var: Variable) -> None:
            if var not in self.index:
                self.index[var] = len(self.variables)
                self.variables.append(var)

        for var in program.inputs + program.shared:
            add(var)
        for node in self.nodes:
            for x in node.inputs:
                add(x)
            for o in node.outputs:
                add(o)
        for var in program.outputs + program.update_exprs:
            add(var)
        self.by_id = {v.id: v for v in self.variables}


def graph_signature(program, numbering: Numbering) -> str:
    """Text identifying the program's rewritten graph up to variable identity (see module
    docstring).  Raises :class:`Unsupported` for an op property without a canonical form."""
    num = numbering
    inputs = {v: k for k, v in enumerate(program.inputs)}
    shared = {v: k for k, v in enumerate(program.shared)}
    lines = [f"inputs {len(program.inputs)} shared {len(program.shared)} "
             f"flush_denormals {program.request.flush_denormals}"]
    for n, var in enumerate(num.variables):
        if var.owner is not None:
            continue
        if var in inputs:
            kind = f"input {inputs[var]}"
        elif var in shared:
            kind = f"shared {shared[var]}"
        elif isinstance(var, Constant):
            digest = hashlib.sha256(var.value.tobytes()).hexdigest()
            kind = f"const {var.value.dtype.str} {var.value.shape} {digest}"
        elif isinstance(var, SharedVariable):
            raise Unsupported("a shared variable outside the function's list")
        else:
            kind = "free"
        lines.append(f"v{n} {kind} {_type_text(var)}")
    for node in num.nodes:
        _check_own_code(node)
        key = _canon(node.op._key())
        ins = ",".join(str(num.index[x]) for x in node.inputs)
        outs = ",".join(f"{num.index[o]}:{_type_text(o)}" for o in node.outputs)
        lines.append(f"{key} [{ins}] -> [{outs}]")
    lines.append("outputs " + ",".join(str(num.index[v]) for v in program.outputs))
    lines.append("updates " + ",".join(f"{shared[var]}={num.index[e]}" for var, e in
                                       zip(program.update_vars, program.update_exprs)))
    return "\n".join(lines)


# --------------------------------------------------------------------------- table slots


def _rebuild_slot(key: tuple, num: Numbering):
    """The slot function the lowering makes for ``key`` (ids already mapped to variables)."""
    kind = key[0]
    if kind == "dim":
        _, var, axis = key
        return dim_slot(var, axis)
    if kind == "off":
        root = key[1]
        return lambda shapes, env, r=root: env["offsets"][r]
    if kind == "outp":
        return output_slot(key[1])
    if kind == "error":  # a field of the error record (codegen.lower.Kernel.fail_if)
        return zero_slot
    if kind == "sub":
        from .lowerings import _subtensor_fn  # lazy: a lowering module, only when needed

        _, out, axis, which = key
        node = out.owner
        return _subtensor_fn(node, node.op, axis, {"start": 0, "step": 1}[which])
    raise Unsupported(f"table slot of kind {kind!r}")


def _same_value(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, (int, str, float, tuple)) and type(a) is type(b):
        return a == b
    return False


def _same_function(a, b) -> bool:
    """Do ``a`` and ``b`` run the same code on the same captured values?"""
    ca, cb = getattr(a, "__code__", None), getattr(b, "__code__", None)
    if ca is None or cb is None:
        return False
    if (ca.co_code, ca.co_names, ca.co_consts, ca.co_varnames) != \
            (cb.co_code, cb.co_names, cb.co_consts, cb.co_varnames):
        return False
    da, db = a.__defaults__ or (), b.__defaults__ or ()
    cla, clb = a.__closure__ or (), b.__closure__ or ()
    if len(da) != len(db) or len(cla) != len(clb):
        return False
    return all(_same_value(x, y) for x, y in zip(da, db)) and \
        all(_same_value(x.cell_contents, y.cell_contents) for x, y in zip(cla, clb))


def _encode_slot_key(key: tuple, num: Numbering) -> list:
    if isinstance(key, tuple) and len(key) == 2 and key[0] == "error" and \
            isinstance(key[1], int):
        return ["error", -1, key[1]]
    if not (isinstance(key, tuple) and len(key) >= 2 and isinstance(key[0], str)
            and isinstance(key[1], int) and key[1] in num.by_id):
        raise Unsupported(f"table slot key {key!r}")
    rest = list(key[2:])
    if not all(isinstance(v, (int, str)) for v in rest):
        raise Unsupported(f"table slot key {key!r}")
    return [key[0], num.index[num.by_id[key[1]]], *rest]


def _decode_slot_key(item: list, num: Numbering) -> tuple:
    if item[0] == "error":
        return ("error", int(item[2]))
    return (item[0], num.variables[item[1]], *item[2:])


# --------------------------------------------------------------------------- metadata


def encode_meta(program, kernels, ctx, numbering: Numbering) -> dict:
    """Plain-data description of the lowering's results (see module docstring); raises
    :class:`Unsupported` if a slot cannot be rebuilt exactly."""
    num = numbering
    slots = []
    keys = sorted(ctx._slot_keys.items(), key=lambda kv: kv[1])
    if [i for _, i in keys] != list(range(len(ctx.slots))):
        raise Unsupported("table slots without keys")
    for key, i in keys:
        item = _encode_slot_key(key, num)
        try:
            rebuilt = _rebuild_slot(_decode_slot_key(item, num), num)
        except (KeyError, ValueError, TypeError, AttributeError) as err:
            raise Unsupported(f"table slot {key!r}: {err}") from err
        if not _same_function(ctx.slots[i], rebuilt):
            raise Unsupported(f"table slot {key!r} cannot be rebuilt")
        slots.append(item)
    ks = []
    for info in kernels:
        try:
            ks.append({
                "name": info.name,
                "output": num.index[info.output],
                "nodes": [num.node_index[n] for n in info.nodes],
                "reads": [num.index[v] for v in info.reads],
                "outputs": [num.index[v] for v in info.outputs],
                "fallible": bool(info.fallible),
                "blas": bool(info.blas),
                "parallel": bool(info.parallel),
                "function": info.function,
                "args": [int(a) for a in info.args],
            })
        except KeyError as err:
            raise Unsupported("a kernel refers to a variable outside the graph") from err
    return {"format": META_FORMAT, "kernels": ks, "slots": slots,
            "nvars": len(num.variables), "nnodes": len(num.nodes),
            "analysis": encode_analysis(program.analysis, num)}


def encode_analysis(an, num: Numbering) -> dict:
    """The fusion analysis (``codegen.fusion.Analysis``) as plain data with canonical
    numbers, in its dicts' order (the order of ``consts`` and of the kernels' arguments
    follows it).  Why: a warm start reads it instead of analysing again (~2 ms, ~4 in a new
    process).  Raises :class:`Unsupported` if it names a variable outside the graph."""
    v, n = num.index, num.node_index
    try:
        return {
            "mode": [[v[x], m] for x, m in an.mode.items()],
            "nodes": [n[node] for node in an.nodes],
            "uses": [[v[x], [[n[node], i] for node, i in uses]] for x, uses in an.uses.items()],
            "kernels": [v[x] for x in an.kernels],
            "members": [[v[x], [n[node] for node in nodes]] for x, nodes in an.members.items()],
            "inplace": [[v[e], v[x]] for e, x in an.inplace.items()],
            "folded": [[v[e], v[g], v[c]] for e, (g, c) in an.folded.items()],
            "epilogues": [[v[g], [v[x] for x in group]] for g, group in an.epilogues.items()],
        }
    except KeyError as err:
        raise Unsupported("the analysis names a variable outside the graph") from err


def decode_analysis(meta: dict, outputs: list, numbering: Numbering):
    """The ``Analysis`` :func:`encode_analysis` stored in ``meta``, rebuilt on the current
    graph (``outputs``: its outputs and update expressions).  Raises on malformed data."""
    if meta.get("format") != META_FORMAT or meta["nvars"] != len(numbering.variables) or \
            meta["nnodes"] != len(numbering.nodes):
        raise ValueError("metadata does not match the graph")
    data, var, node = meta["analysis"], numbering.variables, numbering.nodes
    an = Analysis(list(outputs), [node[i] for i in data["nodes"]], numbering.nodes)
    an.mode = {var[i]: str(m) for i, m in data["mode"]}
    an.uses = {var[i]: [(node[k], int(j)) for k, j in uses] for i, uses in data["uses"]}
    an.kernels = [var[i] for i in data["kernels"]]
    an.members = {var[i]: [node[k] for k in nodes] for i, nodes in data["members"]}
    an.inplace = {var[e]: var[i] for e, i in data["inplace"]}
    an.folded = {var[e]: (var[g], var[c]) for e, g, c in data["folded"]}
    an.epilogues = {var[g]: tuple(var[x] for x in group) for g, group in data["epilogues"]}
    return an


def decode_meta(meta: dict, analysis, numbering: Numbering):
    """``(kernels, ctx)`` for the current graph from :func:`encode_meta`'s output.  Raises
    (``KeyError``, ``IndexError``, ``TypeError``, ``ValueError``) on malformed metadata."""
    num = numbering
    if meta.get("format") != META_FORMAT or meta["nvars"] != len(num.variables) or \
            meta["nnodes"] != len(num.nodes):
        raise ValueError("metadata does not match the graph")
    var, node = num.variables, num.nodes

    def vars_(items: list) -> list:
        if not isinstance(items, list):
            raise TypeError("list expected")
        return [var[int(i)] for i in items]

    kernels = []
    for k in meta["kernels"]:
        info = KernelInfo(str(k["name"]), var[int(k["output"])],
                          [node[int(i)] for i in k["nodes"]], outputs=vars_(k["outputs"]))
        info.reads = vars_(k["reads"])
        info.fallible = bool(k["fallible"])
        info.blas = bool(k["blas"])
        info.parallel = bool(k.get("parallel", False))
        info.function = str(k.get("function", info.name))
        info.args = [int(a) for a in k.get("args", [])]
        kernels.append(info)
    ctx = ModuleContext(analysis)
    for item in meta["slots"]:
        key = _decode_slot_key(list(item), num)
        fn = _rebuild_slot(key, num)
        ctx.slot(key if key[0] == "error" else (key[0], key[1].id, *key[2:]), fn)
    return kernels, ctx
