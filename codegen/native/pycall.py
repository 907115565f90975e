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

The builtin's ``self`` (``fn.__self__``) is a small uint64 array ``[kernel, owned...,
ndarray type, then per argument: descr, required flags, expected dims...]`` that also keeps
the kernel's code, the owned arrays, the dtypes and the ``PyMethodDef`` alive, so one compiled
trampoline serves every builtin with the same ``(ranks, nowned)``.
"""

from __future__ import annotations

import ctypes
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
    "register_trampoline",
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
    api = ctypes.pythonapi
    for name in _PY_SYMBOLS:
        add_symbol(f"sg_{name}", ctypes.cast(getattr(api, name), ctypes.c_void_p).value)
    add_symbol("sg_Py_None", id(None))
    add_symbol(
        "sg_PyExc_TypeError", ctypes.addressof(ctypes.c_void_p.in_dll(api, "PyExc_TypeError"))
    )
    _bound = True


def context_layout(ranks: Sequence[int], nowned: int) -> tuple[int, list[int]]:
    """Where the argument checks live in a builtin's ``self`` array: the index of the ndarray
    type, and per argument the index of its ``[descr, required flags, dims...]`` entries."""
    type_index = 1 + nowned
    bases, pos = [], type_index + 1
    for rank in ranks:
        bases.append(pos)
        pos += 2 + rank
    return type_index, bases


def trampoline_ir(ranks: Sequence[int], nowned: int, name: str = "sg_trampoline", *,
                  embedded: bool = False) -> str:
    """IR text of the ``METH_FASTCALL`` trampoline for array arguments of the given ranks.

    Each argument is checked (module docstring) before its struct is read: the type first
    (reading ``ob_type`` is valid for every object), then rank, flags and dtype, then --
    only once the rank is known -- the dims.

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
    prof = '!{!"branch_weights", i32 1000, i32 1}' if embedded else "!0"
    type_index, bases = context_layout(ranks, nowned)

    def ctx_word(label: str, index: int, ty: str = "i64") -> list[str]:
        return [f"  %{label}p = getelementptr inbounds i64, ptr %tab, i64 {index}",
                f"  %{label} = load {ty}, ptr %{label}p"]

    body: list[str] = ctx_word("ndtype", type_index, "ptr")
    pos = 0
    for i, rank in enumerate(ranks):
        base = bases[i]
        body += [
            f"  %ap{i} = getelementptr inbounds ptr, ptr %args, i64 {i}",
            f"  %a{i} = load ptr, ptr %ap{i}",
            f"  %typ{i} = getelementptr inbounds i8, ptr %a{i}, i64 {OBJECT_TYPE_OFFSET}",
            f"  %ty{i} = load ptr, ptr %typ{i}",
            f"  %okty{i} = icmp eq ptr %ty{i}, %ndtype",
            f"  br i1 %okty{i}, label %head{i}, label %reject{i}, !prof {prof}",
            f"head{i}:",
            f"  %ndp{i} = getelementptr inbounds i8, ptr %a{i}, i64 {ARRAY_NDIM_OFFSET}",
            f"  %nd{i} = load i32, ptr %ndp{i}",
            f"  %oknd{i} = icmp eq i32 %nd{i}, {rank}",
            f"  %flp{i} = getelementptr inbounds i8, ptr %a{i}, i64 {ARRAY_FLAGS_OFFSET}",
            f"  %fl{i} = load i32, ptr %flp{i}",
            *ctx_word(f"need{i}", base + 1),
            f"  %needt{i} = trunc i64 %need{i} to i32",
            f"  %has{i} = and i32 %fl{i}, %needt{i}",
            f"  %okfl{i} = icmp eq i32 %has{i}, %needt{i}",
            f"  %dsp{i} = getelementptr inbounds i8, ptr %a{i}, i64 {ARRAY_DESCR_OFFSET}",
            f"  %ds{i} = load ptr, ptr %dsp{i}",
            *ctx_word(f"want{i}", base, "ptr"),
            f"  %anyds{i} = icmp eq ptr %want{i}, null",
            f"  %sameds{i} = icmp eq ptr %ds{i}, %want{i}",
            f"  %okds{i} = or i1 %anyds{i}, %sameds{i}",
            f"  %okh{i} = and i1 %oknd{i}, %okfl{i}",
            f"  br i1 %okh{i}, label %dt{i}, label %reject{i}, !prof {prof}",
            f"dt{i}:",  # the same descr object (the common case) or none asked for
            f"  br i1 %okds{i}, label %dims{i}, label %eqdt{i}, !prof {prof}",
            f"eqdt{i}:",  # an equivalent descr: same type number and byte order
            f"  %tnap{i} = getelementptr inbounds i8, ptr %ds{i}, i64 {DESCR_TYPE_NUM_OFFSET}",
            f"  %tna{i} = load i32, ptr %tnap{i}",
            f"  %tnwp{i} = getelementptr inbounds i8, ptr %want{i}, i64 {DESCR_TYPE_NUM_OFFSET}",
            f"  %tnw{i} = load i32, ptr %tnwp{i}",
            f"  %boap{i} = getelementptr inbounds i8, ptr %ds{i}, i64 {DESCR_BYTEORDER_OFFSET}",
            f"  %boa{i} = load i8, ptr %boap{i}",
            f"  %bowp{i} = getelementptr inbounds i8, ptr %want{i}, i64 {DESCR_BYTEORDER_OFFSET}",
            f"  %bow{i} = load i8, ptr %bowp{i}",
            f"  %oktn{i} = icmp eq i32 %tna{i}, %tnw{i}",
            f"  %okbo{i} = icmp eq i8 %boa{i}, %bow{i}",
            f"  %okeq{i} = and i1 %oktn{i}, %okbo{i}",
            f"  br i1 %okeq{i}, label %dims{i}, label %reject{i}",
            f"dims{i}:",
            f"  %dp{i} = getelementptr inbounds i8, ptr %a{i}, i64 {ARRAY_DATA_OFFSET}",
            f"  %d{i} = load ptr, ptr %dp{i}",
            f"  %bp{i} = getelementptr inbounds ptr, ptr %bufs, i64 {i}",
            f"  store ptr %d{i}, ptr %bp{i}",
        ]
        ok = "true"
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
                *ctx_word(f"e{i}_{j}", base + 2 + j),
                f"  %anyd{i}_{j} = icmp eq i64 %e{i}_{j}, {ANY_DIM}",
                f"  %samed{i}_{j} = icmp eq i64 %e{i}_{j}, %s{i}_{j}",
                f"  %okd{i}_{j} = or i1 %anyd{i}_{j}, %samed{i}_{j}",
                f"  %okc{i}_{j} = and i1 {ok}, %okd{i}_{j}",
            ]
            ok = f"%okc{i}_{j}"
        pos += rank
        if rank:
            body.append(f"  br i1 {ok}, label %next{i}, label %reject{i}, !prof {prof}")
        else:
            body.append(f"  br label %next{i}")
        body.append(f"next{i}:")
    if nowned:
        body += [
            "  %own = getelementptr inbounds ptr, ptr %tab, i64 1",
            f"  %bo = getelementptr inbounds ptr, ptr %bufs, i64 {nargs}",
            f"  call void @llvm.memcpy.p0.p0.i64(ptr %bo, ptr %own, i64 {nowned * _PTR}, i1 0)",
        ]
    rejects = []
    for i in range(nargs):
        rejects += [f"reject{i}:",
                    f"  %rj{i} = call ptr @sg_PyLong_FromLong(i64 {-(i + 1)})",
                    f"  ret ptr %rj{i}"]
    lines = "\n".join(body)
    reject_lines = "\n".join(rejects)
    msg_name = f"@.{name}.msg" if embedded else "@.msg"
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
{reject_lines}
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
    cm, tramp_addr = _trampoline(ranks_t, len(owned))
    type_index, bases = context_layout(ranks_t, len(owned))
    ctx = np.zeros(bases[-1] + 2 + ranks_t[-1] if nargs else type_index + 1,
                   dtype=np.uint64).view(KernelContext)
    words = ctx.view(np.int64)
    ctx[0] = kernel_address
    for i, buf in enumerate(owned):
        ctx[1 + i] = _pointer(buf)
    ctx[type_index] = id(np.ndarray)
    kept_dtypes = []
    for i, (rank, base) in enumerate(zip(ranks_t, bases)):
        dtype = None if dtypes is None or dtypes[i] is None else np.dtype(dtypes[i])
        if dtype is not None:
            kept_dtypes.append(dtype)
            ctx[base] = id(dtype)
        need = REQUIRED_FLAGS | (WRITEABLE if writeable is not None and writeable[i] else 0)
        words[base + 1] = need
        shape = None if shapes is None else shapes[i]
        if shape is not None and len(shape) != rank:
            raise ValueError(f"shapes[{i}] = {tuple(shape)} does not have rank {rank}")
        for j in range(rank):
            words[base + 2 + j] = ANY_DIM if shape is None else int(shape[j])
    method = _PyMethodDef(name.encode(), tramp_addr, METH_FASTCALL, doc.encode() if doc else None)
    ctx.keepalive = [method, cm, keepalive, kept_dtypes,
                     [b for b in owned if isinstance(b, np.ndarray)]]
    return _new_cfunction(ctypes.addressof(method), ctx, None)


register_binder("python", (b"sg_Py",), lambda object_code: bind_python_symbols())
