"""The backend interface of ``sg.function``: what a backend is given, what it returns, and
the registry that finds it by name.

``Function`` (``symgraph.function``) collects and rewrites the graph, then hands a backend a
:class:`CompileRequest` -- a plain description of what to compile: the inputs, the shared
variables, the rewritten outputs and update pairs, the rewrite report, ``single`` and the
argument check every call starts with (``CompileRequest.check_inputs``).  The backend
returns a :class:`Program`.  The program never calls back into ``Function``: ``Function``
owns the call semantics (locking, failure-safe updates, ``check_finite``, the epoch loop)
and asks the program only for the optional native paths the interface names.

A program provides ``run(values, bindings) -> (outputs, new values)`` and may override
(the defaults are the ``numpy`` reference backend's):

* ``call(args)`` -- the whole call in one step (checks, run, adopting updates); ``None``:
  ``Function`` checks the inputs and adopts what ``run`` returns;
* ``epoch_steps(arrays, batch_size)`` -- the epoch's minibatches in one native loop (the
  partial last one too, if it can); ``None``: the Python loop of calls (``Function.epoch``
  owns shuffling, a partial last batch not run natively and restoring the shared
  variables);
* ``kernels`` (``None``: no fused kernels, each node runs by itself), ``compile_stats``
  (seconds per stage; numpy: the rewrite only), ``profile(args, n)`` (numpy: time per node,
  :func:`symgraph.profiling.profile_numpy`), ``llvm_ir()`` and ``asm()`` (numpy: an error,
  there is no code), ``memory_kept()`` (numpy: nothing).

The registry maps a name to a factory ``factory(request) -> Program``, or to the path
``"module:attribute"`` of one, imported on first use: ``llvm`` is
``"codegen.backend:LLVMProgram"``, so ``import symgraph`` imports neither ``codegen`` nor
llvmlite, and symgraph never imports codegen by name (codegen imports symgraph, not the
reverse).  A third-party backend registers itself the same way::

    sg.backends.register_backend("mine", "mypackage.backend:MyProgram")
    f = sg.function([x], y, backend="mine")
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from symgraph import shapes as sh
from symgraph.casting import wrapped_value
from symgraph.evaluate import evaluate
from symgraph.graph import Apply, SharedVariable, Variable, toposort
from symgraph.profiling import profile_numpy

__all__ = ["CompileRequest", "NumpyProgram", "Program", "backend_names", "make_program",
           "register_backend"]


@dataclass(frozen=True, eq=False)
class CompileRequest:
    """What ``Function`` asks a backend to compile: plain data, no reference to ``Function``.

    ``graph_outputs`` and the expressions of ``updates`` are the rewritten graph; ``shared``
    is every shared variable the graph reads or updates (their values are read at each
    call); ``single`` says the function returns one output rather than a list.
    """

    inputs: tuple[Variable, ...]
    shared: tuple[SharedVariable, ...]
    graph_outputs: tuple[Variable, ...]
    updates: tuple[tuple[SharedVariable, Variable], ...]
    rewrite_report: Any = None
    single: bool = False
    name: str | None = None
    #: symbolic dims the graph broadcasts against each other, mapped to one representative
    #: each (``shapes.same_dims``): the inputs must give them one length
    same_dims: Mapping = field(default_factory=dict)
    #: subnormal floats read and written as zero (``sg.function(flush_denormals=True)``)
    flush_denormals: bool = False

    @functools.cached_property
    def _expression_inputs(self) -> tuple[Variable, ...]:
        """Inputs with a dim built from symbols (``2*b``): checked again once every input
        has bound its symbols (the first pass cannot resolve ``2*b`` before ``b``)."""
        return tuple(var for var in self.inputs if any(
            d is not None and not isinstance(d, (int, sympy.Symbol)) for d in var.shape))

    @property
    def update_vars(self) -> list[SharedVariable]:
        return [var for var, _ in self.updates]

    @property
    def graph_updates(self) -> list[Variable]:
        return [expr for _, expr in self.updates]

    def check_inputs(self, args: Sequence) -> tuple[dict, dict]:
        """Validated input arrays and the symbolic-dim bindings of one call on ``args``:
        count, rank, fixed dims, symbolic dims bound consistently (with the shared values'
        shapes too), ``same_kind`` casts.  Depends on nothing but the arguments' dtypes and
        shapes and the shared values' shapes, so a backend may cache its result by them.
        """
        if len(args) != len(self.inputs):
            names = ", ".join(x.name or "?" for x in self.inputs)
            raise TypeError(f"function takes {len(self.inputs)} inputs ({names}), "
                            f"got {len(args)}")
        bindings: dict = {}
        same = self.same_dims
        for var in self.shared:
            sh.bind_shape(var.shape, var._value.shape, bindings, same)
        values = {}
        for var, value in zip(self.inputs, args):
            array = as_input_array(var, value)
            if array.dtype != var.dtype:
                check_cast(var, array)
                array = array.astype(var.dtype)
            problem = sh.bind_shape(var.shape, array.shape, bindings, same)
            if problem:
                raise ValueError(f"input {var.name!r}: {problem}")
            values[var] = array
        for var in self._expression_inputs:  # a dim such as 2*b whose b a later input bound
            problem = sh.bind_shape(var.shape, values[var].shape, bindings, same)
            if problem:
                raise ValueError(f"input {var.name!r}: {problem}")
        if same:
            sh.bind_classes(bindings, same)
        return values, bindings


def as_input_array(var: Variable, value) -> np.ndarray:
    """``np.asarray(value)``; its error (a ragged list) names the input. Python ints (a
    number or lists) are weak, as numpy's scalars: they take an integer input's dtype when
    every value fits (``f(5)`` for a uint8 input was an int64 array that same_kind refused)."""
    try:
        array = np.asarray(value)
    except ValueError as err:
        raise ValueError(f"input {var.name!r}: {err}") from None
    if array.dtype == var.dtype or isinstance(value, (np.ndarray, np.generic)):
        return array
    if not array.size:  # an empty list has no dtype of its own (numpy says float64)
        return array.astype(var.dtype)
    if array.dtype.kind == "i" and var.dtype.kind in "iu":
        info = np.iinfo(var.dtype)
        if info.min <= array.min() and array.max() <= info.max:
            return array.astype(var.dtype)
    return array


def check_cast(var: Variable, array: np.ndarray) -> None:
    """TypeError unless ``array`` casts to ``var``'s dtype as numpy's ``same_kind``;
    ValueError if an integer cast would wrap one of its values (uint64 labels of 2**64 - 1
    became index -1, which a gather takes as the last row)."""
    if array.dtype == var.dtype or np.can_cast(array.dtype, var.dtype, "safe"):
        return
    if np.can_cast(array.dtype, var.dtype, "same_kind"):
        bad = wrapped_value(array, var.dtype)
        if bad is not None:
            raise ValueError(f"input {var.name!r} is {var.dtype.name}; its "
                             f"{array.dtype.name} value {bad} does not fit")
        return
    got = ("an array of Python objects (dtype object)" if array.dtype.kind == "O" else
           f"{'an' if array.dtype.name[0] in 'aeiou' else 'a'} {array.dtype.name} array")
    raise TypeError(f"input {var.name!r} is {var.dtype.name}; got {got}, "
                    "which does not cast safely (same_kind)")


class Program:
    """A compiled ``CompileRequest`` (see the module docstring); the defaults are those of
    the numpy reference backend, which compiles nothing."""

    #: fast path owning the whole call, ``call(args) -> result``; None: ``Function`` checks
    #: the inputs and adopts what ``run`` returns
    call: Callable | None = None
    #: ``run`` returns new values that nothing else references (adopted without a copy)
    fresh_updates: bool = False
    #: updates may be written into the shared variables' own arrays (so ``check_finite``
    #: must copy the old values to restore them)
    updates_in_place: bool = False
    #: the fused kernels (``KernelInfo``s: nodes, user's nodes, BLAS); None: none, every
    #: node runs by itself (``sg.render(view="kernels")`` needs them)
    kernels: list | None = None

    def __init__(self, request: CompileRequest):
        self.request = request
        report = request.rewrite_report
        #: seconds per compile stage (the llvm backend: many more keys)
        self.compile_stats: dict = {"rewrite": getattr(report, "seconds", None),
                                    "compile_total": 0.0}

    def run(self, values: dict, bindings: dict) -> tuple[list, list]:
        """Outputs and new values of the updates, in ``request`` order, for checked
        ``values`` (input variable -> array) and symbolic-dim ``bindings``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement run")

    def epoch_steps(self, arrays: list[np.ndarray], batch_size: int
                    ) -> tuple[list, list | None] | None:
        """Run the full minibatches of ``arrays`` (checked, shuffled) natively, and the last
        partial one if it can, adopting the final values; return each output stacked over
        the full steps (first dim = step) and the partial step's outputs (None: not run, the
        Python loop runs it).  It must not write the arrays the shared variables hold on
        entry, so a failure after it leaves them to restore.  None (the default): nothing
        ran, use the Python loop."""
        return None

    def profile(self, args: Sequence, n: int = 100) -> list[dict]:
        """Rows of ``symgraph.profiling`` for ``n`` calls on ``args``, no shared variable
        changed.  The default times each node of the reference evaluator."""
        return profile_numpy(self.request, args, n=n)

    def llvm_ir(self, optimized: bool = True) -> str:
        """The compiled module's LLVM IR; a backend without one raises."""
        raise NotImplementedError(f"the {self._name()} backend generates no LLVM IR; "
                                  "compile with backend='llvm'")

    def asm(self) -> str:
        """The compiled module's assembly; a backend without one raises."""
        raise NotImplementedError(f"the {self._name()} backend generates no assembly; "
                                  "compile with backend='llvm'")

    def memory_kept(self) -> dict:
        """What the program keeps between calls; the default: nothing."""
        return {"plans": 0, "bytes": 0, "largest": 0}

    def node_modes(self) -> dict[Apply, str]:
        """How each node of the rewritten graph is computed, for pictures: ``"kernel"``
        (by a kernel: its own, or inside its consumer's loop), ``"view"`` (a transpose read
        through strides), ``"alias"`` (a reshape: the same bytes), ``"dead"`` (only its shape
        is used). The default: every node is evaluated by itself."""
        roots = list(self.request.graph_outputs) + list(self.request.graph_updates)
        return {node: "kernel" for node in toposort(roots)}

    def _name(self) -> str:
        return next((name for name, factory in _REGISTRY.items()
                     if factory is type(self)), type(self).__name__)


