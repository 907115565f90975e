"""The disk cache's size limit: least recently used files go first.

Why: every new graph, shape signature and compiler version adds files to the cache
(``codegen.native.cache``), and nothing ever removed them; a sweep over model sizes or a few
months of edits grow it without bound.  As ccache does, the cache is trimmed to
``SYMGRAPH_CACHE_MAX_BYTES`` (default 1 GiB; ``0`` for no limit; ``500M``, ``2G`` accepted),
oldest use first, down to :data:`KEEP_FRACTION` of the limit so the next trim is far off.

"Use" is a file's modification time: the cache bumps it whenever it reads a file from disk
(:func:`touch`; access times are often not kept, ``noatime``/``relatime``).  Trimming runs
after a write, at most once per :data:`TRIM_INTERVAL` seconds across processes (the mtime of
the cache's ``.trimmed`` file says when it last ran), or sooner once this process alone has
written :data:`TRIM_SHARE` of the limit: a scan stats every file (~2 ms a thousand), which a
warm start never pays and a compile pays rarely.  A file removed under another process costs
it a recompile at most: every reader treats a missing file as a miss.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

__all__ = ["CACHE_FILE", "DEFAULT_MAX_BYTES", "KEEP_FRACTION", "MARKER", "TEMPORARY_FILE",
           "TRIM_INTERVAL", "max_bytes", "ours", "touch", "trim", "wrote"]

DEFAULT_MAX_BYTES = 1 << 30
#: a trim removes files until the cache holds at most this fraction of the limit
KEEP_FRACTION = 0.8
#: seconds between two trims of one cache directory (any process), unless one process wrote
#: more than TRIM_SHARE of the limit since its last trim
TRIM_INTERVAL = 600.0
TRIM_SHARE = 0.05
#: a leftover temporary file (a writer died between creating and renaming it) older than
#: this many seconds is removed by a trim
TEMP_AGE = 3600.0
#: the file whose mtime says when a trim last ran
MARKER = ".trimmed"
#: the names ``codegen.native.cache`` gives its files (object code, programs, kernel-body
#: index, facts) and its temporary files (``tempfile.mkstemp``): a trim removes nothing else,
#: should ``SYMGRAPH_CACHE_DIR`` name a directory that holds other files too
CACHE_FILE = re.compile(r"[0-9a-f]{64}\.(?:o|sgp|sgb)|facts-[0-9a-f]{40}\.sgf")
TEMPORARY_FILE = re.compile(r"\.tmp-[a-z0-9_]{8}\.o")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

_lock = threading.Lock()
_written: dict[str, int] = {}  # directory -> bytes this process wrote there since its trim


def max_bytes() -> int | None:
    """The limit from ``SYMGRAPH_CACHE_MAX_BYTES`` (bytes, or with a K/M/G/T suffix), or
    :data:`DEFAULT_MAX_BYTES`; None for no limit (``0``).  An unreadable value raises
    ``ValueError`` naming the variable."""
    text = os.environ.get("SYMGRAPH_CACHE_MAX_BYTES", "").strip().upper().removesuffix("B")
    if not text:
        return DEFAULT_MAX_BYTES
    unit = text[-1] if text[-1] in _UNITS else ""
    try:
        value = float(text[:len(text) - len(unit)]) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"SYMGRAPH_CACHE_MAX_BYTES={os.environ['SYMGRAPH_CACHE_MAX_BYTES']!r}"
                         ": expected a size in bytes such as 1073741824, 500M or 2G") from None
    if value < 0:
        raise ValueError("SYMGRAPH_CACHE_MAX_BYTES must not be negative")
    return int(value) or None


def touch(path: Path) -> None:
    """Mark ``path`` as used now (a read-only cache just keeps its times)."""
    try:
        os.utime(path)
    except OSError:
        pass


def wrote(directory: Path, nbytes: int) -> None:
    """Account a file of ``nbytes`` written into ``directory`` and trim it if it is due (see
    the module docstring).  Errors are ignored: the limit is housekeeping."""
    try:
        limit = max_bytes()
    except ValueError:
        limit = DEFAULT_MAX_BYTES  # (reported where the value is read for a user: none yet)
    if limit is None:
        return
    key = str(directory)
    with _lock:
        _written[key] = written = _written.get(key, 0) + nbytes
    marker = directory / MARKER
    try:
        due = time.time() - marker.stat().st_mtime > TRIM_INTERVAL
    except OSError:
        due = True  # never trimmed
    if not due and written <= TRIM_SHARE * limit:
        return
    with _lock:
        _written[key] = 0
    try:
        marker.touch()
        trim(directory, limit)
    except OSError:
        pass


def ours(name: str) -> bool:
    """Is ``name`` one the cache gives its files (cache, temporary or marker files)?"""
    return bool(CACHE_FILE.fullmatch(name) or TEMPORARY_FILE.fullmatch(name)) or name == MARKER


def trim(directory: Path, limit: int) -> dict[str, int]:
    """Remove the least recently used cache files of ``directory`` (:data:`CACHE_FILE`) until
    they hold at most ``KEEP_FRACTION * limit`` bytes, and temporary files
    (:data:`TEMPORARY_FILE`) older than :data:`TEMP_AGE`.  Returns ``removed`` (files),
    ``freed`` and ``kept`` (bytes).  Other files are never touched."""
    now = time.time()
    files, removed, freed = [], 0, 0
    with os.scandir(directory) as it:
        for entry in it:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # (removed meanwhile)
            if TEMPORARY_FILE.fullmatch(entry.name):
                if now - st.st_mtime > TEMP_AGE and _remove(entry.path):
                    removed, freed = removed + 1, freed + st.st_size
            elif CACHE_FILE.fullmatch(entry.name):
                files.append((st.st_mtime, st.st_size, entry.path))
    total = sum(size for _, size, _ in files)
    goal = KEEP_FRACTION * limit
    if total > limit:
        for _, size, path in sorted(files):
            if total <= goal:
                break
            if _remove(path):
                total -= size
                removed, freed = removed + 1, freed + size
    return {"removed": removed, "freed": freed, "kept": total}


def _remove(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:  # (another process's trim took it, or it may not be removed)
        return False
