"""``LLVMProgram.epoch_steps``: every full minibatch of an epoch in one native call, and the
last partial one in a second (one step, on that batch size's plan).

Split out of :mod:`codegen.backend` because it is a driver of its own: the IR generator of
``sg_epoch`` (a loop calling ``sg_step`` of :mod:`codegen.entry` per minibatch) and the Python
side that lays out its control block or says the native loop cannot apply.  ``Function.epoch``
owns the rest of the semantics (checks, the shuffle's permutation, restoring the shared
variables on failure) and is the Python loop this native one must equal bit for bit.  The
partial batch ran as a call of ``Function``, whose update buffers may be the arrays the
variables held before the epoch, so ``Function.epoch`` copied every shared variable first:
an epoch of 100 examples (3 x 32 + 4) of a 20k x 64 embedding model with Adam took 10.5 ms
against 2.7 ms for the loop of calls; with the partial step here, 4.5 ms (what is left is
the copy of the in-place updated table and moments, which an epoch keeps to undo a failure).

What the loop costs besides the steps themselves (W4, 56 steps of a 64-32-10 MLP, ~4.7 us a
step): nothing is copied per epoch but the in-place updated variables (once, for rollback).
A minibatch is a pointer into the caller's array; a shuffled epoch (``ShuffledArrays``: the
arrays and the permutation, never ``a[order]``) gathers each step's rows by the permutation
into a small buffer (fixed row sizes are constants: the row copies are a few vector moves).
The outputs are written into their stacks after each step (one stack per output, returned
as is).  ``sg_step`` stays a call (the step's kernels are already inlined into it): a
call-site ``alwaysinline`` into this loop was measured on W2's step at compile_total 245 ->
345 ms (optimise 140 -> 206 ms, machine code 60 -> 90 ms) and a slower epoch (578 vs 543 us,
same run), so the call and its ~40 pointer loads a step stay.  The Python side of a call
(the first minibatch's checks, the control block's ~30 pointers) cost 65 us, a sixth of W4's
epoch, until the checks were cached by signature, the pointers read through
``ctypes.addressof`` and those fixed per plan kept (~25 us then: W4 408 -> ~355 us).  On a
slower machine (AMD EPYC, 2026-12) that side was ~100 us again, a seventh of W4's ~750 us;
what depends only on the plan (``_Layout``: slots, columns, fixed pointers) is now worked out
once and the tables built as lists: a 2-step epoch 147-175 -> 117-128 us, W4 0.92-0.96x
(same process, alternating).  On a faster EPYC the Python side was still ~45 us of a 2-step
epoch's 70; the plan is now found by the arguments' signature without checking the first
minibatch again (``_plan_for``): 57 -> 42 us for ``epoch_steps`` of 2 steps, W4 404 -> 393 us.
"""

from __future__ import annotations

import ctypes
import os
import threading

import numpy as np

from symgraph import storage
from symgraph.function import ShuffledArrays
from symgraph.storage import address as _address  # an epoch's control block takes ~30

from .kernel_info import ENTRY
from .native.cache import compile_cached
from .plans import native_array

EPOCH = "sg_epoch"
#: the loop around the steps is copies and a call: O1 compiled in ~12 ms against ~75 at O3,
#: and W4's epoch ran 0.99-1.00x as fast (interleaved, shuffled or not); O0 in 1.7 ms against
#: O1's 11 (W2's first epoch call 17 -> 7.5 ms), W4 377-385 us either way (alternating
#: processes; llvmlite's LLVM spends ~9 ms on any loop at O1)
EPOCH_OPT_LEVEL = 0
#: the last partial batch runs natively (a second ``sg_epoch`` call) when the shared variables
#: hold at least this many bytes, else as a call of the ``Function``, which copies them all
#: first (to undo a failure): the native call's Python side costs ~15 us more than a call
#: (18.4 against 3.7 us for W2's MLP), about what copying 256 KB in four arrays takes
PARTIAL_NATIVE_BYTES = 256 << 10
#: ctl words before the per-input records: nsteps, template bufs, permutation, batch size,
#: the step function
_HEAD = 5


