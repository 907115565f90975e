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
warm start never pays and a compile pays rarely.  Sizes are what the files take on disk
(``st_blocks``: a 96-byte index file holds a 4 KiB block).  A file removed under another
process costs it a recompile at most: every reader treats a missing file as a miss.
"""

from __future__ import annotations

import functools
import math
import os
import re
import time
import warnings
from pathlib import Path

__all__ = ["CACHE_FILE", "DEFAULT_MAX_BYTES", "KEEP_FRACTION", "MARKER", "TEMPORARY_FILE",
           "TRIM_INTERVAL", "disk_bytes", "max_bytes", "ours", "touch", "trim", "wrote"]

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
#: (compiled on first use, :func:`_names`: the two cost ~0.65 ms of every warm start here)
CACHE_FILE = r"[0-9a-f]{64}\.(?:o|sgp|sgb)|facts-[0-9a-f]{40}\.sgf"
TEMPORARY_FILE = r"\.tmp-[a-z0-9_]{8}\.o"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

#: directory -> bytes this process wrote there since its last trim (no lock: threads racing
#: on it only blur an estimate, and a lock here would need its own fork handling)
_written: dict[str, int] = {}
_warned: set[str] = set()


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
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"SYMGRAPH_CACHE_MAX_BYTES={os.environ['SYMGRAPH_CACHE_MAX_BYTES']!r}"
                         ": expected a size in bytes such as 1073741824, 500M or 2G")
    return None if value == 0 else max(1, int(value))


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
    except ValueError as exc:  # a compile must not fail for it: said once, then the default
        if str(exc) not in _warned:
            _warned.add(str(exc))
            warnings.warn(f"{exc}; the cache keeps the default limit of 1 GiB",
                          RuntimeWarning, stacklevel=2)
        limit = DEFAULT_MAX_BYTES
    if limit is None:
        return
    key = str(directory)
    _written[key] = written = _written.get(key, 0) + nbytes
    marker = directory / MARKER
    try:
        due = time.time() - marker.stat().st_mtime > TRIM_INTERVAL
    except OSError:
        due = True  # never trimmed
    if not due and written <= TRIM_SHARE * limit:
        return
    _written[key] = 0
    try:
        marker.touch()
        trim(directory, limit)
    except Exception:  # noqa: BLE001  (housekeeping: whatever fails, the write stands)
        pass


@functools.cache
def _names() -> tuple[re.Pattern, re.Pattern]:
    """:data:`CACHE_FILE` and :data:`TEMPORARY_FILE`, compiled."""
    return re.compile(CACHE_FILE), re.compile(TEMPORARY_FILE)


def ours(name: str) -> bool:
    """Is ``name`` one the cache gives its files (cache, temporary or marker files)?"""
    cache_file, temporary_file = _names()
    return bool(cache_file.fullmatch(name) or temporary_file.fullmatch(name)) or name == MARKER


def trim(directory: Path, limit: int) -> dict[str, int]:
    """Remove the least recently used cache files of ``directory`` (:data:`CACHE_FILE`) until
    they hold at most ``KEEP_FRACTION * limit`` bytes, and temporary files
    (:data:`TEMPORARY_FILE`) older than :data:`TEMP_AGE`.  Returns ``removed`` (files),
    ``freed`` and ``kept`` (bytes).  Other files are never touched."""
    now = time.time()
    files, removed, freed = [], 0, 0
    cache_file, temporary_file = _names()
    with os.scandir(directory) as it:
        for entry in it:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # (removed meanwhile)
            if temporary_file.fullmatch(entry.name):
                if now - st.st_mtime > TEMP_AGE and _remove(entry.path):
                    removed, freed = removed + 1, freed + disk_bytes(st)
            elif cache_file.fullmatch(entry.name):
                files.append((st.st_mtime, disk_bytes(st), entry.path))
    total = sum(size for _, size, _ in files)
    goal = KEEP_FRACTION * limit
    if total > limit:
        for _, size, path in sorted(files):
            if total <= goal:
                break
            gone = _remove(path)
            if gone is not None:  # (gone under another trim: its bytes are free all the same)
                total -= size
            if gone:
                removed, freed = removed + 1, freed + size
    return {"removed": removed, "freed": freed, "kept": total}


def disk_bytes(st: os.stat_result) -> int:
    """What a file takes on disk: its blocks where the system reports them, else its size."""
    blocks = getattr(st, "st_blocks", None)
    return blocks * 512 if blocks is not None else st.st_size


def _remove(path: str) -> bool | None:
    """True if this call removed ``path``, False if it was gone already, None if it stays."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return None
