"""The disk cache's size limit (``codegen.native.cache_limit``): least recently used files
go first, reads count as use, writes trim when due, and a removed file is only a miss."""

from __future__ import annotations

import os
import re
import time
import warnings

import numpy as np
import pytest

import symgraph as sg
from codegen import partition
from codegen.native import cache, cache_limit

HOUR = 3600.0
KERNEL_IR = """
define i32 @add_one(i32 %x) {
  %y = add i32 %x, 1
  ret i32 %y
}
"""


def _name(i: int, suffix: str = ".o") -> str:
    """A name of the cache's own (``cache_limit.CACHE_FILE``)."""
    return f"{i:064x}{suffix}"


def _file(path, size: int, age: float):
    path.write_bytes(b"x" * size)
    _age(path, age)
    return path


def _age(path, age: float) -> None:
    then = time.time() - age
    os.utime(path, (then, then))


def _used(path) -> int:
    return cache_limit.disk_bytes(os.stat(path))


def _total(directory) -> int:
    return sum(_used(p) for p in directory.iterdir()
               if re.fullmatch(cache_limit.CACHE_FILE, p.name))


def _recent(path) -> bool:
    return time.time() - path.stat().st_mtime < 60


@pytest.mark.parametrize("text, want", [
    ("", cache_limit.DEFAULT_MAX_BYTES), ("0", None), ("123456", 123456),
    ("500M", 500 << 20), ("2g", 2 << 30), ("1.5K", 1536), ("2GB", 2 << 30)])
def test_the_limit_reads_sizes_with_units(monkeypatch, text, want):
    monkeypatch.setenv("SYMGRAPH_CACHE_MAX_BYTES", text)
    assert cache_limit.max_bytes() == want


@pytest.mark.parametrize("text", ["lots", "-1", "12Q", "inf", "1e400", "nan"])
def test_an_unreadable_limit_is_named(monkeypatch, text):
    monkeypatch.setenv("SYMGRAPH_CACHE_MAX_BYTES", text)
    with pytest.raises(ValueError, match="SYMGRAPH_CACHE_MAX_BYTES"):
        cache_limit.max_bytes()


def test_trim_removes_the_least_recently_used_first(tmp_path):
    a, b, c, d = _name(1), _name(2, ".sgp"), _name(3, ".sgb"), f"facts-{'e' * 40}.sgf"
    for name, age in {a: 50, b: 40, c: 30, d: 20}.items():  # a used longest ago
        _file(tmp_path / name, 8192, age)
    # not the cache's (a user's object file, notes), however old: never removed
    others = [_file(tmp_path / "main.o", 50000, 100), _file(tmp_path / "notes.txt", 50000, 100)]
    stale = _file(tmp_path / ".tmp-k3j_x9a2.o", 300, 2 * HOUR)  # a dead writer's leftover
    fresh = _file(tmp_path / ".tmp-q8w7e6r5.o", 300, 1)  # a write in progress
    sizes = {n: _used(tmp_path / n) for n in (a, b, c, d, stale.name)}
    total = sum(sizes[n] for n in (a, b, c, d))
    got = cache_limit.trim(tmp_path, limit=int(0.75 * total))
    # over the limit: down to 0.8 * 0.75 = 60% of it, oldest first: a (75% left), b (50%)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [c, d, *(p.name for p in others), fresh.name])
    assert got == {"removed": 3, "freed": sizes[a] + sizes[b] + sizes[stale.name],
                   "kept": sizes[c] + sizes[d]}


def test_a_file_another_trim_took_still_counts_as_gone(tmp_path, monkeypatch):
    for i in range(4):  # 0 oldest
        _file(tmp_path / _name(i), 8192, 50 - i)
    total = _total(tmp_path)
    unlink = os.unlink

    def raced(path):  # another process removed the oldest file just before this trim
        unlink(path)
        if path.endswith(_name(0)):
            raise FileNotFoundError(path)

    monkeypatch.setattr(cache_limit.os, "unlink", raced)
    got = cache_limit.trim(tmp_path, limit=int(0.75 * total))
    assert sorted(p.name for p in tmp_path.iterdir()) == [_name(2), _name(3)]
    assert got["removed"] == 1  # (this trim removed one; the other was gone already)


def test_under_the_limit_nothing_goes(tmp_path):
    for i in range(4):
        _file(tmp_path / _name(i), 1000, 10 * i)
    assert cache_limit.trim(tmp_path, limit=_total(tmp_path))["removed"] == 0
    assert len(list(tmp_path.iterdir())) == 4


