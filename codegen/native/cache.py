"""Compile cache: skip LLVM (and, for whole programs, the lowering) for code compiled before.

Why: an O3 compile of a real graph takes 0.5-1.6 s, loading its object code 3 ms (llvm-notes
section 5).  Compiled modules are kept in memory for this process and their object code on disk
(``$SYMGRAPH_CACHE_DIR``, else ``$XDG_CACHE_HOME/symgraph``, else ``~/.cache/symgraph``) for the
next one.  The key covers everything that changes the machine code: the IR text, our version,
llvmlite and LLVM versions, target triple, CPU name and feature string, and the opt level.
Object code never contains raw addresses of external functions (BLAS, libm, libmvec are bound
by name when loading), so it is valid in any process on the same machine type.

Two levels.  ``compile_cached`` keys on IR text (``<key>.o``).  Whole programs of the llvm
backend are also kept under a key computed *before* lowering (:func:`program_key`: a canonical
signature of the rewritten graph, see :mod:`codegen.signature`, plus a hash of the compiler's
own source files, so editing the lowering invalidates them): ``<key>.sgp`` holds the object
code and the metadata the program needs besides it (``marshal``-ed plain data), so a warm
start in a new process does no lowering and no LLVM work but loading.  Files are validated
(magic, sha256, then the metadata's format and structure) and written atomically; anything
unreadable is ignored and recompiled.  The directory is kept under a size limit, least
recently used files out first (:mod:`codegen.native.cache_limit`,
``SYMGRAPH_CACHE_MAX_BYTES``, default 1 GiB).
"""

from __future__ import annotations

import functools
import hashlib
import marshal
import os
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from . import cache_limit, jit
from .host_id import host_parts
from .jit import CompiledModule

__all__ = ["CACHE_FORMAT", "body_key", "cache_dir", "cache_key", "clear_cache", "compile_cached",
           "compiling", "find_body", "index_bodies", "load_program", "program_key", "read_object",
           "source_fingerprint", "store_object", "store_program"]

#: Bump when the meaning of cached object code changes (ABI of generated code, binding scheme).
CACHE_FORMAT = 1
_SUFFIX = ".o"
_PROGRAM_SUFFIX = ".sgp"
_PROGRAM_MAGIC = b"SGP1"
_FACTS_SUFFIX = ".sgf"
_BODY_SUFFIX = ".sgb"  # (cache_limit.CACHE_FILE knows these names: keep them in step)

#: modules and programs kept in memory for reuse (least recently used dropped first).  A
#: dropped one stays alive while a function uses it (programs hold their modules); the
#: others' machine code is freed.  Unbounded, a process that built a graph per iteration
#: grew ~2 memory maps and 55-75 KB per graph until LLVM aborted the process.
MEMORY_LIMIT = 256


class _Recent(OrderedDict):
    """A dict of at most ``limit`` (default :data:`MEMORY_LIMIT`) items; ``get`` counts as a
    use."""

    def __init__(self, limit: int | None = None):
        super().__init__()
        self.limit = limit

    def get(self, key, default=None):
        try:
            value = self[key]
            self.move_to_end(key)
        except KeyError:  # (absent, or dropped by another thread meanwhile)
            return default
        return value

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > (self.limit or MEMORY_LIMIT):
            self.popitem(last=False)


_memory: _Recent = _Recent()
_programs: _Recent = _Recent()
#: object key -> object code of kernel bodies (codegen.kernel_cache): tens to hundreds of KB each
_objects: _Recent = _Recent(64)
_bodies: _Recent = _Recent(4096)  # body key -> key of an object file that defines it
_lock = threading.RLock()  # re-entrant: loading code may load the parallel runtime


def _fork_handlers() -> None:
    """A fork waits for any compile or load in progress (they hold ``_lock``, then ``jit``'s
    lock): a child forked while another thread held them waited on them forever, and LLVM
    itself would be mid-change in the child."""
    if hasattr(os, "register_at_fork"):
        def before() -> None:
            _lock.acquire()
            jit._lock.acquire()

        def after() -> None:
            jit._lock.release()
            _lock.release()

        os.register_at_fork(before=before, after_in_parent=after, after_in_child=after)


_fork_handlers()


