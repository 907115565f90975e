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

Before reading anything out of an argument, the builtin checks it natively: its type is
exactly ``numpy.ndarray`` (not a subclass, not a numpy scalar), then its rank, its flags
(C-contiguous and aligned; writeable where :func:`make_builtin` asks for it), its dtype (the
``PyArray_Descr`` given to :func:`make_builtin`, or one with the same type number and byte
order, so a byte-swapped or otherwise different dtype is refused) and, where given, its
shape.  An argument that fails is not touched and the kernel does not run: the builtin
returns the negative status ``-(i + 1)`` for argument ``i``, so no Python object can make it
read or write memory it does not own.  Callers turn that status into a slower, converting
path (``codegen.backend``) or an error.

The builtin's ``self`` (``fn.__self__``) is a small uint64 array ``[kernel, nargs, nowned,
ndarray type, total dims, owned..., then per argument: rank, descr, required flags, expected
dims...]`` that also keeps the kernel's code, the owned arrays, the dtypes and the
``PyMethodDef`` alive, so one compiled trampoline, which loops over that table, serves every
builtin.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .cache import compile_cached
from .jit import add_symbol, register_binder

__all__ = [
    "ANY_DIM",
    "ARRAY_DATA_OFFSET",
    "ARRAY_DIMS_OFFSET",
    "ARRAY_NDIM_OFFSET",
    "KernelContext",
    "bind_python_symbols",
    "context_layout",
    "make_builtin",
    "trampoline_ir",
]

METH_FASTCALL = 0x0080

# Offsets in numpy's PyArrayObject_fields (after PyObject_HEAD = refcount, type): data, nd,
# dimensions, strides, base, descr, flags.
_PTR = ctypes.sizeof(ctypes.c_void_p)
OBJECT_TYPE_OFFSET = _PTR
ARRAY_DATA_OFFSET = 2 * _PTR
ARRAY_NDIM_OFFSET = 3 * _PTR
ARRAY_DIMS_OFFSET = 4 * _PTR
ARRAY_DESCR_OFFSET = 7 * _PTR
ARRAY_FLAGS_OFFSET = 8 * _PTR
# ... and in PyArray_Descr (numpy 1.x and 2.x alike): byteorder (a char), type_num (an int)
DESCR_BYTEORDER_OFFSET = 3 * _PTR + 2
DESCR_TYPE_NUM_OFFSET = 3 * _PTR + 4

#: numpy's array flags the builtin checks
C_CONTIGUOUS = 0x0001
ALIGNED = 0x0100
WRITEABLE = 0x0400
#: what every argument must have
REQUIRED_FLAGS = C_CONTIGUOUS | ALIGNED
#: an expected dim that accepts any size
ANY_DIM = -1


def _validate_layout() -> None:
    """Check the assumed struct offsets against numpy's own accessors (runs at import)."""

    class _Sub(np.ndarray):
        pass

    base = np.zeros((4, 6, 10), dtype=np.float32)
    for arr in (base, base[1:3, 2:], base.view(_Sub), np.zeros(0, np.float64),
                np.zeros(3, ">i4"), np.zeros((), np.bool_)):
        addr = id(arr)
        data = ctypes.c_void_p.from_address(addr + ARRAY_DATA_OFFSET).value or 0
        ndim = ctypes.c_int.from_address(addr + ARRAY_NDIM_OFFSET).value
        dims_ptr = ctypes.c_void_p.from_address(addr + ARRAY_DIMS_OFFSET).value
        shape = tuple((ctypes.c_int64 * ndim).from_address(dims_ptr)) if ndim else ()
        kind = ctypes.c_void_p.from_address(addr + OBJECT_TYPE_OFFSET).value
        descr = ctypes.c_void_p.from_address(addr + ARRAY_DESCR_OFFSET).value
        flags = ctypes.c_int.from_address(addr + ARRAY_FLAGS_OFFSET).value
        if (data != (arr.ctypes.data or 0) or ndim != arr.ndim or shape != arr.shape
                or kind != id(type(arr)) or descr != id(arr.dtype) or flags != arr.flags.num
                or ctypes.c_int.from_address(descr + DESCR_TYPE_NUM_OFFSET).value != arr.dtype.num
                or ctypes.c_char.from_address(descr + DESCR_BYTEORDER_OFFSET).value
                != arr.dtype.byteorder.encode()):
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