def test_every_disk_read_counts_as_a_use(cache_env):
    """Object files (by key and by IR text), programs and the facts snapshot."""
    def build():
        x = sg.tensor("x", (3,), "float32")
        return sg.function([x], x * 2)

    key = "ab" * 32
    cache.store_object(key, b"object code")
    cache.compile_cached(KERNEL_IR)
    build()
    cache.store_facts({"facts": 1})  # (after the build, which may store its own)
    files = [p for p in cache_env.iterdir() if re.fullmatch(cache_limit.CACHE_FILE, p.name)]
    assert {p.suffix for p in files} >= {".o", ".sgp", ".sgf"}
    for p in files:
        _age(p, HOUR)
    cache.clear_cache(memory=True, disk=False)
    assert cache.read_object(key) == b"object code"
    assert cache.compile_cached(KERNEL_IR).stats["cache"] == "disk"
    assert cache.load_facts() == {"facts": 1}
    assert build().compile_stats["lowered"] is False  # the program, from its file
    read = [cache_env / f"{key}.o", cache_env / f"{cache.cache_key(KERNEL_IR)}.o",
            *cache_env.glob("*.sgp"), *cache_env.glob("*.sgf")]
    assert len(read) == 4 and all(_recent(p) for p in read), [
        (p.name, time.time() - p.stat().st_mtime) for p in read]


def test_a_write_trims_when_due_and_not_before(cache_env, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_MAX_BYTES", "200000")  # a share is 10,000 bytes
    cache_env.mkdir(parents=True)
    old = [_file(cache_env / _name(i), 60000, HOUR - i) for i in range(4)]  # [0] oldest
    cache.store_object("01" * 32, b"new" * 30)  # never trimmed here: due
    assert [p.exists() for p in old] == [False, False, True, True]  # 240k -> <= 160k
    assert (cache_env / f"{'01' * 32}.o").exists()
    more = [_file(cache_env / _name(10 + i), 60000, 2 * HOUR) for i in range(2)]
    cache.store_object("02" * 32, b"new" * 30)  # trimmed a moment ago, little written since
    assert all(p.exists() for p in more) and _total(cache_env) > 200000
    then = time.time() - cache_limit.TRIM_INTERVAL - 1
    os.utime(cache_env / ".trimmed", (then, then))  # ten minutes later
    cache.store_object("03" * 32, b"new" * 30)
    assert not any(p.exists() for p in more) and _total(cache_env) <= 160000


def test_a_process_that_wrote_a_share_trims_before_the_interval(cache_env, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_MAX_BYTES", "200000")
    cache_env.mkdir(parents=True)
    cache.store_object("05" * 32, b"first")  # the trim of this process's first write
    old = [_file(cache_env / _name(20 + i), 60000, HOUR) for i in range(4)]
    cache.store_object("06" * 32, b"x" * 4000)  # 4 KB since: under a share, not due
    assert all(p.exists() for p in old)
    cache.store_object("07" * 32, b"x" * 8000)  # 12 KB since: over 5% of 200 KB
    assert not all(p.exists() for p in old) and _total(cache_env) <= 160000


def test_no_limit_keeps_everything(cache_env, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_MAX_BYTES", "0")
    cache_env.mkdir(parents=True)
    big = _file(cache_env / _name(5), 1 << 20, HOUR)
    cache.store_object("04" * 32, b"code")
    assert big.exists() and not (cache_env / ".trimmed").exists()


def test_an_unreadable_limit_warns_once_and_keeps_the_default(cache_env, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_MAX_BYTES", "1e400")
    monkeypatch.setattr(cache_limit, "_warned", set())
    with pytest.warns(RuntimeWarning, match="SYMGRAPH_CACHE_MAX_BYTES='1e400'.*1 GiB"):
        x = sg.tensor("x", (3,), "float32")
        f = sg.function([x], x + 2)
    np.testing.assert_array_equal(f(np.ones(3, "float32")), np.full(3, 3, "float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.store_object("08" * 32, b"code")  # said once
    assert (cache_env / ".trimmed").exists()  # the default limit applies


def test_clear_cache_removes_only_the_caches_files(cache_env):
    cache.store_object("09" * 32, b"code")
    mine = [_file(cache_env / "main.o", 100, 0), _file(cache_env / "notes.txt", 100, 0)]
    cache.clear_cache()
    assert sorted(p.name for p in cache_env.iterdir()) == ["main.o", "notes.txt"]
    assert all(p.exists() for p in mine)


def test_a_trimmed_program_is_compiled_again(cache_env, monkeypatch):
    monkeypatch.setattr(partition, "MIN_SPLIT_LINES", 0)  # kernel bodies: the .sgb index too

    def build():
        x = sg.tensor("x", ("n", 3), "float32")
        return sg.function([x], sg.exp(x) @ np.ones((3, 2), "float32"))

    x = np.linspace(-1, 1, 12, dtype="float32").reshape(4, 3)
    want = np.exp(x.astype(np.float64)) @ np.ones((3, 2))
    np.testing.assert_allclose(build()(x), want, rtol=1e-5)
    cache.store_facts({"facts": "stored once a process: write them here too"})
    kinds = {p.suffix for p in cache_env.iterdir()}
    assert {".o", ".sgp", ".sgb", ".sgf"} <= kinds, kinds
    cache_limit.trim(cache_env, limit=1)  # every file the cache wrote goes: its names all match
    assert [p.name for p in cache_env.iterdir()] == [".trimmed"]
    cache.clear_cache(memory=True, disk=False)
    f = build()
    assert f.compile_stats["lowered"] is True
    np.testing.assert_allclose(f(x), want, rtol=1e-5)
