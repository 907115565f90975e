"""One IR function for kernels that are the same code.

Why: a graph that repeats a block -- an unrolled RNN step, a stack of equal layers --
lowers to kernels that differ only in the buffers they are given, which are parameters.
LLVM optimised and emitted each copy anew: an LSTM(32) over 50 steps had ~18 kernels per
step, ~430 functions, 7-10 s of compile. Kernels whose text is identical once their own
name and their metadata numbering are set aside compute the same function of their
parameters (a symbolic dim whose symbols the call binds has one table slot per expression,
``codegen.kernel.Kernel.dim``, so equal code reads equal slots), so the first one stands
for the others: each call site keeps its own arguments, and only one body is compiled.

Values known when compiling that differ between such kernels -- ``x[:, t]``'s start --
are passed by the call site as i64 arguments (``Kernel.static_arg``), not written into the
body. Nothing else differs: a kernel's status code is mapped to its node by the call site
in ``sg_step``, not by the body; bodies that embed anything of their own (an error
record's node, an output slot) are not equal text and stay apart. An LSTM(32) training
step has the same kernel bodies whatever its length (bench/rnn.py's, with Adam: 45 at 20
steps and at 50).

A body is named by its content (``k_`` and a hash of the canonical text): the same body
gets the same symbol in every program, which is what lets :mod:`codegen.kernel_cache` reuse
its object code in a program it was not compiled for.
"""

from __future__ import annotations

import hashlib
import re

_METADATA = re.compile(r"!(\d+)\b")
#: a kernel's name (``@k12``) and its helpers' (``@k12_part``): kernels call no other kernel
_KERNEL_NAME = re.compile(r"@k\d+(?![0-9])")


def _canonical(text: str) -> str:
    """``text`` with its own name (and its helpers' ``name_*``) and metadata numbers made
    position-independent."""
    text = _KERNEL_NAME.sub("@__kernel", text)
    numbers: dict[str, str] = {"0": "0"}  # !0 is the module header's shared empty node

    def renumber(match: re.Match) -> str:
        return "!m" + numbers.setdefault(match.group(1), str(len(numbers)))

    return _METADATA.sub(renumber, text)


def content_name(canonical: str) -> str:
    """The symbol of the body whose canonical text is ``canonical`` (80 bits of its sha256:
    two different bodies of one program share a name with odds of ~n^2/2^81)."""
    return "k_" + hashlib.sha256(canonical.encode()).hexdigest()[:20]


def dedupe(named: list[tuple[str, str]]) -> tuple[list[tuple[int, str, str]], dict[str, str]]:
    """For kernels ``(name, IR text)`` in order: the bodies to compile, as ``(index of the
    first kernel with that body, its symbol, its text renamed to that symbol)``, and
    ``{name: symbol of the body it calls}`` for every kernel."""
    first: dict[str, str] = {}
    kept: list[tuple[int, str, str]] = []
    target: dict[str, str] = {}
    for i, (name, text) in enumerate(named):
        key = _canonical(text)
        symbol = first.get(key)
        if symbol is None:
            symbol = first[key] = content_name(key)
            kept.append((i, symbol, _KERNEL_NAME.sub("@" + symbol, text)))
        target[name] = symbol
    return kept, target


__all__ = ["content_name", "dedupe"]
