"""``LLVMProgram.epoch_steps``: every full minibatch of an epoch in one native call.

Split out of :mod:`codegen.backend` because it is a driver of its own: the IR generator of
``sg_epoch`` (a loop calling ``sg_step`` of :mod:`codegen.entry` per minibatch, updates
double-buffered so a failed epoch changes nothing) and the Python side that lays out its
control block or says the native loop cannot apply.  ``Function.epoch`` owns the rest of
the semantics (checks, shuffling, the last partial batch, restoring the shared variables on
failure) and is the Python loop this native one must equal bit for bit.
"""

from __future__ import annotations

import ctypes

import numpy as np

from .entry import ENTRY
from .irgen import FunctionBuilder
from .plans import native_array

EPOCH = "sg_epoch"


def epoch_function(program) -> str:
    """``i32 sg_epoch(ptr ctl)``: ``sg_step`` over consecutive minibatches in one call of
    ``program`` (an ``LLVMProgram``: its arguments, direct updates, constants).

    ``ctl`` (int64): ``[nsteps, template bufs, (base, step bytes) per input,
    (original, A, B) per direct update, (source, destination, bytes) per output]``.  Step
    ``s`` reads each updated variable from the previous step's target and writes the
    other of A/B, so the caller's arrays are never written (a failed epoch changes
    nothing); outputs are copied out of the arena after every step.
    """
    fb = FunctionBuilder("e")
    nin, nupd, nout = len(program.inputs), len(program.direct), len(program.outputs)
    nbufs = len(program.args) + nupd + 2 + len(program.consts)

    def ctl(i: int, ty: str) -> str:
        p = fb.op(f"getelementptr inbounds i64, ptr %ctl, i64 {i}")
        return fb.op(f"load {ty}, ptr {p}")

    def slot(i: int) -> str:
        return fb.op(f"getelementptr inbounds ptr, ptr %bufs, i64 {i}")

    fb.entry.append(f"  %bufs = alloca [{nbufs} x ptr]")
    nsteps = ctl(0, "i64")
    tmpl = ctl(1, "ptr")
    fb.emit(f"call void @llvm.memcpy.p0.p0.i64(ptr %bufs, ptr {tmpl}, i64 {nbufs * 8}, "
            "i1 0)")
    s, tok = fb.loop_begin(nsteps)
    for k in range(nin):
        base, step = ctl(2 + 2 * k, "ptr"), ctl(3 + 2 * k, "i64")
        off = fb.op(f"mul i64 {s}, {step}")
        fb.emit(f"store ptr {fb.op(f'getelementptr inbounds i8, ptr {base}, i64 {off}')}, "
                f"ptr {slot(k)}")
    parity = fb.op(f"and i64 {s}, 1")
    odd = fb.op(f"icmp ne i64 {parity}, 0")
    first = fb.op(f"icmp eq i64 {s}, 0")
    for n, expr in enumerate(program.direct):
        j = program.direct[expr]
        base = 2 + 2 * nin + 3 * n
        orig, a, b = ctl(base, "ptr"), ctl(base + 1, "ptr"), ctl(base + 2, "ptr")
        prev = fb.op(f"select i1 {odd}, ptr {a}, ptr {b}")
        cur = fb.op(f"select i1 {first}, ptr {orig}, ptr {prev}")
        target = fb.op(f"select i1 {odd}, ptr {b}, ptr {a}")
        fb.emit(f"store ptr {cur}, ptr {slot(program.args.index(program.update_vars[j]))}")
        fb.emit(f"store ptr {target}, ptr {slot(program.target_index[expr])}")
    status = fb.op(f"call i32 @{ENTRY}(ptr %bufs, ptr null)")
    bad = fb.op(f"icmp ne i32 {status}, 0")
    done = fb.if_begin(bad)
    fb.emit(f"ret i32 {status}")
    fb.start_block(fb.label("dead"))
    fb.if_end(done)
    for o in range(nout):
        base = 2 + 2 * nin + 3 * nupd + 3 * o
        src, dst, nbytes = ctl(base, "ptr"), ctl(base + 1, "ptr"), ctl(base + 2, "i64")
        off = fb.op(f"mul i64 {s}, {nbytes}")
        d = fb.op(f"getelementptr inbounds i8, ptr {dst}, i64 {off}")
        fb.emit(f"call void @llvm.memcpy.p0.p0.i64(ptr {d}, ptr {src}, i64 {nbytes}, i1 0)")
    fb.loop_end(tok)
    return fb.finish(f"define i32 @{EPOCH}(ptr noalias %ctl) {{")


