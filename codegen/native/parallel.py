"""Big elementwise loops on both cores, run by OpenBLAS's own worker threads.

Why: a training step is one native function, and outside its gemms it ran on one core. Its
big elementwise loops (Adam's update over every parameter, ~12% of the W1-Adam step) are
bound by one core's cache bandwidth, so a second core nearly halves them. A thread pool of
our own does not get that core: after every gemm OpenBLAS's worker busy-waits on it for
~0.1 s (its ``YIELDING`` is a run of ``nop`` on x86-64), so a second pool is time-sliced
against a spinning thread (the ``experiment/threads`` branch measured the W1-Adam step at only
0.94x serial that way). Handing the loop to *that* worker instead costs nothing extra: it is
already spinning, so it starts within nanoseconds, and there is never more than one runnable
thread per core (no oversubscription).

How: ``gotoblas_pthread(n, fn, args, stride)``, an exported OpenBLAS function (GotoBLAS's
"compatible function with pthread_create / join", unchanged since), runs
``fn(args + i * stride)`` for ``i < n``: the first on the calling thread, the others on
OpenBLAS's workers, and returns when all are done. It builds OpenBLAS's queue entries itself,
so nothing here depends on OpenBLAS's internal structures. It (re)starts OpenBLAS's threads
if needed (after a ``fork``, for instance), and concurrent callers are serialised by
OpenBLAS's own queue lock.

The generated side: ``@sg_parallel_for(part, ctx, n, align, big)`` (:func:`runtime_ir`) is
a small module of its own, compiled once per machine through the IR-keyed disk cache and
loaded once per process by this module's binder, the first time code that calls it is
loaded; kernels only declare it (:func:`declaration`). (Defined in every module that used it,
its optimisation and machine code had cost W1-SGD's cold compile ~30 ms.) Unless ``big`` is
false (a loop with symbolic dims found below :data:`MIN_ELEMENTS` at run time: then it just
calls ``part(ctx, 0, n)``), it asks OpenBLAS how many threads it may use now
(``openblas_get_num_threads``: a user's ``threadpoolctl`` limit of 1 makes every loop serial),
cuts ``[0, n)`` into that many chunks whose bounds are multiples of ``align``, and calls
``part(ctx, lo, hi)`` on each through ``gotoblas_pthread``. The kernels' side (which loops,
the range and part functions) is :func:`codegen.lower_elementwise._lower_parallel`.

Costs (bench/parallel.py, this 2-core VM): right after a gemm an Adam update of 65k-535k
float32 parameters takes 0.38-0.58x the serial time and ``p + x`` 0.5-0.65x from 65k elements;
a call that comes >= 0.1 s after OpenBLAS's last work finds its worker asleep and pays the
wake-up (~+70-90 us on a 65k loop, about even at 535k). OpenBLAS's workers do not inherit the
caller's MXCSR (its ``CONSISTENT_FPCSR`` is off in numpy's build): the runtime copies the
caller's into every chunk (:func:`runtime_ir`), so ``flush_denormals`` holds in all of them.

Switches: ``SYMGRAPH_THREADS=1`` compiles serial loops only (exactly the old code);
``SYMGRAPH_THREADS_MIN`` overrides :data:`MIN_ELEMENTS`. A compile reads them once
(:func:`split_minimum`); they go into the program cache key (:func:`codegen_key`, through
``codegen.signature.environment_text``).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import threading

from . import cache
from .blas import library
from .jit import CompiledModule, add_symbol, register_binder

__all__ = ["ALIGN", "DISPATCH", "LIKELY_DIM", "MAX_THREADS", "MIN_ELEMENTS", "available",
           "bind_symbols", "codegen_key", "declaration", "enabled", "min_elements",
           "part_function", "runtime_ir", "split_minimum"]

#: Elementwise kernels with at least this many elements are split across OpenBLAS's threads
#: (measured by bench/parallel.py on this 2-core machine; see its docstring).
MIN_ELEMENTS = 1 << 16
#: A loop with symbolic dims is compiled to be split (at run time, when big enough) only if
#: this value of its symbolic dims would make it big enough: a (batch, 10) loop would need a
#: batch of 6,554, so it stays serial code and costs no compile time (each split loop adds
#: ~1-2 ms of LLVM time to a cold compile).
LIKELY_DIM = 4096
#: chunk bounds of a contiguous loop are multiples of this many elements, so every vector (and
#: remainder) iteration sees the same elements as in one serial loop: the same bits
ALIGN = 1024
#: at most this many chunks (threads) per loop
MAX_THREADS = 16
#: the name generated kernels call
DISPATCH = "sg_parallel_for"
_RUN = "sg_gotoblas_pthread"
_THREADS = "sg_blas_num_threads"
#: a chunk record: part function, context, lo, hi, the caller's MXCSR (x86-64)
_RECORD_BYTES = 40


@functools.cache
def _entry_points() -> tuple[int, int] | None:
    """Addresses of ``gotoblas_pthread`` and ``openblas_get_num_threads`` in numpy's
    OpenBLAS, or None when that library lacks them or is not a pthreads build (an OpenMP
    OpenBLAS runs work on OpenMP's threads; a serial one has no workers)."""
    try:
        lib = library()
        run = lib.cdll.gotoblas_pthread
        count = getattr(lib.cdll, lib.openblas("get_num_threads"))
        parallel = getattr(lib.cdll, lib.openblas("get_parallel"))
    except (RuntimeError, AttributeError, OSError):
        return None
    parallel.restype = ctypes.c_int
    if parallel() != 1:  # 0: sequential build, 2: OpenMP
        return None
    return (ctypes.cast(run, ctypes.c_void_p).value or 0,
            ctypes.cast(count, ctypes.c_void_p).value or 0)


def available() -> bool:
    """Can generated code hand loops to OpenBLAS's threads in this process?"""
    return _entry_points() is not None


def enabled() -> bool:
    """Should the compiler emit parallel loops? Yes unless ``SYMGRAPH_THREADS=1`` or the
    BLAS cannot run them (:func:`available`)."""
    return os.environ.get("SYMGRAPH_THREADS", "").strip() != "1" and available()


def min_elements() -> int:
    """The element count from which an elementwise kernel is split (``SYMGRAPH_THREADS_MIN``
    or :data:`MIN_ELEMENTS`)."""
    text = os.environ.get("SYMGRAPH_THREADS_MIN", "").strip()
    if not text:
        return MIN_ELEMENTS
    try:
        return max(1, int(text))
    except ValueError:
        raise ValueError(f"SYMGRAPH_THREADS_MIN={text!r}: expected a number of elements, "
                         f"e.g. {MIN_ELEMENTS}") from None


def split_minimum() -> int | None:
    """The element count from which the compiler splits loops now, or None for serial code
    only. A compile reads it once (``codegen.backend``) and uses that value both in the
    program cache key and when lowering, so a program -- and the ``ir_text`` lowered again
    later for a program loaded from the cache -- is the code its key names even if the
    environment changes meanwhile."""
    return min_elements() if enabled() else None


def codegen_key(minimum: int | None) -> str:
    """What the generated code depends on (part of the program cache key), for loops split
    from ``minimum`` elements (:func:`split_minimum`)."""
    return (f"threads={int(minimum is not None)};min={minimum or 0};likely={LIKELY_DIM};"
            f"align={ALIGN}")


def part_function(name: str, range_fn: str, nptrs: int) -> str:
    """``void @name(ptr ctx, i64 lo, i64 hi)``: what a kernel hands the runtime; loads the
    ``nptrs`` buffer pointers (then the table) from ``ctx`` and calls
    ``i32 @range_fn(ptrs..., tab, lo, hi)``."""
    lines = [f"define internal void @{name}(ptr %ctx, i64 %lo, i64 %hi) #0 {{", "entry:"]
    for n in range(nptrs + 1):
        lines += [f"  %a{n} = getelementptr inbounds ptr, ptr %ctx, i64 {n}",
                  f"  %q{n} = load ptr, ptr %a{n}"]
    args = ", ".join(f"ptr %q{n}" for n in range(nptrs + 1))
    lines += [f"  %r = call i32 @{range_fn}({args}, i64 %lo, i64 %hi)", "  ret void", "}"]
    return "\n".join(lines)


def declaration() -> str:
    """What a module whose kernels call the runtime declares (:func:`bind_symbols` maps it)."""
    return f"declare void @{DISPATCH}(ptr, ptr, i64, i64, i1) nounwind"


def _x86() -> bool:
    """Is this an x86-64 process?  Asked of the OS, not of LLVM: a warm start builds the
    runtime's text to find its cached code, and LLVM's host triple would map ``libllvmlite``
    (6-9 ms, a quarter of W1's warm start) for nothing."""
    return platform.machine().lower() in ("x86_64", "amd64")


def runtime_ir() -> str:
    """The runtime's own module: ``@sg_parallel_for`` and the task OpenBLAS's threads run.

    On x86-64 every chunk runs with the caller's MXCSR (OpenBLAS's ``CONSISTENT_FPCSR``, off
    in numpy's build): the caller's copied into the records, set by the task around the part
    and the worker's own restored after.  Without it ``sg.function(flush_denormals=True)``
    (and ``model.compile``, whose default it is) flushed subnormals in the caller's chunk
    only: a split loop's results depended on the split, and the workers' chunks paid the
    microcode assists the flag exists to avoid."""
    r = _RECORD_BYTES
    x86 = _x86()
    mode = "  %pm = getelementptr inbounds i8, ptr %rec, i64 32\n"
    task_mode = (mode + "  %own = alloca i32, align 4\n"
                 "  call void @llvm.x86.sse.stmxcsr(ptr %own)\n"
                 "  call void @llvm.x86.sse.ldmxcsr(ptr %pm)\n") if x86 else ""
    task_restore = "  call void @llvm.x86.sse.ldmxcsr(ptr %own)\n" if x86 else ""
    caller_mode = ("  %caller = alloca i32, align 4\n"
                   "  call void @llvm.x86.sse.stmxcsr(ptr %caller)\n"
                   "  %mxcsr = load i32, ptr %caller\n") if x86 else ""
    record_mode = (mode + "  store i32 %mxcsr, ptr %pm\n") if x86 else ""
    declarations = ("declare void @llvm.x86.sse.stmxcsr(ptr)\n"
                    "declare void @llvm.x86.sse.ldmxcsr(ptr)\n") if x86 else ""
    return f"""\
declare i32 @{_RUN}(i32, ptr, ptr, i32) nounwind
declare i32 @{_THREADS}() nounwind
{declarations}
define internal void @sg_parallel_task(ptr %rec) nounwind {{
entry:
  %fn = load ptr, ptr %rec
  %pc = getelementptr inbounds i8, ptr %rec, i64 8
  %ctx = load ptr, ptr %pc
  %pl = getelementptr inbounds i8, ptr %rec, i64 16
  %lo = load i64, ptr %pl
  %ph = getelementptr inbounds i8, ptr %rec, i64 24
  %hi = load i64, ptr %ph
  %some = icmp slt i64 %lo, %hi
  br i1 %some, label %run, label %done
run:
{task_mode}  call void %fn(ptr %ctx, i64 %lo, i64 %hi)
{task_restore}  br label %done
done:
  ret void
}}

define void @{DISPATCH}(ptr %fn, ptr %ctx, i64 %n, i64 %align, i1 %big) nounwind {{
entry:
  %recs = alloca [{MAX_THREADS * r} x i8], align 64
  br i1 %big, label %ask, label %one
ask:
  %asked = call i32 @{_THREADS}()
  %asked64 = sext i32 %asked to i64
  %capped = call i64 @llvm.smin.i64(i64 %asked64, i64 {MAX_THREADS})
  %n1 = add i64 %n, %align
  %n2 = sub i64 %n1, 1
  %blocks = udiv i64 %n2, %align
  %threads = call i64 @llvm.smin.i64(i64 %capped, i64 %blocks)
  %serial = icmp slt i64 %threads, 2
  br i1 %serial, label %one, label %split
one:
  call void %fn(ptr %ctx, i64 0, i64 %n)
  ret void
split:
{caller_mode}  %b1 = add i64 %blocks, %threads
  %b2 = sub i64 %b1, 1
  %per = udiv i64 %b2, %threads
  %chunk = mul i64 %per, %align
  br label %fill
fill:
  %i = phi i64 [0, %split], [%i1, %fill]
  %start = mul i64 %i, %chunk
  %lo = call i64 @llvm.smin.i64(i64 %start, i64 %n)
  %end = add i64 %lo, %chunk
  %hi = call i64 @llvm.smin.i64(i64 %end, i64 %n)
  %off = mul i64 %i, {r}
  %rec = getelementptr inbounds i8, ptr %recs, i64 %off
  store ptr %fn, ptr %rec
  %pc = getelementptr inbounds i8, ptr %rec, i64 8
  store ptr %ctx, ptr %pc
  %pl = getelementptr inbounds i8, ptr %rec, i64 16
  store i64 %lo, ptr %pl
  %ph = getelementptr inbounds i8, ptr %rec, i64 24
  store i64 %hi, ptr %ph
{record_mode}  %i1 = add i64 %i, 1
  %more = icmp slt i64 %i1, %threads
  br i1 %more, label %fill, label %go
go:
  %t32 = trunc i64 %threads to i32
  %ignored = call i32 @{_RUN}(i32 %t32, ptr @sg_parallel_task, ptr %recs, i32 {r})
  ret void
}}

declare i64 @llvm.smin.i64(i64, i64)
"""


@functools.cache
def _bind_openblas() -> None:
    points = _entry_points()
    if points is None:  # only code compiled where they existed refers to them
        raise RuntimeError("generated code runs loops on OpenBLAS's threads, but numpy's "
                           "BLAS here has no gotoblas_pthread (not a pthreads OpenBLAS)")
    add_symbol(_RUN, points[0])
    add_symbol(_THREADS, points[1])


#: the loaded runtime module (kept alive: loaded code calls into it)
_runtime: list[CompiledModule] = []
_loading = threading.local()


def bind_symbols(object_code: bytes = b"") -> None:
    """Map the runtime's names to OpenBLAS's functions, and ``sg_parallel_for`` to the runtime
    module, loading it (from the disk cache, or compiling it) the first time.

    Run before loading any object that names either. No lock of its own: ``compile_cached``
    serialises the compile and returns one module for one text, so two threads binding at once
    map the same address. The runtime's own object comes back here while it is loaded (with
    the cache's re-entrant lock held): it needs only OpenBLAS's names (``_loading``).
    """
    _bind_openblas()
    if _runtime or getattr(_loading, "active", False):
        return
    _loading.active = True
    try:
        # O0: 1.5-2.5 ms to compile against O1's 8-13 (a machine's first compile pays it,
        # llvmlite's LLVM 20 being slow on any loop); a few scalar instructions per split
        # loop, which takes tens of microseconds
        module = cache.compile_cached(runtime_ir(), opt_level=0)
    finally:
        _loading.active = False
    add_symbol(DISPATCH, module.address(DISPATCH))
    _runtime.append(module)


register_binder("parallel", (_RUN.encode(), DISPATCH.encode()), bind_symbols)
