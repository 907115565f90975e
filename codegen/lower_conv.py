"""LLVM lowerings of the conv op family (symgraph/ops/conv.py), each registered with
``register_lowering`` next to its function."""

from __future__ import annotations
