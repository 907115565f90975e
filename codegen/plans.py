"""Per-signature plans of an ``LLVMProgram``: what depends on one call's concrete shapes.

Split out of :mod:`codegen.backend` so that building a plan -- shape inference, the zero-size
reduction check, the arena layout, the int64 table of sizes and offsets, the update targets
(in place or a pool of two buffers) and the ``METH_FASTCALL`` step builtin with its native
argument checks -- the per-plan getters of outputs and new values, and the plan's runner
(the call path specialised for it: ``make_runner``, and ``Rejected``, what it returns when
the builtin refuses an argument) are read in one place.  Keeping plans (the LRU,
``memory_kept``) and choosing one per call stay with the program.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from operator import itemgetter
from typing import Any

import numpy as np

from symgraph import storage
from symgraph.graph import Constant

from .memory import aligned_empty, infer_shapes, node_error, plan_arena
from .native import contention, pycall


def native_array(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` as the step builtin accepts it: an exact, aligned, C-contiguous
    ``numpy.ndarray`` of ``dtype`` (itself when it is one, else a converted copy or view)."""
    if array.__class__ is not np.ndarray or not array.flags.aligned:
        array = np.array(array, dtype=dtype, order="C", copy=True, subok=False)
    elif array.dtype != dtype:
        array = array.astype(dtype, order="C")
    elif not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    if array.dtype.num != dtype.num or array.dtype.byteorder != dtype.byteorder:
        array = array.view(dtype)  # equal but not equivalent for the builtin ('q' for 'l')
    return array


class ArgumentRejected(TypeError):
    """The step builtin refused an argument that the backend itself prepared (a bug)."""


class Rejected:
    """What a runner returns when the step builtin refused argument ``index`` (not an
    exact, aligned, C-contiguous ndarray of the planned dtype and shape); nothing ran.
    ``call`` then takes its checked path, which converts; a plain value, not an exception,
    because refusing is the common way a plan's fast path finds out it does not apply."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def error(self, program) -> ArgumentRejected:
        names = [v.name or "?" for v in program.args] + [
            f"new value of {program.update_vars[j].name}" for j in program.direct.values()]
        return ArgumentRejected(f"argument {self.index} ({names[self.index]}) is not an "
                                "aligned, C-contiguous numpy.ndarray of the compiled dtype "
                                "and shape")


class RecentBig:
    """The signatures of the last plans over ``MAX_PLAN_BYTES`` built and not kept: one that
    recurs (built right before, or twice among the last four: a full batch and an epoch's
    ragged last one alternate) is a training shape worth keeping, not a one-off batch."""

    def __init__(self):
        self.keys: deque = deque(maxlen=4)

    def recurs(self, key: tuple, big: bool) -> bool:
        """Whether the plan of ``key`` just built is a recurring big one (then forgotten
        here: it is kept); a plan that is not ``big`` clears the record."""
        keys = self.keys
        if not big:
            keys.clear()
            return False
        repeated = bool(keys) and (keys[-1] == key or keys.count(key) >= 2)
        if repeated:
            while key in keys:
                keys.remove(key)
        else:
            keys.append(key)
        return repeated


class Plan:
    """Everything that depends on the concrete shapes of one call signature."""

    __slots__ = ("builtin", "shapes", "arena", "table", "views", "targets", "extra", "nbytes")

    def __init__(self, builtin: Any, shapes: dict, arena: np.ndarray, table: np.ndarray,
                 views: dict, targets: list):
        self.builtin, self.shapes, self.arena, self.table = builtin, shapes, arena, table
        self.views = views  # arena variable -> ndarray view with its concrete shape
        #: per direct update: a pool [array, array, ...], or the argument index of the shared
        #: variable it is written into (in place)
        self.targets = targets
        self.extra: dict = {}
        self.nbytes = 0  # arena and update buffers: what keeping this plan costs


def make_plan(program, arrays: list[np.ndarray], bindings: dict) -> Plan:
    """The plan of ``program`` (an ``LLVMProgram``) for canonical ``arrays`` (inputs, then
    shared values) and the symbolic dims' ``bindings``."""
    an = program.analysis
    shapes: dict = {v: a.shape for v, a in zip(program.args, arrays)}
    for v in an.mode:
        if isinstance(v, Constant):
            shapes[v] = v.value.shape
    infer_shapes(an.all_nodes, shapes, bindings)
    # numpy refuses max/argmax/softmax over an empty axis, even when the result is empty
    # too ((0, 0).max(axis=0))
    for node in an.nodes:
        op = node.op
        axes = op.no_identity_axes(node)
        if axes:
            xs = shapes[node.inputs[0]]
            if any(xs[a] == 0 for a in axes):
                raise node_error(node, shapes, ValueError(
                    "zero-size reduction without identity"))
    # arena
    step_of = {v: n for n, info in enumerate(program.kernels) for v in info.outputs}
    sizes, birth, death = {}, {}, {}
    forever = len(program.kernels) + 1
    keep = {an.root(v) for v in program.outputs + program.update_exprs}
    for var in program._arena_vars:
        sizes[var] = math.prod(shapes[var]) * var.dtype.itemsize
        birth[var] = death[var] = step_of[var]
        if var in keep:
            death[var] = forever
    for n, info in enumerate(program.kernels):
        for root in info.reads:
            if root in death and root not in info.outputs:
                death[root] = max(death[root], n)
    offsets, total = plan_arena(sizes, birth, death)
    arena = aligned_empty(max(total, 64))
    env = {"bindings": bindings, "offsets": offsets, "arena_address": storage.address(arena)}
    table = np.array([fn(shapes, env) for fn in program.ctx.slots] or [0], dtype=np.int64)
    views = {}
    for var, off in offsets.items():
        n = math.prod(shapes[var])
        views[var] = np.frombuffer(arena, dtype=var.dtype, count=n,
                                   offset=off).reshape(shapes[var])
    targets = []  # per direct update: a pool of buffers, or (in place) the argument index
    for expr, j in program.direct.items():
        var = program.update_vars[j]
        if expr in an.inplace:
            targets.append(program.args.index(var))
            continue
        targets.append([storage.empty(shapes[expr], var.dtype) for _ in range(2)])
    ranks = [a.ndim for a in arrays] + [len(shapes[e]) for e in program.direct]
    owned = [arena, table, *[c.value for c in program.consts]]
    plan = Plan(None, shapes, arena, table, views, targets)
    plan.builtin = pycall.make_builtin(program.entry, ranks, owned, name="sg_step",
                                       keepalive=program.module,
                                       **arg_checks(program, plan, arrays))
    if program.threaded:  # one thread or OpenBLAS's, whichever is faster now
        plan.extra["governor"] = governor = contention.Governor()
        plan.builtin = governor.wrap(plan.builtin)
    plan.nbytes = arena.nbytes + table.nbytes + sum(
        b.nbytes for pool in targets if not isinstance(pool, int) for b in pool)
    return plan


