"""Activations of api v1.1 (``sg.nn.gelu``, ``silu``, ``elu``, ``log_sigmoid``), as torch.

``gelu``, ``silu`` and ``log_sigmoid`` are composites of elementwise rows (``erfc``,
``sigmoid``, ``softplus``): their gradients (and the gradients of those) come from the rows'
rules. ``elu`` is a row of its own (``x`` and ``alpha`` in, ``expm1`` in its scalar body)
because its gradient must be ``alpha exp(x)``: through ``expm1``'s rule ``g (out + 1)`` it
would round to 0 below ``x = -37``. Either way the graph fuses into one loop with its
neighbours on the llvm backend. A non-float input is computed in float64 (as ``sg.sigmoid``).
"""

from __future__ import annotations

import math

import numpy as np

from symgraph.dispatch import ops
from symgraph.graph import Variable, as_variable, is_float
from symgraph.ops import elemwise as ew

__all__ = ["elu", "gelu", "log_sigmoid", "silu"]


def _np_elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _elu_negative_exp(x):
    """``exp(x)`` where ``x < 0``, else 1: the exponential never sees a large ``x``, and the
    second derivative at 0 is 0 (torch's double backward masks ``x < 0``, while its first
    derivative uses ``x <= 0``)."""
    return ops.exp(ops.where(x < 0, x, 0))


def _lower_elu(b, x, alpha):
    zero = b.zero(x)
    return b.select(b.gt(x, zero), x, b.mul(alpha, b.math("expm1", b.minimum(x, zero))))


_ELU = ew.scalar_op(
    "elu", 2, _np_elu,
    (lambda i, o, g: ops.where(i[0] > 0, g, g * i[1] * _elu_negative_exp(i[0])),
     lambda i, o, g: ops.where(i[0] > 0, 0, g * (_elu_negative_exp(i[0]) - 1))),
    _lower_elu)


def _float_input(x) -> Variable:
    x = as_variable(x)
    return x if is_float(x.dtype) else ops.cast(x, "float64")


def gelu(x) -> Variable:
    """The exact GELU, ``0.5 x (1 + erf(x / sqrt(2)))`` (torch's default ``approximate='none'``).

    Computed as ``0.5 x erfc(-x / sqrt(2))``, the same function: ``1 + erf`` cancels in the
    negative tail (float32 ``gelu(-5)`` was 17% off on an AVX-512 host, -1.19e-6 against
    -1.43e-6), ``erfc`` keeps full precision there.

    >>> y = sg.nn.gelu(sg.tensor("x", (3,)))
    """
    x = _float_input(x)
    return 0.5 * x * ops.erfc(x * -math.sqrt(0.5))


def silu(x) -> Variable:
    """``x * sigmoid(x)`` (also called swish).

    >>> y = sg.nn.silu(sg.tensor("x", (3,)))
    """
    x = _float_input(x)
    return x * ops.sigmoid(x)


def elu(x, alpha: float = 1.0) -> Variable:
    """``x`` where ``x > 0``, else ``alpha (exp(x) - 1)``; gradient ``alpha exp(x)`` at
    ``x <= 0`` (as torch, so ``alpha`` at 0).

    >>> y = sg.nn.elu(sg.tensor("x", (3,)), alpha=0.5)
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise TypeError(f"elu: alpha must be a number, got {alpha!r}")
    return ew.apply(_ELU, _float_input(x), float(alpha))


def log_sigmoid(x) -> Variable:
    """``log(sigmoid(x))`` computed as ``-softplus(-x)``: finite for every finite ``x``.

    >>> y = sg.nn.log_sigmoid(sg.tensor("x", (3,)))
    """
    x = _float_input(x)
    return -ops.softplus(-x)
