"""IR of the step's entry function, ``sg_step``, and of its profiling twin.

Split out of :mod:`codegen.backend` so that the program class keeps to compiling and calling:
this module only knows how ``sg_step(bufs, dims)`` finds each kernel's buffers (arguments,
update targets, constants, arena offsets read from the int64 table) and calls the kernels in
order, returning the 1-based number of the first fallible kernel that failed.
``codegen.epoch`` calls ``sg_step`` once per minibatch.
"""

from __future__ import annotations

from symgraph.graph import Variable

from .irgen import FunctionBuilder
from .kernel_info import ENTRY, LoweringError, ModuleContext, output_slot
from .native import jit
from .registry import register_tunables


def root_pointer(program, fb: FunctionBuilder, ctx: ModuleContext,
                 root: Variable) -> str:
    """The entry's pointer to ``root``'s buffer: an argument, an update target, a constant
    (all slots of ``bufs``) or an offset into the arena read from the int64 table."""
    an = program.analysis
    mode = an.mode[root]
    nargs = len(program.args) + len(program.direct)
    if mode == "arg" or root in program.direct:
        index = program.args.index(root) if mode == "arg" else program.target_index[root]
        p = fb.entry_op(f"bp{index}", f"getelementptr inbounds ptr, ptr %bufs, i64 {index}")
        return fb.entry_op(f"b{index}", f"load ptr, ptr {p}")
    if mode in ("const", "literal"):
        index = nargs + 2 + program.consts.index(root)
        p = fb.entry_op(f"bp{index}", f"getelementptr inbounds ptr, ptr %bufs, i64 {index}")
        return fb.entry_op(f"b{index}", f"load ptr, ptr {p}")
    if mode != "buffer":
        raise LoweringError(f"internal: root {root!r} has mode {mode}")
    if root in program.output_roots:  # an address a call may point at an array of its own
        slot = ctx.slot(("outp", root.id), output_slot(root))
        tp = fb.entry_op(f"op{slot}", f"getelementptr inbounds i64, ptr %tab, i64 {slot}")
        address = fb.entry_op(f"oa{slot}", f"load i64, ptr {tp}")
        return fb.entry_op(f"rp{root.id}", f"inttoptr i64 {address} to ptr")
    slot = ctx.slot(("off", root.id), lambda shapes, env, r=root: env["offsets"][r])
    arena = fb.entry_op("arena", f"load ptr, ptr {own(fb, nargs)}")
    tp = fb.entry_op(f"op{slot}", f"getelementptr inbounds i64, ptr %tab, i64 {slot}")
    off = fb.entry_op(f"ov{slot}", f"load i64, ptr {tp}")
    return fb.entry_op(f"rp{root.id}", f"getelementptr inbounds i8, ptr {arena}, i64 {off}")


def own(fb: FunctionBuilder, index: int) -> str:
    """Address of slot ``index`` of ``bufs`` (the arena, the table, constants, counters)."""
    return fb.entry_op(f"bp{index}", f"getelementptr inbounds ptr, ptr %bufs, i64 {index}")


#: a step of more kernels than this calls them from segment functions of this many calls
#: each: one straight-line ``sg_step`` of 1,722 calls (an LSTM unrolled over 100 steps)
#: kept every buffer pointer live across the whole function, and LLVM's machine code for it
#: grew faster than its length (1.3 s of the module's codegen at T=100, 0.45 s at T=50)
SEGMENT_KERNELS = 64
#: ...and such an entry (calls only) compiles in a module of its own at this level
#: (``codegen.partition``)
ENTRY_OPT_LEVEL = 0


def entry_function(program, ctx: ModuleContext, kernels, profile: bool = False) -> str:
    """``sg_step``; with ``profile``, ``sg_step_profile`` that also adds each kernel's
    cycle count to an int64 array passed after the constants, and writes the cycle counter
    at the start of the call after them (slot ``len(kernels)``: ``LLVMProgram.profile``
    converts cycles to seconds with it).  Both return 0, or the 1-based
    number of the first fallible kernel that failed.  Above :data:`SEGMENT_KERNELS` kernels
    the function calls segment functions (``<name>_s<j>``, same signature and result) that
    call the kernels.  With ``flush_denormals``, it is :func:`_flushing`'s wrapper of them."""
    name = f"{ENTRY}_profile" if profile else ENTRY
    if program.request.flush_denormals:
        return "\n\n".join([_entry(program, ctx, kernels, profile, f"{name}_body",
                                    "define internal i32"), _flushing(name)])
    return _entry(program, ctx, kernels, profile, name, "define i32")


#: MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) modes
FTZ_DAZ = 0x8040


