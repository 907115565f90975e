"""Backend-independent JIT infrastructure for symgraph's LLVM backend.

The graph lowering produces LLVM IR *text*; the modules here turn it into callable native
code: ``jit`` (target machine, optimisation, MCJIT), ``vecmath`` (vectorised transcendentals
via glibc's libmvec), ``blas`` (numpy's bundled OpenBLAS), ``pycall`` (kernels exposed as fast
Python builtins), ``cache`` (in-memory and on-disk cache of object code and of whole programs,
keyed by ``signature``'s canonical graph signature) and ``llvmffi`` (loading cached object code
without importing ``llvmlite.binding``).

The backend itself (``sg.function(..., backend="llvm")``): ``fusion`` (which variables get a
buffer, which are computed inside their consumer's loop), ``irgen`` (IR text, loops, the scalar
builder ``ScalarOp.lower`` is written against), ``lower`` (one kernel per buffered variable,
elementwise fusion), ``lowerings`` (the table of non-elementwise ops keyed by op class),
``memory`` (concrete shapes and the arena per shape signature) and ``backend``
(``LLVMProgram``: compile, plans, the fast call, native epochs, profiling).

Importing this package is cheap: llvmlite is imported only when something is compiled.
"""
