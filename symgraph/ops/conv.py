"""Convolution and pooling, NCHW like torch (``sg.nn.conv2d``, ``conv1d``, ``max_pool2d``,
``avg_pool2d``).
"""

from __future__ import annotations

__all__: list[str] = []
