"""What identifies this host's generated code in the cache's keys, read without LLVM.

Why: a key must name what object code depends on: LLVM's build (its code generator) and
the CPU it was generated for (``codegen.native.jit.host_target``: triple, CPU name,
features).  Asking LLVM maps ``libllvmlite`` (~9 ms), the largest part of a warm start that
otherwise loads its cached code without LLVM (:mod:`codegen.native.elf`).  On Linux the
CPU's identity is in ``/proc/cpuinfo`` (vendor, family, model, stepping, microcode and the
feature flags, which the kernel reads from the same CPUID leaves LLVM's detection does), and
LLVM's build is the ``libllvmlite`` file (path, size, modification time, inode): the same
parts give the same code.  Elsewhere, or where either cannot be read, LLVM's description.
"""

from __future__ import annotations

import functools
import os

from .llvmffi import library_path

__all__ = ["host_parts"]

#: the fields of a CPU's block in /proc/cpuinfo that identify what code it runs (not its
#: clock, its number or its place in the package)
_CPU_FIELDS = ("vendor_id", "cpu family", "model", "model name", "stepping", "microcode",
               "flags", "CPU implementer", "CPU architecture", "CPU variant", "CPU part",
               "CPU revision", "Features")


@functools.cache
def host_parts() -> tuple[str, ...]:
    """Key parts naming the host's code generation (see the module docstring)."""
    cpu = _cpuinfo()
    lib = _llvm_library()
    if cpu is not None and lib is not None:
        return (f"machine={os.uname().machine}", f"cpu={cpu}", f"llvmlib={lib}")
    from . import jit  # lazy: maps LLVM, what the rest of this module avoids

    host = jit.host_target()
    return (f"llvmlite={host.llvmlite_version}",
            f"llvm={'.'.join(map(str, host.llvm_version))}", f"triple={host.triple}",
            f"cpu={host.cpu}", f"features={host.features}")


def _cpuinfo(path: str = "/proc/cpuinfo") -> str | None:
    """The identifying fields of the first CPU's block, or None."""
    try:
        with open(path, "rb") as f:
            text = f.read(1 << 16).decode(errors="replace")  # (the first block is enough)
    except OSError:
        return None
    fields = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in _CPU_FIELDS:
            fields[key.strip()] = " ".join(value.split())
    if "flags" not in fields and "Features" not in fields:
        return None
    return ";".join(f"{k}={fields[k]}" for k in _CPU_FIELDS if k in fields)


def _llvm_library() -> str | None:
    try:
        path = library_path()
        st = os.stat(path)
    except OSError:
        return None
    return f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
