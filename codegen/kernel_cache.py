"""Compile a step body by body: kernel bodies compiled for an earlier program are reused.

Why: a model that changes a little -- another optimizer, one layer's width, a layer more,
dropout off -- keeps most of its kernels.  Measured on the digits MLP (64-256-128-10,
Adam, dropout): 73-82% of the changed step's kernel IR was the same code as before, and
LLVM (O3 and machine code) is most of its compile.  The whole-program and whole-text caches
(:mod:`codegen.native.cache`) miss on any change; this one compiles only the bodies no
earlier program compiled, and the entry functions.

How: a body's symbol is named by its content (:func:`codegen.dedupe.content_name`), so the
same body has the same symbol in every program.  Bodies compile into modules of their own,
balanced over the compile threads (:mod:`codegen.partition`), as ``weak_odr`` definitions;
each such object file is stored under its text's key, and every body in it is indexed
(:func:`codegen.native.cache.find_body`).  A later program loads the object files holding
its known bodies (with whatever other bodies they hold, unused), compiles the rest and its
entry module, and links them by name in one engine.  A body defined by two loaded files is
the same code under the same name: ``weak_odr`` lets the first definition serve (MCJIT
also takes two plain definitions, the later one replacing the earlier in its table, but
``weak_odr`` says what is meant).

Measured (``bench/recompile.py``, model.compile + first call in a fresh process, on a cache
the model before the edit filled, against an empty cache; one run on an AVX2 EPYC): the
digits MLP with SGD-momentum instead of Adam 0.55x (6 of 32 bodies compiled), a layer's
width 0.54x (11 of 34), a layer more 0.55x (12 of 43), dropout off 0.61x (4 of 35); an
LSTM(32) over 80 steps instead of 50 0.92x (6 of 46: most of its compile is Python).  A
step's run time does not change: W1-W3 compiled one way and the other, timed alternately
in one process, 0.90-1.02x.
"""

from __future__ import annotations

import re
import time
from typing import Any, NamedTuple

from .native import cache, jit
from .partition import balance, body_module, declaration, entry_module, module_count


class Body(NamedTuple):
    """One kernel body: its content name, IR text (``define internal``) and parameter types."""

    symbol: str
    text: str
    types: list[str]


def _modules(header: str, bodies: list[Body], count: int,
             entry_load: int = 0) -> list[tuple[str, list[int]]]:
    """``bodies`` in at most ``count`` modules: ``(IR text, indices into bodies)`` each.

    The modules compile after the entry's, one per thread while threads last: with as many
    modules as threads, the thread that compiled the entry takes the last one, which
    therefore starts with the entry's load (``entry_load`` lines)."""
    start = [0] * max(1, count)
    if count > 1 and count >= jit.compile_threads():
        start[-1] = entry_load
    groups = balance([b.text.count("\n") for b in bodies], count, start)
    return [(body_module(header, [bodies[i].text for i in g]), g) for g in groups]


def _entry_load(entry: list[str], entry_opt_level: int | None) -> int:
    """The entry's lines as a load on a compile thread (a low level's costs ~nothing)."""
    return 0 if entry_opt_level is not None else sum(t.count("\n") for t in entry)


def program_text(header: str, bodies: list[Body], entry: list[str], *, count: int,
                 entry_opt_level: int | None = None) -> str:
    """The IR of the whole step as a compile without any cached body compiles it: the
    entry module, then the body modules (joined by :data:`~codegen.native.jit.PART_MARK`)."""
    first = entry_module(header, [declaration(b.symbol, b.types) for b in bodies], entry,
                         entry_opt_level)
    rest = _modules(header, bodies, count, _entry_load(entry, entry_opt_level))
    return jit.PART_MARK.join([first] + [text for text, _ in rest])


_DECLARED = re.compile(r"^declare [^@\n]*@([-\w.$]+)\(.*$", re.M)
_NAME = re.compile(r"[-\w.$]+")


