"""Vectorisable transcendental functions (exp, log, tanh, ...) for generated loops.

Why: LLVM keeps a plain call to ``expf`` scalar, which made JIT loops 7x slower than numpy.  The
trick verified in llvm-notes section 2: generated code calls an *unrecognised* name
(``@sg_expf``) that is bound to libm's scalar ``expf`` with ``llvm.add_symbol``; the call site
carries a ``"vector-function-abi-variant"`` attribute naming glibc's libmvec variants
(``_ZGVdN8v_expf`` for AVX2, ``_ZGVeN16v_expf`` for AVX-512), which are declared in the module
and kept alive by ``@llvm.compiler.used``.  The loop vectoriser then calls the vector variants,
which resolve against ``libmvec.so.1`` (loaded permanently).  Functions or ISA variants that
libmvec or the CPU lacks are simply not advertised, leaving a correct scalar libm call.

Usage by the lowering: ``register`` (the elementwise table names the functions: a row with
``math="atan"`` needs nothing else -- the scalar symbol and the libmvec variants are derived
from the name, and a name libm lacks is refused before any code is generated), ``math_call``
for each call, ``math_declarations`` once per module.  Loading object code binds the ``sg_*``
names it references (:func:`bind_symbols`, registered with :mod:`codegen.jit`), so code from
the disk cache needs no registry.
"""

from __future__ import annotations

import ctypes
import functools
import re
import threading

from .jit import add_symbol, host_target, load_library_permanently, register_binder

__all__ = [
    "FUNCTIONS",
    "bind_symbols",
    "math_call",
    "math_declarations",
    "register",
    "scalar_symbol",
    "vector_variants",
]

#: The functions registered so far and their arity (:func:`register`; nothing lists them
#: by hand).
FUNCTIONS: dict[str, int] = {}

_IR_TYPE = {"float32": "float", "float64": "double"}
# libmvec ISA letter -> (vector register bits, CPU feature required by LLVM name).
_ISAS = (("b", 128, "sse4.1"), ("d", 256, "avx2"), ("e", 512, "avx512f"))
_PREFIX = "sg_"

_bind_lock = threading.Lock()
_bound: set[str] = set()  # scalar symbols already bound
_libmvec_loaded = False
#: a name generated code calls (``sg_expf``): the libm symbol follows the prefix
_CALLED = re.compile(rb"sg_([A-Za-z0-9_]+)")


def register(name: str, arity: int) -> None:
    """Allow ``name`` (a libm function of ``arity`` arguments, in double and float forms) in
    generated code; raise ValueError when libm has no such function."""
    known = FUNCTIONS.get(name)
    if known == arity:
        return
    if known is not None:
        raise ValueError(f"math function {name!r} takes {known} argument(s), not {arity}")
    missing = [sym for sym in (_libm_name(name, "float64"), _libm_name(name, "float32"))
               if not name.isidentifier() or not hasattr(_libm(), sym)]
    if missing:
        raise ValueError(f"unknown math function {name!r}: libm has no {', '.join(missing)}")
    FUNCTIONS[name] = arity


def _check(name: str, dtype: str) -> None:
    if name not in FUNCTIONS:
        raise ValueError(f"unregistered math function {name!r}; have {sorted(FUNCTIONS)}")
    if dtype not in _IR_TYPE:
        raise ValueError(f"unsupported dtype {dtype!r}; have float32, float64")


def _libm_name(name: str, dtype: str) -> str:
    return name + ("f" if dtype == "float32" else "")


def scalar_symbol(name: str, dtype: str) -> str:
    """IR symbol (without ``@``) that generated code calls, e.g. ``sg_expf``."""
    _check(name, dtype)
    return _PREFIX + _libm_name(name, dtype)


@functools.cache
def _libm() -> ctypes.CDLL:
    try:  # glibc's soname: find_library runs ldconfig in a subprocess (1-8 ms per process)
        return ctypes.CDLL("libm.so.6")
    except OSError:
        from ctypes.util import find_library  # stdlib, but it imports subprocess: only here

        return ctypes.CDLL(find_library("m") or "libm.so.6")


@functools.cache
def _libmvec() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libmvec.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return None


