"""codegen.native.elf: object code LLVM emitted, loaded without LLVM, runs as LLVM's loader
runs it (LLVM's MCJIT is the oracle: ``SYMGRAPH_OBJECT_LOADER=llvm``)."""

from __future__ import annotations

import ctypes
import math
import struct

import numpy as np
import pytest
from _helpers import cfunc, loop_ir, run_fresh

from codegen.native import elf, jit, parallel

pytestmark = pytest.mark.skipif(not elf.available(), reason="the loader is for Linux x86-64")


@pytest.fixture(autouse=True)
def own_loader(monkeypatch):
    """These tests are of this loader, whatever loader the suite runs with."""
    monkeypatch.delenv("SYMGRAPH_OBJECT_LOADER", raising=False)

#: a vector loop (constants in a constant pool), a counter in writable zeroed data, a table in
#: a section of its own after a one-byte one (its alignment) and a pointer into it (a
#: relocation's addend), a call of libm by its own name (the process's symbols) and one of a name
#: bound by ``add_symbol``
IR = loop_ir("scale", "float", 1, "%r = fmul fast float %v0, 1.75", jit.function_attributes()) \
    + """
@count = internal global i64 0
@tiny = global i8 1, section ".ldata.tiny"
@cells = global [4 x double] [double 0.5, double 1.0, double 2.0, double 4.0], align 64,
  section ".ldata.cells"
@cell2 = global ptr getelementptr (i8, ptr @cells, i64 16)
@table = internal constant [4 x double] [double 1.5, double -2.0, double 0.25, double 8.0]
declare float @cosf(float)
declare double @sg_test_bound(double)

define i64 @bump() {
  %c = load i64, ptr @count
  %d = add i64 %c, 1
  store i64 %d, ptr @count
  ret i64 %d
}

define double @pick(i64 %i) {
  %p = getelementptr inbounds [4 x double], ptr @table, i64 0, i64 %i
  %v = load double, ptr %p
  ret double %v
}

define double @third() {
  %p = getelementptr inbounds [4 x double], ptr @cells, i64 0, i64 2
  %v = load double, ptr %p
  ret double %v
}

define float @cosine(float %x) {
  %r = call float @cosf(float %x)
  ret float %r
}

define double @bound(double %x) {
  %r = call double @sg_test_bound(double %x)
  ret double %r
}
"""

#: two modules of one program: ``twice`` calls ``inc`` of the other object by its name
CALLER = """
declare i64 @inc(i64)
define i64 @twice(i64 %x) {
  %a = call i64 @inc(i64 %x)
  %b = call i64 @inc(i64 %a)
  ret i64 %b
}
"""
CALLEE = """
define i64 @inc(i64 %x) {
  %r = add i64 %x, 1
  ret i64 %r
}
"""

_HALVE = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)(lambda x: x / 2.0)


@pytest.fixture
def bound_symbol():
    jit.add_symbol("sg_test_bound", ctypes.cast(_HALVE, ctypes.c_void_p).value)


def _objects(ir_texts: list[str], opt_level: int = 2) -> list[bytes]:
    return [r[0] for r in jit.compile_objects(ir_texts, opt_level=opt_level, keep_ir=False)]


