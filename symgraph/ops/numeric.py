"""Elementwise numeric functions of api v1.1 (trigonometric and hyperbolic, erf and erfc,
log2/log10/exp2, rounding, isnan/isinf/isfinite, floor_divide/mod): rows of the elementwise
table, so each is its value, gradient and LLVM lowering in one place.

The transcendentals name their libm function (``math="asin"``): the LLVM backend calls it,
vectorised through libmvec where glibc has a vector variant.  Rounding, classification and
floor division are bodies written against the scalar builder (``b.floor``, ``b.isnan``,
``b.floor_divide``; :class:`codegen.irgen.ScalarBuilder`).  Semantics are numpy's: integer
inputs of the float functions compute in float64, rounding is the identity on integers,
``round`` rounds halfway cases to even, ``floor_divide``/``mod`` floor the quotient (the
remainder has the divisor's sign) and an integer division by zero gives 0 for both.
Gradients follow torch: rounding and ``floor_divide`` have gradient zero, ``mod(a, b)`` has
``1`` in ``a`` and ``-floor_divide(a, b)`` in ``b``; the classifications' bool results carry
no gradient.
"""

from __future__ import annotations

import math

import numpy as np

from symgraph.dispatch import ops
from symgraph.graph import is_float
from symgraph.ops.elemwise import (
    _to_bool,
    _to_float,
    _zero_grad,
    binary_function,
    scalar_op,
    unary_function,
)
from symgraph.sentinels import DISCONNECTED

__all__ = [
    "tan", "arcsin", "arccos", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "erf",
    "erfc", "log2", "log10", "exp2", "floor", "ceil", "round", "trunc", "isnan", "isinf",
    "isfinite", "floor_divide", "mod",
]

_LN2, _LN10 = math.log(2.0), math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _quiet(f):
    """A numpy reference without warnings for the values numpy itself warns about
    (``arcsin(2)``, ``log2(0)``, ``1 // 0``): the value is the result, as in numpy."""
    def run(*xs):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return f(*xs)
    run.__name__ = getattr(f, "__name__", "run")
    return run