def run_epoch(program, arrays: list[np.ndarray], batch_size: int) -> list | None:
    """The full minibatches of ``Function.epoch`` in one native call (see
    :func:`epoch_function`): ``arrays`` are checked (one per input, equal first dims) and
    shuffled, ``batch_size`` positive.  Adopts the final values of the updated variables
    and returns each output stacked over the steps, without writing the arrays the
    variables held (``Function.epoch`` restores those if a later step fails).  None, having
    run nothing, when the native loop cannot apply: fewer than two full minibatches, an
    update that is not a plain buffer, or an output that is not in the arena."""
    n = arrays[0].shape[0] if arrays else 0
    full = n // batch_size
    if full < 2 or len(program.direct) != len(program.update_exprs):
        return None
    values, bindings = program.request.check_inputs([a[:batch_size] for a in arrays])
    arrays = [native_array(np.asarray(a), v.dtype) for a, v in zip(arrays, program.inputs)]
    batch = [native_array(values[v], v.dtype) for v in program.inputs] + [
        native_array(v._value, v.dtype) for v in program.shared]
    plan = program._plan_for(batch, bindings)
    if plan.extra["bad_update"] or any(spec[0] != "fixed" for spec in plan.extra["outputs"]):
        return None
    # in-place updates step on one private copy (the caller's arrays are never written)
    fresh = []
    for pool in plan.targets:
        if isinstance(pool, int):
            copy = batch[pool].copy()
            fresh.append([copy, copy])
        else:
            fresh.append([np.empty_like(pool[0]), np.empty_like(pool[0])])
    stacks = [np.empty((full, *spec[1].shape), spec[1].dtype)
              for spec in plan.extra["outputs"]]
    ctl = [full, 0]
    for a in arrays:
        ctl += [a.ctypes.data, a.strides[0] * batch_size if a.shape[0] else 0]
    for j, pair, pool in zip(program.direct.values(), fresh, plan.targets):
        orig = pair[0] if isinstance(pool, int) else \
            batch[program.args.index(program.update_vars[j])]
        ctl += [orig.ctypes.data, pair[0].ctypes.data, pair[1].ctypes.data]
    for spec, st in zip(plan.extra["outputs"], stacks):
        ctl += [spec[1].ctypes.data, st.ctypes.data, spec[1].nbytes]
    template = np.array([a.ctypes.data for a in batch]
                        + [pair[0].ctypes.data for pair in fresh]
                        + [plan.arena.ctypes.data, plan.table.ctypes.data]
                        + [c.value.ctypes.data for c in program.consts], dtype=np.uint64)
    ctl[1] = template.ctypes.data
    ctl_array = np.array(ctl, dtype=np.uint64)
    status = epoch_fn(program)(ctl_array.ctypes.data)
    if status:
        program._raise(status, plan)
    last = (full - 1) % 2
    for j, pair in zip(program.direct.values(), fresh):
        program.update_vars[j]._value = pair[last]
    return stacks


def epoch_fn(program):
    """``sg_epoch`` of the program's module as a ctypes function, made once per program."""
    fn = getattr(program, "_epoch_cfunc", None)
    if fn is None:
        fn = program._epoch_cfunc = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)(
            program.module.address(EPOCH))
    return fn
