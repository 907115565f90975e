"""Vectorisable transcendental functions (exp, log, tanh, ...) for generated loops.

Why: LLVM keeps a plain call to ``expf`` scalar, which made JIT loops 7x slower than numpy.  The
trick verified in llvm-notes section 2: generated code calls an *unrecognised* name
(``@sg_expf``) that is bound to libm's scalar ``expf`` with ``llvm.add_symbol``; the call site
carries a ``"vector-function-abi-variant"`` attribute naming glibc's libmvec variants
(``_ZGVdN8v_expf`` for AVX2, ``_ZGVeN16v_expf`` for AVX-512), which are declared in the module
and kept alive by ``@llvm.compiler.used``.  The loop vectoriser then calls the vector variants,
which resolve against ``libmvec.so.1`` (loaded permanently).  Functions or ISA variants that
libmvec or the CPU lacks are simply not advertised, leaving a correct scalar libm call.

Usage by the lowering: ``math_call`` for each call, ``math_declarations`` once per module,
``bind_symbols`` before loading the code.
"""

from __future__ import annotations

import ctypes
import functools
import threading

__all__ = [
    "FUNCTIONS",
    "bind_symbols",
    "math_call",
    "math_declarations",
    "scalar_symbol",
    "vector_variants",
]

#: Supported functions and their arity.
FUNCTIONS: dict[str, int] = {
    "exp": 1,
    "log": 1,
    "log1p": 1,
    "expm1": 1,
    "sin": 1,
    "cos": 1,
    "tanh": 1,
    "pow": 2,
}

_IR_TYPE = {"float32": "float", "float64": "double"}
# libmvec ISA letter -> (vector register bits, CPU feature required by LLVM name).
_ISAS = (("b", 128, "sse4.1"), ("d", 256, "avx2"), ("e", 512, "avx512f"))
_PREFIX = "sg_"

_bind_lock = threading.Lock()
_bound = False


def _check(name: str, dtype: str) -> None:
    if name not in FUNCTIONS:
        raise ValueError(f"unsupported math function {name!r}; have {sorted(FUNCTIONS)}")
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
        from ctypes.util import find_library

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
    from .jit import host_target

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


def bind_symbols() -> None:
    """Bind every ``sg_*`` name to libm and load libmvec into the process (idempotent).

    Call before loading code that uses this module (fresh compile or cache load).
    """
    global _bound
    if _bound:
        return
    with _bind_lock:
        if _bound:
            return
        from .jit import add_symbol, load_library_permanently

        if _libmvec() is not None:
            load_library_permanently("libmvec.so.1")
        libm = _libm()
        for name in FUNCTIONS:
            for dtype in _IR_TYPE:
                fn = getattr(libm, _libm_name(name, dtype))
                add_symbol(
                    scalar_symbol(name, dtype), ctypes.cast(fn, ctypes.c_void_p).value
                )
        _bound = True
