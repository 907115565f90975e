"""LLVM lowerings of the scan op family (symgraph/ops/scan.py), each registered with
``register_lowering`` next to its function."""

from __future__ import annotations