def _static_bytes(var, skip: int) -> int | None:
    """Bytes of ``var``'s shape after its first ``skip`` dims when they are all fixed."""
    dims = var.shape[skip:]
    if not all(isinstance(d, (int, np.integer)) for d in dims):
        return None
    return int(np.prod(dims, dtype=np.int64)) * np.dtype(var.dtype).itemsize


def epoch_module(program) -> str:
    """The IR of a module of its own holding ``i32 sg_epoch(ptr ctl)``: ``sg_step`` over
    consecutive minibatches in one call of ``program`` (an ``LLVMProgram``: its arguments,
    direct updates, constants).

    It is compiled on the first ``epoch`` call (:func:`epoch_fn`), not with the step: a
    function that is only ever called pays nothing for it (jax compiles a ``lax.scan`` apart
    from the ``jit`` of its step too; W1-SGD's cold backend stage 172 -> 162 ms).  It calls the step
    through a pointer in ``ctl``, so its text, the disk cache's key, is the same in every
    process.

    ``ctl`` (int64): ``[nsteps, templates, permutation or 0, batch size, sg_step, (base,
    row bytes, gather buffer) per input, (source, destination, bytes) per output]``.
    ``templates`` are ``sg_step``'s pointer tables for the first, the odd and the even steps
    (one when nothing is updated): step 0 reads each updated variable from its original and
    writes A, odd steps read A and write B, even steps read B and write A (A = B: in place on
    the caller's private copy), so the arrays the variables held are never written (a failed
    epoch changes nothing).  Step ``s`` reads input rows ``s*B .. s*B+B`` in place
    (``base + s*B*row``), or, with a permutation ``p``, rows ``p[s*B + r]`` gathered into the
    input's buffer; outputs are copied out of the arena into row ``s`` of their stacks after
    every step.  A step that fails returns its status at once, having written its number
    into ``ctl[0]``.  (The tables are copied whole per step rather than A/B chosen per update by
    selects: SLP vectorisation of those stores took ~50 ms of a convnet's cold compile.)
    """
    from .irgen import INTRINSIC_DECLARATIONS, FunctionBuilder  # lazy: on the first epoch

    fb = FunctionBuilder("e")
    nin, nupd = len(program.inputs), len(program.direct)
    nbufs = len(program.args) + nupd + 2 + len(program.consts)

    def ctl(i: int, ty: str) -> str:
        p = fb.entry_op(f"cp{i}", f"getelementptr inbounds i64, ptr %ctl, i64 {i}")
        return fb.entry_op(f"cv{i}", f"load {ty}, ptr {p}")

    def slot(i: int) -> str:
        return fb.entry_op(f"sp{i}", f"getelementptr inbounds ptr, ptr %bufs, i64 {i}")

    def copy(dst: str, src: str, nbytes: str) -> None:
        fb.emit(f"call void @llvm.memcpy.p0.p0.i64(ptr {dst}, ptr {src}, i64 {nbytes}, i1 0)")

    fb.entry.append(f"  %bufs = alloca [{nbufs} x ptr]")
    nsteps, perm, batch, step = ctl(0, "i64"), ctl(2, "ptr"), ctl(3, "i64"), ctl(4, "ptr")
    templates, table_bytes = ctl(1, "ptr"), nbufs * 8
    if not nupd:
        copy("%bufs", templates, str(table_bytes))
    rows = []  # per input: base, row bytes (a constant when the row shape is fixed), buffer
    for k, var in enumerate(program.inputs):
        fixed = _static_bytes(var, 1)
        rb = str(fixed) if fixed is not None else ctl(_HEAD + 3 * k + 1, "i64")
        rows.append((ctl(_HEAD + 3 * k, "ptr"), rb, ctl(_HEAD + 3 * k + 2, "ptr")))
    shuffled = fb.entry_op("shuf", f"icmp ne ptr {perm}, null")
    s, tok = fb.loop_begin(nsteps)
    if nupd:
        odd = fb.op(f"icmp ne i64 {fb.op(f'and i64 {s}, 1')}, 0")
        which = fb.op(f"select i1 {odd}, i64 {table_bytes}, i64 {2 * table_bytes}")
        which = fb.op(f"select i1 {fb.op(f'icmp eq i64 {s}, 0')}, i64 0, i64 {which}")
        copy("%bufs", fb.op(f"getelementptr inbounds i8, ptr {templates}, i64 {which}"),
             str(table_bytes))
    first_row = fb.op(f"mul i64 {s}, {batch}")
    for k, (base, rb, _) in enumerate(rows):
        off = fb.op(f"mul i64 {first_row}, {rb}")
        fb.emit(f"store ptr {fb.op(f'getelementptr inbounds i8, ptr {base}, i64 {off}')}, "
                f"ptr {slot(k)}")
    if nin:
        done = fb.if_begin(shuffled)
        r, rtok = fb.loop_begin(batch)
        at = fb.op(f"getelementptr inbounds i64, ptr {perm}, i64 "
                   f"{fb.op(f'add i64 {first_row}, {r}')}")
        row = fb.op(f"load i64, ptr {at}")
        for base, rb, buf in rows:
            src = fb.op(f"getelementptr inbounds i8, ptr {base}, i64 "
                        f"{fb.op(f'mul i64 {row}, {rb}')}")
            dst = fb.op(f"getelementptr inbounds i8, ptr {buf}, i64 "
                        f"{fb.op(f'mul i64 {r}, {rb}')}")
            copy(dst, src, rb)
        fb.loop_end(rtok)
        for k, (_, _, buf) in enumerate(rows):
            fb.emit(f"store ptr {buf}, ptr {slot(k)}")
        fb.if_end(done)
    status = fb.op(f"call i32 {step}(ptr %bufs, ptr null)")
    bad = fb.op(f"icmp ne i32 {status}, 0")
    done = fb.if_begin(bad)
    fb.emit(f"store i64 {s}, ptr %ctl")  # ctl[0] := the failing step, for the message
    fb.emit(f"ret i32 {status}")
    fb.start_block(fb.label("dead"))
    fb.if_end(done)
    for o, var in enumerate(program.outputs):
        base = _HEAD + 3 * nin + 3 * o
        fixed = _static_bytes(var, 0)
        nbytes = str(fixed) if fixed is not None else ctl(base + 2, "i64")
        off = fb.op(f"mul i64 {s}, {nbytes}")
        copy(fb.op(f"getelementptr inbounds i8, ptr {ctl(base + 1, 'ptr')}, i64 {off}"),
             ctl(base, "ptr"), nbytes)
    fb.loop_end(tok)
    return "\n\n".join([INTRINSIC_DECLARATIONS, "!0 = !{}",
                         fb.finish(f"define i32 @{EPOCH}(ptr noalias %ctl) {{")]) + "\n"


