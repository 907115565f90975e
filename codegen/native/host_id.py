"""What identifies this host's generated code in the cache's keys, read without LLVM.

Why: a key must name what object code depends on: LLVM's build (its code generator) and
the CPU it was generated for (``codegen.native.jit.host_target``: triple, CPU name and
features, which LLVM derives from the ``CPUID`` instruction and ``XGETBV``).  Asking LLVM
maps ``libllvmlite`` (~9 ms), the largest part of a warm start that otherwise loads its
cached code without LLVM (:mod:`codegen.native.elf`).  So on Linux x86-64 the key holds what
LLVM's detection reads, read the same way: the ``CPUID`` leaves it consults (with the
per-core APIC ids and core counts masked out) and ``XCR0``, by a few bytes of machine code;
and LLVM's build as the ``libllvmlite`` file (path, size, modification time, inode).  Two
hosts with equal parts get equal code from LLVM; ``/proc/cpuinfo`` would not do, as it lists
only the features the kernel knows of (LLVM here sees ``+shstk``, cpuinfo does not).
Elsewhere, or where either part cannot be read, LLVM's own description.
"""

from __future__ import annotations

import ctypes
import functools
import os

from . import elf
from .llvmffi import library_path

__all__ = ["cpu_identity", "host_parts", "isa_features"]

#: ``void cpuid(u32 leaf, u32 subleaf, u32 out[4])`` (System V x86-64): push rbx; mov eax,
#: edi; mov ecx, esi; mov r8, rdx; cpuid; mov [r8], eax; mov [r8+4], ebx; mov [r8+8], ecx;
#: mov [r8+12], edx; pop rbx; ret
_CPUID = bytes.fromhex("53 89f8 89f1 4989d0 0fa2 418900 41895804 41894808 4189500c 5b c3")
#: ``void xgetbv0(u32 out[2])``: xor ecx, ecx; xgetbv; mov [rdi], eax; mov [rdi+4], edx; ret
_XGETBV = bytes.fromhex("31c9 0f01d0 8907 895704 c3")
#: (leaf, subleaf, mask of eax, ebx, ecx, edx): what LLVM's getHostCPUName/Features read
#: (Host.cpp), the brand string besides; per-core and per-VM-size fields masked out
_FULL = 0xFFFFFFFF
_LEAVES = (
    (0, 0, (_FULL,) * 4),
    (1, 0, (_FULL, 0x0000FFFF, _FULL, _FULL)),  # ebx: APIC id, logical processors out
    (7, 0, (_FULL,) * 4), (7, 1, (_FULL,) * 4), (7, 2, (_FULL,) * 4),
    (0xD, 1, (_FULL,) * 4), (0x14, 0, (_FULL,) * 4), (0x19, 0, (_FULL,) * 4),
    (0x24, 0, (_FULL,) * 4),
    (0x80000000, 0, (_FULL,) * 4), (0x80000001, 0, (_FULL,) * 4),
    (0x80000002, 0, (_FULL,) * 4), (0x80000003, 0, (_FULL,) * 4),
    (0x80000004, 0, (_FULL,) * 4),
    (0x80000008, 0, (0, _FULL, 0, 0)),  # ebx: feature bits; ecx: core counts, out
)
_OSXSAVE = 1 << 27  # CPUID.1:ECX: XGETBV may be used


@functools.cache
def host_parts() -> tuple[str, ...]:
    """Key parts naming the host's code generation (see the module docstring)."""
    cpu = cpu_identity()
    lib = _llvm_library()
    if cpu is not None and lib is not None:
        return ("machine=x86_64", f"cpuid={cpu}", f"llvmlib={lib}")
    from . import jit  # lazy: maps LLVM, what the rest of this module avoids

    host = jit.host_target()
    return (f"llvmlite={host.llvmlite_version}",
            f"llvm={'.'.join(map(str, host.llvm_version))}", f"triple={host.triple}",
            f"cpu={host.cpu}", f"features={host.features}")


def cpu_identity() -> str | None:
    """The masked ``CPUID`` words of :data:`_LEAVES` (leaves past the CPU's maximum read
    as zero, as LLVM skips them) and ``XCR0``, in hex; None off Linux x86-64."""
    if not elf.available():
        return None
    try:
        image = elf.code_image(_CPUID + _XGETBV, {"cpuid": 0, "xgetbv": len(_CPUID)})
    except (elf.Unsupported, MemoryError):
        return None
    out = (ctypes.c_uint32 * 4)()
    cpuid = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p)(
        image.get_function_address("cpuid"))
    cpuid(0, 0, ctypes.addressof(out))
    top = out[0]
    cpuid(0x80000000, 0, ctypes.addressof(out))
    top_ext = out[0]
    words = []
    for leaf, sub, masks in _LEAVES:
        if leaf > (top_ext if leaf >= 0x80000000 else top):
            words += [0, 0, 0, 0]
            continue
        cpuid(leaf, sub, ctypes.addressof(out))
        words += [w & m for w, m in zip(out, masks)]
    xcr0 = (ctypes.c_uint32 * 2)()
    if words[6] & _OSXSAVE:  # leaf 1's ecx
        ctypes.CFUNCTYPE(None, ctypes.c_void_p)(image.get_function_address("xgetbv"))(
            ctypes.addressof(xcr0))
    del image  # unmapped: nothing refers to the stubs any more
    return "".join(f"{w:08x}" for w in [*words, *xcr0])


@functools.cache
def isa_features() -> frozenset[str] | None:
    """Which of ``sse4.1``, ``avx2`` and ``avx512f`` LLVM's host detection enables (Host.cpp:
    the CPUID bit, and for AVX the OS saving its registers, ``XCR0``), read without LLVM:
    :mod:`codegen.native.vecmath` picks its libmvec variant by them while binding cached
    code.  None off Linux x86-64."""
    identity = cpu_identity()
    if identity is None:
        return None
    words = [int(identity[i:i + 8], 16) for i in range(0, len(identity), 8)]
    ecx1, ebx7, xcr0 = words[6], words[9], words[-2]  # leaf 1's ecx, leaf 7's ebx, XCR0
    leaf7 = words[0] >= 7
    avx_save = bool(ecx1 & _OSXSAVE) and xcr0 & 0x6 == 0x6
    found = {"sse4.1"} if ecx1 >> 19 & 1 else set()
    if leaf7 and ebx7 >> 5 & 1 and avx_save:
        found.add("avx2")
    if leaf7 and ebx7 >> 16 & 1 and avx_save and xcr0 & 0xE0 == 0xE0:
        found.add("avx512f")
    return frozenset(found)


def _llvm_library() -> str | None:
    try:
        path = library_path()
        st = os.stat(path)
    except OSError:
        return None
    return f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
