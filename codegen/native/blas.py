"""Matrix products in generated code: call the OpenBLAS that numpy already ships.

Why: BLAS beats a generated loop nest at every size but matrix-vector (llvm-notes section 3),
and using numpy's own copy avoids both the slow ``scipy.linalg.cython_blas`` import and a
second OpenBLAS in the process (two copies interleaving threads made a 1 ms gemm take 36 ms).

The library is located among the shared objects already mapped into the process (numpy loaded
it), falling back to a glob next to the numpy package.  Generated code calls stable alias names
(``@sg_cblas_sgemm``, ...) that :func:`bind_symbols` maps with ``llvm.add_symbol`` to the
library's real CBLAS symbols (``scipy_cblas_sgemm64_`` in numpy 2.x wheels).  No address is
baked into IR or object code, so cached object code stays valid across processes.
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct
import threading

from .jit import add_symbol, register_binder

__all__ = [
    "BlasLibrary",
    "bind_symbols",
    "blas_declarations",
    "blas_info",
    "gemm_call",
    "gemv_call",
    "get_num_threads",
    "library",
    "set_num_threads",
]

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
_IR_TYPE = {"float32": "float", "float64": "double"}
_ROUTINES = ("sgemm", "dgemm", "sgemv", "dgemv")
_ALIAS = "sg_cblas_"

# (prefix, suffix, integer bits) naming schemes, most specific first.
_SCHEMES = (("scipy_", "64_", 64), ("", "64_", 64), ("scipy_", "", 32), ("", "", 32))


class BlasLibrary:
    """The OpenBLAS found in the process and the naming scheme of its symbols (a plain class:
    a frozen dataclass cost ~0.4 ms of every warm start, a ``NamedTuple`` 0.2-0.4 ms, this
    ~0.02)."""

    __slots__ = ("path", "cdll", "prefix", "suffix", "int_bits")

    def __init__(self, path: str, cdll: ctypes.CDLL, prefix: str, suffix: str, int_bits: int):
        self.path, self.cdll, self.prefix, self.suffix = path, cdll, prefix, suffix
        self.int_bits = int_bits

    def __repr__(self) -> str:
        return (f"BlasLibrary(path={self.path!r}, prefix={self.prefix!r}, "
                f"suffix={self.suffix!r}, int_bits={self.int_bits})")

    def cblas(self, routine: str) -> str:
        """Real symbol name of a CBLAS routine, e.g. ``scipy_cblas_sgemm64_``."""
        return f"{self.prefix}cblas_{routine}{self.suffix}"

    def openblas(self, fn: str) -> str:
        """Real symbol name of an OpenBLAS extension, e.g. ``scipy_openblas_get_config64_``."""
        return f"{self.prefix}openblas_{fn}{self.suffix}"


def _bundled_paths() -> list[str]:
    """BLAS libraries shipped inside the numpy wheel (``numpy.libs``, macOS ``.dylibs``)."""
    import numpy

    root = os.path.dirname(os.path.abspath(numpy.__file__))
    paths: list[str] = []
    for sub, key in (("../numpy.libs", "openblas"), (".dylibs", "openblas"),
                     ("../numpy.libs", "blas")):
        folder = os.path.realpath(os.path.join(root, sub))
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        paths += [p for p in (os.path.join(folder, n) for n in names if key in n.lower())
                  if p not in paths]
    return paths


def _candidate_paths() -> list[str]:
    """Where numpy's BLAS may be, the file numpy already loaded first.

    A bundled library that is already loaded (``dlopen`` with ``RTLD_NOLOAD``) settles it
    without reading ``/proc/self/maps`` (~1 ms in a numpy process, on every warm start);
    otherwise the mapped files come first (a numpy linked to a system OpenBLAS)."""
    bundled = _bundled_paths()
    for path in bundled:
        try:
            ctypes.CDLL(path, mode=os.RTLD_NOLOAD)
        except (OSError, AttributeError):
            continue
        return [path] + [p for p in bundled if p != path]
    paths: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and "openblas" in os.path.basename(parts[5]).lower():
                    p = parts[5].strip()
                    if p not in paths:
                        paths.append(p)
    except OSError:
        pass
    return paths + [p for p in bundled if p not in paths]


@functools.cache
def library() -> BlasLibrary:
    """Locate and open numpy's OpenBLAS; ``RuntimeError`` with the places searched if none."""
    import numpy  # noqa: F401  (ensures numpy has loaded its BLAS)

    tried = _candidate_paths()
    for path in tried:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix, bits in _SCHEMES:
            if hasattr(lib, f"{prefix}cblas_sgemm{suffix}"):
                return BlasLibrary(path, lib, prefix, suffix, bits)
    raise RuntimeError(
        "no CBLAS-capable OpenBLAS found next to numpy (numpy built without a bundled "
        f"OpenBLAS?); searched: {tried or 'nothing'}"
    )


_bind_lock = threading.Lock()
_bound = False


def bind_symbols() -> None:
    """Map ``sg_cblas_<routine>`` to the library's symbols for the JIT linker (idempotent)."""
    global _bound
    if _bound:
        return
    with _bind_lock:
        if _bound:
            return
        lib = library()
        for routine in _ROUTINES:
            fn = getattr(lib.cdll, lib.cblas(routine))
            add_symbol(_ALIAS + routine, ctypes.cast(fn, ctypes.c_void_p).value)
        _bound = True


def _int() -> str:
    return f"i{library().int_bits}"


