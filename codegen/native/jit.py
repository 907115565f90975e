"""Turn LLVM IR text into callable native code for the host CPU.

Why this module exists: every compiled graph goes through the same steps (parse, optimise with
the new pass manager, generate machine code, load it), and the lowering should not care about
llvmlite's API churn.  llvmlite is imported lazily, on first use, so that importing
``symgraph`` stays cheap; compiling does not import ``llvmlite.binding`` when
:mod:`codegen.native.llvmffi` supports the installed llvmlite (compiles then run on several
threads, one module each), and loading object code does not even map LLVM where
:mod:`codegen.native.elf` applies (Linux x86-64; MCJIT otherwise).  Code generation always
goes through an object file (``TargetMachine.emit_object``) which is then loaded: the object
bytes are exactly what the disk cache (:mod:`codegen.native.cache`) stores, so a cached and
a fresh compile run the same loading path.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from . import elf, llvmffi

__all__ = [
    "FAST_MATH_FLAGS",
    "CompiledModule",
    "HostTarget",
    "OPT_LEVEL_MARK",
    "PART_MARK",
    "add_symbol",
    "assembly",
    "bind_external_symbols",
    "bindable",
    "compile_module",
    "compile_objects",
    "fast_math_flags",
    "function_attributes",
    "host_target",
    "llvm",
    "load_library_permanently",
    "load_object",
    "pack_objects",
    "part_opt_level",
    "register_binder",
    "target_machine",
    "unpack_objects",
    "vector_registers",
]

#: Fast-math flags for generated floating-point instructions.  ``nnan``/``ninf`` are left out on
#: purpose so that NaN/Inf keep IEEE semantics (needed for NaN guards).
FAST_MATH_FLAGS = "reassoc contract nsz arcp afn"

_lock = threading.RLock()
_llvm: Any = None
_host: HostTarget | None = None
_tms: dict[int, Any] = {}


def llvm() -> Any:
    """Return ``llvmlite.binding`` with the native target initialised (once, thread-safe)."""
    global _llvm
    if _llvm is None:
        with _lock:
            if _llvm is None:
                from llvmlite import binding  # lazy: ~15 ms, only when compiling

                # llvm.initialize() raises in llvmlite >= 0.45; these two are still required.
                binding.initialize_native_target()
                binding.initialize_native_asmprinter()
                _llvm = binding
    return _llvm


class HostTarget:
    """Description of the host CPU as LLVM sees it.  (A plain class: a ``NamedTuple`` cost
    0.2-0.4 ms of every process that imports the backend, this ~0.02.)"""

    __slots__ = ("triple", "cpu", "features", "llvm_version", "llvmlite_version")

    def __init__(self, triple: str, cpu: str, features: str, llvm_version: tuple[int, ...],
                 llvmlite_version: str):
        self.triple, self.cpu, self.features = triple, cpu, features
        self.llvm_version, self.llvmlite_version = llvm_version, llvmlite_version

    def __repr__(self) -> str:
        return (f"HostTarget(triple={self.triple!r}, cpu={self.cpu!r}, "
                f"features=<{len(self.features.split(','))} flags>, "
                f"llvm_version={self.llvm_version!r}, llvmlite={self.llvmlite_version!r})")

    def has_feature(self, name: str) -> bool:
        """True if ``+name`` is in the feature string (e.g. ``"avx512f"``)."""
        return f"+{name}" in self.features.split(",")


def _use_ffi() -> bool:
    """Load object code without importing ``llvmlite.binding`` (see :mod:`codegen.llvmffi`)?"""
    return llvmffi.available()


#: names bound by :func:`add_symbol` (what loaded code calls them by), and the libraries of
#: :func:`load_library_permanently`: kept here, and handed to LLVM only when LLVM loads code
#: (``_forward_symbols``), so that loading code with :mod:`codegen.native.elf` never maps it
_symbols: dict[str, int] = {}
_libraries: list[str] = []
_forwarded: dict[str, int] = {}
_forwarded_libraries = 0


def add_symbol(name: str, address: int) -> None:
    """Bind ``name`` to ``address`` for code loaded from now on (``llvm.add_symbol``)."""
    with _lock:
        _symbols[name] = address


def load_library_permanently(filename: str) -> None:
    """Make the names of the shared library ``filename`` resolvable by loaded code
    (``llvm.load_library_permanently``): loaded into the process's global scope."""
    with _lock:
        if filename not in _libraries:
            ctypes.CDLL(filename, mode=ctypes.RTLD_GLOBAL)
            _libraries.append(filename)


