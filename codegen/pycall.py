"""Call compiled kernels from Python with ~40 ns overhead, without a C compiler.

Why: ctypes costs ~0.3-2 us per call plus ~1-2.7 us per ``arr.ctypes.data`` read (llvm-notes
section 6), more than a small training step itself.  Instead we JIT a tiny trampoline with the
CPython ``METH_FASTCALL`` signature and expose it as a builtin function through
``PyCFunction_NewEx``: Python calls it directly with the ndarrays, and the trampoline reads each
array's data pointer and shape straight out of the ``PyArrayObject`` struct.

Kernel ABI (what the lowering must emit)::

    i32 @kernel(ptr %buffers, ptr %dims)   ; C: int32_t kernel(void **buffers, const int64_t *dims)

* ``buffers[0 .. nargs-1]`` are the data pointers of the array arguments, in call order;
  ``buffers[nargs .. nargs+nowned-1]`` are the *owned* buffers (parameters, arena, ...) given
  to :func:`make_builtin`.
* ``dims`` holds the shapes of the array arguments concatenated (``ranks[i]`` entries for
  argument ``i``), so kernels can take dynamic sizes (e.g. batch) from their inputs.
* Return 0 on success; the builtin then returns ``None``.  Any other value is returned to
  Python as an ``int`` (a runtime error code for the caller to turn into an exception).

The builtin checks only the argument count.  The Python caller must validate dtype, shape and
C-contiguity first: a wrong array is memory corruption, not an exception.

The builtin's ``self`` (``fn.__self__``) is a small uint64 array ``[kernel, owned...]`` that
also keeps the kernel's code, the owned arrays and the ``PyMethodDef`` alive, so one compiled
trampoline serves every builtin with the same ``(ranks, nowned)``.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "ARRAY_DATA_OFFSET",
    "ARRAY_DIMS_OFFSET",
    "ARRAY_NDIM_OFFSET",
    "KernelContext",
    "bind_python_symbols",
    "make_builtin",
    "register_trampoline",
    "trampoline_ir",
]

METH_FASTCALL = 0x0080

# Offsets in numpy's PyArrayObject_fields (after PyObject_HEAD): data, nd, dimensions.
_PTR = ctypes.sizeof(ctypes.c_void_p)
ARRAY_DATA_OFFSET = 2 * _PTR
ARRAY_NDIM_OFFSET = 3 * _PTR
ARRAY_DIMS_OFFSET = 4 * _PTR


def _validate_layout() -> None:
    """Check the assumed struct offsets against numpy's own accessors (runs at import)."""

    class _Sub(np.ndarray):
        pass

    base = np.zeros((4, 6, 10), dtype=np.float32)
    for arr in (base, base[1:3, 2:], base.view(_Sub), np.zeros(0, np.float64)):
        addr = id(arr)
        data = ctypes.c_void_p.from_address(addr + ARRAY_DATA_OFFSET).value or 0
        ndim = ctypes.c_int.from_address(addr + ARRAY_NDIM_OFFSET).value
        dims_ptr = ctypes.c_void_p.from_address(addr + ARRAY_DIMS_OFFSET).value
        shape = tuple((ctypes.c_int64 * ndim).from_address(dims_ptr)) if ndim else ()
        if data != (arr.ctypes.data or 0) or ndim != arr.ndim or shape != arr.shape:
            raise ImportError(
                "numpy's PyArrayObject layout differs from what codegen.pycall assumes "
                f"(numpy {np.__version__}); the fast-call path is unavailable"
            )


_validate_layout()


class KernelContext(np.ndarray):
    """``self`` of a builtin: uint64 ``[kernel address, owned pointers...]`` plus keep-alives."""

    keepalive: list[Any]


class _PyMethodDef(ctypes.Structure):
    _fields_ = (
        ("ml_name", ctypes.c_char_p),
        ("ml_meth", ctypes.c_void_p),
        ("ml_flags", ctypes.c_int),
        ("ml_doc", ctypes.c_char_p),
    )


# Own prototype (not ctypes.pythonapi's shared attribute, which others may reconfigure).
_new_cfunction = ctypes.PYFUNCTYPE(
    ctypes.py_object, ctypes.c_void_p, ctypes.py_object, ctypes.c_void_p
)(("PyCFunction_NewEx", ctypes.pythonapi))