@functools.cache
def _new_cfunction() -> Callable[..., Any]:
    """``PyCFunction_NewEx`` with an own prototype (not ``ctypes.pythonapi``'s shared
    attribute, which others may reconfigure).  Looked up on first use, not at import."""
    return ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.py_object,
                             ctypes.c_void_p)(("PyCFunction_NewEx", ctypes.pythonapi))


_PY_SYMBOLS = ("Py_IncRef", "PyLong_FromLong", "PyErr_Format")
_lock = threading.Lock()
_bound = False
#: the trampoline's symbol, and the one every builtin uses: (module keeping its code, address)
TRAMPOLINE = "sg_trampoline"
_trampoline_entry: tuple[Any, int] | None = None
#: words before the owned pointers in a builtin's ``self``: kernel, nargs, nowned, ndarray
#: type, total dims (see :func:`context_layout`)
HEADER_WORDS = 5


def bind_python_symbols() -> None:
    """Bind the ``sg_Py*`` names used by trampolines to the running interpreter (idempotent)."""
    global _bound
    if _bound:
        return
    api = ctypes.pythonapi
    for name in _PY_SYMBOLS:
        add_symbol(f"sg_{name}", ctypes.cast(getattr(api, name), ctypes.c_void_p).value)
    add_symbol("sg_Py_None", id(None))
    add_symbol(
        "sg_PyExc_TypeError", ctypes.addressof(ctypes.c_void_p.in_dll(api, "PyExc_TypeError"))
    )
    _bound = True


def context_layout(ranks: Sequence[int], nowned: int) -> tuple[int, list[int]]:
    """Where things live in a builtin's ``self`` array: the index of the first owned pointer,
    and per argument the index of its ``[rank, descr, required flags, dims...]`` entries.
    The header before them is ``[kernel, nargs, nowned, ndarray type, total dims]``."""
    bases, pos = [], HEADER_WORDS + nowned
    for rank in ranks:
        bases.append(pos)
        pos += 3 + rank
    return HEADER_WORDS, bases