def _resolve(name: str) -> int | None:
    """Where loaded code finds ``name``: a bound name, then the process's global scope."""
    address = _symbols.get(name)
    if address is None:
        address = _dlsym(name)
    return address


_DLSYM: Any = None


def _dlsym(name: str) -> int | None:
    global _DLSYM
    if _DLSYM is None:
        fn = ctypes.CDLL(None).dlsym
        fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_char_p], ctypes.c_void_p
        _DLSYM = fn
    return _DLSYM(None, name.encode()) or None  # (None: RTLD_DEFAULT)


def _forward_symbols() -> None:
    """Hand LLVM the names and libraries bound since it last loaded code (under ``_lock``)."""
    global _forwarded_libraries
    ffi = _use_ffi()
    for name, address in list(_symbols.items()):
        if _forwarded.get(name) != address:
            if ffi:
                llvmffi.add_symbol(name, address)
            else:
                llvm().add_symbol(name, address)
            _forwarded[name] = address
    for filename in _libraries[_forwarded_libraries:]:
        if ffi:
            llvmffi.load_library_permanently(filename)
        else:
            llvm().load_library_permanently(filename)
    _forwarded_libraries = len(_libraries)


def host_target() -> HostTarget:
    """Return the (cached) host target description."""
    global _host
    if _host is None and _use_ffi():
        import llvmlite  # lazy: the version string, only once LLVM is in use

        with _lock:
            _host = HostTarget(
                triple=llvmffi.process_triple(),
                cpu=llvmffi.host_cpu_name(),
                features=llvmffi.host_cpu_features(),
                llvm_version=llvmffi.version_info(),
                llvmlite_version=llvmlite.__version__,
            )
    if _host is None:
        binding = llvm()
        import llvmlite  # lazy: the version string, only once LLVM is in use

        _host = HostTarget(
            triple=binding.get_process_triple(),
            cpu=binding.get_host_cpu_name(),
            features=binding.get_host_cpu_features().flatten(),
            llvm_version=tuple(binding.llvm_version_info),
            llvmlite_version=llvmlite.__version__,
        )
    return _host


def _create_target_machine(opt_level: int) -> Any:
    host = host_target()
    target = llvm().Target.from_triple(host.triple)
    return target.create_target_machine(
        cpu=host.cpu,
        features=host.features,
        opt=opt_level,
        reloc="static",
        codemodel="jitdefault",
        jit=True,
    )


def target_machine(opt_level: int = 3) -> Any:
    """Return the cached host ``TargetMachine`` used for optimisation and object emission.

    Do not hand it to ``create_mcjit_compiler`` (the engine takes ownership of its target
    machine); :func:`load_object` creates a fresh one per engine.
    """
    tm = _tms.get(opt_level)
    if tm is None:
        with _lock:
            tm = _tms.get(opt_level)
            if tm is None:
                tm = _tms[opt_level] = _create_target_machine(opt_level)
    return tm


def function_attributes(*, vector_width: int | None = None) -> str:
    """Attribute text to put on generated functions (e.g. in ``attributes #0 = { ... }``).

    Contains ``target-cpu``/``target-features`` of the host and ``prefer-vector-width``
    (512 when the CPU has AVX-512, which the notes measured 2-10% faster on loops and 1.5x on
    vectorised ``exp``; pass ``vector_width`` to override).
    """
    host = host_target()
    if vector_width is None:
        vector_width = 512 if host.has_feature("avx512f") else 256
    return (
        f'"target-cpu"="{host.cpu}" "target-features"="{host.features}" '
        f'"prefer-vector-width"="{vector_width}"'
    )


def vector_registers() -> int:
    """Vector registers of the host (32 with AVX-512, else 16): what register-blocked loops
    may keep live (``codegen.small_gemm`` sizes its tiles by it)."""
    return 32 if host_target().has_feature("avx512f") else 16


def fast_math_flags() -> str:
    """Recommended fast-math flags (NaN/Inf semantics kept): :data:`FAST_MATH_FLAGS`."""
    return FAST_MATH_FLAGS