def run_epoch(program, arrays, batch_size: int) -> tuple[list, list | None] | None:
    """The minibatches of ``Function.epoch`` natively (see :func:`epoch_module`): ``arrays``
    are checked (one per input, equal first dims), either a list (consecutive rows) or a
    ``ShuffledArrays`` (rows in its permutation's order, gathered per step: the dataset is
    never copied), ``batch_size`` positive.  Adopts the final values of the updated
    variables and returns ``(stacks, last)``: each output stacked over the full minibatches,
    and the outputs of the last partial batch's step (a second call of the loop on that
    batch size's plan, one step), or None when there is no partial batch, the shared
    variables are small (below ``PARTIAL_NATIVE_BYTES``: copying them costs less than the
    native call) or its plan does not suit the loop (then ``Function.epoch`` runs it as a
    call).  Nothing writes the arrays the variables held before the epoch, so undoing a
    failed step needs no copy (``Function.epoch`` puts those arrays back).  None, having run
    nothing, when the native loop cannot apply: fewer than two full minibatches, an update
    that is not a plain buffer, or an output that is not in the arena."""
    order = None
    if isinstance(arrays, ShuffledArrays):
        arrays, order = arrays.source, arrays.order
    n = arrays[0].shape[0] if arrays else 0
    full = n // batch_size
    if full < 2 or len(program.direct) != len(program.update_exprs):
        return None
    if order is not None:
        order = np.ascontiguousarray(order, dtype=np.int64)
        if order.shape != (n,):
            raise ValueError(f"epoch: a permutation of {n} examples has shape {order.shape}")
    try:
        found = _plan_for(program, arrays, order, batch_size)
    except Exception as err:
        # the first minibatch's checks and plan: step 0's error, as the Python loop names it
        err.epoch_step = 0
        raise
    if found is None:
        return None
    plan, layout = found
    rest = n - full * batch_size
    partial = None
    if rest and sum(v._value.nbytes for v in program.shared) >= PARTIAL_NATIVE_BYTES:
        try:  # (the partial batch's plan: a failure of its checks is left to the call to name)
            partial = _plan_for(program, arrays, order, rest)
        except Exception:
            partial = None
    arrays = [_native(np.asarray(a), v.dtype) for a, v in zip(arrays, program.inputs)]
    shared = [_native(v._value, v.dtype) for v in program.shared]
    nin = layout.nin
    # in-place updates step on one private copy (the caller's arrays are never written)
    fresh = []
    for slot, in_place, shape, dtype in layout.updates:
        if in_place:
            copy = storage.copy(shared[slot - nin])
            fresh.append((copy, copy))
        else:
            fresh.append((storage.empty(shape, dtype), storage.empty(shape, dtype)))
    stacks = _loop(program, plan, layout, arrays, order, 0, full, batch_size, shared, fresh)
    last = (full - 1) % 2
    final = [pair[last] for pair in fresh]
    # adopted now: a Ctrl-C before the partial step leaves the full steps applied, each
    # whole, as Function.epoch promises; a failure of that step restores the arrays the
    # variables held before the epoch, which nothing has written
    for var, value in zip(program._direct_vars, final):
        var._value = value
    outputs = None
    if partial is not None:
        part_plan, part_layout = partial
        # one more step reading the values the full steps left and writing a buffer that is
        # not one the variables held: the full loop's other buffer, or in place its private
        # copy (which updates are in place is the program's choice, the same in every plan)
        part_shared, part_fresh = list(shared), []
        for (slot, in_place, *_), pair, value in zip(part_layout.updates, fresh, final):
            part_shared[slot - nin] = value
            target = value if in_place else pair[1 - last]
            part_fresh.append((target, target))
        outputs = [stack[0] for stack in _loop(
            program, part_plan, part_layout, arrays, order, full * batch_size, 1, rest,
            part_shared, part_fresh, first_step=full)]
        for var, (value, _) in zip(program._direct_vars, part_fresh):
            var._value = value
    return stacks, outputs