def _key_headers(header: str, bodies: list[Body]) -> list[str]:
    """For each body, what of ``header`` its code depends on: the attributes and metadata,
    and the declarations of the names it uses, as calls or in attributes (a libmvec variant
    is named only in its scalar call's ``vector-function-abi-variant``).  A program declares
    what any of its kernels uses, and lists the variants in ``@llvm.compiler.used``; another
    program with the same body may use other things."""
    declared = {m.group(1): m.group(0) for m in _DECLARED.finditer(header)}
    rest = "\n".join(line for line in header.splitlines() if line.strip() and not
                     line.startswith(("declare ", "@llvm.compiler.used ")))
    out = []
    for body in bodies:
        used = sorted(set(_NAME.findall(body.text)) & declared.keys())
        out.append("\n".join([rest, *(declared[name] for name in used)]))
    return out


def compile_program(header: str, bodies: list[Body], entry: list[str], *, count: int,
                    entry_opt_level: int | None = None, opt_level: int = 3,
                    loop_unrolling: bool = True) -> jit.CompiledModule:
    """Load or compile every body and the entry; return them loaded into one engine.

    ``header`` starts every module.  ``stats`` has ``bodies``, ``bodies_compiled`` and
    ``modules`` (compiled now: 0 if all were cached), besides the compile's stage times;
    ``cache`` is ``"miss"`` if anything was compiled, else ``"disk"`` (object files, read
    from disk or from this process's memory).

    An object file is loaded for its bodies only if it holds each of them by name and all
    it calls can be bound here (its other bodies may call OpenBLAS's threads, say, where
    this process has none to lend); otherwise its bodies are compiled again.
    """
    t0 = time.perf_counter()
    with cache.compiling():  # (a fork waits for the compile and the load)
        keys = [cache.body_key(b.symbol, kh, opt_level=opt_level, loop_unrolling=loop_unrolling)
                for b, kh in zip(bodies, _key_headers(header, bodies))]
        files: dict[str, bytes | None] = {}  # object key -> its code, None if not usable
        used: dict[str, bytes] = {}  # the files some body is taken from
        missing: list[int] = []
        for i, key in enumerate(keys):
            where = cache.find_body(key)
            if where is not None and where not in files:
                code = cache.read_object(where)
                files[where] = code if code is not None and jit.bindable(code) else None
            code = files.get(where) if where is not None else None
            if code is not None and bodies[i].symbol.encode() in code:
                used[where] = code
            else:
                missing.append(i)
        first = entry_module(header, [declaration(b.symbol, b.types) for b in bodies], entry,
                             entry_opt_level)
        lines = sum(bodies[i].text.count("\n") for i in missing)  # (threads for these only)
        modules = [(first, [])] + [(text, [missing[j] for j in group]) for text, group in
                                   _modules(header, [bodies[i] for i in missing],
                                            min(count, module_count(lines)),
                                            _entry_load(entry, entry_opt_level))]
        text_keys = [cache.cache_key(text, opt_level=opt_level, loop_unrolling=loop_unrolling)
                     for text, _ in modules]
        objects: list[bytes | None] = [cache.read_object(k) for k in text_keys]
        todo = [m for m, code in enumerate(objects) if code is None]
        for m, code in enumerate(objects):  # (found by its text: an index lost meanwhile)
            if code is not None and modules[m][1]:
                cache.index_bodies(text_keys[m], [keys[i] for i in modules[m][1]])
        t1 = time.perf_counter()
        results = jit.compile_objects([modules[m][0] for m in todo], opt_level=opt_level,
                                      loop_unrolling=loop_unrolling)
        t2 = time.perf_counter()
        for m, (code, _, _) in zip(todo, results):
            objects[m] = code
            cache.store_object(text_keys[m], code, [keys[i] for i in modules[m][1]])
        stats: dict[str, Any] = {
            "opt_level": opt_level, "modules": len(todo), "bodies": len(bodies),
            "bodies_compiled": sum(len(modules[m][1]) for m in todo), "lookup": t1 - t0,
            "store": time.perf_counter() - t2, "cache": "miss" if todo else "disk",
            "body_keys": {b.symbol: key for b, key in zip(bodies, keys)},
        }
        for stage in ("parse", "optimize", "codegen"):
            stats[stage] = max((r[2][stage] for r in results), default=0.0)
        cm = jit.load_object(jit.pack_objects([*objects, *used.values()]), stats)
        if len(todo) == len(modules) and not used:  # all compiled here: the optimised IR
            cm.optimized_ir = jit.PART_MARK.join(r[1] for r in results)
    return cm


__all__ = ["Body", "compile_program", "program_text"]
