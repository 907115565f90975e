"""The JIT plumbing under symgraph's LLVM backend: LLVM IR text in, callable native code out.

It knows nothing about graphs (the graph backend, one level up in ``codegen``, depends on it,
never the reverse): ``jit`` (target machine, optimisation, MCJIT, the registry of
external-symbol binders), ``vecmath`` (libm transcendentals, vectorised through glibc's
libmvec), ``blas`` (numpy's bundled OpenBLAS), ``pycall`` (kernels exposed as fast Python
builtins), ``cache`` (in-memory and on-disk cache of object code and of whole programs) and
``llvmffi`` (libllvmlite's C API without ``llvmlite.binding``: loading object code, compiling
on several threads).

Importing it imports the modules whose symbols generated code calls, so their binders are
registered with ``jit`` before any object code (fresh or cached) is loaded; llvmlite itself is
imported only when something is compiled.  Whoever imports this package is about to load or
compile code, so its first step starts mapping ``libllvmlite`` on another thread
(:func:`codegen.native.llvmffi.preload`, ~6 ms) while the rest imports.
"""

from codegen.native import llvmffi

llvmffi.preload()

from codegen.native import (  # noqa: E402, F401  (register their binders)
    blas,
    parallel,
    pycall,
    vecmath,
)