def _loop(program, plan, layout, arrays: list, order, first_row: int, nsteps: int,
          batch_size: int, shared: list, fresh: list, first_step: int = 0) -> list:
    """``sg_epoch`` over ``nsteps`` minibatches of ``batch_size`` rows from row ``first_row``
    (of the permutation ``order``, when given) with ``plan``: the shared values and each
    direct update's pair of buffers (:func:`epoch_module`'s A, B) given; -> each output
    stacked over the steps.  A failed step raises its error, ``err.epoch_step`` its number
    in the epoch (``first_step`` + its number here)."""
    nin = layout.nin
    stacks = [np.empty((nsteps, *shape), dtype) for shape, dtype in layout.stacked]
    perm = 0 if order is None else _address(order) + 8 * first_row
    ctl = [nsteps, 0, perm, batch_size, layout.entry]
    gather = [storage.empty((batch_size, *a.shape[1:]), a.dtype) if order is not None else None
              for a in arrays]
    for a, buf in zip(arrays, gather):
        base = _address(a) + (first_row * a.strides[0] if order is None else 0)
        ctl += (base, a.strides[0], 0 if buf is None else _address(buf))
    for (source, nbytes), st in zip(layout.sources, stacks):
        ctl += (source, _address(st), nbytes)
    # sg_step's pointer tables: step 0, odd steps, even steps (``epoch_module``); the loop
    # writes every input's pointer before each step, so theirs are left 0
    row = layout.row[:]
    for slot in layout.read_slots:
        row[slot] = _address(shared[slot - nin])
    if layout.updates:
        first, odd, even = row, row[:], row[:]
        for (slot, in_place, _, _), target, (a_arr, b_arr) in zip(
                layout.updates, layout.targets, fresh):
            b = _address(b_arr)
            a = b if in_place else _address(a_arr)
            if in_place:
                first[slot] = a  # reads its private copy from the first step on
            first[target] = odd[slot] = even[target] = a
            odd[target] = even[slot] = b
        templates = np.array((first, odd, even), dtype=np.uint64)
    else:
        templates = np.array((row,), dtype=np.uint64)
    ctl[1] = _address(templates)
    ctl_array = np.array(ctl, dtype=np.uint64)
    loop = epoch_fn(program)
    governor = plan.extra.get("governor")
    _loop_starts()
    try:
        if governor is None:
            status = loop(_address(ctl_array))
        else:  # the thread count the plan's calls run fastest on now (contention.py)
            status = governor.run(loop, _address(ctl_array), steps=nsteps)
    finally:
        _loop_ends()
    del gather  # alive until here: the native loop wrote the minibatches into them
    if status:
        try:
            program._raise(status, plan)
        except Exception as err:
            # sg_epoch stored the step in ctl[0] (Function.epoch names it)
            err.epoch_step = first_step + int(ctl_array[0])
            raise
    return stacks