class NumpyProgram(Program):
    """The reference backend: evaluate the rewritten graph node by node, each result
    checked against its static type (``symgraph.evaluate``)."""

    def run(self, values: dict, bindings: dict) -> tuple[list, list]:
        request = self.request
        results = evaluate([*request.graph_outputs, *request.graph_updates], values, bindings,
                           flush_denormals=request.flush_denormals)
        n = len(request.graph_outputs)
        return results[:n], results[n:]


#: backend name -> ``factory(request) -> Program``, or its ``"module:attribute"`` path
_REGISTRY: dict[str, Callable[[CompileRequest], Program] | str] = {
    "numpy": NumpyProgram,
    "llvm": "codegen.backend:LLVMProgram",
}


def register_backend(name: str, factory: Callable[[CompileRequest], Program] | str) -> None:
    """Make ``sg.function(..., backend=name)`` use ``factory``: a callable taking a
    ``CompileRequest`` and returning a ``Program``, or its path ``"module:attribute"``,
    imported the first time the backend is used.

    >>> register_backend("mine", "mypackage.backend:MyProgram")
    """
    if not isinstance(factory, str) and not callable(factory):
        raise TypeError(f"register_backend: {factory!r} is neither callable nor a "
                        "'module:attribute' path")
    if isinstance(factory, str) and ":" not in factory:
        raise ValueError(f"register_backend: {factory!r} is not a 'module:attribute' path")
    _REGISTRY[name] = factory


def backend_names() -> list[str]:
    """The registered backend names, sorted."""
    return sorted(_REGISTRY)


def make_program(name: str, request: CompileRequest) -> Program:
    """The program backend ``name`` compiles from ``request``."""
    factory = _REGISTRY.get(name)
    if factory is None:
        known = ", ".join(repr(n) for n in backend_names())
        raise ValueError(f"unknown backend {name!r}; registered backends: {known}")
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        # a backend's package (llvm: codegen, then llvmlite) loads only when first used
        factory = getattr(importlib.import_module(module), attribute)  # lazy: on first use
        _REGISTRY[name] = factory
    return factory(request)
