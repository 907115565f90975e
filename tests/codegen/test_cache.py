"""codegen.cache: memory and disk caches, cross-process reuse, invalidation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codegen import blas, cache, vecmath

ROOT = Path(__file__).resolve().parents[2]

# A kernel using both external libraries: C = exp(A @ B) for 4x4 float32 matrices, so a disk
# hit in a new process proves BLAS and libmvec symbols are re-resolved by name.
KERNEL_IR = f"""
define void @k(ptr noalias %a, ptr noalias %b, ptr noalias %c) #0 {{
entry:
  {blas.gemm_call("float32", a="%a", b="%b", c="%c", m=4, n=4, k=4)}
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
  %p = getelementptr inbounds float, ptr %c, i64 %i
  %v = load float, ptr %p
  {vecmath.math_call("exp", "float32", "%v", "%r")}
  store float %r, ptr %p
  %i1 = add i64 %i, 1
  %d = icmp eq i64 %i1, 16
  br i1 %d, label %exit, label %loop
exit:
  ret void
}}
attributes #0 = {{ nounwind }}
{blas.blas_declarations()}
{vecmath.math_declarations({("exp", "float32")})}
"""

CHILD = """
import ctypes, json, sys
import numpy as np
from codegen import cache
ir = sys.stdin.read()
cm = cache.compile_cached(ir)
a = np.arange(16, dtype=np.float32).reshape(4, 4) / 40
b = np.eye(4, dtype=np.float32) + 0.25
c = np.empty((4, 4), np.float32)
ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 3)(cm.address("k"))(
    a.ctypes.data, b.ctypes.data, c.ctypes.data)
ref = np.exp(a.astype(np.float64) @ b)
print(json.dumps({"stats": sorted(cm.stats), "cache": cm.stats["cache"],
                  "err": float(np.abs(c - ref).max() / np.abs(ref).max()), "c": c.tolist()}))
"""


@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    cache.clear_cache(memory=True, disk=False)
    yield tmp_path / "cache"
    cache.clear_cache(memory=True, disk=False)


def _child(ir: str, cache_dir: Path) -> dict:
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", CHILD], input=ir, env=env, capture_output=True, text=True,
        check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("SYMGRAPH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "symgraph"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_dir() == Path.home() / ".cache" / "symgraph"
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path / "own"))
    assert cache.cache_dir() == tmp_path / "own"


def test_second_process_loads_from_disk(cache_env):
    first = _child(KERNEL_IR, cache_env)
    assert first["cache"] == "miss" and "optimize" in first["stats"]
    assert first["err"] < 1e-6
    files = list(cache_env.glob("*.o"))
    assert len(files) == 1 and not list(cache_env.glob(".tmp-*"))
    second = _child(KERNEL_IR, cache_env)
    assert second["cache"] == "disk"
    assert "optimize" not in second["stats"] and "codegen" not in second["stats"]
    assert second["c"] == first["c"]


def test_memory_hit_changed_ir_and_clear(cache_env):
    cm1 = cache.compile_cached(KERNEL_IR)
    assert cm1.stats["cache"] == "miss"
    cm2 = cache.compile_cached(KERNEL_IR)
    assert cm2.stats["cache"] == "memory" and cm2.address("k") == cm1.address("k")
    changed = KERNEL_IR.replace("icmp eq i64 %i1, 16", "icmp eq i64 %i1, 8")
    assert cache.compile_cached(changed).stats["cache"] == "miss"
    assert cache.compile_cached(KERNEL_IR, opt_level=2).stats["cache"] == "miss"
    assert len(list(cache_env.glob("*.o"))) == 3
    cache.clear_cache(memory=True, disk=False)
    assert cache.compile_cached(KERNEL_IR).stats["cache"] == "disk"
    cache.clear_cache()
    assert not list(cache_env.glob("*.o"))
    assert cache.compile_cached(KERNEL_IR).stats["cache"] == "miss"
    cm1.address("k")  # modules handed out earlier stay usable


def test_key_and_corrupt_file(cache_env):
    key = cache.cache_key(KERNEL_IR)
    assert key == cache.cache_key(KERNEL_IR) != cache.cache_key(KERNEL_IR, opt_level=1)
    assert key != cache.cache_key(KERNEL_IR + "\n")
    cache.compile_cached(KERNEL_IR)
    path = cache_env / f"{key}.o"
    path.write_bytes(path.read_bytes()[:100])  # truncated: must recompile, not crash
    cache.clear_cache(memory=True, disk=False)
    cm = cache.compile_cached(KERNEL_IR)
    assert cm.stats["cache"] == "miss"