_PY_SYMBOLS = ("Py_IncRef", "PyLong_FromLong", "PyErr_SetString")
_lock = threading.Lock()
_bound = False
_trampolines: dict[tuple[tuple[int, ...], int], tuple[Any, int]] = {}


def bind_python_symbols() -> None:
    """Bind the ``sg_Py*`` names used by trampolines to the running interpreter (idempotent)."""
    global _bound
    if _bound:
        return
    from .jit import add_symbol

    api = ctypes.pythonapi
    for name in _PY_SYMBOLS:
        add_symbol(f"sg_{name}", ctypes.cast(getattr(api, name), ctypes.c_void_p).value)
    add_symbol("sg_Py_None", id(None))
    add_symbol(
        "sg_PyExc_TypeError", ctypes.addressof(ctypes.c_void_p.in_dll(api, "PyExc_TypeError"))
    )
    _bound = True


def trampoline_ir(ranks: Sequence[int], nowned: int, name: str = "sg_trampoline", *,
                  embedded: bool = False) -> str:
    """IR text of the ``METH_FASTCALL`` trampoline for array arguments of the given ranks.

    ``embedded``: for appending to another module (the backend puts its step's trampoline
    into the step's own module, so loading it costs nothing extra): private names are
    prefixed with ``name``, the branch weights are inline metadata, and
    ``llvm.memcpy`` is declared only when ``embedded`` is false (the host module declares it).
    """
    nargs = len(ranks)
    nbuf = nargs + nowned
    ndims = max(1, sum(ranks))
    msg = f"expected {nargs} array argument(s)".encode()
    msg_ir = "".join(f"\\{b:02X}" for b in msg) + "\\00"
    body: list[str] = []
    pos = 0
    for i, rank in enumerate(ranks):
        body += [
            f"  %ap{i} = getelementptr inbounds ptr, ptr %args, i64 {i}",
            f"  %a{i} = load ptr, ptr %ap{i}",
            f"  %dp{i} = getelementptr inbounds i8, ptr %a{i}, i64 {ARRAY_DATA_OFFSET}",
            f"  %d{i} = load ptr, ptr %dp{i}",
            f"  %bp{i} = getelementptr inbounds ptr, ptr %bufs, i64 {i}",
            f"  store ptr %d{i}, ptr %bp{i}",
        ]
        if rank:
            body += [
                f"  %shp{i} = getelementptr inbounds i8, ptr %a{i}, i64 {ARRAY_DIMS_OFFSET}",
                f"  %sh{i} = load ptr, ptr %shp{i}",
            ]
        for j in range(rank):
            body += [
                f"  %sp{i}_{j} = getelementptr inbounds i64, ptr %sh{i}, i64 {j}",
                f"  %s{i}_{j} = load i64, ptr %sp{i}_{j}",
                f"  %dd{i}_{j} = getelementptr inbounds i64, ptr %dims, i64 {pos + j}",
                f"  store i64 %s{i}_{j}, ptr %dd{i}_{j}",
            ]
        pos += rank
    if nowned:
        body += [
            "  %own = getelementptr inbounds ptr, ptr %tab, i64 1",
            f"  %bo = getelementptr inbounds ptr, ptr %bufs, i64 {nargs}",
            f"  call void @llvm.memcpy.p0.p0.i64(ptr %bo, ptr %own, i64 {nowned * _PTR}, i1 0)",
        ]
    lines = "\n".join(body)
    msg_name = f"@.{name}.msg" if embedded else "@.msg"
    prof = '!{!"branch_weights", i32 1000, i32 1}' if embedded else "!0"
    memcpy = "" if embedded else "declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)"
    weights = "" if embedded else '!0 = !{!"branch_weights", i32 1000, i32 1}'
    return f"""
@sg_Py_None = external global i8
@sg_PyExc_TypeError = external global ptr
{msg_name} = private unnamed_addr constant [{len(msg) + 1} x i8] c"{msg_ir}"
declare void @sg_Py_IncRef(ptr)
declare ptr @sg_PyLong_FromLong(i64)
declare void @sg_PyErr_SetString(ptr, ptr)
{memcpy}

define ptr @{name}(ptr %self, ptr %args, i64 %nargs) {{
entry:
  %ok = icmp eq i64 %nargs, {nargs}
  br i1 %ok, label %body, label %bad, !prof {prof}
bad:
  %exc = load ptr, ptr @sg_PyExc_TypeError
  call void @sg_PyErr_SetString(ptr %exc, ptr {msg_name})
  ret ptr null
body:
  %bufs = alloca [{max(1, nbuf)} x ptr]
  %dims = alloca [{ndims} x i64]
  %tabp = getelementptr inbounds i8, ptr %self, i64 {ARRAY_DATA_OFFSET}
  %tab = load ptr, ptr %tabp
  %kernel = load ptr, ptr %tab
{lines}
  %st = call i32 %kernel(ptr %bufs, ptr %dims)
  %zero = icmp eq i32 %st, 0
  br i1 %zero, label %none, label %status, !prof {prof}
none:
  call void @sg_Py_IncRef(ptr @sg_Py_None)
  ret ptr @sg_Py_None
status:
  %st64 = sext i32 %st to i64
  %r = call ptr @sg_PyLong_FromLong(i64 %st64)
  ret ptr %r
}}
{weights}
"""


