"""Small IR builders, a fresh-process runner and a BLAS thread count shared by the codegen
tests."""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
from pathlib import Path

from codegen.native import blas

ROOT = str(Path(__file__).resolve().parents[2])

IR_TYPE = {"float32": "float", "float64": "double"}


def loop_ir(fn: str, ty: str, nin: int, body: str, attrs: str = "") -> str:
    """``void @fn(ptr out, ptr x0.., i64 n)``: for each i, load ``%v0..`` and store ``%r``."""
    params = ", ".join(f"ptr noalias %x{k}" for k in range(nin))
    loads = "\n".join(
        f"  %p{k} = getelementptr inbounds {ty}, ptr %x{k}, i64 %i\n  %v{k} = load {ty}, ptr %p{k}"
        for k in range(nin)
    )
    return f"""
define void @{fn}(ptr noalias %out, {params}, i64 %n) #0 {{
entry:
  %c = icmp sgt i64 %n, 0
  br i1 %c, label %loop, label %exit
loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
{loads}
  {body}
  %po = getelementptr inbounds {ty}, ptr %out, i64 %i
  store {ty} %r, ptr %po
  %i1 = add nuw nsw i64 %i, 1
  %d = icmp eq i64 %i1, %n
  br i1 %d, label %exit, label %loop
exit:
  ret void
}}
attributes #0 = {{ nounwind {attrs} }}
"""


def cfunc(address: int, restype, *argtypes):
    """ctypes function for a JIT address."""
    return ctypes.CFUNCTYPE(restype, *argtypes)(address)


def run_fresh(script: str, cache_dir: Path, *, timeout: float = 120) -> str:
    """Run ``script`` in a new interpreter that imports this checkout, with compile cache
    ``cache_dir`` and the default split-loop setting; its stdout's last line (the test fails,
    showing stderr, if it exits non-zero)."""
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(cache_dir), PYTHONPATH=ROOT)
    env.pop("SYMGRAPH_THREADS", None)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=timeout, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def blas_threads(n: int):
    """OpenBLAS's thread count set to ``n`` for the block (the split loops use as many)."""
    old = blas.get_num_threads()
    blas.set_num_threads(n)
    try:
        yield
    finally:
        blas.set_num_threads(old)
