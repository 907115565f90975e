"""LLVM IR text generation for one kernel function: blocks, loops and scalar arithmetic.

Why text and not ``llvmlite.ir``: the notes measured text generation as fast and simple, and
``llvmlite.ir`` cannot write the call-site attributes the vector math needs.  This module knows
nothing about graphs: :class:`FunctionBuilder` emits instructions and structured loops, and
:class:`ScalarBuilder` is the backend-neutral scalar builder that ``ScalarOp.lower`` functions
(symgraph/ops/elemwise.py) are written against; its ``math(name, ...)`` is the one way to call
a transcendental (:mod:`codegen.native.vecmath` derives the scalar libm call and vector variants).
Values are :class:`Value` s: an SSA operand plus its numpy dtype name (bool values are ``i1``
in registers, ``i8`` in memory).
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable
from typing import NamedTuple

from .dtypes import IR_TYPE, ITEMSIZE, MEM_TYPE  # noqa: F401  (re-exported)
from .native import vecmath
from .native.jit import FAST_MATH_FLAGS

FMF = FAST_MATH_FLAGS
#: exp's range split per dtype: (T, L, K) for :meth:`ScalarBuilder._exp`; ``-T`` is above the
#: end of libmvec's fast path, exp is 0 below ``-L``, and ``[-L, -T]`` and ``[K - L, K - T]``
#: share a binade ([64, 128) and [512, 1024)).
_EXP_SPLIT = {"float32": (87.0, 107.0, 20.0), "float64": (700.0, 746.0, 46.0)}


def is_float(dtype: str) -> bool:
    return dtype in ("float32", "float64")


def float_literal(value: float, dtype: str) -> str:
    """Exact hexadecimal literal (valid for NaN/Inf); float32 values are rounded first."""
    if dtype == "float32":
        value = struct.unpack("<f", struct.pack("<f", float(value)))[0]
    return f"0x{struct.unpack('<Q', struct.pack('<d', float(value)))[0]:016X}"


def literal(value, dtype: str) -> str:
    if is_float(dtype):
        return float_literal(value, dtype)
    if dtype == "bool":
        return "true" if value else "false"
    bits = ITEMSIZE[dtype] * 8
    v = int(value) & ((1 << bits) - 1)
    return str(v - (1 << bits) if v >= 1 << (bits - 1) else v)


class Value(NamedTuple):
    """An SSA operand (``%t3`` or a literal) and its dtype name (a NamedTuple: cheaper to
    create, as a class at import and per operand, than a frozen dataclass)."""

    ref: str
    dtype: str

    @property
    def ty(self) -> str:
        return IR_TYPE[self.dtype]


class FunctionBuilder:
    """Instructions of one function; ``entry`` lines are hoisted to the entry block."""

    def __init__(self, prefix: str = "t", metadata_ids: Callable[[int], int] | None = None):
        self.prefix = prefix
        self.entry: list[str] = []
        self.lines: list[str] = []
        #: module-level metadata this function's instructions refer to (after its ``}``)
        self.metadata: list[str] = []
        self._metadata_ids = metadata_ids
        self.block = "body"
        self._n = 0
        self.math_used: set[tuple[str, str]] = set()
        self._entry_cache: dict[str, str] = {}
        self._loop_starts: list[int] = []  # ``lines`` index of each open loop's body
        #: ``sg.function(flush_denormals=True)``: libm's arguments are flushed by hand (``math``)
        self.flush_denormals = False

    def tmp(self) -> str:
        self._n += 1
        return f"%{self.prefix}{self._n}"

    def label(self, hint: str = "L") -> str:
        self._n += 1
        return f"{hint}{self._n}"

    def emit(self, line: str) -> None:
        self.lines.append("  " + line)

    def op(self, text: str) -> str:
        """Emit ``%t = text`` and return ``%t``."""
        t = self.tmp()
        self.emit(f"{t} = {text}")
        return t

    def entry_op(self, key: str, text: str) -> str:
        """An instruction in the entry block, emitted once per ``key``."""
        hit = self._entry_cache.get(key)
        if hit is None:
            hit = self._entry_cache[key] = self.tmp()
            self.entry.append(f"  {hit} = {text}")
        return hit

    def start_block(self, name: str) -> None:
        self.lines.append(f"{name}:")
        self.block = name

    def br(self, target: str) -> None:
        self.emit(f"br label %{target}")

    # -- loops -----------------------------------------------------------------------------
    def loop_begin(self, count: str) -> tuple[str, tuple[str, str, str, str, str]]:
        """Open ``for i in range(count)``; returns the index and a token for :meth:`loop_end`."""
        pre = self.block
        head, body, latch, done = (self.label("head"), self.label("loop"), self.label("latch"),
                                   self.label("done"))
        i = self.tmp()
        nxt = self.tmp()
        self.br(head)
        self.start_block(head)
        self.emit(f"{i} = phi i64 [0, %{pre}], [{nxt}, %{latch}]")
        c = self.op(f"icmp slt i64 {i}, {count}")
        self.emit(f"br i1 {c}, label %{body}, label %{done}")
        self.start_block(body)
        self._loop_starts.append(len(self.lines))
        return i, (head, latch, done, i, nxt)

    def innermost_body(self) -> list[str]:
        """The lines emitted so far in the innermost open loop (all lines if none is)."""
        return self.lines[self._loop_starts[-1] if self._loop_starts else 0:]

    def loop_end(self, token: tuple[str, str, str, str, str], hints: tuple[str, ...] = ()) -> None:
        """Close the loop of ``token``; ``hints`` are loop properties for LLVM (e.g.
        ``!{!"llvm.loop.vectorize.predicate.enable", i1 true}``) on its back edge."""
        head, latch, done, i, nxt = token
        if self._loop_starts:
            self._loop_starts.pop()
        self.br(latch)
        self.start_block(latch)
        self.emit(f"{nxt} = add nuw nsw i64 {i}, 1")
        if hints:
            self.emit(f"br label %{head}, !llvm.loop {self._loop_id(hints)}")
        else:
            self.br(head)
        self.start_block(done)

    def _loop_id(self, hints: tuple[str, ...]) -> str:
        """A distinct loop ID node carrying ``hints``, numbered by ``metadata_ids`` (unique in
        the module: the ids are the module's, not this function's)."""
        if self._metadata_ids is None:
            raise ValueError("this function builder has no metadata numbering")
        first = self._metadata_ids(1 + len(hints))
        refs = [f"!{first + 1 + j}" for j in range(len(hints))]
        self.metadata.append(f"!{first} = distinct !{{!{first}, {', '.join(refs)}}}")
        self.metadata += [f"{ref} = {hint}" for ref, hint in zip(refs, hints)]
        return f"!{first}"

    def if_begin(self, cond: str) -> str:
        then, done = self.label("then"), self.label("endif")
        self.emit(f"br i1 {cond}, label %{then}, label %{done}")
        self.start_block(then)
        return done

    def if_end(self, done: str) -> None:
        self.br(done)
        self.start_block(done)

    def alloca(self, ty: str, init: str) -> str:
        """A stack slot in the entry block (SROA turns it into SSA), initialised at this point."""
        slot = self.tmp()
        self.entry.append(f"  {slot} = alloca {ty}")
        self.emit(f"store {ty} {init}, ptr {slot}")
        return slot

    def math(self, name: str, dtype: str, args: list[str]) -> str:
        self.math_used.add((name, dtype))
        if self.flush_denormals:
            args = [self.flush_subnormal(dtype, a) for a in args]
        t = self.tmp()
        self.emit(vecmath.math_call(name, dtype, args, t, FMF))
        return t

    def flush_subnormal(self, dtype: str, x: str) -> str:
        """``x`` with a subnormal value replaced by a zero of its sign, on its bits: libm's
        functions (and libmvec's) find a subnormal argument by its exponent field, which the
        CPU's denormals-are-zero mode does not change (a flushed ``log`` of float32 tiny/8 was
        -103.97, not -inf)."""
        bits = 8 * ITEMSIZE[dtype]
        mantissa = 23 if bits == 32 else 52
        exponent = ((1 << (bits - 1)) - 1) ^ ((1 << mantissa) - 1)
        ty, ity = IR_TYPE[dtype], f"i{bits}"
        b = self.op(f"bitcast {ty} {x} to {ity}")
        zero = self.op(f"icmp eq {ity} {self.op(f'and {ity} {b}, {exponent}')}, 0")
        sign = self.op(f"and {ity} {b}, {1 << (bits - 1)}")
        return self.op(f"bitcast {ity} {self.op(f'select i1 {zero}, {ity} {sign}, {ity} {b}')} "
                       f"to {ty}")

    def finish(self, header: str, ret: str = "ret i32 0") -> str:
        return "\n".join([header, "entry:", *self.entry, "  br label %body", "body:",
                          *self.lines, f"  {ret}", "}", *self.metadata])


class ScalarBuilder:
    """The scalar builder ``ScalarOp.lower`` functions call (one per kernel function).

    Arithmetic follows numpy: wrapping integers, IEEE floats with NaN kept (fast-math flags
    without ``nnan``/``ninf``), ``maximum``/``minimum`` propagating NaN.
    """

    def __init__(self, fb: FunctionBuilder):
        self.fb = fb

    # -- helpers
    def const(self, value, dtype: str) -> Value:
        return Value(literal(value, dtype), dtype)

    def zero(self, x: Value) -> Value:
        return self.const(0, x.dtype)

    def one(self, x: Value) -> Value:
        return self.const(1, x.dtype)

    def convert(self, x: Value, dtype: str) -> Value:
        """numpy ``astype`` semantics for one value."""
        src = x.dtype
        if src == dtype:
            return x
        fb, dst = self.fb, IR_TYPE[dtype]
        if dtype == "bool":
            if is_float(src):
                return Value(fb.op(f"fcmp une {x.ty} {x.ref}, 0.0"), "bool")
            return Value(fb.op(f"icmp ne {x.ty} {x.ref}, 0"), "bool")
        if is_float(dtype):
            if is_float(src):
                kind = "fpext" if ITEMSIZE[dtype] > ITEMSIZE[src] else "fptrunc"
                return Value(fb.op(f"{kind} {x.ty} {x.ref} to {dst}"), dtype)
            kind = "uitofp" if src in ("bool", "uint8") else "sitofp"
            return Value(fb.op(f"{kind} {x.ty} {x.ref} to {dst}"), dtype)
        if is_float(src):
            return self._float_to_int(x, dtype)
        sbits = 1 if src == "bool" else ITEMSIZE[src] * 8
        dbits = ITEMSIZE[dtype] * 8
        if sbits == dbits:
            return Value(x.ref, dtype)
        if sbits > dbits:
            return Value(fb.op(f"trunc {x.ty} {x.ref} to {dst}"), dtype)
        kind = "zext" if src in ("bool", "uint8") else "sext"
        return Value(fb.op(f"{kind} {x.ty} {x.ref} to {dst}"), dtype)

    def _float_to_int(self, x: Value, dtype: str) -> Value:
        """float -> integer as numpy does on x86-64 (C's ``(T)x``, compiled to ``cvttsd2si``).

        In range (after truncation toward zero) every target gets the exact value.  Out of
        range C leaves the result undefined and numpy warns; x86-64 converts to 32 bits (64
        for int64) and yields the "integer indefinite" ``INT_MIN`` for NaN, +-inf and values
        beyond that width, and narrower targets (int8, int16, uint8) keep the low bits of the
        32-bit result: ``300.0 -> uint8 44``, ``-1.0 -> uint8 255``, ``200.0 -> int8 -56``,
        ``nan -> 0``.  We compute exactly that (saturating conversion, then ``INT_MIN`` where
        the value is outside the 32/64-bit range or NaN, then truncation), so the llvm backend
        agrees with the numpy reference on this platform for every input.  (Converting
        straight to the narrow type would saturate: ``200.7 -> uint8`` gave 127.)
        """
        fb = self.fb
        wide = "int64" if dtype == "int64" else "int32"
        wty, bits = IR_TYPE[wide], ITEMSIZE[wide] * 8
        sat = fb.op(f"call {wty} @llvm.fptosi.sat.{wty}.{x.ty}({x.ty} {x.ref})")
        # -2**(bits-1) is representable in both float widths; 2**(bits-1) is the first value
        # out of range above (ordered comparisons: NaN is out of range)
        lo = fb.op(f"fcmp oge {x.ty} {x.ref}, {literal(-2.0 ** (bits - 1), x.dtype)}")
        hi = fb.op(f"fcmp olt {x.ty} {x.ref}, {literal(2.0 ** (bits - 1), x.dtype)}")
        ok = fb.op(f"and i1 {lo}, {hi}")
        value = fb.op(f"select i1 {ok}, {wty} {sat}, {wty} {literal(-2 ** (bits - 1), wide)}")
        if dtype == wide:
            return Value(value, dtype)
        return Value(fb.op(f"trunc {wty} {value} to {IR_TYPE[dtype]}"), dtype)

    def _bin(self, fop: str, iop: str, x: Value, y: Value) -> Value:
        if is_float(x.dtype):
            return Value(self.fb.op(f"{fop} {FMF} {x.ty} {x.ref}, {y.ref}"), x.dtype)
        return Value(self.fb.op(f"{iop} {x.ty} {x.ref}, {y.ref}"), x.dtype)

    # -- arithmetic
    def add(self, x, y):
        return self._bin("fadd", "or" if x.dtype == "bool" else "add", x, y)

    def sub(self, x, y):
        return self._bin("fsub", "xor" if x.dtype == "bool" else "sub", x, y)

    def mul(self, x, y):
        return self._bin("fmul", "and" if x.dtype == "bool" else "mul", x, y)

    def div(self, x, y):
        return Value(self.fb.op(f"fdiv {FMF} {x.ty} {x.ref}, {y.ref}"), x.dtype)

    def neg(self, x):
        if is_float(x.dtype):
            return Value(self.fb.op(f"fneg {FMF} {x.ty} {x.ref}"), x.dtype)
        return Value(self.fb.op(f"sub {x.ty} 0, {x.ref}"), x.dtype)

    def math(self, name: str, *xs: Value) -> Value:
        """``name(*xs)`` through libm (vectorised through libmvec when it has the function):
        the one entry point for transcendentals, named by the elementwise table's rows
        (``math="exp"``) and by lowerings; :func:`codegen.native.vecmath.register` checks the
        name."""
        x = xs[0]
        vecmath.register(name, len(xs))
        if name == "exp":
            return self._exp(x)
        return Value(self.fb.math(name, x.dtype, [v.ref for v in xs]), x.dtype)

    def _exp(self, x: Value) -> Value:
        """``exp(x)`` that stays on libmvec's fast path where results underflow.

        Why: libmvec's vector exp handles any lane below ~-87.3 (float32) or ~-708 (float64)
        by calling scalar exp for the whole vector, 12-20x slower; a softmax whose logits have
        separated underflows in most lanes, so a training step slowed as it learned.  Lanes
        below ``-T`` compute ``exp(max(x, -L) + K) * exp(-K)``: below ``-L`` the result is 0
        anyway, and ``x + K`` is exact because both lie in one binade, so the only extra
        error is the rounding of the constant and of the product (denormal results
        included).  Overflowing lanes (inf) keep libmvec's slow path: rare, and each split
        costs vector instructions in every exp.

        Lanes below ``-L`` (a causal mask's -inf, a logit far below its row's maximum) are
        selected as 0 and their product computed from ``-T`` instead: the product
        ``exp(K - L) * exp(-K)`` underflowed to 0, and on Intel every underflowing product
        is a microcode assist (~100 cycles) unless the call flushes subnormals; a causal
        softmax, half its entries -inf, took 3-5x a plain one.
        """
        t, lim, k = _EXP_SPLIT[x.dtype]
        c = functools.partial(self.const, dtype=x.dtype)
        low = self.lt(x, c(-t))
        zero = self.lt(x, c(-lim))  # NaN is neither low nor zero: kept
        clamped = self.select(zero, c(-t), x)
        arg = self.select(low, self.add(clamped, c(k)), x)
        e = Value(self.fb.math("exp", x.dtype, [arg.ref]), x.dtype)
        return self.select(zero, c(0.0), self.select(low, self.mul(e, c(math.exp(-k))), e))

    def _intrinsic(self, name: str, x: Value, *more: Value, fmf: str = FMF) -> Value:
        suffix = "f32" if x.dtype == "float32" else "f64"
        args = ", ".join(f"{v.ty} {v.ref}" for v in (x, *more))
        flags = f"{fmf} " if fmf else ""
        return Value(self.fb.op(f"call {flags}{x.ty} @llvm.{name}.{suffix}({args})"), x.dtype)

    def sqrt(self, x):
        return self._intrinsic("sqrt", x)

    def abs(self, x):
        if is_float(x.dtype):
            return self._intrinsic("fabs", x)
        if x.dtype in ("bool", "uint8"):
            return x
        return self.select(self.lt(x, self.zero(x)), self.neg(x), x)

    def sign(self, x):
        if x.dtype == "bool":
            return x
        pos = self.convert(self.gt(x, self.zero(x)), x.dtype)
        neg = self.convert(self.lt(x, self.zero(x)), x.dtype)
        s = self.sub(pos, neg)
        if is_float(x.dtype):  # sign(NaN) is NaN
            return self.select(self.ne(x, x), x, s)
        return s

    def maximum(self, x, y):
        if is_float(x.dtype):
            return self._intrinsic("maximum", x, y)
        return self.select(self.ge(x, y), x, y)

    def minimum(self, x, y):
        if is_float(x.dtype):
            return self._intrinsic("minimum", x, y)
        return self.select(self.le(x, y), x, y)

    def select(self, c, x, y):
        return Value(self.fb.op(f"select i1 {c.ref}, {x.ty} {x.ref}, {y.ty} {y.ref}"), x.dtype)

    # -- comparisons and logic (results are bool)
    def _cmp(self, fcond: str, icond: str, x: Value, y: Value) -> Value:
        if is_float(x.dtype):
            return Value(self.fb.op(f"fcmp {fcond} {x.ty} {x.ref}, {y.ref}"), "bool")
        if x.dtype in ("bool", "uint8") and icond[0] == "s":
            icond = "u" + icond[1:]
        return Value(self.fb.op(f"icmp {icond} {x.ty} {x.ref}, {y.ref}"), "bool")

    def lt(self, x, y): return self._cmp("olt", "slt", x, y)
    def le(self, x, y): return self._cmp("ole", "sle", x, y)
    def gt(self, x, y): return self._cmp("ogt", "sgt", x, y)
    def ge(self, x, y): return self._cmp("oge", "sge", x, y)
    def eq(self, x, y): return self._cmp("oeq", "eq", x, y)
    def ne(self, x, y): return self._cmp("une", "ne", x, y)

    def and_(self, x, y):
        x, y = self.convert(x, "bool"), self.convert(y, "bool")
        return Value(self.fb.op(f"and i1 {x.ref}, {y.ref}"), "bool")

    def or_(self, x, y):
        x, y = self.convert(x, "bool"), self.convert(y, "bool")
        return Value(self.fb.op(f"or i1 {x.ref}, {y.ref}"), "bool")

    def not_(self, x):
        x = self.convert(x, "bool")
        return Value(self.fb.op(f"xor i1 {x.ref}, true"), "bool")

    # -- classification (bool results; integers are always finite, as in numpy)
    def isnan(self, x):
        if not is_float(x.dtype):
            return self.const(False, "bool")
        return Value(self.fb.op(f"fcmp uno {x.ty} {x.ref}, {x.ref}"), "bool")

    def isinf(self, x):
        if not is_float(x.dtype):
            return self.const(False, "bool")
        a = self._intrinsic("fabs", x, fmf="")
        return Value(self.fb.op(f"fcmp oeq {x.ty} {a.ref}, {literal(float('inf'), x.dtype)}"),
                     "bool")

    def isfinite(self, x):
        if not is_float(x.dtype):
            return self.const(True, "bool")
        a = self._intrinsic("fabs", x, fmf="")  # ordered: NaN is not finite
        return Value(self.fb.op(f"fcmp one {x.ty} {a.ref}, {literal(float('inf'), x.dtype)}"),
                     "bool")

    # -- rounding: the identity on integers and bool (as numpy); no fast-math flags, so the
    # sign of a zero result (``ceil(-0.5) == -0.0``) is kept
    def floor(self, x):
        return self._intrinsic("floor", x, fmf="") if is_float(x.dtype) else x

    def ceil(self, x):
        return self._intrinsic("ceil", x, fmf="") if is_float(x.dtype) else x

    def trunc(self, x):
        return self._intrinsic("trunc", x, fmf="") if is_float(x.dtype) else x

    def round_half_even(self, x):
        """numpy's ``round``/``rint``: halfway cases to the even neighbour."""
        return self._intrinsic("roundeven", x, fmf="") if is_float(x.dtype) else x

    # -- floor division and modulo with numpy's semantics
    def floor_divide(self, x, y):
        return self._divmod(x, y)[0]

    def mod(self, x, y):
        return self._divmod(x, y)[1]

    def _divmod(self, x: Value, y: Value) -> tuple[Value, Value]:
        """``(x // y, x % y)`` as numpy: the quotient rounded toward minus infinity and the
        remainder with the divisor's sign.  Integers: division by zero gives 0 for both (numpy
        warns and returns 0) and ``MIN // -1`` wraps to ``MIN`` with remainder 0, with no
        undefined ``sdiv``; floats: numpy's ``npy_divmod`` step by step."""
        if is_float(x.dtype):
            return self._float_divmod(x, y)
        fb, ty = self.fb, x.ty
        zero = fb.op(f"icmp eq {ty} {y.ref}, 0")
        if x.dtype in ("uint8", "bool"):
            safe = fb.op(f"select i1 {zero}, {ty} 1, {ty} {y.ref}")
            q = fb.op(f"udiv {ty} {x.ref}, {safe}")
            r = fb.op(f"urem {ty} {x.ref}, {safe}")
        else:
            bits = ITEMSIZE[x.dtype] * 8
            is_min = fb.op(f"icmp eq {ty} {x.ref}, {literal(-2 ** (bits - 1), x.dtype)}")
            minus_one = fb.op(f"icmp eq {ty} {y.ref}, -1")
            overflow = fb.op(f"and i1 {is_min}, {minus_one}")
            bad = fb.op(f"or i1 {zero}, {overflow}")
            # MIN / -1 overflows (undefined in LLVM): divide by 1 instead, giving MIN and 0
            safe = fb.op(f"select i1 {bad}, {ty} 1, {ty} {y.ref}")
            q0 = fb.op(f"sdiv {ty} {x.ref}, {safe}")
            r0 = fb.op(f"srem {ty} {x.ref}, {safe}")
            # truncated -> floored: a nonzero remainder whose sign differs from the divisor's
            nonzero = fb.op(f"icmp ne {ty} {r0}, 0")
            signs = fb.op(f"xor {ty} {r0}, {safe}")
            differ = fb.op(f"icmp slt {ty} {signs}, 0")
            adjust = fb.op(f"and i1 {nonzero}, {differ}")
            q1 = fb.op(f"sub {ty} {q0}, 1")
            r1 = fb.op(f"add {ty} {r0}, {safe}")
            q = fb.op(f"select i1 {adjust}, {ty} {q1}, {ty} {q0}")
            r = fb.op(f"select i1 {adjust}, {ty} {r1}, {ty} {r0}")
        q = fb.op(f"select i1 {zero}, {ty} 0, {ty} {q}")
        r = fb.op(f"select i1 {zero}, {ty} 0, {ty} {r}")
        return Value(q, x.dtype), Value(r, x.dtype)

    def _float_divmod(self, x: Value, y: Value) -> tuple[Value, Value]:
        """numpy's ``npy_divmod`` (no fast-math flags: the signs of zeros are part of it)."""
        fb, ty, dt = self.fb, x.ty, x.dtype
        zero, one, half = (literal(v, dt) for v in (0.0, 1.0, 0.5))

        def arith(opcode: str, a: str, b: str) -> str:
            return fb.op(f"{opcode} {ty} {a}, {b}")

        fmod = self.math("fmod", x, y).ref  # C fmod: exact, the dividend's sign
        quotient = arith("fdiv", x.ref, y.ref)
        div = arith("fdiv", arith("fsub", x.ref, fmod), y.ref)
        # "if (mod)": NaN counts as nonzero
        mod_nonzero = fb.op(f"fcmp une {ty} {fmod}, {zero}")
        y_neg = fb.op(f"fcmp olt {ty} {y.ref}, {zero}")
        mod_neg = fb.op(f"fcmp olt {ty} {fmod}, {zero}")
        differ = fb.op(f"xor i1 {y_neg}, {mod_neg}")
        adjust = fb.op(f"and i1 {mod_nonzero}, {differ}")
        mod_adjusted, div_adjusted = arith("fadd", fmod, y.ref), arith("fsub", div, one)
        mod = fb.op(f"select i1 {adjust}, {ty} {mod_adjusted}, {ty} {fmod}")
        div = fb.op(f"select i1 {adjust}, {ty} {div_adjusted}, {ty} {div}")
        signed_zero = self._intrinsic("copysign", Value(zero, dt), y, fmf="").ref
        mod = fb.op(f"select i1 {mod_nonzero}, {ty} {mod}, {ty} {signed_zero}")
        # snap the quotient to the nearest integer
        floor = self.floor(Value(div, dt)).ref
        fraction, ceiling = arith("fsub", div, floor), arith("fadd", floor, one)
        above_half = fb.op(f"fcmp ogt {ty} {fraction}, {half}")
        snapped = fb.op(f"select i1 {above_half}, {ty} {ceiling}, {ty} {floor}")
        div_nonzero = fb.op(f"fcmp une {ty} {div}, {zero}")
        zero_quotient = self._intrinsic("copysign", Value(zero, dt), Value(quotient, dt),
                                        fmf="").ref
        q = fb.op(f"select i1 {div_nonzero}, {ty} {snapped}, {ty} {zero_quotient}")
        # a zero divisor: x / 0 and fmod(x, 0) (NaN)
        by_zero = fb.op(f"fcmp oeq {ty} {y.ref}, {zero}")
        q = fb.op(f"select i1 {by_zero}, {ty} {quotient}, {ty} {q}")
        mod = fb.op(f"select i1 {by_zero}, {ty} {fmod}, {ty} {mod}")
        return Value(q, dt), Value(mod, dt)


INTRINSIC_DECLARATIONS = "\n".join(
    [f"declare {t} @llvm.{n}.{s}({', '.join([t] * k)})"
     for t, s in (("float", "f32"), ("double", "f64"))
     for n, k in (("sqrt", 1), ("fabs", 1), ("maximum", 2), ("minimum", 2), ("floor", 1),
                  ("ceil", 1), ("trunc", 1), ("roundeven", 1), ("copysign", 2))]
    + [f"declare {i} @llvm.fptosi.sat.{i}.{f}({f})"
       for i in ("i8", "i16", "i32", "i64") for f in ("float", "double")]
    + ["declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)",
       "declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)",
       # the C library's, resolved by name in the process as memset and memcpy are
       "declare noalias ptr @malloc(i64)", "declare void @free(ptr)"]
)