def arg_checks(program, plan: Plan, arrays: list[np.ndarray]) -> dict:
    """What the step builtin checks natively per argument (``pycall.make_builtin``):
    inputs, shared values, then update targets (written: writeable)."""
    targets = [program.update_vars[j] for j in program.direct.values()]
    return {"dtypes": [v.dtype for v in program.args] + [v.dtype for v in targets],
            "shapes": [a.shape for a in arrays] + [plan.shapes[e] for e in program.direct],
            "writeable": [False] * len(program.args) + [True] * len(targets)}


def getters(program, plan: Plan) -> None:
    """Per plan: how to fetch each output / update value after a call."""
    direct = list(program.direct)
    arg_pos = {v: k for k, v in enumerate(program.args)}

    def getter(var):
        root, shape = program.analysis.root(var), plan.shapes[var]
        if root in program.direct:
            return ("direct", direct.index(root), shape)
        if root in arg_pos:
            return ("arg", arg_pos[root], shape)
        if isinstance(root, Constant):
            return ("fixed", root.value.reshape(shape), None)
        return ("fixed", plan.views[root].reshape(shape), None)
    plan.extra["outputs"] = [getter(v) for v in program.outputs]
    # large outputs a call writes into an array of its own (no copy): (table slot, the
    # root's shape, dtype, the slot's arena address, output index, the output's shape)
    fresh = []
    for i, var in enumerate(program.outputs):
        root = program.analysis.root(var)
        slot = program.ctx._slot_keys.get(("outp", root.id))
        if slot is None or root not in program.output_roots:
            continue
        shape = plan.shapes[root]
        if math.prod(shape) * root.dtype.itemsize >= FRESH_OUTPUT_BYTES:
            fresh.append((slot, shape, root.dtype, int(plan.table[slot]), i,
                          plan.shapes[var]))
    plan.extra["fresh"] = fresh
    plan.extra["updates"] = [None if program.direct.get(e) == j else getter(e)
                             for j, e in enumerate(program.update_exprs)]
    plan.extra["all_direct"] = all(spec is None for spec in plan.extra["updates"])
    plan.extra["bad_update"] = None
    for var, expr in zip(program.update_vars, program.update_exprs):
        old = plan.shapes[var] if var in plan.shapes else var._value.shape
        if tuple(plan.shapes[expr]) != tuple(old):
            plan.extra["bad_update"] = (f"update of {var.name!r} would change its shape "
                                        f"from {tuple(old)} to {tuple(plan.shapes[expr])}")
    # for ``call``: the variables whose value object changes (an in-place update keeps
    # its array), each with its getter spec ("chosen", n) or the output-style spec
    assign, n = [], 0
    for var, spec in zip(program.update_vars, plan.extra["updates"]):
        if spec is None:
            if not isinstance(plan.targets[n], int):
                assign.append((var, "chosen", n, None))
            n += 1
        else:
            assign.append((var, *spec))
    plan.extra["assign"] = assign
    outs = plan.extra["outputs"]
    plan.extra["fixed_outputs"] = [spec[1] for spec in outs] \
        if all(spec[0] == "fixed" for spec in outs) else None
    plan.extra["pools"] = any(not isinstance(t, int) for t in plan.targets)