def trampoline_ir() -> str:
    """IR text of the one ``METH_FASTCALL`` trampoline that serves every builtin.

    It loops over the arguments, reading each one's rank, dtype, flags and dims from the
    builtin's ``self`` array (:func:`context_layout`), so its code does not grow with the
    number of arguments: an unrolled trampoline per ``(ranks, nowned)`` was ~40% of a step
    module's IR and ~20% of its optimisation time.  Each argument is checked (module
    docstring) before its struct is read: the type first (reading ``ob_type`` is valid for
    every object), then rank, flags and dtype, then -- only once the rank is known -- the dims.

    A module of its own, compiled once per machine (:func:`_trampoline`, through the disk
    cache) and shared by every builtin of the process. (Each step's module used to carry a copy:
    only the first one loaded in a process was used, and compiling it cost every cold compile
    ~8 ms on W1 and ~16 ms, a fifth, on W2/W3-sized steps.)
    """
    msg = b"expected %zd array argument(s), got %zd"
    msg_ir = "".join(f"\\{b:02X}" for b in msg) + "\\00"
    h = HEADER_WORDS
    return f"""
@sg_Py_None = external global i8
@sg_PyExc_TypeError = external global ptr
@.msg = private unnamed_addr constant [{len(msg) + 1} x i8] c"{msg_ir}"
declare void @sg_Py_IncRef(ptr)
declare ptr @sg_PyLong_FromLong(i64)
declare ptr @sg_PyErr_Format(ptr, ptr, ...)
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)

define ptr @{TRAMPOLINE}(ptr %self, ptr %args, i64 %nargs) {{
entry:
  %tabp = getelementptr inbounds i8, ptr %self, i64 {ARRAY_DATA_OFFSET}
  %tab = load ptr, ptr %tabp
  %wantp = getelementptr inbounds i64, ptr %tab, i64 1
  %want = load i64, ptr %wantp
  %ok = icmp eq i64 %nargs, %want
  br i1 %ok, label %body, label %bad, !prof !0
bad:
  %exc = load ptr, ptr @sg_PyExc_TypeError
  %fmt = call ptr (ptr, ptr, ...) @sg_PyErr_Format(ptr %exc, ptr @.msg, i64 %want, i64 %nargs)
  ret ptr null
body:
  %nownp = getelementptr inbounds i64, ptr %tab, i64 2
  %nown = load i64, ptr %nownp
  %ndtypep = getelementptr inbounds i64, ptr %tab, i64 3
  %ndtype = load ptr, ptr %ndtypep
  %ndimsp = getelementptr inbounds i64, ptr %tab, i64 4
  %ndims = load i64, ptr %ndimsp
  %nbuf = add i64 %nargs, %nown
  %bufs = alloca ptr, i64 %nbuf, align 16
  %dims = alloca i64, i64 %ndims, align 16
  %argbase = add i64 %nown, {h}
  %none = icmp eq i64 %nargs, 0
  br i1 %none, label %owned, label %arg
arg:
  %i = phi i64 [0, %body], [%inext, %next]
  %pos = phi i64 [%argbase, %body], [%posnext, %next]
  %dpos = phi i64 [0, %body], [%dposnext, %next]
  %ap = getelementptr inbounds ptr, ptr %args, i64 %i
  %a = load ptr, ptr %ap
  %typ = getelementptr inbounds i8, ptr %a, i64 {OBJECT_TYPE_OFFSET}
  %ty = load ptr, ptr %typ
  %okty = icmp eq ptr %ty, %ndtype
  br i1 %okty, label %head, label %reject, !prof !0
head:
  %rankp = getelementptr inbounds i64, ptr %tab, i64 %pos
  %rank = load i64, ptr %rankp
  %ndp = getelementptr inbounds i8, ptr %a, i64 {ARRAY_NDIM_OFFSET}
  %nd32 = load i32, ptr %ndp
  %nd = sext i32 %nd32 to i64
  %oknd = icmp eq i64 %nd, %rank
  %flp = getelementptr inbounds i8, ptr %a, i64 {ARRAY_FLAGS_OFFSET}
  %fl = load i32, ptr %flp
  %needp = getelementptr inbounds i64, ptr %rankp, i64 2
  %need = load i64, ptr %needp
  %needt = trunc i64 %need to i32
  %has = and i32 %fl, %needt
  %okfl = icmp eq i32 %has, %needt
  %dsp = getelementptr inbounds i8, ptr %a, i64 {ARRAY_DESCR_OFFSET}
  %ds = load ptr, ptr %dsp
  %wdp = getelementptr inbounds i64, ptr %rankp, i64 1
  %wd = load ptr, ptr %wdp
  %anyds = icmp eq ptr %wd, null
  %sameds = icmp eq ptr %ds, %wd
  %okds = or i1 %anyds, %sameds
  %okh = and i1 %oknd, %okfl
  br i1 %okh, label %dt, label %reject, !prof !0
dt:  ; the same descr object (the common case) or none asked for
  br i1 %okds, label %data, label %eqdt, !prof !0
eqdt:  ; an equivalent descr: same type number and byte order
  %tnap = getelementptr inbounds i8, ptr %ds, i64 {DESCR_TYPE_NUM_OFFSET}
  %tna = load i32, ptr %tnap
  %tnwp = getelementptr inbounds i8, ptr %wd, i64 {DESCR_TYPE_NUM_OFFSET}
  %tnw = load i32, ptr %tnwp
  %boap = getelementptr inbounds i8, ptr %ds, i64 {DESCR_BYTEORDER_OFFSET}
  %boa = load i8, ptr %boap
  %bowp = getelementptr inbounds i8, ptr %wd, i64 {DESCR_BYTEORDER_OFFSET}
  %bow = load i8, ptr %bowp
  %oktn = icmp eq i32 %tna, %tnw
  %okbo = icmp eq i8 %boa, %bow
  %okeq = and i1 %oktn, %okbo
  br i1 %okeq, label %data, label %reject
data:
  %dp = getelementptr inbounds i8, ptr %a, i64 {ARRAY_DATA_OFFSET}
  %d = load ptr, ptr %dp
  %bp = getelementptr inbounds ptr, ptr %bufs, i64 %i
  store ptr %d, ptr %bp
  %shp = getelementptr inbounds i8, ptr %a, i64 {ARRAY_DIMS_OFFSET}
  %sh = load ptr, ptr %shp
  %want0 = getelementptr inbounds i64, ptr %rankp, i64 3
  %out0 = getelementptr inbounds i64, ptr %dims, i64 %dpos
  %scalar = icmp eq i64 %rank, 0
  br i1 %scalar, label %next, label %dim
dim:  ; copy each dim into %dims and compare it with the planned one (ANY_DIM: free)
  %j = phi i64 [0, %data], [%jnext, %dim]
  %okacc = phi i1 [true, %data], [%okj, %dim]
  %sp = getelementptr inbounds i64, ptr %sh, i64 %j
  %s = load i64, ptr %sp
  %op = getelementptr inbounds i64, ptr %out0, i64 %j
  store i64 %s, ptr %op
  %ep = getelementptr inbounds i64, ptr %want0, i64 %j
  %e = load i64, ptr %ep
  %anyd = icmp eq i64 %e, {ANY_DIM}
  %samed = icmp eq i64 %e, %s
  %okd = or i1 %anyd, %samed
  %okj = and i1 %okacc, %okd
  %jnext = add nuw i64 %j, 1
  %more = icmp ult i64 %jnext, %rank
  br i1 %more, label %dim, label %dimsdone
dimsdone:
  br i1 %okj, label %next, label %reject, !prof !0
next:
  %step = add i64 %rank, 3
  %posnext = add i64 %pos, %step
  %dposnext = add i64 %dpos, %rank
  %inext = add nuw i64 %i, 1
  %moreargs = icmp ult i64 %inext, %nargs
  br i1 %moreargs, label %arg, label %owned
owned:
  %ownsrc = getelementptr inbounds i64, ptr %tab, i64 {h}
  %bo = getelementptr inbounds ptr, ptr %bufs, i64 %nargs
  %obytes = mul i64 %nown, {_PTR}
  call void @llvm.memcpy.p0.p0.i64(ptr %bo, ptr %ownsrc, i64 %obytes, i1 0)
  %kernel = load ptr, ptr %tab
  %st = call i32 %kernel(ptr %bufs, ptr %dims)
  %zero = icmp eq i32 %st, 0
  br i1 %zero, label %retnone, label %status, !prof !0
retnone:
  call void @sg_Py_IncRef(ptr @sg_Py_None)
  ret ptr @sg_Py_None
status:
  %st64 = sext i32 %st to i64
  %r = call ptr @sg_PyLong_FromLong(i64 %st64)
  ret ptr %r
reject:  ; argument %i failed a check: status -(i + 1), nothing ran
  %neg = sub i64 -1, %i
  %rj = call ptr @sg_PyLong_FromLong(i64 %neg)
  ret ptr %rj
}}
!0 = !{{!"branch_weights", i32 1000, i32 1}}
"""


