"""Elementwise numeric functions of api v1.1 (trigonometric and hyperbolic, erf, log2/log10/exp2,
rounding, isnan/isinf/isfinite, floor_divide/mod): rows of the elementwise table, so each is
its value, gradient and LLVM lowering in one place.
"""

from __future__ import annotations

__all__: list[str] = []