def blas_declarations() -> str:
    """IR declarations of the aliased CBLAS routines (gemm and gemv, float32 and float64)."""
    i = _int()
    lines = []
    for dtype, ty in _IR_TYPE.items():
        p = dtype_prefix(dtype)
        lines.append(
            f"declare void @{_ALIAS}{p}gemm(i32, i32, i32, {i}, {i}, {i}, {ty}, ptr, {i}, "
            f"ptr, {i}, {ty}, ptr, {i}) nounwind"
        )
        lines.append(
            f"declare void @{_ALIAS}{p}gemv(i32, i32, {i}, {i}, {ty}, ptr, {i}, ptr, {i}, "
            f"{ty}, ptr, {i}) nounwind"
        )
    return "\n".join(lines) + "\n"


def dtype_prefix(dtype: str) -> str:
    """BLAS type letter: ``s`` for float32, ``d`` for float64."""
    try:
        return {"float32": "s", "float64": "d"}[dtype]
    except KeyError:
        raise ValueError(f"BLAS supports float32/float64, not {dtype!r}") from None


def _fmt(value: float | str, ty: str) -> str:
    """IR literal for a constant (hex form: exact, and valid for NaN/Inf) or an operand."""
    if isinstance(value, str):
        return value
    if ty == "float":  # a float literal must be a double exactly representable as float
        value = struct.unpack("<f", struct.pack("<f", value))[0]
    bits = struct.unpack("<Q", struct.pack("<d", value))[0]
    return f"0x{bits:016X}"


def gemm_call(
    dtype: str,
    *,
    a: str,
    b: str,
    c: str,
    m: int | str,
    n: int | str,
    k: int | str,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float | str = 1.0,
    beta: float | str = 0.0,
    lda: int | str | None = None,
    ldb: int | str | None = None,
    ldc: int | str | None = None,
) -> str:
    """One IR ``call`` computing row-major ``C[m,n] = alpha*op(A) @ op(B) + beta*C``.

    ``a``/``b``/``c`` are ``ptr`` operands (``"%pa"``); ``op(A)`` is ``m x k`` (``A`` is stored
    ``k x m`` when ``trans_a``), ``op(B)`` is ``k x n``.  Sizes, leading dimensions and
    ``alpha``/``beta`` may be Python numbers or IR operands of the matching type.  Leading
    dimensions default to contiguous storage.  Transposes are flags, never copies.
    """
    p = dtype_prefix(dtype)
    ty = _IR_TYPE[dtype]
    i = _int()
    lda = lda if lda is not None else (m if trans_a else k)
    ldb = ldb if ldb is not None else (k if trans_b else n)
    ldc = ldc if ldc is not None else n
    ta = TRANS if trans_a else NO_TRANS
    tb = TRANS if trans_b else NO_TRANS
    return (
        f"call void @{_ALIAS}{p}gemm(i32 {ROW_MAJOR}, i32 {ta}, i32 {tb}, "
        f"{i} {m}, {i} {n}, {i} {k}, {ty} {_fmt(alpha, ty)}, ptr {a}, {i} {lda}, "
        f"ptr {b}, {i} {ldb}, {ty} {_fmt(beta, ty)}, ptr {c}, {i} {ldc})"
    )


def gemv_call(
    dtype: str,
    *,
    a: str,
    x: str,
    y: str,
    m: int | str,
    n: int | str,
    trans: bool = False,
    alpha: float | str = 1.0,
    beta: float | str = 0.0,
    lda: int | str | None = None,
    incx: int | str = 1,
    incy: int | str = 1,
) -> str:
    """One IR ``call`` computing ``y = alpha*op(A) @ x + beta*y`` for row-major ``A[m,n]``."""
    p = dtype_prefix(dtype)
    ty = _IR_TYPE[dtype]
    i = _int()
    lda = lda if lda is not None else n
    return (
        f"call void @{_ALIAS}{p}gemv(i32 {ROW_MAJOR}, "
        f"i32 {TRANS if trans else NO_TRANS}, {i} {m}, {i} {n}, {ty} {_fmt(alpha, ty)}, "
        f"ptr {a}, {i} {lda}, ptr {x}, {i} {incx}, {ty} {_fmt(beta, ty)}, ptr {y}, {i} {incy})"
    )


@functools.cache  # (contention.py sets the thread count around calls: no lookup each time)
def _ext(fn: str, restype: type | None, *argtypes: type) -> ctypes._CFuncPtr:
    lib = library()
    f = getattr(lib.cdll, lib.openblas(fn))
    f.restype = restype
    f.argtypes = argtypes
    return f


def set_num_threads(n: int) -> None:
    """Set OpenBLAS's thread count (``*_openblas_set_num_threads``)."""
    if n < 1:
        raise ValueError("thread count must be >= 1")
    _ext("set_num_threads", None, ctypes.c_int)(n)


def get_num_threads() -> int:
    """OpenBLAS's current thread count."""
    return int(_ext("get_num_threads", ctypes.c_int)())


def blas_info() -> dict[str, object]:
    """``path``, ``config`` (build string incl. version), ``corename`` (kernel in use) and
    ``num_threads`` of the bound OpenBLAS."""
    lib = library()
    config = _ext("get_config", ctypes.c_char_p)()
    core = _ext("get_corename", ctypes.c_char_p)()
    return {
        "path": lib.path,
        "config": config.decode() if config else "",
        "corename": core.decode() if core else "",
        "num_threads": get_num_threads(),
        "int_bits": lib.int_bits,
        "gemm_symbol": lib.cblas("sgemm"),
    }


register_binder("blas", (b"sg_cblas_",), lambda object_code: bind_symbols())