def _exercise(module) -> tuple:
    x = np.linspace(-2, 2, 37, dtype=np.float32)
    out = np.empty_like(x)
    cfunc(module.address("scale"), None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(
        out.ctypes.data, x.ctypes.data, len(x))
    bump = cfunc(module.address("bump"), ctypes.c_int64)
    pick = cfunc(module.address("pick"), ctypes.c_double, ctypes.c_int64)
    cosine = cfunc(module.address("cosine"), ctypes.c_float, ctypes.c_float)
    bound = cfunc(module.address("bound"), ctypes.c_double, ctypes.c_double)
    third = cfunc(module.address("third"), ctypes.c_double)
    return (out.tobytes(), [bump() for _ in range(3)], [pick(i) for i in range(4)],
            cosine(0.5), bound(5.0), third(), module.address("cells") % 64,
            ctypes.c_uint64.from_address(module.address("cell2")).value
            - module.address("cells"))


@pytest.mark.parametrize("opt_level", [0, 3])
def test_loaded_code_runs_as_under_llvms_loader(opt_level, bound_symbol, monkeypatch):
    code = jit.pack_objects(_objects([IR], opt_level))
    own = jit.load_object(code)
    assert isinstance(own._engine, elf.Image)
    monkeypatch.setenv("SYMGRAPH_OBJECT_LOADER", "llvm")
    llvm = jit.load_object(code)
    assert not isinstance(llvm._engine, elf.Image)
    got, expected = _exercise(own), _exercise(llvm)
    assert got == expected
    x = np.linspace(-2, 2, 37, dtype=np.float32)
    assert got[0] == (x * np.float32(1.75)).tobytes()
    assert got[1] == [1, 2, 3]  # a counter of its own per load, starting at zero
    assert got[2] == [1.5, -2.0, 0.25, 8.0]
    assert got[3] == pytest.approx(math.cos(0.5), rel=1e-6) and got[4] == 2.5
    assert got[5] == 2.0 and got[6] == 0 and got[7] == 16  # (a pointer: ``cells + 16``)


def test_objects_of_one_program_call_each_other():
    code = jit.pack_objects(_objects([CALLER, CALLEE]))
    module = jit.load_object(code)
    assert isinstance(module._engine, elf.Image)
    assert cfunc(module.address("twice"), ctypes.c_int64, ctypes.c_int64)(40) == 42
    with pytest.raises(KeyError):
        module.address("nothing")


def _maps_of(address: int) -> str:
    """The permissions of the mapping holding ``address`` (/proc/self/maps)."""
    for line in open("/proc/self/maps"):
        span, perms = line.split()[:2]
        lo, hi = (int(v, 16) for v in span.split("-"))
        if lo <= address < hi:
            return perms
    raise AssertionError(f"{address:#x} is not mapped")


def test_code_is_executable_not_writable_and_constants_read_only(bound_symbol):
    """Pages of code are read-and-execute, of constants read-only, of data read-write; none
    is writable and executable; the pages go when the module does."""
    import gc
    import weakref

    module = jit.load_object(jit.pack_objects(_objects([IR])))
    image = module._engine
    perms = [_maps_of(a)[:3] for a in range(image._base, image._base + image._size, elf._PAGE)]
    assert _maps_of(module.address("scale")).startswith("r-x")
    assert _maps_of(module.address("cells")).startswith("rw-")
    assert perms[0] == "r-x" and "r--" in perms and perms[-1] == "rw-"
    assert not any("w" in p and "x" in p for p in perms)
    base, gone = image._base, weakref.ref(image)
    del module, image
    gc.collect()
    assert gone() is None
    assert not any(int(line.split("-")[0], 16) == base for line in open("/proc/self/maps"))


def _symbol_named(obj: bytes, name: str) -> int:
    """Index of symbol ``name`` in ``obj``'s symbol table."""
    parsed = elf._Object(obj)
    return next(k for k in range(len(parsed.symbols)) if parsed.name(k) == name)


def _first_rela(obj: bytes) -> tuple[int, int, int]:
    """(file offset of the first RELA entry that patches code, the offset in the section it
    patches, that section's index)."""
    parsed = elf._Object(obj)
    for _, kind, _, _, off, _, _, target, _, _ in parsed.sections:
        if kind == 4 and target in parsed.loaded:
            return off, struct.unpack_from("<Q", obj, off)[0], target
    raise AssertionError("no relocation of code")


@pytest.mark.parametrize("rtype,width", [(24, 8), (2, 4), (10, 4)])
def test_other_relocation_types_patch_what_the_abi_says(rtype, width):
    """``PC64``: S + A - P; ``PC32`` and ``32``: the same in 4 bytes, refused when the value
    does not fit (a name far from the image; an address above 4 GiB)."""
    obj = bytearray(_objects([CALLER])[0])  # its call of ``inc``: an R_X86_64_64 of a name
    at, where, section = _first_rela(bytes(obj))
    info = struct.unpack_from("<Q", obj, at + 8)[0]
    struct.pack_into("<Qq", obj, at + 8, (info >> 32) << 32 | rtype, 5)
    far = 0x7F00_0000_0000
    resolve = {"inc": far}.get
    assert elf._Object(bytes(obj)).name(info >> 32) == "inc"
    if width == 4:
        with pytest.raises(elf.Unsupported, match="out of range"):
            elf.load([bytes(obj)], resolve)
        return
    image = elf.load([bytes(obj)], resolve)
    patched = image._base + _text_offset(elf._Object(bytes(obj)), section) + where
    assert ctypes.c_uint64.from_address(patched).value == (far + 5 - patched) % (1 << 64)


def _text_offset(obj, section: int) -> int:
    """Where ``section`` starts in a one-object image (``elf.load``'s layout)."""
    offset = 0
    for i, (kind, align) in obj.loaded.items():
        if kind == "text":
            offset = -(-offset // align) * align
            if i == section:
                return offset
            offset += obj.sections[i][5]
    raise AssertionError("not a code section")


WEAK = """
define weak i64 @k() {{
  ret i64 {value}
}}
define i64 @call_{tag}() {{
  %r = call i64 @k()
  ret i64 %r
}}
"""


def test_the_first_definition_of_a_weak_name_serves_every_object(monkeypatch):
    """Two objects both defining a weak ``@k`` (as two cached files may both hold a kernel
    body): like MCJIT, every caller and the lookup get the first object's."""
    objects = _objects([WEAK.format(value=1, tag="a"), WEAK.format(value=2, tag="b")])
    code = jit.pack_objects(objects)
    got = []
    for loader in ("own", "llvm"):
        monkeypatch.setenv("SYMGRAPH_OBJECT_LOADER", loader)
        module = jit.load_object(code)
        assert isinstance(module._engine, elf.Image) == (loader == "own")
        got.append([cfunc(module.address(n), ctypes.c_int64)() for n in ("k", "call_a",
                                                                          "call_b")])
    assert got[0] == got[1] == [1, 1, 1]


def _relocations(obj: bytes):
    """(offset of each RELA entry's info field) in ``obj``."""
    ehdr = elf._EHDR.unpack_from(obj)
    shoff, shnum = ehdr[6], ehdr[12]
    for i in range(shnum):
        _, kind, _, _, off, size, _, _, _, _ = elf._SHDR.unpack_from(obj, shoff + i * 64)
        if kind == 4:
            yield from (off + k * 24 + 8 for k in range(size // 24))


def test_what_it_does_not_handle_is_refused_and_loaded_by_llvm(bound_symbol, monkeypatch):
    """A relocation it does not know (GOT-relative) or a name nobody defines is refused
    with ``Unsupported``; ``jit.load_object`` then loads with LLVM, and the code runs."""
    obj = bytearray(_objects([IR])[0])
    at = next(_relocations(bytes(obj)))
    info = struct.unpack_from("<Q", obj, at)[0]
    struct.pack_into("<Q", obj, at, (info >> 32) << 32 | 9)  # R_X86_64_GOTPCREL
    with pytest.raises(elf.Unsupported, match="relocation type 9"):
        elf.load([bytes(obj)], jit._resolve)
    with pytest.raises(elf.Unsupported, match="undefined symbol 'cosf'"):
        elf.load(_objects([IR]), lambda name: None if name == "cosf" else jit._resolve(name))

    def refuse(objects, resolve):
        raise elf.Unsupported("refused")
    monkeypatch.setattr(elf, "load", refuse)
    module = jit.load_object(jit.pack_objects(_objects([IR])))
    assert not isinstance(module._engine, elf.Image)
    assert _exercise(module)[2] == [1.5, -2.0, 0.25, 8.0]


def test_not_an_x86_64_object_is_refused():
    obj = bytearray(_objects([CALLEE])[0])
    struct.pack_into("<H", obj, 18, 183)  # EM_AARCH64
    with pytest.raises(elf.Unsupported, match="machine 183"):
        elf.load([bytes(obj)], jit._resolve)
    with pytest.raises(elf.Unsupported, match="not a 64-bit"):
        elf.load([b"\x7fELF\x01\x01" + bytes(64)], jit._resolve)


WARM = """
import sys, numpy as np, symgraph as sg
from codegen.native import parallel
x = sg.tensor("x", ("n", 4), "float32")
w = sg.shared(np.arange(4, dtype=np.float32), name="w")
big = sg.shared(np.ones(1 << 17, np.float32), name="big")  # its update: a split loop
f = sg.function([x], sg.sum(sg.tanh(x @ sg.reshape(w, (4, 1)))),
                updates={w: w * 0.5, big: sg.sqrt(big * 4.0)})
got = float(f(np.ones((3, 4), np.float32)))
mapped = "libllvmlite" in open("/proc/self/maps").read()
from codegen.native import llvmffi
preloaded = llvmffi._preload_thread is not None
split = parallel.DISPATCH.encode() in f.program.module.object_code and bool(parallel._runtime)
print(f.compile_stats["cache_level"], int(mapped), int("llvmlite" in sys.modules),
      int(preloaded), int(split), got, float(big.get_value()[0]))
"""


def test_a_warm_start_maps_no_llvm(tmp_path):
    """Compiling maps LLVM (on a thread, from the program-cache miss on); loading the same
    program from the disk cache in a new process maps and imports none of it (and computes
    the same), its split loops' runtime included (the runtime's cache key once asked LLVM
    for the host's triple: 6 ms of W1's warm start)."""
    cold = run_fresh(WARM, tmp_path).split()
    warm = run_fresh(WARM, tmp_path).split()
    threads = "1" if parallel.available() else "0"  # (run_fresh: the default setting)
    assert cold[:5] == ["ir", "1", "1", "1", threads]
    assert warm[:5] == ["program", "0", "0", "0", threads]
    assert warm[5:] == cold[5:]
    assert float(warm[5]) == pytest.approx(3 * math.tanh(6.0), rel=1e-6)
    assert float(warm[6]) == 2.0


def test_a_relocation_of_a_symbol_that_does_not_exist_is_refused():
    """A malformed entry (its symbol index past the table) is ``Unsupported``, so
    ``jit.load_object`` would hand it to LLVM, not fail with an ``IndexError``."""
    obj = bytearray(_objects([CALLER])[0])
    at, _, _ = _first_rela(bytes(obj))
    info = struct.unpack_from("<Q", obj, at + 8)[0]
    struct.pack_into("<Q", obj, at + 8, (10 ** 6) << 32 | (info & 0xFFFFFFFF))
    with pytest.raises(elf.Unsupported, match="malformed"):
        elf.load([bytes(obj)], {"inc": 0x1000}.get)
