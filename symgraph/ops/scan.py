"""Products, cumulative ops and sorting (api v1.1: ``prod``, ``cumsum``, ``cumprod``, ``sort``,
``argsort``, ``topk``).
"""

from __future__ import annotations

__all__: list[str] = []
