"""symgraph's LLVM backend, in two layers.

``codegen.native``, the JIT plumbing (knows nothing about graphs: LLVM IR text in, callable
native code out):
``jit`` (target machine, optimisation, MCJIT, the registry of external-symbol binders),
``vecmath`` (libm transcendentals, vectorised through glibc's libmvec), ``blas`` (numpy's
bundled OpenBLAS), ``pycall`` (kernels exposed as fast Python builtins), ``cache`` (in-memory
and on-disk cache of object code and of whole programs) and ``llvmffi`` (libllvmlite's C API
without ``llvmlite.binding``: loading object code, and compiling on several threads).

The graph backend (``sg.function(..., backend="llvm")``): ``registry`` (one ``Lowering``
record per op class: its lowering and what fusion may do with it), ``fusion`` (which variables
get a buffer, which are computed inside their consumer's loop), ``irgen`` (IR text, loops, the
scalar builder ``ScalarOp.lower`` is written against), ``kernel`` (the kernel builder;
``kernel_info`` the records a cached program keeps of it), ``dtypes``,
``lower_elementwise`` / ``lowerings`` / ``lower_blas`` (the lowerings, each registered next to
its function), ``lower`` (one kernel per buffered variable), ``memory`` (concrete shapes and
the arena per shape signature), ``partition`` (a step's module split to compile on threads),
``signature`` (the program cache key) and ``backend``
(``LLVMProgram``: compile, plans, the fast call, native epochs, profiling).

Importing this package is cheap: llvmlite is imported only when something is compiled.  The
graph backend depends on ``codegen.native``, never the reverse.
"""
