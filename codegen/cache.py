"""Compile cache: skip LLVM entirely for IR that was compiled before.

Why: an O3 compile of a real graph takes 0.5-1.6 s, loading its object code 3 ms (llvm-notes
section 5).  Compiled modules are kept in memory for this process and their object code on disk
(``$SYMGRAPH_CACHE_DIR``, else ``$XDG_CACHE_HOME/symgraph``, else ``~/.cache/symgraph``) for the
next one.  The key covers everything that changes the machine code: the IR text, our version,
llvmlite and LLVM versions, target triple, CPU name and feature string, and the opt level.
Object code never contains raw addresses of external functions (BLAS, libm, libmvec are bound
by name when loading), so it is valid in any process on the same machine type.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .jit import CompiledModule

__all__ = ["CACHE_FORMAT", "cache_dir", "cache_key", "clear_cache", "compile_cached"]

#: Bump when the meaning of cached object code changes (ABI of generated code, binding scheme).
CACHE_FORMAT = 1
_SUFFIX = ".o"

_memory: dict[str, CompiledModule] = {}
_lock = threading.Lock()


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


def cache_key(ir_text: str, *, opt_level: int = 3, loop_unrolling: bool = True) -> str:
    """sha256 hex digest identifying the machine code ``ir_text`` compiles to on this host."""
    from .jit import host_target

    host = host_target()
    h = hashlib.sha256()
    for part in (
        f"format={CACHE_FORMAT}",
        f"symgraph={_package_version()}",
        f"llvmlite={host.llvmlite_version}",
        f"llvm={'.'.join(map(str, host.llvm_version))}",
        f"triple={host.triple}",
        f"cpu={host.cpu}",
        f"features={host.features}",
        f"opt={opt_level}",
        *(() if loop_unrolling else ("unroll=0",)),
    ):
        h.update(part.encode())
        h.update(b"\0")
    h.update(ir_text.encode())
    return h.hexdigest()


def _with_stats(cm: CompiledModule, stats: dict[str, Any]) -> CompiledModule:
    # Same engine and code, own stats dict.
    return dataclasses.replace(cm, stats=stats)


def _write_atomic(path: Path, data: bytes) -> None:
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


def compile_cached(ir_text: str, *, opt_level: int = 3, disk: bool = True,
                   loop_unrolling: bool = True) -> CompiledModule:
    """Like :func:`codegen.jit.compile_module`, through the memory and disk caches.

    ``stats["cache"]`` tells where the code came from: ``"memory"``, ``"disk"`` (stats then
    have ``read``/``load`` but no ``optimize``/``codegen``) or ``"miss"`` (compiled, then
    stored; ``store`` is the write time).  Disk errors (read-only dir, corrupt file) fall back
    to compiling.  Files are ``sha256(object code) + object code``, written atomically.
    """
    from .jit import compile_module, load_object

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
        if disk and path.is_file():
            try:
                t1 = time.perf_counter()
                blob = path.read_bytes()
                data = blob[32:]
                if hashlib.sha256(data).digest() != blob[:32]:
                    raise OSError(f"corrupt cache file {path}")
                stats = {"cache": "disk", "key": t_key, "opt_level": opt_level}
                stats["read"] = time.perf_counter() - t1
                cm = load_object(data, stats)
            except (OSError, RuntimeError):
                cm = None
        if cm is None:
            cm = compile_module(ir_text, opt_level=opt_level, loop_unrolling=loop_unrolling)
            cm.stats.update(cache="miss", key=t_key)
            if disk:
                t2 = time.perf_counter()
                try:
                    code = cm.object_code
                    _write_atomic(path, hashlib.sha256(code).digest() + code)
                except OSError:
                    pass
                cm.stats["store"] = time.perf_counter() - t2
        _memory[key] = cm
        return cm


def clear_cache(memory: bool = True, disk: bool = True) -> None:
    """Forget in-memory modules (already returned ones stay valid) and/or delete cached files."""
    if memory:
        with _lock:
            _memory.clear()
    if disk:
        d = cache_dir()
        if d.is_dir():
            for p in d.iterdir():
                if p.suffix == _SUFFIX and p.is_file():
                    try:
                        p.unlink()
                    except FileNotFoundError:
                        pass