class CompiledModule:
    """Native code of one module, loaded (an ``elf.Image``, or an MCJIT engine) for as long as
    this object lives.

    ``stats`` holds per-stage times in seconds (``parse``, ``optimize``, ``codegen``, ``load``)
    and, when produced by :mod:`codegen.cache`, ``cache`` = ``"memory"``/``"disk"``/``"miss"``.
    """

    __slots__ = ("object_code", "stats", "optimized_ir", "_engine", "_addresses")

    def __init__(self, object_code: bytes, stats: dict[str, Any] | None = None,
                 optimized_ir: str | None = None, _engine: Any = None):
        self.object_code = object_code
        self.stats: dict[str, Any] = {} if stats is None else stats
        self.optimized_ir = optimized_ir
        self._engine = _engine
        self._addresses: dict[str, int] = {}

    def __repr__(self) -> str:
        return (f"CompiledModule(<{len(self.object_code)} bytes of object code>, "
                f"stats={self.stats!r})")

    def address(self, name: str) -> int:
        """Address of the function or global ``name``; raises ``KeyError`` if undefined."""
        addr = self._addresses.get(name)
        if addr is None:
            if not isinstance(self._engine, elf.Image):
                with _lock:  # MCJIT links at its first lookup: the names bound by then
                    _forward_symbols()
            addr = self._engine.get_function_address(name)
            if not addr:
                addr = self._engine.get_global_value_address(name)
            if not addr:
                raise KeyError(f"symbol {name!r} is not defined in the compiled module")
            self._addresses[name] = addr
        return addr

    def llvm_ir(self) -> str:
        """Optimised LLVM IR text (unavailable for modules loaded from the disk cache)."""
        if self.optimized_ir is None:
            raise RuntimeError("no IR kept for this module (it was loaded from object code)")
        return self.optimized_ir

    def asm(self) -> str:
        """Assembly of the optimised IR, generated on demand (same target machine)."""
        return assembly(self.llvm_ir(), self.stats.get("opt_level", 3))


def assembly(ir_text: str, opt_level: int = 3, *, optimize: bool = False) -> str:
    """Assembly of ``ir_text`` (modules joined by :data:`PART_MARK` one after another),
    optimised first if ``optimize``."""
    out = []
    with _lock:
        for part in ir_text.split(PART_MARK):
            level = part_opt_level(part, opt_level)  # as compile_module compiles it
            mod = llvm().parse_assembly(part)
            if optimize:
                _optimize(mod, level, loop_unrolling=False)
            out.append(target_machine(level).emit_assembly(mod))
    return "\n".join(out)


def pipeline_options(opt_level: int, loop_unrolling: bool) -> tuple[bool, bool]:
    """``(vectorize, unroll)`` for the ``O<opt_level>`` pipeline: loop and SLP vectorisation
    from O2 on, unrolling only with them and when asked (both compile paths use this)."""
    vectorize = opt_level >= 2
    return vectorize, vectorize and loop_unrolling


def _optimize(mod: Any, opt_level: int, loop_unrolling: bool = True) -> None:
    binding = llvm()
    pto = binding.create_pipeline_tuning_options(speed_level=opt_level)
    vectorize, unroll = pipeline_options(opt_level, loop_unrolling)
    pto.loop_vectorization = vectorize
    pto.slp_vectorization = vectorize
    pto.loop_unrolling = unroll
    pb = binding.create_pass_builder(target_machine(opt_level), pto)
    pb.getModulePassManager().run(mod, pb)


#: binders of external names: name -> (markers, bind); see :func:`register_binder`
_BINDERS: dict[str, tuple[tuple[bytes, ...], Callable[[bytes], None]]] = {}


def register_binder(name: str, markers: tuple[bytes, ...],
                    bind: Callable[[bytes], None]) -> None:
    """Register ``bind(object_code)``, run before loading object code that contains any of
    ``markers`` (e.g. ``b"sg_cblas_"``).  The modules whose symbols generated code calls
    (:mod:`codegen.blas`, :mod:`codegen.pycall`, :mod:`codegen.vecmath`) register themselves
    when imported; ``codegen`` imports them, so every loaded object finds its binder."""
    _BINDERS[name] = (tuple(markers), bind)


def bindable(object_code: bytes) -> bool:
    """Can the external names ``object_code`` references be bound in this process?  Binds
    them (what loading it does first); False if a binder refuses (the parallel runtime
    where numpy's OpenBLAS has no threads to lend, say)."""
    for markers, bind in list(_BINDERS.values()):
        if any(m in object_code for m in markers):
            try:
                bind(object_code)
            except Exception:  # noqa: BLE001  (whatever a binder raises: not loadable here)
                return False
    return True


