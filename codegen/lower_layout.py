"""LLVM lowerings of the layout op family (symgraph/ops/layout.py), each registered with
``register_lowering`` next to its function."""

from __future__ import annotations
