"""The JIT plumbing under symgraph's LLVM backend: LLVM IR text in, callable native code out.

It knows nothing about graphs (the graph backend, one level up in ``codegen``, depends on it,
never the reverse): ``jit`` (target machine, optimisation, MCJIT, the registry of
external-symbol binders), ``vecmath`` (libm transcendentals, vectorised through glibc's
libmvec), ``blas`` (numpy's bundled OpenBLAS), ``pycall`` (kernels exposed as fast Python
builtins), ``cache`` (in-memory and on-disk cache of object code and of whole programs), ``elf``
(loading object code without LLVM), ``host_id`` (the host's part of the cache's keys) and
``llvmffi`` (libllvmlite's C API without ``llvmlite.binding``: compiling on several threads,
loading object code ``elf`` does not handle).

Importing it imports the modules whose symbols generated code calls, so their binders are
registered with ``jit`` before any object code (fresh or cached) is loaded.  Neither
llvmlite nor ``libllvmlite`` is loaded by importing it, nor, on Linux x86-64, by loading
cached code (``elf``, ``host_id``): LLVM is mapped (~9 ms) when something is compiled.
"""

from codegen.native import (  # noqa: F401  (register their binders)
    blas,
    parallel,
    pycall,
    vecmath,
)