@functools.cache
def vector_variants(name: str, dtype: str) -> tuple[tuple[int, str], ...]:
    """``(lanes, libmvec symbol)`` pairs usable on this CPU, e.g. ``((8, "_ZGVdN8v_expf"), ...)``.

    Empty when libmvec is missing or lacks the function: the call then stays scalar.
    """
    _check(name, dtype)
    lib = _libmvec()
    if lib is None:
        return ()
    host = host_target()
    bits = 32 if dtype == "float32" else 64
    params = "v" * FUNCTIONS[name]
    out = []
    for isa, width, feature in _ISAS:
        if not host.has_feature(feature):
            continue
        lanes = width // bits
        sym = f"_ZGV{isa}N{lanes}{params}_{_libm_name(name, dtype)}"
        if hasattr(lib, sym):
            out.append((lanes, sym))
    return tuple(out)


def _variant_attr(name: str, dtype: str) -> str:
    variants = vector_variants(name, dtype)
    if not variants:
        return ""
    scalar = scalar_symbol(name, dtype)
    params = "v" * FUNCTIONS[name]
    text = ",".join(f"_ZGV_LLVM_N{lanes}{params}_{scalar}({sym})" for lanes, sym in variants)
    return f' "vector-function-abi-variant"="{text}"'


def math_call(name: str, dtype: str, args: str | list[str], result: str, fmf: str = "") -> str:
    """One IR instruction: ``%result = call <fmf> float @sg_expf(float %x) "vector-..."=...``.

    ``args`` is an operand (``"%x"``) or a list of them (``pow`` takes two); ``result`` includes
    the ``%``.  ``fmf`` are optional fast-math flags for the call (e.g. ``afn``).  The
    vector-variant attribute is written inline on the call site, so no attribute-group numbers
    need to be coordinated with the rest of the module.
    """
    _check(name, dtype)
    arg_list = [args] if isinstance(args, str) else list(args)
    if len(arg_list) != FUNCTIONS[name]:
        raise ValueError(f"{name} takes {FUNCTIONS[name]} argument(s), got {len(arg_list)}")
    ty = _IR_TYPE[dtype]
    operands = ", ".join(f"{ty} {a}" for a in arg_list)
    flags = f"{fmf} " if fmf else ""
    return (
        f"{result} = call {flags}{ty} @{scalar_symbol(name, dtype)}({operands}) nounwind"
        f"{_variant_attr(name, dtype)}"
    )


def math_declarations(used: set[tuple[str, str]]) -> str:
    """Module-level text for the ``(name, dtype)`` pairs used: declarations of the scalar
    entry points and of their libmvec variants, plus ``@llvm.compiler.used`` keeping the latter
    alive until the vectoriser has run.  Emit once per module (it defines
    ``@llvm.compiler.used``, so the rest of the module must not).
    """
    lines: list[str] = []
    keep: list[str] = []
    for name, dtype in sorted(used):
        _check(name, dtype)
        ty = _IR_TYPE[dtype]
        nargs = FUNCTIONS[name]
        params = ", ".join([ty] * nargs)
        lines.append(
            f"declare {ty} @{scalar_symbol(name, dtype)}({params}) nounwind willreturn memory(none)"
        )
        for lanes, sym in vector_variants(name, dtype):
            vty = f"<{lanes} x {ty}>"
            vparams = ", ".join([vty] * nargs)
            lines.append(f"declare {vty} @{sym}({vparams}) nounwind willreturn memory(none)")
            keep.append(sym)
    if keep:
        entries = ", ".join(f"ptr @{s}" for s in keep)
        lines.append(
            f"@llvm.compiler.used = appending global [{len(keep)} x ptr] [{entries}], "
            'section "llvm.metadata"'
        )
    return "\n".join(lines) + "\n"


def bind_symbols(object_code: bytes = b"") -> None:
    """Bind the ``sg_<libm name>`` symbols ``object_code`` calls (and every registered one) to
    libm, and load libmvec into the process for the vector variants (idempotent).

    Called by :func:`codegen.jit.load_object` before loading code (fresh compile or cache
    load): names come from the code itself, so a cached module needs no registration.
    """
    global _libmvec_loaded
    names = {m.decode() for m in _CALLED.findall(object_code)}
    names.update(_libm_name(n, dt) for n in FUNCTIONS for dt in _IR_TYPE)
    with _bind_lock:
        if not _libmvec_loaded and _libmvec() is not None:
            load_library_permanently("libmvec.so.1")
            _libmvec_loaded = True
        libm = _libm()
        for sym in sorted(names - _bound):
            fn = getattr(libm, sym, None) if sym.isidentifier() else None
            if fn is None:  # another module's name (BLAS, the Python API, the step itself)
                continue
            add_symbol(_PREFIX + sym, ctypes.cast(fn, ctypes.c_void_p).value)
            _bound.add(sym)


register_binder("vecmath", (b"sg_", b"_ZGV"), bind_symbols)
