"""Load the relocatable x86-64 ELF objects LLVM emits for us, without LLVM.

Why: loading cached object code through MCJIT needs ``libllvmlite`` mapped (~9 ms of
``dlopen``: relocating and initialising all of LLVM) and an engine per module (a target
machine, an empty IR module; ~1 ms each), so a warm start paid for a compiler it never ran.
The objects are simple: the JIT code model is *large* (``codegen.native.llvmffi``: static
relocation), so code reaches constants, other functions and external names through 64-bit
absolute addresses (``R_X86_64_64``), and nothing needs a GOT, a PLT or stubs.  Loading one
is a few hundred microseconds of Python: copy the allocated sections into one private
mapping, apply the relocations, make the code read-and-execute and the constants read-only.

What is supported: ELF64 little-endian ``ET_REL`` for ``EM_X86_64``; allocated
``PROGBITS``/``NOBITS`` sections; relocations ``64``, ``PC64``, ``PC32``, ``PLT32``, ``32``
and ``32S`` (the 32-bit ones range-checked); symbols defined in a loaded section or
absolute, or undefined and resolved by the caller (``resolve``: the names bound with
``codegen.native.jit.add_symbol``, then the process's).  Several objects load as one image
and resolve each other's global names as MCJIT links them (the first definition of a name
serves every object; a strong one beats weak ones).  Anything else (a TLS section, static
constructors, a section both writable and executable or aligned beyond a page, a
GOT-relative relocation, a 32-bit one out of range, a name nobody defines, a malformed
file) raises :class:`Unsupported`, and the caller loads the object with LLVM instead.

Not done: ``.eh_frame`` is neither loaded nor registered (LLVM's loader registers it).  The
generated code raises no C++ exception and is never unwound through; a debugger's backtrace
stops at it, as it does at any code without unwind tables.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
from collections.abc import Callable

__all__ = ["Image", "Unsupported", "available", "code_image", "load"]


class Unsupported(ValueError):
    """An object this loader does not handle (see the module docstring)."""


_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")
_U64, _U32, _I32 = struct.Struct("<Q"), struct.Struct("<I"), struct.Struct("<i")

_ET_REL, _EM_X86_64 = 1, 62
_SHT_PROGBITS, _SHT_SYMTAB, _SHT_RELA, _SHT_NOBITS, _SHT_REL = 1, 2, 4, 8, 9
_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR, _SHF_TLS = 0x1, 0x2, 0x4, 0x400
_SHT_X86_64_UNWIND = 0x70000001  # .eh_frame on x86-64
_SHN_UNDEF, _SHN_ABS, _SHN_LORESERVE = 0, 0xFFF1, 0xFF00
_STB_LOCAL, _STB_GLOBAL, _STB_WEAK = 0, 1, 2
#: sections whose functions a loader would have to run (static constructors): refused
_RUN_AT_LOAD = (".init_array", ".fini_array", ".preinit_array", ".ctors", ".dtors")
_STT_SECTION = 3
#: relocation type -> (PC-relative, bytes, signed range check or None for 64-bit)
_RELOCS = {
    1: (False, 8, None),    # R_X86_64_64
    2: (True, 4, True),     # R_X86_64_PC32
    4: (True, 4, True),     # R_X86_64_PLT32 (a direct call: no PLT needed within 2 GiB)
    10: (False, 4, False),  # R_X86_64_32
    11: (False, 4, True),   # R_X86_64_32S
    24: (True, 8, None),    # R_X86_64_PC64
}
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_PROT_READ, _PROT_WRITE, _PROT_EXEC = 1, 2, 4
_MAP_PRIVATE, _MAP_ANONYMOUS = 0x02, 0x20
_MAP_FAILED = ctypes.c_void_p(-1).value


def available() -> bool:
    """Can this process load objects here (Linux on x86-64)?"""
    return sys.platform.startswith("linux") and os.uname().machine == "x86_64" and \
        _libc() is not None


_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                  ctypes.c_int, ctypes.c_int, ctypes.c_long]
            libc.mmap.restype = ctypes.c_void_p
            libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            libc.mprotect.restype = ctypes.c_int
            libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            libc.munmap.restype = ctypes.c_int
        except (OSError, AttributeError):
            libc = False
        _LIBC = libc
    return _LIBC or None


class Image:
    """The loaded code and data of one or more objects, unmapped when this is freed.  Has
    the two lookups ``codegen.native.jit.CompiledModule`` asks an engine for."""

    __slots__ = ("_base", "_size", "symbols", "__weakref__")

    def __init__(self, base: int, size: int, symbols: dict[str, int]):
        self._base, self._size, self.symbols = base, size, symbols

    def get_function_address(self, name: str) -> int:
        return self.symbols.get(name, 0)

    get_global_value_address = get_function_address

    def __del__(self) -> None:
        base, self._base = getattr(self, "_base", None), None
        if base and _LIBC and not sys.is_finalizing():
            _LIBC.munmap(base, self._size)


def _mapping(nbytes: int) -> Image:
    """A private read-write mapping of whole pages holding ``nbytes``, unmapped with the
    ``Image`` (its symbols are the caller's to fill)."""
    libc = _libc()
    if libc is None or not available():
        raise Unsupported("no object loader on this platform")
    total = max(-(-nbytes // _PAGE) * _PAGE, _PAGE)
    base = libc.mmap(None, total, _PROT_READ | _PROT_WRITE, _MAP_PRIVATE | _MAP_ANONYMOUS,
                     -1, 0)
    if base is None or base == _MAP_FAILED:
        raise MemoryError(f"mmap of {total} bytes for code failed")
    return Image(base, total, {})


def code_image(code: bytes, entries: dict[str, int]) -> Image:
    """Position-independent machine ``code`` on pages of its own, read-and-execute;
    ``entries``: the offsets of its functions (``Image.get_function_address``)."""
    image = _mapping(len(code))
    base = image._base
    image.symbols = {name: base + off for name, off in entries.items()}
    ctypes.memmove(base, code, len(code))
    if _LIBC.mprotect(base, image._size, _PROT_READ | _PROT_EXEC) != 0:
        raise Unsupported(f"mprotect of code failed: errno {ctypes.get_errno()}")
    return image


class _Object:
    """One parsed object: its allocated sections and what relocates them."""

    def __init__(self, data: bytes):
        if len(data) < _EHDR.size or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise Unsupported("not a 64-bit little-endian ELF object")
        (_, e_type, machine, _, _, _, shoff, _, _, _, _, shentsize, shnum,
         shstrndx) = _EHDR.unpack_from(data)
        if e_type != _ET_REL or machine != _EM_X86_64:
            raise Unsupported(f"ELF type {e_type}, machine {machine}: not an x86-64 object")
        if shentsize != _SHDR.size or shnum == 0 or shstrndx >= shnum:
            raise Unsupported("unexpected section header table")
        self.data = data
        self.sections = [_SHDR.unpack_from(data, shoff + i * _SHDR.size) for i in range(shnum)]
        names = self.sections[shstrndx]
        self.names = [_cstr(data, names[4] + s[0]) for s in self.sections]
        self.loaded: dict[int, tuple[str, int]] = {}  # section index -> (kind, alignment)
        self.symtab: int | None = None
        for i, (_, kind, flags, _, _, _, _, _, align, _) in enumerate(self.sections):
            if kind == _SHT_SYMTAB:
                self.symtab = i
            elif kind == _SHT_REL:
                raise Unsupported("REL relocations (x86-64 uses RELA)")
            if not flags & _SHF_ALLOC or kind == _SHT_X86_64_UNWIND or \
                    self.names[i] == ".eh_frame":
                continue
            if flags & _SHF_TLS or kind not in (_SHT_PROGBITS, _SHT_NOBITS) or \
                    self.names[i].startswith(_RUN_AT_LOAD) or align > _PAGE or \
                    flags & _SHF_WRITE and flags & _SHF_EXECINSTR:
                raise Unsupported(f"section {self.names[i]} (type {kind:#x}, flags "
                                  f"{flags:#x}, alignment {align})")
            group = "text" if flags & _SHF_EXECINSTR else "data" if flags & _SHF_WRITE \
                else "rodata"
            self.loaded[i] = (group, max(int(align), 1))
        self.symbols = self._symbols()

    def _symbols(self) -> list[tuple[int, int, int, int, int]]:
        """``(name offset, bind, type, section, value)`` per symbol table entry (names are
        read only where needed: :meth:`name`)."""
        if self.symtab is None:
            return []
        _, _, _, _, off, size, link, _, _, _ = self.sections[self.symtab]
        self._strings = self.sections[link][4]
        return [(name, info >> 4, info & 0xF, shndx, value) for name, info, _, shndx, value, _
                in _SYM.iter_unpack(self.data[off:off + size - size % _SYM.size])]

    def name(self, sym: int) -> str:
        return _cstr(self.data, self._strings + self.symbols[sym][0])


def _cstr(data: bytes, start: int) -> str:
    return data[start:data.index(b"\0", start)].decode()


def load(objects: list[bytes], resolve: Callable[[str], int | None]) -> Image:
    """One image of ``objects`` (see the module docstring); ``resolve(name)`` gives the
    address of a name no object defines, or None.  Raises :class:`Unsupported`."""
    libc = _libc()
    if libc is None or not available():
        raise Unsupported("no object loader on this platform")
    try:
        parsed = [_Object(o) for o in objects]
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as err:
        if isinstance(err, Unsupported):
            raise
        raise Unsupported(f"malformed object: {err}") from err
    # layout: code, then constants, then writable data, each group starting on a page
    offsets: dict[tuple[int, int], int] = {}
    bounds = {}
    size = 0
    for group in ("text", "rodata", "data"):
        start = size = -(-size // _PAGE) * _PAGE
        for n, obj in enumerate(parsed):
            for i, (kind, align) in obj.loaded.items():
                if kind == group:
                    size = -(-size // align) * align
                    offsets[n, i] = size
                    size += obj.sections[i][5]
        bounds[group] = (start, size)
    total = max(-(-size // _PAGE) * _PAGE, _PAGE)
    image = bytearray(total)
    for (n, i), off in offsets.items():
        _, kind, _, _, src, length, _, _, _, _ = parsed[n].sections[i]
        if kind == _SHT_PROGBITS:
            image[off:off + length] = parsed[n].data[src:src + length]
    loaded = _mapping(total)
    base = loaded._base
    try:
        exported = _exports(parsed, offsets, base)
        for n, obj in enumerate(parsed):
            _relocate(obj, n, image, base, offsets, exported, resolve)
        ctypes.memmove(base, (ctypes.c_char * total).from_buffer(image), total)
        for group, prot in (("text", _PROT_READ | _PROT_EXEC), ("rodata", _PROT_READ)):
            start, end = bounds[group]
            end = -(-end // _PAGE) * _PAGE
            if end > start and libc.mprotect(base + start, end - start, prot) != 0:
                raise Unsupported(f"mprotect of loaded code failed: errno "
                                  f"{ctypes.get_errno()}")  # (LLVM's loader may say why)
    except BaseException as err:
        del loaded  # unmaps
        if isinstance(err, (struct.error, IndexError, KeyError, ValueError)) and \
                not isinstance(err, Unsupported):
            raise Unsupported(f"malformed object: {err!r}") from err
        raise
    loaded.symbols = exported
    return loaded


def _exports(parsed: list[_Object], offsets: dict, base: int) -> dict[str, int]:
    """Address of each global name the objects define, as LLVM's loader links them: the
    first definition of a name serves every object (later weak ones, e.g. a kernel body two
    objects both hold, are not used), a strong one beats weak ones, two strong ones refuse."""
    exported: dict[str, int] = {}
    strong: set[str] = set()
    for n, obj in enumerate(parsed):
        for k, (name, bind, _, shndx, value) in enumerate(obj.symbols):
            if bind == _STB_LOCAL or not name or shndx in (_SHN_UNDEF, _SHN_ABS):
                continue
            if (n, shndx) not in offsets:
                raise Unsupported(f"{obj.name(k)!r} defined in section {shndx}, not loaded")
            name = obj.name(k)
            if bind == _STB_GLOBAL:
                if name in strong:
                    raise Unsupported(f"{name!r} defined twice")
                strong.add(name)
            elif name in exported:
                continue
            exported[name] = base + offsets[n, shndx] + value
    return exported


def _relocate(obj: _Object, n: int, image: bytearray, base: int,
              offsets: dict[tuple[int, int], int], exported: dict[str, int],
              resolve: Callable[[str], int | None]) -> None:
    """Apply the RELA sections of ``obj`` (object number ``n``) that patch loaded sections."""
    for _, kind, _, _, off, size, _, target, _, entsize in obj.sections:
        if kind != _SHT_RELA or (n, target) not in offsets:
            continue  # (relocations of .eh_frame, which is not loaded)
        if entsize != _RELA.size:
            raise Unsupported("unexpected RELA entry size")
        section = offsets[n, target]
        addresses: dict[int, int] = {}  # symbol index -> address, for this section's entries
        for r_offset, info, addend in _RELA.iter_unpack(obj.data[off:off + size]):
            rtype, sym = info & 0xFFFFFFFF, info >> 32
            if rtype == 0:  # R_X86_64_NONE
                continue
            how = _RELOCS.get(rtype)
            if how is None:
                raise Unsupported(f"relocation type {rtype}")
            pc_relative, nbytes, signed = how
            value = addresses.get(sym)
            if value is None:
                value = addresses[sym] = _symbol_address(obj, n, sym, offsets, base, exported,
                                                         resolve)
            value += addend
            at = section + r_offset
            if pc_relative:
                value -= base + at
            if signed is None:
                _U64.pack_into(image, at, value & 0xFFFFFFFFFFFFFFFF)
            elif signed and -(1 << 31) <= value < 1 << 31:
                _I32.pack_into(image, at, value)
            elif not signed and 0 <= value < 1 << 32:
                _U32.pack_into(image, at, value)
            else:
                raise Unsupported(f"relocation type {rtype} out of range")


def _symbol_address(obj: _Object, n: int, sym: int, offsets: dict, base: int,
                    exported: dict[str, int], resolve: Callable[[str], int | None]) -> int:
    if sym == 0:  # the null symbol: S = 0
        return 0
    name_at, bind, _, shndx, value = obj.symbols[sym]
    if shndx == _SHN_ABS:
        return value
    if shndx != _SHN_UNDEF:
        if shndx >= _SHN_LORESERVE or (n, shndx) not in offsets:
            raise Unsupported(f"symbol {obj.name(sym)!r} in section {shndx}, not loaded")
        if bind == _STB_WEAK and name_at:  # the definition that serves (``_exports``)
            return exported[obj.name(sym)]
        return base + offsets[n, shndx] + value
    name = obj.name(sym)
    address = exported.get(name)
    if address is None:
        address = resolve(name)
    if address is None:
        if bind == _STB_WEAK:
            return 0
        raise Unsupported(f"undefined symbol {name!r}")
    return address