def cache_dir() -> Path:
    """Directory of the disk cache (not created by this call)."""
    override = os.environ.get("SYMGRAPH_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "symgraph"


@functools.cache
def _package_version() -> str:
    pkg = sys.modules.get("symgraph")
    if getattr(pkg, "__version__", None):
        return str(pkg.__version__)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("symgraph")
    except PackageNotFoundError:  # source checkout: CACHE_FORMAT and the IR text still apply
        return "unknown"


@functools.cache
def source_fingerprint() -> str:
    """sha256 over the ``.py`` files of the ``codegen`` and ``symgraph`` packages (what
    generates IR): each file's path, size, modification time (ns) and inode.

    Metadata, not contents: reading and hashing ~100 files cost ~2 ms of every warm start,
    stat-ing them ~0.3 ms (``os.scandir``; ``os.walk`` with a path join and ``stat`` a file
    took ~0.75).  An edit changes the time; a file replaced by another (checkout, copy,
    rsync) changes the inode or the time; a false miss only recompiles."""
    h = hashlib.sha256()

    def walk(directory: str, rel: str) -> None:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name != "__pycache__":
                    walk(entry.path, f"{rel}{entry.name}/")
            elif entry.name.endswith(".py"):
                st = entry.stat()
                h.update(f"{rel}{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0"
                         .encode())

    root = Path(__file__).resolve().parents[2]
    for pkg in ("codegen", "symgraph"):
        walk(str(root / pkg), f"{pkg}/")
    return h.hexdigest()


def _host_parts(opt_level: int, loop_unrolling: bool) -> tuple[str, ...]:
    return (
        f"format={CACHE_FORMAT}",
        f"symgraph={_package_version()}",
        *host_parts(),  # LLVM's build and the CPU, without mapping LLVM where it can
        f"opt={opt_level}",
        *(() if loop_unrolling else ("unroll=0",)),
    )


def program_key(signature: str, *, opt_level: int = 3, loop_unrolling: bool = True,
                extra: str = "") -> str:
    """sha256 hex key of a whole program: its graph ``signature``, the compiler's source
    (:func:`source_fingerprint`), numpy's and Python's versions (BLAS ABI, object layouts the
    trampoline reads, the metadata's ``marshal`` format), the host and the options."""
    import numpy

    h = hashlib.sha256()
    for part in (*_host_parts(opt_level, loop_unrolling), "kind=program",
                 f"source={source_fingerprint()}", f"numpy={numpy.__version__}",
                 f"python={sys.version}|{sys.implementation.cache_tag}|{sys.abiflags}",
                 f"extra={extra}"):
        h.update(part.encode())
        h.update(b"\0")
    h.update(signature.encode())
    return h.hexdigest()


def cache_key(ir_text: str, *, opt_level: int = 3, loop_unrolling: bool = True) -> str:
    """sha256 hex digest identifying the machine code ``ir_text`` compiles to on this host."""
    h = hashlib.sha256()
    for part in _host_parts(opt_level, loop_unrolling):
        h.update(part.encode())
        h.update(b"\0")
    h.update(ir_text.encode())
    return h.hexdigest()


def _with_stats(cm: CompiledModule, stats: dict[str, Any]) -> CompiledModule:
    # Same engine, code and symbol addresses; its own stats dict.
    new = CompiledModule(cm.object_code, stats, cm.optimized_ir, cm._engine)
    new._addresses = cm._addresses
    return new


def _write_atomic(path: Path, data: bytes) -> None:
    import tempfile  # only when writing: its imports cost a warm start ~3 ms

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    cache_limit.wrote(path.parent, len(data))


def _object_digest(key: str, code: bytes) -> bytes:
    """The checksum an object (or body index) file starts with: of its key too, so a file
    renamed to (or copied over) another key's name is refused instead of run as that
    program."""
    return hashlib.sha256(key.encode() + b"\0" + code).digest()


def compile_cached(ir_text: str, *, opt_level: int = 3, disk: bool = True,
                   loop_unrolling: bool = True) -> CompiledModule:
    """Like :func:`codegen.jit.compile_module`, through the memory and disk caches.

    ``stats["cache"]`` tells where the code came from: ``"memory"``, ``"disk"`` (stats then
    have ``read``/``load`` but no ``optimize``/``codegen``) or ``"miss"`` (compiled, then
    stored; ``store`` is the write time).  Disk errors (read-only dir, corrupt file) fall back
    to compiling.  Files are ``sha256(key, object code) + object code``, written atomically.
    """
    t0 = time.perf_counter()
    key = cache_key(ir_text, opt_level=opt_level, loop_unrolling=loop_unrolling)
    t_key = time.perf_counter() - t0
    hit = _memory.get(key)
    if hit is not None:
        return _with_stats(hit, {"cache": "memory", "key": t_key, "opt_level": opt_level})
    path = cache_dir() / (key + _SUFFIX)
    with _lock:
        hit = _memory.get(key)
        if hit is not None:
            return _with_stats(hit, {"cache": "memory", "key": t_key, "opt_level": opt_level})
        cm = None
        if disk:
            try:  # (no is_file() first: it raises for a name too long or a dir not searchable)
                t1 = time.perf_counter()
                blob = path.read_bytes()
                data = blob[32:]
                if _object_digest(key, data) != blob[:32]:
                    raise OSError(f"corrupt cache file {path}")
                cache_limit.touch(path)
                stats = {"cache": "disk", "key": t_key, "opt_level": opt_level}
                stats["read"] = time.perf_counter() - t1
                cm = jit.load_object(data, stats)
            except (OSError, RuntimeError):
                cm = None
        if cm is None:
            cm = jit.compile_module(ir_text, opt_level=opt_level, loop_unrolling=loop_unrolling)
            cm.stats.update(cache="miss", key=t_key)
            if disk:
                t2 = time.perf_counter()
                try:
                    code = cm.object_code
                    _write_atomic(path, _object_digest(key, code) + code)
                except OSError:
                    pass
                cm.stats["store"] = time.perf_counter() - t2
        _memory[key] = cm
        return cm


def compiling() -> threading.RLock:
    """The lock a compile or load holds (a fork waits for it): see :func:`_fork_handlers`."""
    return _lock


def body_key(symbol: str, header: str, *, opt_level: int = 3,
             loop_unrolling: bool = True) -> str:
    """Key of one kernel body's machine code: its ``symbol`` (named by its content,
    :func:`codegen.dedupe.content_name`), what of the module ``header`` the body depends on
    (attributes, the declarations of what it calls), the host and the options."""
    h = hashlib.sha256()
    for part in (*_host_parts(opt_level, loop_unrolling), "kind=body", header, symbol):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _read_checked(key: str, suffix: str) -> bytes | None:
    """What the file ``<key><suffix>`` holds after its checksum (:func:`_object_digest`), or
    ``None`` if it is absent, empty or corrupt."""
    path = cache_dir() / (key + suffix)
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    data = blob[32:]
    if not data or _object_digest(key, data) != blob[:32]:
        return None
    cache_limit.touch(path)
    return data


def read_object(key: str, *, disk: bool = True) -> bytes | None:
    """The object code stored under ``key`` (by :func:`store_object` or
    :func:`compile_cached`), or ``None``."""
    code = _objects.get(key)
    if code is None and disk:
        code = _read_checked(key, _SUFFIX)
        if code is not None:
            _objects[key] = code
    return code


def find_body(key: str, *, disk: bool = True) -> str | None:
    """The key of an object file that defines the body of :func:`body_key` ``key``."""
    found = _bodies.get(key)
    if found is None and disk:
        ref = _read_checked(key, _BODY_SUFFIX)
        if ref is not None:
            found = _bodies[key] = ref.decode("ascii", "replace")
    return found


def index_bodies(key: str, bodies: list[str], *, disk: bool = True) -> None:
    """Record object file ``key`` as the one defining each of ``bodies`` (:func:`body_key`
    keys), in memory and (atomically) on disk."""
    for body in bodies:
        _bodies[body] = key
    if not disk:
        return
    ref = key.encode("ascii")
    try:
        for body in bodies:
            _write_atomic(cache_dir() / (body + _BODY_SUFFIX), _object_digest(body, ref) + ref)
    except OSError:
        pass


def store_object(key: str, code: bytes, bodies: list[str] = (), *, disk: bool = True) -> None:
    """Keep object ``code`` under ``key`` and record it as the object defining each of
    ``bodies`` (:func:`index_bodies`), in memory and (atomically) on disk."""
    _objects[key] = code
    if disk:
        try:
            _write_atomic(cache_dir() / (key + _SUFFIX), _object_digest(key, code) + code)
        except OSError:
            disk = False  # (no file: no index file naming it; this process's index still may)
    index_bodies(key, list(bodies), disk=disk)


def load_program(key: str, *, disk: bool = True) -> tuple[CompiledModule, dict] | None:
    """The module and metadata stored under a :func:`program_key`, or ``None``.

    ``stats["cache"]`` is ``"memory"`` or ``"disk"`` (``read``, ``load``).  A file that is
    truncated, corrupt or of another format is ignored (the caller compiles and overwrites).
    """
    hit = _programs.get(key)
    if hit is not None:
        return _with_stats(hit[0], {"cache": "memory", "opt_level": hit[0].stats.get(
            "opt_level", 3)}), hit[1]
    if not disk:
        return None
    path = cache_dir() / (key + _PROGRAM_SUFFIX)
    t0 = time.perf_counter()
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    try:
        head = len(_PROGRAM_MAGIC)
        if blob[:head] != _PROGRAM_MAGIC or len(blob) < head + 40:
            raise ValueError("not a program cache file")
        body = blob[head + 32:]
        if hashlib.sha256(body).digest() != blob[head:head + 32]:
            raise ValueError("checksum mismatch")
        nmeta = int.from_bytes(body[:8], "little")
        meta = marshal.loads(body[8:8 + nmeta])
        code = body[8 + nmeta:]
        if not isinstance(meta, dict) or meta.get("key") != key or not code:
            raise ValueError("metadata does not match the key")
        cache_limit.touch(path)
        stats = {"cache": "disk", "opt_level": meta.get("opt_level", 3),
                 "read": time.perf_counter() - t0}
        with _lock:
            cm = jit.load_object(bytes(code), stats)
    except (ValueError, EOFError, TypeError, RuntimeError, OSError):
        return None
    _programs[key] = (cm, meta)
    return cm, meta


def store_program(key: str, cm: CompiledModule, meta: dict, *, disk: bool = True) -> None:
    """Keep ``cm`` and ``meta`` (dicts, lists, str, int, bool) under ``key``, in memory and
    (atomically) on disk.  Disk errors are ignored: the cache is an optimisation."""
    meta = dict(meta, key=key, opt_level=cm.stats.get("opt_level", 3))
    _programs[key] = (cm, meta)
    if not disk:
        return
    data = marshal.dumps(meta)  # no import cost, unlike json; the key pins Python's version
    body = len(data).to_bytes(8, "little") + data + cm.object_code
    try:
        _write_atomic(cache_dir() / (key + _PROGRAM_SUFFIX),
                      _PROGRAM_MAGIC + hashlib.sha256(body).digest() + body)
    except OSError:
        pass


def _facts_path() -> Path:
    fingerprint = hashlib.sha256(
        f"{CACHE_FORMAT}|{source_fingerprint()}|{sys.version}".encode()).hexdigest()
    return cache_dir() / f"facts-{fingerprint[:40]}{_FACTS_SUFFIX}"


def load_facts() -> dict | None:
    """The dict :func:`store_facts` stored for this compiler source (and Python), or None.

    What it holds is the caller's (:mod:`codegen.registry`: its lowering records' flags);
    keyed by :func:`source_fingerprint`, so an edit of the compiler makes it unreachable."""
    path = _facts_path()
    try:
        blob = path.read_bytes()
        if hashlib.sha256(blob[32:]).digest() != blob[:32]:
            return None  # (a flipped flag made every later compile fail: the caller rewrites)
        data = marshal.loads(blob[32:])
    except (OSError, ValueError, EOFError, TypeError):
        return None
    cache_limit.touch(path)
    return data if isinstance(data, dict) else None


def store_facts(data: dict) -> None:
    """Keep ``data`` (dicts, tuples, str, bool, None) for :func:`load_facts`; disk errors are
    ignored, like the rest of the cache's."""
    try:
        blob = marshal.dumps(data)
        _write_atomic(_facts_path(), hashlib.sha256(blob).digest() + blob)
    except (OSError, ValueError):
        pass


def clear_cache(memory: bool = True, disk: bool = True) -> None:
    """Forget in-memory modules and programs (already returned ones stay valid) and/or delete
    the cache's files (object code, programs, leftover temporary files; nothing of another
    name, :func:`codegen.native.cache_limit.ours`)."""
    if memory:
        with _lock:
            _memory.clear()
            _programs.clear()
            _objects.clear()
            _bodies.clear()
    if disk:
        d = cache_dir()
        if d.is_dir():
            for p in d.iterdir():
                if cache_limit.ours(p.name) and p.is_file():
                    try:
                        p.unlink()
                    except FileNotFoundError:
                        pass