class _Layout:
    """What an epoch's control block takes from its plan, worked out on the plan's first
    epoch and kept in ``plan.extra``: per direct update its argument slot, whether it is in
    place (else its buffers' shape and dtype) and its column in the pointer tables; the
    pointer-table row with the fixed pointers (arena, table, constants) in place, the slots
    that take the shared values' pointers (all but the in-place updated ones, which step on
    private copies), the output sources, their bytes and shapes, the step function.  The
    rest (the caller's arrays, the private copies, the stacks) is new in every call."""

    __slots__ = ("updates", "targets", "nin", "row", "read_slots", "sources", "stacked",
                 "entry")

    def __init__(self, program, plan):
        self.updates = []
        self.targets = []
        for (expr, j), pool in zip(program.direct.items(), plan.targets):
            in_place = isinstance(pool, int)  # (then ``pool`` is the variable's slot)
            if in_place:
                self.updates.append((pool, True, None, None))
            else:
                slot = program.args.index(program.update_vars[j])
                self.updates.append((slot, False, pool[0].shape, pool[0].dtype))
            self.targets.append(program.target_index[expr])
        self.nin = nin = len(program.inputs)
        private = {slot for slot, in_place, *_ in self.updates if in_place}
        self.read_slots = [nin + i for i in range(len(program.shared))
                           if nin + i not in private]
        # the inputs' pointers stay 0: the loop writes each one before every step
        self.row = [0] * (nin + len(program.shared) + len(self.targets)) + [
            _address(plan.arena), _address(plan.table),
            *[_address(c.value) for c in program.consts]]
        outputs = plan.extra["outputs"]
        self.sources = [(_address(spec[1]), spec[1].nbytes) for spec in outputs]
        self.stacked = [(spec[1].shape, spec[1].dtype) for spec in outputs]
        self.entry = program.module.address(ENTRY)


