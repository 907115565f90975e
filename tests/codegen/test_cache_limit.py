"""The disk cache's size limit (``codegen.native.cache_limit``): least recently used files
go first, reads count as use, writes trim when due, and a removed file is only a miss."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import symgraph as sg
from codegen import partition
from codegen.native import cache, cache_limit

HOUR = 3600.0


def _name(i: int, suffix: str = ".o") -> str:
    """A name of the cache's own (``cache_limit.CACHE_FILE``)."""
    return f"{i:064x}{suffix}"


def _file(path, size: int, age: float):
    path.write_bytes(b"x" * size)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def _total(directory) -> int:
    return sum(p.stat().st_size for p in directory.iterdir()
               if cache_limit.CACHE_FILE.fullmatch(p.name))


@pytest.mark.parametrize("text, want", [
    ("", cache_limit.DEFAULT_MAX_BYTES), ("0", None), ("123456", 123456),
    ("500M", 500 << 20), ("2g", 2 << 30), ("1.5K", 1536), ("2GB", 2 << 30)])
def test_the_limit_reads_sizes_with_units(monkeypatch, text, want):
    monkeypatch.setenv("SYMGRAPH_CACHE_MAX_BYTES", text)
    assert cache_limit.max_bytes() == want


@pytest.mark.parametrize("text", ["lots", "-1", "12Q"])
def test_an_unreadable_limit_is_named(monkeypatch, text):
    monkeypatch.setenv("SYMGRAPH_CACHE_MAX_BYTES", text)
    with pytest.raises(ValueError, match="SYMGRAPH_CACHE_MAX_BYTES"):
        cache_limit.max_bytes()


def test_trim_removes_the_least_recently_used_first(tmp_path):
    a, b, c, d = _name(1), _name(2, ".sgp"), _name(3, ".sgb"), f"facts-{'e' * 40}.sgf"
    for name, age in {a: 50, b: 40, c: 30, d: 20}.items():  # a used longest ago
        _file(tmp_path / name, 1000, age)
    # not the cache's (a user's object file, notes), however old: never removed
    others = [_file(tmp_path / "main.o", 5000, 100), _file(tmp_path / "notes.txt", 5000, 100)]
    stale = _file(tmp_path / ".tmp-k3j_x9a2.o", 300, 2 * HOUR)  # a dead writer's leftover
    fresh = _file(tmp_path / ".tmp-q8w7e6r5.o", 300, 1)  # a write in progress
    got = cache_limit.trim(tmp_path, limit=3000)
    # 4000 > 3000: down to 0.8 * 3000 = 2400, oldest first: a (-> 3000), b (-> 2000)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [c, d, *(p.name for p in others), fresh.name])
    assert not stale.exists()
    assert got == {"removed": 3, "freed": 2300, "kept": 2000}


def test_under_the_limit_nothing_goes(tmp_path):
    for i in range(4):
        _file(tmp_path / _name(i), 1000, 10 * i)
    assert cache_limit.trim(tmp_path, limit=4000)["removed"] == 0
    assert len(list(tmp_path.iterdir())) == 4


def test_reading_a_file_counts_as_using_it(cache_env):
    key = "ab" * 32
    cache.store_object(key, b"object code")
    path = cache_env / f"{key}.o"
    then = time.time() - HOUR
    os.utime(path, (then, then))
    cache.clear_cache(memory=True, disk=False)
    assert cache.read_object(key) == b"object code"
    assert time.time() - path.stat().st_mtime < 60


def test_a_write_trims_when_due_and_not_before(cache_env, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_MAX_BYTES", "100000")  # a share is 5,000 bytes
    cache_env.mkdir(parents=True)
    old = [_file(cache_env / _name(i), 30000, HOUR - i) for i in range(4)]  # [0] oldest
    cache.store_object("01" * 32, b"new" * 30)  # never trimmed here: due
    assert [p.exists() for p in old] == [False, False, True, True]  # 120k -> <= 80k
    assert (cache_env / f"{'01' * 32}.o").exists()
    more = [_file(cache_env / _name(10 + i), 30000, 2 * HOUR) for i in range(2)]
    cache.store_object("02" * 32, b"new" * 30)  # trimmed a moment ago, 200 bytes since
    assert all(p.exists() for p in more) and _total(cache_env) > 100000
    then = time.time() - cache_limit.TRIM_INTERVAL - 1
    os.utime(cache_env / ".trimmed", (then, then))  # ten minutes later
    cache.store_object("03" * 32, b"new" * 30)
    assert not any(p.exists() for p in more) and _total(cache_env) <= 80000


def test_no_limit_keeps_everything(cache_env, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_MAX_BYTES", "0")
    cache_env.mkdir(parents=True)
    big = _file(cache_env / _name(5), 1 << 20, HOUR)
    cache.store_object("04" * 32, b"code")
    assert big.exists() and not (cache_env / ".trimmed").exists()


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
