"""Vectorisable transcendental functions (exp, log, tanh, ...) for generated loops.

Why: LLVM keeps a plain call to ``expf`` scalar, which made JIT loops 7x slower than numpy.  The
trick verified in llvm-notes section 2: generated code calls an *unrecognised* name
(``@sg_expf``) that is bound to libm's scalar ``expf`` with ``llvm.add_symbol``; the call site
carries a ``"vector-function-abi-variant"`` attribute naming glibc's libmvec variants
(``_ZGVdN8v_expf`` for AVX2, ``_ZGVeN16v_expf`` for AVX-512), which are declared in the module
and kept alive by ``@llvm.compiler.used``.  The loop vectoriser then calls the vector variants,
which resolve against ``libmvec.so.1`` (loaded permanently).  Functions or ISA variants that
libmvec or the CPU lacks are simply not advertised, leaving a correct scalar libm call.

One algorithm per function: libmvec's variants for each ISA, and libm's scalar function,
disagree in the last bit for many inputs (float32 ``exp``: libm against the AVX2 variant on
52% of uniform inputs in [-20, 20], the SSE and AVX2 variants on 10%), and a loop runs its
vector body, its remainder and sometimes a narrower epilogue through different ones.  So an
element's value depended on its position: ``sigmoid`` of two equal logits in one row, one in
the vector body and one in the scalar tail, differed by an ulp, and the gradient of their
``min`` went to one of them instead of being shared.  Only the variant of the host's preferred
vector width is advertised (:func:`vector_variants`), and the scalar name is bound to a
wrapper calling that variant on a splat of its arguments (:func:`_wrapper_ir`, a module of
its own per function, compiled once per machine through the disk cache): every call of
``sg_expf`` in every loop gives the same bits for the same input.

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

from .cache import compile_cached
from .host_id import isa_features
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
# libmvec ISA letter -> (vector register bits, CPU feature required by LLVM name), the
# preferred first: the width jit.function_attributes asks LLVM to prefer
_ISAS = (("e", 512, "avx512f"), ("d", 256, "avx2"), ("b", 128, "sse4.1"))
_PREFIX = "sg_"
#: the wrapper that runs a scalar call through the vector variant: ``sg_same_expf``
_WRAPPER = "sg_same_"

_bind_lock = threading.Lock()
_bound: set[str] = set()  # scalar symbols already bound
_libmvec_loaded = False
#: the wrappers' loaded modules (kept alive: loaded code calls them)
_wrappers: list = []
_loading = threading.local()
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
def _variant(libm_sym: str, bits: int) -> tuple[int, str, int] | None:
    """``(lanes, libmvec symbol, arity)`` of the one variant of libm's ``libm_sym`` (on
    ``bits``-bit floats) that this CPU's code uses: the widest ISA it has (the width LLVM is
    asked to prefer) that libmvec has the function for.  Found from libmvec's names alone, so
    binding cached code needs no registration."""
    lib = _libmvec()
    if lib is None:
        return None
    for isa, width, feature in _ISAS:
        if not _has_feature(feature):
            continue
        lanes = width // bits
        for arity in (1, 2, 3):
            sym = f"_ZGV{isa}N{lanes}{'v' * arity}_{libm_sym}"
            if hasattr(lib, sym):
                return lanes, sym, arity
    return None


def _has_feature(feature: str) -> bool:
    """Does LLVM enable ``feature`` on this host?  Read without LLVM where possible
    (:func:`codegen.native.host_id.isa_features`): a warm start binds the wrappers of cached
    code without mapping LLVM."""
    found = isa_features()
    return feature in found if found is not None else host_target().has_feature(feature)


def vector_variants(name: str, dtype: str) -> tuple[tuple[int, str], ...]:
    """The ``(lanes, libmvec symbol)`` every call of ``name`` uses on this CPU, e.g.
    ``((8, "_ZGVdN8v_expf"),)``: one variant only (:func:`_variant`), so that every lane, loop
    and remainder computes the same bits (the module docstring).

    Empty when libmvec is missing or lacks the function: the call then stays libm's.
    """
    _check(name, dtype)
    found = _variant(_libm_name(name, dtype), 32 if dtype == "float32" else 64)
    if found is None or found[2] != FUNCTIONS[name]:
        return ()
    return ((found[0], found[1]),)


def _wrapper_ir(libm_sym: str, bits: int) -> str:
    """``sg_same_<libm_sym>``: the scalar function computed by its vector variant on a splat
    of its arguments (every lane the same: no lane takes a special-case path the others do
    not), lane 0 returned."""
    lanes, sym, nargs = _variant(libm_sym, bits)
    ty = "float" if bits == 32 else "double"
    vty = f"<{lanes} x {ty}>"
    params = ", ".join(f"{ty} %a{i}" for i in range(nargs))
    lines = [f"declare {vty} @{sym}({', '.join([vty] * nargs)}) nounwind",
             f"define {ty} @{_WRAPPER}{libm_sym}({params}) #0 {{", "entry:"]
    for i in range(nargs):
        lines += [f"  %i{i} = insertelement {vty} poison, {ty} %a{i}, i64 0",
                  f"  %s{i} = shufflevector {vty} %i{i}, {vty} poison, <{lanes} x i32> "
                  "zeroinitializer"]
    args = ", ".join(f"{vty} %s{i}" for i in range(nargs))
    lines += [f"  %r = call {vty} @{sym}({args})",
              f"  %e = extractelement {vty} %r, i64 0", f"  ret {ty} %e", "}",
              # the target machine's host CPU and features (no text of them here: computing
              # it maps LLVM), so the vector argument is passed as libmvec takes it
              "attributes #0 = { nounwind }"]
    return "\n".join(lines) + "\n"


def _scalar_address(sym: str) -> int | None:
    """Where ``sg_<sym>`` is bound: the wrapper of its vector variant when there is one, else
    libm's function; None for a name that is not libm's."""
    fn = getattr(_libm(), sym, None) if sym.isidentifier() else None
    if fn is None:
        return None
    # a float32 name ends in "f" (expf); the lane counts tell erf (float64) from "er" float32
    for bits in ((32, 64) if sym.endswith("f") else (64,)):
        if _variant(sym, bits) is None:
            continue
        _loading.active = True  # its object calls libmvec only: see bind_symbols
        try:
            # O0: a splat, a call and an extract; compiled once per machine
            module = compile_cached(_wrapper_ir(sym, bits), opt_level=0)
        finally:
            _loading.active = False
        _wrappers.append(module)
        return module.address(_WRAPPER + sym)
    return ctypes.cast(fn, ctypes.c_void_p).value


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
    """Bind the ``sg_<libm name>`` symbols ``object_code`` calls (to the wrapper of their vector
    variant, or to libm), and load libmvec into the process for the variants (idempotent).

    Called by :func:`codegen.jit.load_object` before loading code (fresh compile or cache
    load): names come from the code itself, so a cached module needs no registration.
    """
    global _libmvec_loaded
    with _bind_lock:
        if not _libmvec_loaded and _libmvec() is not None:
            load_library_permanently("libmvec.so.1")
            _libmvec_loaded = True
    if getattr(_loading, "active", False):
        return  # a wrapper's own object, loaded by _scalar_address: it needs libmvec only
    # the names this object calls (a wrapper costs a module: not every registered one)
    names = {m.decode() for m in _CALLED.findall(object_code)}
    for sym in sorted(names - _bound):
        if sym.startswith(_WRAPPER[len(_PREFIX):]):
            continue
        # outside the lock: compile_cached serialises a compile itself, and returns one
        # module for one text, so two threads binding at once map the same address
        address = _scalar_address(sym)
        if address is None:  # another module's name (BLAS, the Python API, the step itself)
            continue
        with _bind_lock:
            if sym not in _bound:
                add_symbol(_PREFIX + sym, address)
                _bound.add(sym)


register_binder("vecmath", (b"sg_", b"_ZGV"), bind_symbols)
