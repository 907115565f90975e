"""Layout ops of api v1.1 (``pad``, ``roll``, ``tril``/``triu``, ``repeat``, ``tile``, ``split``,
``broadcast_to``).
"""

from __future__ import annotations

__all__: list[str] = []
