"""codegen.native.host_id: the host's part of the cache keys, read without LLVM -- the CPUID
words LLVM's detection reads (checked against /proc/cpuinfo, the kernel's reading of them)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest
from _helpers import ROOT

from codegen.native import cache, elf, host_id

pytestmark = pytest.mark.skipif(not elf.available(), reason="CPUID is read on Linux x86-64")


def _cpuinfo() -> dict[str, str]:
    fields = {}
    for line in open("/proc/cpuinfo").read().split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def _words() -> list[int]:
    text = host_id.cpu_identity()
    return [int(text[i:i + 8], 16) for i in range(0, len(text), 8)]


def test_the_cpuid_words_are_what_the_kernel_read():
    """Vendor, family, model and stepping decoded from the words equal /proc/cpuinfo's; a CPU
    the kernel lists AVX for has the AVX state enabled in XCR0."""
    words, info = _words(), _cpuinfo()
    assert struct.pack("<III", words[1], words[3], words[2]).decode() == info["vendor_id"]
    eax = words[4]  # leaf 1
    family, model = (eax >> 8) & 0xF, (eax >> 4) & 0xF
    if family == 0xF:
        family += (eax >> 20) & 0xFF
    if family in (0x6, 0xF) or family >= 0xF:
        model |= ((eax >> 16) & 0xF) << 4
    assert (family, model, eax & 0xF) == (int(info["cpu family"]), int(info["model"]),
                                          int(info["stepping"]))
    flags = info["flags"].split()
    assert bool(words[6] >> 28 & 1) == ("avx" in flags)  # leaf 1 ecx: AVX
    if "avx" in flags:
        assert words[-2] & 0b110 == 0b110  # XCR0: SSE and AVX state


def test_the_identity_is_the_same_on_every_core_and_in_every_process():
    """Per-core fields (APIC ids) are masked: processes pinned to different CPUs agree."""
    cpus = sorted(os.sched_getaffinity(0))[:2]
    code = ("import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])}); "
            "from codegen.native import host_id; print(host_id.cpu_identity())")
    seen = {subprocess.run([sys.executable, "-c", code, str(cpu)], capture_output=True,
                           text=True, check=True, cwd=ROOT).stdout.strip() for cpu in cpus * 2}
    assert seen == {host_id.cpu_identity()}


def test_keys_name_the_cpu_and_llvms_library(monkeypatch):
    """The program key changes with the CPU's words and with LLVM's library file; off
    Linux x86-64 it holds LLVM's own description instead."""
    parts = host_id.host_parts()
    assert parts[1] == f"cpuid={host_id.cpu_identity()}" and "libllvmlite" in parts[2]
    key = cache.program_key("graph")
    for name, value in (("cpu_identity", lambda: "0" * 8), ("_llvm_library", lambda: "x|1")):
        monkeypatch.setattr(host_id, name, value)
        host_id.host_parts.cache_clear()
        try:
            assert cache.program_key("graph") != key
        finally:
            monkeypatch.undo()
            host_id.host_parts.cache_clear()
    monkeypatch.setattr(elf, "available", lambda: False)
    host_id.host_parts.cache_clear()
    try:
        fallback = host_id.host_parts()
    finally:
        host_id.host_parts.cache_clear()
    assert host_id.cpu_identity() is None
    assert any(p.startswith("features=+") or p.startswith("features=-") for p in fallback)


def test_isa_features_are_llvms_and_the_kernels():
    """The ISA features vecmath picks its libmvec variant by are what LLVM's own detection
    enables (it generates the code that calls the variant) and what /proc/cpuinfo lists."""
    from codegen.native import jit

    found = host_id.isa_features()
    host = jit.host_target()
    flags = _cpuinfo()["flags"].split()
    for feature, flag in (("sse4.1", "sse4_1"), ("avx2", "avx2"), ("avx512f", "avx512f")):
        assert (feature in found) == host.has_feature(feature) == (flag in flags), feature