def _plan_for(program, arrays: list, order, batch_size: int):
    """The plan of the first minibatch of these arguments and its ``_Layout``, or None when
    its outputs or updates do not suit the native loop.  The plan's signature is kept by
    the arguments' (batch size, shuffled or not, each array's type, row shape and dtype, the
    shared values' shapes), and the plan taken from the program's plan cache while that
    still holds it; otherwise the first minibatch is checked (``check_inputs``, as a call of
    it would be) and the plan looked up or made.

    Why: the checks, the minibatch's canonical arrays and the plan lookup took ~15 us of
    every epoch call (W4's is ~400 us), though they depend on nothing but that signature
    (``Function.check_inputs`` depends only on dtypes and shapes, as ``LLVMProgram.call``'s
    fast path relies on too).  Only signatures are kept here: an evicted plan's arena is
    freed as the plan cache intends."""
    try:
        key = (batch_size, order is None,
               *[(a.__class__, a.shape[1:], a.dtype) for a in arrays],
               *[v._value.shape for v in program.shared])
    except AttributeError:
        key = None
    signatures = program.__dict__.setdefault("_epoch_signatures", {})
    sig = signatures.get(key) if key is not None else None
    if sig is not None:
        cache = program._cache
        run = cache.get(sig)
        layout = None if run is None else run.plan.extra.get("epoch_layout")
        if layout is not None:
            cache.move_to_end(sig)
            program._last = run  # as ``_runner_for`` does (a call's first guess)
            return run.plan, layout
    first = [a[order[:batch_size]] if order is not None else a[:batch_size] for a in arrays]
    values, bindings = program.request.check_inputs(first)
    batch = [_native(values[v], v.dtype) for v in program.inputs] + [
        _native(v._value, v.dtype) for v in program.shared]
    plan = program._plan_for(batch, bindings)
    if plan.extra["bad_update"] or any(spec[0] != "fixed" for spec in plan.extra["outputs"]):
        return None
    layout = plan.extra.get("epoch_layout")
    if layout is None:
        layout = plan.extra["epoch_layout"] = _Layout(program, plan)
    if key is not None:
        if len(signatures) >= 16:
            signatures.clear()
        signatures[key] = program._signature(batch)
    return plan, layout


def _native(array, dtype):
    """``plans.native_array``, with the common case (an exact, aligned, C-contiguous
    ndarray of ``dtype``) answered first: an epoch call takes one per input and variable."""
    if array.__class__ is np.ndarray and array.dtype is dtype:
        flags = array.flags
        if flags.c_contiguous and flags.aligned:
            return array
    return native_array(array, dtype)


_running = 0  # native epoch loops in progress (without the GIL)
_loops = threading.Condition()


def _loop_starts() -> None:
    """Count a native loop in progress: a fork waits for them. OpenBLAS shuts its workers
    down in its own fork handler; a fork from another thread while a loop was in a gemm or
    a split elementwise loop (``gotoblas_pthread``) left that loop spinning forever.  (Two
    functions, not a context manager: ~2.5 us less of every epoch call.)"""
    global _running
    with _loops:
        _running += 1


def _loop_ends() -> None:
    global _running
    with _loops:
        _running -= 1
        _loops.notify_all()


def _before_fork() -> None:
    _loops.acquire()  # held over the fork: no loop starts until it is done
    while _running:
        _loops.wait()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_loops.release,
                        after_in_child=_loops.release)


def epoch_fn(program):
    """``sg_epoch`` of ``program`` as a ctypes function: :func:`epoch_module` compiled
    (through the IR-keyed caches, so usually loaded from disk) on the first epoch call of a
    program, and kept with it."""
    fn = getattr(program, "_epoch_cfunc", None)
    if fn is None:
        module = program._epoch_module = compile_cached(epoch_module(program),
                                                        opt_level=EPOCH_OPT_LEVEL)
        fn = program._epoch_cfunc = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)(
            module.address(EPOCH))
    return fn
