"""libllvmlite's C API directly, without ``llvmlite.binding``: load object code, compile IR.

Why: importing ``llvmlite.binding`` costs ~20 ms per process (about half of a warm start from
the disk cache, when it loaded its code through LLVM), of which only the ~6-9 ms ``dlopen``
of ``libllvmlite.so`` is needed to load object code (now only what
:mod:`codegen.native.elf` refuses, or everything off Linux x86-64); the rest is Python
(``llvmlite.ir``, ctypes prototypes for hundreds of functions).  Loading an object needs
fifteen C functions.  This module declares exactly those, with the prototypes
``llvmlite.binding`` itself declares, on the same shared library (the same ``dlopen``
handle, so LLVM's global state, e.g. ``add_symbol``, is shared with llvmlite if it is
imported later).

Compiling (:func:`compile_object`) goes through here too, for a second reason: llvmlite
serialises every LLVM call of a process behind one lock, while a compile in a context and a
target machine of its own is thread-safe, so the modules of one program compile on several
cores (:func:`codegen.native.jit.compile_module`).

Used only for the llvmlite versions it was checked against (:data:`SUPPORTED`); loading, only
while ``llvmlite.binding`` is not imported (then it costs nothing to use llvmlite);
``SYMGRAPH_LLVM_FFI=0`` turns both off (llvmlite.binding then does everything, on one thread).
Callers serialise the loading calls with :data:`codegen.jit._lock`; :func:`compile_object`
needs no lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
import time
from ctypes import POINTER, c_bool, c_char_p, c_int, c_size_t, c_uint, c_uint64, c_void_p
from typing import Any

__all__ = ["SUPPORTED", "Engine", "available", "compile_object", "compiler_available", "lib"]

#: llvmlite (major, minor) versions whose C API this module was checked against
SUPPORTED = ((0, 50),)

_lib: Any = None
_failed = False

_PROTOTYPES = {
    # name: (argtypes, restype), as declared in llvmlite/binding/*.py
    "LLVMPY_GetVersionInfo": ([], c_uint),
    "LLVMPY_InitializeNativeTarget": ([], None),
    "LLVMPY_InitializeNativeAsmPrinter": ([], None),
    "LLVMPY_DisposeString": ([c_void_p], None),
    "LLVMPY_GetProcessTriple": ([POINTER(c_void_p)], None),
    "LLVMPY_GetHostCPUName": ([POINTER(c_void_p)], None),
    "LLVMPY_GetHostCPUFeatures": ([POINTER(c_void_p)], c_int),
    "LLVMPY_AddSymbol": ([c_char_p, c_void_p], None),
    "LLVMPY_LoadLibraryPermanently": ([c_char_p, POINTER(c_void_p)], c_bool),
    "LLVMPY_GetTargetFromTriple": ([c_char_p, POINTER(c_void_p)], c_void_p),
    "LLVMPY_CreateTargetMachine": ([c_void_p, c_char_p, c_char_p, c_char_p, c_int, c_char_p,
                                    c_char_p, c_int, c_int, c_char_p], c_void_p),
    "LLVMPY_GetGlobalContext": ([], c_void_p),
    "LLVMPY_ParseAssembly": ([c_void_p, c_char_p, POINTER(c_void_p)], c_void_p),
    "LLVMPY_CreateMCJITCompiler": ([c_void_p, c_void_p, c_bool, POINTER(c_void_p)], c_void_p),
    "LLVMPY_CreateObjectFile": ([c_char_p, c_size_t], c_void_p),
    "LLVMPY_DisposeObjectFile": ([c_void_p], None),
    "LLVMPY_MCJITAddObjectFile": ([c_void_p, c_void_p], None),
    "LLVMPY_GetFunctionAddress": ([c_void_p, c_char_p], c_uint64),
    "LLVMPY_GetGlobalValueAddress": ([c_void_p, c_char_p], c_uint64),
    "LLVMPY_DisposeExecutionEngine": ([c_void_p], None),
    # compiling (compile_object): newpassmanagers.py, targets.py, module.py, context.py
    "LLVMPY_ContextCreate": ([], c_void_p),
    "LLVMPY_ContextDispose": ([c_void_p], None),
    "LLVMPY_DisposeModule": ([c_void_p], None),
    "LLVMPY_VerifyModule": ([c_void_p, POINTER(c_void_p)], c_bool),
    "LLVMPY_PrintModuleToString": ([c_void_p, POINTER(c_void_p)], None),
    "LLVMPY_DisposeTargetMachine": ([c_void_p], None),
    "LLVMPY_CreatePipelineTuningOptions": ([], c_void_p),
    "LLVMPY_PTOSetLoopVectorization": ([c_void_p, c_bool], None),
    "LLVMPY_PTOSetSLPVectorization": ([c_void_p, c_bool], None),
    "LLVMPY_PTOSetLoopUnrolling": ([c_void_p, c_bool], None),
    "LLVMPY_DisposePipelineTuningOptions": ([c_void_p], None),
    "LLVMPY_CreatePassBuilder": ([c_void_p, c_void_p], c_void_p),
    "LLVMPY_DisposePassBuilder": ([c_void_p], None),
    "LLVMPY_buildPerModuleDefaultPipeline": ([c_void_p, c_int], c_void_p),
    "LLVMPY_RunNewModulePassManager": ([c_void_p, c_void_p, c_void_p], None),
    "LLVMPY_DisposeNewModulePassManger": ([c_void_p], None),
    "LLVMPY_TargetMachineEmitToMemory": ([c_void_p, c_void_p, c_int, POINTER(c_void_p)],
                                         c_void_p),
    "LLVMPY_GetBufferStart": ([c_void_p], c_void_p),
    "LLVMPY_GetBufferSize": ([c_void_p], c_size_t),
    "LLVMPY_DisposeMemoryBuffer": ([c_void_p], None),
}


def _version() -> tuple[int, int] | None:
    import llvmlite  # the package itself is cheap; only llvmlite.binding is not

    try:
        major, minor = (int(p) for p in llvmlite.__version__.split(".")[:2])
    except ValueError:
        return None
    return major, minor


def available() -> bool:
    """Can (and should) object code be loaded through this module in this process?"""
    if _failed or "llvmlite.binding" in sys.modules:
        return False
    if os.environ.get("SYMGRAPH_LLVM_FFI", "1") == "0":
        return False
    return lib() is not None


def compiler_available() -> bool:
    """Can :func:`compile_object` be used (thread-safe compiles, whatever else is imported)?"""
    if _failed or os.environ.get("SYMGRAPH_LLVM_FFI", "1") == "0":
        return False
    return lib() is not None


def library_path() -> str:
    """Where libllvmlite is (found, not mapped)."""
    import importlib.util

    spec = importlib.util.find_spec("llvmlite")  # finds, does not import, the package
    if spec is None or not spec.submodule_search_locations:
        raise OSError("llvmlite not found")
    return os.path.join(list(spec.submodule_search_locations)[0], "binding", "libllvmlite.so")


_preload_thread: threading.Thread | None = None
_preload_lock = threading.Lock()


def preload() -> None:
    """Start mapping ``libllvmlite`` on another thread, if that is possible and not done yet.

    Why: its ``dlopen`` (relocating and initialising all of LLVM) takes ~9 ms.  A compile
    calls this as soon as it knows it must compile (a program-cache miss), so the mapping
    runs while the graph is analysed: called through ctypes as a foreign function,
    ``dlopen`` runs without the GIL; :func:`lib` then finds the library mapped.  Best
    effort: any failure leaves :func:`lib` to do it all.

    The thread is published only once started (and made under a lock): threads compiling
    at once had :func:`lib` join it between its creation and its start ("cannot join
    thread before it is started", seen with four threads on a fast Xeon)."""
    global _preload_thread
    with _preload_lock:
        if _lib is not None or _failed or _preload_thread is not None or \
                os.environ.get("SYMGRAPH_LLVM_FFI", "1") == "0":
            return
        try:
            path = library_path().encode()
            dlopen = ctypes.CDLL(None).dlopen
        except (OSError, AttributeError):
            return
        dlopen.argtypes, dlopen.restype = [c_char_p, c_int], c_void_p
        mode = os.RTLD_NOW | os.RTLD_LOCAL  # what ctypes.CDLL asks for: the same mapping
        thread = threading.Thread(target=dlopen, args=(path, mode), daemon=True,
                                  name="symgraph-llvm-preload")
        thread.start()
        _preload_thread = thread


def lib() -> Any:
    """The prototyped ``libllvmlite`` (loaded and initialised once), or ``None``."""
    global _lib, _failed
    if _lib is None and not _failed:
        if _preload_thread is not None:
            _preload_thread.join()
        try:
            if _version() not in SUPPORTED:
                raise OSError("untested llvmlite version")
            handle = ctypes.CDLL(library_path())
            for name, (argtypes, restype) in _PROTOTYPES.items():
                fn = getattr(handle, name)
                fn.argtypes, fn.restype = argtypes, restype
            handle.LLVMPY_InitializeNativeTarget()
            handle.LLVMPY_InitializeNativeAsmPrinter()
            _lib = handle
        except (OSError, AttributeError):
            _failed = True
    return _lib


def _take_string(fn, *args) -> tuple[Any, str]:
    out = c_void_p(None)
    result = fn(*args, ctypes.byref(out))
    text = ""
    if out.value:
        text = ctypes.string_at(out.value).decode("utf-8", "replace")
        _lib.LLVMPY_DisposeString(out)
    return result, text


def version_info() -> tuple[int, ...]:
    """LLVM's version, as ``llvmlite.binding.llvm_version_info`` computes it."""
    x, v = _lib.LLVMPY_GetVersionInfo(), []
    while x:
        v.append(x & 0xFF)
        x >>= 8
    return tuple(reversed(v))


def process_triple() -> str:
    return _take_string(_lib.LLVMPY_GetProcessTriple)[1]


def host_cpu_name() -> str:
    return _take_string(_lib.LLVMPY_GetHostCPUName)[1]


def host_cpu_features() -> str:
    """Like ``get_host_cpu_features().flatten()``: sorted ``+name``/``-name``, comma-joined."""
    ok, content = _take_string(_lib.LLVMPY_GetHostCPUFeatures)
    features: dict[str, bool] = {}
    if ok and content:
        for feat in content.split(","):
            if feat:
                features[feat[1:]] = feat[0] == "+"
    return ",".join(("+" if v else "-") + k for k, v in sorted(features.items()))


def add_symbol(name: str, address: int) -> None:
    _lib.LLVMPY_AddSymbol(name.encode(), c_void_p(address))


def load_library_permanently(filename: str) -> None:
    failed, err = _take_string(_lib.LLVMPY_LoadLibraryPermanently, filename.encode())
    if failed:
        raise RuntimeError(err)


class Engine:
    """An MCJIT engine holding object files (what ``load_object`` needs of llvmlite's
    ``ExecutionEngine``); symbols one object leaves undefined resolve to the others first.

    The objects are linked (relocations resolved, pages made executable) by the first
    address lookup, not by ``LLVMPY_FinalizeObject``: that call also compiles every IR module
    the engine owns, here the empty one MCJIT must be created with, which builds a whole
    code-generation pipeline for nothing (~0.5 ms of each load, more in a new process).  A
    lookup that finds its symbol in a loaded object runs MCJIT's ``finalizeLoadedModules``
    alone, and code is only reachable through a lookup."""

    def __init__(self, objects: list[bytes], triple: str, cpu: str, features: str):
        lib_ = _lib
        tm = _target_machine(triple, cpu, features, 3)
        module, err = _take_string(lib_.LLVMPY_ParseAssembly, lib_.LLVMPY_GetGlobalContext(),
                                   b"")
        if not module:
            raise RuntimeError(err)
        # the engine owns the module and the target machine from here on
        ee, err = _take_string(lib_.LLVMPY_CreateMCJITCompiler, module, tm, False)
        if not ee:
            raise RuntimeError(err)
        self._ee = ee
        for object_code in objects:
            obj = lib_.LLVMPY_CreateObjectFile(object_code, len(object_code))
            if not obj:
                raise RuntimeError("not an object file")
            lib_.LLVMPY_MCJITAddObjectFile(ee, obj)  # takes the binary out of ``obj``
            lib_.LLVMPY_DisposeObjectFile(obj)

    def get_function_address(self, name: str) -> int:
        return int(_lib.LLVMPY_GetFunctionAddress(self._ee, name.encode()))

    def get_global_value_address(self, name: str) -> int:
        return int(_lib.LLVMPY_GetGlobalValueAddress(self._ee, name.encode()))

    def __del__(self) -> None:
        ee, self._ee = getattr(self, "_ee", None), None
        if ee and _lib is not None and not sys.is_finalizing():
            _lib.LLVMPY_DisposeExecutionEngine(ee)


#: ``LLVMPY_PrintModuleToString`` sets the process's locale to "C" around printing and then
#: restores what it found, which is not thread-safe: two prints at once can leave the whole
#: process in "C" (Python then reads text files as ASCII).  Prints hold this lock, and
#: llvmlite's own while ``llvmlite.binding`` is imported (its ``str(module)`` is the same call).
_print_lock = threading.Lock()


def _llvmlite_lock() -> Any:
    ffi = sys.modules.get("llvmlite.binding.ffi")
    lock = getattr(getattr(ffi, "lib", None), "_lock", None)
    return lock if hasattr(lock, "__enter__") else contextlib.nullcontext()


def print_module(module: Any) -> str:
    """The IR text of ``module`` (a raw ``LLVMModuleRef``), safely for concurrent callers."""
    with _print_lock, _llvmlite_lock():
        return _take_string(_lib.LLVMPY_PrintModuleToString, module)[1]


def _target_machine(triple: str, cpu: str, features: str, opt_level: int) -> Any:
    """A new target machine for the host, as ``codegen.jit`` configures it (static
    relocation, the JIT code model); the caller owns it."""
    target, err = _take_string(_lib.LLVMPY_GetTargetFromTriple, triple.encode())
    if not target:
        raise RuntimeError(err)
    tm = _lib.LLVMPY_CreateTargetMachine(target, triple.encode(), cpu.encode(),
                                         features.encode(), opt_level, b"static",
                                         b"jitdefault", 0, 1, b"")
    if not tm:
        raise RuntimeError("could not create a target machine")
    return tm


def compile_object(ir_text: str, triple: str, cpu: str, features: str, *, opt_level: int,
                   vectorize: bool, unroll: bool,
                   keep_ir: bool) -> tuple[bytes, str | None, dict]:
    """Parse, verify, optimise (the default ``O<opt_level>`` pipeline with loop/SLP
    vectorisation and unrolling as given: ``codegen.jit.pipeline_options``) and emit object
    code for ``ir_text``.

    Everything lives in a context and a target machine of this call's own, and the ctypes
    calls release the GIL, so several threads compile at once (LLVM supports concurrent
    compiles in separate contexts; ThinLTO's backends do the same).  That is why this path
    exists beside llvmlite's, whose one global lock serialises every LLVM call of a process.
    Returns ``(object code, optimised IR or None, stage seconds)``; ``RuntimeError`` with
    LLVM's message on invalid IR.
    """
    lib_ = _lib
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    context = lib_.LLVMPY_ContextCreate()
    module = tm = pto = pb = mpm = None
    try:
        module, err = _take_string(lib_.LLVMPY_ParseAssembly, context, ir_text.encode())
        if not module:
            raise RuntimeError(f"LLVM IR parsing error\n{err}")
        failed, err = _take_string(lib_.LLVMPY_VerifyModule, module)
        if failed:
            raise RuntimeError(err)
        t1 = time.perf_counter()
        tm = _target_machine(triple, cpu, features, opt_level)
        pto = lib_.LLVMPY_CreatePipelineTuningOptions()
        lib_.LLVMPY_PTOSetLoopVectorization(pto, vectorize)
        lib_.LLVMPY_PTOSetSLPVectorization(pto, vectorize)
        lib_.LLVMPY_PTOSetLoopUnrolling(pto, unroll)
        pb = lib_.LLVMPY_CreatePassBuilder(tm, pto)
        mpm = lib_.LLVMPY_buildPerModuleDefaultPipeline(pb, opt_level)
        lib_.LLVMPY_RunNewModulePassManager(mpm, module, pb)
        t2 = time.perf_counter()
        buf, err = _take_string(lib_.LLVMPY_TargetMachineEmitToMemory, tm, module, 1)
        if not buf:
            raise RuntimeError(err)
        try:
            code = ctypes.string_at(lib_.LLVMPY_GetBufferStart(buf),
                                    lib_.LLVMPY_GetBufferSize(buf))
        finally:
            lib_.LLVMPY_DisposeMemoryBuffer(buf)
        t3 = time.perf_counter()
        optimized = print_module(module) if keep_ir else None
        times.update(parse=t1 - t0, optimize=t2 - t1, codegen=t3 - t2)
        return code, optimized, times
    finally:
        if mpm:
            lib_.LLVMPY_DisposeNewModulePassManger(mpm)
        if pb:
            lib_.LLVMPY_DisposePassBuilder(pb)
        if pto:
            lib_.LLVMPY_DisposePipelineTuningOptions(pto)
        if tm:
            lib_.LLVMPY_DisposeTargetMachine(tm)
        if module:
            lib_.LLVMPY_DisposeModule(module)
        lib_.LLVMPY_ContextDispose(context)