def _trampoline() -> tuple[Any, int]:
    global _trampoline_entry
    with _lock:
        if _trampoline_entry is None:
            bind_python_symbols()
            # through the disk cache: a fresh process then pays ~2 ms.  O0: llvmlite's LLVM 20
            # took 13 ms to optimise these 140 lines at O1 and 12 to emit them (~4 + 5 ms for
            # any loop), 2 ms at O0, which is most of a machine's first compile (W1 cold 187
            # ms); calls are 1.01x O1's (x+1: 1.30 -> 1.32 us, alternating processes)
            cm = compile_cached(trampoline_ir(), opt_level=0)
            _trampoline_entry = (cm, cm.address(TRAMPOLINE))
        return _trampoline_entry


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
    dtypes: Sequence[Any] | None = None,
    shapes: Sequence[Sequence[int] | None] | None = None,
    writeable: Sequence[bool] | None = None,
) -> Callable[..., int | None]:
    """Wrap a kernel following the module's ABI as a ``METH_FASTCALL`` builtin function.

    ``ranks[i]`` is the number of dimensions of array argument ``i``.  ``owned`` buffers are
    ndarrays (kept alive by the builtin) or raw addresses (the caller keeps them alive).  Pass
    the kernel's :class:`~codegen.jit.CompiledModule` as ``keepalive``.  Calling the result with
    ``len(ranks)`` ndarrays runs the kernel and returns ``None`` or the non-zero status.

    What each argument must be, checked natively on every call (``None`` entries, or the
    whole sequence ``None``: not checked): ``dtypes[i]`` (this dtype's type number and byte
    order), ``shapes[i]`` (``ANY_DIM`` for a free dim),
    ``writeable[i]``.  Type ``numpy.ndarray``, the rank, C-contiguity and alignment are always
    checked.  An argument that fails makes the call return ``-(i + 1)`` without running the
    kernel.

    >>> f = make_builtin(cm.address("add1"), [1], dtypes=[np.dtype("float32")])
    >>> f(np.zeros(3, np.float32)) is None, f(np.zeros(3))  # (True, -1)
    """
    ranks_t = tuple(int(r) for r in ranks)
    if any(r < 0 for r in ranks_t):
        raise ValueError("ranks must be >= 0")
    nargs = len(ranks_t)
    for label, seq in (("dtypes", dtypes), ("shapes", shapes), ("writeable", writeable)):
        if seq is not None and len(seq) != nargs:
            raise ValueError(f"{label}: {len(seq)} entries for {nargs} array arguments")
    cm, tramp_addr = _trampoline()
    first_owned, bases = context_layout(ranks_t, len(owned))
    ctx = np.zeros(first_owned + len(owned) + sum(3 + r for r in ranks_t),
                   dtype=np.uint64).view(KernelContext)
    words = ctx.view(np.int64)
    ctx[0] = kernel_address
    words[1], words[2], words[4] = nargs, len(owned), sum(ranks_t)
    ctx[3] = id(np.ndarray)
    for i, buf in enumerate(owned):
        ctx[first_owned + i] = _pointer(buf)
    kept_dtypes = []
    for i, (rank, base) in enumerate(zip(ranks_t, bases)):
        dtype = None if dtypes is None or dtypes[i] is None else np.dtype(dtypes[i])
        words[base] = rank
        if dtype is not None:
            kept_dtypes.append(dtype)
            ctx[base + 1] = id(dtype)
        need = REQUIRED_FLAGS | (WRITEABLE if writeable is not None and writeable[i] else 0)
        words[base + 2] = need
        shape = None if shapes is None else shapes[i]
        if shape is not None and len(shape) != rank:
            raise ValueError(f"shapes[{i}] = {tuple(shape)} does not have rank {rank}")
        for j in range(rank):
            words[base + 3 + j] = ANY_DIM if shape is None else int(shape[j])
    method = _PyMethodDef(name.encode(), tramp_addr, METH_FASTCALL, doc.encode() if doc else None)
    ctx.keepalive = [method, cm, keepalive, kept_dtypes,
                     [b for b in owned if isinstance(b, np.ndarray)]]
    return _new_cfunction()(ctypes.addressof(method), ctx, None)


register_binder("python", (b"sg_Py",), lambda object_code: bind_python_symbols())
