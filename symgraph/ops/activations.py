"""Activations of api v1.1 (``sg.nn.gelu``, ``silu``, ``elu``, ``log_sigmoid``).
"""

from __future__ import annotations

__all__: list[str] = []