def _float64_of(fn):
    """A numpy reference for a function numpy lacks (erf, erfc): Python's (correctly rounded
    in practice), elementwise in float64, cast back to the input's float dtype."""
    elementwise = np.frompyfunc(fn, 1, 1)

    def run(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        return np.asarray(elementwise(x.astype(np.float64)), np.float64).astype(x.dtype)
    run.__name__ = f"_np_{fn.__name__}"
    return run


_np_erf, _np_erfc = _float64_of(math.erf), _float64_of(math.erfc)


def _sqrt_one_minus_square(x):
    return ops.sqrt(1 - x * x)


# --------------------------------------------------------------------------- transcendentals
# gradient rules: (inputs, out, g) -> graph, one per input (see elemwise.scalar_op)

_tan = scalar_op("tan", 1, _quiet(np.tan), (lambda i, o, g: g * (1 + o * o),),
                 dtype_rule=_to_float, math="tan")
_arcsin = scalar_op("arcsin", 1, _quiet(np.arcsin),
                    (lambda i, o, g: g / _sqrt_one_minus_square(i[0]),),
                    dtype_rule=_to_float, math="asin")
_arccos = scalar_op("arccos", 1, _quiet(np.arccos),
                    (lambda i, o, g: -g / _sqrt_one_minus_square(i[0]),),
                    dtype_rule=_to_float, math="acos")
_sinh = scalar_op("sinh", 1, _quiet(np.sinh), (lambda i, o, g: g * ops.cosh(i[0]),),
                  dtype_rule=_to_float, math="sinh")
_cosh = scalar_op("cosh", 1, _quiet(np.cosh), (lambda i, o, g: g * ops.sinh(i[0]),),
                  dtype_rule=_to_float, math="cosh")
_arcsinh = scalar_op("arcsinh", 1, np.arcsinh,
                     (lambda i, o, g: g / ops.sqrt(i[0] * i[0] + 1),),
                     dtype_rule=_to_float, math="asinh")
# sqrt((x - 1)(x + 1)) rather than sqrt(x*x - 1): no cancellation near x = 1
_arccosh = scalar_op("arccosh", 1, _quiet(np.arccosh),
                     (lambda i, o, g: g / ops.sqrt((i[0] - 1) * (i[0] + 1)),),
                     dtype_rule=_to_float, math="acosh")
_arctanh = scalar_op("arctanh", 1, _quiet(np.arctanh),
                     (lambda i, o, g: g / (1 - i[0] * i[0]),),
                     dtype_rule=_to_float, math="atanh")
_erf = scalar_op("erf", 1, _np_erf,
                 (lambda i, o, g: g * _TWO_OVER_SQRT_PI * ops.exp(-(i[0] * i[0])),),
                 dtype_rule=_to_float, math="erf")
# 1 - erf(x) without its cancellation: erfc(3) is 2.2e-5, 1 - erf(3) in float32 keeps 2 digits
_erfc = scalar_op("erfc", 1, _np_erfc,
                  (lambda i, o, g: -g * _TWO_OVER_SQRT_PI * ops.exp(-(i[0] * i[0])),),
                  dtype_rule=_to_float, math="erfc")
_log2 = scalar_op("log2", 1, _quiet(np.log2), (lambda i, o, g: g / (i[0] * _LN2),),
                  dtype_rule=_to_float, math="log2")
_log10 = scalar_op("log10", 1, _quiet(np.log10), (lambda i, o, g: g / (i[0] * _LN10),),
                   dtype_rule=_to_float, math="log10")
_exp2 = scalar_op("exp2", 1, _quiet(np.exp2), (lambda i, o, g: g * o * _LN2,),
                  dtype_rule=_to_float, math="exp2")

# --------------------------------------------------------------------------- rounding
# dtype kept (integers and bool: the identity, as numpy); gradient zero, as torch


def _np_round(x: np.ndarray) -> np.ndarray:
    # np.round(bool) is float16 in numpy; rounding a bool is the identity here, as floor's is
    return x.copy() if x.dtype.kind == "b" else np.round(x)


_floor = scalar_op("floor", 1, np.floor, (_zero_grad,), lambda b, x: b.floor(x))
_ceil = scalar_op("ceil", 1, np.ceil, (_zero_grad,), lambda b, x: b.ceil(x))
_round = scalar_op("round", 1, _np_round, (_zero_grad,), lambda b, x: b.round_half_even(x))
_trunc = scalar_op("trunc", 1, np.trunc, (_zero_grad,), lambda b, x: b.trunc(x))

# --------------------------------------------------------------------------- classification

_isnan = scalar_op("isnan", 1, np.isnan, (DISCONNECTED,), lambda b, x: b.isnan(x), _to_bool)
_isinf = scalar_op("isinf", 1, np.isinf, (DISCONNECTED,), lambda b, x: b.isinf(x), _to_bool)
_isfinite = scalar_op("isfinite", 1, np.isfinite, (DISCONNECTED,),
                      lambda b, x: b.isfinite(x), _to_bool)

# --------------------------------------------------------------------------- floor division


def _division_dtype(*dtypes) -> np.dtype:
    """numpy's result type of ``//`` and ``%``: bool operands give int8."""
    dt = np.result_type(*dtypes)
    return np.dtype("int8") if dt.kind == "b" else dt


def _in_result_type(in_dtypes, out_dtype) -> list[str]:
    return [out_dtype.name] * len(in_dtypes)


def _zero_grad_of(k: int):
    def rule(inputs, out, g):
        x = inputs[k]
        return ops.zeros_like(x) if is_float(x.dtype) else DISCONNECTED
    return rule


_floor_divide = scalar_op("floor_divide", 2, _quiet(np.floor_divide),
                          (_zero_grad_of(0), _zero_grad_of(1)),
                          lambda b, x, y: b.floor_divide(x, y), _division_dtype, "//",
                          operand_dtypes=_in_result_type)
# torch.remainder's derivative: 1 in a, -floor(a / b) in b (a - b * floor(a / b))
_mod = scalar_op("mod", 2, _quiet(np.remainder),
                 (lambda i, o, g: g, lambda i, o, g: -g * ops.floor_divide(i[0], i[1])),
                 lambda b, x, y: b.mod(x, y), _division_dtype, "%",
                 operand_dtypes=_in_result_type)

# --------------------------------------------------------------------------- user functions

tan, arcsin, arccos = unary_function(_tan), unary_function(_arcsin), unary_function(_arccos)
sinh, cosh = unary_function(_sinh), unary_function(_cosh)
arcsinh, arccosh = unary_function(_arcsinh), unary_function(_arccosh)
arctanh, erf, erfc = unary_function(_arctanh), unary_function(_erf), unary_function(_erfc)
log2, log10, exp2 = unary_function(_log2), unary_function(_log10), unary_function(_exp2)
floor, ceil = unary_function(_floor), unary_function(_ceil)
round, trunc = unary_function(_round), unary_function(_trunc)  # numpy's names
isnan, isinf = unary_function(_isnan), unary_function(_isinf)
isfinite = unary_function(_isfinite)
floor_divide, mod = binary_function(_floor_divide), binary_function(_mod)

round.__doc__ = """Round to the nearest integer, halfway cases to even (``np.round``,
``torch.round``): ``round(0.5) == 0``, ``round(1.5) == 2``. Integers are unchanged.
The gradient is zero."""
floor_divide.__doc__ = """``a // b`` as numpy: the quotient rounded toward minus infinity.

Integers: a zero divisor gives 0 (numpy warns and returns 0); floats: ``x / 0`` (inf or
NaN). Bool operands give int8, as numpy. The gradient is zero in both operands.
Example: ``sg.floor_divide(-7, 2)`` is ``-4``.
"""
mod.__doc__ = """``a % b`` as numpy's ``remainder``: the sign of the divisor.

``mod(a, b) == a - b * floor_divide(a, b)``; integers: a zero divisor gives 0; floats:
NaN. Gradient (as ``torch.remainder``): ``1`` in ``a``, ``-floor_divide(a, b)`` in ``b``.
Example: ``sg.mod(-7, 2)`` is ``1``, ``sg.mod(7, -2)`` is ``-1``.
"""
erfc.__doc__ = """``1 - erf(x)``, computed without the cancellation (``scipy.special.erfc``,
``torch.erfc``): accurate where ``erf`` is within rounding of 1, e.g. ``erfc(5)`` is ``1.5e-12``.
"""