def register_trampoline(ranks: Sequence[int], nowned: int, module: Any, address: int) -> None:
    """Use an already compiled trampoline (``trampoline_ir(..., embedded=True)`` inside
    ``module``) for every later builtin with these ``(ranks, nowned)``; keeps ``module`` alive.
    A trampoline registered or compiled earlier for the same key stays in use."""
    key = (tuple(int(r) for r in ranks), int(nowned))
    with _lock:
        _trampolines.setdefault(key, (module, int(address)))


def _trampoline(ranks: tuple[int, ...], nowned: int) -> tuple[Any, int]:
    key = (ranks, nowned)
    with _lock:
        hit = _trampolines.get(key)
        if hit is None:
            from .cache import compile_cached

            bind_python_symbols()
            # through the disk cache: a fresh process then pays ~3 ms instead of ~25 ms
            cm = compile_cached(trampoline_ir(ranks, nowned), opt_level=2)
            hit = _trampolines[key] = (cm, cm.address("sg_trampoline"))
    return hit


def _pointer(buf: int | np.ndarray) -> int:
    if isinstance(buf, np.ndarray):
        if not buf.flags.c_contiguous:
            raise ValueError("owned buffers must be C-contiguous")
        return int(buf.ctypes.data)
    return int(buf)


def make_builtin(
    kernel_address: int,
    ranks: Sequence[int],
    owned: Sequence[int | np.ndarray] = (),
    *,
    name: str = "kernel",
    doc: str | None = None,
    keepalive: Any = None,
) -> Callable[..., int | None]:
    """Wrap a kernel following the module's ABI as a ``METH_FASTCALL`` builtin function.

    ``ranks[i]`` is the number of dimensions of array argument ``i``.  ``owned`` buffers are
    ndarrays (kept alive by the builtin) or raw addresses (the caller keeps them alive).  Pass
    the kernel's :class:`~codegen.jit.CompiledModule` as ``keepalive``.  Calling the result with
    ``len(ranks)`` ndarrays runs the kernel and returns ``None`` or the non-zero status.
    """
    ranks_t = tuple(int(r) for r in ranks)
    if any(r < 0 for r in ranks_t):
        raise ValueError("ranks must be >= 0")
    cm, tramp_addr = _trampoline(ranks_t, len(owned))
    ctx = np.zeros(1 + len(owned), dtype=np.uint64).view(KernelContext)
    ctx[0] = kernel_address
    for i, buf in enumerate(owned):
        ctx[1 + i] = _pointer(buf)
    method = _PyMethodDef(name.encode(), tramp_addr, METH_FASTCALL, doc.encode() if doc else None)
    ctx.keepalive = [method, cm, keepalive, [b for b in owned if isinstance(b, np.ndarray)]]
    return _new_cfunction(ctypes.addressof(method), ctx, None)
