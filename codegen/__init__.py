"""Backend-independent JIT infrastructure for symgraph's LLVM backend.

The graph lowering produces LLVM IR *text*; the modules here turn it into callable native
code: ``jit`` (target machine, optimisation, MCJIT), ``vecmath`` (vectorised transcendentals
via glibc's libmvec), ``blas`` (numpy's bundled OpenBLAS), ``pycall`` (kernels exposed as fast
Python builtins) and ``cache`` (in-memory and on-disk object-code cache).

Importing this package is cheap: llvmlite is imported only when something is compiled.
"""
