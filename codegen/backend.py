"""The ``llvm`` backend of ``sg.function``: one native function per compiled graph.

``LLVMProgram`` is the ``llvm`` entry of the backend registry (``symgraph.backends``): a
``Program`` built from the ``CompileRequest`` that ``symgraph.function.Function`` hands it,
never calling back into ``Function``.  Compiling: fusion analysis
(:mod:`codegen.fusion`), lowering to one LLVM module (:mod:`codegen.lower`), then
:func:`codegen.native.cache.compile_cached` (memory and disk cache); a program whose graph
signature is in the program cache (:func:`codegen.native.cache.load_program`) skips lowering
and LLVM entirely
(see ``LLVMProgram._compile``).  Calling: per signature of input
shapes, a *plan* (concrete shapes, an arena, the int64 table of sizes and offsets, and a
``METH_FASTCALL`` builtin from :mod:`codegen.native.pycall`) is built once and reused, so the
hot path is a dict lookup and one builtin call.

``call`` replaces ``Function.__call__`` with the same checks cached per signature of
argument dtypes and shapes (a repeated call costs under a microsecond), ``epoch_steps`` runs an
epoch's full minibatches in one native call (``sg_epoch``; ``Function.epoch`` owns the rest),
and ``profile`` times each fused kernel.

Safety: the step builtin checks every argument natively before reading it (type exactly
``ndarray``, rank, C-contiguous, aligned, dtype, the plan's shape; ``codegen.native.pycall``), so no
Python object can make it touch memory it does not own; a refused call runs nothing and takes
the converting path.  ``Function`` serialises the calls of one function (a lock), so one call
at a time uses a plan's arena and the shared variables.

Memory: what a program keeps between calls is its plans, least recently used out first: at
most ``MAX_PLANS`` shape signatures and ``MAX_KEPT_BYTES`` of arenas and update buffers; a
plan bigger than ``MAX_PLAN_BYTES`` (a one-off huge batch) is built for its call and freed
right after it, unless its shape recurs (built right before, or twice among the last four
big builds): then it is kept like the others (a training step's shape: an LSTM of 260
steps, 68 MB, rebuilt its plan at every call, 6x the step's time).  ``memory_kept()``
reports it.

Updates are simultaneous and failure-safe.  Most are written *in place*, into the shared
variable's own array (``codegen.fusion.plan_inplace`` proves that every other reader of the old
value runs earlier and no fallible kernel runs later; plain SGD then folds into the gradient
gemm); that array is private to the variable (``get_value`` copies), ``epoch`` steps on one
private copy and ``profile`` on copies.  The others are double-buffered: the kernel writes the
new value into a buffer of the program's that ``Function`` adopts only after the call
succeeded.  ``call`` reassigns only the variables whose array changed.

Split: the IR of the entry ``sg_step`` lives in :mod:`codegen.entry`, ``epoch_steps`` (its IR
and driver) in :mod:`codegen.epoch`, building a plan and its specialised runner in
:mod:`codegen.plans`; this module keeps compiling, keeping plans, calling, errors and
introspection.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from symgraph import storage
from symgraph.backends import CompileRequest, Program
from symgraph.graph import Constant, SharedVariable, Variable, toposort
from symgraph.profiling import describe_nodes

from . import plans
from . import signature as sg_sig
from .epilogue_plan import plan_epilogues
from .fusion import analyse, group_kernels
from .kernel_info import ENTRY, KernelInfo, ModuleContext
from .native import blas, cache, contention, llvmffi, parallel, pycall
from .native.cache import compile_cached
from .native.jit import assembly, host_target
from .plans import Plan, Rejected, arg_checks, getters, make_plan, make_runner, native_array
from .registry import changed_tunables, check_lowerable, load_lowerings

# The lowering itself (codegen.lower, codegen.entry, codegen.partition and the modules of the
# lowering rules) is imported where it is used: a program loaded from the program cache needs
# none of it (codegen.registry, "Warm starts").

#: attributes only the lowering produces (see ``LLVMProgram.__getattr__``)
_LAZY = ("ir_text", "_parts", "_functions", "_kernel_roots")
#: What a compiled function keeps between calls (module docstring, "Memory"): at most
#: ``MAX_PLANS`` shape signatures, least recently used first out, together at most
#: ``MAX_KEPT_BYTES`` of arenas and update buffers; a signature whose own buffers exceed
#: ``MAX_PLAN_BYTES`` (a one-off huge batch) is built for its call and dropped after it,
#: unless its shape recurs (built right before, or twice among the last four big builds:
#: kept if within MAX_KEPT_BYTES).
MAX_PLANS = 8
MAX_PLAN_BYTES = 64 << 20
MAX_KEPT_BYTES = 256 << 20
#: ``codegen.epoch.run_epoch`` once an epoch has run (the module is imported on first use)
_run_epoch = None


class LLVMProgram(Program):
    """Compiled step of a ``Function`` (see module docstring): the ``llvm`` entry of the
    backend registry (``symgraph.backends``), built from a ``CompileRequest``."""

    #: the new values ``run`` returns are arrays nothing else references (adopted without a
    #: copy); most updates are written into the shared variables' own arrays
    fresh_updates = True
    updates_in_place = True

    def __init__(self, request: CompileRequest, *, opt_level: int = 3,
                 loop_unrolling: bool | None = None):
        t0 = time.perf_counter()
        super().__init__(request)
        self.inputs: list[Variable] = list(request.inputs)
        self.shared: list[SharedVariable] = list(request.shared)
        self.outputs: list[Variable] = list(request.graph_outputs)
        self.update_exprs: list[Variable] = request.graph_updates
        self.update_vars = request.update_vars
        self.args = self.inputs + self.shared
        if loop_unrolling is None:  # halves compile time; loops stay vectorised
            loop_unrolling = os.environ.get("SYMGRAPH_LLVM_UNROLL", "0") == "1"
        self._compile(request.rewrite_report, t0, opt_level, loop_unrolling)
        #: calls OpenBLAS's threads (gemms, split loops): then each plan's calls choose one
        #: thread or OpenBLAS's count, whichever runs faster now (``contention.Governor``).
        #: From the kernels: the object code may hold other programs' bodies (kernel_cache)
        self.threaded = contention.enabled() and any(k.blas or k.parallel for k in self.kernels)
        #: argument signature -> the runner of its plan (``run.plan``), least recently used
        #: first; the signature of argument ``a`` is ``(type(a), a.shape, a.dtype)``, then the
        #: shared values' shapes (``_signature``)
        self._cache: OrderedDict[tuple, Any] = OrderedDict()
        self._last = None  # the runner used last: kept in ``_cache``, its most recent entry
        self._nin = len(self.inputs)
        self._kept_bytes = 0
        self._big = plans.RecentBig()  # the last plans over MAX_PLAN_BYTES built and not kept
        self.single = request.single
        self._check_inputs = request.check_inputs
        self._arena_vars = [v for v in self.analysis.kernels if v not in self.direct]

    def _adopt(self, an) -> None:
        """Take the fusion analysis ``an`` (fresh, or from the program cache) and what follows
        from it: the updates the kernels write directly, the arena buffers that back one
        output, the constants."""
        self.analysis = an
        self.direct: dict[Variable, int] = {}  # update targets written directly by kernels
        for j, expr in enumerate(self.update_exprs):
            if an.mode.get(expr) == "buffer" and expr not in self.direct:
                self.direct[expr] = j
        self.target_index = {expr: len(self.args) + n for n, expr in enumerate(self.direct)}
        self._direct_vars = [self.update_vars[j] for j in self.direct.values()]
        # arena buffers that back exactly one output and no update: a call may give each
        # an array of its own, returned without a copy (``plans.make_runner``)
        backs = [an.root(v) for v in self.outputs]
        updated = {an.root(e) for e in self.update_exprs}
        self.output_roots = {r for r in backs if an.mode.get(r) == "buffer" and
                             backs.count(r) == 1 and r not in updated and r not in self.direct}
        self.consts = [v for v, m in an.mode.items() if m in ("const", "literal")
                       and isinstance(v, Constant)]

    # -- compiling (through the program cache) ----------------------------------------------
    def _compile(self, rewrite_report, t0: float, opt_level: int, loop_unrolling: bool) -> None:
        """Set ``kernels``, ``ctx``, ``module``, ``entry`` and ``compile_stats``.

        First the program cache (:func:`codegen.native.cache.load_program`), keyed on the graph's
        canonical signature: a hit needs no lowering and no LLVM (``codegen.native.elf`` loads
        the code; ``ir_text`` is lowered only if asked for).  Otherwise lower, compile through
        the IR-keyed cache, and store the program for next time."""
        t_an = time.perf_counter()
        llvm_init = 0.0  # LLVM is mapped to lower and compile only (not to load: native.elf)
        key = numbering = decoded = None
        self._split_minimum = parallel.split_minimum()  # keyed and lowered with this value
        self._tunables = changed_tunables()  # keyed with these (a later lowering checks them)
        roots = self.outputs + self.update_exprs
        try:
            numbering = sg_sig.Numbering(self, toposort(roots))
            key = cache.program_key(sg_sig.graph_signature(self, numbering),
                                    opt_level=opt_level, loop_unrolling=loop_unrolling,
                                    extra=sg_sig.environment_text(self._split_minimum,
                                                                   self._tunables))
        except Exception:  # noqa: BLE001  (Unsupported, or anything new: the cache is optional)
            key = None
        t_sig = time.perf_counter()
        hit = cache.load_program(key) if key is not None else None
        if hit is not None:
            try:  # the analysis too comes from the cache (``signature.decode_analysis``)
                self._adopt(sg_sig.decode_analysis(hit[1]["program"], roots, numbering))
                decoded = sg_sig.decode_meta(hit[1]["program"], self.analysis, numbering)
                hit[0].address(ENTRY)
            except Exception:  # noqa: BLE001  (malformed metadata: compile as if not cached)
                decoded = None
        t1 = t_loaded = t_analysed = time.perf_counter()
        if decoded is None:
            llvmffi.preload()  # LLVM maps (~9 ms) on a thread while this analyses
            an = analyse(roots, updates=list(zip(self.update_vars, self.update_exprs)))
            plan_epilogues(an)  # (after analyse: the pairs build on its helpers)
            self._adopt(an)
            check_lowerable(self.analysis.nodes)
            t_analysed = time.perf_counter()
        if decoded is not None:
            self.module = hit[0]
            self.kernels, self.ctx = decoded
            t2 = time.perf_counter()
        else:
            t_lower = time.perf_counter()
            host_target()  # map and initialise LLVM (once per process), timed apart
            llvm_init, t_lower = time.perf_counter() - t_lower, time.perf_counter()
            self.ir_text, self.kernels, self.ctx = self._lower()
            t1 = time.perf_counter()
            if self._bodies is None:
                self.module = compile_cached(self.ir_text, opt_level=opt_level,
                                             loop_unrolling=loop_unrolling)
            else:  # body by body, reusing bodies earlier programs compiled
                from .kernel_cache import compile_program  # lazy: lowering only (as above)

                self.module = compile_program(**self._bodies, opt_level=opt_level,
                                              loop_unrolling=loop_unrolling)
            t2 = time.perf_counter()
            if key is not None:
                try:
                    meta = sg_sig.encode_meta(self, self.kernels, self.ctx, numbering)
                except Exception:  # noqa: BLE001  (Unsupported, or anything new: not stored)
                    meta = None
                if meta is not None:
                    cache.store_program(key, self.module, {"program": meta})
        self.entry = self.module.address(ENTRY)
        stats = dict(self.module.stats)
        self.compile_stats = {
            "rewrite": getattr(rewrite_report, "seconds", None),
            "analyse": t_an - t0 + t_analysed - t_loaded,  # (cached: read in program_load)
            "llvm_init": llvm_init,
            "signature": t_sig - t_an,
            "program_load": t_loaded - t_sig if decoded is not None else 0.0,
            "lower": 0.0 if decoded is not None else t1 - t_lower,
            "llvm_optimize": stats.get("optimize", 0.0),
            "machine_code": stats.get("codegen", 0.0),
            "load": stats.get("load", 0.0),
            "compile_total": t2 - t_an - (t_analysed - t_loaded),
            "cache": stats.get("cache"),
            "cache_level": "program" if decoded is not None else "ir",
            "lowered": decoded is None,
            "kernels": len(self.kernels),
            "modules": stats.get("modules", 1),  # compiled on as many threads
            # kernel bodies, and how many of them were compiled (the others were cached)
            "bodies": stats.get("bodies"),
            "bodies_compiled": stats.get("bodies_compiled"),
        }

    def __getattr__(self, name: str):
        # lowering results a program loaded from the program cache produces only on demand,
        # under the lowering settings it was compiled (and keyed) with
        if name in _LAZY and "analysis" in self.__dict__:
            now = changed_tunables()
            if now != self._tunables:
                raise RuntimeError(
                    "this program was compiled under other lowering settings than those in "
                    f"force now ({self._tunables or 'the defaults'}; now "
                    f"{now or 'the defaults'}): restore them to inspect or profile it, or "
                    "compile the function again")
            self.ir_text = self._lower()[0]
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- lowering --------------------------------------------------------------------------
    def _lower(self) -> tuple[str, list[KernelInfo], ModuleContext]:
        load_lowerings()
        from .dedupe import dedupe  # lazy: as above
        from .entry import (  # lazy: lowering only (as above)
            ENTRY_OPT_LEVEL,
            SEGMENT_KERNELS,
            entry_function,
        )
        from .kernel_cache import Body, program_text  # lazy: as above
        from .lower import (  # lazy: as above
            OUTLINE_KERNELS,
            Kernel,
            lower_group,
            math_declarations,
            module_header,
        )
        from .partition import (  # lazy: as above
            MIN_SPLIT_LINES,
            module_count,
            one_module,
            outlined,
        )

        an = self.analysis
        ctx = ModuleContext(an, self._split_minimum)
        ctx.flush_denormals = self.request.flush_denormals
        groups = group_kernels(an)
        ctx.outlined = len(groups) > OUTLINE_KERNELS
        functions, kernels = [], []
        for n, group in enumerate(groups):
            k = Kernel(ctx, f"k{n}")
            members = [node for var in group for node in an.members[var]]
            info = KernelInfo(f"k{n}", group[0], members, outputs=list(group))
            lower_group(k, group)
            for var in group:
                k.ptr(var)
            functions.append(k.finish(info))
            kernels.append((info, list(k.params)))
        kept, target = dedupe([(info.name, text) for (info, _), text in zip(kernels, functions)])
        for info, _ in kernels:
            info.function = target[info.name]
        main = entry_function(self, ctx, kernels)
        parts = [module_header(), math_declarations(ctx.math_used)]
        if ctx.uses_blas:
            parts.append(blas.blas_declarations())
        if ctx.uses_parallel:
            parts.append(parallel.declaration())
        functions = [text for _, _, text in kept]
        together = [outlined(t) for t in functions] if ctx.outlined else functions
        # (the profiling twin is one module: ``together``)
        self._parts, self._functions, self._kernel_roots = parts, together, kernels
        entry = [main]  # (sg_epoch: a module of its own, on the first epoch call)
        header = "\n\n".join(parts)
        lines = sum(t.count("\n") for t in functions)
        segmented = len(kernels) > SEGMENT_KERNELS  # the entry's segments: O0, see partition
        if not segmented and lines < MIN_SPLIT_LINES:  # small: one module, kernels inlined
            self._bodies = None
            return one_module(header, together, entry), [info for info, _ in kernels], ctx
        self._bodies = dict(
            header=header, entry=entry, count=module_count(lines),
            entry_opt_level=ENTRY_OPT_LEVEL if segmented else None,
            bodies=[Body(symbol, text, ["ptr"] * (len(kernels[i][1]) + 1)
                         + ["i64"] * len(kernels[i][0].args)) for i, symbol, text in kept])
        text = program_text(**self._bodies)
        return text, [info for info, _ in kernels], ctx

    def profile(self, args, n: int = 100) -> list[dict]:
        """Time each fused kernel over ``n`` calls on ``args`` (no shared variable changes).

        Returns one dict per kernel, slowest first: ``kernel``, ``ops`` (graph ops it
        computes), ``nodes``/``sites``/``scopes`` (the user's nodes it computes, through the
        rewrites' provenance; ``symgraph.profiling``), ``blas``, ``seconds`` (per call) and
        ``fraction`` of the kernels' time.  Cycles become seconds at the counter's rate,
        measured against the wall clock over the calls, so the call's own cost (checks, the
        builtin's entry) is in no row; shared out by cycles, it overstated small steps (x @ W
        of 32x64x32 showed 2.6-3.0 us in a 3.2 us call whose kernels took 2.6 us in all).
        """
        values, bindings = self._check_inputs(args)
        arrays = [native_array(values[v], v.dtype) for v in self.inputs] + [
            storage.copy(native_array(v._value, v.dtype)) for v in self.shared]
        plan = self._plan_for(arrays, bindings)
        if plan.extra["bad_update"]:
            raise ValueError(plan.extra["bad_update"])
        if getattr(self, "_profile_module", None) is None:
            from .entry import entry_function  # lazy: lowering only

            text = "\n\n".join(self._parts + self._functions + [
                entry_function(self, self.ctx, self._kernel_roots, profile=True),
                "declare i64 @llvm.readcyclecounter()"]) + "\n"
            self._profile_module = compile_cached(text, opt_level=3, loop_unrolling=False)
        counters = np.zeros(len(self.kernels) + 1, dtype=np.int64)  # + the start stamp
        # fresh targets: a pool's buffer may be the array a shared variable holds now
        targets = [arrays[pool] if isinstance(pool, int) else storage.empty(pool[0].shape,
                                                                              pool[0].dtype)
                   for pool in plan.targets]
        ranks = [a.ndim for a in arrays] + [t.ndim for t in targets]
        owned = [plan.arena, plan.table, *[c.value for c in self.consts], counters]
        builtin = pycall.make_builtin(self._profile_module.address(f"{ENTRY}_profile"), ranks,
                                      owned, keepalive=self._profile_module,
                                      **arg_checks(self, plan, arrays))
        builtin(*arrays, *targets)  # warm up
        counters[:] = 0
        stamps = []  # (wall clock, cycle counter) at the start of the first and last call
        t0 = time.perf_counter()
        for i in range(n + 1):
            if i in (0, n):
                wall = time.perf_counter()
            status = builtin(*arrays, *targets)
            if status is not None:
                self._raise(status, plan)
            if i in (0, n):
                stamps.append((wall, int(counters[-1])))
        elapsed = (time.perf_counter() - t0) / (n + 1)
        cycles = [int(c) for c in counters[:-1]]
        total = max(1, sum(cycles))
        (w0, c0), (w1, c1) = stamps
        rate = (c1 - c0) / (w1 - w0) if w1 > w0 else 0.0  # cycles per second
        rows = []
        for info, c in zip(self.kernels, cycles):
            row = {"kernel": info.name, "ops": [node.op.name for node in info.nodes]}
            row.update(describe_nodes(info.user_nodes))
            seconds = c / (n + 1) / rate if rate > 0 else elapsed * c / total
            row.update(blas=info.blas, seconds=seconds, fraction=c / total)
            rows.append(row)
        return sorted(rows, key=lambda r: -r["seconds"])

    def epoch_steps(self, arrays: list[np.ndarray], batch_size: int
                    ) -> tuple[list, list | None] | None:
        """The minibatches of ``Function.epoch`` natively (:func:`codegen.epoch.run_epoch`);
        None (nothing ran) when an output or update is not a plain buffer or there are fewer
        than two full minibatches."""
        global _run_epoch
        if _run_epoch is None:
            from .epoch import run_epoch as _run_epoch  # lazy: f.epoch only, not a warm start
        return _run_epoch(self, arrays, batch_size)

    # -- per-signature plans ---------------------------------------------------------------
    def _make_plan(self, arrays: list[np.ndarray], bindings: dict) -> Plan:
        """A new plan for canonical ``arrays`` (:func:`codegen.plans.make_plan`); a method so
        that ``_runner_for`` builds plans through the program."""
        return make_plan(self, arrays, bindings)

    def _signature(self, arrays: list[np.ndarray]) -> tuple:
        """The cache key of canonical ``arrays`` (inputs then shared values): what ``call``
        computes from its arguments when they need no conversion."""
        key: list = []
        for a in arrays[:len(self.inputs)]:
            key += (a.__class__, a.shape, a.dtype)
        key += [a.shape for a in arrays[len(self.inputs):]]
        return tuple(key)

    def _runner_for(self, arrays: list[np.ndarray], bindings: dict):
        """The runner (``codegen.plans.make_runner``) of the plan for canonical ``arrays``:
        from the cache, or built, and kept if it fits (``MAX_PLAN_BYTES``, or
        ``MAX_KEPT_BYTES`` when the signature recurs among the last big builds; then least
        recently used plans go until ``MAX_PLANS`` and ``MAX_KEPT_BYTES`` hold)."""
        key = self._signature(arrays)
        cache = self._cache
        run = cache.get(key)
        if run is not None:
            cache.move_to_end(key)
            if not run.plan.extra["bad_update"]:  # it raises before the builtin checks
                self._last = run  # the most recently used plan: the fast path's first guess
            return run
        plan = self._make_plan(arrays, bindings)
        getters(self, plan)
        run = make_runner(self, plan, self.single)
        run.plan = plan  # (the plan must not point back: no cycle, a dropped arena is freed
        # at once, not at the next garbage collection)
        repeated = self._big.recurs(key, plan.nbytes > MAX_PLAN_BYTES)
        if plan.nbytes <= MAX_KEPT_BYTES and (plan.nbytes <= MAX_PLAN_BYTES or repeated):
            cache[key] = run
            if not plan.extra["bad_update"]:
                self._last = run
            self._kept_bytes += plan.nbytes
            while len(cache) > MAX_PLANS or self._kept_bytes > MAX_KEPT_BYTES:
                _, old = cache.popitem(last=False)
                self._kept_bytes -= old.plan.nbytes
                if old is self._last:
                    self._last = None
        return run

    def memory_kept(self) -> dict:
        """What this program keeps between calls: ``plans`` (shape signatures), ``bytes``
        (their arenas and update buffers), ``largest`` (bytes of the biggest plan)."""
        sizes = [run.plan.nbytes for run in self._cache.values()]
        return {"plans": len(sizes), "bytes": sum(sizes), "largest": max(sizes, default=0)}

    def node_modes(self) -> dict:
        """``Program.node_modes`` from the fusion analysis: buffered and inlined nodes are
        computed by a kernel; views, aliases and shape-only nodes are not."""
        mode = self.analysis.mode
        return {node: ("kernel" if mode.get(node.outputs[0]) in ("buffer", "inline")
                       else mode.get(node.outputs[0], "dead"))
                for node in self.analysis.all_nodes}

    # -- calling ---------------------------------------------------------------------------
    def call(self, args: tuple):
        """``Function.__call__`` with its checks cached: same semantics (outputs copied,
        updates adopted after success), a repeated call costs about a microsecond.

        The fast path hands the caller's objects straight to the runner of the last plan
        used: its step builtin checks each argument natively before reading it
        (``codegen.native.pycall``: an exact, aligned, C-contiguous ndarray of the plan's dtype and
        shape, and the shared values' shapes), and that is all a plan needs to apply,
        because ``Function.check_inputs`` depends on nothing but dtypes and shapes.  A refused
        call ran nothing; it tries the plan of its signature, then the checked path, which
        converts.  ``Function`` serialises calls, so one call at a time uses a plan's arena.
        """
        shared = []
        for v in self.shared:
            shared.append(v._value)
        run = self._last
        if run is not None and len(args) == self._nin:
            out = run(args, shared)
            if out.__class__ is not Rejected:
                return out
        # the signature: (type, shape, dtype) of each argument, then the shared shapes
        key = []
        try:
            for a in args:
                key += (a.__class__, a.shape, a.dtype)
        except AttributeError:  # not all ndarrays: the checked path
            key = None
        if key is not None:
            for v in shared:
                key.append(v.shape)
            key = tuple(key)
            try:
                run = self._cache.get(key)
            except TypeError:  # an unhashable .shape or .dtype: not an ndarray
                run = None
            if run is not None:
                out = run(args, shared)
                if out.__class__ is not Rejected:
                    self._cache.move_to_end(key)
                    self._last = run
                    return out
        return self._checked_call(args, shared)

    def _checked_call(self, args: tuple, shared: list):
        """The general path: ``Function.check_inputs`` (casts, shapes, bindings), then the
        arrays made what the builtin accepts (``native_array``)."""
        values, bindings = self._check_inputs(args)
        arrays = [native_array(values[v], v.dtype) for v in self.inputs]
        shared = [native_array(a, v.dtype) for a, v in zip(shared, self.shared)]
        out = self._runner_for(arrays + shared, bindings)(arrays, shared)
        if out.__class__ is Rejected:
            raise out.error(self)
        return out

    def _plan_for(self, arrays: list[np.ndarray], bindings: dict) -> Plan:
        """The plan of canonical ``arrays`` (inputs then shared values), through the cache."""
        return self._runner_for(arrays, bindings).plan

    def run(self, values: dict, bindings: dict):
        arrays = [native_array(values[v], v.dtype) for v in self.inputs]
        arrays += [native_array(v._value, v.dtype) for v in self.shared]
        return self._execute(self._plan_for(arrays, bindings), arrays)

    def _launch(self, plan: Plan, arrays: list[np.ndarray]):
        """Run the step: (output arrays, the update target chosen per direct update), or
        (``Rejected``, None) when the builtin refused an argument."""
        extra = plan.extra
        if extra["bad_update"]:
            raise ValueError(extra["bad_update"])
        if extra["pools"]:
            chosen = [arrays[pool] if pool.__class__ is int else self._free_target(pool, var)
                      for pool, var in zip(plan.targets, self._direct_vars)]
        else:  # every direct update is in place (or there is none)
            chosen = [arrays[pool] for pool in plan.targets]
        status = plan.builtin(*arrays, *chosen)
        if status is not None:
            return self._status(status, plan), None
        outs = extra["fixed_outputs"]
        return (outs if outs is not None else self._outputs(plan, arrays, chosen)), chosen

    @staticmethod
    def _outputs(plan: Plan, arrays: list, chosen: list) -> list:
        return [spec[1] if spec[0] == "fixed" else
                (chosen if spec[0] == "direct" else arrays)[spec[1]].reshape(spec[2])
                for spec in plan.extra["outputs"]]

    def _execute(self, plan: Plan, arrays: list[np.ndarray]):
        outs, chosen = self._launch(plan, arrays)
        if chosen is None:
            raise outs.error(self)
        if plan.extra["all_direct"]:
            return outs, chosen
        new, n = [], 0
        for spec in plan.extra["updates"]:
            if spec is None:
                new.append(chosen[n])
                n += 1
            else:
                kind, where, shape = spec
                value = where if kind == "fixed" else \
                    (chosen if kind == "direct" else arrays)[where].reshape(shape)
                new.append(storage.copy(value))
        return outs, new

    @staticmethod
    def _free_target(pool: list, var: Variable) -> np.ndarray:
        """The buffer of ``var``'s pair that is not its current value.

        A pool buffer is only ever adopted as ``var``'s own value (outputs, ``get_value``,
        ``profile`` and ``epoch`` rollback all copy), so the other one is free. Decided by
        identity, not reference counts, which differ between Python versions.
        """
        return pool[1] if pool[0] is var._value else pool[0]

    def _status(self, status: int, plan: Plan | None = None) -> Rejected:
        """A builtin's non-None status: ``Rejected`` for a refused argument (negative), else
        the kernel's runtime error, raised."""
        if status < 0:  # the builtin refused argument -status - 1 (codegen.pycall)
            return Rejected(-status - 1)
        self._raise(status, plan)

    def _raise(self, status: int, plan: Plan | None = None):
        if status < 0:
            raise Rejected(-status - 1).error(self)
        if plan is not None:
            # the failed check's error record (codegen.lower): the numpy backend's exception,
            # word for word -- value, position, axis, size, the user's line. Read while the
            # function's lock is still held, before another call can overwrite the table.
            from .lower import runtime_error  # lazy: lowering module, error path only

            err = runtime_error(self.ctx, plan.table, plan.shapes)
            if err is not None:
                raise err
        info = self.kernels[status - 1]
        node = info.output.owner
        where = f"\n  created at {node.site}" if node.site else ""
        raise IndexError(f"{node.op.name}: an index is out of bounds{where}")

    # -- introspection ---------------------------------------------------------------------
    def llvm_ir(self, optimized: bool = True) -> str:
        """The module's IR: optimised when this process compiled it, else (loaded from the
        disk cache, or ``optimized=False``) the IR the lowering generated."""
        if optimized and self.module.optimized_ir is not None:
            return self.module.optimized_ir
        return self.ir_text

    def asm(self) -> str:
        """Assembly of the optimised module (re-optimised if it came from the disk cache)."""
        return assembly(self.llvm_ir(), 3, optimize=self.module.optimized_ir is None)
