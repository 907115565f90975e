"""``sg.function``: the call semantics every backend shares.

``function`` collects the graph (outputs, explicit updates and the default
updates of shared variables such as dropout's counter), runs the rewrite
pipeline, checks the inputs of every call (rank, fixed dims, symbolic dims
bound consistently, ``same_kind`` casts) and applies updates only after the
whole step succeeded, so a failed call changes no parameter. What a backend
supplies is a *program*: ``run(input_values, bindings) -> (outputs, updates)``.
The reference backend, ``numpy``, is ``symgraph.evaluate``; ``llvm`` is the
``codegen`` package (imported only when asked for).

Threads: every call of one ``Function`` (``f(...)``, ``f.epoch``, ``f.profile``) holds the
function's lock, so calls from any number of threads run one at a time, each sees the
updates of the calls before it, and none gets another's outputs.  ``check_finite=True``
makes a function check every output and update for NaN/Inf and explain the first bad value
(``symgraph.evaluate.trace_nonfinite``) instead of applying it.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence

import numpy as np

from symgraph import shapes as sh
from symgraph import storage
from symgraph.backends import CompileRequest, as_input_array, check_cast, make_program
from symgraph.evaluate import is_finite, trace_nonfinite
from symgraph.gc_pause import without_gc
from symgraph.graph import Constant, SharedVariable, Variable, as_variable, graph_inputs, toposort
from symgraph.ops import cast
from symgraph.provenance import user_site
from symgraph.rewrites import rewrite_graph

DEFAULT_BACKEND = "llvm"


def _update_site(expr) -> str:
    """Where the user wrote an update's new value: the line that built it, else the line
    calling ``function`` (a number, an array, or a variable made elsewhere)."""
    site = expr.site if isinstance(expr, Variable) and expr.owner is not None else None
    site = site or user_site()
    return f"\n  new value created at {site}" if site is not None else ""


def _normalize_updates(updates) -> list[tuple[SharedVariable, Variable]]:
    if updates is None:
        return []
    pairs = list(updates.items()) if isinstance(updates, Mapping) else list(updates)
    seen = set()
    out = []
    for var, expr in pairs:
        if not isinstance(var, SharedVariable):
            raise TypeError(f"updates: {var!r} is not a shared variable{_update_site(expr)}")
        if var in seen:
            raise ValueError(f"updates: {var.name!r} is updated twice{_update_site(expr)}")
        seen.add(var)
        expr = as_variable(expr)
        if not np.can_cast(expr.dtype, var.dtype, "same_kind"):
            raise TypeError(f"update of {var.name!r}: a {expr.dtype.name} value cannot be "
                            f"stored in a {var.dtype.name} shared variable{_update_site(expr)}")
        if expr.ndim != var.ndim or any(sh.dims_equal(a, b) is False
                                        for a, b in zip(expr.shape, var.shape)):
            raise ValueError(f"update of {var.name!r}: new value has shape "
                             f"{sh.format_shape(expr.shape)}, the variable "
                             f"{sh.format_shape(var.shape)}{_update_site(expr)}")
        if expr.dtype != var.dtype:
            expr = cast(expr, var.dtype)
        out.append((var, expr))
    return out


class Function:
    """A callable graph: ``f(*inputs)`` returns the outputs and applies the updates.

    Thread safety: calls of one function -- ``f(...)``, ``f.epoch``, ``f.profile`` -- are
    serialised by a lock of the function's own (re-entrant), held for the whole call.  So any
    number of threads may call one function: every call sees the updates of the calls before
    it (none is lost) and returns its own outputs.  Different functions are not serialised
    with each other: threads that call two functions updating the same shared variable, or
    ``set_value`` while a call runs, must hold a lock of their own around them.
    ``get_value`` copies one whole state, even while a call writes the variable in place.
    A forked child gets new locks (the thread that held one is not copied).
    """

    def __reduce__(self):
        """Not picklable, said plainly (pickle failed on an op's lambda, deepcopy on a lock):
        native code and a graph's identity do not survive a process."""
        raise TypeError("a compiled function cannot be pickled or copied: save the shared "
                        "variables' values (get_value, or frontends' Model.save) and call "
                        "sg.function again where they are loaded")

    @without_gc
    def __init__(self, inputs: Sequence[Variable], outputs, updates=None, *,
                 backend: str | None = None, rewrite: bool = True, name: str | None = None,
                 check_finite: bool = False, flush_denormals: bool = False):
        self.name = name
        self.check_finite = bool(check_finite)
        if not isinstance(flush_denormals, (bool, np.bool_)):
            raise TypeError(f"flush_denormals must be True or False, got {flush_denormals!r}")
        self.single = isinstance(outputs, Variable)
        out_list = [outputs] if self.single else _output_list(outputs)
        if isinstance(inputs, Variable):  # list() of it: "a symbolic Variable is not iterable"
            raise TypeError(f"function inputs are a list of Variables: "
                            f"sg.function([{inputs.name or 'x'}], ...), got one Variable "
                            f"{inputs!r}")
        self.inputs = list(inputs)
        self._check_inputs_declared(out_list)
        pairs = _normalize_updates(updates)
        pairs += self._default_updates(out_list, pairs)
        self.updates = pairs
        self.outputs = out_list
        self._check_all_inputs_given(out_list + [e for _, e in pairs])

        self.rewrite_report = None
        self.last_profile: list[dict] | None = None
        graph_outputs = out_list + [e for _, e in pairs]
        if rewrite:
            graph_outputs, self.rewrite_report = rewrite_graph(graph_outputs)
        n = len(out_list)
        self.graph_outputs = graph_outputs[:n]
        self.graph_updates = graph_outputs[n:]
        self.shared = [v for v in graph_inputs(graph_outputs) if isinstance(v, SharedVariable)]
        for var, _ in pairs:
            if var not in self.shared:
                self.shared.append(var)

        self.backend = backend or DEFAULT_BACKEND
        self._lock = threading.RLock()
        _LIVE.add(self)  # (its lock is made anew in a forked child)
        #: what the backend compiles (``symgraph.backends``): plain data, no ``self``
        self.request = CompileRequest(
            tuple(self.inputs), tuple(self.shared), tuple(self.graph_outputs),
            tuple((var, expr) for (var, _), expr in zip(pairs, self.graph_updates)),
            rewrite_report=self.rewrite_report, single=self.single, name=name,
            flush_denormals=bool(flush_denormals),
            same_dims=_same_dims(out_list + [e for _, e in pairs] + graph_outputs))
        start = time.perf_counter()
        self.program = make_program(self.backend, self.request)
        self.compile_seconds = time.perf_counter() - start
        # what one call does, chosen once: the call path checks no flag
        step = self.program.call or self._reference_step
        self._unchecked_step = step
        self._step = self._finite_step if self.check_finite else step

    # -- construction helpers
    def _check_inputs_declared(self, outputs):
        seen = set()
        for x in self.inputs:
            if not isinstance(x, Variable):
                raise TypeError(f"function inputs must be Variables, got {type(x).__name__}")
            if isinstance(x, (SharedVariable, Constant)) or x.owner is not None:
                raise TypeError(f"function input {x!r} must be a graph input (sg.tensor), "
                                "not a shared variable, constant or computed value")
            if x in seen:
                raise ValueError(f"input {x.name!r} is listed twice")
            seen.add(x)

    def _default_updates(self, outputs, pairs):
        explicit = {v for v, _ in pairs}
        found = []
        frontier = outputs + [e for _, e in pairs]
        visited = set()
        while frontier:
            new = []
            for v in graph_inputs(frontier):
                if (isinstance(v, SharedVariable) and v.default_update is not None
                        and v not in explicit and v not in visited):
                    visited.add(v)
                    found.append((v, v.default_update))
                    new.append(v.default_update)
            frontier = new
        return found

    def _check_all_inputs_given(self, exprs):
        given = set(self.inputs)
        for v in graph_inputs(exprs):
            if isinstance(v, (Constant, SharedVariable)) or v in given:
                continue
            where = f" (created at {v.site})" if v.site else ""
            raise ValueError(f"the graph needs input {v.name or v!r}{where}, which is not in "
                             "the function's inputs")

    # -- calling
    def check_inputs(self, args) -> tuple[dict, dict]:
        """Validated input arrays and the symbolic-dim bindings of this call
        (``CompileRequest.check_inputs``)."""
        return self.request.check_inputs(args)

    # -- inspection: the program's, with the numpy backend's defaults (symgraph.backends)
    @property
    def kernels(self) -> list | None:
        """The fused kernels (``KernelInfo``: nodes, user's nodes, BLAS); None on a backend
        that runs each node by itself (numpy)."""
        return self.program.kernels

    @property
    def compile_stats(self) -> dict:
        """Seconds per compile stage (llvm: ``analyse`` ... ``load``, the cache hit kind);
        numpy: ``rewrite`` and ``compile_total`` (0: nothing is compiled)."""
        return self.program.compile_stats

    def llvm_ir(self, optimized: bool = True) -> str:
        """The compiled module's LLVM IR (llvm backend; others raise NotImplementedError)."""
        return self.program.llvm_ir(optimized)

    def asm(self) -> str:
        """The compiled module's assembly (llvm backend; others raise NotImplementedError)."""
        return self.program.asm()

    def memory_kept(self) -> dict:
        """What this function keeps between calls: ``plans``, ``bytes``, ``largest``."""
        with self._lock:
            return self.program.memory_kept()

    def profile(self, *args, n: int = 100) -> list[dict]:
        """Where one call on ``args`` spends its time, averaged over ``n`` calls; no shared
        variable changes. One row per fused kernel (llvm) or per node (numpy), slowest first,
        naming the user's nodes, name scopes and source lines each one computes (see
        ``symgraph.profiling``; ``sg.format_profile(rows)`` prints a table).
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"profile: n must be a positive int, got {n!r}")
        with self._lock:
            rows = self.program.profile(args, n=n)
            self.last_profile = rows  # what sg.render(f, ..., view="profile") shades by
            return rows

    def __call__(self, *args):
        lock = self._lock
        lock.acquire()
        try:
            return self._step(args)
        finally:
            lock.release()

    def _reference_step(self, args: tuple):
        """One call through ``program.run`` (a program with ``call`` owns the whole call)."""
        values, bindings = self.request.check_inputs(args)
        outputs, new_values = self.program.run(values, bindings)
        checked = []
        for (var, _), value in zip(self.updates, new_values):
            value = np.asarray(value, dtype=var.dtype)
            if value.shape != var._value.shape:
                raise ValueError(f"update of {var.name!r} would change its shape from "
                                 f"{var._value.shape} to {value.shape}")
            checked.append((var, value))
        # a program may promise fresh arrays that nothing else references
        fresh = self.program.fresh_updates
        for var, value in checked:  # only now: a failed call changes nothing
            # never alias another variable or input
            var._value = value if fresh else storage.copy(value)
        result = [o[()] if np.ndim(o) == 0 else np.array(o, copy=True) for o in outputs]
        return result[0] if self.single else result

    def _finite_step(self, args: tuple):
        """A call of a ``check_finite`` function: the call, then every float output and new
        value checked; on NaN/Inf the updated variables get their values back and the call
        is replayed node by node on the reference evaluator to name the culprit."""
        updated = [var for var, _ in self.updates]
        # a backend that writes updates in place (llvm): keep copies to restore
        saved = [storage.copy(var._value) if self.program.updates_in_place else var._value
                 for var in updated]
        result = self._unchecked_step(args)
        outputs = [result] if self.single else result
        bad = [(f"output {k}" + (f" ({user.name!r})" if user.name else ""), v)
               for k, (user, v, value) in enumerate(zip(self.outputs, self.graph_outputs,
                                                        outputs))
               if not is_finite(value)]
        bad += [(f"the update of {var.name!r}", expr)
                for var, expr in zip(updated, self.graph_updates) if not is_finite(var._value)]
        if not bad:
            return result
        for var, value in zip(updated, saved):  # no parameter changes on this call
            var._value = value
        values, bindings = self.check_inputs(args)
        values.update({var: var._value for var in self.shared})
        raise trace_nonfinite(bad, values, bindings, self.request.flush_denormals)

    def epoch(self, *arrays, batch_size: int = 128,
              shuffle: int | bool | np.random.Generator | None = None):
        """Run over consecutive minibatches of ``arrays`` (first dim = batch).

        ``shuffle=seed`` (an int or a ``numpy.random.Generator``; ``True``: fresh entropy;
        ``None`` or ``False``: no shuffle) permutes the examples first; the last partial batch
        is a smaller step. Returns each output stacked over steps, ``(steps, ...)``;
        when the last batch is smaller, an output whose first dim is the batch in every
        step cannot be stacked and is concatenated to ``(n, ...)``. The reference
        is exactly the Python loop of single steps; if any step fails, every
        shared variable is restored to its value before the epoch, and the error
        names the step and its examples (a position in it is one in that
        minibatch; ``err.step`` is the step). A backend may
        run the minibatches in one native call (``Program.epoch_steps``; the
        llvm backend does, the last partial batch included, unless ``check_finite``, which
        checks each step and names the failing one). An interrupt (Ctrl-C) is not a
        failure: the steps that finished stay applied, each one whole (``fit`` holds it off
        during a chunk).
        """
        with self._lock:
            if len(arrays) != len(self.inputs):
                raise TypeError(f"epoch takes {len(self.inputs)} arrays, got {len(arrays)}")
            arrays = [as_input_array(var, a) for var, a in zip(self.inputs, arrays)]
            if any(a.ndim == 0 for a in arrays):
                raise ValueError("epoch: every array needs a first (batch) dim")
            n = arrays[0].shape[0] if arrays else 0
            for var, a in zip(self.inputs, arrays):
                if a.shape[0] != n:
                    raise ValueError(f"epoch: input {var.name!r} has {a.shape[0]} examples, "
                                     f"the first input {n}")
            for var, a in zip(self.inputs, arrays):  # before any step: not a step's error
                check_cast(var, a)
                problem = _example_shape_problem(var, a)
                if problem:
                    raise ValueError(f"input {var.name!r}: {problem}")
            if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
                raise TypeError(f"epoch: batch_size must be an int, got {batch_size!r}")
            if batch_size <= 0:
                raise ValueError("epoch: batch_size must be positive")
            rng = _shuffler(shuffle)  # the rows are gathered per step, never all copied
            order = None if rng is None else rng.permutation(n)
            return self._epoch(arrays, order, n, int(batch_size))

    def _epoch(self, arrays: list[np.ndarray], order: np.ndarray | None, n: int,
               batch_size: int):
        """The steps of ``epoch`` on checked ``arrays`` taken in the permutation ``order``
        (None: as they are; the caller holds the lock): the backend's native loop over the
        full minibatches if it has one (and over the last partial one, if it runs that
        too), then the Python loop of calls over the rest; on failure every shared variable
        gets back its value from before the epoch."""
        saved = [(var, var._value) for var in self.shared]
        native_stacks = None
        per_output: list[list] = [[] for _ in self.outputs]
        shuffled = None if order is None else ShuffledArrays(arrays, order)
        done = i = 0
        stepping = False  # in a step of the Python loop (its failure is that step's)
        try:
            native = None if self.check_finite else self.program.epoch_steps(
                arrays if shuffled is None else shuffled, batch_size)
            if native is None:
                # copies: a backend may update a shared variable's array in place (a
                # native loop never writes the arrays it was given: no copies needed)
                saved = [(var, storage.copy(value)) for var, value in saved]
                if shuffled is not None:  # every step is a call: one gather of the data
                    arrays, order = shuffled.arrays(), None
            else:
                native_stacks, last = native
                done = n // batch_size
                if last is not None:  # the last partial batch ran natively too
                    for values, value in zip(per_output, last):
                        values.append(value)
                    done += 1
                if done * batch_size < n:
                    # the calls below may write into the arrays the variables held before
                    # the epoch (a backend's double buffers): keep copies to restore
                    saved = [(var, storage.copy(value)) for var, value in saved]
            for i in range(done * batch_size, n, batch_size):
                if order is None:
                    batch = tuple(a[i:i + batch_size] for a in arrays)
                else:
                    rows = order[i:i + batch_size]
                    batch = tuple(a[rows] for a in arrays)
                stepping = True
                result = self._step(batch)
                stepping = False
                for values, value in zip(per_output, [result] if self.single else result):
                    values.append(value)
                done += 1
            # (per-step sizes only where a step's outputs came from the Python loop: a list
            # of every step's size cost ~3 us of a 56-step native epoch)
            sizes = ([batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size
                                                          else [])
                     if any(per_output) else [])
            stacked = [_stack_steps(None if native_stacks is None else native_stacks[k],
                                    values, sizes) for k, values in enumerate(per_output)]
        except Exception as err:
            for var, value in saved:  # a failed epoch changes nothing either
                var._value = value
            step = getattr(err, "epoch_step", done if stepping else None)  # (native loop's)
            if step is not None:
                _name_the_step(err, step, batch_size, n, shuffled is not None)
            raise
        return stacked[0] if self.single else stacked


#: every Function alive: a child forked while another thread was in a call (holding its
#: lock) would wait on that lock forever, the thread holding it not being copied
_LIVE: weakref.WeakSet = weakref.WeakSet()


def _new_locks_in_child() -> None:
    for f in list(_LIVE):
        f._lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_locks_in_child)


def _shuffler(shuffle) -> np.random.Generator | None:
    """The generator of an epoch's ``shuffle`` argument (``False`` is no shuffle: it was
    seed 0 of ``default_rng``, a fixed permutation)."""
    if shuffle is None or shuffle is False:
        return None
    if shuffle is True:
        return np.random.default_rng()
    if isinstance(shuffle, np.random.Generator):
        return shuffle
    if isinstance(shuffle, (int, np.integer)) and shuffle >= 0:
        return np.random.default_rng(shuffle)
    raise TypeError(f"epoch: shuffle is a seed (an int >= 0), a numpy Generator, True or "
                    f"None; got {shuffle!r}")


class ShuffledArrays(Sequence):
    """The arrays of a shuffled epoch as ``Function.epoch`` hands them to
    ``Program.epoch_steps``: item ``k`` is ``source[k][order]``, made (once, for all arrays)
    only when an item is read, so a backend that knows this class gathers each minibatch's
    rows itself from ``source`` and ``order`` (``codegen.epoch``) and the dataset is never
    copied, while any other backend sees the shuffled arrays."""

    def __init__(self, source: list[np.ndarray], order: np.ndarray):
        self.source, self.order = source, order
        self._arrays: list[np.ndarray] | None = None

    def arrays(self) -> list[np.ndarray]:
        """``[a[order] for a in source]``, made on first use."""
        if self._arrays is None:
            self._arrays = [a[self.order] for a in self.source]
        return self._arrays

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, k):
        return self.arrays()[k]


def _stack_steps(native: np.ndarray | None, values: list, sizes: list[int]) -> np.ndarray:
    """Stack one output over steps: ``native`` (the first steps' values already stacked by a
    native loop, or None), then ``values`` (one per later step); per-example outputs (first
    dim = batch) concatenate."""
    if native is None:
        if not values:
            return np.empty((0,))
    elif not values:
        return native  # the common case: every step ran natively (a fresh array)
    shapes = {np.shape(v) for v in values}
    if native is not None:
        shapes.add(native.shape[1:])
    if len(shapes) == 1:
        rest = np.stack(values)
        return rest if native is None else np.concatenate([native, rest])
    head = 0 if native is None else len(native)
    rows = {np.shape(v)[1:] for v in values} | (
        set() if native is None else {native.shape[2:]})
    if (native is None or native.ndim > 1 and native.shape[1] == sizes[0]) and \
            len(rows) == 1 and \
            all(np.ndim(v) and np.shape(v)[0] == b for v, b in zip(values, sizes[head:])):
        parts = values if native is None else [  # (not -1: the steps may hold nothing)
            native.reshape(native.shape[0] * native.shape[1], *native.shape[2:]), *values]
        return np.concatenate(parts)
    raise ValueError(f"epoch: an output changes shape between steps ({sorted(shapes)})")


def _output_list(outputs) -> list[Variable]:
    """A list or tuple of outputs as Variables (numbers and arrays become constants); a
    dict or a string is a mistake to name, not a constant of dtype str to refuse."""
    if isinstance(outputs, Mapping):
        raise TypeError("function outputs are a Variable or a list of them, not a dict "
                        "(for named outputs pass list(d.values()) and zip the names back)")
    if isinstance(outputs, (str, bytes)):
        raise TypeError(f"function outputs are a Variable or a list of them, not {outputs!r}")
    found = []
    for i, out in enumerate(outputs or []):
        if isinstance(out, (str, bytes, Mapping)):
            raise TypeError(f"function output {i} is {out!r}, not a Variable")
        found.append(as_variable(out))
    return found


def _example_shape_problem(var: Variable, array: np.ndarray) -> str | None:
    """What is wrong with the rank or a fixed dim past the batch axis of an epoch's array,
    said with the whole array's shape (each step's check saw a minibatch: "epoch step 0
    (examples 0:32): ... (shape (32, 3))" for the user's (1000, 3))."""
    if array.ndim != var.ndim:
        return sh.bind_shape(var.shape, array.shape, {})
    if all(d == a for d, a in zip(var.shape[1:], array.shape[1:]) if isinstance(d, int)):
        return None  # (the common case, without bind_shape's ~3 us an array per epoch)
    fixed = (None,) + tuple(d if isinstance(d, int) else None for d in var.shape[1:])
    return sh.bind_shape(fixed, array.shape, {})