def _flushing(name: str) -> str:
    """``@name``, which calls ``@name_body`` with the CPU's flush-to-zero and
    denormals-are-zero modes set, and restores the caller's MXCSR after.  The body is
    ``noinline`` (attributes #1), so no float operation of it moves across the mode
    changes.  x86-64 only: other hosts are refused when lowering."""
    triple = jit.host_target().triple
    if not triple.startswith(("x86_64", "amd64")):
        raise LoweringError(f"flush_denormals=True is implemented for x86-64 hosts only; "
                            f"this one is {triple}")
    return f"""{_header(f"define i32 @{name}")}
entry:
  %caller = alloca i32, align 4
  %mode = alloca i32, align 4
  call void @llvm.x86.sse.stmxcsr(ptr %caller)
  %old = load i32, ptr %caller
  %new = or i32 %old, {FTZ_DAZ}
  store i32 %new, ptr %mode
  call void @llvm.x86.sse.ldmxcsr(ptr %mode)
  %status = call i32 @{name}_body(ptr %bufs, ptr %dims)
  call void @llvm.x86.sse.ldmxcsr(ptr %caller)
  ret i32 %status
}}

declare void @llvm.x86.sse.stmxcsr(ptr)
declare void @llvm.x86.sse.ldmxcsr(ptr)"""


def _entry(program, ctx: ModuleContext, kernels, profile: bool, name: str,
           define: str) -> str:
    """The function ``name`` that calls the kernels (:func:`entry_function`)."""
    if len(kernels) <= SEGMENT_KERNELS:
        return _calls(program, ctx, kernels, 0, profile, f"{define} @{name}", len(kernels))
    texts, fb = [], FunctionBuilder("m")
    for j, start in enumerate(range(0, len(kernels), SEGMENT_KERNELS)):
        part = kernels[start:start + SEGMENT_KERNELS]
        texts.append(_calls(program, ctx, part, start, profile,
                            f"define internal i32 @{name}_s{j}", len(kernels)))
        status = fb.op(f"call i32 @{name}_s{j}(ptr %bufs, ptr %dims)")
        done = fb.if_begin(fb.op(f"icmp ne i32 {status}, 0"))
        fb.emit(f"ret i32 {status}")
        fb.start_block(fb.label("dead"))
        fb.if_end(done)
    return "\n\n".join(texts + [fb.finish(_header(f"{define} @{name}"))])


def _header(define: str) -> str:
    return f"{define}(ptr noalias %bufs, ptr noalias %dims) #1 {{"


def _calls(program, ctx: ModuleContext, kernels, first: int, profile: bool,
           define: str, total: int) -> str:
    """A function that calls ``kernels`` (numbered from ``first``, of ``total`` in the step)
    in order."""
    fb = FunctionBuilder("m")
    nargs = len(program.args) + len(program.direct)
    fb.entry.append(f"  %tab = load ptr, ptr {own(fb, nargs + 1)}")
    if profile:
        counters = fb.entry_op("cnt", f"load ptr, ptr "
                               f"{own(fb, nargs + 2 + len(program.consts))}")
        if first == 0:  # (the first segment's start: a fixed point of every call)
            start = fb.op(f"getelementptr inbounds i64, ptr {counters}, i64 {total}")
            fb.emit(f"store i64 {fb.op('call i64 @llvm.readcyclecounter()')}, ptr {start}")
    for n, (info, roots) in enumerate(kernels, first):
        ptrs = [f"ptr {root_pointer(program, fb, ctx, r)}" for r in roots]
        if profile:
            t0 = fb.op("call i64 @llvm.readcyclecounter()")
        values = [f"i64 {a}" for a in info.args]
        status = fb.op(f"call i32 @{info.function}({', '.join(ptrs + ['ptr %tab'] + values)})")
        if profile:
            t1 = fb.op("call i64 @llvm.readcyclecounter()")
            slot = fb.op(f"getelementptr inbounds i64, ptr {counters}, i64 {n}")
            spent = fb.op(f"sub i64 {t1}, {t0}")
            total = fb.op(f"add i64 {fb.op(f'load i64, ptr {slot}')}, {spent}")
            fb.emit(f"store i64 {total}, ptr {slot}")
        if info.fallible:
            bad = fb.op(f"icmp ne i32 {status}, 0")
            done = fb.if_begin(bad)
            fb.emit(f"ret i32 {n + 1}")
            fb.start_block(fb.label("dead"))
            fb.if_end(done)
    return fb.finish(_header(define))


register_tunables(__name__, ("SEGMENT_KERNELS", "ENTRY_OPT_LEVEL"))