def bind_external_symbols(object_code: bytes) -> None:
    """Bind the external names (``sg_*``) that ``object_code`` may reference.

    External symbols are resolved by *name* when code is loaded; their addresses are never
    baked into code, so cached object code stays valid in a new process.  Binding is
    idempotent and cheap; each binder runs only if the object contains one of its markers.
    """
    for markers, bind in list(_BINDERS.values()):
        if any(m in object_code for m in markers):
            bind(object_code)


def load_object(object_code: bytes, stats: dict[str, Any] | None = None) -> CompiledModule:
    """Load object code (from :func:`compile_module` or the disk cache): with
    :mod:`codegen.native.elf` (no LLVM), or into an MCJIT engine where that does not apply
    (or ``SYMGRAPH_OBJECT_LOADER=llvm``).

    External symbols (libm, libmvec, BLAS) are bound first, see :func:`bind_external_symbols`.
    """
    stats = {} if stats is None else stats
    t0 = time.perf_counter()
    bind_external_symbols(object_code)
    objects = unpack_objects(object_code)
    if os.environ.get("SYMGRAPH_OBJECT_LOADER", "own") != "llvm" and elf.available():
        try:
            image = elf.load(objects, _resolve)
        except elf.Unsupported:
            image = None  # LLVM's loader, below
        if image is not None:
            stats["load"] = time.perf_counter() - t0
            return CompiledModule(object_code=object_code, stats=stats, _engine=image)
    with _lock:
        _forward_symbols()
    if _use_ffi():
        host = host_target()
        with _lock:
            engine = llvmffi.Engine(objects, host.triple, host.cpu, host.features)
        stats["load"] = time.perf_counter() - t0
        return CompiledModule(object_code=object_code, stats=stats, _engine=engine)
    binding = llvm()
    with _lock:
        empty = binding.parse_assembly("")
        engine = binding.create_mcjit_compiler(empty, _create_target_machine(3))
        for obj in objects:
            engine.add_object_file(binding.ObjectFileRef.from_data(obj))
        engine.finalize_object()
    stats["load"] = time.perf_counter() - t0
    return CompiledModule(object_code=object_code, stats=stats, _engine=engine)


#: separates the modules of one program's IR text (see :func:`compile_module`)
PART_MARK = "\n; ---- symgraph: next module ----\n"
#: a module's first line ``<mark><digit>`` caps its opt level: ``codegen.partition`` marks
#: the module of a long step's entry functions, calls only, with nothing O3 improves
OPT_LEVEL_MARK = "; symgraph: opt_level="


def part_opt_level(ir_text: str, opt_level: int) -> int:
    """The level one module of a program compiles at (see :data:`OPT_LEVEL_MARK`)."""
    if ir_text.startswith(OPT_LEVEL_MARK):
        level = ir_text[len(OPT_LEVEL_MARK):len(OPT_LEVEL_MARK) + 2]
        if len(level) == 2 and level[0] in "0123" and level[1] == "\n":
            return min(opt_level, int(level[0]))
        raise ValueError(f"malformed {OPT_LEVEL_MARK!r} line: {ir_text.splitlines()[0]!r}")
    return opt_level


def _mark(ir_text: str, optimized: str | None) -> str | None:
    """``optimized`` (the IR LLVM printed) with ``ir_text``'s opt-level line, if it has one,
    so that ``CompiledModule.llvm_ir()`` and :func:`assembly` see the level it ran at."""
    if optimized is None or not ir_text.startswith(OPT_LEVEL_MARK):
        return optimized
    return ir_text[:ir_text.index("\n") + 1] + optimized


_CONTAINER = b"SGMO"


def pack_objects(objects: list[bytes]) -> bytes:
    """One object file as it is; several as ``SGMO``, a count and lengths, then the files."""
    if len(objects) == 1:
        return objects[0]
    head = _CONTAINER + len(objects).to_bytes(4, "little")
    return head + b"".join(len(o).to_bytes(8, "little") for o in objects) + b"".join(objects)


def unpack_objects(code: bytes) -> list[bytes]:
    """The object files :func:`pack_objects` packed (``ValueError`` if truncated)."""
    if code[:4] != _CONTAINER:
        return [code]
    n = int.from_bytes(code[4:8], "little")
    sizes = [int.from_bytes(code[8 + 8 * i:16 + 8 * i], "little") for i in range(n)]
    pos, out = 8 + 8 * n, []
    for size in sizes:
        out.append(code[pos:pos + size])
        pos += size
    if pos != len(code) or not all(out):
        raise ValueError("truncated object container")
    return out


