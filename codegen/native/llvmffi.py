"""Load cached object code through libllvmlite's C API directly, without ``llvmlite.binding``.

Why: importing ``llvmlite.binding`` costs ~20 ms per process (about half of a warm start from
the disk cache), of which only the ~6 ms ``dlopen`` of ``libllvmlite.so`` is needed to load
object code; the rest is Python (``llvmlite.ir``, ctypes prototypes for hundreds of
functions).  Loading an object needs fifteen C functions.  This module declares exactly those,
with the prototypes ``llvmlite.binding`` itself declares, on the same shared library (the same
``dlopen`` handle, so LLVM's global state, e.g. ``add_symbol``, is shared with llvmlite if it
is imported later).

Used only for the llvmlite versions it was checked against (:data:`SUPPORTED`) and only while
``llvmlite.binding`` is not imported (then it costs nothing to use llvmlite);
``SYMGRAPH_LLVM_FFI=0`` turns it off.  Anything that compiles IR still imports llvmlite.
Callers serialise calls with :data:`codegen.jit._lock`.
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import POINTER, c_bool, c_char_p, c_int, c_size_t, c_uint, c_uint64, c_void_p
from typing import Any

__all__ = ["SUPPORTED", "Engine", "available", "lib"]

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
    "LLVMPY_FinalizeObject": ([c_void_p], None),
    "LLVMPY_GetFunctionAddress": ([c_void_p, c_char_p], c_uint64),
    "LLVMPY_GetGlobalValueAddress": ([c_void_p, c_char_p], c_uint64),
    "LLVMPY_DisposeExecutionEngine": ([c_void_p], None),
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


def lib() -> Any:
    """The prototyped ``libllvmlite`` (loaded and initialised once), or ``None``."""
    global _lib, _failed
    if _lib is None and not _failed:
        try:
            if _version() not in SUPPORTED:
                raise OSError("untested llvmlite version")
            import importlib.util

            spec = importlib.util.find_spec("llvmlite")
            if spec is None or not spec.submodule_search_locations:
                raise OSError("llvmlite not found")
            path = os.path.join(list(spec.submodule_search_locations)[0], "binding",
                                "libllvmlite.so")
            handle = ctypes.CDLL(path)
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
    """An MCJIT engine holding one object file (what ``load_object`` needs of llvmlite's
    ``ExecutionEngine``)."""

    def __init__(self, object_code: bytes, triple: str, cpu: str, features: str):
        lib_ = _lib
        target, err = _take_string(lib_.LLVMPY_GetTargetFromTriple, triple.encode())
        if not target:
            raise RuntimeError(err)
        tm = lib_.LLVMPY_CreateTargetMachine(target, triple.encode(), cpu.encode(),
                                             features.encode(), 3, b"static", b"jitdefault",
                                             0, 1, b"")
        if not tm:
            raise RuntimeError("could not create a target machine")
        module, err = _take_string(lib_.LLVMPY_ParseAssembly, lib_.LLVMPY_GetGlobalContext(),
                                   b"")
        if not module:
            raise RuntimeError(err)
        # the engine owns the module and the target machine from here on
        ee, err = _take_string(lib_.LLVMPY_CreateMCJITCompiler, module, tm, False)
        if not ee:
            raise RuntimeError(err)
        self._ee = ee
        obj = lib_.LLVMPY_CreateObjectFile(object_code, len(object_code))
        if not obj:
            raise RuntimeError("not an object file")
        lib_.LLVMPY_MCJITAddObjectFile(ee, obj)  # takes the binary out of ``obj``
        lib_.LLVMPY_DisposeObjectFile(obj)
        lib_.LLVMPY_FinalizeObject(ee)

    def get_function_address(self, name: str) -> int:
        return int(_lib.LLVMPY_GetFunctionAddress(self._ee, name.encode()))

    def get_global_value_address(self, name: str) -> int:
        return int(_lib.LLVMPY_GetGlobalValueAddress(self._ee, name.encode()))

    def __del__(self) -> None:
        ee, self._ee = getattr(self, "_ee", None), None
        if ee and _lib is not None and not sys.is_finalizing():
            _lib.LLVMPY_DisposeExecutionEngine(ee)