def make_runner(program, plan: Plan, single: bool):
    """The rest of ``LLVMProgram.call`` for one plan, specialised: ``run(inputs, shared
    values)`` launches the step, adopts the new values and returns the copied outputs -- or
    a ``Rejected`` when the builtin refused an argument (nothing ran, nothing changed).
    Built once per plan, so the per-call path is this closure and nothing else."""
    extra, builtin = plan.extra, plan.builtin
    raise_ = functools.partial(program._status, plan=plan)
    outs, assign = extra["fixed_outputs"], extra["assign"]
    targets = tuple(plan.targets)
    if extra["fresh"]:
        return _fresh_output_runner(program, plan, single)
    if not (extra["pools"] or extra["bad_update"] or assign) and outs is not None:
        # the common case: every direct update is in place (or there is none), the
        # outputs live in the arena or are constants, no variable changes its array
        if single:
            o = outs[0]
            scalar = o.ndim == 0  # a numpy scalar, else a copy
            if not targets:
                def run(args, shared):
                    status = builtin(*args, *shared)
                    if status is not None:
                        return raise_(status)
                    return o[()] if scalar else o.copy()
                return run

            if len(targets) == 1:
                t0 = targets[0]

                def run(args, shared):
                    arrays = (*args, *shared)
                    status = builtin(*arrays, arrays[t0])
                    if status is not None:
                        return raise_(status)
                    return o[()] if scalar else o.copy()
                return run
            pick = itemgetter(*targets)  # a tuple: two targets or more

            def run(args, shared):
                arrays = (*args, *shared)
                status = builtin(*arrays, *pick(arrays))
                if status is not None:
                    return raise_(status)
                return o[()] if scalar else o.copy()
            return run
    launch, outputs = program._launch, program._outputs

    def run(args, shared):
        arrays = [*args, *shared]
        if extra["pools"] or extra["bad_update"]:
            outputs_, chosen = launch(plan, arrays)
            if chosen is None:
                return outputs_  # Rejected
        else:  # every direct update is in place (or there is none)
            chosen = [arrays[t] for t in targets]
            status = builtin(*arrays, *chosen)
            if status is not None:
                return raise_(status)
            outputs_ = outs if outs is not None else outputs(plan, arrays, chosen)
        _adopt(assign, chosen, arrays)
        if single:
            o = outputs_[0]
            return o[()] if o.ndim == 0 else o.copy()
        return [o[()] if o.ndim == 0 else o.copy() for o in outputs_]
    return run


def _adopt(assign: list, chosen: list, arrays: list) -> None:
    """The variables take their new values (in-place updates already have): fresh arrays of
    the right shape and dtype, nothing else references them."""
    for var, kind, where, shape in assign:
        if kind == "chosen":
            var._value = chosen[where]
        elif kind == "fixed":
            var._value = storage.copy(where)
        else:
            var._value = storage.copy(
                (chosen if kind == "direct" else arrays)[where].reshape(shape))


#: an output of at least this many bytes is written into an array of its own per call and
#: returned as it is; smaller ones are copied out of the arena (cheaper than an allocation)
FRESH_OUTPUT_BYTES = 1 << 16


def _fresh_output_runner(program, plan: Plan, single: bool):
    """``run`` of a plan with large outputs: each gets a new array, its address written into
    the table slot the step reads it from, and is returned without the copy out of the
    arena (which made memory-bound functions ~2x numpy). The slots get the arena's address
    back before returning, whatever happened: an epoch, a profile or a failed call never
    writes into an array the user holds."""
    fresh, table, extra = plan.extra["fresh"], plan.table, plan.extra
    launch = program._launch
    own = {index for *_, index, _ in fresh}

    def run(args, shared):
        arrays = [*args, *shared]
        buffers = [storage.empty(shape, dtype) for _, shape, dtype, *_ in fresh]
        try:
            for (slot, *_), buffer in zip(fresh, buffers):
                table[slot] = storage.address(buffer)
            outputs_, chosen = launch(plan, arrays)
        finally:
            for slot, _, _, arena_address, *_ in fresh:
                table[slot] = arena_address
        if chosen is None:
            return outputs_  # Rejected
        outputs_ = list(outputs_)  # (the arena's views, replaced by the arrays of their own)
        for (*_, index, shape), buffer in zip(fresh, buffers):
            outputs_[index] = buffer.reshape(shape)
        _adopt(extra["assign"], chosen, arrays)
        result = [o if k in own else o[()] if o.ndim == 0 else o.copy()
                  for k, o in enumerate(outputs_)]
        return result[0] if single else result
    return run