def compile_threads() -> int:
    """How many modules of one program may compile at once: the CPUs this process may use,
    or ``SYMGRAPH_COMPILE_THREADS``; 1 without the thread-safe path (:mod:`codegen.llvmffi`)."""
    if not llvmffi.compiler_available():
        return 1
    env = os.environ.get("SYMGRAPH_COMPILE_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _compile_one(ir_text: str, opt_level: int, loop_unrolling: bool,
                 keep_ir: bool) -> tuple[bytes, str | None, dict[str, float]]:
    if llvmffi.compiler_available():
        host = host_target()
        vectorize, unroll = pipeline_options(opt_level, loop_unrolling)
        return llvmffi.compile_object(ir_text, host.triple, host.cpu, host.features,
                                      opt_level=opt_level, vectorize=vectorize, unroll=unroll,
                                      keep_ir=keep_ir)
    binding = llvm()
    with _lock:  # llvmlite parses into LLVM's global context, which is not thread-safe
        t0 = time.perf_counter()
        mod = binding.parse_assembly(ir_text)
        mod.verify()
        t1 = time.perf_counter()
        _optimize(mod, opt_level, loop_unrolling)
        t2 = time.perf_counter()
        obj = target_machine(opt_level).emit_object(mod)
        t3 = time.perf_counter()
        optimized_ir = str(mod) if keep_ir else None
    return obj, optimized_ir, {"parse": t1 - t0, "optimize": t2 - t1, "codegen": t3 - t2}


def compile_objects(parts: list[str], *, opt_level: int = 3, keep_ir: bool = True,
                    loop_unrolling: bool = True) -> list[tuple[bytes, str | None, dict]]:
    """Compile each module text of ``parts`` (not loaded): ``(object code, optimised IR or
    None, stage seconds)`` each, on up to :func:`compile_threads` threads at once."""
    if not 0 <= opt_level <= 3:
        raise ValueError(f"opt_level must be 0..3, got {opt_level}")
    results: list[Any] = [None] * len(parts)
    host_target()  # once, before any thread needs it
    queue = iter(range(len(parts)))
    queue_lock = threading.Lock()
    failed = threading.Event()

    def work() -> None:
        while not failed.is_set():  # after a failure the other modules are not compiled
            with queue_lock:
                i = next(queue, None)
            if i is None:
                return
            try:
                code, ir, times = _compile_one(parts[i], part_opt_level(parts[i], opt_level),
                                               loop_unrolling, keep_ir)
                results[i] = code, _mark(parts[i], ir), times
            except BaseException as exc:  # noqa: BLE001  (re-raised on the calling thread)
                results[i] = exc
                failed.set()

    # each worker (worker 0 is this thread) takes the next module in order when it is free:
    # at most n at once, and a long first module does not hold back the ones after it
    n = min(len(parts), compile_threads())
    started = []
    for _ in range(1, n):
        t = threading.Thread(target=work, daemon=True)
        try:
            t.start()
            started.append(t)
        except RuntimeError:  # no thread to be had: the others take its share
            break
    work()
    for t in started:
        t.join()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def compile_module(ir_text: str, *, opt_level: int = 3, keep_ir: bool = True,
                   loop_unrolling: bool = True) -> CompiledModule:
    """Parse, verify, optimise and compile ``ir_text``; return the loaded native code.

    ``opt_level`` (0-3) selects both the IR pipeline (O2/O3 enable loop/SLP vectorisation and
    unrolling) and the machine-code optimisation level.  Raises ``RuntimeError`` with LLVM's
    message on invalid IR.

    A text of several modules joined by :data:`PART_MARK` (their functions calling each other
    by name) compiles each module on its own thread, up to :func:`compile_threads` at once,
    and loads the object files into one engine: on two cores W1's step compiles in about half
    the time.  ``stats`` then holds each stage's longest part (the wall time it adds).  A
    module whose text starts with :data:`OPT_LEVEL_MARK` compiles at that level if it is lower.
    """
    parts = ir_text.split(PART_MARK)
    results = compile_objects(parts, opt_level=opt_level, keep_ir=keep_ir,
                              loop_unrolling=loop_unrolling)
    stats: dict[str, Any] = {"opt_level": opt_level, "modules": len(parts)}
    for stage in ("parse", "optimize", "codegen"):
        stats[stage] = max(r[2][stage] for r in results)
    cm = load_object(pack_objects([r[0] for r in results]), stats)
    cm.optimized_ir = PART_MARK.join(r[1] for r in results) if keep_ir else None
    return cm
