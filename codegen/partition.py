"""How a step's IR is laid out in modules: one small module, or an entry module and modules of
kernel bodies that compile on separate threads.

Why: LLVM's O3 pipeline and machine-code generation are most of a cold compile (W1: ~220 of
~290 ms), and llvmlite runs them on one core.  The kernels of a step are independent
functions that only ``sg_step`` calls, so they can live in other modules: each module
compiles on a thread of its own (:func:`codegen.native.jit.compile_objects`) and the object
files are linked by name when loaded into one engine.  Kernels in another module are not
inlined into ``sg_step``; a call costs nanoseconds against a kernel's microseconds.  Modules
of bodies are also what :mod:`codegen.kernel_cache` stores and reuses across programs, so the
entry functions (which change with every program) have a module of their own.

A step of fewer than :data:`MIN_SPLIT_LINES` lines of kernel IR stays one module, its kernels
``internal`` and inlined into the entry.  Balance: bodies are placed largest first on the
least loaded module, by lines of IR (a rough but monotone estimate of optimisation time).  A
long step's entry (segment functions of plain calls, ``codegen.entry``) compiles at
``ENTRY_OPT_LEVEL`` (0): at O3 it took 1.2 s of LSTM(T=100)'s compile, 0.65 s at O1 and
0.19 s at O0, and the step runs as fast (O0/O1 0.98x at T=20, 1.00x at T=100, interleaved
in one process).
"""

from __future__ import annotations

import re

from .native.jit import OPT_LEVEL_MARK, compile_threads
from .registry import register_tunables

#: below this many lines of IR one module, no threads.  A kernel with loops costs 10-40 ms of
#: LLVM whatever its length: W3's step (~590 lines) took 155-186 ms cold in one module and
#: 81-96 ms in two
MIN_SPLIT_LINES = 300
#: about this many lines per module at most (a module's own overhead is ~3 ms)
LINES_PER_MODULE = 250

_DEFINE_INTERNAL = re.compile(r"^define internal ", re.M)


def module_count(lines: int, threads: int | None = None) -> int:
    """How many modules to split ``lines`` of IR into on this machine."""
    threads = compile_threads() if threads is None else threads
    if threads < 2 or lines < MIN_SPLIT_LINES:
        return 1
    return max(1, min(threads, lines // LINES_PER_MODULE))


def balance(sizes: list[int], count: int, start: list[int] | None = None) -> list[list[int]]:
    """Indices of ``sizes`` in at most ``count`` non-empty groups: largest first on the
    least loaded group (sizes are lines of IR, a rough but monotone estimate of compile
    time); group ``g`` starts with load ``start[g]`` (0s by default)."""
    load = list(start) if start is not None else [0] * max(1, count)
    groups: list[list[int]] = [[] for _ in load]
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        m = load.index(min(load))
        load[m] += sizes[i]
        groups[m].append(i)
    return [g for g in groups if g]


_ATTRIBUTES_0 = re.compile(r"\) #0 \{$", re.M)


def outlined(text: str) -> str:
    """A kernel body (``#0``) as a module holding it with its entry and many other kernels
    defines it: ``#2`` (``noinline``, :data:`codegen.lower.OUTLINE_KERNELS`).  Elsewhere
    (modules of bodies) nothing calls it in its own module, so its text, and its name, do
    not depend on the number of kernels."""
    return _ATTRIBUTES_0.sub(") #2 {", text, count=1)


def exported(text: str) -> str:
    """A kernel body (``define internal``) as a module of cached bodies defines it:
    ``weak_odr``, so that two object files defining the same body (same name, same code)
    load into one engine, the first one's definition serving both."""
    return _DEFINE_INTERNAL.sub("define weak_odr ", text, count=1)


def declaration(name: str, types: list[str]) -> str:
    return f"declare i32 @{name}({', '.join(types)}) #0"


def one_module(header: str, kernels: list[str], entry: list[str]) -> str:
    """A small step's IR: its kernels (internal, inlined into the entry) and the entry."""
    return "\n\n".join([header, *kernels, *entry]) + "\n"


def entry_module(header: str, declarations: list[str], entry: list[str],
                 opt_level: int | None = None) -> str:
    """The module of the entry functions, calling kernels it declares; with ``opt_level``,
    marked to compile at that level (:data:`~codegen.native.jit.OPT_LEVEL_MARK`)."""
    mark = "" if opt_level is None else f"{OPT_LEVEL_MARK}{opt_level}\n"
    return mark + "\n\n".join([header, *declarations, *entry]) + "\n"


def body_module(header: str, bodies: list[str]) -> str:
    return "\n\n".join([header, *map(exported, bodies)]) + "\n"


register_tunables(__name__, ("MIN_SPLIT_LINES", "LINES_PER_MODULE"))