def _name_the_step(err: Exception, step: int, batch_size: int, n: int,
                   shuffled: bool) -> None:
    """Say which step of an epoch ``err`` comes from, and its examples: a position in the
    message is one in that minibatch (``label 10 of 'y' at position 6``).  Only the
    exception types whose text is their one argument are reworded."""
    err.step = step
    if type(err).__str__ is not BaseException.__str__ or (  # (KeyError quotes its text)
            len(err.args) != 1 or not isinstance(err.args[0], str)):
        return
    start = step * batch_size
    rows = f"examples {start}:{min(start + batch_size, n)}"
    if shuffled:
        rows += " of the shuffled order"
    err.args = (f"epoch step {step} ({rows}; the epoch's updates are undone): "
                f"{err.args[0]}",)


def _same_dims(exprs: list[Variable]) -> dict:
    """The symbolic dims the user's graph and its rewritten form broadcast against each
    other (``shapes.same_dims``): the user's, so a rewrite that drops a broadcast
    (``a + b * 0``) does not drop the check numpy would make."""
    return sh.same_dims(pair for node in toposort(exprs) for pair in node.same_dims)


def function(inputs: Sequence[Variable], outputs, updates=None, *, backend: str | None = None,
             rewrite: bool = True, name: str | None = None,
             check_finite: bool = False, flush_denormals: bool = False) -> Function:
    """Compile ``outputs`` (and ``updates``) as a function of ``inputs``.

    ``check_finite=True`` is a NaN/Inf debugger: a call whose outputs or new values hold
    NaN/Inf changes no parameter and raises ``NonFiniteError`` (a ``FloatingPointError``)
    naming the first node that made a non-finite value from finite inputs -- op, name scope,
    its inputs' shapes and ranges, the user's line, and for a gradient node the forward node
    whose bprop made it -- or the input that brought one in. Off (the default) it costs
    nothing; calls of one function are safe from any number of threads (see ``Function``).

    ``flush_denormals=True`` computes with subnormal floats (below 1.2e-38 in float32,
    2.2e-308 in float64) read and written as zero, as XLA (so JAX) and TensorFlow always do:
    on x86 they can cost ~100 cycles per operation, and a softmax classifier trained for a
    while makes them (its probabilities underflow), so its step grew 3x slower (an Intel
    Xeon). The llvm backend sets the CPU's flush-to-zero and denormals-are-zero modes for the
    call and restores them after, and in every chunk of a loop split across the cores (the
    gemms OpenBLAS threads itself keep subnormals: its workers do not inherit the mode); the
    numpy backend zeroes subnormal inputs and results of every op.
    Off (the default), results are numpy's.

    >>> f = function([x, y], [loss, acc], updates={W: W - 0.1 * gW})
    >>> loss_val, acc_val = f(X, Y)
    """
    return Function(inputs, outputs, updates, backend=backend, rewrite=rewrite, name=name,
                    check_finite=check_finite, flush_denormals=flush_denormals)
