"""Split a step's module into modules that compile on separate threads.

Why: LLVM's O3 pipeline and machine-code generation are most of a cold compile (W1: ~220 of
~290 ms), and llvmlite runs them on one core.  The kernels of a step are independent
functions that only ``sg_step`` calls, so they can live in other modules: each module
compiles on a thread of its own (:func:`codegen.native.jit.compile_module`) and the object
files are linked by name when loaded into one engine.  Kernels in another module are not
inlined into ``sg_step``; a call costs nanoseconds against a kernel's microseconds.

Balance: kernels are placed largest first on the least loaded module, by lines of IR (a
rough but monotone estimate of optimisation time); the entry functions (``sg_step``,
``sg_epoch``) stay in the first module.  A long step's entry (segment functions of plain
calls, ``codegen.entry``) gets that module to itself, compiled at ``ENTRY_OPT_LEVEL`` (0):
at O3 it took 1.2 s of LSTM(T=100)'s compile, 0.65 s at O1 and 0.19 s at O0, and the step
runs as fast (O0/O1 0.98x at T=20, 1.00x at T=100, interleaved in one process).
"""

from __future__ import annotations

import re

from .native.jit import OPT_LEVEL_MARK, PART_MARK, compile_threads

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


def split_modules(header: str, kernels: list[tuple[str, str, list[str]]], entry: list[str],
                  count: int, entry_opt_level: int | None = None) -> str:
    """IR text of ``count`` modules joined by :data:`PART_MARK` (one module if ``count`` is 1).

    ``header`` (declarations, attributes, metadata) starts every module; ``kernels`` are
    ``(name, text, parameter types)`` of ``define internal`` functions;
    ``entry`` are the functions that call them, kept in the first module.  A kernel placed
    in another module gets external linkage there and a declaration in the first.  With
    ``entry_opt_level``, the first module holds the entry alone and compiles at that level
    (:data:`~codegen.native.jit.OPT_LEVEL_MARK`); the kernels fill ``count`` more modules.
    """
    alone = entry_opt_level is not None
    if count <= 1 and not alone:
        return "\n\n".join([header, *(text for _, text, _ in kernels), *entry]) + "\n"
    load = [sum(text.count("\n") for text in entry)] + [0] * count
    if not alone:
        load.pop()
    placed: list[list[str]] = [[] for _ in load]
    declarations = []
    for name, text, types in sorted(kernels, key=lambda k: -k[1].count("\n")):
        m = 1 + load[1:].index(min(load[1:])) if alone else load.index(min(load))
        load[m] += text.count("\n")
        if m == 0:
            placed[0].append(text)
            continue
        placed[m].append(_DEFINE_INTERNAL.sub("define ", text, count=1))
        declarations.append(f"declare i32 @{name}({', '.join(types)}) #0")
    mark = f"{OPT_LEVEL_MARK}{entry_opt_level}\n" if alone else ""
    modules = [mark + "\n\n".join([header, *declarations, *placed[0], *entry])]
    modules += ["\n\n".join([header, *texts]) for texts in placed[1:] if texts]
    return PART_MARK.join(m + "\n" for m in modules)
